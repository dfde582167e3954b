package redact

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// The value detectors this package keeps itself: PII formats, and the token shapes (JWT, bearer,
// PEM, credentials in URLs, "name=value" with a key-rule name) that belong to no one service.
// Service-specific API key formats come from gitleaks (secrets.go).
var (
	pemRe    = regexp.MustCompile(`-----BEGIN[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?(?:-----END[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\z)`)
	jwtRe    = regexp.MustCompile(`eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]*`)
	bearerRe = regexp.MustCompile(`(?i)\bbearer\s+([A-Za-z0-9._~+/-]+=*)`)
	// The password of scheme://user:password@host: the user may be empty (redis://:password@host),
	// the password runs to the last '@' before the path (p@ss@host: an unescaped '@' is common).
	urlCredRe = regexp.MustCompile(`[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@"'<>]*:([^/\s"'<>]+)@`)
	// International numbers with a plus (E.164 and grouped forms), and NANP numbers in their
	// usual written forms; both are validated by digit count. Unseparated digits without a plus
	// are left alone: they are ids, amounts and timestamps far more often than phone numbers.
	phoneRe = regexp.MustCompile(`\+[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\))?(?:[ .-]?\d{1,5}){1,6}|(?:\b1[ .-]?)?(?:\([2-9]\d{2}\) ?|\b[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}`)
	ibanRe  = regexp.MustCompile(`[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?`)
)

// detectorKinds are the kinds a policy may name under detectors, with the prefilter bit of each.
var detectorKinds = map[string]trigger{
	"credit_card": tCard, "ssn": tSSN, "email": tEmail, "phone": tPhone, "iban": tIBAN, "jwt": tJWT,
	"bearer_token": tBearer, "pem_private_key": tPEM, "url_credentials": tURLCred, "key_value": tKeyValue,
	secretPrefixKind: tPrefix, personNameKind: tName,
}

// bounded reports whether s[a:b] stands alone: no word character (wordBefore), '-' or '/' just
// before, and no word character (or '-', '.', '/' leading on to one) just after. So
// ORD-123-45-6789 and 555-123-4567-89 are not an SSN and a phone number, while a number written
// next to CJK text, typographic quotes or a currency sign is.
func bounded(s string, a, b int) bool { return leftBound(s, a) && rightBound(s, b) }

func leftBound(s string, a int) bool {
	if a == 0 {
		return true
	}
	c := s[a-1]
	return !wordBefore(s, a) && c != '-' && c != '/'
}

func rightBound(s string, b int) bool {
	if b >= len(s) {
		return true
	}
	c := s[b]
	if wordAfter(s, b) {
		return false
	}
	return !((c == '-' || c == '.' || c == '/') && wordAfter(s, b+1))
}

// wordRune reports whether a character beyond ASCII continues a word the way an ASCII letter
// does: a letter of a script with case (Latin, Greek, Cyrillic, ...) or a digit. Letters of
// scripts written without spaces (CJK), punctuation, symbols, spaces and invalid bytes do not:
// "卡号4111…" and "“4111…”" hold a card number, "réf4111…" does not.
func wordRune(r rune) bool {
	return r != utf8.RuneError && (unicode.IsLower(r) || unicode.IsUpper(r) || unicode.IsTitle(r) || unicode.IsDigit(r))
}

// wordBefore reports whether the character that ends at s[i-1] continues a word.
func wordBefore(s string, i int) bool {
	if i <= 0 || i > len(s) {
		return false
	}
	if c := s[i-1]; c < utf8.RuneSelf {
		return wordByte(c)
	}
	r, _ := utf8.DecodeLastRuneInString(s[:i])
	return wordRune(r)
}

// wordAfter reports whether the character that starts at s[i] continues a word.
func wordAfter(s string, i int) bool {
	if i < 0 || i >= len(s) {
		return false
	}
	if c := s[i]; c < utf8.RuneSelf {
		return wordByte(c)
	}
	r, _ := utf8.DecodeRuneInString(s[i:])
	return wordRune(r)
}

func (r *Redactor) findRegex(ms []match, s, kind string, re *regexp.Regexp, group int, valid func(string) bool) []match {
	act := r.detAct[kind]
	for _, loc := range re.FindAllStringSubmatchIndex(s, -1) {
		a, b := loc[2*group], loc[2*group+1]
		if a < 0 || a == b {
			continue
		}
		if kind == "jwt" && !bounded(s, a, b) {
			continue
		}
		if valid != nil && !valid(s[a:b]) {
			continue
		}
		ms = append(ms, match{a, b, kind, act})
	}
	return ms
}

// findCards finds payment card numbers: 13 to 19 digits, in one run or in groups laid out as
// cards are printed (cardLayout) and separated by single spaces or dashes, starting like an
// issuer's number (3-6, or Mastercard's 2221-2720), passing the Luhn check. A millisecond
// timestamp (13 digits starting with 1) or a Luhn-failing number is left alone.
func (r *Redactor) findCards(ms []match, s string) []match {
	var gs, ge []int // digit groups of the current run
	for i := 0; i < len(s); {
		if !isDigit(s[i]) {
			i++
			continue
		}
		// One run: groups joined by a single ' ' or '-'.
		gs, ge = gs[:0], ge[:0]
		j := i
		for {
			st := j
			for j < len(s) && isDigit(s[j]) {
				j++
			}
			gs, ge = append(gs, st), append(ge, j)
			if j+1 < len(s) && (s[j] == ' ' || s[j] == '-') && isDigit(s[j+1]) {
				j++
				continue
			}
			break
		}
		ms = r.cardsInRun(ms, s, gs, ge)
		i = j
	}
	return ms
}

// maxCardGroups is the most groups a printed card number has (4-4-4-4-3).
const maxCardGroups = 5

func (r *Redactor) cardsInRun(ms []match, s string, gs, ge []int) []match {
	for a := 0; a < len(gs); a++ {
		// A card starts the run (not glued to a word on its left, as in ORD-4111...) or follows
		// a space inside it.
		if a == 0 && !leftBound(s, gs[0]) || a > 0 && s[gs[a]-1] != ' ' {
			continue
		}
		for b := min(len(gs)-1, a+maxCardGroups-1); b >= a; b-- {
			// It ends the run, standing alone, or comes before a space inside it.
			if b == len(gs)-1 && !rightBound(s, ge[b]) || b < len(gs)-1 && s[ge[b]] != ' ' {
				continue
			}
			digits := 0
			for g := a; g <= b; g++ {
				digits += ge[g] - gs[g]
			}
			if digits < 13 || digits > 19 || a != b && !cardLayout(gs[a:b+1], ge[a:b+1]) ||
				!cardPrefix(s[gs[a]:ge[b]]) || !luhn(s[gs[a]:ge[b]]) {
				continue
			}
			ms = append(ms, match{gs[a], ge[b], "credit_card", r.detAct["credit_card"]})
			a = b
			break
		}
	}
	return ms
}

// cardLayout reports whether digit groups are laid out as cards are printed: fours with a shorter
// last group (4-4-4-4, 4-4-4-4-3, 4-4-4-1), or Amex and Diners' 4-6-5 and 4-6-4. Phone numbers,
// dates and lists of numbers written next to each other are not.
func cardLayout(gs, ge []int) bool {
	n := len(gs)
	l := func(i int) int { return ge[i] - gs[i] }
	if n == 3 && l(0) == 4 && l(1) == 6 && (l(2) == 5 || l(2) == 4) {
		return true
	}
	for i := 0; i < n-1; i++ {
		if l(i) != 4 {
			return false
		}
	}
	return l(n-1) >= 1 && l(n-1) <= 4
}

// cardPrefix reports whether a number starts like a payment card: 3 (Amex, Diners, JCB), 4
// (Visa), 5 (Mastercard, Maestro), 6 (Discover, UnionPay, Maestro) or 2221-2720 (Mastercard).
func cardPrefix(s string) bool {
	switch s[0] {
	case '3', '4', '5', '6':
		return true
	case '2':
		v := 0
		for i, n := 0, 0; i < len(s) && n < 4; i++ {
			if isDigit(s[i]) {
				v = v*10 + int(s[i]-'0')
				n++
			}
		}
		return v >= 2221 && v <= 2720
	}
	return false
}

// luhn reports whether the digits of s (separators ignored) pass the Luhn check.
func luhn(s string) bool {
	sum, alt := 0, false
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if !isDigit(c) {
			continue
		}
		d := int(c - '0')
		if alt {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
		alt = !alt
	}
	return sum%10 == 0
}

// findSSNs finds US Social Security numbers written ddd-dd-dddd that the SSA could issue: no area
// 000, 666 or 900-999, no group 00, no serial 0000.
func (r *Redactor) findSSNs(ms []match, s string) []match {
	for i := 0; i+11 <= len(s); i++ {
		if s[i+3] != '-' || s[i+6] != '-' {
			continue
		}
		t := s[i : i+11]
		if !allDigits(t[0:3]) || !allDigits(t[4:6]) || !allDigits(t[7:11]) || !bounded(s, i, i+11) {
			continue
		}
		if t[0:3] == "000" || t[0:3] == "666" || t[0] == '9' || t[4:6] == "00" || t[7:11] == "0000" {
			continue
		}
		ms = append(ms, match{i, i + 11, "ssn", r.detAct["ssn"]})
		i += 10
	}
	return ms
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return true
}

// ibanLengths is the length of an IBAN per country (the SWIFT IBAN registry).
var ibanLengths = map[string]int{
	"AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
	"BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29,
	"ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28,
	"HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
	"LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19,
	"MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29,
	"RO": 24, "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28,
	"TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}

// findIBANs finds IBANs of a registered country and length that pass the ISO 13616 mod-97 check.
// The pattern may run on into a following word in capitals; the country's length cuts it.
func (r *Redactor) findIBANs(ms []match, s string) []match {
	for _, loc := range ibanRe.FindAllStringIndex(s, -1) {
		a, b := loc[0], loc[1]
		if wordBefore(s, a) {
			continue
		}
		want, ok := ibanLengths[s[a:a+2]]
		if !ok {
			continue
		}
		n, end := 0, a
		for end < b && n < want {
			if s[end] != ' ' {
				n++
			}
			end++
		}
		if n != want || wordAfter(s, end) || !mod97(s[a:end]) {
			continue
		}
		ms = append(ms, match{a, end, "iban", r.detAct["iban"]})
	}
	return ms
}

func mod97(s string) bool {
	rem := 0
	add := func(c byte) bool {
		switch {
		case isDigit(c):
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			rem = (rem*100 + int(c-'A'+10)) % 97
		case c == ' ':
		default:
			return false
		}
		return true
	}
	// The first four characters move to the end.
	for i := 4; i < len(s); i++ {
		if !add(s[i]) {
			return false
		}
	}
	for i := 0; i < 4; i++ {
		if !add(s[i]) {
			return false
		}
	}
	return rem == 1
}

func emailLocal(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c) || strings.IndexByte("._%+-", c) >= 0
}

func emailDomain(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || isDigit(c) || c == '.' || c == '-'
}

// findEmails finds addresses around each '@': a local part, and a domain of dotted labels ending
// in an alphabetic top-level label of two letters or more. logo@2x.png and git@host are not
// people's addresses and are left alone.
func (r *Redactor) findEmails(ms []match, s string) []match {
	for i := strings.IndexByte(s, '@'); i >= 0; {
		a := i
		for a > 0 {
			if c := s[a-1]; c < utf8.RuneSelf {
				if !emailLocal(c) {
					break
				}
				a--
			} else if r, n := utf8.DecodeLastRuneInString(s[:a]); casedLetter(r) {
				a -= n // josé@, müller@
			} else {
				break
			}
		}
		for a < i && s[a] == '.' {
			a++
		}
		b := i + 1
		for b < len(s) {
			if c := s[b]; c < utf8.RuneSelf {
				if !emailDomain(c) {
					break
				}
				b++
			} else if r, n := utf8.DecodeRuneInString(s[b:]); casedLetter(r) {
				b += n // münchen.de
			} else {
				break
			}
		}
		for b > i+1 && (s[b-1] == '.' || s[b-1] == '-') {
			b--
		}
		if a < i && validDomain(s[i+1:b]) && s[a:i] != "git" && !(b < len(s) && s[b] == '@') && !userinfo(s, a) {
			ms = append(ms, match{a, b, "email", r.detAct["email"]})
		}
		next := strings.IndexByte(s[i+1:], '@')
		if next < 0 {
			break
		}
		i += 1 + next
	}
	return ms
}

// userinfo reports whether what starts at s[a] is the password of scheme://user:password@host,
// or the rest of a password with an '@' in it: a credential (url_credentials), not an address.
func userinfo(s string, a int) bool {
	if a == 0 || s[a-1] != ':' && s[a-1] != '@' {
		return false
	}
	tok := s[max(0, a-256):a] // a scheme and user name fit in this
	tok = tok[strings.LastIndexAny(tok, " \t\n\"'")+1:]
	// In the authority: after "://", before any '/' (https://host/@jane@example.com is a path).
	k := strings.Index(tok, "://")
	return k >= 0 && !strings.Contains(tok[k+3:], "/")
}

// casedLetter reports whether r is a letter of a script with case: the letters beyond ASCII that
// addresses (RFC 6531) and domain names (IDNA) in Latin, Greek or Cyrillic hold. CJK text glued to
// an address is not taken into it.
func casedLetter(r rune) bool {
	return r != utf8.RuneError && (unicode.IsLower(r) || unicode.IsUpper(r) || unicode.IsTitle(r))
}

func validDomain(d string) bool {
	dot := strings.LastIndexByte(d, '.')
	if dot <= 0 || utf8.RuneCountInString(d[dot+1:]) < 2 {
		return false
	}
	for _, r := range d[dot+1:] {
		if r < utf8.RuneSelf && (r|0x20 < 'a' || r|0x20 > 'z') || r >= utf8.RuneSelf && !casedLetter(r) {
			return false
		}
	}
	// Labels are not empty; 2x.png is an image scale, not a domain.
	if strings.Contains(d, "..") || d[0] == '.' || d[0] == '-' {
		return false
	}
	if first, _, _ := strings.Cut(d, "."); len(first) >= 2 && first[len(first)-1] == 'x' && allDigits(first[:len(first)-1]) {
		return false
	}
	return true
}

// findPhones finds phone numbers. The international form runs on over every digit group that
// follows, so a number followed by more digits (a year, a postcode, an SSN) has too many of them
// as a whole: it is cut back, group by group, to the longest part that is a number, preferring a
// cut at a space ("+44 20 7946 0958 2024") to one inside a run of groups.
//
// The regex runs only on the runs of digits and phone separators that the prefilter flagged (hits,
// at pos-base in s), each with one byte of context either side so that \b sees what it sees in
// s: every character a phone number is written with is in such a run, so a number cannot reach
// outside one, and the rest of a long text costs no regex pass.
func (r *Redactor) findPhones(ms []match, s string, hits []hit, base int) []match {
	done := 0 // s[:done] has been searched
	for _, h := range hits {
		p := int(h.pos) - base
		if h.bits&tPhone == 0 || p < done || p >= len(s) {
			continue
		}
		lo, hi := p, p+1
		for lo > 0 && byteKind[s[lo-1]]&(bDigit|bPhoneSep) != 0 {
			lo--
		}
		for hi < len(s) && byteKind[s[hi]]&(bDigit|bPhoneSep) != 0 {
			hi++
		}
		lo, hi = max(lo-1, 0), min(hi+1, len(s))
		ms = r.findPhonesIn(ms, s, lo, hi)
		done = hi
	}
	return ms
}

// findPhonesIn runs the phone regex on s[lo:hi]; what it finds is judged in all of s.
func (r *Redactor) findPhonesIn(ms []match, s string, lo, hi int) []match {
	if !phoneShaped(s[lo:hi]) {
		return ms
	}
	for _, loc := range phoneRe.FindAllStringIndex(s[lo:hi], -1) {
		a, b := loc[0]+lo, loc[1]+lo
		if bounded(s, a, b) && validPhone(s[a:b]) {
			ms = append(ms, match{a, b, "phone", r.detAct["phone"]})
			continue
		}
		if s[a] != '+' || !leftBound(s, a) || phoneDigitCount(s[a:b]) <= 15 {
			continue
		}
		cut := -1
		for b > a {
			for b > a && isDigit(s[b-1]) { // the last group
				b--
			}
			for b > a && !isDigit(s[b-1]) { // and what stands before it
				b--
			}
			if b > a && validPhone(s[a:b]) {
				if s[b] == ' ' {
					cut = b
					break
				}
				if cut < 0 {
					cut = b
				}
			}
		}
		if cut > a {
			ms = append(ms, match{a, cut, "phone", r.detAct["phone"]})
		}
	}
	return ms
}

// phoneShaped reports whether phoneRe could match in s, from what every match of it holds: a
// '+' (international), a '(' (NANP "(415) 555-0134") or, in NANP's other forms, a separator, the
// three digits of the exchange and another separator ("415-555-0134"). Ids and timestamps, the
// usual digit runs, have none, and skip the regex (a backtracking one: most of this detector's
// cost). TestPhoneShaped holds it to the regex.
func phoneShaped(s string) bool {
	if strings.ContainsAny(s, "+(") {
		return true
	}
	for i := 0; i+4 < len(s); i++ {
		if phoneSep(s[i]) && phoneSep(s[i+4]) && isDigit(s[i+1]) && isDigit(s[i+2]) && isDigit(s[i+3]) {
			return true
		}
	}
	return false
}

func phoneSep(c byte) bool { return c == ' ' || c == '.' || c == '-' }

func phoneDigitCount(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) {
			n++
		}
	}
	return n
}

// findURLCreds finds the passwords of scheme://user:password@host. A "password" of digits and a
// query or fragment after a user name is a host's port: https://example.com:8443?to=a@b.io.
func (r *Redactor) findURLCreds(ms []match, s string) []match {
	for _, loc := range urlCredRe.FindAllStringSubmatchIndex(s, -1) {
		a, b := loc[2], loc[3]
		i := a
		for i < b && isDigit(s[i]) {
			i++
		}
		if i > a && i < b && (s[i] == '?' || s[i] == '#') && s[a-2] != '/' {
			continue
		}
		ms = append(ms, match{a, b, "url_credentials", r.detAct["url_credentials"]})
	}
	return ms
}

func validPhone(s string) bool {
	n := phoneDigitCount(s)
	if s[0] == '+' {
		return n >= e164MinDigits && n <= 15
	}
	return n == 10 || n == 11
}

// validBearer: a token after "Bearer" has a digit or a symbol, or is long; "Bearer
// authentication" in prose is not a credential.
func validBearer(s string) bool {
	if len(s) < 8 {
		return false
	}
	if len(s) >= 20 {
		return true
	}
	for i := 0; i < len(s); i++ {
		if isDigit(s[i]) || strings.IndexByte("._~+/-=", s[i]) >= 0 {
			return true
		}
	}
	return false
}

func nameByte(c byte) bool { return wordByte(c) || c == '-' || c == '.' }

// findKeyValue looks at a key-rule keyword found at s[kwStart:kwEnd] in free text: when it ends a
// name that is followed by ':', '=' or '=>' (password=..., "api_key": "...", X-Api-Key: ..., a
// URL's ?token=..., 'api_key' => '...', JSON escaped in a string: \"token\":\"...\"), or a
// command-line flag followed by its argument (--password hunter2), and the name matches a key
// rule, the value gets the rule's action.
func (r *Redactor) findKeyValue(ms []match, s string, kwStart, kwEnd int, kv *kvScan) []match {
	if kwEnd < len(s) && nameByte(s[kwEnd]) {
		return ms
	}
	i := kwStart
	for i > 0 && nameByte(s[i-1]) {
		i--
	}
	if i >= 3 && s[i-3:i] == "://" {
		return ms // scheme://token:secret@host: a user name (url_credentials finds the password)
	}
	// Between the name and the delimiter: closing quotes, escaped or not, a closing bracket
	// (cfg["password"] = ...) and spaces.
	j := kwEnd
	for k := 0; j < len(s) && k < 3; k++ {
		if s[j] == '"' || s[j] == '\'' || s[j] == ' ' || s[j] == ']' {
			j++
		} else if n := backslashes(s, j); n > 0 && j+n < len(s) && (s[j+n] == '"' || s[j+n] == '\'') {
			j += n + 1
		} else {
			break
		}
	}
	var delim byte
	switch {
	case j < len(s) && (s[j] == ':' || s[j] == '='):
		delim = s[j]
		j++
		if j < len(s) && (s[j] == '=' || delim == '=' && s[j] == '>') {
			j++ // :=, ==, =>
		}
	case s[i] == '-' && kwEnd < len(s) && s[kwEnd] == ' ':
		// A flag and its argument: --password hunter2, -token "a b".
		delim, j = ' ', kwEnd
		for j < len(s) && s[j] == ' ' {
			j++
		}
		if j < len(s) && s[j] == '-' {
			return ms // another flag: this one takes no argument
		}
	default:
		return ms
	}
	for j < len(s) && (s[j] == ' ' || s[j] == '\t') {
		j++
	}
	if j >= len(s) {
		return ms
	}
	act, kind, ok := r.keyAction(s[i:kwEnd])
	if !ok || act.Kind == "keep" {
		return ms
	}
	if act.Kind == "drop" { // there is no member to drop in text
		act = Action{Kind: "redact"}
	}
	norm := normalizeKey(kind)
	header := strings.HasSuffix(norm, "authorization") || strings.HasSuffix(norm, "cookie")
	lineEnd := func() int { return kv.next(s, j, "\r\n", &kv.nl) }
	start, end := j, j
	esc := backslashes(s, j) // the value is quoted with \" (JSON in a string, escaped once or more)
	quoted := s[j] == '"' || s[j] == '\'' || esc > 0 && j+esc < len(s) && (s[j+esc] == '"' || s[j+esc] == '\'')
	container := false
	switch {
	case quoted:
		start = j + esc + 1
		end = quotedEnd(s, start, s[j+esc], esc)
	case s[j] == '{' || s[j] == '[':
		// A container under a key rule (JSON that did not parse: cut off, or nested too deep):
		// all of it, to its closing bracket or the end of the text. A template or an earlier
		// redaction is no value (and is judged before a scan that could run to the end).
		if strings.HasPrefix(s[j:], "{{") || strings.HasPrefix(s[j:], "[REDACTED:") {
			return ms
		}
		container = true
		end = containerEnd(s, j)
	case delim == ':' && header:
		end = lineEnd() // a header's value: the rest of the line,
		if q := s[max(i-1, 0)]; i > 0 && (q == '"' || q == '\'') {
			// or of the quoted argument the header is written in ('Cookie: a=1', \"Cookie: a=1\")
			escaped := i >= 2 && s[i-2] == '\\'
			for e := j; e < end; e++ {
				if s[e] == '\\' && e+1 < end && s[e+1] == q && escaped || s[e] == q && !escaped {
					end = e
				} else if s[e] == '\\' {
					e++
				}
			}
		}
	case delim == ':' && r.keys.isPII(norm):
		end = min(lineEnd(), kv.next(s, j, ";|", &kv.semi))
	default:
		end = kv.next(s, end, tokenStops, &kv.tok)
		// Authorization=Bearer <token>: the credential follows the scheme.
		if end < len(s) && s[end] == ' ' && authScheme(s[start:end]) {
			e := end
			for e < len(s) && s[e] == ' ' {
				e++
			}
			if t := tokenEnd(s, e); t > e {
				end = t
			}
		}
	}
	end = kv.trimEnd(s, start, end)
	v := s[start:end]
	if placeholder(v) || container && strings.TrimSpace(v[1:]) == string(closing(v[0])) {
		return ms
	}
	// "token: expired" in prose is no credential, nor "the --token flag"; "token: 9f8e7d",
	// "token=expired" and "--token 9f8e7d" are.
	if (delim == ':' || delim == ' ') && !quoted && !container && !r.keys.isPII(norm) && !credentialLike(v) && !header {
		return ms
	}
	return append(ms, match{start, end, kind, act})
}

// kvScan keeps, across the keyword hits of one string, where the values that run to a line
// break, a ';' or '|', or the end of a token end, and the last value end trimmed, so that a hit
// inside a value judged no credential (a placeholder: token=$A, phone: null) does not scan the
// same stretch again: a long "token=$Atoken=$A…" or line of "phone: null|" stays linear.
type kvScan struct {
	nl, semi, tok    span
	trimFrom, trimTo int // trimEnd(·, ·, trimFrom) was trimTo
}

// span records that the first byte of a set at or after from is at end.
type span struct{ from, end int }

// next returns the index of the first byte of set at or after j (len(s) for none), from *sp when
// it was found from a position at or before j and lies at or after j.
func (kv *kvScan) next(s string, j int, set string, sp *span) int {
	if sp.from < 0 || j < sp.from || j > sp.end {
		sp.from, sp.end = j, len(s)
		if e := strings.IndexAny(s[j:], set); e >= 0 {
			sp.end = j + e
		}
	}
	return sp.end
}

// trimEnd returns end moved back over trailing spaces, tabs and backslashes (the escape of a
// closing quote), not before start.
func (kv *kvScan) trimEnd(s string, start, end int) int {
	if end == kv.trimFrom {
		return max(kv.trimTo, start)
	}
	e := end
	for e > start && (s[e-1] == ' ' || s[e-1] == '\t' || s[e-1] == '\\') {
		e--
	}
	if e == start { // the trimmed run may go on before start: not cached
		return e
	}
	kv.trimFrom, kv.trimTo = end, e
	return e
}

// backslashes counts the backslashes at s[i:].
func backslashes(s string, i int) int {
	n := 0
	for i+n < len(s) && s[i+n] == '\\' {
		n++
	}
	return n
}

// quotedEnd returns where a value quoted with q, itself escaped with esc backslashes, ends: at the
// next q escaped the same way, or at the end of s.
func quotedEnd(s string, start int, q byte, esc int) int {
	if esc == 0 {
		end := start
		for end < len(s) && s[end] != q {
			if s[end] == '\\' {
				end++
			}
			end++
		}
		return min(end, len(s))
	}
	for e := start; e < len(s); e++ {
		k := strings.IndexByte(s[e:], q)
		if k < 0 {
			break
		}
		e += k
		n := 0
		for e-n > start && s[e-n-1] == '\\' {
			n++
		}
		if n == esc {
			return e - esc
		}
	}
	return len(s)
}

// tokenStops end an unquoted value.
const tokenStops = " \t\r\n&;,\"'<>)]}"

// tokenEnd returns where an unquoted value starting at s[i] ends.
func tokenEnd(s string, i int) int {
	if e := strings.IndexAny(s[i:], tokenStops); e >= 0 {
		return i + e
	}
	return len(s)
}

func closing(open byte) byte {
	if open == '{' {
		return '}'
	}
	return ']'
}

// containerEnd returns the end of the JSON object or array starting at s[i] (quoted strings
// skipped), or len(s) when it is not closed.
func containerEnd(s string, i int) int {
	depth := 0
	for ; i < len(s); i++ {
		switch s[i] {
		case '{', '[':
			depth++
		case '}', ']':
			if depth--; depth == 0 {
				return i + 1
			}
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		}
	}
	return len(s)
}

// authScheme reports whether v is an HTTP authentication scheme, the word before the credential
// in an Authorization value.
func authScheme(v string) bool {
	switch strings.ToLower(v) {
	case "bearer", "basic", "digest", "token", "negotiate", "ntlm", "bot", "apikey", "dpop", "hoba", "mutual",
		"aws4-hmac-sha256", "sharedkey", "sso-key":
		return true
	}
	return false
}

// placeholder reports whether v stands for no value: empty, null, a mask (****, xxxx) or an
// earlier redaction, so sanitizing twice changes nothing.
func placeholder(v string) bool {
	if len(v) <= len("<redacted>") {
		switch strings.ToLower(v) {
		case "", "null", "none", "nil", "true", "false", "undefined", "<redacted>", "redacted":
			return true
		}
	}
	if strings.HasPrefix(v, "[REDACTED:") || strings.HasPrefix(v, "pii:") {
		return true
	}
	// A reference, not a value: $VAR, ${VAR}, %VAR%, {{ var }}, <your-key>.
	if len(v) >= 2 && (v[0] == '$' && (v[1] == '{' || v[1] == '_' || v[1] >= 'A' && v[1] <= 'Z' || v[1] >= 'a' && v[1] <= 'z') ||
		v[0] == '%' && v[len(v)-1] == '%' || strings.HasPrefix(v, "{{") || v[0] == '<' && v[len(v)-1] == '>') {
		return true
	}
	// A mask: the first character outside it ends the look (no scan of a long value twice).
	return strings.IndexFunc(v, func(c rune) bool { return c != '*' && c != 'x' && c != 'X' && c != '•' }) < 0
}

func credentialLike(v string) bool {
	if len(v) >= 12 {
		return true
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; !(c >= 'a' && c <= 'z') {
			return true
		}
	}
	return false
}
