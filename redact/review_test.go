package redact

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

// leakCase is one input that holds values which must not survive sanitizing (leak) and text that
// must (keep: the data around them, or an ordinary value a detector must leave alone). When want
// is set, the output must be exactly that.
type leakCase struct {
	name, policy string
	path         string // for text: the field's path (default "text")
	in           string
	leak, keep   []string
	want         string
}

func checkLeakCase(t *testing.T, tc leakCase, out string) {
	t.Helper()
	for _, l := range tc.leak {
		if strings.Contains(out, l) {
			t.Errorf("%q survived\n in  %s\n out %s", l, tc.in, out)
		}
	}
	for _, k := range tc.keep {
		if !strings.Contains(out, k) {
			t.Errorf("%q lost\n in  %s\n out %s", k, tc.in, out)
		}
	}
	if tc.want != "" && out != tc.want {
		t.Errorf("\n in   %s\n got  %s\n want %s", tc.in, out, tc.want)
	}
}

func leakRedactor(t *testing.T, policy string) *Redactor {
	if policy == "" {
		return testRedactor(t)
	}
	return policyRedactor(t, policy)
}

// runTextCases runs String on each case's input.
func runTextCases(t *testing.T, cases []leakCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "text"
			}
			out, _ := leakRedactor(t, tc.policy).String(path, tc.in)
			checkLeakCase(t, tc, out)
		})
	}
}

// runJSONCases runs Value on each case's input and checks that the output is valid JSON that the
// ledger can canonicalize (I-JSON: no duplicate member names).
func runJSONCases(t *testing.T, cases []leakCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := leakRedactor(t, tc.policy).Value("arguments", json.RawMessage(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := event.Canonicalize(out); err != nil {
				t.Errorf("output cannot be canonicalized: %v\n in  %s\n out %s", err, tc.in, out)
			}
			checkLeakCase(t, tc, string(out))
		})
	}
}

// Values written next to non-ASCII text: CJK (no spaces between words), typographic quotes,
// currency signs, a non-breaking space. Only letters of scripts with case continue a word the
// way ASCII letters do ("ORD-4111…" stays an order number).
func TestReviewNonASCIIBoundaries(t *testing.T) {
	runTextCases(t, []leakCase{
		{name: "card in CJK text", in: "我的卡号是4111111111111111，谢谢", leak: []string{"4111111111111111"}, keep: []string{"我的卡号是", "，谢谢"}},
		{name: "grouped card in Japanese", in: "カード番号4111-1111-1111-1111です", leak: []string{"1111-1111"}, keep: []string{"です"}},
		{name: "card in curly quotes", in: "card “4111111111111111”", leak: []string{"4111111111111111"}},
		{name: "card before a euro sign", in: "paid 4111111111111111€", leak: []string{"4111111111111111"}},
		{name: "card before a no-break space", in: "card 4111111111111111\u00a0ok", leak: []string{"4111111111111111"}},
		{name: "ssn in Japanese", in: "社会保障番号078-05-1120です", leak: []string{"078-05-1120"}},
		{name: "ssn in guillemets", in: "«078-05-1120»", leak: []string{"078-05-1120"}},
		{name: "phone after CJK", in: "电话+8613812345678", leak: []string{"13812345678"}},
		{name: "NANP phone in Japanese", in: "電話は415-555-0134です", leak: []string{"555-0134"}},
		{name: "iban in guillemets", in: "«DE89370400440532013000»", leak: []string{"DE89370400440532013000"}},
		{name: "jwt before CJK", in: "令牌eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U日本",
			leak: []string{"dozjgNryP4J3jVmNHl0w5N"}},
		{name: "glued to a Latin word stays", in: "ORD-4111111111111111 and réf4111111111111111x", want: "ORD-4111111111111111 and réf4111111111111111x"},
		// Addresses with letters beyond ASCII in the local part or domain.
		{name: "accented local part", in: "write to josé@empresa.es", leak: []string{"josé", "empresa.es"}, keep: []string{"write to pii:email:"}},
		{name: "umlaut local part", in: "müller@firma.de", leak: []string{"mü", "firma.de"}},
		{name: "IDN domain", in: "user@münchen.de", leak: []string{"münchen"}},
		{name: "CJK around an address stays", in: "联系jane@example.com谢谢", leak: []string{"jane@"}, keep: []string{"联系pii:email:", "谢谢"}},
	})
	runJSONCases(t, []leakCase{
		{name: "card after invalid UTF-8", in: "{\"a\":\"\xff4111111111111111\"}", leak: []string{"4111111111111111"}},
	})
}

// Member names spelled to look like a key rule: full-width forms, invisible characters inside,
// homoglyphs from Cyrillic and Greek, punctuation or control characters around the name.
func TestReviewKeyNameSpellings(t *testing.T) {
	runJSONCases(t, []leakCase{
		{name: "full-width", in: `{"ＡＰＩ＿ＫＥＹ":"v-fullwidth-1"}`, leak: []string{"v-fullwidth-1"}},
		{name: "zero-width space", in: `{"pass\u200bword":"v-zwsp-1"}`, leak: []string{"v-zwsp-1"}},
		{name: "soft hyphen", in: `{"password\u00ad":"v-shy-1"}`, leak: []string{"v-shy-1"}},
		{name: "Cyrillic a", in: `{"аpi_key":"v-cyrillic-1"}`, leak: []string{"v-cyrillic-1"}},
		{name: "Greek omicron", in: `{"tοken":"v-greek-1"}`, leak: []string{"v-greek-1"}},
		{name: "header name with its colon", in: `{"Authorization:":"Basic dXNlcjpwYXNz"}`, leak: []string{"dXNlcjpwYXNz"}},
		{name: "trailing NUL", in: `{"api_key\u0000":"v-nul-1"}`, leak: []string{"v-nul-1"}},
		{name: "brackets", in: `{"params[api_key]":"v-bracket-1","$password":"v-dollar-1"}`, leak: []string{"v-bracket-1", "v-dollar-1"}},
		{name: "counts stay", in: `{"max_tokens":1024,"token_count":5,"tokens:":3,"password?policy":"strict","пароль":"x"}`,
			want: `{"max_tokens":1024,"token_count":5,"tokens:":3,"password?policy":"strict","пароль":"x"}`},
	})
	r := testRedactor(t)
	for _, name := range []string{"ＡＰＩ＿ＫＥＹ", "pass\u200bword", "аpi_key", "Authorization:", "api_key\x00", "params[api_key]"} {
		if _, _, ok := r.keyAction(name); !ok {
			t.Errorf("%q matches no key rule", name)
		}
		if !r.keys.maybe(name) {
			t.Errorf("%q: filtered out", name)
		}
	}
}

// truncate:N keeps the start of a value: whatever a detector finds in it goes first, whichever
// way the rule applies (a text field named by the rule, or name=value in text).
func TestReviewTruncateKeepsNoValue(t *testing.T) {
	const pol = "version: 1\nkeys:\n  - {name: output_text, action: \"truncate:20\"}\n  - {name: notes, action: \"truncate:12\"}\n"
	runTextCases(t, []leakCase{
		{name: "text field named by the rule", policy: pol, path: "output_text", in: "call jane@example.com today, card 4111 1111 1111 1111",
			leak: []string{"jane@", "example", "4111"}, keep: []string{"call pii:email:"}},
		{name: "secret at the start", policy: pol, path: "output_text", in: "ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5 was used",
			leak: []string{"ghp_aB3dE5gH7jK9"}},
		{name: "name=value in text", policy: pol, in: `notes: "call jane@example.com or later"`, leak: []string{"jane@", "jane@ex"}},
		{name: "name=value in text, card", policy: pol, in: `notes="4111 1111 1111 1111 is the card"`, leak: []string{"4111 1111"}},
	})
}

// "name=value" in text: escaped JSON, a scheme before the credential, command-line flags, header
// values inside a quoted argument, containers, PHP and Ruby hashes.
func TestReviewKeyValueText(t *testing.T) {
	runTextCases(t, []leakCase{
		{name: "escaped JSON", in: `request body={\"password\":\"hunter2x\",\"user\":\"bob\"}`, leak: []string{"hunter2x"}, keep: []string{`\"user\":\"bob\"`}},
		{name: "escaped JSON with spaces", in: `body: {\"api_key\": \"k-123456\"}`, leak: []string{"k-123456"}},
		{name: "twice escaped JSON", in: `{\\\"token\\\":\\\"t0ken-value\\\"}`, leak: []string{"t0ken-value"}},
		{name: "scheme after =", in: "Authorization=Bearer abcdefghij&x=1", leak: []string{"abcdefghij"}, keep: []string{"&x=1"}},
		{name: "Basic scheme after =", in: "authorization=Basic dXNlcjpwYXNz", leak: []string{"dXNlcjpwYXNz"}},
		{name: "flag and value", in: "docker login --password hunter2x registry.example.com", leak: []string{"hunter2x"}, keep: []string{"registry.example.com"}},
		{name: "flag and quoted value", in: `gh auth --token "ghx-123 456"`, leak: []string{"ghx-123"}},
		{name: "single-dash flag", in: "java -jar app.jar -password s3cr3t-pass", leak: []string{"s3cr3t-pass"}},
		{name: "flag in prose stays", in: "use the --token flag to log in", want: "use the --token flag to log in"},
		{name: "flag before another flag stays", in: "run --password --verbose", want: "run --password --verbose"},
		{name: "header in a quoted argument", in: `curl -H 'Authorization: Bearer sk_abc123' https://api.example.com/v1`,
			want: `curl -H 'Authorization: [REDACTED:authorization]' https://api.example.com/v1`},
		{name: "header in a double-quoted argument", in: `curl -H "Cookie: sid=abc123; a=b" -d x https://example.com`,
			leak: []string{"abc123"}, keep: []string{`" -d x https://example.com`}},
		{name: "header in escaped JSON", in: `{\"h\":\"Authorization: Bearer abc123def\", \"url\":\"https://example.com\"}`,
			leak: []string{"abc123def"}, keep: []string{`\", \"url\":\"https://example.com\"}`}},
		{name: "header with an escaped quote in its value", in: `-H "Cookie: a=\"b1x\"" next`, leak: []string{"b1x"}, keep: []string{`" next`}},
		{name: "object under a key rule", in: `log: {"password": {"value": "hunter2x"}, "a":`, leak: []string{"hunter2x"}, keep: []string{`"a":`}},
		{name: "array under a key rule, cut off", in: `{"api_key": ["k-1", "k-2`, leak: []string{"k-1", "k-2"}},
		{name: "empty object stays", in: `{"password": {}, "x":`, want: `{"password": {}, "x":`},
		{name: "hash rocket", in: `$cfg['api_key'] => 'abc123secret';`, leak: []string{"abc123secret"}},
		{name: "ruby hash", in: `{:password => "hunter2x"}`, leak: []string{"hunter2x"}},
	})
	// A string that is JSON nested beyond the depth limit is text; its key rules still hold.
	deep := strings.Repeat("[", 120) + `"` + strings.Repeat("[", 10) + `{\"password\":{\"x\":\"hunter2x\"}}` + strings.Repeat("]", 10) + `"` + strings.Repeat("]", 120)
	runJSONCases(t, []leakCase{
		{name: "double-encoded, cut off", in: `{"log":"{\"body\":\"{\\\"password\\\":\\\"hunter2x\\\", \\\"a"}`, leak: []string{"hunter2x"}},
		{name: "container in JSON past the depth limit", in: deep, leak: []string{"hunter2x"}},
	})
}

// An international number followed by more digits: the pattern runs on over them, and the
// number was judged by the digits of all (too many), so it was missed.
func TestReviewPhoneFollowedByDigits(t *testing.T) {
	runTextCases(t, []leakCase{
		{name: "and a year", in: "Call +44 20 7946 0958 2024 please", leak: []string{"7946 0958"}, keep: []string{" 2024 please"}},
		{name: "and an SSN", in: "+44 20 7946 0958 078-05-1120", leak: []string{"7946 0958", "078-05"}},
		{name: "and a zip code", in: "+33 1 23 45 67 89 75008 Paris", leak: []string{"45 67 89"}, keep: []string{"75008 Paris"}},
		{name: "digits without a plus stay", in: "order 1234 5678 90 2024", want: "order 1234 5678 90 2024"},
	})
}

func TestReviewURLCredentials(t *testing.T) {
	runTextCases(t, []leakCase{
		{name: "empty user", in: "REDIS_URL=redis://:s3cretpass@cache:6379/0", leak: []string{"s3cretpass"}, keep: []string{"@cache:6379/0"}},
		{name: "@ in the password", in: "postgres://app:p@ssw0rd@db.internal/app", leak: []string{"ssw0rd"}, keep: []string{"@db.internal/app"}},
		{name: "port and query are no credentials", in: "open https://example.com:8443?user=jane@example.com now",
			keep: []string{"https://example.com:8443?user="}, leak: []string{"jane@"}},
		{name: "user named token", in: "git clone https://token:ghp_abc123@github.com/org/repo",
			leak: []string{"ghp_abc123"}, keep: []string{"@github.com/org/repo"}},
		{name: "address in a URL path", in: "https://mastodon.example/@jane@example.com", leak: []string{"jane@example.com"}},
		{name: "password of digits and a query", in: "redis://:1234?x@cache", leak: []string{"1234?x"}},
	})
}

// A member name replaced by a detector must not collide with another: the ledger canonicalizes
// events as I-JSON, which refuses duplicate names, so the event would be refused.
func TestReviewReplacedNamesStayUnique(t *testing.T) {
	runJSONCases(t, []leakCase{
		{name: "two SSNs as names", in: `{"078-05-1120":{"n":1},"123-45-6789":{"n":2}}`, leak: []string{"078-05", "123-45"}},
		{name: "one address in two spellings", in: `{"Jane@example.com":1,"jane@example.com":2}`, leak: []string{"@example"}},
		{name: "cards in JSON in a string", in: `{"s":"{\"4111111111111111\":1,\"5500005555555559\":2}"}`, leak: []string{"4111", "5500"}},
		{name: "three phones", in: `{"(415) 555-0134":1,"415-555-0134":2,"+1 415 555 0134":3}`, leak: []string{"555-0134", "555 0134"}},
	})
}

// A private key as an array of lines (Ansible's stdout_lines, a log split by line): the lines
// after the BEGIN line are the key, up to and with the END line.
func TestReviewPEMInLines(t *testing.T) {
	const body1, body2 = "MIIEowIBAAKCAQEAu1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gun", "VTLw7onLRnrq0/IzW7yWR7QkrmBL7jTKEn5u+qKhbwKfBstIs+bMY2Zkp18gnTxK"
	runJSONCases(t, []leakCase{
		{name: "stdout_lines", in: `{"stdout_lines":["$ cat id_rsa","-----BEGIN RSA PRIVATE KEY-----","` + body1 + `","` + body2 + `","-----END RSA PRIVATE KEY-----","$ echo done"]}`,
			leak: []string{body1, body2}, keep: []string{`"$ cat id_rsa"`, `"$ echo done"`}},
		{name: "cut off", in: `["-----BEGIN PRIVATE KEY-----","` + body1 + `"]`, leak: []string{body1}},
		{name: "whole block in one line stays one", in: `["-----BEGIN PRIVATE KEY-----\n` + body1 + `\n-----END PRIVATE KEY-----","next line"]`,
			leak: []string{body1}, keep: []string{`"next line"`}},
		{name: "in a JSON string", in: `{"out":"[\"-----BEGIN EC PRIVATE KEY-----\",\"` + body1 + `\",\"-----END EC PRIVATE KEY-----\",\"ok\"]"}`,
			leak: []string{body1}, keep: []string{`\"ok\"`}},
	})
}

// Card numbers written as JSON numbers with a fraction or an exponent (Python floats, pandas).
func TestReviewCardAsFloat(t *testing.T) {
	runJSONCases(t, []leakCase{
		{name: "trailing .0", in: `{"n":4111111111111111.0}`, leak: []string{"4111111111111111"}},
		{name: "exponent", in: `{"n":4.111111111111111e15,"m":41111111111111.11E2}`, leak: []string{"4.111111111111111e15", "41111111111111.11E2"}},
		{name: "ordinary floats stay", in: `{"ts":1700000000000.0,"x":4111111111111111.5,"y":1.5e300,"z":4.1e15}`,
			want: `{"ts":1700000000000.0,"x":4111111111111111.5,"y":1.5e300,"z":4.1e15}`},
	})
}

// Sanitize covers every field of the event: identifiers carry no secret either (what a detector
// finds there is pseudonymized, so the field still links events), nor do redaction records a
// client sent.
func TestReviewSanitizeEveryField(t *testing.T) {
	r := testRedactor(t)
	const ghp = "ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5"
	ev := &event.Event{
		Kind: event.KindToolCall, Time: time.Unix(1700000000, 0), ToolName: "lookup", UserID: "jane@example.com", SubjectID: "078-05-1120", SubjectType: "patient",
		ApproverID: "bob@example.com", ToolCallID: "call_" + ghp, ErrorType: "AuthError " + ghp, StopReason: "end_turn",
		SessionID: "user:alice", AgentID: "token:support-agent-2", Model: "claude", AgentVersion: "1.0", UserRole: "nurse", ParentID: "apikey:reader1",
		Redactions: []event.Redaction{{Path: "arguments.jane@example.com", Kind: "email", Action: "pseudonymize"}},
	}
	if err := r.Sanitize(ev); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(ev)
	for _, leak := range []string{"jane@example.com", "bob@example.com", "078-05-1120", ghp[4:]} {
		if strings.Contains(string(b), leak) {
			t.Errorf("%q survived: %s", leak, b)
		}
	}
	// The same person links across fields and payloads.
	if want, _ := r.String("t", "jane@example.com"); ev.UserID != want {
		t.Errorf("user_id %q, want the address's pseudonym %q", ev.UserID, want)
	}
	if ev.SubjectID != r.Pseudonym("ssn", "078-05-1120") {
		t.Errorf("subject_id %q: want a pseudonym, not a marker shared by every subject", ev.SubjectID)
	}
	// Namespaced identifiers are no "name: value" credentials (the server writes apikey:<key name>).
	for _, f := range []string{ev.SessionID, ev.AgentID, ev.Model, ev.AgentVersion, ev.UserRole, ev.ParentID, ev.StopReason, ev.SubjectType, ev.ToolName} {
		if strings.Contains(f, "pii:") || strings.Contains(f, "REDACTED") {
			t.Errorf("ordinary identifier changed: %q", f)
		}
	}
	if err := ev.Validate(); err != nil {
		t.Errorf("sanitized event invalid: %v", err)
	}
}

func TestReviewPolicyResultsOrder(t *testing.T) {
	// A mapping's order means nothing in YAML: tools inherit the default however they are written.
	for _, y := range []string{
		"version: 1\nresults:\n  tools:\n    a: {keep: [x]}\n  default: {max_bytes: 10, keep: [t]}\n",
		"version: 1\nresults:\n  default: {max_bytes: 10, keep: [t]}\n  tools:\n    a: {keep: [x]}\n",
	} {
		p, err := Parse("p.yaml", []byte(y))
		if err != nil {
			t.Fatal(err)
		}
		if a := p.Tools["a"]; a.MaxBytes != 10 || strings.Join(a.Keep, ",") != "t,x" {
			t.Errorf("%s: tool a = %+v, want max_bytes 10 and keep [t x] from the default", y, a)
		}
	}
}

// Sanitize writes an identifier only when it changes it: the SDK hands an event to the ledger's
// goroutine and still reads its id (go test -race).
func TestReviewSanitizeWritesOnlyWhatChanges(t *testing.T) {
	r := testRedactor(t)
	ev := typicalToolCall()
	ev.ID, ev.SessionID, ev.AgentID, ev.Model = "01a23704-e0a9-74ce-8590-3d259617b9b9", "sess-123", "support-agent", "claude-sonnet"
	ev.Redactions = []event.Redaction{{Path: "arguments.note", Kind: "email", Action: "pseudonymize"}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := r.Sanitize(ev); err != nil {
			t.Error(err)
		}
	}()
	ids := ev.ID + ev.SessionID + ev.AgentID + ev.Model + ev.UserID + ev.ToolName + ev.Redactions[0].Path
	<-done
	if ids != "01a23704-e0a9-74ce-8590-3d259617b9b9sess-123support-agentclaude-sonnetusr_98765update_order_statusarguments.note" {
		t.Errorf("identifiers changed: %s", ids)
	}
}
