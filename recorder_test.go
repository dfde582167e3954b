package agentaudit_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/query"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

type orderArgs struct {
	OrderID string `json:"order_id"`
	Status  string `json:"status,omitempty"`
}

// trail reads a session back from the data directory, the way an auditor would.
func trail(t *testing.T, dir, session string) []query.Record {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "ledger.db"), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := query.Session(context.Background(), st, session)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

func kinds(recs []query.Record) string {
	var ks []string
	for _, r := range recs {
		ks = append(ks, string(r.Event.Kind))
	}
	return strings.Join(ks, " ")
}

func TestSessionTrail(t *testing.T) {
	for _, mode := range []agentaudit.Mode{agentaudit.Async, agentaudit.Sync} {
		t.Run(mode.String(), func(t *testing.T) {
			dir := t.TempDir()
			rec, err := openEmbedded(dir, ledger.Options{}, agentaudit.WithMode(mode))
			if err != nil {
				t.Fatal(err)
			}
			ctx, sess, err := rec.StartSession(context.Background(), agentaudit.SessionInfo{
				ID: "s1", UserID: "usr_98765", UserRole: "support_agent", AgentID: "support-v1", Model: "claude-opus-4-6",
				SystemPrompt: "You are a support agent.",
			})
			if err != nil {
				t.Fatal(err)
			}
			getOrder := agentaudit.WrapTool(rec, "get_order", func(ctx context.Context, a orderArgs) (map[string]any, error) {
				return map[string]any{"order_id": a.OrderID, "status": "shipped"}, nil
			})
			update := agentaudit.WrapTool(rec, "update_order_status", func(ctx context.Context, a orderArgs) (map[string]any, error) {
				return nil, errors.New("Cannot cancel shipped order")
			})
			sess.NextTurn()
			llm, err := sess.LLMCall(ctx, agentaudit.LLMCall{InputTokens: 10, OutputTokens: 5, StopReason: "tool_use",
				ToolCalls: []agentaudit.RequestedTool{{ID: "toolu_1", Name: "get_order"}, {ID: "toolu_2", Name: "update_order_status"}}})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := getOrder(agentaudit.WithToolCallID(ctx, "toolu_1"), orderArgs{OrderID: "ORD-456"}); err != nil {
				t.Fatal(err)
			}
			if _, err := update(agentaudit.WithToolCallID(ctx, "toolu_2"), orderArgs{OrderID: "ORD-456", Status: "cancelled"}); err == nil || err.Error() != "Cannot cancel shipped order" {
				t.Fatalf("the tool's own error must come back unchanged: %v", err)
			}
			sess.Reasoning(ctx, "offer a return", "order already shipped")
			sess.ToolCall(ctx, agentaudit.ToolCall{Name: "send_email", CallID: "toolu_2", Arguments: map[string]string{"to": "C-1001"}, Result: "queued", Duration: 3 * time.Millisecond})
			sess.FinalOutput(ctx, "I started a return instead.")
			sess.End(ctx, event.OutcomeSuccess)
			if err := rec.Close(); err != nil {
				t.Fatal(err)
			}
			recs := trail(t, dir, "s1")
			if got := kinds(recs); got != "session_start llm_call tool_call tool_call reasoning tool_call final_output session_end" {
				t.Fatalf("kinds: %s", got)
			}
			sum := sha256.Sum256([]byte("You are a support agent."))
			for _, r := range recs {
				if r.Event.UserID != "usr_98765" || r.Event.AgentID != "support-v1" || r.Event.SystemPromptHash != hex.EncodeToString(sum[:]) {
					t.Errorf("%s lacks attribution: %+v", r.Event.Kind, r.Event)
				}
			}
			ok, failed := recs[2].Event, recs[3].Event
			if ok.ParentID != llm || failed.ParentID != llm || ok.ToolCallID != "toolu_1" || ok.Turn != 1 || ok.Step != 2 || failed.Step != 3 {
				t.Errorf("links and positions: ok %+v failed %+v (llm %s)", ok, failed, llm)
			}
			if string(ok.Arguments) != `{"order_id":"ORD-456"}` || !*ok.Success || string(ok.Result) != `{"order_id":"ORD-456","status":"shipped"}` {
				t.Errorf("successful call: %+v", ok)
			}
			if *failed.Success || failed.Error != "Cannot cancel shipped order" || failed.Outcome != event.OutcomeError || failed.DurationMS <= 0 {
				t.Errorf("failed call: %+v", failed)
			}
			if m := recs[5].Event; m.ToolName != "send_email" || m.ParentID != llm || m.DurationMS != 3 || string(m.Result) != `"queued"` {
				t.Errorf("hand-recorded tool call: %+v", m)
			}
			if strings.Contains(string(recs[0].Event.Metadata), "support agent") {
				t.Error("the system prompt was stored without KeepSystemPrompt")
			}
		})
	}
}

func TestWrapToolPanic(t *testing.T) {
	dir := t.TempDir()
	rec, _ := openEmbedded(dir, ledger.Options{}, agentaudit.WithMode(agentaudit.Sync))
	ctx, _, _ := rec.StartSession(context.Background(), agentaudit.SessionInfo{ID: "p"})
	boom := agentaudit.WrapTool(rec, "boom", func(ctx context.Context, _ struct{}) (int, error) { panic("kaboom") })
	func() {
		defer func() {
			if p := recover(); p != "kaboom" {
				t.Errorf("re-panicked with %v", p)
			}
		}()
		boom(ctx, struct{}{})
	}()
	rec.Close()
	recs := trail(t, dir, "p")
	last := recs[len(recs)-1].Event
	if last.Kind != event.KindError || last.ToolName != "boom" || last.Error != "panic: kaboom" {
		t.Fatalf("panic recorded as %+v", last)
	}
}

func TestFailClosedDoesNotRunTheTool(t *testing.T) {
	dir := t.TempDir()
	// A real failure of the audit write: the ledger refuses events over its size limit.
	rec, err := openEmbedded(dir, ledger.Options{MaxEventBytes: 2048})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ctx, _, _ := rec.StartSession(context.Background(), agentaudit.SessionInfo{ID: "fc", UserID: "dr_smith"})
	ran := 0
	deleteRecord := agentaudit.WrapTool(rec, "delete_record", func(ctx context.Context, note string) (string, error) {
		ran++
		return "deleted", nil
	}, agentaudit.ToolMode(agentaudit.FailClosed))
	if _, err := deleteRecord(ctx, "small"); err != nil || ran != 1 {
		t.Fatalf("recordable call: ran %d, %v", ran, err)
	}
	_, err = deleteRecord(ctx, strings.Repeat("x", 4096))
	if !errors.Is(err, ledger.ErrTooLarge) || ran != 1 {
		t.Fatalf("unrecordable call: ran %d times, err %v; want not run and ErrTooLarge", ran, err)
	}
	rec.Close()
	recs := trail(t, dir, "fc")
	if got := kinds(recs); got != "session_start tool_call tool_result" {
		t.Fatalf("kinds %s", got)
	}
	if recs[2].Event.ParentID != recs[1].Event.ID || recs[2].Event.Arguments != nil || string(recs[2].Event.Result) != `"deleted"` {
		t.Errorf("result event %+v", recs[2].Event)
	}
}

func TestAsyncFlushAndErrors(t *testing.T) {
	dir := t.TempDir()
	var asyncErrs []error
	rec, err := openEmbedded(dir, ledger.Options{}, agentaudit.WithErrorHandler(func(err error) { asyncErrs = append(asyncErrs, err) }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, sess, _ := rec.StartSession(context.Background(), agentaudit.SessionInfo{ID: "a"})
	for i := 0; i < 500; i++ {
		if err := sess.Reasoning(ctx, "d", "r"); err != nil {
			t.Fatal(err)
		}
	}
	// Invalid events fail at once even in async mode.
	if err := rec.Record(ctx, &event.Event{Kind: "nonsense"}); !errors.Is(err, event.ErrInvalid) {
		t.Errorf("invalid async event: %v", err)
	}
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := len(trail(t, dir, "a")); n != 501 {
		t.Errorf("after Flush %d events are stored, want 501", n)
	}
	rec.Close()
	if err := rec.Record(ctx, &event.Event{Kind: event.KindCustom}); !errors.Is(err, agentaudit.ErrClosed) {
		t.Errorf("after Close: %v", err)
	}
	if len(asyncErrs) != 0 {
		t.Errorf("async errors: %v", asyncErrs)
	}
}

func TestAccessAndTimeline(t *testing.T) {
	dir := t.TempDir()
	rec, _ := openEmbedded(dir, ledger.Options{})
	ctx, sess, _ := rec.StartSession(context.Background(), agentaudit.SessionInfo{ID: "m", UserID: "dr_jones", UserRole: "er_physician", AgentID: "records"})
	getRecord := agentaudit.WrapTool(rec, "get_patient_record", func(ctx context.Context, id string) (json.RawMessage, error) {
		return json.RawMessage(`{"patient_id":"` + id + `","allergies":["penicillin"]}`), nil
	}, agentaudit.ToolSubject(func(a any) (string, string, string) { return "patient", a.(string), "treatment" }))
	getRecord(ctx, "P-123")
	sess.Access(ctx, agentaudit.Access{SubjectType: "patient", SubjectID: "P-123", Purpose: "emergency_treatment", BreakGlassReason: "unconscious"})
	rec.Close()
	recs := trail(t, dir, "m")
	if recs[1].Event.SubjectID != "P-123" || recs[1].Event.Purpose != "treatment" || !recs[2].Event.BreakGlass {
		t.Errorf("subjects: %+v %+v", recs[1].Event, recs[2].Event)
	}
}

// TestLLMCallDatedAtStart: an llm_call's time is when the call began (as OTLP spans are dated),
// its duration in latency_ms.
func TestLLMCallDatedAtStart(t *testing.T) {
	dir := t.TempDir()
	rec, err := openEmbedded(dir, ledger.Options{}, agentaudit.WithMode(agentaudit.Sync))
	if err != nil {
		t.Fatal(err)
	}
	ctx, sess, _ := rec.StartSession(context.Background(), agentaudit.SessionInfo{ID: "dated", UserID: "u", AgentID: "a"})
	start := time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)
	if _, err := sess.LLMCall(ctx, agentaudit.LLMCall{Start: start, Latency: 1500 * time.Millisecond, OutputText: "hi"}); err != nil {
		t.Fatal(err)
	}
	before := time.Now()
	if _, err := sess.LLMCall(ctx, agentaudit.LLMCall{Latency: 10 * time.Second, Err: errors.New("overloaded")}); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	rec.Close()
	var llm []*event.Event
	for _, r := range trail(t, dir, "dated") {
		if r.Event.Kind == event.KindLLMCall {
			llm = append(llm, r.Event)
		}
	}
	if len(llm) != 2 || !llm[0].Time.Equal(start) || llm[0].LatencyMS != 1500 {
		t.Fatalf("explicit start: %+v", llm)
	}
	if tm := llm[1].Time; tm.Before(before.Add(-10*time.Second)) || tm.After(after.Add(-10*time.Second)) {
		t.Errorf("derived start %v, want 10s before the call was recorded (%v..%v)", tm, before, after)
	}
	if llm[1].ErrorType != "" {
		t.Errorf("a plain error's type leaked: %q", llm[1].ErrorType)
	}
}
