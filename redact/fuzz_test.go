package redact

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// fuzzPolicy is the default policy with a drop and a truncate rule, so the fuzzer walks every
// action.
const fuzzPolicy = "version: 1\nkeys:\n  - {name: internal, action: drop}\n  - {name: notes, action: \"truncate:4\"}\n"

// replacementRe matches what the redactor writes in place of a value.
var replacementRe = regexp.MustCompile(`\[REDACTED:[^\]]*\]|pii:[^:]*:[0-9a-f]{16}`)

// FuzzValue checks Value on any JSON: it never panics, its output is valid JSON, and no protected
// value survives. The oracle works on the decoded leaves (strings, member names, numbers; JSON
// carried in a string is decoded in turn), independently of how Value splices:
//
//  1. no detector finds anything in the output's leaves away from the replacement markers (a
//     match next to one saw a different context in the input);
//  2. a value that a detector found in the input, or that stood under a key rule, does not occur
//     in the output, unless it also occurs in the input where nothing protected it (then it
//     may legitimately survive there).
func FuzzValue(f *testing.F) {
	for _, s := range []string{`{"password":"x"}`, `["4111111111111111"]`, `{"a":"{\"api_key\":\"zz\"}"}`, `"jane@example.com"`,
		`{"n":4111111111111111}`, `[[[{"ssn":"123-45-6789"}]]]`, `{"internal":1,"a":{"internal":[1]},"notes":"abcdefgh"}`,
		`{"jane@example.com":{"authorization":{"k":"v","x@y.io":1}}}`, `"call +44 20 7946 0958 or (415) 555-0134"`,
		`"postgres://app:Sup3rS3cret@db:5432/x?api_key=abcd1234efgh"`, `{"log":"{\"password\": \"hunter2\", \"a\":"}`,
		`"ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5 xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"`,
		`"-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA\n-----END RSA PRIVATE KEY-----"`, `"DE89 3704 0044 0532 0130 00"`,
		`{"email":"a@b.co","name":{"first":"Alex","password":"hunter2_x"}}`, `{"resourceType":"Patient","name":[{"given":["Al"],"family":"Doe"}]}`,
		`"sk-proj-huG8GP38g4o5MNJAYKJ1UXXFWXLCpaNfhs0gCa05RFRunzqw AKIAEDWWB96UT4UH75KJ"`} {
		f.Add([]byte(s))
	}
	r := policyRedactor(f, fuzzPolicy)
	f.Fuzz(func(t *testing.T, in []byte) { fuzzCheck(t, r, in) })
}

func fuzzCheck(t *testing.T, r *Redactor, in []byte) {
	t.Helper()
	{
		if !json.Valid(in) || nesting(in) > 100 {
			return
		}
		out, red, err := r.Value("arguments", in)
		if err != nil {
			t.Fatalf("valid JSON refused: %v", err)
		}
		if !json.Valid(out) {
			t.Fatalf("invalid output %q from %q", out, in)
		}
		for _, x := range red {
			if x.Path == "" || x.Kind == "" || x.Action == "" {
				t.Fatalf("incomplete record %+v", x)
			}
		}
		var inLeaves, outLeaves []string
		var protected []string
		collect(r, decode(in), &inLeaves, &protected, false)
		collect(r, decode(out), &outLeaves, nil, false)
		// 1. Nothing detectable is left.
		for _, leaf := range outLeaves {
			cleaned := replacementRe.ReplaceAllString(leaf, "\x00")
			for _, m := range r.find(cleaned, r.m.scan(cleaned, nil), 0, nil) {
				// A match touching a replacement is judged by rule 2: its context changed. Ends are
				// judged on up to two bytes (a '-', '.', '+' or '/' then what follows it).
				touches := strings.Contains(cleaned[m.start:m.end], "\x00") ||
					m.start > 0 && cleaned[m.start-1] == 0 || strings.Contains(cleaned[m.end:min(m.end+2, len(cleaned))], "\x00")
				if !touches {
					t.Fatalf("%s %q survived in %q\nin  %s\nout %s", m.kind, cleaned[m.start:m.end], leaf, in, out)
				}
			}
		}
		// 2. No protected value survives, where it is protected everywhere it occurs.
		inAll := strings.Join(inLeaves, "\x01")
		outAll := replacementRe.ReplaceAllString(strings.Join(outLeaves, "\x01"), "\x00")
		count := map[string]int{}
		for _, v := range protected {
			count[v]++
		}
		for v, n := range count {
			if len(v) >= 6 && strings.Count(inAll, v) <= n && strings.Contains(outAll, v) {
				t.Fatalf("protected value %q survived\nin  %s\nout %s\n%+v", v, in, out, red)
			}
		}
	}
}

func decode(b []byte) any {
	var x any
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	dec.Decode(&x)
	return x
}

func nesting(b []byte) int {
	d, m := 0, 0
	for _, c := range b {
		switch c {
		case '[', '{':
			d++
			m = max(m, d)
		case ']', '}':
			d--
		}
	}
	return m
}

// collect lists the leaves of x, and, when protected is not nil, the values that must not
// survive: detector matches in leaves, and scalars under a key rule (forced: inside one).
func collect(r *Redactor, x any, leaves, protected *[]string, forced bool) {
	leaf := func(s string, isName bool) {
		if t := strings.TrimSpace(s); !isName && len(t) > 1 && (t[0] == '{' || t[0] == '[') && json.Valid([]byte(t)) {
			collect(r, decode([]byte(t)), leaves, protected, forced)
			return
		}
		*leaves = append(*leaves, s)
		if protected == nil {
			return
		}
		if forced && !isName {
			*protected = append(*protected, s)
			return
		}
		for _, m := range r.find(s, r.m.scan(s, nil), 0, nil) {
			*protected = append(*protected, s[m.start:m.end])
		}
	}
	switch v := x.(type) {
	case string:
		leaf(v, false)
	case json.Number:
		leaf(string(v), false)
	case []any:
		for _, e := range v {
			collect(r, e, leaves, protected, forced)
		}
	case map[string]any:
		for k, e := range v {
			leaf(k, true)
			rule := r.keys.lookup(k)
			switch {
			case rule != nil && rule.act.Kind == "drop" && !forced:
				collect(r, e, new([]string), protected, true) // gone, values and all
			case rule != nil && rule.act.Kind != "keep" && rule.act.Kind != "truncate" && !forced:
				collect(r, e, leaves, protected, true)
			default:
				collect(r, e, leaves, protected, forced)
			}
		}
	}
}

// FuzzPhoneWindows checks that running the phone regex only on the flagged runs finds exactly
// what running it on the whole string finds.
func FuzzPhoneWindows(f *testing.F) {
	for _, s := range []string{"call +44 20 7946 0958 or (415) 555-0134", "x415-555-0134", "+1 (800) 555-0199 2024 078-05-1120",
		"card 4111 1111 1111 1111, +33 1 23 45 67 89", "a+49 30 1234567b", "1-800-555-0199.", "+44 20 7946 0958 2024"} {
		f.Add(s)
	}
	r := testRedactor(f)
	f.Fuzz(func(t *testing.T, s string) {
		hits := r.m.scan(s, nil)
		var on trigger
		for _, h := range hits {
			on |= h.bits
		}
		if on&tPhone == 0 {
			return
		}
		got := r.findPhones(nil, s, hits, 0)
		want := r.findPhonesIn(nil, s, 0, len(s))
		if len(got) != len(want) {
			t.Fatalf("%q: windows found %+v, the whole string %+v", s, got, want)
		}
		for i := range got {
			if got[i] != want[i] {
				t.Fatalf("%q: windows found %+v, the whole string %+v", s, got, want)
			}
		}
	})
}

// TestPhoneShaped holds phoneShaped to the regex it stands in front of: wherever it says no, the
// regex finds nothing. Every corpus text, and a large deterministic sample of strings over the
// characters phone numbers are written with, where the regex's forms are dense.
func TestPhoneShaped(t *testing.T) {
	var texts []string
	for _, name := range []string{"positive.jsonl", "negative.jsonl", "hard_positive.jsonl", "hard_negative.jsonl", "near_positive.jsonl", "near_negative.jsonl"} {
		for _, s := range readCorpus(t, name) {
			texts = append(texts, s.Text, string(s.JSON))
		}
	}
	const alphabet = "0123456789012345678923456789 .-+()x"
	seed := uint64(1)
	for range 200000 {
		b := make([]byte, 1+seed%24)
		for i := range b {
			seed = seed*6364136223846793005 + 1442695040888963407
			b[i] = alphabet[(seed>>33)%uint64(len(alphabet))]
		}
		texts = append(texts, string(b))
	}
	shaped := 0
	for _, s := range texts {
		checkPhoneShaped(t, s)
		if phoneShaped(s) {
			shaped++
		}
	}
	// The fast path must also let some through, or it would prove nothing.
	if shaped == 0 || shaped == len(texts) {
		t.Fatalf("phoneShaped said yes to %d of %d texts", shaped, len(texts))
	}
	for _, s := range []string{"load-1733240000000000000-5", "2026-01-01T00:00:00Z", "ORD-456", "10.0.0.1"} {
		if phoneShaped(s) {
			t.Errorf("phoneShaped(%q) = true; no phone number can be written in it", s)
		}
	}
}

func checkPhoneShaped(t *testing.T, s string) {
	if !phoneShaped(s) && phoneRe.FindAllStringIndex(s, -1) != nil {
		t.Fatalf("phoneShaped(%q) = false, but the phone regex matches %v", s, phoneRe.FindAllStringIndex(s, -1))
	}
}

// FuzzPhoneShaped: as TestPhoneShaped, on any string.
func FuzzPhoneShaped(f *testing.F) {
	for _, s := range []string{"call +44 20 7946 0958 or (415) 555-0134", "x415-555-0134", "1-800-555-0199.", "415.555.0134", "load-1733240000000000000-5"} {
		f.Add(s)
	}
	f.Fuzz(checkPhoneShaped)
}
