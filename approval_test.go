package agentaudit_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/event"
)

// memSink keeps what the recorder commits, and can be told to refuse events of one kind.
type memSink struct {
	mu     sync.Mutex
	evs    []*event.Event
	refuse event.Kind
}

func (m *memSink) AppendBatch(ctx context.Context, evs []*event.Event) ([]error, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	errs := make([]error, len(evs))
	for i, ev := range evs {
		if ev.Kind == m.refuse {
			errs[i] = errors.New("disk full")
			continue
		}
		c := *ev
		m.evs = append(m.evs, &c)
	}
	return errs, nil
}

func (m *memSink) Close() error { return nil }

func (m *memSink) events() []*event.Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]*event.Event(nil), m.evs...)
}

// approverFunc is an Approver from a function.
type approverFunc func(ctx context.Context, req agentaudit.ApprovalRequest) (agentaudit.ApprovalDecision, error)

func (f approverFunc) Approve(ctx context.Context, req agentaudit.ApprovalRequest) (agentaudit.ApprovalDecision, error) {
	return f(ctx, req)
}

// TestRequireApproval: approved calls run after the request and decision are on record;
// rejected, undecided and unrecordable ones do not run, return ErrNotApproved saying why, and
// are recorded as denied tool calls linked to their request by tool_call_id.
func TestRequireApproval(t *testing.T) {
	for _, tc := range []struct {
		name    string
		decide  func(ctx context.Context, req agentaudit.ApprovalRequest) (agentaudit.ApprovalDecision, error)
		refuse  event.Kind
		ran     bool
		errHas  string
		errType string
		dec     string // the recorded decision: status and approver; "" for none
	}{
		{name: "approved", ran: true, dec: "approved alice",
			decide: func(ctx context.Context, req agentaudit.ApprovalRequest) (agentaudit.ApprovalDecision, error) {
				return agentaudit.ApprovalDecision{Status: event.ApprovalApproved, Approver: "alice"}, nil
			}},
		{name: "rejected", errHas: "the call to delete_order was rejected by bob: not on prod", errType: "approval_rejected", dec: "rejected bob",
			decide: func(ctx context.Context, req agentaudit.ApprovalRequest) (agentaudit.ApprovalDecision, error) {
				return agentaudit.ApprovalDecision{Status: event.ApprovalRejected, Approver: "bob", Note: "not on prod"}, nil
			}},
		{name: "timeout", errHas: "rejected by agentaudit:timeout: no decision within 50ms", errType: "approval_rejected", dec: "rejected agentaudit:timeout",
			decide: func(ctx context.Context, req agentaudit.ApprovalRequest) (agentaudit.ApprovalDecision, error) {
				<-ctx.Done()
				return agentaudit.ApprovalDecision{}, ctx.Err()
			}},
		{name: "bad status", errHas: `the approver answered status "pending"`, errType: "approval_rejected", dec: "rejected agentaudit",
			decide: func(ctx context.Context, req agentaudit.ApprovalRequest) (agentaudit.ApprovalDecision, error) {
				return agentaudit.ApprovalDecision{Status: event.ApprovalPending, Approver: "eve"}, nil
			}},
		{name: "request unrecorded", refuse: event.KindApprovalRequest, errHas: "approval request could not be recorded: ", errType: "approval_unrecorded",
			decide: func(ctx context.Context, req agentaudit.ApprovalRequest) (agentaudit.ApprovalDecision, error) {
				t.Error("asked to decide a request that is not on record")
				return agentaudit.ApprovalDecision{Status: event.ApprovalApproved, Approver: "alice"}, nil
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink := &memSink{refuse: tc.refuse}
			rec, err := agentaudit.New(sink, agentaudit.WithErrorHandler(func(error) {}))
			if err != nil {
				t.Fatal(err)
			}
			defer rec.Close()
			ctx, sess, err := rec.StartSession(context.Background(), agentaudit.SessionInfo{UserID: "usr_1", AgentID: "ops-v1"})
			if err != nil {
				t.Fatal(err)
			}
			var asked agentaudit.ApprovalRequest
			ran := false
			del := agentaudit.WrapTool(rec, "delete_order", func(ctx context.Context, id string) (string, error) {
				ran = true
				return "deleted " + id, nil
			}, agentaudit.RequireApproval(approverFunc(func(ctx context.Context, req agentaudit.ApprovalRequest) (agentaudit.ApprovalDecision, error) {
				asked = req
				// The request is on record before anyone is asked.
				found := false
				for _, ev := range sink.events() {
					found = found || (ev.Kind == event.KindApprovalRequest && ev.ID == req.ID)
				}
				if !found {
					t.Errorf("approval request %s not recorded before the approver was asked", req.ID)
				}
				return tc.decide(ctx, req)
			}), 50*time.Millisecond))
			out, err := del(agentaudit.WithToolCallID(ctx, "toolu_1"), "ORD-1")
			if ran != tc.ran {
				t.Errorf("the tool ran: %v, want %v", ran, tc.ran)
			}
			if tc.ran {
				if err != nil || out != "deleted ORD-1" {
					t.Fatalf("approved call: %q, %v", out, err)
				}
			} else if !errors.Is(err, agentaudit.ErrNotApproved) || !strings.Contains(err.Error(), tc.errHas) || agentaudit.ErrorType(err) != tc.errType {
				t.Fatalf("denied call: error %v (type %q), want ErrNotApproved with %q, type %q", err, agentaudit.ErrorType(err), tc.errHas, tc.errType)
			}
			if err := rec.Flush(context.Background()); err != nil {
				t.Fatal(err)
			}
			var req, dec, call *event.Event
			for _, ev := range sink.events() {
				switch ev.Kind {
				case event.KindApprovalRequest:
					req = ev
				case event.KindApprovalDecision:
					dec = ev
				case event.KindToolCall:
					call = ev
				}
			}
			if tc.refuse == "" {
				if req == nil || req.SessionID != sess.ID() || req.ToolCallID != "toolu_1" || req.ToolName != "delete_order" ||
					!req.RequiresApproval || req.ApprovalStatus != event.ApprovalPending || string(req.Arguments) != `"ORD-1"` {
					t.Errorf("request: %+v", req)
				}
				if asked.ID != req.ID || asked.CallID != "toolu_1" || asked.UserID != "usr_1" || asked.AgentID != "ops-v1" || asked.SessionID != sess.ID() {
					t.Errorf("the approver was asked %+v", asked)
				}
			}
			switch {
			case tc.dec == "" && dec != nil:
				t.Errorf("a decision was recorded: %+v", dec)
			case tc.dec != "" && (dec == nil || string(dec.ApprovalStatus)+" "+dec.ApproverID != tc.dec || dec.ParentID != req.ID || dec.ToolCallID != "toolu_1"):
				t.Errorf("decision: %+v, want %q linked to request", dec, tc.dec)
			}
			if call == nil || call.ToolCallID != "toolu_1" || (call.Success != nil && *call.Success) != tc.ran {
				t.Fatalf("tool call: %+v", call)
			}
			if !tc.ran && (call.Outcome != event.OutcomeDenied || call.ErrorType != tc.errType || call.Error != err.Error()) {
				t.Errorf("denied call recorded as %s %q %q", call.Outcome, call.ErrorType, call.Error)
			}
			if tc.ran && dec != nil && call.Time.Before(dec.Time) {
				t.Errorf("the call is recorded as starting before its approval")
			}
		})
	}
}

// TestRequireApprovalNil: a gate given no approver denies every call.
func TestRequireApprovalNil(t *testing.T) {
	rec, _ := agentaudit.New(&memSink{})
	defer rec.Close()
	ran := false
	f := agentaudit.WrapTool(rec, "wipe", func(ctx context.Context, _ int) (int, error) { ran = true; return 0, nil },
		agentaudit.RequireApproval(nil, time.Second))
	if _, err := f(context.Background(), 1); ran || !errors.Is(err, agentaudit.ErrNotApproved) || !strings.Contains(err.Error(), "no Approver") {
		t.Errorf("ran %v, error %v", ran, err)
	}
}

// ExampleRequireApproval holds a risky tool until a person decides. Here the approver answers
// at once; mcpproxy.DirDecider waits for `agentaudit approvals approve ID` or the server's
// POST /v1/approvals/ID/approve instead.
func ExampleRequireApproval() {
	rec, _ := agentaudit.New(&memSink{})
	defer rec.Close()
	ctx, _, _ := rec.StartSession(context.Background(), agentaudit.SessionInfo{UserID: "usr_1", AgentID: "ops-v1"})

	onCall := approverFunc(func(ctx context.Context, req agentaudit.ApprovalRequest) (agentaudit.ApprovalDecision, error) {
		return agentaudit.ApprovalDecision{Status: event.ApprovalRejected, Approver: "alice", Note: "not on prod"}, nil
	})
	drop := agentaudit.WrapTool(rec, "drop_table", func(ctx context.Context, table string) (string, error) {
		return "dropped " + table, nil
	}, agentaudit.RequireApproval(onCall, 2*time.Minute))

	_, err := drop(ctx, "orders")
	fmt.Println(errors.Is(err, agentaudit.ErrNotApproved))
	fmt.Println(err)
	// Output:
	// true
	// agentaudit: tool call not approved: the call to drop_table was rejected by alice: not on prod
}
