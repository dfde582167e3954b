package jsontok

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"
	"unicode/utf8"
)

func TestStringPolicies(t *testing.T) {
	const both, lenient, strict = 0, 1, 2
	tests := []struct {
		policy   int
		in, want string // want: the text, or "error: " and the message
		end      int    // where the scan stopped: after the string, or at the error
	}{
		{both, `"plain"x`, "plain", 7},
		{both, `""`, "", 2},
		{both, `"a\"b\\c\/\b\f\n\r\t"x`, "a\"b\\c/\b\f\n\r\t", 21},
		{both, `"\u00e9\ud83d\ude00"`, "é😀", 20},
		{both, "\"caf\u00e9\\n\"", "café\n", 9},
		{lenient, "\"a\xffb\\n\"", "a\xffb\n", 7},
		{strict, "\"a\xffb\\n\"", "error: invalid UTF-8 in string", 2},
		{strict, "\"a\\nb\xff\"", "error: invalid UTF-8 in string", 5},
		{lenient, `"\ud83d"`, "\uFFFD", 8},
		{strict, `"\ud83d"`, `error: lone surrogate \ud83d`, 7},
		{lenient, `"\ude00\u0041"`, "\uFFFDA", 14},
		{strict, `"\ude00\u0041"`, `error: lone surrogate \ude00`, 7},
		{lenient, `"\ud83d\u0041"`, "\uFFFDA", 14},
		{strict, `"\ud83d\u0041"`, "error: invalid surrogate pair", 13},
		{both, `"abc`, "error: unterminated string", 4},
		{both, `"a\"`, "error: unterminated string", 4},
		{both, "\"a\nb\"", "error: control character 0x0a in string", 2},
		{both, `"a\`, "error: unterminated escape", 2},
		{both, `"a\x"`, `error: invalid escape \x`, 4},
		{both, `"\u12"`, `error: short \u escape`, 3},
		{both, `"\u12x4"`, `error: invalid \u escape`, 3},
		{both, `"\ud83d\u12x4"`, `error: invalid \u escape`, 9},
	}
	for _, tt := range tests {
		for _, policy := range []int{lenient, strict} {
			if tt.policy != both && tt.policy != policy {
				continue
			}
			s := Scanner{In: []byte(tt.in), Strict: policy == strict}
			text, err := s.String(nil)
			got, end := string(text), s.Pos
			if se := (*SyntaxError)(nil); errors.As(err, &se) {
				got, end = "error: "+se.Msg, se.Offset
			}
			if got != tt.want || end != tt.end {
				t.Errorf("strict=%v %q: %q at %d, want %q at %d", policy == strict, tt.in, got, end, tt.want, tt.end)
			}
		}
	}
}

// FuzzString checks both string policies against encoding/json: what either accepts,
// encoding/json accepts with the same text (encoding/json writes U+FFFD for each invalid UTF-8
// byte, which the lenient policy keeps); what encoding/json accepts, the lenient policy accepts,
// and so does the strict one where no byte is invalid and no surrogate is lone.
func FuzzString(f *testing.F) {
	for _, s := range []string{`"a\"b"`, `"\u00e9\n\t\/"`, `"\ud83d\ude00"`, `"\ud83d"`, `"\ud83dx"`, `"\udc00\ud83d\ude00"`,
		`"\u12"`, `"\x"`, "\"a\x01\"", `"\\\\"`, "\"a\xffb\\n\"", `"x" `, `"\ud800\u"`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || in[0] != '"' {
			return
		}
		var want string
		werr := json.Unmarshal(in, &want)
		for _, strict := range []bool{false, true} {
			s := Scanner{In: in, Strict: strict}
			got, err := s.String(nil)
			scratch := []byte("reused")
			s2 := Scanner{In: in, Strict: strict}
			got2, err2 := s2.String(&scratch)
			if (err == nil) != (err2 == nil) || !bytes.Equal(got, got2) || s.Pos != s2.Pos {
				t.Fatalf("strict=%v %q: with a scratch buffer %q %v, without %q %v", strict, in, got2, err2, got, err)
			}
			if err != nil {
				if werr == nil && (!strict || !bytes.ContainsRune([]byte(want), utf8.RuneError) && utf8.Valid(in)) {
					t.Fatalf("strict=%v %q: %v; encoding/json accepts it as %q", strict, in, err, want)
				}
				continue
			}
			var tokWant string
			if err := json.Unmarshal(in[:s.Pos], &tokWant); err != nil {
				t.Fatalf("strict=%v %q: accepted %q as %q; encoding/json: %v", strict, in, in[:s.Pos], got, err)
			}
			if strict && !utf8.Valid(got) {
				t.Fatalf("strict %q: invalid UTF-8 text %q", in, got)
			}
			if string([]rune(string(got))) != tokWant {
				t.Fatalf("strict=%v %q: text %q; encoding/json %q", strict, in, got, tokWant)
			}
		}
	})
}

// TestSkip: Skip consumes exactly one value, nested or not, and refuses malformed ones.
func TestSkip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		rest string
		ok   bool
	}{
		{`"a\"b",1`, `,1`, true},
		{`{"a":[1,{"b":null}],"c":"}"} ,x`, ` ,x`, true},
		{`[[[]],{}]]`, `]`, true},
		{`-1.5e3}`, `}`, true},
		{`{}`, ``, true},
		{`{"a" 1}`, ``, false},
		{`[1,]`, ``, false},
		{`{"a":1`, ``, false},
		{`nul`, ``, false},
	} {
		s := Scanner{In: []byte(tc.in)}
		err := s.Skip()
		if (err == nil) != tc.ok || (tc.ok && string(s.In[s.Pos:]) != tc.rest) {
			t.Errorf("Skip(%q): err %v, rest %q", tc.in, err, s.In[s.Pos:])
		}
	}
}

// TestPlain holds Plain's word-at-a-time scan to the byte table it speeds up: every byte value at
// every offset of runs of every length up to 40 (so each of its loops ends at it), both policies,
// as []byte and as string, and a run of two such bytes.
func TestPlain(t *testing.T) {
	want := func(s []byte, i int, strict bool) int {
		stop := &stops[0]
		if strict {
			stop = &stops[1]
		}
		for i < len(s) && !stop[s[i]] {
			i++
		}
		return i
	}
	stopped := 0
	for n := 1; n <= 40; n++ {
		for at := 0; at < n; at++ {
			for c := range 256 {
				s := bytes.Repeat([]byte("a"), n)
				s[at] = byte(c)
				if at+1 < n && c%7 == 0 {
					s[at+1] = byte(255 - c)
				}
				for _, strict := range []bool{false, true} {
					for from := range min(n, 3) {
						w := want(s, from, strict)
						if got := Plain(s, from, strict); got != w {
							t.Fatalf("Plain(%q, %d, strict=%v) = %d, want %d", s, from, strict, got, w)
						}
						if got := Plain(string(s), from, strict); got != w {
							t.Fatalf("Plain(string %q, %d, strict=%v) = %d, want %d", s, from, strict, got, w)
						}
						if w < n {
							stopped++
						}
					}
				}
			}
		}
	}
	if stopped == 0 {
		t.Fatal("no run ended before its end: the test proves nothing")
	}
}
