package alert_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/alert"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// node is one process's worth of a data directory: its ledger and, when rules is set, the engine.
type node struct {
	w   *datadir.Writer
	eng *alert.Engine
}

func openNode(t *testing.T, dir datadir.Dir, clk *fakeClock, cfg *alert.Config) *node {
	t.Helper()
	n := &node{}
	opts := ledger.Options{Now: clk.Now}
	if cfg != nil {
		var err error
		n.eng, err = alert.New(alert.Options{Config: cfg, Dir: filepath.Join(dir.Path, "alerts"), Tick: 10 * time.Millisecond,
			RetryBase: time.Millisecond, RetryMax: 5 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		opts.Committed = n.eng.Committed
	}
	var err error
	if n.w, err = dir.OpenWriter(context.Background(), opts); err != nil {
		t.Fatal(err)
	}
	if n.eng != nil {
		if err := n.eng.Start(context.Background(), n.w.Ledger, n.w.Store); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

func (n *node) access(t *testing.T, clk *fakeClock, user, subject string) {
	t.Helper()
	clk.Add(time.Minute)
	if _, err := n.w.Append(context.Background(), &event.Event{Kind: event.KindAccess, UserID: user, SubjectType: "patient", SubjectID: subject}); err != nil {
		t.Fatal(err)
	}
}

func (n *node) settle(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for n.eng.Evaluated() < n.w.Head().N {
		if time.Now().After(deadline) {
			t.Fatalf("engine evaluated %d of %d", n.eng.Evaluated(), n.w.Head().N)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (n *node) close(t *testing.T) {
	t.Helper()
	if n.eng != nil {
		if err := n.eng.Close(); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.w.Close(); err != nil {
		t.Fatal(err)
	}
}

func alertsIn(t *testing.T, n *node, rule string) int {
	t.Helper()
	as, err := alert.List(context.Background(), n.w.Store, "", alert.ListFilter{Rule: rule})
	if err != nil {
		t.Fatal(err)
	}
	return len(as)
}

// TestWindowsSurviveRestart: the window is rebuilt from the log at start-up, so five accesses
// before a restart and five after raise the alert; restarting again raises nothing twice; and
// events appended while no engine ran (the CLI's append door with the server down) are
// evaluated at the next start.
func TestWindowsSurviveRestart(t *testing.T) {
	dir := datadir.Dir{Path: filepath.Join(t.TempDir(), "data")}
	if _, err := dir.Init(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	cfg, err := alert.Parse("built-in", nil)
	if err != nil {
		t.Fatal(err)
	}
	clk := &fakeClock{t: time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)}

	n := openNode(t, dir, clk, cfg)
	for range 5 {
		n.access(t, clk, "dr_x", "P-123")
	}
	n.settle(t)
	n.close(t)

	n = openNode(t, dir, clk, cfg)
	for range 4 {
		n.access(t, clk, "dr_x", "P-123")
	}
	n.settle(t)
	if got := alertsIn(t, n, "same_subject_access"); got != 0 {
		t.Fatalf("nine accesses across a restart: %d alerts", got)
	}
	n.access(t, clk, "dr_x", "P-123")
	n.settle(t)
	if got := alertsIn(t, n, "same_subject_access"); got != 1 {
		t.Fatalf("ten accesses across a restart: %d alerts, want 1", got)
	}
	n.close(t)

	// Restart with nothing new: nothing fires again (the window still holds ten).
	n = openNode(t, dir, clk, cfg)
	n.access(t, clk, "dr_x", "P-123")
	n.settle(t)
	if got := alertsIn(t, n, "same_subject_access"); got != 1 {
		t.Fatalf("after a second restart: %d alerts, want 1", got)
	}
	n.close(t)

	// The engine's watermark lost (a crash before it was saved): the replay raises the same
	// alert again, which the ledger stores once, by its id.
	os.Remove(filepath.Join(dir.Path, "alerts", "state.json"))
	os.WriteFile(filepath.Join(dir.Path, "alerts", "state.json"), []byte(`{"version":1,"evaluated":0}`), 0o600)
	n = openNode(t, dir, clk, cfg)
	n.settle(t)
	if got := alertsIn(t, n, "same_subject_access"); got != 1 {
		t.Fatalf("after replaying from seq 0: %d alerts, want 1", got)
	}
	n.close(t)

	// Appended with no engine running: dr_y's ten accesses are evaluated at the next start.
	n = openNode(t, dir, clk, nil)
	for range 10 {
		n.access(t, clk, "dr_y", "P-7")
	}
	n.close(t)
	n = openNode(t, dir, clk, cfg)
	n.settle(t)
	if got := alertsIn(t, n, "same_subject_access"); got != 2 {
		t.Fatalf("events appended while no engine ran: %d alerts, want 2", got)
	}
	n.close(t)
}

// TestQueueOverflowCatchesUp: with a queue of one commit, the engine drops what does not fit and
// reads it back from the store; nothing goes unevaluated.
func TestQueueOverflowCatchesUp(t *testing.T) {
	dir := datadir.Dir{Path: filepath.Join(t.TempDir(), "data")}
	if _, err := dir.Init(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	cfg, _ := alert.Parse("built-in", nil)
	eng, err := alert.New(alert.Options{Config: cfg, Dir: filepath.Join(dir.Path, "alerts"), QueueSize: 1, Tick: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	w, err := dir.OpenWriter(context.Background(), ledger.Options{Committed: eng.Committed})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background(), w.Ledger, w.Store); err != nil {
		t.Fatal(err)
	}
	n := &node{w: w, eng: eng}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				// Every user reads 25 patients: 8 users, none alone reaching 51 subjects.
				w.Append(context.Background(), &event.Event{Kind: event.KindAccess, UserID: fmt.Sprint("u", g), SubjectType: "patient", SubjectID: fmt.Sprint("P-", i)})
			}
		}()
	}
	wg.Wait()
	// And one user reading 51 distinct patients in one batch.
	var evs []*event.Event
	for i := range 51 {
		evs = append(evs, &event.Event{Kind: event.KindAccess, UserID: "bulk", SubjectType: "patient", SubjectID: fmt.Sprint("P-", i)})
	}
	if _, err := w.AppendBatch(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	n.settle(t)
	if got := alertsIn(t, n, "many_subjects"); got != 1 {
		t.Fatalf("many_subjects: %d alerts, want 1", got)
	}
	n.close(t)
}

// TestWebhookRefusesRedirects: a receiver answering with a redirect has not taken the alert;
// the redirect's target is never called, and the attempt records the status.
func TestWebhookRefusesRedirects(t *testing.T) {
	var elsewhere atomic.Int32
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) }))
	defer target.Close()
	var calls atomic.Int32
	redir := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Redirect(w, r, target.URL, http.StatusTemporaryRedirect)
	}))
	defer redir.Close()
	tmp := t.TempDir()
	secret := filepath.Join(tmp, "s")
	os.WriteFile(secret, []byte("0123456789abcdef0123456789"), 0o600)
	cfg, err := alert.Parse("r.yaml", []byte(fmt.Sprintf("alerts:\n  webhooks:\n    - {name: soc, url: %s, secret_file: %s, timeout: 2s}\n", redir.URL, secret)))
	if err != nil {
		t.Fatal(err)
	}
	dir := datadir.Dir{Path: filepath.Join(tmp, "data")}
	dir.Init(context.Background(), "")
	clk := &fakeClock{t: time.Now()}
	n := openNode(t, dir, clk, cfg)
	defer n.close(t)
	if _, err := n.w.Append(context.Background(), &event.Event{ID: "bg", Kind: event.KindAccess, UserID: "dr", SubjectType: "patient", SubjectID: "P-1",
		BreakGlass: true, BreakGlassReason: "ER"}); err != nil {
		t.Fatal(err)
	}
	n.settle(t)
	deadline := time.Now().Add(10 * time.Second)
	for calls.Load() < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if calls.Load() < 3 || elsewhere.Load() != 0 {
		t.Fatalf("receiver called %d times, redirect target %d times", calls.Load(), elsewhere.Load())
	}
	as, _ := alert.List(context.Background(), n.w.Store, filepath.Join(dir.Path, "alerts"), alert.ListFilter{Rule: "break_glass"})
	if len(as) != 1 || len(as[0].Deliveries) == 0 || as[0].Deliveries[0].Status != http.StatusTemporaryRedirect || as[0].Deliveries[0].Delivered {
		t.Fatalf("attempts: %+v", as)
	}
}

func TestVerifySignature(t *testing.T) {
	secret := []byte("0123456789abcdef")
	body := []byte(`{"a":1}`)
	now := time.Unix(1_800_000_000, 0)
	ts := fmt.Sprint(now.Unix())
	sig := alert.Sign(secret, ts, body)
	if !strings.HasPrefix(sig, "v1=") || len(sig) != 3+64 {
		t.Fatalf("signature %q", sig)
	}
	for _, c := range []struct {
		name    string
		sig, ts string
		body    []byte
		now     time.Time
		want    error
	}{
		{"good", sig, ts, body, now, nil},
		{"other body", sig, ts, []byte(`{"a":2}`), now, alert.ErrBadSignature},
		{"other timestamp", sig, fmt.Sprint(now.Unix() + 1), body, now, alert.ErrBadSignature},
		{"replayed later", sig, ts, body, now.Add(10 * time.Minute), alert.ErrStale},
		{"no timestamp", sig, "", body, now, alert.ErrBadSignature},
	} {
		t.Run(c.name, func(t *testing.T) {
			if err := alert.VerifySignature(secret, c.sig, c.ts, c.body, c.now, 5*time.Minute); !errors.Is(err, c.want) {
				t.Errorf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// TestConcurrentReviewCloses: two reviewers closing the same access at once record one review.
func TestConcurrentReviewCloses(t *testing.T) {
	dir := datadir.Dir{Path: filepath.Join(t.TempDir(), "data")}
	if _, err := dir.Init(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	w, err := dir.OpenWriter(context.Background(), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.Append(context.Background(), &event.Event{ID: "bg", Kind: event.KindAccess, UserID: "dr", SubjectType: "patient", SubjectID: "P-1",
		BreakGlass: true, BreakGlassReason: "ER"}); err != nil {
		t.Fatal(err)
	}
	var ok, already atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := alert.CloseReview(context.Background(), w.Ledger, w.Store, "bg", fmt.Sprint("reviewer", i), fmt.Sprint("note ", i))
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, alert.ErrAlreadyReviewed):
				already.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || already.Load() != 7 {
		t.Fatalf("%d closes succeeded, %d were refused", ok.Load(), already.Load())
	}
	rs, err := alert.Reviews(context.Background(), w.Store, time.Now(), true)
	if err != nil || len(rs) != 1 || !rs[0].Reviewed {
		t.Fatalf("%v %+v", err, rs)
	}
	if _, _, err := alert.CloseReview(context.Background(), w.Ledger, w.Store, "nope", "r", "n"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("unknown access: %v", err)
	}
}
