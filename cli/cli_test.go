package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"database/sql"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"
)

// run runs one command line against dir and returns its exit code, stdout and stderr.
func run(t *testing.T, dir string, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), append([]string{"--data", dir}, args...), strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestInitKeyFiles(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	code, out, _ := run(t, dir, "", "init", "--origin", "example.com/audit")
	if code != 0 || !strings.HasPrefix(out, "example.com/audit+") {
		t.Fatalf("init: %d %q", code, out)
	}
	fi, err := os.Stat(filepath.Join(dir, "signing.key"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("signing key mode %v (%v), want 0600", fi.Mode().Perm(), err)
	}
	if _, _, e := run(t, dir, "", "key"); e != "" {
		t.Errorf("key wrote to stderr: %q", e)
	}
	if code, k, _ := run(t, dir, "", "key"); code != 0 || k != out {
		t.Errorf("key printed %q, init printed %q", k, out)
	}
	if code, _, e := run(t, dir, "", "init"); code != 1 || !strings.Contains(e, "already initialized") {
		t.Errorf("second init: %d %q", code, e)
	}
	// A signing key others can read is refused, without printing the key.
	os.Chmod(filepath.Join(dir, "signing.key"), 0o644)
	code, _, e := run(t, dir, "", "append", "-")
	if code != 1 || !strings.Contains(e, "chmod 600") || strings.Contains(e, "PRIVATE+KEY") {
		t.Errorf("open key readable by others: %d %q", code, e)
	}
}

func TestAppendReportsBadLines(t *testing.T) {
	dir := t.TempDir()
	run(t, dir, "", "init")
	code, out, errs := run(t, dir, "", "append", "testdata/bad-lines.jsonl")
	if code != 1 {
		t.Errorf("exit %d, want 1 when lines are rejected", code)
	}
	if !strings.Contains(out, "appended 2 events (0 already stored), 7 lines rejected") {
		t.Errorf("summary: %q", out)
	}
	for _, want := range []string{
		`bad-lines.jsonl:2: field "turn": must be an integer`,
		`bad-lines.jsonl:3: invalid event: invalid JSON at byte`,
		`bad-lines.jsonl:4: field "usr_id": unknown field`,
		`bad-lines.jsonl:6: invalid event: invalid JSON at byte 76: duplicate member name "user_id"`,
		`bad-lines.jsonl:8: field "kind": unknown kind "telepathy"`,
		`bad-lines.jsonl:9: invalid event: an event must be a JSON object`,
		`bad-lines.jsonl:10: invalid event: invalid JSON at byte 74: invalid UTF-8 in string`,
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errs)
		}
	}
	// Nothing of a rejected line is stored.
	for _, id := range []string{"bad-type", "unknown", "dup-key", "bad-kind", "bad-utf8"} {
		if code, _, _ := run(t, dir, "", "get", id); code != 1 {
			t.Errorf("rejected event %s was stored", id)
		}
	}
	code, out, _ = run(t, dir, "", "get", "ok-2")
	if code != 0 || !strings.Contains(out, `"seq": 1`) || !strings.Contains(out, `"decision": "retry"`) {
		t.Errorf("get ok-2: %d %s", code, out)
	}
	// Appending the same file again stores nothing new.
	_, out, _ = run(t, dir, "", "append", "testdata/bad-lines.jsonl")
	if !strings.Contains(out, "appended 0 events (2 already stored)") {
		t.Errorf("retry: %q", out)
	}
}

func TestOversizedLine(t *testing.T) {
	dir := t.TempDir()
	run(t, dir, "", "init")
	big := `{"kind":"custom","time":"2026-01-01T00:00:00Z","output_text":"` + strings.Repeat("x", 5000) + `"}` + "\n"
	code, out, errs := run(t, dir, big+`{"kind":"custom","time":"2026-01-01T00:00:00Z"}`+"\n", "append", "--max-event-bytes", "4096", "-")
	if code != 1 || !strings.Contains(errs, "-:1: invalid event: event too large") || !strings.Contains(out, "appended 1 events") {
		t.Errorf("oversized: %d %q %q", code, out, errs)
	}
	huge := strings.Repeat("y", maxLine+10)
	code, _, errs = run(t, dir, huge+"\n", "append", "-")
	if code != 1 || !strings.Contains(errs, "-:1: line longer than") {
		t.Errorf("huge line: %d %q", code, errs)
	}
}

// sampleLog initializes dir and appends the sample session file.
func sampleLog(t *testing.T, dir string) {
	t.Helper()
	run(t, dir, "", "init")
	if code, out, errs := run(t, dir, "", "append", "sample-session.jsonl"); code != 0 || !strings.Contains(out, "appended 12 events") {
		t.Fatalf("append sample: %d %s %s", code, out, errs)
	}
}

func TestDemo(t *testing.T) {
	dir := t.TempDir()
	for i := 0; i < 2; i++ { // a second run adds sessions to the same log
		code, out, errs := run(t, dir, "", "demo")
		if code != 0 {
			t.Fatalf("demo run %d: %d\n%s\n%s", i, code, out, errs)
		}
		for _, want := range []string{
			"== customer support: cancel a shipped order",
			`❌ update_order_status({"order_id": "ORD-456", "status": "cancelled"}) → error: Cannot cancel shipped order`,
			"usr_98765 (support_agent) → support-v1@1.4.2/claude-opus-4-6 → update_order_status [user_request]",
			"👍 initiate_return approved by mgr_2002",
			"[BREAK-GLASS: unconscious patient in the ER, allergy check]",
			"OK: nothing was changed",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("demo run %d output lacks %q:\n%s", i, want, out)
			}
		}
	}
	// The API key the agents sent, and the patient's name, are nowhere on disk.
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			for _, secret := range []string{demoAPIKey, "Alex Doe"} {
				if bytes.Contains(b, []byte(secret)) {
					t.Errorf("%q is in %s", secret, p)
				}
			}
		}
		return nil
	})
}

func TestVerifyProveTamper(t *testing.T) {
	dir := t.TempDir()
	sampleLog(t, dir)
	_, vkey, _ := run(t, dir, "", "key")
	keyFile := filepath.Join(t.TempDir(), "auditor.key")
	os.WriteFile(keyFile, []byte(vkey), 0o644)
	_, saved, _ := run(t, dir, "", "checkpoint")
	savedFile := filepath.Join(t.TempDir(), "saved.txt")
	os.WriteFile(savedFile, []byte(saved), 0o644)

	code, bundle, errs := run(t, dir, "", "prove", "0192f5a0-0000-7000-8000-000000000005")
	if code != 0 {
		t.Fatalf("prove: %s", errs)
	}
	bf := filepath.Join(t.TempDir(), "bundle.json")
	os.WriteFile(bf, []byte(bundle), 0o644)
	if code, out, errs := run(t, dir, "", "verify-bundle", "--key", keyFile, bf); code != 0 || !strings.Contains(out, "OK: event 0192f5a0-0000-7000-8000-000000000005 is at seq 4") {
		t.Fatalf("verify-bundle: %d %s %s", code, out, errs)
	}
	if code, _, errs := run(t, dir, "", "verify-bundle", bf); code != 2 || !strings.Contains(errs, "--key is required") {
		t.Errorf("verify-bundle without a key: %d %s", code, errs)
	}
	var b map[string]any
	json.Unmarshal([]byte(bundle), &b)
	b["event"].(map[string]any)["error"] = "all fine"
	forged, _ := json.Marshal(b)
	os.WriteFile(bf, forged, 0o644)
	if code, _, errs := run(t, dir, "", "verify-bundle", "--key", vkey, bf); code != 1 || !strings.Contains(errs, "bundle does not verify") {
		t.Errorf("forged bundle: %d %s", code, errs)
	}

	// Edit the database file behind the triggers' back, the body and its query column alike.
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DROP TRIGGER events_no_update", `UPDATE events SET body = replace(body, '"duration_ms":38', '"duration_ms":3'), duration_ms = 3 WHERE seq = 4`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	code, out, _ := run(t, dir, "", "verify", "--key", keyFile)
	if code != 1 || !strings.Contains(out, "FAILED: 1 problem(s)") || !strings.Contains(out, "modified seq 4 (id 0192f5a0-0000-7000-8000-000000000005)") {
		t.Errorf("verify after tampering: %d\n%s", code, out)
	}
	code, out, _ = run(t, dir, "", "verify", "--key", keyFile, "--json")
	var rep struct {
		Problems []struct {
			Kind string
			Seq  int64
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 1 || len(rep.Problems) != 1 || rep.Problems[0].Seq != 4 {
		t.Errorf("verify --json: %d %v %s", code, err, out)
	}
	if code, out, _ := run(t, dir, "", "verify", "--key", keyFile, "--checkpoint", savedFile); code != 1 || !strings.Contains(out, "modified seq 4") {
		t.Errorf("verify --checkpoint: %d %s", code, out)
	}
}

// An insider with file access and the signing key rewrites the log — seq 38 replaced, seq 39
// dropped — and re-signs it. The log verifies on its own; the checkpoint an auditor saved when it
// had 40 events shows history was rewritten, not only that an event is gone.
func TestVerifyCheckpointRewritten(t *testing.T) {
	dir := t.TempDir()
	run(t, dir, "", "init")
	events := func(n, changed int) string {
		var b strings.Builder
		for i := range n {
			tool := "lookup_order"
			if i == changed {
				tool = "refund_order"
			}
			fmt.Fprintf(&b, `{"id":"0192f5a0-0000-7000-8000-%012d","session_id":"s-1","kind":"tool_call","time":"2026-03-02T09:14:%02d.000Z","agent_id":"support-v1","user_id":"usr_1","tool_name":%q}`+"\n", i+1, i, tool)
		}
		return b.String()
	}
	if code, out, errs := run(t, dir, events(40, -1), "append", "-"); code != 0 || !strings.Contains(out, "appended 40 events") {
		t.Fatalf("append: %d %s %s", code, out, errs)
	}
	_, saved, _ := run(t, dir, "", "checkpoint")
	savedFile := filepath.Join(t.TempDir(), "saved.txt")
	os.WriteFile(savedFile, []byte(saved), 0o644)

	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"DROP TRIGGER events_no_delete", "DROP TRIGGER tree_hashes_no_delete", "DROP TRIGGER checkpoints_no_delete",
		"DELETE FROM events", "DELETE FROM tree_hashes", "DELETE FROM checkpoints"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	if code, out, errs := run(t, dir, events(39, 38), "append", "-"); code != 0 || !strings.Contains(out, "appended 39 events") {
		t.Fatalf("append the rewritten log: %d %s %s", code, out, errs)
	}
	run(t, dir, "", "checkpoint")
	if code, out, _ := run(t, dir, "", "verify"); code != 0 {
		t.Fatalf("the rewritten log should verify on its own: %d\n%s", code, out)
	}
	code, out, _ := run(t, dir, "", "verify", "--checkpoint", savedFile)
	for _, want := range []string{
		"FAILED: 2 problem(s)",
		"truncated seq 39: a signed checkpoint covers 40 events; the log has 39",
		"inconsistent: the saved checkpoint signs 40 events and the log has 39, which cannot reproduce its root: history was rewritten",
		"which events differ cannot be told from the checkpoint alone",
	} {
		if code != 1 || !strings.Contains(out, want) {
			t.Errorf("verify --checkpoint: exit %d, output lacks %q:\n%s", code, want, out)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{{}, {"frobnicate"}, {"get"}, {"get", "a", "b"}, {"tail", "-n", "0"}, {"verify", "extra"}} {
		if code, _, _ := run(t, dir, "", args...); code != 2 {
			t.Errorf("%v: exit %d, want 2", args, code)
		}
	}
	if code, _, errs := run(t, filepath.Join(dir, "nothing"), "", "verify"); code != 1 || !strings.Contains(errs, "not initialized") {
		t.Errorf("verify on an empty directory: %d %s", code, errs)
	}
}

func TestQueryCommands(t *testing.T) {
	dir := t.TempDir()
	sampleLog(t, dir)
	code, out, errs := run(t, dir, "", "timeline", "sess-demo-001")
	if code != 0 || !strings.Contains(out, "[Turn 1] ❌ update_order_status(") || !strings.Contains(out, "usr_98765 (support_agent) → support-v1/claude-opus-4-6 → update_order_status [user_request]") {
		t.Errorf("timeline: %d %s %s", code, out, errs)
	}
	if code, out, _ := run(t, dir, "", "timeline", "--format", "json", "sess-demo-001"); code != 0 || !strings.Contains(out, `"children"`) {
		t.Errorf("timeline json: %d %s", code, out)
	}
	if code, _, errs := run(t, dir, "", "timeline", "nope"); code != 1 || !strings.Contains(errs, "no events") {
		t.Errorf("unknown session: %d %s", code, errs)
	}
	if code, out, _ := run(t, dir, "", "stats", "tools"); code != 0 || !strings.Contains(out, "update_order_status") {
		t.Errorf("stats: %d %s", code, out)
	}
	code, out, _ = run(t, dir, "", "report", "access", "--subject", "patient:P-123", "--from", "2026-01-01", "--to", "2026-03-31")
	var rep struct {
		Total             int  `json:"total"`
		BreakGlass        int  `json:"break_glass"`
		IntegrityVerified bool `json:"integrity_verified"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || code != 0 || rep.Total != 2 || rep.BreakGlass != 1 || !rep.IntegrityVerified {
		t.Errorf("report: %d %v %+v", code, err, rep)
	}
	for _, f := range []string{"csv", "html"} {
		if code, out, _ := run(t, dir, "", "report", "access", "--subject", "patient:P-123", "--from", "2026-01-01", "--to", "2026-03-31", "--format", f); code != 0 || !strings.Contains(out, "dr_jones") {
			t.Errorf("report %s: %d %s", f, code, out)
		}
	}
	if code, _, _ := run(t, dir, "", "report", "access", "--subject", "patient:P-123", "--from", "yesterday", "--to", "2026-03-31"); code != 2 {
		t.Errorf("bad time: exit %d, want 2", code)
	}
	code, out, errs = run(t, dir, "", "query", "--tool", "get_patient_record", "--limit", "1")
	if code != 0 || strings.Count(out, "\n") != 1 || !strings.Contains(errs, "more: --cursor ") {
		t.Fatalf("query page 1: %d %s %s", code, out, errs)
	}
	cursor := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(errs[strings.Index(errs, "more:"):]), "more: --cursor"))
	code, out, errs = run(t, dir, "", "query", "--tool", "get_patient_record", "--limit", "1", "--cursor", cursor)
	if code != 0 || !strings.Contains(out, "dr_jones") || strings.Contains(errs, "more:") {
		t.Errorf("query page 2: %d %s %s", code, out, errs)
	}
	if code, out, _ := run(t, dir, "", "query", "--failures", "--json"); code != 0 || !strings.Contains(out, "Cannot cancel shipped order") {
		t.Errorf("failures: %d %s", code, out)
	}
	if code, _, _ := run(t, dir, "", "query", "--cursor", "garbage"); code != 2 {
		t.Errorf("bad cursor: exit %d, want 2", code)
	}
}

// TestNoSecretReachesTheDisk appends events carrying planted secrets and PII through the CLI,
// then reads the raw bytes of every file in the data directory.
func TestNoSecretReachesTheDisk(t *testing.T) {
	dir := t.TempDir()
	run(t, dir, "", "init")
	planted := map[string]string{
		"card":      "4111 1111 1111 1111",
		"ssn":       "078-05-1120",
		"password":  "correct-horse-battery-staple",
		"aws":       "AKIAQYLPMN5HHHFPZAM2",
		"github":    "ghp_R8mQ2vX7pLk3Zt9Wb4Nc6Yd1Fh5Jg0Se2Aa7",
		"bearer":    "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjMifQ.c2lnbmF0dXJlLXNpZ25hdHVyZQ",
		"name":      "Maria Garcia",
		"email":     "maria.garcia@example.org",
		"dob":       "1961-04-12",
		"apikey":    "sk-demo-live-9f8e7d6c5b4a3f2e1d0c",
		"nested":    "s3cr3t-in-an-array",
		"jsonstr":   "tok-inside-json-string-42",
		"rationale": "5500 0055 5555 5559",
		"urlpass":   "Pg-s3cret-pass-77",
		"flag":      "flag-secret-hunter22",
		"pembody":   "MIIEowIBAAKCAQEAxq9bW2kxq9bW2kxq9bW2kxq9bW2k",
		"useremail": "dr.who@hospital.example",
		"iban":      "DE89370400440532013000",
		"phone":     "+44 20 7946 0958",
	}
	lines := []string{
		`{"id":"p1","session_id":"s","kind":"tool_call","tool_name":"charge","time":"2026-01-01T00:00:00Z","arguments":{"card":"` + planted["card"] + `","patient_name":"` + planted["name"] + `","headers":{"Authorization":"Bearer ` + planted["bearer"] + `","x-api-key":"` + planted["apikey"] + `"}}}`,
		`{"id":"p2","session_id":"s","kind":"tool_call","tool_name":"lookup","time":"2026-01-01T00:00:01Z","arguments":{"creds":[{"password":"` + planted["password"] + `"},{"secret":"` + planted["nested"] + `"}],"payload":"{\"token\":\"` + planted["jsonstr"] + `\"}"},"result":{"patient_name":"` + planted["name"] + `","ssn":"` + planted["ssn"] + `","date_of_birth":"` + planted["dob"] + `","contact":"write to ` + planted["email"] + `"}}`,
		`{"id":"p3","session_id":"s","kind":"llm_call","time":"2026-01-01T00:00:02Z","input_messages":[{"role":"user","content":"my aws key is ` + planted["aws"] + ` and my github token ` + planted["github"] + `"}],"output_text":"noted"}`,
		`{"id":"p4","session_id":"s","kind":"reasoning","time":"2026-01-01T00:00:03Z","decision":"refund","rationale":"card ` + planted["rationale"] + ` was charged twice"}`,
		// Credentials in a URL and a command line, a private key as an array of lines, an e-mail
		// address as the user's id, an IBAN and a phone number in an error message.
		`{"id":"p5","session_id":"s","kind":"tool_call","tool_name":"shell","time":"2026-01-01T00:00:04Z","user_id":"` + planted["useremail"] + `",` +
			`"arguments":{"cmd":"psql postgres://app:` + planted["urlpass"] + `@db:5432/x && deploy --password ` + planted["flag"] + `"},` +
			`"result":{"stdout_lines":["-----BEGIN RSA PRIVATE KEY-----","` + planted["pembody"] + `","-----END RSA PRIVATE KEY-----"]},` +
			`"error":"payout to ` + planted["iban"] + ` failed, call ` + planted["phone"] + `"}`,
	}
	code, out, errs := run(t, dir, strings.Join(lines, "\n")+"\n", "append", "-")
	if code != 0 || !strings.Contains(out, "appended 5 events") {
		t.Fatalf("append: %d %s %s", code, out, errs)
	}
	var files []string
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			files = append(files, p)
			data, _ := os.ReadFile(p)
			for what, v := range planted {
				if bytes.Contains(data, []byte(v)) {
					t.Errorf("planted %s %q is in %s", what, v, p)
				}
			}
		}
		return nil
	})
	if len(files) < 3 {
		t.Fatalf("only %d files in the data directory", len(files))
	}
	// The same patient has the same pseudonym in both events, and hash finds it.
	_, pseudo, _ := run(t, dir, "", "hash", "--field", "patient_name", planted["name"])
	pseudo = strings.TrimSpace(pseudo)
	if !strings.HasPrefix(pseudo, "pii:patient_name:") {
		t.Fatalf("hash printed %q", pseudo)
	}
	_, e1, _ := run(t, dir, "", "get", "p1")
	_, e2, _ := run(t, dir, "", "get", "p2")
	if !strings.Contains(e1, pseudo) || !strings.Contains(e2, pseudo) {
		t.Errorf("pseudonym %s not in both events:\n%s\n%s", pseudo, e1, e2)
	}
	if !strings.Contains(e2, `"redactions"`) || !strings.Contains(e2, `"path": "arguments.creds[0].password"`) {
		t.Errorf("the event does not record what was redacted:\n%s", e2)
	}
	// A user whose id was an e-mail address is found by its pseudonym.
	_, userPseudo, _ := run(t, dir, "", "hash", "--field", "email", planted["useremail"])
	if _, e5, _ := run(t, dir, "", "get", "p5"); !strings.Contains(e5, `"user_id": "`+strings.TrimSpace(userPseudo)+`"`) {
		t.Errorf("user_id is not the pseudonym %s:\n%s", userPseudo, e5)
	}
	// The log still verifies: sanitization happens before hashing.
	if code, out, _ := run(t, dir, "", "verify"); code != 0 {
		t.Errorf("verify: %s", out)
	}
}

func TestBrokenPolicyRefused(t *testing.T) {
	dir := t.TempDir()
	run(t, dir, "", "init")
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(policy, []byte("version: 1\nkeys:\n  - name: x\n    action: vaporize\n"), 0o644)
	code, _, errs := run(t, dir, `{"kind":"custom","time":"2026-01-01T00:00:00Z"}`+"\n", "--policy", policy, "append", "-")
	if code != 1 || !strings.Contains(errs, "policy.yaml:3: key rule \"x\": unknown action \"vaporize\"") {
		t.Errorf("broken policy: %d %s", code, errs)
	}
}

func TestExportCommand(t *testing.T) {
	dir := t.TempDir()
	sampleLog(t, dir)
	code, out, errs := run(t, dir, "", "export", "--format", "fhir", "--subject", "patient:P-123")
	var b struct {
		ResourceType string `json:"resourceType"`
		Entry        []struct {
			Resource struct {
				PurposeOfEvent []struct {
					Coding []struct{ Code string } `json:"coding"`
				} `json:"purposeOfEvent"`
			} `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal([]byte(out), &b); err != nil || code != 0 || b.ResourceType != "Bundle" || len(b.Entry) != 2 {
		t.Fatalf("fhir export: %d %v %s %s", code, err, out, errs)
	}
	if b.Entry[0].Resource.PurposeOfEvent[0].Coding[0].Code != "TREAT" {
		t.Errorf("purpose: %+v", b.Entry[0].Resource)
	}
	for _, f := range []string{"ocsf", "jsonl", "csv"} {
		code, out, _ := run(t, dir, "", "export", "--format", f)
		if lines := strings.Count(out, "\n"); code != 0 || lines < 12 {
			t.Errorf("%s export: %d, %d lines", f, code, lines)
		}
	}
	if code, _, errs := run(t, dir, "", "export", "--format", "xml"); code != 2 || !strings.Contains(errs, "unknown export format") {
		t.Errorf("bad format: %d %s", code, errs)
	}
}

func TestServeAndKeys(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var serveErr syncBuffer
	go func() {
		done <- Run(ctx, []string{"--data", dir, "serve", "--listen", addr, "--demo"}, strings.NewReader(""), io.Discard, &serveErr)
	}()
	var admin []byte
	for i := 0; i < 100 && len(admin) == 0; i++ {
		time.Sleep(50 * time.Millisecond)
		admin, _ = os.ReadFile(filepath.Join(dir, "admin.key"))
	}
	if fi, err := os.Stat(filepath.Join(dir, "admin.key")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin key: %v", err)
	}
	call := func(key, method, path, body string) (int, string) {
		for i := 0; i < 50; i++ {
			req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(key))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			return resp.StatusCode, string(b)
		}
		t.Fatal("the server never answered")
		return 0, ""
	}
	if code, b := call(string(admin), "POST", "/v1/events", `{"id":"srv-1","kind":"custom","time":"2026-01-01T00:00:00Z"}`); code != 200 {
		t.Fatalf("ingest as admin: %d %s", code, b)
	}
	// --demo recorded the example agents' sessions first.
	if code, b := call(string(admin), "GET", "/v1/events?tool_name=get_patient_record", ""); code != 200 || !strings.Contains(b, "P-123") {
		t.Errorf("demo data: %d %s", code, b)
	}
	// The demo's break-glass access is news to the alert engine, not history: it raised its alert.
	for i := 0; ; i++ {
		code, b := call(string(admin), "GET", "/v1/alerts", "")
		if code == 200 && strings.Contains(b, "break_glass") {
			break
		}
		if i == 100 {
			t.Errorf("no break_glass alert for the demo's break-glass access: %d %s", code, b)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	code, out, _ := run(t, dir, "", "keys", "create", "--role", "reader", "--name", "dashboards")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	reader := lines[len(lines)-1]
	if code != 0 || !strings.HasPrefix(reader, "aak_") {
		t.Fatalf("keys create: %d %q", code, out)
	}
	time.Sleep(1100 * time.Millisecond) // the server rereads the key file at most once a second
	if code, b := call(reader, "GET", "/v1/events/srv-1", ""); code != 200 {
		t.Fatalf("new reader key: %d %s", code, b)
	}
	if _, list, _ := run(t, dir, "", "keys", "list"); !strings.Contains(list, "dashboards") || strings.Contains(list, reader) {
		t.Errorf("keys list: %s", list)
	}
	run(t, dir, "", "keys", "revoke", "dashboards")
	time.Sleep(1100 * time.Millisecond)
	if code, _ := call(reader, "GET", "/v1/events/srv-1", ""); code != 401 {
		t.Errorf("revoked key: %d, want 401", code)
	}
	// The README's "or without a server: agentaudit demo", and append, while the server holds
	// the directory: both go through its API (issue 11.12).
	if code, out, errs := run(t, dir, "", "demo"); code != 0 || !strings.Contains(out, "get_patient_record") || !strings.Contains(out, "OK: nothing was changed") {
		t.Errorf("demo while serving: %d %s %s", code, out, errs)
	}
	code, out, errs := run(t, dir, `{"id":"via-api","kind":"custom"}`+"\n"+`{"kind":"nope"}`+"\n", "append", "-")
	if code != 1 || !strings.Contains(out, "appended 1 events") || !strings.Contains(errs, "-:2:") || !strings.Contains(errs, "through the server") {
		t.Errorf("append while serving: %d %q %q", code, out, errs)
	}
	if code, b := call(string(admin), "GET", "/v1/events/via-api", ""); code != 200 {
		t.Errorf("appended through the API: %d %s", code, b)
	}
	cancel() // as SIGTERM does
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d: %s", code, serveErr.String())
	}
	if _, err := os.Stat(filepath.Join(dir, "server.json")); !os.IsNotExist(err) {
		t.Errorf("server.json left after shutdown: %v", err)
	}
	if code, out, _ := run(t, dir, "", "verify"); code != 0 {
		t.Errorf("verify after shutdown: %s", out)
	}
}

func TestServeTLS(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	certFile, keyFile := selfSigned(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"--data", dir, "serve", "--listen", addr, "--tls-cert", certFile, "--tls-key", keyFile}, strings.NewReader(""), io.Discard, io.Discard)
	}()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // self-signed, test only
	var resp *http.Response
	var err error
	for i := 0; i < 100; i++ {
		if resp, err = client.Get("https://" + addr + "/healthz"); err == nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err != nil || resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("https healthz: %v", err)
	}
	resp.Body.Close()
	if _, err := http.Get("http://" + addr + "/healthz"); err == nil {
		if r, _ := http.Get("http://" + addr + "/healthz"); r != nil && r.StatusCode == 200 {
			t.Error("plain HTTP answered on the TLS port")
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d", code)
	}
	if code, _, errs := run(t, dir, "", "serve", "--tls-cert", certFile); code != 2 || !strings.Contains(errs, "go together") {
		t.Errorf("--tls-cert alone: %d %s", code, errs)
	}
}

func selfSigned(t *testing.T) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalECPrivateKey(key)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kd}), 0o600)
	return certFile, keyFile
}

// TestAppendDefaultsTime: a line without time or id is stored with the clock's time, as on the
// API and the SDK (one ingest step for every door).
func TestAppendDefaultsTime(t *testing.T) {
	dir := t.TempDir()
	run(t, dir, "", "init")
	code, out, errs := run(t, dir, `{"kind":"custom","session_id":"no-time"}`+"\n", "append", "-")
	if code != 0 || !strings.Contains(out, "appended 1 events") {
		t.Fatalf("append: %d %q %q", code, out, errs)
	}
}
