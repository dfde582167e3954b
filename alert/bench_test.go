package alert

import (
	"fmt"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

// benchRules is 20 rules, half of them windowed: conditions of the shapes a team writes.
const benchRules = `alerts:
  rules:
    - {name: same_subject_access, off: true}
    - {name: many_subjects, off: true}
    - {name: break_glass, off: true}
    - {name: tool_failure_ratio, off: true}
    - {name: auth_failures, off: true}
    - {name: approval_rejected, off: true}
    - {name: verification_failed, off: true}
    - {name: checkpoint_stale, off: true}
    - {name: break_glass_unreviewed, off: true}
    - {name: w1, when: 'event.kind == "access" && event.subject_type == "patient"', window: 1h, aggregate: count, group_by: [user_id, subject_id], threshold: 10}
    - {name: w2, when: 'event.kind == "access"', window: 1h, aggregate: distinct(subject_id), group_by: [user_id], threshold: "> 50"}
    - {name: w3, when: 'event.kind == "tool_call"', window: 5m, aggregate: 'ratio(event.outcome == "error")', group_by: [tool_name], threshold: "> 20%", min_events: 20}
    - {name: w4, when: 'event.kind == "llm_call"', window: 1h, aggregate: sum(input_tokens), group_by: [agent_id], threshold: 100000000}
    - {name: w5, when: 'event.kind == "llm_call"', window: 10m, aggregate: count, group_by: [model], threshold: 1000000}
    - {name: w6, when: 'event.kind == "tool_call" && event.duration_ms > 5000.0', window: 10m, aggregate: count, group_by: [tool_name], threshold: 50}
    - {name: w7, when: 'event.kind == "access" && event.outcome == "denied"', window: 5m, aggregate: count, group_by: [user_id], threshold: 5}
    - {name: w8, when: 'event.kind in ["tool_call", "llm_call"]', window: 1h, aggregate: distinct(session_id), group_by: [agent_id], threshold: 100000}
    - {name: w9, when: 'event.kind == "llm_call"', window: 1h, aggregate: sum(output_tokens), group_by: [user_id], threshold: 100000000}
    - {name: w10, when: 'event.kind == "access" && event.purpose != "treatment"', window: 1h, aggregate: count, group_by: [user_id], threshold: 1000}
    - {name: p1, when: 'event.kind == "access" && event.break_glass'}
    - {name: p2, when: 'event.kind == "approval_decision" && event.approval_status == "rejected"'}
    - {name: p3, when: 'event.kind == "tool_call" && event.tool_name == "delete_record"'}
    - {name: p4, when: 'event.kind == "llm_call" && event.model.startsWith("gpt-3")'}
    - {name: p5, when: 'event.kind == "error" && event.error_type == "timeout"'}
    - {name: p6, when: 'event.user_role == "contractor" && event.subject_type == "patient"'}
    - {name: p7, when: 'event.kind == "tool_call" && event.input_tokens > 100000'}
    - {name: p8, when: 'event.kind == "final_output" && event.outcome == "denied"'}
    - {name: p9, when: 'event.agent_version == "0.0.0-dev"'}
    - {name: p10, when: 'event.kind == "session_end" && event.outcome == "error"'}
`

func benchEvents(n int) []*event.Event {
	evs := make([]*event.Event, n)
	at := time.Date(2026, 3, 3, 10, 0, 0, 0, time.UTC)
	for i := range evs {
		ev := &event.Event{ID: fmt.Sprintf("e-%d", i), SessionID: fmt.Sprintf("s-%d", i/20), AgentID: fmt.Sprintf("agent-%d", i%5),
			UserID: fmt.Sprintf("u-%d", i%200), UserRole: "nurse", RecordedAt: at.Add(time.Duration(i) * time.Millisecond), Outcome: event.OutcomeSuccess}
		switch i % 3 {
		case 0:
			ev.Kind, ev.SubjectType, ev.SubjectID, ev.Purpose = event.KindAccess, "patient", fmt.Sprintf("P-%d", i%5000), "treatment"
		case 1:
			ev.Kind, ev.ToolName, ev.DurationMS = event.KindToolCall, fmt.Sprintf("tool-%d", i%20), float64(i%7000)
			if i%11 == 0 {
				ev.Outcome = event.OutcomeError
			}
		case 2:
			ev.Kind, ev.Model, ev.InputTokens, ev.OutputTokens = event.KindLLMCall, "claude-opus-4-6", 1200, 300
		}
		evs[i] = ev
	}
	return evs
}

// BenchmarkEvaluate20Rules: one event through 20 rules, ten of them windowed, on one goroutine.
// Run with -cpu 1 for the one-core figure; events/s is reported.
func BenchmarkEvaluate20Rules(b *testing.B) {
	cfg, err := Parse("bench.yaml", []byte(benchRules))
	if err != nil {
		b.Fatal(err)
	}
	if len(cfg.Rules) != 20 {
		b.Fatalf("%d rules", len(cfg.Rules))
	}
	e, err := NewEvaluator(cfg)
	if err != nil {
		b.Fatal(err)
	}
	evs := benchEvents(1 << 16)
	i := 0
	for b.Loop() {
		ev := evs[i&(len(evs)-1)]
		// Keep the log's clock moving, as it does live.
		ev.RecordedAt = ev.RecordedAt.Add(time.Duration(i>>16) * 66 * time.Second)
		e.Observe(int64(i), ev)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkEvaluateBuiltins: the built-in rules alone, with the parse of the stored event that
// the engine does for each commit.
func BenchmarkEvaluateBuiltins(b *testing.B) {
	e := builtinsB(b)
	evs := benchEvents(1 << 12)
	bodies := make([][]byte, len(evs))
	for i, ev := range evs {
		ev.Time = ev.RecordedAt
		bodies[i], _ = ev.Canonical()
	}
	i := 0
	for b.Loop() {
		ev, err := event.ParseStored(bodies[i&(len(bodies)-1)])
		if err != nil {
			b.Fatal(err)
		}
		e.Observe(int64(i), ev)
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func builtinsB(b *testing.B) *Evaluator {
	e, err := NewEvaluator(&Config{Rules: Builtins()})
	if err != nil {
		b.Fatal(err)
	}
	return e
}
