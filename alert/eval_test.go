package alert

import (
	"fmt"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

var t0 = time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)

func access(i int, user, subject string, at time.Time) *event.Event {
	return &event.Event{ID: fmt.Sprintf("acc-%d", i), Kind: event.KindAccess, UserID: user, SubjectType: "patient",
		SubjectID: subject, Time: at, RecordedAt: at, Outcome: event.OutcomeSuccess}
}

func builtins(t testing.TB) *Evaluator {
	t.Helper()
	e, err := NewEvaluator(&Config{Rules: Builtins()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// TestSameSubjectWindow: the classic rule on the evaluator alone: nine accesses raise nothing,
// the tenth within the hour raises one alert, more do not raise another, and the sliding window
// counts exactly the last hour across a clock hour.
func TestSameSubjectWindow(t *testing.T) {
	for _, c := range []struct {
		name  string
		times []time.Duration // offsets from t0 of the accesses
		want  int             // same_subject_access alerts
	}{
		{"nine in an hour", repeat(9, 0, time.Minute), 0},
		{"ten in an hour", repeat(10, 0, time.Minute), 1},
		{"fifteen in an hour", repeat(15, 0, time.Minute), 1},
		{"ten spread over two hours", repeat(10, 0, 13*time.Minute), 0},
		// Five at 10:10-10:14, five at 11:05-11:09: the window ending 11:09 holds all ten.
		{"straddling the hour", append(repeat(5, 10*time.Minute, time.Minute), repeat(5, 65*time.Minute, time.Minute)...), 1},
		// Five at 10:00-10:04, five at 11:05-11:09: by 11:05 the first five left the window.
		{"just out of the window", append(repeat(5, 0, time.Minute), repeat(5, 65*time.Minute, time.Minute)...), 0},
		// The window is open at its old end: an access exactly an hour old has left it.
		{"exactly an hour apart", append(repeat(9, 0, time.Second), time.Hour), 0},
		// Ten, then quiet for two hours (the group re-arms), then ten more: two alerts.
		{"re-arms after clearing", append(repeat(10, 0, time.Minute), repeat(10, 3*time.Hour, time.Minute)...), 2},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := builtins(t)
			got := 0
			var last Firing
			for i, d := range c.times {
				for _, f := range e.Observe(int64(i), access(i, "dr_x", "P-123", t0.Add(d))) {
					if f.Rule.Name == "same_subject_access" {
						got++
						last = f
					}
				}
			}
			if got != c.want {
				t.Fatalf("%d alerts, want %d", got, c.want)
			}
			if got > 0 && (last.Record.Value != 10 || last.Record.Group["subject_id"] != "P-123" || len(last.Record.TriggerIDs) != 10) {
				t.Errorf("record = %+v", last.Record)
			}
		})
	}
}

func repeat(n int, from, step time.Duration) []time.Duration {
	var out []time.Duration
	for i := range n {
		out = append(out, from+time.Duration(i)*step)
	}
	return out
}

// TestDeterministic: the same events give the same alert ids, which is what keeps a replay after
// a crash from raising an alert twice.
func TestDeterministic(t *testing.T) {
	run := func() []string {
		e := builtins(t)
		var ids []string
		for i := range 12 {
			for _, f := range e.Observe(int64(i), access(i, "dr_x", "P-123", t0.Add(time.Duration(i)*time.Minute))) {
				ids = append(ids, f.Event.ID)
			}
		}
		return ids
	}
	a, b := run(), run()
	if len(a) != 1 || fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("%v vs %v", a, b)
	}
}

func TestOtherBuiltins(t *testing.T) {
	e := builtins(t)
	count := map[string]int{}
	obs := func(seq int64, ev *event.Event) {
		for _, f := range e.Observe(seq, ev) {
			count[f.Rule.Name]++
		}
	}
	seq := int64(0)
	at := t0
	// Break-glass: critical at once; unreviewed for 24h: another.
	bg := access(1000, "dr_jones", "P-9", at)
	bg.BreakGlass, bg.BreakGlassReason = true, "unconscious patient"
	obs(seq, bg)
	seq++
	// A user reading 51 distinct subjects in an hour.
	for i := range 51 {
		obs(seq, access(int(seq), "bulk", fmt.Sprintf("P-%d", i), at.Add(time.Duration(i)*time.Second)))
		seq++
	}
	// A tool failing 5 of 20 calls (25%) in five minutes.
	for i := range 20 {
		ev := &event.Event{ID: fmt.Sprint("tc-", i), Kind: event.KindToolCall, ToolName: "lookup", RecordedAt: at.Add(time.Duration(i) * time.Second), Outcome: event.OutcomeSuccess}
		if i%4 == 0 {
			ev.Outcome = event.OutcomeError
		}
		obs(seq, ev)
		seq++
	}
	obs(seq, &event.Event{ID: "ap", Kind: event.KindApprovalDecision, ApprovalStatus: event.ApprovalRejected, RecordedAt: at})
	seq++
	for i := range 10 {
		obs(seq, &event.Event{ID: fmt.Sprint("auth-", i), Kind: event.KindAccess, UserID: "unauthenticated", ClientIP: "203.0.113.9",
			SubjectType: "audit_log", SubjectID: "api", Purpose: "authentication", Outcome: event.OutcomeDenied, RecordedAt: at})
		seq++
	}
	obs(seq, &event.Event{ID: "late", Kind: event.KindCustom, RecordedAt: at.Add(25 * time.Hour)})
	for rule, want := range map[string]int{"break_glass": 1, "many_subjects": 1, "tool_failure_ratio": 1, "approval_rejected": 1,
		"auth_failures": 1, "break_glass_unreviewed": 1, "same_subject_access": 0} {
		if count[rule] != want {
			t.Errorf("%s fired %d times, want %d (all: %v)", rule, count[rule], want, count)
		}
	}
	// A review closes it: no unreviewed alert for a reviewed access.
	e2 := builtins(t)
	e2.Observe(0, bg)
	e2.Observe(1, &event.Event{ID: "rv", Kind: event.KindReview, ParentID: bg.ID, RecordedAt: at.Add(time.Hour)})
	if fs := e2.Tick(at.Add(48 * time.Hour)); len(fs) != 0 {
		t.Errorf("reviewed access still alerted: %+v", fs)
	}
}

// TestFastPathAgreesWithCEL: the Go tests of simple conjuncts give exactly CEL's answer.
func TestFastPathAgreesWithCEL(t *testing.T) {
	evs := benchEvents(600)
	evs[3].BreakGlass, evs[3].BreakGlassReason = true, "ER"
	for _, src := range []string{
		`event.kind == "access" && event.subject_type == "patient"`,
		`event.kind != "access" && event.outcome == "error"`,
		`event.kind in ["tool_call", "llm_call"] && event.model == "claude-opus-4-6"`,
		`event.break_glass && event.kind == "access"`,
		`"access" == event.kind`,
		`event.kind == "tool_call" && event.duration_ms > 5000.0`,
		`event.kind == "access" || event.tool_name == "tool-3"`,
		`event.user_id.startsWith("u-1") && event.kind == "access"`,
		`event.success == false`,
	} {
		c, err := compileBool(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range evs {
			out, _, err := c.prg.Eval(map[string]any{"event": ev})
			want := err == nil && out.Value() == true
			if got := c.eval(&eventActivation{ev}); got != want {
				t.Fatalf("%s on %+v: fast %v, CEL %v", src, ev, got, want)
			}
		}
	}
}
