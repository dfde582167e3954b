// Package jsontok is the JSON tokenizer (RFC 8259) that the project's two JSON readers share: the
// RFC 8785 canonicalizer and single-pass event decoder of package event, and the sanitizer's
// walker of package redact, which rewrites strings inside arbitrary payloads. It scans one token
// at a time (strings with their escapes, numbers, literals, and the bytes of structure) and keeps
// no stack: nesting, depth limits and what a value means stay with the caller, since each does
// something different with them (sorting members, splicing, typed assignment).
//
// Strings follow one of two policies, chosen by Scanner.Strict: I-JSON (RFC 7493, which RFC 8785
// requires) refuses invalid UTF-8 and lone surrogates; otherwise a lone surrogate decodes to
// U+FFFD, as encoding/json does, and invalid UTF-8 is kept as it is, so a rewriter changes no byte
// it did not mean to. FuzzString checks both against encoding/json.
//
// It lives in internal/ rather than in event because it is how event and redact read JSON, not
// part of what event offers its importers: exported from event, every SDK user would see it and
// it could no longer change freely. It imports only the standard library, so both can use it
// without a cycle.
package jsontok

import (
	"encoding/binary"
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
	"unsafe"
)

// SyntaxError is malformed JSON, or JSON that the Strict policy refuses.
type SyntaxError struct {
	Offset int // byte offset into the input where the problem was found
	Msg    string
}

func (e *SyntaxError) Error() string {
	return fmt.Sprintf("invalid JSON at byte %d: %s", e.Offset, e.Msg)
}

// Scanner reads the JSON text In from Pos on; callers read Pos to locate tokens. Kind, Open,
// String, Name, Number and Literal read the token at Pos, which must not be white space: SkipSpace
// first, or rely on Open, Colon and Comma, which leave Pos past the white space after them.
type Scanner struct {
	In  []byte
	Pos int
	// Strict applies I-JSON to strings: invalid UTF-8 and lone surrogates are errors.
	Strict bool
}

// Errorf returns a SyntaxError at Pos.
func (s *Scanner) Errorf(format string, args ...any) error {
	return &SyntaxError{Offset: s.Pos, Msg: fmt.Sprintf(format, args...)}
}

// fail is Errorf for a fixed message, without formatting: the walker tries every string that
// looks like JSON as JSON, so errors are not rare there.
func (s *Scanner) fail(msg string) error { return &SyntaxError{Offset: s.Pos, Msg: msg} }

var isSpace = [256]bool{' ': true, '\t': true, '\n': true, '\r': true}

// SkipSpace advances past JSON white space.
func (s *Scanner) SkipSpace() {
	for s.Pos < len(s.In) && isSpace[s.In[s.Pos]] {
		s.Pos++
	}
}

// End checks that only white space follows Pos.
func (s *Scanner) End() error {
	s.SkipSpace()
	if s.Pos != len(s.In) {
		return s.fail("unexpected data after the JSON value")
	}
	return nil
}

// Kind is the JSON type of a value, named by its String method as in error messages.
type Kind uint8

const (
	Invalid Kind = iota // no value starts here
	Object
	Array
	String
	Number
	Bool
	Null
)

var kindNames = [...]string{"invalid", "object", "array", "string", "number", "bool", "null"}

func (k Kind) String() string { return kindNames[k] }

var kindOf = func() (t [256]Kind) {
	t['{'], t['['], t['"'], t['-'], t['t'], t['f'], t['n'] = Object, Array, String, Number, Bool, Bool, Null
	for c := '0'; c <= '9'; c++ {
		t[c] = Number
	}
	return t
}()

// Kind reports the kind of the value that starts at Pos, from its first byte alone; Invalid at
// the end of the input or where no value starts (Unexpected then says which).
func (s *Scanner) Kind() Kind {
	if s.Pos >= len(s.In) {
		return Invalid
	}
	return kindOf[s.In[s.Pos]]
}

// Unexpected is the error for a value of kind Invalid at Pos.
func (s *Scanner) Unexpected() error {
	if s.Pos >= len(s.In) {
		return s.fail("unexpected end of input")
	}
	return s.Errorf("unexpected character %q", s.In[s.Pos])
}

// Open consumes the '{' or '[' at Pos and the white space after it, and reports whether a member
// or element follows. Containers are read as
//
//	for more := s.Open(); more; more = s.Comma() {
//		// a member or an element
//	}
//	err := s.Close('}')
func (s *Scanner) Open() bool {
	closing := s.In[s.Pos] + 2 // '{'+2 is '}', '['+2 is ']'
	s.Pos++
	s.SkipSpace()
	return s.Pos >= len(s.In) || s.In[s.Pos] != closing
}

// Comma consumes, after a member or element, the white space, then a ',' and the white space
// after it, and reports whether there was one. It is small enough to inline into the callers'
// loops, as it runs once for every member and element.
func (s *Scanner) Comma() bool {
	s.SkipSpace()
	if s.Pos < len(s.In) && s.In[s.Pos] == ',' {
		s.Pos++
		s.SkipSpace()
		return true
	}
	return false
}

// Close consumes the closing bracket close ('}' or ']') that ends the container after its last
// member or element, or after Open found it empty.
func (s *Scanner) Close(close byte) error {
	s.SkipSpace()
	switch {
	case s.Pos < len(s.In) && s.In[s.Pos] == close:
		s.Pos++
		return nil
	case s.Pos >= len(s.In) && close == '}':
		return s.fail("unexpected end of input in object")
	case s.Pos >= len(s.In):
		return s.fail("unexpected end of input in array")
	case close == '}':
		return s.fail("expected ',' or '}' in object")
	}
	return s.fail("expected ',' or ']' in array")
}

// Skip consumes the value at Pos, whatever it holds, checking its tokens as the other methods do.
// It keeps its own stack of open containers instead of recursing, so deep input costs no
// goroutine stack.
func (s *Scanner) Skip() error {
	var open []byte // the closing brackets of the containers Skip is inside
	for {
		switch s.Kind() {
		case Object, Array:
			closing := s.In[s.Pos] + 2
			if s.Open() {
				open = append(open, closing)
				if err := s.member(closing); err != nil {
					return err
				}
				continue
			}
			if err := s.Close(closing); err != nil {
				return err
			}
		case String:
			if _, err := s.String(nil); err != nil {
				return err
			}
		case Number:
			if _, err := s.Number(); err != nil {
				return err
			}
		case Bool, Null:
			if _, err := s.Literal(); err != nil {
				return err
			}
		default:
			return s.Unexpected()
		}
		// A value ended: go on to the next member or element, or close what ends here.
		for len(open) > 0 {
			closing := open[len(open)-1]
			if s.Comma() {
				if err := s.member(closing); err != nil {
					return err
				}
				break
			}
			if err := s.Close(closing); err != nil {
				return err
			}
			open = open[:len(open)-1]
		}
		if len(open) == 0 {
			return nil
		}
	}
}

// member reads a member's name and colon when the container being skipped is an object.
func (s *Scanner) member(closing byte) error {
	if closing != '}' {
		return nil
	}
	if _, err := s.Name(nil); err != nil {
		return err
	}
	return s.Colon()
}

// Name scans a member name, as String does.
func (s *Scanner) Name(buf *[]byte) ([]byte, error) { return s.str(buf, "expected a member name") }

// Colon consumes the ':' after a member name and the white space around it.
func (s *Scanner) Colon() error {
	s.SkipSpace()
	if s.Pos >= len(s.In) || s.In[s.Pos] != ':' {
		return s.fail("expected ':' after member name")
	}
	s.Pos++
	s.SkipSpace()
	return nil
}

// Literal scans true, false or null and returns it.
func (s *Scanner) Literal() (string, error) {
	lit := "null"
	switch s.In[s.Pos] {
	case 't':
		lit = "true"
	case 'f':
		lit = "false"
	}
	if len(s.In)-s.Pos < len(lit) || string(s.In[s.Pos:s.Pos+len(lit)]) != lit {
		return "", s.fail("invalid literal")
	}
	s.Pos += len(lit)
	return lit, nil
}

// Number scans a number and returns its text. What the number means, and whether it fits, is
// the caller's to decide.
func (s *Scanner) Number() ([]byte, error) {
	in, start := s.In, s.Pos
	digits := func() int {
		n := 0
		for s.Pos < len(in) && in[s.Pos] >= '0' && in[s.Pos] <= '9' {
			s.Pos++
			n++
		}
		return n
	}
	if in[s.Pos] == '-' {
		s.Pos++
	}
	intStart := s.Pos
	if n := digits(); n == 0 {
		return nil, s.fail("invalid number")
	} else if n > 1 && in[intStart] == '0' {
		return nil, &SyntaxError{Offset: intStart, Msg: "number with a leading zero"}
	}
	if s.Pos < len(in) && in[s.Pos] == '.' {
		s.Pos++
		if digits() == 0 {
			return nil, s.fail("invalid number: no digits after '.'")
		}
	}
	if s.Pos < len(in) && (in[s.Pos] == 'e' || in[s.Pos] == 'E') {
		s.Pos++
		if s.Pos < len(in) && (in[s.Pos] == '+' || in[s.Pos] == '-') {
			s.Pos++
		}
		if digits() == 0 {
			return nil, s.fail("invalid number: no digits in exponent")
		}
	}
	return in[start:s.Pos:s.Pos], nil
}

// stops marks the bytes that end a run of plain string text: the closing quote, a backslash and
// control characters (invalid in JSON strings) always; bytes of multi-byte UTF-8 sequences too
// under the Strict policy, which validates them.
var stops = func() (t [2][256]bool) {
	for _, strict := range []int{0, 1} {
		for c := range 0x20 {
			t[strict][c] = true
		}
		t[strict]['"'], t[strict]['\\'] = true, true
	}
	for c := 0x80; c < 0x100; c++ {
		t[1][c] = true
	}
	return t
}()

// Plain returns where the run of plain string text in s from i ends: at the end of s, or at the
// first quote, backslash or control character, or (strict) byte beyond ASCII; the bytes that
// stops marks. It tests eight bytes at a time while none of them ends the run (a JSON string is
// mostly such text, and this is the loop every reader of a payload runs over all of it), then
// byte by byte. RFC 8785 escapes the same bytes, so the canonical writer finds its runs with it
// too.
func Plain[T string | []byte](s T, i int, strict bool) int {
	var b []byte
	switch v := any(s).(type) {
	case string:
		b = unsafe.Slice(unsafe.StringData(v), len(v)) // only read
	case []byte:
		b = v
	}
	var hi uint64 // the high bits, where a byte beyond ASCII ends the run
	if strict {
		hi = 0x8080808080808080
	}
	for ; i+16 <= len(b); i += 16 {
		x, y := binary.LittleEndian.Uint64(b[i:]), binary.LittleEndian.Uint64(b[i+8:])
		if stopsIn(x)|stopsIn(y)|(x|y)&hi != 0 {
			break
		}
	}
	for ; i+8 <= len(b); i += 8 {
		if x := binary.LittleEndian.Uint64(b[i:]); stopsIn(x)|x&hi != 0 {
			break
		}
	}
	stop := &stops[0]
	if strict {
		stop = &stops[1]
	}
	for i < len(b) && !stop[b[i]] {
		i++
	}
	return i
}

// stopsIn is non-zero when one of the eight bytes of x is a control character, a quote or a
// backslash. The tests are the usual ones for "some byte is zero" ((v-0x01…)&^v&0x80…) and "some
// byte is below n" ((x-n…)&^x&0x80…, n <= 0x80): a borrow can set a bit above a byte that
// matches, never when none does, so the answer for the word is exact. TestPlain checks it
// against the table on every byte value in every position.
func stopsIn(x uint64) uint64 {
	const ones, high = 0x0101010101010101, 0x8080808080808080
	q := x ^ '"'*ones
	b := x ^ '\\'*ones
	return ((x - 0x20*ones) &^ x & high) | ((q - ones) &^ q & high) | ((b - ones) &^ b & high)
}

// String scans the string at Pos and returns its text. A string without escapes, the common
// case, is returned as a view of In, with no copy. Otherwise its text is decoded into *buf,
// reset, grown at most once and kept there for the next call; with a nil buf, into a new slice
// of its own, for callers whose texts must outlive the next call.
func (s *Scanner) String(buf *[]byte) ([]byte, error) { return s.str(buf, "expected a string") }

// str is String and Name (missing: the error when no string starts at Pos). A string without
// escapes, and under Strict without bytes beyond ASCII, is scanned here in one call.
func (s *Scanner) str(buf *[]byte, missing string) ([]byte, error) {
	in, p := s.In, s.Pos
	if p >= len(in) || in[p] != '"' {
		return nil, s.fail(missing)
	}
	stop := &stops[0]
	if s.Strict {
		stop = &stops[1]
	}
	body := p + 1
	p = Plain(in, body, s.Strict)
	if p < len(in) && in[p] == '"' {
		s.Pos = p + 1
		return in[body:p:p], nil
	}
	return s.decode(buf, stop, body, p)
}

// decode finishes the string whose body starts at body when its first run of plain text, up to
// p, ends at anything but the closing quote: UTF-8 to validate, an escape, or an error.
func (s *Scanner) decode(buf *[]byte, stop *[256]bool, body, p int) ([]byte, error) {
	in := s.In
	if p = s.plain(p, stop); p >= 0 && p < len(in) && in[p] == '"' {
		s.Pos = p + 1
		return in[body:p:p], nil
	}
	var out []byte
	if buf != nil {
		out = (*buf)[:0]
	}
	if p >= 0 && p < len(in) && in[p] == '\\' {
		// The body's length bounds the text's, so one allocation at most.
		end := p
		for end < len(in) && in[end] != '"' {
			if in[end] == '\\' {
				end++
			}
			end++
		}
		out = slices.Grow(out, min(end, len(in))-body)
	}
	out, err := s.unescape(out, stop, body, p)
	if buf != nil {
		*buf = out
	}
	return out, err
}

// plain returns where the run of plain text from p ends: at the end of In, a quote, a backslash
// or a control character. Under Strict it validates UTF-8 on the way: -1 for an invalid
// sequence, with Pos at it.
func (s *Scanner) plain(p int, stop *[256]bool) int {
	in := s.In
	for {
		p = Plain(in, p, stop == &stops[1])
		if p >= len(in) || in[p] < 0x80 {
			return p
		}
		r, size := utf8.DecodeRune(in[p:])
		if r == utf8.RuneError && size <= 1 {
			s.Pos = p
			return -1
		}
		p += size
	}
}

// unescape appends to out the text of the string whose body starts at body, reading on from p,
// where plain returned that its first run of plain text ends.
func (s *Scanner) unescape(out []byte, stop *[256]bool, body, p int) ([]byte, error) {
	in := s.In
	for start := body; ; start, p = p, s.plain(p, stop) {
		if p < 0 {
			return out, s.fail("invalid UTF-8 in string")
		}
		s.Pos = p
		if p >= len(in) {
			return out, s.fail("unterminated string")
		}
		if in[p] < 0x20 {
			return out, s.Errorf("control character %#02x in string", in[p])
		}
		out = append(out, in[start:p]...)
		if in[p] == '"' {
			s.Pos++
			return out, nil
		}
		if p+1 >= len(in) {
			return out, s.fail("unterminated escape")
		}
		e := in[p+1]
		p += 2
		s.Pos = p
		switch e {
		case '"', '\\', '/':
			out = append(out, e)
		case 'b':
			out = append(out, '\b')
		case 'f':
			out = append(out, '\f')
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'u':
			r, ok := hex4(in[p:])
			if !ok {
				return out, s.hexError()
			}
			p += 4
			if utf16.IsSurrogate(r) {
				r2, ok, follows := rune(0), false, r < 0xDC00 && p+1 < len(in) && in[p] == '\\' && in[p+1] == 'u'
				if follows {
					r2, ok = hex4(in[p+2:])
				}
				switch d := utf16.DecodeRune(r, r2); {
				case ok && d != utf8.RuneError:
					r = d
					p += 6
				case !s.Strict:
					// Like encoding/json; what follows a lone surrogate is read on its own.
					r = utf8.RuneError
				case !follows:
					s.Pos = p
					return out, s.Errorf("lone surrogate \\u%04x", r)
				case !ok:
					s.Pos = p + 2
					return out, s.hexError()
				default:
					s.Pos = p + 6
					return out, s.fail("invalid surrogate pair")
				}
			}
			out = utf8.AppendRune(out, r)
		default:
			return out, s.Errorf("invalid escape \\%c", e)
		}
	}
}

// hexError is the error for the \u escape whose hex digits start at Pos.
func (s *Scanner) hexError() error {
	if len(s.In)-s.Pos < 4 {
		return s.fail("short \\u escape")
	}
	return s.fail("invalid \\u escape")
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case c >= '0' && c <= '9':
			c -= '0'
		case c >= 'a' && c <= 'f':
			c -= 'a' - 10
		case c >= 'A' && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
