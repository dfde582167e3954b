package event

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/agentaudit/agentaudit/internal/jsontok"
)

// MaxDepth is the deepest nesting of arrays and objects that Canonicalize accepts.
const MaxDepth = 128

// SyntaxError is malformed JSON, or JSON that I-JSON (RFC 7493, which RFC 8785 requires) forbids:
// invalid UTF-8, a lone surrogate, a duplicate member name, a number that overflows a double.
// Offset is the byte offset into the input where the problem was found, Msg says what it is.
type SyntaxError = jsontok.SyntaxError

// Canonicalize returns the RFC 8785 (JCS) canonical form of one JSON value: members sorted by
// their UTF-16 code units, no insignificant white space, numbers in ECMAScript form, strings with
// the minimal escapes. Numbers are IEEE 754 doubles, as the RFC requires: integers beyond 2^53 lose
// precision, so identifiers that large belong in strings.
func Canonicalize(data []byte) ([]byte, error) {
	return AppendCanonical(make([]byte, 0, len(data)), data)
}

// AppendCanonical appends the canonical form of data to dst.
func AppendCanonical(dst, data []byte) ([]byte, error) {
	p := newParser(data)
	p.SkipSpace()
	out, err := p.value(dst, 0)
	if err != nil {
		return dst, err
	}
	if err := p.End(); err != nil {
		return dst, err
	}
	return out, nil
}

// jcsParser reads I-JSON with the shared tokenizer; the structure, the checks beyond single
// tokens (duplicate names, depth, a double's range) and the canonical output are its own.
type jcsParser struct {
	jsontok.Scanner
	key []byte // scratch for decoding strings with escapes
	raw []byte // decode: the canonical payloads of one event, end to end (see field)
	// The member names and members of the objects being read, innermost last: each object
	// takes the tails past what enclosing objects hold and cuts them back when done, so one
	// value's objects allocate no name strings or member lists of their own.
	names   []byte
	members []member
}

func newParser(data []byte) jcsParser {
	return jcsParser{Scanner: jsontok.Scanner{In: data, Strict: true}}
}

// str scans a string, decoding escapes into the parser's scratch: the text is valid until the
// next call.
func (p *jcsParser) str() ([]byte, error) { return p.String(&p.key) }

func (p *jcsParser) value(dst []byte, depth int) ([]byte, error) {
	switch p.Kind() {
	case jsontok.Object:
		return p.object(dst, depth+1)
	case jsontok.Array:
		return p.array(dst, depth+1)
	case jsontok.String:
		s, err := p.str()
		if err != nil {
			return dst, err
		}
		return appendJCSString(dst, s), nil
	case jsontok.Number:
		_, f, err := p.number()
		if err != nil {
			return dst, err
		}
		return AppendNumber(dst, f), nil
	case jsontok.Bool, jsontok.Null:
		lit, err := p.Literal()
		return append(dst, lit...), err
	}
	return dst, p.Unexpected()
}

type member struct {
	name, nameEnd int // the decoded name in the parser's names
	start, end    int // the canonical `"key":value` bytes in the object's scratch area
}

func (p *jcsParser) object(dst []byte, depth int) ([]byte, error) {
	if depth > MaxDepth {
		return dst, p.Errorf("nesting deeper than %d", MaxDepth)
	}
	base, nameBase, memberBase := len(dst), len(p.names), len(p.members)
	defer func() { p.names, p.members = p.names[:nameBase], p.members[:memberBase] }()
	name := func(m member) []byte { return p.names[m.name:m.nameEnd] }
	dst = append(dst, '{')
	sorted := true
	for more := p.Open(); more; more = p.Comma() {
		keyPos := p.Pos
		k, err := p.Name(&p.key)
		if err != nil {
			return dst, err
		}
		at := len(p.names)
		p.names = append(p.names, k...)
		key := p.names[at:]
		if err := p.Colon(); err != nil {
			return dst, err
		}
		if len(p.members) > memberBase {
			dst = append(dst, ',')
		}
		start := len(dst)
		dst = appendJCSString(dst, key)
		dst = append(dst, ':')
		if dst, err = p.value(dst, depth); err != nil {
			return dst, err
		}
		// The value's own objects may have grown names and then cut it back: key is still valid.
		key = p.names[at : at+len(key)]
		if n := len(p.members); n > memberBase {
			switch c := compareUTF16(name(p.members[n-1]), key); {
			case c == 0:
				return dst, &SyntaxError{Offset: keyPos, Msg: fmt.Sprintf("duplicate member name %q", key)}
			case c > 0:
				sorted = false
			}
		}
		p.members = append(p.members, member{name: at, nameEnd: at + len(key), start: start, end: len(dst)})
	}
	if err := p.Close('}'); err != nil {
		return dst, err
	}
	if sorted { // the common case: members were written in order already
		return append(dst, '}'), nil
	}
	members := p.members[memberBase:]
	slices.SortStableFunc(members, func(a, b member) int { return compareUTF16(name(a), name(b)) })
	for i := 1; i < len(members); i++ {
		if k := name(members[i]); bytes.Equal(name(members[i-1]), k) {
			return dst, p.Errorf("duplicate member name %q", k)
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
		return dst, p.Errorf("nesting deeper than %d", MaxDepth)
	}
	dst = append(dst, '[')
	for more, first := p.Open(), true; more; more, first = p.Comma(), false {
		if !first {
			dst = append(dst, ',')
		}
		var err error
		if dst, err = p.value(dst, depth); err != nil {
			return dst, err
		}
	}
	if err := p.Close(']'); err != nil {
		return dst, err
	}
	return append(dst, ']'), nil
}

// number scans a number and its value, which I-JSON requires to fit a double.
func (p *jcsParser) number() ([]byte, float64, error) {
	start := p.Pos
	tok, err := p.Number()
	if err != nil {
		return nil, 0, err
	}
	f, err := strconv.ParseFloat(string(tok), 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) || math.IsInf(f, 0) {
		return nil, 0, &SyntaxError{Offset: start, Msg: "number out of range of an IEEE 754 double"}
	}
	return tok, f, nil
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
	// Plain stops at exactly the bytes to escape: quotes, backslashes, control characters.
	for i := jsontok.Plain(s, 0, false); i < len(s); i = jsontok.Plain(s, i+1, false) {
		c := s[i]
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
func compareUTF16[T string | []byte](a, b T) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			if a[i] < 0x80 && b[i] < 0x80 {
				return int(a[i]) - int(b[i])
			}
			for i > 0 && !utf8.RuneStart(a[i]) {
				i-- // the prefix is shared, so this is a rune start in both
			}
			return compareUTF16Slow(string(a[i:]), string(b[i:]))
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
