package redact

import (
	"fmt"
	"math"
	"regexp"
	"regexp/syntax"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/pelletier/go-toml/v2"
	"github.com/zricethezav/gitleaks/v8/config"
)

// Secret formats come from gitleaks' default configuration (config.DefaultConfig, the
// gitleaks.toml embedded in github.com/zricethezav/gitleaks/v8), parsed here into rules: id,
// regex, keywords, secretGroup, entropy and the rule's allowlists, compiled once. A rule runs on a
// string only when one of its keywords occurs in it (the prefilter automaton, scan.go), as in
// gitleaks.

// ExcludedSecretRules are gitleaks rules left out. generic-api-key matches any "name = value"
// whose value has some entropy; in agent payloads (request ids, hashes, cursors) that is mostly
// noise, and this package's key_value detector covers named secrets in text with the same
// matching rule as JSON keys.
var ExcludedSecretRules = []string{"generic-api-key"}

type secretRule struct {
	id          string
	re          *regexp.Regexp
	secretGroup int
	entropy     float64
	allow       []allowlist
	maxLen      int // the longest match in bytes, -1 when unbounded
}

// maxWindow is the longest match a rule may have and still run on windows around its keywords
// rather than on the whole string.
const maxWindow = 4096

// maxWidth returns the most bytes re can match, or -1 when that is unbounded.
func maxWidth(re *syntax.Regexp) int {
	switch re.Op {
	case syntax.OpEmptyMatch, syntax.OpBeginLine, syntax.OpEndLine, syntax.OpBeginText, syntax.OpEndText,
		syntax.OpWordBoundary, syntax.OpNoWordBoundary, syntax.OpNoMatch:
		return 0
	case syntax.OpLiteral:
		n := 0
		for _, r := range re.Rune {
			n += utf8.RuneLen(r)
		}
		return n
	case syntax.OpCharClass, syntax.OpAnyCharNotNL, syntax.OpAnyChar:
		return utf8.UTFMax
	case syntax.OpCapture:
		return maxWidth(re.Sub[0])
	case syntax.OpStar, syntax.OpPlus:
		return -1
	case syntax.OpQuest:
		return maxWidth(re.Sub[0])
	case syntax.OpRepeat:
		w := maxWidth(re.Sub[0])
		if re.Max < 0 || w < 0 {
			return -1
		}
		return re.Max * w
	case syntax.OpConcat, syntax.OpAlternate:
		total := 0
		for _, sub := range re.Sub {
			w := maxWidth(sub)
			if w < 0 {
				return -1
			}
			if re.Op == syntax.OpConcat {
				total += w
			} else {
				total = max(total, w)
			}
		}
		return total
	}
	return -1
}

type allowlist struct {
	target    string // "", "match" or "line"
	regexes   []*regexp.Regexp
	stopwords []string
}

// secretRules is gitleaks' default rule set as compiled here.
type secretRules struct {
	rules    []secretRule
	global   allowlist
	keywords map[string][]int32 // lower-case keyword -> rules
	// Skipped counts rules left out: BadRegex whose regex Go cannot compile, PathOnly those that
	// apply to file paths (which events do not have), Excluded those in ExcludedSecretRules.
	badRegex, pathOnly, excluded int
}

// SecretRuleStats reports the gitleaks rule set as loaded: rules compiled, and rules skipped
// because Go's regexp could not compile them, because they match file paths, or by exclusion.
func SecretRuleStats() (compiled, badRegex, pathOnly, excluded int, err error) {
	sr, err := loadSecrets()
	if err != nil {
		return 0, 0, 0, 0, err
	}
	return len(sr.rules), sr.badRegex, sr.pathOnly, sr.excluded, nil
}

type tomlAllowlist struct {
	Condition   string   `toml:"condition"`
	Paths       []string `toml:"paths"`
	RegexTarget string   `toml:"regexTarget"`
	Regexes     []string `toml:"regexes"`
	Stopwords   []string `toml:"stopwords"`
}

var loadSecrets = sync.OnceValues(func() (*secretRules, error) {
	var cfg struct {
		Allowlist tomlAllowlist `toml:"allowlist"`
		Rules     []struct {
			ID          string          `toml:"id"`
			Regex       string          `toml:"regex"`
			Path        string          `toml:"path"`
			Keywords    []string        `toml:"keywords"`
			Entropy     any             `toml:"entropy"`
			SecretGroup int             `toml:"secretGroup"`
			Allowlists  []tomlAllowlist `toml:"allowlists"`
		} `toml:"rules"`
	}
	if err := toml.Unmarshal([]byte(config.DefaultConfig), &cfg); err != nil {
		return nil, fmt.Errorf("redact: gitleaks default config: %w", err)
	}
	sr := &secretRules{keywords: map[string][]int32{}}
	sr.global, _ = compileAllowlist(cfg.Allowlist)
	for _, r := range cfg.Rules {
		switch {
		case isExcluded(r.ID):
			sr.excluded++
			continue
		case r.Path != "" || r.Regex == "":
			sr.pathOnly++
			continue
		}
		re, err := regexp.Compile(r.Regex)
		if err != nil || len(r.Keywords) == 0 {
			sr.badRegex++
			continue
		}
		rule := secretRule{id: r.ID, re: re, secretGroup: r.SecretGroup, maxLen: -1}
		if tree, err := syntax.Parse(r.Regex, syntax.Perl); err == nil {
			if w := maxWidth(tree); w >= 0 && w <= maxWindow {
				rule.maxLen = w
			}
		}
		switch v := r.Entropy.(type) {
		case float64:
			rule.entropy = v
		case int64:
			rule.entropy = float64(v)
		}
		for _, a := range r.Allowlists {
			if al, ok := compileAllowlist(a); ok {
				rule.allow = append(rule.allow, al)
			}
		}
		idx := int32(len(sr.rules))
		sr.rules = append(sr.rules, rule)
		for _, k := range r.Keywords {
			k = strings.ToLower(k)
			sr.keywords[k] = append(sr.keywords[k], idx)
		}
	}
	if len(sr.rules) > 64*len([8]uint64{}) {
		return nil, fmt.Errorf("redact: %d gitleaks rules, more than the %d this package tracks", len(sr.rules), 64*8)
	}
	return sr, nil
})

func isExcluded(id string) bool {
	for _, x := range ExcludedSecretRules {
		if x == id {
			return true
		}
	}
	return false
}

// compileAllowlist keeps what applies to a string without a file: regexes and stopwords. An
// allowlist that needs a path too (condition AND) never applies, and one of paths only is empty.
func compileAllowlist(a tomlAllowlist) (allowlist, bool) {
	if strings.EqualFold(a.Condition, "AND") && len(a.Paths) > 0 {
		return allowlist{}, false
	}
	al := allowlist{target: a.RegexTarget}
	for _, x := range a.Regexes {
		if re, err := regexp.Compile(x); err == nil {
			al.regexes = append(al.regexes, re)
		}
	}
	for _, w := range a.Stopwords {
		al.stopwords = append(al.stopwords, strings.ToLower(w))
	}
	return al, len(al.regexes)+len(al.stopwords) > 0
}

// allows reports whether the allowlist lets a finding pass: secret is the secret, m the whole
// match, line the line of s holding it.
func (a *allowlist) allows(secret, m, line string) bool {
	target := secret
	switch a.target {
	case "match":
		target = m
	case "line":
		target = line
	}
	for _, re := range a.regexes {
		if re.MatchString(target) {
			return true
		}
	}
	if len(a.stopwords) > 0 {
		low := strings.ToLower(secret)
		for _, w := range a.stopwords {
			if strings.Contains(low, w) {
				return true
			}
		}
	}
	return false
}

// find appends the secrets of rule r in s[from:to], as gitleaks finds them: the secretGroup, or
// the first non-empty group, or the whole match; entropy above the rule's threshold; not
// allowlisted.
func (r *secretRule) find(ms []match, s string, from, to int, sr *secretRules, act Action) []match {
	for _, loc := range r.re.FindAllStringSubmatchIndex(s[from:to], -1) {
		for i := range loc {
			if loc[i] >= 0 {
				loc[i] += from
			}
		}
		a, b := loc[0], loc[1]
		if g := r.secretGroup; g > 0 {
			if 2*g+1 >= len(loc) || loc[2*g] < 0 {
				continue
			}
			a, b = loc[2*g], loc[2*g+1]
		} else {
			for g := 1; 2*g+1 < len(loc); g++ {
				if loc[2*g] >= 0 && loc[2*g+1] > loc[2*g] {
					a, b = loc[2*g], loc[2*g+1]
					break
				}
			}
		}
		if a == b {
			continue
		}
		secret := s[a:b]
		if r.entropy > 0 && shannon(secret) <= r.entropy {
			continue
		}
		line := s
		if strings.IndexByte(s, '\n') >= 0 {
			ls := strings.LastIndexByte(s[:loc[0]], '\n') + 1
			le := strings.IndexByte(s[loc[1]:], '\n')
			if le < 0 {
				le = len(s)
			} else {
				le += loc[1]
			}
			line = s[ls:le]
		}
		allowed := sr.global.allows(secret, s[loc[0]:loc[1]], line)
		for i := 0; i < len(r.allow) && !allowed; i++ {
			allowed = r.allow[i].allows(secret, s[loc[0]:loc[1]], line)
		}
		if !allowed {
			ms = append(ms, match{a, b, r.id, act})
		}
	}
	return ms
}

func shannon(s string) float64 {
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
