package event

import (
	"encoding/json"
	"errors"
	"math"
	"strings"
	"testing"
)

func TestCanonicalizeRFC8785(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"rfc example", `{
  "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
  "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
  "literals": [null, true, false]
}`, `{"literals":[null,true,false],"numbers":[333333333.3333333,1e+30,4.5,0.002,1e-27],"string":"€$\u000f\nA'B\"\\\\\"/"}`},
		{"utf16 sort", `{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew","1":"One","\ud83d\ude00":"Emoji","\u0080":"Control","\u00f6":"o"}`,
			"{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\u0080\":\"Control\",\"ö\":\"o\",\"€\":\"Euro Sign\",\"😀\":\"Emoji\",\"\ufb33\":\"Hebrew\"}"},
		{"nested", ` { "b" : [ 1 , { "z":1, "a":[] } ], "a" : {} } `, `{"a":{},"b":[1,{"a":[],"z":1}]}`},
		{"scalars", `"x"`, `"x"`},
		{"escapes kept minimal", `"<>&\u2028/\u001f"`, "\"<>&\u2028/\\u001f\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Canonicalize([]byte(tt.in))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestAppendNumberRFC8785(t *testing.T) {
	// The IEEE 754 test vectors of RFC 8785 Appendix B.
	tests := []struct {
		bits uint64
		want string
	}{
		{0x0000000000000000, "0"}, {0x8000000000000000, "0"},
		{0x0000000000000001, "5e-324"}, {0x8000000000000001, "-5e-324"},
		{0x7fefffffffffffff, "1.7976931348623157e+308"}, {0xffefffffffffffff, "-1.7976931348623157e+308"},
		{0x4340000000000000, "9007199254740992"}, {0xc340000000000000, "-9007199254740992"},
		{0x4430000000000000, "295147905179352830000"},
		{0x44b52d02c7e14af5, "9.999999999999997e+22"}, {0x44b52d02c7e14af6, "1e+23"},
		{0x44b52d02c7e14af7, "1.0000000000000001e+23"},
		{0x444b1ae4d6e2ef4e, "999999999999999700000"}, {0x444b1ae4d6e2ef4f, "999999999999999900000"},
		{0x444b1ae4d6e2ef50, "1e+21"},
		{0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"}, {0x3eb0c6f7a0b5ed8d, "0.000001"},
		{0x41b3de4355555553, "333333333.3333332"}, {0x41b3de4355555554, "333333333.33333325"},
		{0x41b3de4355555555, "333333333.3333333"}, {0x41b3de4355555556, "333333333.3333334"},
		{0x41b3de4355555557, "333333333.33333343"},
		{0xbecbf647612f3696, "-0.0000033333333333333333"},
		{0x43143ff3c1cb0959, "1424953923781206.2"},
	}
	for _, tt := range tests {
		if got := string(AppendNumber(nil, math.Float64frombits(tt.bits))); got != tt.want {
			t.Errorf("%#016x: got %s, want %s", tt.bits, got, tt.want)
		}
	}
}

func TestCanonicalizeRejects(t *testing.T) {
	tests := []struct {
		name, in, msg string
		offset        int
	}{
		{"duplicate", `{"a":1,"a":2}`, `duplicate member name "a"`, 7},
		{"duplicate unsorted", `{"b":1,"a":1,"b":2}`, `duplicate member name "b"`, -1},
		{"invalid utf8", "\"a\xffb\"", "invalid UTF-8", 2},
		{"lone surrogate", `"\ud800x"`, "lone surrogate", -1},
		{"trailing", `{} x`, "after the JSON value", 3},
		{"leading zero", `01`, "leading zero", 0},
		{"overflow", `1e400`, "out of range", 0},
		{"control", "\"a\nb\"", "control character", 2},
		{"truncated", `{"a":[1,2`, "end of input", -1},
		{"bad literal", `tru`, "invalid literal", 0},
		{"empty", ``, "end of input", 0},
		{"deep", strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1), "nesting deeper", -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Canonicalize([]byte(tt.in))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("got %v, want a *SyntaxError", err)
			}
			if !strings.Contains(se.Msg, tt.msg) {
				t.Errorf("message %q does not say %q", se.Msg, tt.msg)
			}
			if tt.offset >= 0 && se.Offset != tt.offset {
				t.Errorf("offset %d, want %d", se.Offset, tt.offset)
			}
		})
	}
}

// FuzzCanonicalize checks that canonical output is valid JSON equal in value to the input, and
// that canonicalizing it again changes nothing.
func FuzzCanonicalize(f *testing.F) {
	for _, s := range []string{`{"b":1,"a":[true,null,"x"]}`, `1.5e10`, `"\u00e9\ud83d\ude00"`, `{"":{}}`, `[-0.0,1e-7,123456789012345678901]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := Canonicalize(in)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid output %q", out)
		}
		again, err := Canonicalize(out)
		if err != nil || string(again) != string(out) {
			t.Fatalf("not idempotent: %q -> %q (%v)", out, again, err)
		}
		var a, b any
		if json.Unmarshal(in, &a) != nil {
			t.Fatalf("accepted what encoding/json rejects: %q", in)
		}
		if err := json.Unmarshal(out, &b); err != nil {
			t.Fatal(err)
		}
		// encoding/json's view of the value, canonicalized, must be what we produced.
		ja, _ := json.Marshal(a)
		ca, err := Canonicalize(ja)
		if err != nil || string(ca) != string(out) {
			t.Fatalf("value changed: %s vs %s (%v)", ca, out, err)
		}
	})
}

func TestAppendString(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", `""`},
		{"plain €", `"plain €"`},
		{"q\"b\\s/", `"q\"b\\s/"`},
		{"\b\f\n\r\t\x00\x1f", `"\b\f\n\r\t\u0000\u001f"`},
		{"bad \xff\xfe byte", "\"bad \uFFFD byte\""},
		{"<&>\u2028", "\"<&>\u2028\""}, // no HTML escaping: RFC 8785 has none
	} {
		got := string(AppendString([]byte("x"), tc.in))
		if got != "x"+tc.want {
			t.Errorf("AppendString(%q) = %s, want %s", tc.in, got[1:], tc.want)
		}
		// What it writes is canonical already.
		if c, err := Canonicalize([]byte(got[1:])); err != nil || string(c) != got[1:] {
			t.Errorf("AppendString(%q) = %s is not canonical: %s %v", tc.in, got[1:], c, err)
		}
	}
}
