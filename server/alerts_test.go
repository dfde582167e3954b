package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/agentaudit/agentaudit/alert"
	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/server"
)

// receiver is a real webhook receiver on loopback: it refuses its first `fail` calls, checks
// every signature, and counts what it took by idempotency key.
type receiver struct {
	secret []byte
	fail   int32
	calls  atomic.Int32
	mu     sync.Mutex
	got    map[string]int // idempotency key -> deliveries taken
	bodies map[string]alert.Payload
	badSig int
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := rc.calls.Add(1)
	body, _ := io.ReadAll(r.Body)
	if n <= rc.fail {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if err := alert.VerifySignature(rc.secret, r.Header.Get(alert.HeaderSignature), r.Header.Get(alert.HeaderTimestamp), body, time.Now(), 5*time.Minute); err != nil {
		rc.badSig++
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	key := r.Header.Get(alert.HeaderIdempotency)
	if rc.got[key] > 0 { // a receiver dedupes by key: it takes the alert once
		w.WriteHeader(http.StatusOK)
		return
	}
	var p alert.Payload
	json.Unmarshal(body, &p)
	rc.got[key]++
	rc.bodies[key] = p
	w.WriteHeader(http.StatusOK)
}

func (rc *receiver) rules(t *testing.T) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, p := range rc.bodies {
		out = append(out, p.Record.Rule+":"+p.Record.GroupKey)
	}
	return out
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// TestAlertsEndToEnd is the classic scenario through the server: ten accesses to patient P-123
// by one user within an hour raise exactly one alert, nine raise none, the sliding window
// straddles the hour correctly, and the alert reaches a real receiver on loopback, signed, exactly
// once although the receiver fails its first five calls. Then break-the-glass: refused without a
// reason, a critical alert with one, a review opened and closed.
func TestAlertsEndToEnd(t *testing.T) {
	tmp := t.TempDir()
	secret := "a-long-random-webhook-secret-0123456789"
	secretFile := filepath.Join(tmp, "soc.secret")
	os.WriteFile(secretFile, []byte(secret+"\n"), 0o600)
	rc := &receiver{secret: []byte(secret), fail: 5, got: map[string]int{}, bodies: map[string]alert.Payload{}}
	hook := httptest.NewServer(rc)
	defer hook.Close()
	rulesFile := filepath.Join(tmp, "rules.yaml")
	os.WriteFile(rulesFile, []byte(fmt.Sprintf(`alerts:
  webhooks:
    - name: soc
      url: %s/hook
      secret_file: %s
      min_severity: high
`, hook.URL, secretFile)), 0o600)
	cfg, err := alert.Load(rulesFile)
	if err != nil {
		t.Fatal(err)
	}

	dir := datadir.Dir{Path: filepath.Join(tmp, "data")}
	if _, err := dir.Init(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)
	clk := &clock{t: t0}
	eng, err := alert.New(alert.Options{Config: cfg, Dir: filepath.Join(dir.Path, "alerts"), Tick: 20 * time.Millisecond,
		RetryBase: 5 * time.Millisecond, RetryMax: 40 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	w, err := dir.OpenWriter(context.Background(), ledger.Options{Now: clk.Now, Committed: eng.Committed})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background(), w.Ledger, w.Store); err != nil {
		t.Fatal(err)
	}
	ks, _ := apikey.Open(dir.APIKeys())
	keys := map[apikey.Role]string{}
	for _, r := range apikey.Roles {
		keys[r], _, _ = ks.Create(string(r)+"1", r)
	}
	v, _ := dir.Verifier()
	metrics := server.NewMetrics()
	metrics.Register(eng.Collectors()...)
	srv, err := server.New(server.Config{Ledger: w.Ledger, Store: w.Store, Keys: ks, Verifier: v, Metrics: metrics, AlertsDir: filepath.Join(dir.Path, "alerts")})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer func() { hs.Close(); eng.Close(); w.Close() }()

	do := func(role apikey.Role, method, path string, body any) (int, []byte) {
		t.Helper()
		var rd io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			rd = bytes.NewReader(b)
		}
		req, _ := http.NewRequest(method, hs.URL+path, rd)
		req.Header.Set("Authorization", "Bearer "+keys[role])
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	accessAt := func(user, patient string, at time.Time) {
		t.Helper()
		clk.Set(at)
		code, b := do(apikey.Writer, "POST", "/v1/events", map[string]any{"kind": "access", "user_id": user,
			"subject_type": "patient", "subject_id": patient, "purpose": "treatment", "time": at})
		if code != 200 {
			t.Fatalf("ingest: %d %s", code, b)
		}
	}
	// settle waits until the engine has evaluated everything committed.
	settle := func() {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for eng.Evaluated() < w.Ledger.Head().N {
			if time.Now().After(deadline) {
				t.Fatalf("engine evaluated %d of %d", eng.Evaluated(), w.Ledger.Head().N)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	alertsOf := func(rule string) []alert.Listed {
		t.Helper()
		settle()
		code, b := do(apikey.Auditor, "GET", "/v1/alerts?rule="+rule, nil)
		if code != 200 {
			t.Fatalf("GET /v1/alerts: %d %s", code, b)
		}
		var out struct{ Alerts []alert.Listed }
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out.Alerts
	}

	for i := range 9 {
		accessAt("dr_x", "P-123", t0.Add(time.Duration(i)*time.Minute))
	}
	if as := alertsOf("same_subject_access"); len(as) != 0 {
		t.Fatalf("nine accesses raised %d alerts", len(as))
	}
	accessAt("dr_x", "P-123", t0.Add(9*time.Minute))
	accessAt("dr_x", "P-123", t0.Add(10*time.Minute))
	accessAt("dr_x", "P-123", t0.Add(11*time.Minute))
	as := alertsOf("same_subject_access")
	if len(as) != 1 {
		t.Fatalf("twelve accesses raised %d alerts, want 1", len(as))
	}
	if r := as[0].Record; r.Value != 10 || r.Group["user_id"] != "dr_x" || r.Group["subject_id"] != "P-123" || len(r.TriggerIDs) != 10 || r.Severity != "high" {
		t.Errorf("alert record = %+v", r)
	}

	// The window straddles the hour: dr_y at 12:10-12:14 and 13:05-13:09 (ten within an hour);
	// dr_z at 12:00-12:04 and 13:05-13:09 (the first five have left the window).
	t1 := t0.Add(2 * time.Hour)
	for i := range 5 {
		accessAt("dr_z", "P-123", t1.Add(time.Duration(i)*time.Minute))
	}
	for i := range 5 {
		accessAt("dr_y", "P-123", t1.Add(10*time.Minute+time.Duration(i)*time.Minute))
	}
	for i := range 5 {
		accessAt("dr_z", "P-123", t1.Add(65*time.Minute+time.Duration(i)*time.Minute))
		accessAt("dr_y", "P-123", t1.Add(65*time.Minute+time.Duration(i)*time.Minute))
	}
	as = alertsOf("same_subject_access")
	var users []string
	for _, a := range as {
		users = append(users, a.Record.Group["user_id"])
	}
	if fmt.Sprint(users) != "[dr_x dr_y]" {
		t.Fatalf("alerts for %v, want [dr_x dr_y]", users)
	}

	// Break-the-glass.
	clk.Set(t1.Add(2 * time.Hour))
	code, b := do(apikey.Writer, "POST", "/v1/events", map[string]any{"kind": "access", "user_id": "dr_jones",
		"subject_type": "patient", "subject_id": "P-9", "break_glass": true})
	if code != 400 || !strings.Contains(string(b), "break_glass_reason") {
		t.Fatalf("break-glass without a reason: %d %s", code, b)
	}
	code, b = do(apikey.Writer, "POST", "/v1/events", map[string]any{"id": "bg-1", "kind": "access", "user_id": "dr_jones",
		"subject_type": "patient", "subject_id": "P-9", "break_glass": true, "break_glass_reason": "unconscious patient"})
	if code != 200 {
		t.Fatalf("break-glass: %d %s", code, b)
	}
	if as := alertsOf("break_glass"); len(as) != 1 || as[0].Record.Severity != "critical" {
		t.Fatalf("break-glass alerts: %+v", as)
	}
	code, b = do(apikey.Auditor, "GET", "/v1/reviews", nil)
	if code != 200 || !strings.Contains(string(b), `"bg-1"`) {
		t.Fatalf("reviews: %d %s", code, b)
	}
	if code, b = do(apikey.Writer, "POST", "/v1/reviews/bg-1/close", map[string]string{"note": "x"}); code != 403 {
		t.Errorf("a writer closed a review: %d %s", code, b)
	}
	if code, b = do(apikey.Auditor, "POST", "/v1/reviews/bg-1/close", map[string]string{"note": "justified: ER admission"}); code != 200 {
		t.Fatalf("close: %d %s", code, b)
	}
	if code, b = do(apikey.Auditor, "POST", "/v1/reviews/bg-1/close", map[string]string{"note": "again"}); code != 409 {
		t.Errorf("second close: %d %s", code, b)
	}
	code, b = do(apikey.Auditor, "GET", "/v1/reviews", nil)
	if code != 200 || strings.Contains(string(b), `"bg-1"`) {
		t.Fatalf("reviewed access still listed: %d %s", code, b)
	}

	// Delivery: three alerts of severity high or above, each taken once, after five refusals.
	deadline := time.Now().Add(20 * time.Second)
	for {
		rc.mu.Lock()
		n := len(rc.got)
		rc.mu.Unlock()
		if n >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("receiver got %v after %d calls", rc.rules(t), rc.calls.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	rc.mu.Lock()
	for k, n := range rc.got {
		if n != 1 {
			t.Errorf("alert %s taken %d times", k, n)
		}
	}
	if rc.badSig > 0 {
		t.Errorf("%d deliveries with a bad signature", rc.badSig)
	}
	rc.mu.Unlock()
	as = alertsOf("same_subject_access")
	if d := as[0].Deliveries; len(d) < 2 || !d[len(d)-1].Delivered || d[0].Delivered || d[0].Status != 503 {
		t.Errorf("delivery attempts of the first alert: %+v", d)
	}
	resp, err := http.Get(hs.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	mb, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`agentaudit_alerts_total{rule="same_subject_access",severity="high"} 2`,
		`agentaudit_alerts_total{rule="break_glass",severity="critical"} 1`, `agentaudit_alert_deliveries_total{outcome="failed",webhook="soc"} 5`} {
		if !strings.Contains(string(mb), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestOpenAPIDescribesAlertRoutes(t *testing.T) {
	var doc struct {
		Paths map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(server.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	e := start(t, server.Config{})
	for _, r := range []string{"GET /v1/alerts", "GET /v1/reviews", "POST /v1/reviews/{id}/close"} {
		method, path, _ := strings.Cut(r, " ")
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("the OpenAPI document lacks %s", r)
		}
		code, _, _ := e.do(t, apikey.Admin, method, strings.ReplaceAll(path, "{id}", "x"), "application/json", []byte(`{"note":"n"}`))
		if code == http.StatusNotFound && !strings.Contains(path, "{id}") || code == http.StatusMethodNotAllowed {
			t.Errorf("%s is documented but not served: %d", r, code)
		}
	}
}
