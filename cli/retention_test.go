package cli

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
)

// oldLog is a data directory whose events were recorded two years ago (the ledger's clock set
// back): general ones in sessions s-1 and s-2, a patient's, and a payment.
func oldLog(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	d := datadir.Dir{Path: dir}
	if _, err := d.Init(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	then := time.Now().AddDate(-2, 0, 0)
	w, err := d.OpenWriter(context.Background(), ledger.Options{Now: func() time.Time { return then }})
	if err != nil {
		t.Fatal(err)
	}
	mk := func(id, session, tool, subject string) *event.Event {
		ev := &event.Event{ID: id, SessionID: session, Kind: event.KindToolCall, ToolName: tool, UserID: "usr_1"}
		if subject != "" {
			ev.SubjectType, ev.SubjectID = "patient", subject
		}
		return ev
	}
	res, err := w.AppendBatch(context.Background(), []*event.Event{
		mk("g-1", "s-1", "lookup_order", ""), mk("g-2", "s-1", "lookup_order", ""),
		mk("g-3", "s-2", "lookup_order", ""), mk("p-1", "s-3", "read_chart", "P-77"), mk("f-1", "s-4", "charge_payment", ""),
	})
	if err != nil || res[0].Err != nil {
		t.Fatal(err, res)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestRetentionCommands(t *testing.T) {
	dir := oldLog(t)
	code, out, errs := run(t, dir, "", "hold", "place", "--session", "s-2", "--reason", "matter 2026-4")
	if code != 0 || !strings.Contains(out, "placed") || !strings.Contains(out, "session=s-2") {
		t.Fatalf("hold place: %d %q %q", code, out, errs)
	}
	holdID := strings.Fields(out)[1]
	code, out, _ = run(t, dir, "", "retention", "plan", "--json")
	var plan struct {
		Due, Held, Purge int64
		Classes          []struct {
			Class string
			Purge int64
		}
	}
	if code != 0 || json.Unmarshal([]byte(out), &plan) != nil || plan.Due != 3 || plan.Held != 1 || plan.Purge != 2 {
		t.Fatalf("plan: %d %s", code, out)
	}
	if code, out, _ = run(t, dir, "", "retention", "plan"); code != 0 || !strings.Contains(out, "healthcare") || !strings.Contains(out, "6y (mandatory)") {
		t.Errorf("plan as text: %s", out)
	}
	if code, out, errs = run(t, dir, "", "retention", "apply"); code != 0 || !strings.Contains(out, "purged 2 events; 1 held") {
		t.Fatalf("apply: %d %q %q", code, out, errs)
	}
	if code, out, _ = run(t, dir, "", "verify"); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("verify after apply: %d %s", code, out)
	}
	if code, out, _ = run(t, dir, "", "get", "g-1"); code != 0 || !strings.Contains(out, `"event": null`) || !strings.Contains(out, `"purged_by"`) {
		t.Errorf("get of a purged event: %d %s", code, out)
	}
	// A purged event still proves, offline.
	code, out, errs = run(t, dir, "", "prove", "g-1")
	if code != 0 {
		t.Fatalf("prove of a purged event: %d %s", code, errs)
	}
	bundle := filepath.Join(t.TempDir(), "b.json")
	os.WriteFile(bundle, []byte(out), 0o600)
	_, key, _ := run(t, dir, "", "key")
	if code, out, errs = run(t, dir, "", "verify-bundle", "--key", strings.TrimSpace(key), bundle); code != 0 || !strings.Contains(out, "was purged by the purge event") {
		t.Errorf("verify-bundle of a purged event: %d %q %q", code, out, errs)
	}
	// The erasure of a patient keeps a mandatory class unless overridden.
	if code, out, _ = run(t, dir, "", "erase", "--subject", "patient:P-77", "--reason", "request #9"); code != 0 || !strings.Contains(out, "erased 0 events") || !strings.Contains(out, "1 kept as mandatory") {
		t.Errorf("erase without override: %d %s", code, out)
	}
	if code, out, _ = run(t, dir, "", "erase", "--subject", "patient:P-77", "--reason", "request #9", "--override-mandatory", "court order"); code != 0 || !strings.Contains(out, "erased 1 events") {
		t.Errorf("erase with override: %d %s", code, out)
	}
	if code, out, errs = run(t, dir, "", "hold", "release", holdID, "--reason", "settled"); code != 0 || !strings.Contains(out, "released") {
		t.Errorf("hold release: %d %q %q", code, out, errs)
	}
	if code, out, _ = run(t, dir, "", "hold", "list", "--all"); code != 0 || !strings.Contains(out, holdID) || !strings.Contains(out, "matter 2026-4") {
		t.Errorf("hold list --all: %s", out)
	}
	if code, out, _ = run(t, dir, "", "retention", "apply"); code != 0 || !strings.Contains(out, "purged 1 events; 0 held") {
		t.Errorf("apply after release: %s", out)
	}
	if code, out, _ = run(t, dir, "", "verify"); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("verify at the end: %d %s", code, out)
	}
	// Bad input: usage errors, and nothing recorded.
	for _, args := range [][]string{
		{"hold", "place", "--session", "s-9"},
		{"hold", "place", "--reason", "why"},
		{"hold", "release", "no-such-hold", "--reason", "x"},
		{"hold", "release", holdID},
		{"erase", "--reason", "x"},
		{"erase", "--subject", "patient:P-1"},
		{"retention", "plan", "--at", "someday"},
		{"retention", "shred"},
	} {
		if code, _, errs := run(t, dir, "", args...); code != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, code, ExitUsage, errs)
		}
	}
	policy := filepath.Join(t.TempDir(), "p.yaml")
	os.WriteFile(policy, []byte("version: 1\nretention:\n  default: general\n  classes:\n    - name: general\n      keep: forever-ish\n"), 0o600)
	if code, _, errs = run(t, dir, "", "--policy", policy, "retention", "apply"); code != 1 || !strings.Contains(errs, "p.yaml:6: retention: keep") {
		t.Errorf("broken retention section: %d %q", code, errs)
	}
}

// TestRetentionThroughServer: while serve holds the directory, the governance commands go
// through its API, attributed to the admin key; plan and hold list read the file directly.
func TestRetentionThroughServer(t *testing.T) {
	dir := oldLog(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var serveErr syncBuffer
	go func() {
		done <- Run(ctx, []string{"--data", dir, "serve", "--listen", addr, "--purge-every", "0"}, strings.NewReader(""), io.Discard, &serveErr)
	}()
	for i := 0; i < 200; i++ {
		if _, err := os.Stat(filepath.Join(dir, "server.json")); err == nil {
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	code, out, errs := run(t, dir, "", "hold", "place", "--subject", "patient:P-77", "--reason", "audit 12")
	if code != 0 || !strings.Contains(errs, "through the server") || !strings.Contains(out, "subject=patient:P-77") {
		t.Fatalf("hold place through the server: %d %q %q", code, out, errs)
	}
	if code, out, errs = run(t, dir, "", "hold", "release", "nope", "--reason", "x"); code != ExitUsage || !strings.Contains(errs, "no such hold") {
		t.Errorf("release of an unknown hold through the server: %d %q %q", code, out, errs)
	}
	if code, out, errs = run(t, dir, "", "retention", "apply"); code != 0 || !strings.Contains(out, "purged 3 events") {
		t.Errorf("apply through the server: %d %q %q", code, out, errs)
	}
	if code, out, _ = run(t, dir, "", "hold", "list", "--json"); code != 0 || !strings.Contains(out, `"placed_by": "apikey:admin"`) {
		t.Errorf("hold list: %s", out)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d: %s", code, serveErr.String())
	}
	if code, out, _ = run(t, dir, "", "verify"); code != 0 {
		t.Errorf("verify: %s", out)
	}
}

// TestServePurgesOnSchedule: serve with its default --purge-every runs the purge at start: the
// two-year-old general events are erased, attributed to the scheduler, without anyone asking.
func TestServePurgesOnSchedule(t *testing.T) {
	dir := oldLog(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var serveErr syncBuffer
	go func() {
		done <- Run(ctx, []string{"--data", dir, "serve", "--listen", addr}, strings.NewReader(""), io.Discard, &serveErr)
	}()
	purged := false
	for i := 0; i < 200 && !purged; i++ {
		time.Sleep(25 * time.Millisecond)
		_, out, _ := run(t, dir, "", "get", "g-1")
		purged = strings.Contains(out, `"purged_by"`)
	}
	cancel()
	if code := <-done; code != 0 {
		t.Fatalf("serve exited %d: %s", code, serveErr.String())
	}
	if !purged {
		t.Fatalf("serve did not purge the due events at start: %s", serveErr.String())
	}
	if _, out, _ := run(t, dir, "", "get", "f-1"); strings.Contains(out, `"purged_by"`) {
		t.Error("a financial event, not due for years, was purged")
	}
	if code, out, _ := run(t, dir, "", "verify"); code != 0 || !strings.Contains(out, "purged: 3 events") {
		t.Errorf("verify after the scheduled purge: %d %s", code, out)
	}
}
