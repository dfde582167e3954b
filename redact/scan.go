package redact

import (
	"math/bits"
	"slices"
	"strings"
)

// trigger says which detectors a string needs: the prefilter pass sets a bit where the cheapest
// sign of a format occurs (a digit run long enough, an '@', a keyword), and only the detectors
// whose bits are set run on that string.
type trigger uint32

const (
	tEmail trigger = 1 << iota
	tCard
	tSSN
	tPhone
	tIBAN
	tJWT
	tBearer
	tPEM
	tURLCred
	tKeyValue
	tSecret
	tPattern
	tPrefix // a well-known secret prefix (prefix.go)
	tName   // person_name: acts by field name (names.go), never set by the prefilter
)

// hit is one prefilter event at byte pos of the scanned text: bits, and for a keyword hit the
// keyword's index.
type hit struct {
	pos   int32
	state uint16
	bits  trigger
}

// byte classes for the digit-run and letter tests of the prefilter.
const (
	bDigit uint8 = 1 << iota
	bCardSep
	bSSNSep
	bPhoneSep
	bUpper
	bAt
	bPlus
)

var byteKind = func() (t [256]uint8) {
	for c := '0'; c <= '9'; c++ {
		t[c] |= bDigit
	}
	t[' '] |= bCardSep | bPhoneSep
	t['-'] |= bCardSep | bSSNSep | bPhoneSep
	for _, c := range ".()" {
		t[c] |= bPhoneSep
	}
	t['+'] |= bPhoneSep | bPlus
	for c := 'A'; c <= 'Z'; c++ {
		t[c] |= bUpper
	}
	t['@'] |= bAt
	return t
}()

// Digit counts at which a run may hold a value: 13 for a card, 9 for an SSN, 10 for a phone
// number written without a plus, 8 with one (E.164's shortest).
const (
	cardDigits    = 13
	ssnDigits     = 9
	phoneDigits   = 10
	e164MinDigits = 8
	// minScanLen: no detector finds anything in a shorter string (the shortest are "cvv:1",
	// "ssn=1" and "a@b.co").
	minScanLen = 5
)

// matcher finds keywords (gitleaks' and the detectors') in the same loop as the digit-run tests:
// one pass over a string. Each position's last three case-folded bytes form a rolling 18-bit
// code, tested against a bitset of the keywords' first three bytes (a two-byte keyword sets the
// codes of its two bytes followed by any third); only on a set bit are the keywords starting
// there compared, found by the rank of the bit. Unlike an automaton, the tests of successive
// bytes do not depend on each other, and the tables fit in the L1 and L2 caches.
type matcher struct {
	tri    [1 << 18 / 64]uint64
	rank   [1 << 18 / 64]uint16 // set bits in tri before each word
	lists  [][]int32            // by rank: the keywords starting with that code
	short  []int32              // two-byte keywords, for the string's last two bytes
	kwInfo []keyword
}

type keyword struct {
	text  string // lower case
	bits  trigger
	rules []int32 // gitleaks rules, for tSecret
	pats  uint64  // the policy's patterns, for tPattern
	pfx   uint64  // prefixRules, for tPrefix
}

// code6 maps a byte, case-folded, to 6 bits: letters and digits each their own code, the
// punctuation found in keywords its own, everything else 63. Shared codes only let more
// positions through to the comparison.
var code6 = func() (t [256]uint32) {
	for i := range t {
		t[i] = 63
	}
	n := uint32(0)
	for c := 'a'; c <= 'z'; c++ {
		t[c], t[c-'a'+'A'] = n, n
		n++
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = n
		n++
	}
	for _, c := range "-_.~:/=<+ @!$#%" {
		t[c] = n
		n++
	}
	return t
}()

const codeMask = 1<<18 - 1

func newMatcher(kws []keyword) *matcher {
	m := &matcher{kwInfo: kws}
	byCode := map[uint32][]int32{}
	for id, k := range kws {
		switch {
		case len(k.text) >= 3:
			c := code6[k.text[0]]<<12 | code6[k.text[1]]<<6 | code6[k.text[2]]
			byCode[c] = append(byCode[c], int32(id))
		case len(k.text) == 2:
			for x := uint32(0); x < 64; x++ {
				c := code6[k.text[0]]<<12 | code6[k.text[1]]<<6 | x
				byCode[c] = append(byCode[c], int32(id))
			}
			m.short = append(m.short, int32(id))
		}
	}
	for c := range byCode {
		m.tri[c/64] |= 1 << (c % 64)
	}
	n := 0
	for w := range m.tri {
		m.rank[w] = uint16(n)
		for b := 0; b < 64; b++ {
			if m.tri[w]&(1<<b) != 0 {
				m.lists = append(m.lists, byCode[uint32(w*64+b)])
				n++
			}
		}
	}
	return m
}

func lowerByte(c byte) byte {
	if c >= 'A' && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// hasFold reports whether s[i:] begins with kw (lower case), ignoring ASCII case.
func hasFold(s string, i int, kw string) bool {
	if i < 0 || len(s)-i < len(kw) {
		return false
	}
	for j := 0; j < len(kw); j++ {
		if lowerByte(s[i+j]) != kw[j] {
			return false
		}
	}
	return true
}

// keywords appends the hits of the keywords whose first three bytes have code, ending at s[i].
func (m *matcher) keywords(s string, i int, code uint32, hits []hit) []hit {
	w := code / 64
	idx := int(m.rank[w]) + bits.OnesCount64(m.tri[w]&(1<<(code%64)-1))
	for _, id := range m.lists[idx] {
		if kw := m.kwInfo[id].text; hasFold(s, i-2, kw) {
			hits = append(hits, hit{pos: int32(i - 2 + len(kw) - 1), state: uint16(id), bits: m.kwInfo[id].bits})
		}
	}
	return hits
}

// scan appends the prefilter hits of s to hits. A keyword hit is at the keyword's last byte and
// names the keyword in state.
func (m *matcher) scan(s string, hits []hit) []hit {
	if len(s) < 2 {
		return hits
	}
	// Keywords: the code of each position's three bytes is computed from the bytes themselves,
	// not rolled from the previous position's, so successive tests do not wait on each other.
	var kind uint8 // every byte kind in s
	kind |= byteKind[s[0]] | byteKind[s[1]]
	for i := 2; i < len(s); i++ {
		code := code6[s[i-2]]<<12 | code6[s[i-1]]<<6 | code6[s[i]]
		kind |= byteKind[s[i]]
		if m.tri[code/64]&(1<<(code%64)) != 0 {
			hits = m.keywords(s, i, code, hits)
		}
	}
	// A two-byte keyword in the last two bytes has no third byte to be found by.
	for _, id := range m.short {
		if hasFold(s, len(s)-2, m.kwInfo[id].text) {
			hits = append(hits, hit{pos: int32(len(s) - 1), state: uint16(id), bits: m.kwInfo[id].bits})
		}
	}
	if kind&(bDigit|bAt|bUpper) == 0 {
		return hits // no number, address or IBAN can be here
	}
	var card, ssn, phone int          // digits in the current run of each format
	var cardGap, ssnGap, phoneGap int // separators in a row
	plus := false                     // the phone run began with '+'
	for i := 0; i < len(s); i++ {
		k := byteKind[s[i]]
		if k == 0 {
			card, ssn, phone, plus = 0, 0, 0, false
			continue
		}
		if k&bDigit != 0 {
			card, ssn, phone = card+1, ssn+1, phone+1
			cardGap, ssnGap, phoneGap = 0, 0, 0
			var b trigger
			if card == cardDigits {
				b |= tCard
			}
			if ssn == ssnDigits {
				b |= tSSN
			}
			if phone == phoneDigits || plus && phone == e164MinDigits {
				b |= tPhone
			}
			if b != 0 {
				hits = append(hits, hit{pos: int32(i), bits: b})
			}
			continue
		}
		// A separator may stand between digits, at most two in a row; anything else ends a run.
		if k&bCardSep != 0 && cardGap < 2 {
			cardGap++
		} else {
			card, cardGap = 0, 0
		}
		if k&bSSNSep != 0 && ssnGap < 1 {
			ssnGap++
		} else {
			ssn, ssnGap = 0, 0
		}
		if k&bPhoneSep != 0 && phoneGap < 2 {
			phoneGap++
			if k&bPlus != 0 && phone == 0 {
				plus = true
			}
		} else {
			phone, phoneGap, plus = 0, 0, false
		}
		switch {
		case k&bAt != 0:
			hits = append(hits, hit{pos: int32(i), bits: tEmail})
		case k&bUpper != 0 && i+3 < len(s) && byteKind[s[i+1]]&bUpper != 0 && byteKind[s[i+2]]&bDigit != 0 && byteKind[s[i+3]]&bDigit != 0:
			hits = append(hits, hit{pos: int32(i), bits: tIBAN})
		}
	}
	return hits
}

// match is one detected value inside a string, with what to do to it.
type match struct {
	start, end int
	kind       string
	act        Action
}

// find appends the detected values of s to ms. hits are the prefilter hits inside s; base is
// the offset of s in the text they were found in.
func (r *Redactor) find(s string, hits []hit, base int, ms []match) []match {
	var on trigger
	for _, h := range hits {
		on |= h.bits
	}
	bits := on & r.enabled
	if r.always != 0 {
		ms = r.findPatterns(ms, s, r.always)
	}
	if bits == 0 {
		return ms
	}
	if bits&tPEM != 0 {
		ms = r.findRegex(ms, s, "pem_private_key", pemRe, 0, nil)
	}
	if bits&tJWT != 0 {
		ms = r.findRegex(ms, s, "jwt", jwtRe, 0, nil)
	}
	if bits&tBearer != 0 {
		ms = r.findRegex(ms, s, "bearer_token", bearerRe, 1, validBearer)
	}
	if bits&tURLCred != 0 {
		ms = r.findURLCreds(ms, s)
	}
	if bits&tCard != 0 {
		ms = r.findCards(ms, s)
	}
	if bits&tSSN != 0 {
		ms = r.findSSNs(ms, s)
	}
	if bits&tIBAN != 0 {
		ms = r.findIBANs(ms, s)
	}
	if bits&tEmail != 0 {
		ms = r.findEmails(ms, s)
	}
	if bits&tPhone != 0 {
		ms = r.findPhones(ms, s, hits, base)
	}
	if bits&tPattern != 0 {
		var pats uint64
		for _, h := range hits {
			if h.bits&tPattern != 0 {
				pats |= r.m.kwInfo[h.state].pats
			}
		}
		ms = r.findPatterns(ms, s, pats&^r.always)
	}
	pfxFrom, pfxTo := len(ms), len(ms)
	if bits&tPrefix != 0 {
		// Ahead of gitleaks' exact rules, which name the kind where they match too (below).
		ms = r.findPrefixes(ms, s, hits, base)
		pfxTo = len(ms)
	}
	if bits&(tKeyValue|tSecret) != 0 {
		seen := r.disabled // gitleaks rules already run on s, or turned off by the policy
		kvUntil := 0       // the end of the last name=value found: keywords inside it are its value
		kv := kvScan{nl: span{-1, 0}, semi: span{-1, 0}, tok: span{-1, 0}, trimFrom: -1}
		var wins []ruleWindow
		for _, h := range hits {
			if h.bits&(tKeyValue|tSecret) == 0 {
				continue
			}
			kw := &r.m.kwInfo[h.state]
			if end := int(h.pos) + 1 - base; kw.bits&tKeyValue != 0 && bits&tKeyValue != 0 && end-len(kw.text) >= kvUntil {
				n := len(ms)
				ms = r.findKeyValue(ms, s, end-len(kw.text), end, &kv)
				if len(ms) > n {
					kvUntil = ms[len(ms)-1].end
				}
			}
			if kw.bits&tSecret != 0 && bits&tSecret != 0 {
				end := int(h.pos) + 1 - base
				for _, ri := range kw.rules {
					if seen[ri/64]&(1<<(ri%64)) != 0 {
						continue
					}
					rule := &r.secrets.rules[ri]
					from, to := 0, len(s)
					if rule.maxLen >= 0 && len(s) > 2*rule.maxLen+2*windowSlack {
						// The keyword lies inside any match: the match starts at most maxLen
						// before the keyword's end and ends at most maxLen after its start.
						from, to = windowAround(s, end-rule.maxLen, end-len(kw.text)+rule.maxLen)
					}
					if from == 0 && to == len(s) {
						seen[ri/64] |= 1 << (ri % 64) // run once on the whole string
					} else if len(wins) > 0 && wins[len(wins)-1].rule == ri && wins[len(wins)-1].to >= from {
						wins[len(wins)-1].to = max(wins[len(wins)-1].to, to) // overlaps the last window
						continue
					}
					wins = append(wins, ruleWindow{ri, from, to})
				}
			}
		}
		exact := len(ms)
		ms = r.runWindows(ms, s, wins)
		if pfxTo > pfxFrom {
			nameByExact(ms[pfxFrom:pfxTo], ms[exact:])
		}
	}
	return ms
}

// nameByExact gives a prefix match that an exact rule's match overlaps the rule's id and action:
// the two merge into one replacement (replace), which then names the vendor's format.
func nameByExact(prefixed, exact []match) {
	for i := range prefixed {
		for _, e := range exact {
			if e.start < prefixed[i].end && prefixed[i].start < e.end {
				prefixed[i].kind, prefixed[i].act = e.kind, e.act
				break
			}
		}
	}
}

// ruleWindow is a part of a string one gitleaks rule runs on.
type ruleWindow struct {
	rule     int32
	from, to int
}

// windowSlack is how far a window may grow to reach a delimiter.
const windowSlack = 256

func delimiter(c byte) bool {
	switch c {
	case ' ', '\t', '\r', '\n', '"', '\'', '`', ',', ';', '<', '>', '(', ')', '[', ']', '{', '}':
		return true
	}
	return false
}

// windowAround returns s[from:to] grown to start and end at delimiters (or the ends of s), so the
// regex sees the left and right context it would see in s. When no delimiter is near, it returns
// the whole string.
func windowAround(s string, from, to int) (int, int) {
	from, to = max(from, 0), min(to, len(s))
	for lim := max(from-windowSlack, 0); from > 0 && !delimiter(s[from-1]); from-- {
		if from == lim {
			return 0, len(s)
		}
	}
	for lim := min(to+windowSlack, len(s)); to < len(s) && !delimiter(s[to]); to++ {
		if to == lim {
			return 0, len(s)
		}
	}
	return from, to
}

// runWindows runs each rule on its windows, merged; a rule that runs on the whole string runs
// only there.
func (r *Redactor) runWindows(ms []match, s string, wins []ruleWindow) []match {
	if len(wins) > 1 {
		slices.SortFunc(wins, func(a, b ruleWindow) int {
			if a.rule != b.rule {
				return int(a.rule - b.rule)
			}
			return a.from - b.from
		})
	}
	for i := 0; i < len(wins); {
		w := wins[i]
		j := i + 1
		for ; j < len(wins) && wins[j].rule == w.rule; j++ {
			if w.from == 0 && w.to == len(s) {
				continue // the whole string: the other windows are inside it
			}
			if wins[j].from == 0 && wins[j].to == len(s) {
				w = wins[j]
				continue
			}
			if wins[j].from <= w.to {
				w.to = max(w.to, wins[j].to)
				continue
			}
			ms = r.secrets.rules[w.rule].find(ms, s, w.from, w.to, r.secrets, r.secretAction)
			w = wins[j]
		}
		ms = r.secrets.rules[w.rule].find(ms, s, w.from, w.to, r.secrets, r.secretAction)
		i = j
	}
	return ms
}

// findPatterns runs the policy's patterns in the set pats.
func (r *Redactor) findPatterns(ms []match, s string, pats uint64) []match {
	for i, p := range r.p.Patterns {
		if pats&(1<<i) == 0 {
			continue
		}
		for _, loc := range p.Regex.FindAllStringSubmatchIndex(s, -1) {
			a, b := loc[0], loc[1]
			if len(loc) > 2 && loc[2] >= 0 {
				a, b = loc[2], loc[3]
			}
			if a < b {
				ms = append(ms, match{a, b, p.Name, p.Action})
			}
		}
	}
	return ms
}

// wordByte reports whether c continues an identifier-like token, for boundaries Go's regexp
// cannot express (it has no look-behind). A byte beyond ASCII counts: it is part of a character
// that wordBefore and wordAfter judge whole.
func wordByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '_' || c >= 0x80
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// replace returns s with the matches applied (longest first at each start, overlaps merged),
// recording each at path.
func (r *Redactor) replace(s string, ms []match, path []byte, red *[]Redaction) string {
	if len(ms) == 0 {
		return s
	}
	if len(ms) > 1 {
		slices.SortFunc(ms, func(a, b match) int {
			if a.start != b.start {
				return a.start - b.start
			}
			if a.end != b.end {
				return b.end - a.end
			}
			// Of two matches of one span, the one that replaces the whole value goes first.
			return keepsText(a.act) - keepsText(b.act)
		})
	}
	var b strings.Builder
	b.Grow(len(s) + 32)
	last := 0
	for i := 0; i < len(ms); {
		// Overlapping matches merge into the first (the longest at the leftmost start), so no
		// part of either value survives.
		m, j := ms[i], i+1
		for ; j < len(ms) && ms[j].start < m.end; j++ {
			m.end = max(m.end, ms[j].end)
		}
		b.WriteString(s[last:m.start])
		text := s[m.start:m.end]
		if keepsText(m.act) == 1 && j > i+1 {
			// truncate and keep show the text: the values found inside it go first.
			inner := ms[i+1 : j]
			for k := range inner {
				inner[k].start -= m.start
				inner[k].end -= m.start
			}
			text = r.replace(text, inner, path, red)
		}
		b.WriteString(r.apply(m.act, m.kind, text))
		*red = append(*red, Redaction{Path: string(path), Kind: m.kind, Action: m.act.String()})
		last, i = m.end, j
	}
	b.WriteString(s[last:])
	return b.String()
}

// keepsText is 1 for the actions that keep some of a value's text (truncate, keep), else 0.
func keepsText(a Action) int {
	if a.Kind == "truncate" || a.Kind == "keep" {
		return 1
	}
	return 0
}
