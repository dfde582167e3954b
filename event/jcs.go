package event

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxDepth is the deepest nesting of arrays and objects that Canonicalize accepts.
const MaxDepth = 128

// SyntaxError is malformed JSON, or JSON that I-JSON (RFC 7493, which RFC 8785 requires) forbids:
// invalid UTF-8, a lone surrogate, a duplicate member name, a number that overflows a double.
type SyntaxError struct {
	Offset int // byte offset into the input where the problem was found
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// Canonicalize returns the RFC 8785 (JCS) canonical form of one JSON value: members sorted by
// their UTF-16 code units, no insignificant white space, numbers in ECMAScript form, strings with
// the minimal escapes. Numbers are IEEE 754 doubles, as the RFC requires: integers beyond 2^53 lose
// precision, so identifiers that large belong in strings.
func Canonicalize(data []byte) ([]byte, error) {
	return AppendCanonical(make([]byte, 0, len(data)), data)
}

// AppendCanonical appends the canonical form of data to dst.
func AppendCanonical(dst, data []byte) ([]byte, error) {
	p := jcsParser{in: data}
	p.skipSpace()
	out, err := p.value(dst, 0)
	if err != nil {
		return dst, err
	}
	p.skipSpace()
	if p.pos != len(p.in) {
		return dst, p.errorf("unexpected data after the JSON value")
	}
	return out, nil
}

type jcsParser struct {
	in  []byte
	pos int
	key []byte // scratch for decoding member names
}

func (p *jcsParser) errorf(format string, args ...any) error {
	return &SyntaxError{Offset: p.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *jcsParser) skipSpace() {
	for p.pos < len(p.in) {
		switch p.in[p.pos] {
		case ' ', '\t', '\n', '\r':
			p.pos++
		default:
			return
		}
	}
}

func (p *jcsParser) value(dst []byte, depth int) ([]byte, error) {
	if p.pos >= len(p.in) {
		return dst, p.errorf("unexpected end of input")
	}
	switch c := p.in[p.pos]; {
	case c == '{':
		return p.object(dst, depth+1)
	case c == '[':
		return p.array(dst, depth+1)
	case c == '"':
		s, err := p.str(p.key[:0])
		if err != nil {
			return dst, err
		}
		p.key = s
		return appendJCSString(dst, s), nil
	case c == 't':
		return p.literal(dst, "true")
	case c == 'f':
		return p.literal(dst, "false")
	case c == 'n':
		return p.literal(dst, "null")
	case c == '-' || (c >= '0' && c <= '9'):
		return p.number(dst)
	default:
		return dst, p.errorf("unexpected character %q", c)
	}
}

func (p *jcsParser) literal(dst []byte, lit string) ([]byte, error) {
	if len(p.in)-p.pos < len(lit) || string(p.in[p.pos:p.pos+len(lit)]) != lit {
		return dst, p.errorf("invalid literal")
	}
	p.pos += len(lit)
	return append(dst, lit...), nil
}

type member struct {
	key        string
	start, end int // the canonical `"key":value` bytes in the object's scratch area
}

func (p *jcsParser) object(dst []byte, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, p.errorf("nesting deeper than %d", MaxDepth)
	}
	p.pos++ // '{'
	base := len(dst)
	dst = append(dst, '{')
	var members []member
	sorted := true
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == '}' {
		p.pos++
		return append(dst, '}'), nil
	}
	for {
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != '"' {
			return dst, p.errorf("expected a member name")
		}
		keyPos := p.pos
		k, err := p.str(p.key[:0])
		if err != nil {
			return dst, err
		}
		p.key = k
		key := string(k)
		p.skipSpace()
		if p.pos >= len(p.in) || p.in[p.pos] != ':' {
			return dst, p.errorf("expected ':' after member name")
		}
		p.pos++
		p.skipSpace()
		if len(members) > 0 {
			dst = append(dst, ',')
		}
		start := len(dst)
		dst = appendJCSString(dst, key)
		dst = append(dst, ':')
		if dst, err = p.value(dst, depth); err != nil {
			return dst, err
		}
		if n := len(members); n > 0 {
			switch c := compareUTF16(members[n-1].key, key); {
			case c == 0:
				return dst, &SyntaxError{Offset: keyPos, Msg: fmt.Sprintf("duplicate member name %q", key)}
			case c > 0:
				sorted = false
			}
		}
		members = append(members, member{key: key, start: start, end: len(dst)})
		p.skipSpace()
		if p.pos >= len(p.in) {
			return dst, p.errorf("unexpected end of input in object")
		}
		if p.in[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.in[p.pos] != '}' {
			return dst, p.errorf("expected ',' or '}' in object")
		}
		p.pos++
		break
	}
	if sorted { // the common case: members were written in order already
		return append(dst, '}'), nil
	}
	sort.SliceStable(members, func(i, j int) bool { return compareUTF16(members[i].key, members[j].key) < 0 })
	for i := 1; i < len(members); i++ {
		if members[i-1].key == members[i].key {
			return dst, p.errorf("duplicate member name %q", members[i].key)
		}
	}
	scratch := append([]byte(nil), dst[base:]...)
	dst = append(dst[:base], '{')
	for i, m := range members {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(dst, scratch[m.start-base:m.end-base]...)
	}
	return append(dst, '}'), nil
}

func (p *jcsParser) array(dst []byte, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, p.errorf("nesting deeper than %d", MaxDepth)
	}
	p.pos++ // '['
	dst = append(dst, '[')
	p.skipSpace()
	if p.pos < len(p.in) && p.in[p.pos] == ']' {
		p.pos++
		return append(dst, ']'), nil
	}
	for first := true; ; first = false {
		if !first {
			dst = append(dst, ',')
		}
		p.skipSpace()
		var err error
		if dst, err = p.value(dst, depth); err != nil {
			return dst, err
		}
		p.skipSpace()
		if p.pos >= len(p.in) {
			return dst, p.errorf("unexpected end of input in array")
		}
		if p.in[p.pos] == ',' {
			p.pos++
			continue
		}
		if p.in[p.pos] != ']' {
			return dst, p.errorf("expected ',' or ']' in array")
		}
		p.pos++
		return append(dst, ']'), nil
	}
}

// str decodes the string at p.pos (which is '"') into buf and returns it.
func (p *jcsParser) str(buf []byte) ([]byte, error) {
	p.pos++ // opening quote
	for {
		// Copy the run of plain bytes at once.
		start := p.pos
		for p.pos < len(p.in) {
			c := p.in[p.pos]
			if c == '"' || c == '\\' || c < 0x20 || c >= 0x80 {
				break
			}
			p.pos++
		}
		buf = append(buf, p.in[start:p.pos]...)
		if p.pos >= len(p.in) {
			return buf, p.errorf("unterminated string")
		}
		c := p.in[p.pos]
		switch {
		case c == '"':
			p.pos++
			return buf, nil
		case c < 0x20:
			return buf, p.errorf("control character %#02x in string", c)
		case c >= 0x80:
			r, size := utf8.DecodeRune(p.in[p.pos:])
			if r == utf8.RuneError && size <= 1 {
				return buf, p.errorf("invalid UTF-8 in string")
			}
			buf = append(buf, p.in[p.pos:p.pos+size]...)
			p.pos += size
		default: // backslash
			if p.pos+1 >= len(p.in) {
				return buf, p.errorf("unterminated escape")
			}
			e := p.in[p.pos+1]
			p.pos += 2
			switch e {
			case '"', '\\', '/':
				buf = append(buf, e)
			case 'b':
				buf = append(buf, '\b')
			case 'f':
				buf = append(buf, '\f')
			case 'n':
				buf = append(buf, '\n')
			case 'r':
				buf = append(buf, '\r')
			case 't':
				buf = append(buf, '\t')
			case 'u':
				r, err := p.hex4()
				if err != nil {
					return buf, err
				}
				if utf16.IsSurrogate(r) {
					if r >= 0xDC00 || p.pos+1 >= len(p.in) || p.in[p.pos] != '\\' || p.in[p.pos+1] != 'u' {
						return buf, p.errorf("lone surrogate \\u%04x", r)
					}
					p.pos += 2
					r2, err := p.hex4()
					if err != nil {
						return buf, err
					}
					if r = utf16.DecodeRune(r, r2); r == utf8.RuneError {
						return buf, p.errorf("invalid surrogate pair")
					}
				}
				buf = utf8.AppendRune(buf, r)
			default:
				return buf, p.errorf("invalid escape \\%c", e)
			}
		}
	}
}

func (p *jcsParser) hex4() (rune, error) {
	if len(p.in)-p.pos < 4 {
		return 0, p.errorf("short \\u escape")
	}
	var r rune
	for _, c := range p.in[p.pos : p.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, p.errorf("invalid \\u escape")
		}
	}
	p.pos += 4
	return r, nil
}

func (p *jcsParser) number(dst []byte) ([]byte, error) {
	start := p.pos
	if p.in[p.pos] == '-' {
		p.pos++
	}
	digits := func() int {
		n := 0
		for p.pos < len(p.in) && p.in[p.pos] >= '0' && p.in[p.pos] <= '9' {
			p.pos++
			n++
		}
		return n
	}
	intStart := p.pos
	if n := digits(); n == 0 {
		return dst, p.errorf("invalid number")
	} else if n > 1 && p.in[intStart] == '0' {
		return dst, &SyntaxError{Offset: intStart, Msg: "number with a leading zero"}
	}
	if p.pos < len(p.in) && p.in[p.pos] == '.' {
		p.pos++
		if digits() == 0 {
			return dst, p.errorf("invalid number: no digits after '.'")
		}
	}
	if p.pos < len(p.in) && (p.in[p.pos] == 'e' || p.in[p.pos] == 'E') {
		p.pos++
		if p.pos < len(p.in) && (p.in[p.pos] == '+' || p.in[p.pos] == '-') {
			p.pos++
		}
		if digits() == 0 {
			return dst, p.errorf("invalid number: no digits in exponent")
		}
	}
	f, err := strconv.ParseFloat(string(p.in[start:p.pos]), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsInf(f, 0) {
		return dst, &SyntaxError{Offset: start, Msg: "number out of range of an IEEE 754 double"}
	}
	return AppendNumber(dst, f), nil
}

// AppendNumber appends f in the ECMAScript Number.prototype.toString form that RFC 8785 requires.
// f must be finite.
func AppendNumber(dst []byte, f float64) []byte {
	if f == 0 {
		return append(dst, '0') // also -0
	}
	if f < 0 {
		dst = append(dst, '-')
		f = -f
	}
	if f < 1e21 && f == math.Trunc(f) {
		return strconv.AppendFloat(dst, f, 'f', -1, 64)
	}
	// Shortest round-tripping digits and the decimal exponent, from the 'e' form d.ddde±x.
	var buf [32]byte
	e := strconv.AppendFloat(buf[:0], f, 'e', -1, 64)
	mant, exp := e, 0
	for i, c := range e {
		if c == 'e' {
			mant = e[:i]
			exp, _ = strconv.Atoi(string(e[i+1:]))
			break
		}
	}
	var ds [24]byte
	d := ds[:0]
	for _, c := range mant {
		if c != '.' {
			d = append(d, c)
		}
	}
	k, n := len(d), exp+1 // value = 0.d × 10^n
	switch {
	case k <= n && n <= 21:
		dst = append(dst, d...)
		for i := 0; i < n-k; i++ {
			dst = append(dst, '0')
		}
	case 0 < n && n <= 21:
		dst = append(dst, d[:n]...)
		dst = append(dst, '.')
		dst = append(dst, d[n:]...)
	case -6 < n && n <= 0:
		dst = append(dst, '0', '.')
		for i := 0; i < -n; i++ {
			dst = append(dst, '0')
		}
		dst = append(dst, d...)
	default:
		dst = append(dst, d[0])
		if k > 1 {
			dst = append(dst, '.')
			dst = append(dst, d[1:]...)
		}
		dst = append(dst, 'e')
		if n-1 >= 0 {
			dst = append(dst, '+')
		}
		dst = strconv.AppendInt(dst, int64(n-1), 10)
	}
	return dst
}

// AppendString appends s as a JSON string with RFC 8785's escapes (so it is already canonical),
// any invalid UTF-8 replaced by U+FFFD. Rewriters of JSON (package redact) use it for the strings
// they replace, so the project has one string encoder.
func AppendString(dst []byte, s string) []byte {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	return appendJCSString(dst, s)
}

// appendJCSString appends s as a JSON string with only the escapes RFC 8785 prescribes.
// s must be valid UTF-8.
func appendJCSString[T string | []byte](dst []byte, s T) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		dst = append(dst, s[start:i]...)
		switch c {
		case '"', '\\':
			dst = append(dst, '\\', c)
		case '\b':
			dst = append(dst, '\\', 'b')
		case '\f':
			dst = append(dst, '\\', 'f')
		case '\n':
			dst = append(dst, '\\', 'n')
		case '\r':
			dst = append(dst, '\\', 'r')
		case '\t':
			dst = append(dst, '\\', 't')
		default:
			dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
		}
		start = i + 1
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}

// compareUTF16 orders strings by their UTF-16 code units, as RFC 8785 sorts member names.
func compareUTF16(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i] < 0x80 && b[i] < 0x80 {
				return int(a[i]) - int(b[i])
			}
			for i > 0 && !utf8.RuneStart(a[i]) {
				i-- // the prefix is shared, so this is a rune start in both
			}
			return compareUTF16Slow(a[i:], b[i:])
		}
	}
	return len(a) - len(b)
}

func compareUTF16Slow(a, b string) int {
	ua := utf16.Encode([]rune(a))
	ub := utf16.Encode([]rune(b))
	for i := 0; i < len(ua) && i < len(ub); i++ {
		if ua[i] != ub[i] {
			return int(ua[i]) - int(ub[i])
		}
	}
	return len(ua) - len(ub)
}
