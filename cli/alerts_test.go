package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/alert"
	"github.com/agentaudit/agentaudit/datadir"
)

// TestAlertServeChild is the `agentaudit serve` process that TestAlertSurvivesSIGKILL kills; it
// runs only when asked.
func TestAlertServeChild(t *testing.T) {
	dir, rules := os.Getenv("AGENTAUDIT_ALERT_DATA"), os.Getenv("AGENTAUDIT_ALERT_RULES")
	if dir == "" {
		t.Skip("run by TestAlertSurvivesSIGKILL")
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	os.Exit(Run(ctx, []string{"--data", dir, "serve", "--listen", "127.0.0.1:0", "--alerts", rules}, strings.NewReader(""), io.Discard, os.Stderr))
}

// TestAlertSurvivesSIGKILL: an alert committed but not yet delivered when the server is killed
// with SIGKILL is delivered after the restart, and is not raised a second time.
func TestAlertSurvivesSIGKILL(t *testing.T) {
	tmp := t.TempDir()
	data := filepath.Join(tmp, "data")
	secret := "sigkill-test-secret-0123456789abcdef"
	os.WriteFile(filepath.Join(tmp, "hook.secret"), []byte(secret), 0o600)

	// The receiver holds its first call until the server is dead, then takes calls.
	var mu sync.Mutex
	var keys []string // idempotency keys of the calls it took
	first := make(chan string, 1)
	release := make(chan struct{})
	calls := 0
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		key := r.Header.Get(alert.HeaderIdempotency)
		mu.Lock()
		calls++
		n := calls
		mu.Unlock()
		if n == 1 {
			first <- key
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		if err := alert.VerifySignature([]byte(secret), r.Header.Get(alert.HeaderSignature), r.Header.Get(alert.HeaderTimestamp), body, time.Now(), time.Minute); err != nil {
			http.Error(w, err.Error(), 401)
			return
		}
		mu.Lock()
		keys = append(keys, key)
		mu.Unlock()
	}))
	defer hook.Close()
	defer close(release)
	rules := filepath.Join(tmp, "rules.yaml")
	os.WriteFile(rules, []byte(fmt.Sprintf("alerts:\n  webhooks:\n    - name: soc\n      url: %s\n      secret_file: %s\n",
		hook.URL, filepath.Join(tmp, "hook.secret"))), 0o600)

	dir := datadir.Dir{Path: data}
	startServer := func() (*exec.Cmd, string, string) {
		t.Helper()
		os.Remove(dir.ServerFile())
		cmd := exec.Command(os.Args[0], "-test.run=^TestAlertServeChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), "AGENTAUDIT_ALERT_DATA="+data, "AGENTAUDIT_ALERT_RULES="+rules)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(60 * time.Second)
		for {
			info, err := dir.Server()
			if err == nil {
				key, _ := os.ReadFile(dir.AdminKey())
				return cmd, info.URL, strings.TrimSpace(string(key))
			}
			if time.Now().After(deadline) {
				cmd.Process.Kill()
				t.Fatalf("server did not start: %s", stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	post := func(url, key, path string, body any) (int, []byte) {
		t.Helper()
		b, _ := json.Marshal(body)
		method := "POST"
		if body == nil {
			method = "GET"
		}
		req, _ := http.NewRequest(method, url+path, bytes.NewReader(b))
		req.Header.Set("Authorization", "Bearer "+key)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, out
	}

	cmd, url, key := startServer()
	for i := range 10 {
		if code, b := post(url, key, "/v1/events", map[string]any{"kind": "access", "user_id": "dr_x", "subject_type": "patient",
			"subject_id": "P-123", "purpose": fmt.Sprint("treatment ", i)}); code != 200 {
			t.Fatalf("ingest: %d %s", code, b)
		}
	}
	var alertID string
	select {
	case alertID = <-first:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("the alert never reached the receiver")
	}
	// Committed, being delivered, not delivered: kill.
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	cmd, url, key = startServer()
	defer func() { cmd.Process.Signal(syscall.SIGTERM); cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		mu.Lock()
		got := append([]string(nil), keys...)
		mu.Unlock()
		if len(got) > 0 {
			if len(got) != 1 || got[0] != alertID {
				t.Fatalf("receiver took %v, want [%s]", got, alertID)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the alert was not delivered after the restart")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// An eleventh access, so the restarted engine has evaluated past the alert's events.
	post(url, key, "/v1/events", map[string]any{"kind": "access", "user_id": "dr_x", "subject_type": "patient", "subject_id": "P-123", "purpose": "treatment"})
	time.Sleep(300 * time.Millisecond)
	code, b := post(url, key, "/v1/alerts?rule=same_subject_access", nil)
	var out struct{ Alerts []alert.Listed }
	if err := json.Unmarshal(b, &out); code != 200 || err != nil {
		t.Fatalf("GET /v1/alerts: %d %s", code, b)
	}
	if len(out.Alerts) != 1 || out.Alerts[0].ID != alertID {
		t.Fatalf("alerts after the restart: %+v, want one, %s", out.Alerts, alertID)
	}
	if d := out.Alerts[0].Deliveries; len(d) == 0 || !d[len(d)-1].Delivered {
		t.Errorf("deliveries: %+v", d)
	}
	time.Sleep(200 * time.Millisecond)
	mu.Lock()
	if len(keys) != 1 {
		t.Errorf("receiver took %d deliveries, want 1", len(keys))
	}
	mu.Unlock()

	// review close while the server holds the directory goes through its API.
	post(url, key, "/v1/events", map[string]any{"id": "bg-9", "kind": "access", "user_id": "dr_jones", "subject_type": "patient",
		"subject_id": "P-9", "break_glass": true, "break_glass_reason": "ER"})
	if code, out, errb := run(t, data, "", "review", "close", "bg-9", "--note", "justified"); code != 0 || !strings.Contains(out, "recorded at seq") {
		t.Fatalf("review close through the server: %d %s %s", code, out, errb)
	}
	if code, _, errb := run(t, data, "", "review", "close", "bg-9", "--note", "again"); code == 0 || !strings.Contains(errb, "409") {
		t.Fatalf("second review close through the server: %d %s", code, errb)
	}
}

func TestAlertsTestAndReviewCommands(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, errb := run(t, dir, "", "init"); code != 0 {
		t.Fatal(errb)
	}
	var in strings.Builder
	for i := range 10 {
		fmt.Fprintf(&in, `{"kind":"access","user_id":"dr_x","subject_type":"patient","subject_id":"P-123","purpose":"treatment %d"}`+"\n", i)
	}
	in.WriteString(`{"id":"bg-1","kind":"access","user_id":"dr_jones","subject_type":"patient","subject_id":"P-9","break_glass":true,"break_glass_reason":"unconscious patient"}` + "\n")
	if code, out, errb := run(t, dir, in.String(), "append"); code != 0 {
		t.Fatalf("append: %s %s", out, errb)
	}
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(rules, []byte("alerts:\n  rules:\n    - {name: same_subject_access, threshold: 11}\n"), 0o600)
	code, out, errb := run(t, dir, "", "alerts", "test", rules, "--since", "1d")
	if code != 0 || strings.Contains(out, "same_subject_access") || !strings.Contains(out, "break_glass") || !strings.Contains(errb, "1 alerts would have fired") {
		t.Fatalf("alerts test (threshold 11): %d\n%s\n%s", code, out, errb)
	}
	os.WriteFile(rules, []byte("alerts:\n  rules:\n    - {name: same_subject_access, threshold: 10}\n"), 0o600)
	if code, out, errb = run(t, dir, "", "alerts", "test", rules); code != 0 || !strings.Contains(out, "same_subject_access") {
		t.Fatalf("alerts test (threshold 10): %d\n%s\n%s", code, out, errb)
	}
	// Nothing was recorded by the test.
	if code, out, _ = run(t, dir, "", "alerts", "list"); code != 0 || strings.Count(out, "\n") != 1 {
		t.Fatalf("alerts list after a test: %s", out)
	}
	if code, _, errb = run(t, dir, "", "alerts", "test", "/nonexistent.yaml"); code == 0 {
		t.Fatal("a missing rules file was accepted")
	}
	os.WriteFile(rules, []byte("alerts:\n  rules:\n    - name: x\n      when: event.nope\n"), 0o600)
	if code, _, errb = run(t, dir, "", "alerts", "test", rules); code == 0 || !strings.Contains(errb, rules+":4:") {
		t.Fatalf("bad rule: %d %s", code, errb)
	}

	if code, out, _ = run(t, dir, "", "review", "list"); code != 0 || !strings.Contains(out, "bg-1") || !strings.Contains(out, "unconscious patient") {
		t.Fatalf("review list: %s", out)
	}
	// Before the review: the report and the FHIR export mark the access.
	code, out, _ = run(t, dir, "", "report", "access", "--subject", "patient:P-9", "--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z")
	if code != 0 || !strings.Contains(out, `"unreviewed": true`) && !strings.Contains(out, `"unreviewed":true`) {
		t.Fatalf("report before the review: %s", out)
	}
	if code, out, _ = run(t, dir, "", "export", "--format", "fhir"); code != 0 || strings.Count(out, "break-glass not reviewed") != 1 {
		t.Fatalf("FHIR export before the review: %s", out)
	}
	if code, _, errb = run(t, dir, "", "review", "close", "bg-1"); code != ExitUsage {
		t.Fatalf("close without a note: %d %s", code, errb)
	}
	if code, out, errb = run(t, dir, "", "review", "close", "bg-1", "--note", "justified", "--reviewer", "privacy_officer"); code != 0 {
		t.Fatalf("review close: %s %s", out, errb)
	}
	if code, out, _ = run(t, dir, "", "review", "list"); code != 0 || strings.Contains(out, "bg-1") {
		t.Fatalf("review list after close: %s", out)
	}
	if code, _, errb = run(t, dir, "", "review", "close", "bg-1", "--note", "again"); code == 0 || !strings.Contains(errb, "already reviewed") {
		t.Fatalf("second close: %d %s", code, errb)
	}
	// The access report and the FHIR export: reviewed now, so not marked.
	if code, out, _ = run(t, dir, "", "export", "--format", "fhir"); code != 0 || strings.Contains(out, "not reviewed") {
		t.Fatalf("FHIR export after the review: %s", out)
	}
	code, out, errb = run(t, dir, "", "report", "access", "--subject", "patient:P-9", "--from", "2000-01-01T00:00:00Z", "--to", "2100-01-01T00:00:00Z")
	if code != 0 || !strings.Contains(out, `"unreviewed_break_glass": 0`) && !strings.Contains(out, `"unreviewed_break_glass":0`) {
		t.Fatalf("report: %d %s %s", code, out, errb)
	}
}
