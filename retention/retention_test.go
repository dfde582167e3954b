package retention_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/retention"
	"github.com/agentaudit/agentaudit/store"
)

var t0 = time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)

// clock is the injected time of a test: the ledger's recorded_at and the purges' now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

type fixture struct {
	dir   datadir.Dir
	w     *datadir.Writer
	m     *retention.Manager
	clock *clock
	v     interface{ Name() string }
}

func newFixture(t testing.TB, policy *retention.Policy) *fixture {
	t.Helper()
	ctx := context.Background()
	f := &fixture{dir: datadir.Dir{Path: t.TempDir()}, clock: &clock{t: t0}}
	if _, err := f.dir.Init(ctx, "test.agentaudit.local/log"); err != nil {
		t.Fatal(err)
	}
	f.open(t, policy)
	t.Cleanup(func() {
		if f.w != nil {
			f.w.Close()
		}
	})
	return f
}

func (f *fixture) open(t testing.TB, policy *retention.Policy) {
	t.Helper()
	r, err := f.dir.Redactor("")
	if err != nil {
		t.Fatal(err)
	}
	f.w, err = f.dir.OpenWriter(context.Background(), ledger.Options{Sanitizer: r, Retention: policy, Now: f.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.m = &retention.Manager{Store: f.w.Store, Ledger: f.w.Ledger, Policy: policy, Sanitize: r, Now: f.clock.Now}
}

func (f *fixture) append(t testing.TB, evs ...*event.Event) []ledger.Result {
	t.Helper()
	res, err := f.w.AppendBatch(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("event %d: %v", i, r.Err)
		}
	}
	return res
}

// verify signs what is committed and verifies the whole log, with saved (an auditor's
// checkpoint from before the purges) when given; it fails the test on any problem.
func (f *fixture) verify(t testing.TB, saved []byte) *ledger.Report {
	t.Helper()
	ctx := context.Background()
	if _, err := f.w.SignCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := f.dir.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	r, err := ledger.Verify(ctx, f.w.Store, v, ledger.VerifyOptions{Saved: saved})
	if err != nil {
		for _, p := range r.Problems {
			t.Error(p)
		}
		t.Fatal(err)
	}
	return r
}

func tool(id, name, session string, extra func(*event.Event)) *event.Event {
	ev := &event.Event{ID: id, Kind: event.KindToolCall, ToolName: name, SessionID: session, UserID: "usr_1", Time: t0,
		Arguments: json.RawMessage(`{"note":"body ` + id + `"}`)}
	if extra != nil {
		extra(ev)
	}
	return ev
}

// seqsOf returns the seqs of events whose ids start with prefix, and whether each is purged.
func intact(t testing.TB, f *fixture, res []ledger.Result, prefix string) (intact, purged int) {
	t.Helper()
	for _, r := range res {
		if !strings.HasPrefix(r.ID, prefix) {
			continue
		}
		e, err := f.w.Store.Entry(context.Background(), r.Seq)
		if err != nil {
			t.Fatal(err)
		}
		if e.Purged() {
			purged++
		} else {
			intact++
		}
	}
	return intact, purged
}

// TestRetentionOverTheYears is the classic table lived through with an injected clock: a year on,
// general events go and healthcare and financial stay; six years on, healthcare goes; a held
// session survives every purge until its hold is released; every verification, saved
// checkpoint and old inclusion bundle keeps passing.
func TestRetentionOverTheYears(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, retention.Default())
	var evs []*event.Event
	for i := range 10 {
		evs = append(evs, tool(fmt.Sprintf("gen-%d", i), "lookup_order", "s-gen", nil))
	}
	for i := range 5 {
		evs = append(evs, tool(fmt.Sprintf("hc-%d", i), "read_chart", "s-hc", func(e *event.Event) { e.SubjectType, e.SubjectID = "patient", "P-1" }))
		evs = append(evs, tool(fmt.Sprintf("fin-%d", i), "charge_payment", "s-fin", nil))
		evs = append(evs, tool(fmt.Sprintf("held-%d", i), "lookup_order", "s-held", nil))
	}
	res := f.append(t, evs...)
	for _, r := range res {
		e, _ := f.w.Store.Entry(ctx, r.Seq)
		ev, _ := event.ParseStored(e.Body)
		want := map[string]string{"gen": "general", "hc-": "healthcare", "fin": "financial", "hel": "general"}[r.ID[:3]]
		if ev.RetentionClass != want {
			t.Errorf("%s: class %q, want %q", r.ID, ev.RetentionClass, want)
		}
	}
	hold, err := f.m.PlaceHold(ctx, ledger.HoldScope{SessionID: "s-held"}, "litigation 2026-17: preserve the s-held session", "legal@example.com")
	if err != nil {
		t.Fatal(err)
	}
	f.verify(t, nil)
	saved, err := f.w.SignCheckpoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	oldBundle, err := f.w.Prove(ctx, "gen-3")
	if err != nil {
		t.Fatal(err)
	}
	oldJSON, _ := json.Marshal(oldBundle)
	v, _ := f.dir.Verifier()

	step := func(name string, at time.Time, wantErased int64) {
		t.Helper()
		f.clock.Set(at)
		plan, err := f.m.Plan(ctx, at)
		if err != nil {
			t.Fatal(err)
		}
		got, err := f.m.Apply(ctx, "retention-test")
		if err != nil {
			t.Fatal(err)
		}
		if got.Erased != wantErased || plan.Purge != wantErased {
			t.Errorf("%s: plan said %d, apply erased %d; want %d", name, plan.Purge, got.Erased, wantErased)
		}
		r := f.verify(t, saved)
		t.Logf("%s: erased %d, freed %d bytes; verify: %d events, %d purged, %d purge events", name, got.Erased, got.Bytes, r.Events, r.Purged, r.Purges)
		if _, err := ledger.VerifyBundle(oldJSON, v); err != nil {
			t.Errorf("%s: a bundle proven before the purges: %v", name, err)
		}
	}

	step("a day short of a year", t0.AddDate(1, 0, -1), 0)
	step("a year on", t0.AddDate(1, 0, 1), 10)
	if in, _ := intact(t, f, res, "hc-"); in != 5 {
		t.Errorf("healthcare: %d intact after a year, want 5", in)
	}
	if in, _ := intact(t, f, res, "fin"); in != 5 {
		t.Errorf("financial: %d intact after a year, want 5", in)
	}
	if in, _ := intact(t, f, res, "held"); in != 5 {
		t.Errorf("held session: %d intact after a year, want 5", in)
	}
	// A purged event still proves: its leaf, and the purge event that explains the missing body.
	b, err := f.w.Prove(ctx, "gen-3")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(b)
	vb, err := ledger.VerifyBundle(data, v)
	if err != nil {
		t.Fatalf("bundle of a purged event: %v", err)
	}
	if vb.Event != nil || vb.Purge == nil || vb.Purge.Kind != event.KindPurge || vb.Purge.UserID != "retention-test" {
		t.Errorf("bundle of a purged event: event %v, purge %+v", vb.Event, vb.Purge)
	}

	step("six years on", t0.AddDate(6, 0, 1), 5)
	if in, _ := intact(t, f, res, "hc-"); in != 0 {
		t.Errorf("healthcare: %d intact after six years, want 0", in)
	}
	if in, _ := intact(t, f, res, "fin"); in != 5 {
		t.Errorf("financial: %d intact after six years, want 5", in)
	}
	if in, _ := intact(t, f, res, "held"); in != 5 {
		t.Errorf("held session: %d intact after six years, want 5", in)
	}
	if _, err := f.m.ReleaseHold(ctx, hold.ID, "case closed", "legal@example.com"); err != nil {
		t.Fatal(err)
	}
	step("after the release", t0.AddDate(6, 0, 2), 5)
	step("seven years on", t0.AddDate(7, 0, 1), 5)
	if in, _ := intact(t, f, res, ""); in != 0 {
		t.Errorf("%d events intact after seven years, want 0", in)
	}
	// The purges and holds themselves are kept: they are the evidence.
	holds, err := retention.Holds(ctx, f.w.Store)
	if err != nil || len(holds) != 1 || holds[0].ReleasedSeq == 0 {
		t.Errorf("holds after release = %+v, %v", holds, err)
	}
}

func TestClassify(t *testing.T) {
	p := retention.Default()
	rec := t0
	for _, c := range []struct {
		ev    event.Event
		class string
		until time.Time
		err   string
	}{
		{event.Event{Kind: event.KindToolCall, ToolName: "issue_refund"}, "financial", t0.AddDate(7, 0, 0), ""},
		{event.Event{Kind: event.KindToolCall, ToolName: "update_treatment"}, "healthcare", t0.AddDate(6, 0, 0), ""},
		{event.Event{Kind: event.KindAccess, SubjectType: "patient", SubjectID: "P-1"}, "healthcare", t0.AddDate(6, 0, 0), ""},
		{event.Event{Kind: event.KindLLMCall}, "general", t0.AddDate(1, 0, 0), ""},
		// A client may lengthen its event's retention, never shorten it.
		{event.Event{Kind: event.KindLLMCall, RetentionClass: "financial"}, "financial", t0.AddDate(7, 0, 0), ""},
		{event.Event{Kind: event.KindToolCall, ToolName: "charge_payment", RetentionClass: "general"}, "financial", t0.AddDate(7, 0, 0), ""},
		{event.Event{Kind: event.KindLLMCall, RetentionClass: "gold"}, "", time.Time{}, `field "retention_class": unknown retention class "gold"`},
		{event.Event{Kind: event.KindPurge}, "system", retention.Forever, ""},
	} {
		ev := c.ev
		ev.RecordedAt = rec
		class, until, err := p.Classify(&ev)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) || !errors.Is(err, event.ErrInvalid) {
				t.Errorf("%+v: err %v, want %q", c.ev, err, c.err)
			}
			continue
		}
		if err != nil || class != c.class || !until.Equal(c.until) {
			t.Errorf("%+v: %s %s %v, want %s %s", c.ev, class, until, err, c.class, c.until)
		}
	}
}

// TestBadRequestsChangeNothing: holds with no reason or scope, releasing an unknown hold, an
// erasure with no subject or reason are refused with a clear error, and the log does not grow.
func TestBadRequestsChangeNothing(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, retention.Default())
	f.append(t, tool("a", "lookup_order", "s", nil))
	before, _ := f.w.Store.Size(ctx)
	for name, err := range map[string]error{
		"hold without reason": second(f.m.PlaceHold(ctx, ledger.HoldScope{SessionID: "s"}, " ", "me")),
		"hold without scope":  second(f.m.PlaceHold(ctx, ledger.HoldScope{}, "why", "me")),
		"hold of bad kind":    second(f.m.PlaceHold(ctx, ledger.HoldScope{Kind: "nope"}, "why", "me")),
		"hold since > until":  second(f.m.PlaceHold(ctx, ledger.HoldScope{Since: t0, Until: t0.Add(-time.Hour)}, "why", "me")),
		"release no reason":   second(f.m.ReleaseHold(ctx, "x", "", "me")),
		"erase no subject":    second(f.m.Erase(ctx, retention.Erasure{Reason: "gdpr"})),
		"erase no reason":     second(f.m.Erase(ctx, retention.Erasure{SubjectType: "patient", SubjectID: "P"})),
	} {
		if !errors.Is(err, retention.ErrBadRequest) {
			t.Errorf("%s: %v, want ErrBadRequest", name, err)
		}
	}
	if _, err := f.m.ReleaseHold(ctx, "no-such-hold", "done", "me"); !errors.Is(err, retention.ErrUnknownHold) || !strings.Contains(err.Error(), "no-such-hold") {
		t.Errorf("release of an unknown hold: %v", err)
	}
	if after, _ := f.w.Store.Size(ctx); after != before {
		t.Errorf("the log grew from %d to %d events on refused requests", before, after)
	}
}

func second[T any](_ T, err error) error { return err }

// TestErasure: a subject's events go before their time, except mandatory classes (unless
// overridden, with a reason) and held ones; the purge event records the subject's type, not id.
func TestErasure(t *testing.T) {
	ctx := context.Background()
	p := retention.Default()
	f := newFixture(t, p)
	res := f.append(t,
		tool("c-1", "lookup_order", "s1", func(e *event.Event) { e.SubjectType, e.SubjectID = "customer", "C-42" }),
		tool("c-2", "issue_refund", "s1", func(e *event.Event) { e.SubjectType, e.SubjectID = "customer", "C-42" }),
		tool("c-3", "lookup_order", "s2", func(e *event.Event) { e.SubjectType, e.SubjectID = "customer", "C-42" }),
		tool("p-1", "read_chart", "s3", func(e *event.Event) { e.SubjectType, e.SubjectID = "patient", "P-9" }),
		tool("o-1", "lookup_order", "s1", func(e *event.Event) { e.SubjectType, e.SubjectID = "customer", "C-7" }),
	)
	if _, err := f.m.PlaceHold(ctx, ledger.HoldScope{SessionID: "s2"}, "dispute", "legal"); err != nil {
		t.Fatal(err)
	}
	got, err := f.m.Erase(ctx, retention.Erasure{SubjectType: "customer", SubjectID: "C-42", Reason: "GDPR art. 17 request #881", By: "dpo"})
	if err != nil {
		t.Fatal(err)
	}
	// c-1 (general) and c-2 (financial, not mandatory) go; c-3 is held.
	if got.Erased != 2 || got.Held != 1 || got.Mandatory != 0 {
		t.Errorf("erasure of C-42: %+v", got)
	}
	if in, _ := intact(t, f, res, "o-"); in != 1 {
		t.Error("another customer's event was erased")
	}
	got, err = f.m.Erase(ctx, retention.Erasure{SubjectType: "patient", SubjectID: "P-9", Reason: "request", By: "dpo"})
	if err != nil || got.Erased != 0 || got.Mandatory != 1 {
		t.Errorf("erasure of a patient without override: %+v, %v", got, err)
	}
	got, err = f.m.Erase(ctx, retention.Erasure{SubjectType: "patient", SubjectID: "P-9", Reason: "request", By: "dpo", OverrideMandatory: "court order 2026-5"})
	if err != nil || got.Erased != 1 {
		t.Errorf("erasure of a patient with override: %+v, %v", got, err)
	}
	r := f.verify(t, nil)
	if r.Purged != 3 {
		t.Errorf("verify counts %d purged, want 3", r.Purged)
	}
	// No purge event repeats the subject's id.
	err = f.w.Store.SystemEntries(ctx, "purge", func(e store.Entry) error {
		if strings.Contains(string(e.Body), "C-42") || strings.Contains(string(e.Body), "P-9") {
			t.Errorf("purge event %d names the subject: %s", e.Seq, e.Body)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
