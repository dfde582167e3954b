package redact

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

func testKey(c byte) []byte { return []byte(strings.Repeat(string(c), KeySize)) }

func testRedactor(t testing.TB) *Redactor {
	t.Helper()
	r, err := New(Default(), testKey('k'))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func policyRedactor(t testing.TB, yaml string) *Redactor {
	t.Helper()
	p, err := Parse("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	r, err := New(p, testKey('k'))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestKeyMatching(t *testing.T) {
	r := testRedactor(t)
	tests := []struct {
		name string
		want string // the rule matched, "" for none
	}{
		{"api_key", "api_key"}, {"apiKey", "api_key"}, {"API-KEY", "api_key"}, {"x-api-key", "api_key"}, {"X_API_KEY", "api_key"},
		{"openai_api_key", "api_key"}, {"password", "password"}, {"db_password", "password"}, {"DB.Password", "password"},
		{"passwd", "passwd"}, {"Authorization", "authorization"}, {"proxy-authorization", "authorization"},
		{"Cookie", "cookie"}, {"Set-Cookie", "set-cookie"}, {"accessToken", "access_token"}, {"refresh-token", "refresh_token"},
		{"id_token", "token"}, {"csrfToken", "token"}, {"client_secret", "client_secret"}, {"webhook_secret", "secret"},
		{"cvv", "cvv"}, {"credit_card", "credit_card"}, {"cardNumber", "card_number"}, {"private_key", "private_key"},
		{"patient_name", "patient_name"}, {"patientName", "patient_name"}, {"SSN", "ssn"}, {"date_of_birth", "date_of_birth"},
		{"home_address", "address"}, {"phone_number", "phone_number"}, {"mobile phone", "phone"},
		// Counts of tokens are not tokens; names of secrets are not secrets.
		{"max_tokens", ""}, {"input_tokens", ""}, {"output_tokens", ""}, {"total_tokens", ""}, {"token_count", ""},
		{"tokens", ""}, {"tokenizer", ""}, {"token_type", ""}, {"secret_name", ""}, {"api_key_id", ""},
		{"password_policy", ""}, {"order_id", ""}, {"status", ""}, {"keyboard", ""}, {"success", ""}, {"x", ""}, {"", ""},
		{"ключ", ""}, {"пароль_token", "token"},
	}
	for _, tt := range tests {
		_, kind, ok := r.keyAction(tt.name)
		if ok != (tt.want != "") || kind != tt.want {
			t.Errorf("%q: matched %v as %q, want %q", tt.name, ok, kind, tt.want)
		}
		// The filter never turns away a name the full rule matches.
		if !r.keys.maybe(tt.name) && tt.want != "" {
			t.Errorf("%q: filtered out", tt.name)
		}
	}
}

func TestLastWord(t *testing.T) {
	for in, want := range map[string]string{"api_key": "key", "refreshToken": "token", "set-cookie": "cookie", "ssn": "ssn",
		"date_of_birth": "birth", "X-Api-Key": "key", "password_": "password"} {
		if got := lastWord(in); got != want {
			t.Errorf("lastWord(%q) = %q, want %q", in, got, want)
		}
	}
}

// valueCase is one Value golden case: input, expected output, expected records as path=kind/action.
type valueCase struct {
	name, policy, in, want string
	red                    []string
}

func runValueCases(t *testing.T, cases []valueCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := testRedactor(t)
			if tc.policy != "" {
				r = policyRedactor(t, tc.policy)
			}
			out, red, err := r.Value("arguments", json.RawMessage(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if !json.Valid(out) {
				t.Fatalf("invalid JSON %s", out)
			}
			if string(out) != tc.want {
				t.Errorf("got  %s\nwant %s", out, tc.want)
			}
			var got []string
			for _, x := range red {
				got = append(got, x.Path+"="+x.Kind+"/"+x.Action)
			}
			if !slices.Equal(got, tc.red) {
				t.Errorf("redactions\n got %q\nwant %q", got, tc.red)
			}
		})
	}
}

func TestValueNesting(t *testing.T) {
	runValueCases(t, []valueCase{
		{name: "nested objects and arrays",
			in:   `{"user":{"password":"hunter2","cards":[{"number":"4111 1111 1111 1111"},{"card_number":"5500005555555559"}]},"max_tokens":1024}`,
			want: `{"user":{"password":"[REDACTED:password]","cards":[{"number":"[REDACTED:credit_card]"},{"card_number":"[REDACTED:card_number]"}]},"max_tokens":1024}`,
			red:  []string{"arguments.user.password=password/redact", "arguments.user.cards[0].number=credit_card/redact", "arguments.user.cards[1].card_number=card_number/redact"}},
		{name: "json in a string",
			in:   `{"payload":"{\"api_key\":\"abc123\",\"note\":\"mail jane.doe@example.com\",\"n\":[1,2]}","count":3}`,
			want: `{"payload":"{\"api_key\":\"[REDACTED:api_key]\",\"note\":\"mail pii:email:c1f1ceedcfc54920\",\"n\":[1,2]}","count":3}`,
			red:  []string{"arguments.payload.api_key=api_key/redact", "arguments.payload.note=email/pseudonymize"}},
		{name: "json in a string in json in a string",
			in:   `["{\"inner\":\"{\\\"secret\\\":\\\"s3cr3t-value\\\"}\"}"]`,
			want: `["{\"inner\":\"{\\\"secret\\\":\\\"[REDACTED:secret]\\\"}\"}"]`,
			red:  []string{"arguments[0].inner.secret=secret/redact"}},
		{name: "broken json in a string is text", in: `{"log":"{\"password\": \"hunter2\", \"a\":"}`,
			want: `{"log":"{\"password\": \"[REDACTED:password]\", \"a\":"}`, red: []string{"arguments.log=password/redact"}},
		{name: "untouched keeps its bytes", in: "{ \"a\" : [ 1 , 2 ] ,\n\"b\":\"x\" }", want: "{ \"a\" : [ 1 , 2 ] ,\n\"b\":\"x\" }"},
		{name: "card as a json number", in: `{"n":4111111111111111,"ts":1700000000000,"f":-1.5e3}`,
			want: `{"n":"[REDACTED:credit_card]","ts":1700000000000,"f":-1.5e3}`, red: []string{"arguments.n=credit_card/redact"}},
		{name: "detected value in a member name never reaches the path", in: `{"jane@example.com":{"ssn":"078-05-1120"}}`,
			want: `{"pii:email:7caa814b4ccfe934":{"ssn":"pii:ssn:46809c4dbf943549"}}`,
			red:  []string{"arguments=email/pseudonymize", "arguments.pii:email:7caa814b4ccfe934.ssn=ssn/pseudonymize"}},
		{name: "escaped strings are decoded before detection", in: `{"t":"card\u0020 4111\u00201111 1111 1111"}`,
			want: `{"t":"card  [REDACTED:credit_card]"}`, red: []string{"arguments.t=credit_card/redact"}},
		{name: "key rule on a container applies to its leaves", in: `{"authorization":{"scheme":"Basic","creds":["dXNlcjpwYXNz",7],"ok":true,"v":null}}`,
			want: `{"authorization":{"scheme":"[REDACTED:authorization]","creds":["[REDACTED:authorization]","[REDACTED:authorization]"],"ok":true,"v":null}}`,
			red:  []string{"arguments.authorization.scheme=authorization/redact", "arguments.authorization.creds[0]=authorization/redact", "arguments.authorization.creds[1]=authorization/redact"}},
		{name: "booleans and null under a key rule stay", in: `{"password":null,"has_password":true}`, want: `{"password":null,"has_password":true}`},
		{name: "scalar top level", in: `"call +44 20 7946 0958"`, want: `"call pii:phone:c85979760fa732fb"`, red: []string{"arguments=phone/pseudonymize"}},
	})
}

func TestDrop(t *testing.T) {
	const pol = "version: 1\nkeys:\n  - {name: internal, action: drop}\n  - {name: trace, action: drop}\n"
	d := func(name, in, want string, red ...string) valueCase {
		return valueCase{name: name, policy: pol, in: in, want: want, red: red}
	}
	const rec = "arguments.internal=internal/drop"
	runValueCases(t, []valueCase{
		d("only", `{"internal":{"x":"4111111111111111"}}`, `{}`, rec),
		d("first", `{"internal":1,"a":2}`, `{"a":2}`, rec),
		d("middle", `{"a":1, "internal":[1,{"password":"p"}] ,"b":2}`, `{"a":1 ,"b":2}`, rec),
		d("last", `{"a":1,"internal":"x"}`, `{"a":1}`, rec),
		d("last two", `{"a":1,"internal":"x","trace":[]}`, `{"a":1}`, rec, "arguments.trace=trace/drop"),
		d("first two", `{"internal":1,"trace":2,"a":"jane@example.com"}`, `{"a":"pii:email:7caa814b4ccfe934"}`,
			rec, "arguments.trace=trace/drop", "arguments.a=email/pseudonymize"),
		d("all", "{ \"internal\":1 ,\n \"internal\":2 }", `{  }`, rec, rec),
		d("in array", `[{"internal":1},{"a":1,"internal":2}]`, `[{},{"a":1}]`, "arguments[0].internal=internal/drop", "arguments[1].internal=internal/drop"),
		d("nested", `{"a":{"b":{"trace":1,"c":2}}}`, `{"a":{"b":{"c":2}}}`, "arguments.a.b.trace=trace/drop"),
	})
}

func TestActions(t *testing.T) {
	r := policyRedactor(t, `version: 1
keys:
  - {name: notes, action: "truncate:5"}
  - {name: internal, action: drop}
  - {name: token, action: keep}
  - {name: ssn, action: redact}
  - {name: member_id, action: pseudonymize}
`)
	out, red, err := r.Value("arguments", json.RawMessage(`{"notes":"abcdéfghij","short_notes":"abc","internal":{"x":1},"token":"t-1","password":"p","ssn":"078-05-1120","member_id":12345}`))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"notes":"abcdé…","short_notes":"abc","token":"t-1","password":"[REDACTED:password]","ssn":"[REDACTED:ssn]","member_id":"` + r.Pseudonym("member_id", "12345") + `"}`
	if string(out) != want {
		t.Errorf("got  %s\nwant %s", out, want)
	}
	var acts []string
	for _, x := range red {
		acts = append(acts, x.Kind+"/"+x.Action)
	}
	if w := []string{"notes/truncate:5", "notes/truncate:5", "internal/drop", "password/redact", "ssn/redact", "member_id/pseudonymize"}; !slices.Equal(acts, w) {
		t.Errorf("records %v, want %v", acts, w)
	}
	// keep exempts the key rule, not the detectors: a secret under a kept name still goes.
	out, _, _ = r.Value("arguments", json.RawMessage(`{"token":"ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5"}`))
	if strings.Contains(string(out), "ghp_") {
		t.Errorf("kept name let a GitHub token through: %s", out)
	}
}

func TestDetectorActionsFromPolicy(t *testing.T) {
	r := policyRedactor(t, "version: 1\ndetectors: {email: redact, phone: \"off\", credit_card: \"truncate:4\"}\n")
	out, _ := r.String("text", "jane@example.com +1 415 555 0134 4111 1111 1111 1111")
	if out != "[REDACTED:email] +1 415 555 0134 4111…" {
		t.Errorf("got %q", out)
	}
	r = policyRedactor(t, "version: 1\nsecrets: none\n")
	if out, _ := r.String("text", "ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5"); !strings.HasPrefix(out, "ghp_") {
		t.Errorf("secrets none still redacts: %q", out)
	}
	r = policyRedactor(t, "version: 1\nsecrets: {rules: gitleaks, exclude: [github-pat]}\n")
	if out, _ := r.String("text", "ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5 xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx"); !strings.HasPrefix(out, "ghp_") || strings.Contains(out, "xoxb") {
		t.Errorf("exclude: %q", out)
	}
}

func TestPatterns(t *testing.T) {
	r := policyRedactor(t, `version: 1
patterns:
  - {name: employee_id, regex: 'EMP-\d{6}', action: pseudonymize, keywords: [emp-]}
  - {name: ticket_secret, regex: 'tks=([a-z0-9]{8})', action: redact}
`)
	out, red := r.String("note", "EMP-123456 opened it, tks=ab12cd34 given")
	want := r.Pseudonym("employee_id", "EMP-123456") + " opened it, tks=[REDACTED:ticket_secret] given"
	if out != want || len(red) != 2 {
		t.Errorf("got %q %v\nwant %q", out, red, want)
	}
	// A pattern without keywords runs on short strings too.
	if out, _, _ := r.Value("a", json.RawMessage(`["tks=ab12cd34"]`)); string(out) != `["tks=[REDACTED:ticket_secret]"]` {
		t.Errorf("got %s", out)
	}
}

func TestString(t *testing.T) {
	r := testRedactor(t)
	for _, tc := range []struct{ path, in, want string }{
		{"error", "Cannot cancel shipped order", "Cannot cancel shipped order"},
		{"error", "auth failed for jane@example.com with Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
			"auth failed for pii:email:7caa814b4ccfe934 with Bearer [REDACTED:jwt]"},
		{"error", "retry with Bearer 9f8e7d6c5b4a39281706", "retry with Bearer [REDACTED:bearer_token]"},
		{"error", "the API needs Bearer authentication", "the API needs Bearer authentication"},
		{"metadata.password", "hunter2", "[REDACTED:password]"},
		{"headers[0].authorization", "Basic dXNlcjpwYXNz", "[REDACTED:authorization]"},
		{"output_text", "set DATABASE_URL=postgres://app:Sup3rS3cret@db.internal:5432/app", "set DATABASE_URL=postgres://app:[REDACTED:url_credentials]@db.internal:5432/app"},
		{"output_text", "request headers:\nX-Api-Key: 8f14e45fceea167a5a36dedd4bea2543\nAccept: */*", "request headers:\nX-Api-Key: [REDACTED:api_key]\nAccept: */*"},
		{"output_text", "GET /v1/data?api_key=abcd1234efgh&page=2", "GET /v1/data?api_key=[REDACTED:api_key]&page=2"},
		{"output_text", "mailto:jane@example.com", "mailto:pii:email:7caa814b4ccfe934"},
		{"output_text", "the token: expired, retry", "the token: expired, retry"},
		{"output_text", "max_tokens=1024 input_tokens: 55", "max_tokens=1024 input_tokens: 55"},
	} {
		got, _ := r.String(tc.path, tc.in)
		if got != tc.want {
			t.Errorf("String(%s, %q)\n got %q\nwant %q", tc.path, tc.in, got, tc.want)
		}
	}
}

func TestPseudonyms(t *testing.T) {
	r := testRedactor(t)
	a, b := r.Pseudonym("patient_name", "Maria Garcia"), r.Pseudonym("patientName", "Maria Garcia")
	if a != b || !strings.HasPrefix(a, "pii:patient_name:") || len(a) != len("pii:patient_name:")+PseudonymHexChars {
		t.Errorf("pseudonyms %q %q", a, b)
	}
	if a == r.Pseudonym("patient_name", "Maria Garcia ") || a == r.Pseudonym("address", "Maria Garcia") {
		t.Error("different values or fields share a pseudonym")
	}
	other, _ := New(Default(), testKey('z'))
	if other.Pseudonym("patient_name", "Maria Garcia") == a {
		t.Error("another key gives the same pseudonym")
	}
	// The documented construction, computed independently: HMAC-SHA256(key, field ‖ 0 ‖ value).
	m := hmac.New(sha256.New, testKey('k'))
	m.Write([]byte("patientname\x00Maria Garcia"))
	if want := "pii:patient_name:" + hex.EncodeToString(m.Sum(nil))[:PseudonymHexChars]; a != want {
		t.Errorf("pseudonym %q, want %q", a, want)
	}
	bare := sha256.Sum256([]byte("Maria Garcia"))
	if strings.Contains(a, hex.EncodeToString(bare[:])[:8]) {
		t.Error("pseudonym looks like a bare hash")
	}
	out, _, _ := r.Value("result", json.RawMessage(`{"patient_name":"Maria Garcia","ssn":"123-45-6789"}`))
	if !strings.Contains(string(out), a) || strings.Contains(string(out), "Maria") || strings.Contains(string(out), "6789") {
		t.Errorf("PII fields: %s", out)
	}
	// One person, one token, however the address or number is written.
	e1, _ := r.String("t", "Jane.Doe@Example.com")
	e2, _ := r.String("t", "jane.doe@example.com")
	p1, _ := r.String("t", "(415) 555-0134")
	p2, _ := r.String("t", "+1 415-555-0134")
	if e1 != e2 || p1 != p2 || !strings.HasPrefix(p1, "pii:phone:") {
		t.Errorf("normalized pseudonyms differ: %q %q %q %q", e1, e2, p1, p2)
	}
}

func TestSummary(t *testing.T) {
	r := testRedactor(t)
	small := json.RawMessage(`{"status":"ok","contact":"jane@example.com"}`)
	out, err := r.Summary("get_order", small)
	if err != nil || string(out) != `{"status":"ok","contact":"pii:email:7caa814b4ccfe934"}` {
		t.Errorf("small result: %s %v", out, err)
	}
	big := json.RawMessage(`{"success":false,"error":"Cannot cancel shipped order","order_id":"ORD-456","card":"4111111111111111","detail":"` + strings.Repeat("d", 2000) + `"}`)
	out, _ = r.Summary("get_order", big)
	if string(out) != `{"_size":`+strconv.Itoa(len(big))+`,"_truncated":true,"error":"Cannot cancel shipped order","order_id":"ORD-456","success":false}` {
		t.Errorf("summary %s", out)
	}
	arr := json.RawMessage(`[` + strings.Repeat(`{"a":1},`, 200) + `{"a":1}]`)
	if out, _ := r.Summary("list", arr); string(out) != `{"_count":201,"_size":1609,"_truncated":true}` {
		t.Errorf("array summary %s", out)
	}
	mcp := json.RawMessage(`{"content":[{"type":"text","text":"` + strings.Repeat("x", 1200) + `"}],"isError":true}`)
	if out, _ := r.Summary("mcp_tool", mcp); !strings.Contains(string(out), `"isError":true`) {
		t.Errorf("MCP summary %s", out)
	}
	ev := &event.Event{Kind: event.KindToolCall, ToolName: "get_order", Result: big}
	if err := r.Sanitize(ev); err != nil {
		t.Fatal(err)
	}
	last := ev.Redactions[len(ev.Redactions)-1]
	if ev.Result != nil || !strings.HasPrefix(string(ev.ResultSummary), `{"_size":`+strconv.Itoa(len(big))) || last.Action != "summarize" ||
		!slices.ContainsFunc(ev.Redactions, func(x Redaction) bool { return x.Kind == "credit_card" }) {
		t.Errorf("sanitized event %+v", ev)
	}
	p := policyRedactor(t, `version: 1
results:
  default: {max_bytes: 100}
  tools:
    get_order: {mode: full}
    get_patient_record: {keep: [patient_id, mrn]}
`)
	if out, _ := p.Summary("get_order", big); len(out) < 2000 || strings.Contains(string(out), "4111111111111111") {
		t.Error("full mode summarized, or kept a card")
	}
	rec := json.RawMessage(`{"patient_id":"P-1","mrn":"MRN-778","notes":"` + strings.Repeat("n", 200) + `"}`)
	if out, _ := p.Summary("get_patient_record", rec); string(out) != `{"_size":`+strconv.Itoa(len(rec))+`,"_truncated":true,"mrn":"MRN-778","patient_id":"P-1"}` {
		t.Errorf("tool keep list: %s", out)
	}
}

func TestSanitizeEvent(t *testing.T) {
	r := testRedactor(t)
	ev := typicalToolCall()
	ev.Arguments = json.RawMessage(`{"customer_email":"jane@example.com","api_key":"sk-live-123"}`)
	ev.Error = "card 4111 1111 1111 1111 declined"
	if err := r.Sanitize(ev); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	for _, leak := range []string{"jane@example.com", "sk-live-123", "4111 1111"} {
		if strings.Contains(string(b), leak) {
			t.Errorf("%q survived: %s", leak, b)
		}
	}
	if err := r.Sanitize(&event.Event{Arguments: json.RawMessage(`{"a":`)}); err == nil {
		t.Error("malformed arguments accepted")
	}
}

func TestPolicyErrorsNameFileAndLine(t *testing.T) {
	want, err := os.ReadFile("testdata/policies/want-errors.txt")
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob("testdata/policies/*.yaml")
	lines := strings.Split(strings.TrimSpace(string(want)), "\n")
	if len(lines) != len(files) {
		t.Errorf("%d policy files, %d expected errors", len(files), len(lines))
	}
	for _, line := range lines {
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

func TestPolicyMerge(t *testing.T) {
	p, err := Parse("p.yaml", []byte("version: 1\npii_fields: [mrn]\nkeys:\n  - {name: API-Key, action: pseudonymize}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(p.PIIFields, "mrn") || !slices.Contains(p.PIIFields, "patient_name") {
		t.Errorf("pii_fields did not add to the defaults: %v", p.PIIFields)
	}
	n := 0
	for _, k := range p.Keys {
		if normalizeKey(k.Name) == "apikey" {
			n++
			if k.Action.Kind != "pseudonymize" {
				t.Errorf("override lost: %+v", k)
			}
		}
	}
	if n != 1 || len(p.Keys) != len(DefaultKeyRules) {
		t.Errorf("keys %+v", p.Keys)
	}
	none, err := Parse("p.yaml", []byte("version: 1\nextends: none\nkeys:\n  - {name: password, action: redact}\n"))
	if err != nil || len(none.Keys) != 1 || len(none.Detectors) != 0 || none.Secrets || len(none.PIIFields) != 0 {
		t.Errorf("extends none: %+v %v", none, err)
	}
}

func TestSecretRules(t *testing.T) {
	compiled, bad, pathOnly, excluded, err := SecretRuleStats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("gitleaks rules: %d compiled, %d bad regex, %d path-only, %d excluded", compiled, bad, pathOnly, excluded)
	// Gitleaks' rules are written for Go's regexp; if a release brings many it cannot compile,
	// this package's coverage has dropped and someone must look.
	if compiled < 200 || bad > 3 || excluded != len(ExcludedSecretRules) {
		t.Errorf("gitleaks rules: %d compiled, %d bad regex", compiled, bad)
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pseudonym.key")
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
	os.Chmod(path, 0o640)
	if _, err := LoadOrCreateKey(path); !errors.Is(err, ErrKeyFile) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group-readable key file: %v", err)
	}
	short := filepath.Join(dir, "short.key")
	os.WriteFile(short, []byte("abcd\n"), 0o600)
	if _, err := LoadOrCreateKey(short); !errors.Is(err, ErrKeyFile) {
		t.Errorf("short key file: %v", err)
	}
	long := filepath.Join(dir, "long.key")
	os.WriteFile(long, []byte(strings.Repeat("ab", KeySize+1)+"\n"), 0o600)
	if _, err := LoadOrCreateKey(long); !errors.Is(err, ErrKeyFile) {
		t.Errorf("long key file: %v", err)
	}
	if _, err := LoadOrCreateKey(dir); !errors.Is(err, ErrKeyFile) {
		t.Errorf("directory as key file: %v", err)
	}
	// Concurrent creators agree on one key.
	race := filepath.Join(dir, "race.key")
	keys := make([][]byte, 8)
	var wg sync.WaitGroup
	for i := range keys {
		wg.Go(func() { keys[i], _ = LoadOrCreateKey(race) })
	}
	wg.Wait()
	for _, k := range keys {
		if string(k) != string(keys[0]) || len(k) != KeySize {
			t.Fatal("concurrent creators got different keys")
		}
	}
	if _, err := New(Default(), k1[:16]); err == nil {
		t.Error("short key accepted by New")
	}
}

func TestValueRejectsMalformed(t *testing.T) {
	r := testRedactor(t)
	for _, in := range []string{`{"password":"x",}`, `{"a":1,}`, `[1,]`, `{"a"}`, `{"a":`, `"unterminated`, `{"a":tru}`, `[1 2]`,
		`{} {}`, `01`, `1.`, `-`, `"a` + "\x01" + `"`, `{"a":"\x"}`, `[` + strings.Repeat("[", 200) + strings.Repeat("]", 201)} {
		if out, _, err := r.Value("arguments", json.RawMessage(in)); err == nil {
			t.Errorf("Value(%q) = %s, want an error", in, out)
		}
	}
	for _, in := range []string{`{}`, `[]`, `{"a":[]}`, `{"password":null}`, ` {"password" : "x" , "b" : [ 1 , {} ] } `, `-0.5E+3`, `"\u00e9\n"`} {
		out, _, err := r.Value("arguments", json.RawMessage(in))
		if err != nil || !json.Valid(out) {
			t.Errorf("Value(%s) = %s, %v", in, out, err)
		}
	}
}

// TestConcurrent runs one Redactor from many goroutines (go test -race checks the key cache).
func TestConcurrent(t *testing.T) {
	r := testRedactor(t)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				in := `{"field_` + strings.Repeat("x", (g*200+i)%37) + `_password":"p","e":"jane@example.com"}`
				if _, red, err := r.Value("a", json.RawMessage(in)); err != nil || len(red) != 2 {
					t.Errorf("%s: %v %v", in, red, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestTruncateStillDetects(t *testing.T) {
	r := policyRedactor(t, "version: 1\nkeys:\n  - {name: notes, action: \"truncate:40\"}\n")
	out, red, _ := r.Value("a", json.RawMessage(`{"notes":"card 4111 1111 1111 1111, call +44 20 7946 0958 tomorrow please"}`))
	if strings.Contains(string(out), "4111") || !strings.HasSuffix(string(out), `…"}`) || len(red) != 3 {
		t.Errorf("got %s %+v", out, red)
	}
}

// TestLinearTime feeds long adversarial strings and checks that time grows linearly with length:
// sixteen times the bytes may take at most 64 times as long (a quadratic detector takes 256). It
// guards the algorithm, not a speed figure (those are benchmarks): the margins are wide so that a
// loaded machine does not fail it, and a quadratic path still does.
func TestLinearTime(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("timing test: slow, and meaningless under the race detector")
	}
	r := testRedactor(t)
	timeFor := func(unit string, n int) time.Duration {
		in, _ := json.Marshal(strings.Repeat(unit, n/len(unit)))
		best := time.Duration(1 << 62)
		for range 3 {
			start := time.Now()
			if _, _, err := r.Value("a", in); err != nil {
				t.Fatalf("%q: %v", unit, err)
			}
			best = min(best, time.Since(start))
		}
		return best
	}
	for _, unit := range []string{"key:", "key=", "a:b@", "@", "1 ", "4111 ", "+1 ", "ey", "sk", "AA00", "Bearer ", "-----BEGIN PRIVATE KEY-----",
		"password: \"", "{", "[\\\"", "x@y.io ", "123-45-", "\u00e9", "\xd4", "token=***", "://a:b@", "DE89 ", "eyJhbGciOiJIUzI1NiJ9.", "\\u0041KIA",
		"okta aB3_x9 ", "sumo_", "private-ai=", "jira:", "okta_aB3x9okta_aB3x9",
		"password: {{ ", "token: [REDACTED:", "password: [", "'Authorization: *** ' ", "\"Cookie: *\" ",
		"address: none; ", "phone: null|", "--password ", "-token -", `\"token\":\"`, `\\\"token\\\": \"`, "https://:a@", "a:b@c@",
		"Authorization=Bearer ", "api_key => ", "cfg['token'] = ", "ssn: {\"a\": \"", "j@é", "é@", "“4111111111111111” ",
		"Authorization: [REDACTED:a] ", "cookie: {{ x }} ", "phone: pii:a:b ", "Authorization: <a> ", "token: xxxx ", "Authorization: ***\t",
		"token=$A", "token=pii:", "token=%x%", "token:$A", "token=${", "Authorization=Bearer $A",
		"sk-", " sk-aB3", "AKIA1", " ghp_a1B2", "xoxb-1-", " pypi-a1"} {
		small, large := timeFor(unit, 10_000), timeFor(unit, 160_000)
		if large > 64*small && large > 100*time.Millisecond {
			t.Errorf("%q: %v for 10 KB, %v for 160 KB: not linear", unit, small, large)
		}
	}
}

func TestCutOutsideMarker(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"call failed for [REDACTED:cre", "call failed for "},
		{"call failed for [REDACT", "call failed for "},
		{"call failed for [", "call failed for ["},
		{"card [REDACTED:credit_card] declined", "card [REDACTED:credit_card] declined"},
		{"[REDACTED:ssn] and [REDACTED:em", "[REDACTED:ssn] and "},
		{"no marker [RESULT", "no marker [RESULT"},
	} {
		if got := cutOutsideMarker(tc.in); got != tc.want {
			t.Errorf("cutOutsideMarker(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	// Through Summary: an error whose 500th rune falls inside a marker.
	r := testRedactor(t)
	msg := strings.Repeat("x", 490) + " 4111111111111111 more"
	big, _ := json.Marshal(map[string]any{"error": msg, "blob": strings.Repeat("y", 1200)})
	out, err := r.Summary("t", big)
	if err != nil {
		t.Fatal(err)
	}
	var sum map[string]any
	json.Unmarshal(out, &sum)
	if e := sum["error"].(string); strings.Contains(e, "[RED") || !strings.HasSuffix(e, "x …") {
		t.Errorf("summary error ends %q", e[len(e)-20:])
	}
}

// What an auditor types into `agentaudit hash` is normalized as the detectors normalize what they
// find, so any spelling of the address or number finds the stored token.
func TestPseudonymOfSpellings(t *testing.T) {
	r := testRedactor(t)
	out, _ := r.String("output_text", "write to jane.doe@example.com or call +1 (415) 555-0134")
	for _, tc := range []struct{ field, value string }{
		{"email", "Jane.Doe@Example.COM"}, {"email", "jane.doe@example.com"},
		{"phone", "415-555-0134"}, {"phone", "+1 415 555 0134"}, {"phone", "(415) 555-0134"},
	} {
		if p := r.Pseudonym(tc.field, tc.value); !strings.Contains(out, p) {
			t.Errorf("Pseudonym(%s, %q) = %s, not in %q", tc.field, tc.value, p, out)
		}
	}
}
