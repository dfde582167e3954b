package redact

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strings"
	"sync"
	"unsafe"

	ahocorasick "github.com/BobuSumisu/aho-corasick"
	toml "github.com/pelletier/go-toml"
	"github.com/zricethezav/gitleaks/v8/config"
)

// match is one detected value inside a string.
type match struct {
	start, end int
	kind       string
}

// detector finds values of one kind in a string. pre is a cheap test on the string's features
// that must pass for find to run at all.
type detector struct {
	kind string
	pre  func(f *features) bool
	find func(s string) []match
}

// features are what the prefilters need, gathered in one pass over a string.
type features struct {
	lower                     string
	cardRun, ssnRun, phoneRun int // longest digit runs with the separators each format allows
	at, ibanStart, jwt, pem   bool
}

// byteClass holds, per byte, what featuresOf needs to know: one table lookup per byte instead of
// a chain of comparisons.
var byteClass = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= clDigit
	}
	for _, c := range " -" {
		t[c] |= clCardSep
	}
	t['-'] |= clSSNSep
	for _, c := range " .-()+" {
		t[c] |= clPhoneSep
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= clSpecial // IBAN start
	}
	for _, c := range "@e-" {
		t[c] |= clSpecial // email, JWT, PEM
	}
	return t
}()

const (
	clDigit uint8 = 1 << iota
	clCardSep
	clSSNSep
	clPhoneSep
	clSpecial
)

func featuresOf(s, lower string) features {
	f := features{lower: lower}
	var card, ssn, phone, cardGap, ssnGap, phoneGap int
	for i := 0; i < len(s); i++ {
		c := s[i]
		cl := byteClass[c]
		if cl&clDigit != 0 {
			card, ssn, phone = card+1, ssn+1, phone+1
			cardGap, ssnGap, phoneGap = 0, 0, 0
			f.cardRun, f.ssnRun, f.phoneRun = max(f.cardRun, card), max(f.ssnRun, ssn), max(f.phoneRun, phone)
			continue
		}
		// A separator may stand between digits, at most two in a row; anything else ends a run.
		if cl&clCardSep != 0 && cardGap < 2 {
			cardGap++
		} else {
			card, cardGap = 0, 0
		}
		if cl&clSSNSep != 0 && ssnGap < 2 {
			ssnGap++
		} else {
			ssn, ssnGap = 0, 0
		}
		if cl&clPhoneSep != 0 && phoneGap < 2 {
			phoneGap++
		} else {
			phone, phoneGap = 0, 0
		}
		if cl&clSpecial == 0 {
			continue
		}
		switch {
		case c == '@':
			f.at = true
		case c >= 'A' && c <= 'Z' && i+3 < len(s) && s[i+1] >= 'A' && s[i+1] <= 'Z' && s[i+2] >= '0' && s[i+2] <= '9' && s[i+3] >= '0' && s[i+3] <= '9':
			f.ibanStart = true
		case c == 'e' && i+2 < len(s) && s[i+1] == 'y' && s[i+2] == 'J':
			f.jwt = true
		case c == '-' && i+10 < len(s) && s[i+1] == '-' && s[i+5] == 'B' && strings.HasPrefix(s[i:], "-----BEGIN"):
			f.pem = true
		}
	}
	return f
}

// wordAt reports whether s[i] exists and is part of an identifier-like token, for boundaries
// Go's regexp cannot express (no look-behind).
func wordAt(s string, i int) bool {
	if i < 0 || i >= len(s) {
		return false
	}
	c := s[i]
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c == '-' || c == '/'
}

func regexFinder(kind string, re *regexp.Regexp, group int, valid func(string) bool) func(string) []match {
	return func(s string) []match {
		var out []match
		for _, loc := range re.FindAllStringSubmatchIndex(s, -1) {
			a, b := loc[2*group], loc[2*group+1]
			if a < 0 || wordAt(s, a-1) || wordAt(s, b) {
				continue
			}
			if valid != nil && !valid(s[a:b]) {
				continue
			}
			out = append(out, match{a, b, kind})
		}
		return out
	}
}

var (
	cardRe   = regexp.MustCompile(`(\d(?:[ -]?\d){12,18})`)
	ssnRe    = regexp.MustCompile(`(\d{3}-\d{2}-\d{4})`)
	emailRe  = regexp.MustCompile(`([A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,})`)
	phoneRe  = regexp.MustCompile(`((?:\+\d{1,3}[ .-]?)?\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}|\+[1-9]\d{7,14})`)
	ibanRe   = regexp.MustCompile(`([A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?)`)
	jwtRe    = regexp.MustCompile(`(eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{8,})`)
	bearerRe = regexp.MustCompile(`(?i)\bbearer\s+([A-Za-z0-9._~+/-]{8,}=*)`)
	pemRe    = regexp.MustCompile(`(-----BEGIN[A-Z0-9 ]*PRIVATE KEY-----[\s\S]*?-----END[A-Z0-9 ]*PRIVATE KEY-----)`)
)

// luhn reports whether the digits of s (separators ignored) pass the Luhn check and number 13-19.
func luhn(s string) bool {
	var digits []int
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			digits = append(digits, int(s[i]-'0'))
		}
	}
	if len(digits) < 13 || len(digits) > 19 {
		return false
	}
	// Separators must be consistent groups (4-4-4-4, 4-6-5): a run of single-digit groups is a
	// list of numbers, not a card.
	if strings.ContainsAny(s, " -") {
		for _, g := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '-' }) {
			if len(g) < 3 {
				return false
			}
		}
	}
	sum := 0
	for i := range digits {
		d := digits[len(digits)-1-i]
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// validSSN applies the SSA's rules: no area 000, 666 or 900-999, no group 00, no serial 0000.
func validSSN(s string) bool {
	area, group, serial := s[0:3], s[4:6], s[7:11]
	return area != "000" && area != "666" && area[0] != '9' && group != "00" && serial != "0000"
}

// validIBAN checks the ISO 13616 mod-97 checksum.
func validIBAN(s string) bool {
	s = strings.ReplaceAll(s, " ", "")
	if len(s) < 15 || len(s) > 34 {
		return false
	}
	r := s[4:] + s[:4]
	var num strings.Builder
	for _, c := range r {
		switch {
		case c >= '0' && c <= '9':
			num.WriteRune(c)
		case c >= 'A' && c <= 'Z':
			fmt.Fprintf(&num, "%d", c-'A'+10)
		default:
			return false
		}
	}
	n, ok := new(big.Int).SetString(num.String(), 10)
	return ok && new(big.Int).Mod(n, big.NewInt(97)).Int64() == 1
}

func validPhone(s string) bool {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			n++
		}
	}
	return n >= 10 && n <= 15
}

// piiDetectors are the detectors this package keeps itself: PII formats and the token shapes
// (JWT, bearer, PEM) that are not service-specific.
var piiDetectors = []detector{
	{"pem_private_key", func(f *features) bool { return f.pem }, regexFinder("pem_private_key", pemRe, 1, nil)},
	{"jwt", func(f *features) bool { return f.jwt }, regexFinder("jwt", jwtRe, 1, nil)},
	{"bearer_token", func(f *features) bool { return strings.Contains(f.lower, "bearer") }, regexFinder("bearer_token", bearerRe, 1, nil)},
	{"credit_card", func(f *features) bool { return f.cardRun >= 13 }, regexFinder("credit_card", cardRe, 1, luhn)},
	{"ssn", func(f *features) bool { return f.ssnRun >= 9 }, regexFinder("ssn", ssnRe, 1, validSSN)},
	{"iban", func(f *features) bool { return f.ibanStart }, regexFinder("iban", ibanRe, 1, validIBAN)},
	{"email", func(f *features) bool { return f.at }, regexFinder("email", emailRe, 1, nil)},
	{"phone", func(f *features) bool { return f.phoneRun >= 10 }, regexFinder("phone", phoneRe, 1, validPhone)},
}

// secretRule is one rule of gitleaks' default configuration.
type secretRule struct {
	id          string
	re          *regexp.Regexp
	secretGroup int
	entropy     float64
}

// secretRules holds gitleaks' default rules, compiled once, and an Aho-Corasick automaton over
// their keywords: a rule's regex runs only when one of its keywords occurs in the string.
type secretRules struct {
	rules    []secretRule
	trie     *ahocorasick.Trie
	byKw     [][]int // keyword index -> rule indexes
	skipped  int     // rules whose regex Go could not compile, or with no regex
	excluded []string
}

// excludedSecretRules are gitleaks rules left out: generic-api-key matches any "key = value" with
// enough entropy, which in agent payloads (ids, hashes, request ids) is mostly noise; the key
// rules of the policy cover named secrets instead.
var excludedSecretRules = map[string]bool{"generic-api-key": true}

var loadSecrets = sync.OnceValues(func() (*secretRules, error) {
	var cfg struct {
		Rules []struct {
			ID          string   `toml:"id"`
			Regex       string   `toml:"regex"`
			Keywords    []string `toml:"keywords"`
			Entropy     any      `toml:"entropy"`
			SecretGroup int      `toml:"secretGroup"`
		} `toml:"rules"`
	}
	if err := toml.Unmarshal([]byte(config.DefaultConfig), &cfg); err != nil {
		return nil, fmt.Errorf("gitleaks default config: %w", err)
	}
	sr := &secretRules{}
	kwIndex := map[string]int{}
	var kws []string
	for _, r := range cfg.Rules {
		if excludedSecretRules[r.ID] {
			sr.excluded = append(sr.excluded, r.ID)
			continue
		}
		re, err := regexp.Compile(r.Regex)
		if r.Regex == "" || err != nil || len(r.Keywords) == 0 {
			sr.skipped++
			continue
		}
		var ent float64
		switch v := r.Entropy.(type) {
		case float64:
			ent = v
		case int64:
			ent = float64(v)
		}
		idx := len(sr.rules)
		sr.rules = append(sr.rules, secretRule{id: r.ID, re: re, secretGroup: r.SecretGroup, entropy: ent})
		for _, k := range r.Keywords {
			k = strings.ToLower(k)
			i, ok := kwIndex[k]
			if !ok {
				i = len(kws)
				kwIndex[k] = i
				kws = append(kws, k)
				sr.byKw = append(sr.byKw, nil)
			}
			sr.byKw[i] = append(sr.byKw[i], idx)
		}
	}
	sr.trie = ahocorasick.NewTrieBuilder().AddStrings(kws).Build()
	return sr, nil
})

func shannon(s string) float64 {
	if s == "" {
		return 0
	}
	var counts [256]int
	for i := 0; i < len(s); i++ {
		counts[s[i]]++
	}
	var h float64
	n := float64(len(s))
	for _, c := range counts {
		if c > 0 {
			p := float64(c) / n
			h -= p * math.Log2(p)
		}
	}
	return h
}

// find returns the secrets in s; lower is s in lower case.
func (sr *secretRules) find(s, lower string) []match {
	// A view of lower, not a copy: Match only reads it.
	hits := sr.trie.Match(unsafe.Slice(unsafe.StringData(lower), len(lower)))
	if len(hits) == 0 {
		return nil
	}
	seen := map[int]bool{}
	var out []match
	for _, h := range hits {
		for _, ri := range sr.byKw[h.Pattern()] {
			if seen[ri] {
				continue
			}
			seen[ri] = true
			r := sr.rules[ri]
			for _, loc := range r.re.FindAllStringSubmatchIndex(s, -1) {
				a, b := loc[0], loc[1]
				if g := r.secretGroup; g > 0 && 2*g+1 < len(loc) && loc[2*g] >= 0 {
					a, b = loc[2*g], loc[2*g+1]
				} else if len(loc) > 2 && loc[2] >= 0 && g == 0 {
					a, b = loc[2], loc[3] // gitleaks' default: the first group is the secret
				}
				if r.entropy > 0 && shannon(s[a:b]) < r.entropy {
					continue
				}
				out = append(out, match{a, b, r.id})
			}
		}
	}
	return out
}
