package redact

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/event"
)

func TestKeyMatching(t *testing.T) {
	r := testRedactor(t)
	tests := []struct {
		name string
		want string // kind matched, "" for none
	}{
		{"api_key", "apikey"}, {"apiKey", "apikey"}, {"API-KEY", "apikey"}, {"x-api-key", "apikey"}, {"openai_api_key", "apikey"},
		{"password", "password"}, {"db_password", "password"}, {"Authorization", "authorization"}, {"Set-Cookie", "setcookie"},
		{"access_token", "accesstoken"}, {"refreshToken", "refreshtoken"}, {"client_secret", "clientsecret"}, {"cvv", "cvv"},
		{"patient_name", "patientname"}, {"SSN", "ssn"}, {"date_of_birth", "dateofbirth"}, {"home_address", "address"},
		{"max_tokens", ""}, {"input_tokens", ""}, {"token_count", ""}, {"order_id", ""}, {"status", ""}, {"keyboard", ""},
	}
	for _, tt := range tests {
		_, kind, ok := r.keyAction(tt.name)
		if (tt.want == "") == ok || kind != tt.want {
			t.Errorf("%s: matched %v as %q, want %q", tt.name, ok, kind, tt.want)
		}
	}
}

func TestValueNestedArraysAndJSONStrings(t *testing.T) {
	r := testRedactor(t)
	in := `{"user":{"password":"hunter2","cards":[{"number":"4111 1111 1111 1111"},{"card_number":"5500005555555559"}]},
	"payload":"{\"api_key\":\"abc123\",\"note\":\"mail me at jane.doe@example.com\"}","max_tokens":1024,"count":3}`
	out, red, err := r.Value("arguments", json.RawMessage(in))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, gone := range []string{"hunter2", "4111 1111 1111 1111", "5500005555555559", "abc123", "jane.doe@example.com"} {
		if strings.Contains(s, gone) {
			t.Errorf("%q survived: %s", gone, s)
		}
	}
	if !json.Valid(out) || !strings.Contains(s, `"max_tokens":1024`) || !strings.Contains(s, `[REDACTED:password]`) {
		t.Errorf("output %s", s)
	}
	var paths []string
	for _, x := range red {
		paths = append(paths, x.Path+"="+x.Kind+"/"+x.Action)
		if strings.Contains(x.Path+x.Kind+x.Action, "hunter2") {
			t.Error("a redaction record carries the value")
		}
	}
	sort.Strings(paths)
	want := "arguments.payload.api_key=apikey/redact arguments.payload.note=email/pseudonymize arguments.user.cards[0].number=credit_card/redact arguments.user.cards[1].card_number=cardnumber/redact arguments.user.password=password/redact"
	if strings.Join(paths, " ") != want {
		t.Errorf("redactions\n got %s\nwant %s", strings.Join(paths, " "), want)
	}
}

func TestPseudonyms(t *testing.T) {
	r := testRedactor(t)
	a, b := r.Pseudonym("patient_name", "Maria Garcia"), r.Pseudonym("patientName", "Maria Garcia")
	if a != b || !strings.HasPrefix(a, "pii:patientname:") || len(a) != len("pii:patientname:")+PseudonymHexChars {
		t.Errorf("pseudonyms %q %q", a, b)
	}
	if a == r.Pseudonym("patient_name", "Maria Garcia ") || a == r.Pseudonym("address", "Maria Garcia") {
		t.Error("different values or fields share a pseudonym")
	}
	other, _ := New(Default(), []byte(strings.Repeat("z", KeySize)))
	if other.Pseudonym("patient_name", "Maria Garcia") == a {
		t.Error("another key gives the same pseudonym")
	}
	out, _, _ := r.Value("result", json.RawMessage(`{"patient_name":"Maria Garcia","ssn":"123-45-6789"}`))
	if !strings.Contains(string(out), a) || strings.Contains(string(out), "Maria") || strings.Contains(string(out), "6789") {
		t.Errorf("PII fields: %s", out)
	}
}

func TestActions(t *testing.T) {
	p, err := Parse("t.yaml", []byte("version: 1\nkeys:\n  - {name: notes, action: \"truncate:5\"}\n  - {name: internal, action: drop}\n  - {name: token, action: keep}\n"))
	if err != nil {
		t.Fatal(err)
	}
	r, _ := New(p, []byte(strings.Repeat("k", KeySize)))
	out, red, _ := r.Value("arguments", json.RawMessage(`{"notes":"abcdefghij","internal":{"x":1},"token":"t-1","password":"p"}`))
	if string(out) != `{"notes":"abcde…","token":"t-1","password":"[REDACTED:password]"}` {
		t.Errorf("got %s", out)
	}
	if len(red) != 3 {
		t.Errorf("redactions %+v", red)
	}
}

func TestSummary(t *testing.T) {
	r := testRedactor(t)
	small := json.RawMessage(`{"status":"ok","x":1}`)
	if out, summarized, _ := r.Summary("get_order", small); summarized || string(out) != string(small) {
		t.Errorf("small result summarized: %s", out)
	}
	big := json.RawMessage(`{"success":false,"error":"Cannot cancel shipped order","order_id":"ORD-456","detail":"` + strings.Repeat("d", 2000) + `"}`)
	out, summarized, _ := r.Summary("get_order", big)
	if !summarized || string(out) != `{"_size":2088,"_truncated":true,"error":"Cannot cancel shipped order","order_id":"ORD-456","success":false}` {
		t.Errorf("summary %s", out)
	}
	ev := &event.Event{Kind: event.KindToolCall, ToolName: "get_order", Result: big}
	if err := r.Sanitize(ev); err != nil {
		t.Fatal(err)
	}
	if ev.Result != nil || string(ev.ResultSummary) != string(out) || ev.Redactions[len(ev.Redactions)-1].Action != "summarize" {
		t.Errorf("sanitized event %+v", ev)
	}
	p, _ := Parse("t.yaml", []byte("version: 1\nresults:\n  tools:\n    get_order: {mode: full}\n"))
	full, _ := New(p, []byte(strings.Repeat("k", KeySize)))
	if _, summarized, _ := full.Summary("get_order", big); summarized {
		t.Error("full mode summarized")
	}
}

func TestPolicyErrorsNameFileAndLine(t *testing.T) {
	want, err := os.ReadFile("testdata/policies/want-errors.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
		file, _, _ := strings.Cut(line, ":")
		_, err := Load(filepath.Join("testdata/policies", file))
		var pe *PolicyError
		if !errors.As(err, &pe) {
			t.Errorf("%s: %v, want a *PolicyError", file, err)
			continue
		}
		if got := strings.TrimPrefix(err.Error(), "testdata/policies/"); got != line {
			t.Errorf("got  %s\nwant %s", got, line)
		}
	}
}

func TestKeyFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pseudonym.key")
	k1, err := LoadOrCreateKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	k2, _ := LoadOrCreateKey(path)
	if string(k1) != string(k2) || len(k1) != KeySize {
		t.Error("the key changed on reload")
	}
	os.Chmod(path, 0o644)
	if _, err := LoadOrCreateKey(path); !errors.Is(err, ErrKeyFile) {
		t.Errorf("open key file: %v", err)
	}
}

// FuzzValue: no input panics, the output is valid JSON, and no value a detector or rule matched
// survives in the output.
func FuzzValue(f *testing.F) {
	for _, s := range []string{`{"password":"x"}`, `["4111111111111111"]`, `{"a":"{\"api_key\":\"zz\"}"}`, `"jane@example.com"`, `{"n":4111111111111111}`, `[[[{"ssn":"123-45-6789"}]]]`} {
		f.Add([]byte(s))
	}
	r := testRedactor(f)
	f.Fuzz(func(t *testing.T, in []byte) {
		if !json.Valid(in) {
			return
		}
		out, red, err := r.Value("arguments", in)
		if err != nil {
			return
		}
		if !json.Valid(out) {
			t.Fatalf("invalid output %q from %q", out, in)
		}
		// Whatever the detectors find in the input's strings must be gone from the output: each
		// matched value occurs in the output fewer times than in the input, by its matches (the
		// same digits may stand elsewhere, inside a run that is not a card).
		var x any
		json.Unmarshal(in, &x)
		for _, s := range strings_(x) {
			found := map[string]int{}
			f := featuresOf(s, strings.ToLower(s))
			for _, d := range r.dets {
				if d.pre(&f) {
					for _, m := range d.find(s) {
						found[s[m.start:m.end]]++
					}
				}
			}
			// Replacements are cut out first, so a value formed across a replacement's edge (a
			// pseudonym ending in 0 before "@x.com") is not taken for a leak.
			rest := replacement.ReplaceAllString(string(out), "\x00")
			for v, n := range found {
				if len(v) >= 6 && strings.Count(rest, v) > strings.Count(string(in), v)-n {
					t.Fatalf("value %q survived: %s -> %s (%+v)", v, in, out, red)
				}
			}
		}
	})
}

var replacement = regexp.MustCompile(`\[REDACTED:[^\]]*\]|pii:[a-z0-9]+:[0-9a-f]{16}`)

// strings_ lists every string value in x (not keys).
func strings_(x any) []string {
	switch v := x.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, e := range v {
			out = append(out, strings_(e)...)
		}
		return out
	case map[string]any:
		var out []string
		for _, e := range v {
			out = append(out, strings_(e)...)
		}
		return out
	}
	return nil
}

func TestValueRejectsMalformed(t *testing.T) {
	r := testRedactor(t)
	for _, in := range []string{`{"password":"x",}`, `{"a":1,}`, `[1,]`, `{"a"}`, `{"a":`, `"unterminated`, `{"a":tru}`, `[1 2]`, `{} {}`} {
		if out, _, err := r.Value("arguments", json.RawMessage(in)); err == nil {
			t.Errorf("Value(%s) = %s, want an error", in, out)
		}
	}
	for _, in := range []string{`{}`, `[]`, `{"a":[]}`, `{"password":null}`, ` {"password" : "x" , "b" : [ 1 , {} ] } `} {
		out, _, err := r.Value("arguments", json.RawMessage(in))
		if err != nil || !json.Valid(out) {
			t.Errorf("Value(%s) = %s, %v", in, out, err)
		}
	}
}
