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
}
