package redact

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"unicode"
	"unicode/utf8"
)

// normalizeKey folds a field name for matching: lower case, letters and digits only (no '_', '-',
// '.', spaces, or any other punctuation, control or invisible character), and without a leading
// "x-"/"x_" header prefix. api_key, apiKey, API-KEY, x-api-key, "Authorization:" and
// params[api_key] are one name. Full-width forms fold to ASCII, and Cyrillic and Greek letters
// that look like Latin ones fold to them, so ＡＰＩ＿ＫＥＹ and a Cyrillic "аpi_key" match too.
func normalizeKey(s string) string {
	if len(s) > 2 && (s[0] == 'x' || s[0] == 'X') && (s[1] == '-' || s[1] == '_') {
		s = s[2:]
	}
	b := make([]byte, 0, len(s))
	for _, c := range s {
		if c >= 0x80 {
			c = foldRune(c)
		}
		switch {
		case c < 0x80:
			if c := lowerByte(byte(c)); lowerAlnum(c) {
				b = append(b, c)
			}
		case unicode.IsLetter(c) || unicode.IsDigit(c):
			b = utf8.AppendRune(b, unicode.ToLower(c))
		}
	}
	return string(b)
}

// foldRune maps a character beyond ASCII that stands for an ASCII one in a field name: full-width
// forms, and the Cyrillic and Greek letters drawn like Latin letters.
func foldRune(c rune) rune {
	if c >= 0xFF01 && c <= 0xFF5E { // full-width ASCII
		return c - 0xFEE0
	}
	if l, ok := lookalikes[c]; ok {
		return l
	}
	return c
}

// lookalikes are Cyrillic and Greek letters drawn like Latin ones (Unicode's confusables, the
// letters alone).
var lookalikes = map[rune]rune{
	// Cyrillic
	'а': 'a', 'в': 'b', 'е': 'e', 'ѕ': 's', 'і': 'i', 'ј': 'j', 'к': 'k', 'м': 'm', 'н': 'h', 'о': 'o',
	'р': 'p', 'с': 'c', 'т': 't', 'у': 'y', 'х': 'x', 'ԁ': 'd', 'ԛ': 'q', 'ԝ': 'w', 'һ': 'h', 'ү': 'y',
	'А': 'a', 'В': 'b', 'Е': 'e', 'Ѕ': 's', 'І': 'i', 'Ј': 'j', 'К': 'k', 'М': 'm', 'Н': 'h', 'О': 'o',
	'Р': 'p', 'С': 'c', 'Т': 't', 'У': 'y', 'Х': 'x', 'Ԁ': 'd', 'Ԛ': 'q', 'Ԝ': 'w', 'Һ': 'h', 'Ү': 'y',
	// Greek
	'α': 'a', 'ε': 'e', 'ι': 'i', 'κ': 'k', 'ν': 'v', 'ο': 'o', 'ρ': 'p', 'τ': 't', 'υ': 'u', 'χ': 'x',
	'Α': 'a', 'Β': 'b', 'Ε': 'e', 'Ζ': 'z', 'Η': 'h', 'Ι': 'i', 'Κ': 'k', 'Μ': 'm', 'Ν': 'n', 'Ο': 'o',
	'Ρ': 'p', 'Τ': 't', 'Υ': 'y', 'Χ': 'x',
}

// plainName reports whether a rule's name is lower-case letters, digits and '_' only: such a name
// can stand between the colons of a pseudonym (pii:patient_name:…) as the policy writes it.
func plainName(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return s != ""
}

// keyRule is a key rule or PII field as matched: the normalized name, the name as the policy
// wrote it (the kind recorded and shown in markers), and the action.
type keyRule struct {
	norm string
	name string
	act  Action
	pii  bool
}

// keyMatcher implements the matching rule for field names:
//
//	A field matches a rule when the field's normalized name equals the rule's normalized name
//	or ends with it. Among the rules that match, the longest wins; a key rule beats a PII field
//	of the same normalized name.
//
// So db_password and openai_api_key match password and api_key, while max_tokens (maxtokens),
// input_tokens and token_count do not match token: they do not end with it.
type keyMatcher struct {
	rules  []keyRule      // longest normalized name first
	byNorm map[string]int // normalized name -> index in rules
	filter [1 << 15 / 64]uint64
	noFilt bool // a rule the filter cannot index (short or not ASCII): test every name

	cache  sync.Map     // name -> keyMatch, for names the filter lets through
	cached atomic.Int32 // entries in cache
}

type keyMatch struct {
	rule int // index in rules, -1 for none
}

// maxKeyCache bounds the cache of field names: agents use few names, a client could send many.
const maxKeyCache = 4096

func newKeyMatcher(keys []KeyRule, pii []string) *keyMatcher {
	km := &keyMatcher{byNorm: map[string]int{}}
	byNorm := map[string]keyRule{} // a key rule replaces a PII field of the same normalized name
	for _, f := range pii {
		n := normalizeKey(f)
		byNorm[n] = keyRule{norm: n, name: f, act: Action{Kind: "pseudonymize"}, pii: true}
	}
	for _, k := range keys {
		n := normalizeKey(k.Name)
		byNorm[n] = keyRule{norm: n, name: k.Name, act: k.Action}
	}
	km.rules = slices.Collect(maps.Values(byNorm))
	slices.SortFunc(km.rules, func(a, b keyRule) int {
		if len(a.norm) != len(b.norm) {
			return len(b.norm) - len(a.norm)
		}
		return strings.Compare(a.norm, b.norm)
	})
	for i, r := range km.rules {
		km.byNorm[r.norm] = i
		code, ok := tail3(r.norm)
		if !ok {
			km.noFilt = true
			continue
		}
		km.filter[code/64] |= 1 << (code % 64)
	}
	return km
}

// isPII reports whether a normalized name is exactly a PII field (not a key rule).
func (km *keyMatcher) isPII(norm string) bool {
	i, ok := km.byNorm[norm]
	return ok && km.rules[i].pii
}

// shownName is how a pseudonym shows a normalized field name: the rule's name as the policy
// writes it (patient_name) when a rule has that name and it can stand between a pseudonym's
// colons, else a detector's kind as it is written (secret_prefix), the normalized name otherwise.
func (km *keyMatcher) shownName(norm string) string {
	if i, ok := km.byNorm[norm]; ok && plainName(km.rules[i].name) {
		return km.rules[i].name
	}
	if k, ok := shownKinds[norm]; ok {
		return k
	}
	return norm
}

// shownKinds maps the normalized names of the detectors' kinds, the person-name fields' among
// them, to their spelling.
var shownKinds = func() map[string]string {
	m := map[string]string{}
	for _, k := range append(slices.Collect(maps.Keys(detectorKinds)), nameKinds()...) {
		if plainName(k) {
			m[normalizeKey(k)] = k
		}
	}
	return m
}()

// code5 maps a lower-case ASCII letter or digit to 5 bits; other bytes share a code, which only
// lets more names through the filter.
func code5(c byte) uint32 {
	switch {
	case c >= 'a' && c <= 'z':
		return uint32(c-'a') + 1
	case c >= '0' && c <= '9':
		return 27 + uint32(c-'0')%5
	}
	return 0
}

// tail3 codes the last three characters of a normalized name for the filter.
func tail3(norm string) (uint32, bool) {
	if len(norm) < 3 {
		return 0, false
	}
	for i := len(norm) - 3; i < len(norm); i++ {
		if norm[i] >= 0x80 {
			return 0, false
		}
	}
	return code5(norm[len(norm)-3])<<10 | code5(norm[len(norm)-2])<<5 | code5(norm[len(norm)-1]), true
}

// maybe is the filter: false when no rule can match name, judged by the last three characters of
// its normalized form, without allocating.
func (km *keyMatcher) maybe(name string) bool {
	if km.noFilt {
		return true
	}
	if n := len(name); n >= 3 {
		// The usual name ends in three lower-case letters or digits.
		a, b, c := name[n-3], name[n-2], name[n-1]
		if lowerAlnum(a) && lowerAlnum(b) && lowerAlnum(c) {
			code := code5(a)<<10 | code5(b)<<5 | code5(c)
			return km.filter[code/64]&(1<<(code%64)) != 0
		}
	}
	var t [3]byte
	n := 0
	for i := len(name) - 1; i >= 0 && n < 3; i-- {
		c := name[i]
		switch {
		case c >= 0x80:
			return true
		case !lowerAlnum(lowerByte(c)):
			continue // punctuation and control characters are not part of the normalized name
		}
		n++
		t[3-n] = lowerByte(c)
	}
	if n < 3 {
		return false // no rule is shorter than three characters here (noFilt otherwise)
	}
	code := code5(t[0])<<10 | code5(t[1])<<5 | code5(t[2])
	return km.filter[code/64]&(1<<(code%64)) != 0
}

func lowerAlnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// lookup returns the rule a field name matches, or nil.
func (km *keyMatcher) lookup(name string) *keyRule {
	if !km.maybe(name) {
		return nil
	}
	var m keyMatch
	if v, hit := km.cache.Load(name); hit {
		m = v.(keyMatch)
	} else {
		m = keyMatch{rule: -1}
		n := normalizeKey(name)
		for i, r := range km.rules {
			if strings.HasSuffix(n, r.norm) {
				m.rule = i
				break
			}
		}
		if km.cached.Load() < maxKeyCache { // agents use few names; a client could send many
			if _, loaded := km.cache.LoadOrStore(strings.Clone(name), m); !loaded { // name may be a view of the input
				km.cached.Add(1)
			}
		}
	}
	if m.rule < 0 {
		return nil
	}
	return &km.rules[m.rule]
}

// keyAction returns the action, and the rule's name as kind, for a field name.
func (r *Redactor) keyAction(name string) (Action, string, bool) {
	if k := r.keys.lookup(name); k != nil {
		return k.act, k.name, true
	}
	return Action{}, "", false
}

// ErrKeyFile: the pseudonym key file is unreadable, malformed or readable by others.
var ErrKeyFile = errors.New("bad pseudonym key file")

// LoadOrCreateKey reads the pseudonym key file: KeySize random bytes, hex-encoded on one line. When
// the file is absent it is created with a new key, mode 0600, atomically (a concurrent creator's
// key wins and is read back). A key file that group or others may read, that is not a regular
// file, or that does not hold exactly KeySize bytes is refused.
func LoadOrCreateKey(path string) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		if err := createKey(path); err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrKeyFile, path, err)
		}
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrKeyFile, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; group and others must not read it (chmod 600 %s)", ErrKeyFile, path, perm, path)
	}
	data := make([]byte, 4*KeySize)
	n, _ := f.Read(data)
	text := strings.TrimSpace(string(data[:n]))
	key, err := hex.DecodeString(text)
	if err != nil || len(key) != KeySize {
		return nil, fmt.Errorf("%w: %s must hold %d bytes as %d hex digits on one line, it holds %d characters", ErrKeyFile, path, KeySize, 2*KeySize, len(text))
	}
	return key, nil
}

// createKey writes a new key to a temporary file and links it into place, so a reader never sees
// a partial key and two creators cannot both win.
func createKey(path string) error {
	key := make([]byte, KeySize)
	rand.Read(key)
	tmp, err := os.CreateTemp(filepath.Dir(path), ".pseudonym-key-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if err := tmp.Chmod(0o600); err != nil {
		return err
	}
	if _, err := tmp.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
		return err
	}
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
