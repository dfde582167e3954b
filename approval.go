package agentaudit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/agentaudit/agentaudit/event"
)

// DefaultApprovalTimeout is how long a call held by RequireApproval waits for a decision when
// no timeout is given. It is the MCP proxy's default too.
const DefaultApprovalTimeout = 5 * time.Minute

// ApprovalRequest is a tool call waiting for a person's decision.
type ApprovalRequest struct {
	ID        string    `json:"id"` // the approval_request event's id
	SessionID string    `json:"session_id"`
	Tool      string    `json:"tool"`
	CallID    string    `json:"tool_call_id"`
	UserID    string    `json:"user_id,omitempty"`
	AgentID   string    `json:"agent_id,omitempty"`
	Time      time.Time `json:"time"`
}

// ApprovalDecision is a person's answer to an ApprovalRequest.
type ApprovalDecision struct {
	Status   event.ApprovalStatus `json:"status"` // approved or rejected
	Approver string               `json:"approver"`
	Note     string               `json:"note,omitempty"`
}

// Approver waits for the decision on a request: until one is made or ctx ends (ctx carries the
// approval timeout). mcpproxy.DirDecider is one: it shares the MCP proxy's directory of pending
// requests, decided with `agentaudit approvals` or the server's /v1/approvals.
type Approver interface {
	Approve(ctx context.Context, req ApprovalRequest) (ApprovalDecision, error)
}

// ErrNotApproved is the error a held tool call returns when it was not approved: rejected, left
// undecided past the timeout, or its request or decision could not be recorded. The tool did not
// run. The wrapped error says why.
var ErrNotApproved = errors.New("agentaudit: tool call not approved")

// RequireApproval holds every call of the wrapped tool until a.Approve decides it, as the MCP
// proxy's approval gate does: an approval_request event is recorded (durably, before anyone can
// decide) and the call waits; approved, the tool runs; rejected or after timeout
// (DefaultApprovalTimeout when 0), the call returns an error wrapping ErrNotApproved and the
// tool does not run. The decision is an approval_decision event whose parent is the request;
// both carry the tool call id (WithToolCallID). The denied call is recorded as a failed
// tool_call with error_type approval_rejected.
func RequireApproval(a Approver, timeout time.Duration) ToolOption {
	if timeout <= 0 {
		timeout = DefaultApprovalTimeout
	}
	if a == nil {
		a = noApprover{} // a gate without an approver denies: it never lets a call through unseen
	}
	return func(c *toolConfig) { c.approver, c.approvalTimeout = a, timeout }
}

type noApprover struct{}

func (noApprover) Approve(context.Context, ApprovalRequest) (ApprovalDecision, error) {
	return ApprovalDecision{}, errors.New("RequireApproval was given no Approver")
}

// awaitApproval records the request, waits for the decision and records it. It returns nil when
// the call may run, and an error wrapping ErrNotApproved otherwise. mode is the delivery mode
// of the request and decision: at least Sync, so that both are on record before the call goes
// on.
func (r *Recorder) awaitApproval(ctx context.Context, cfg *toolConfig, call *event.Event, mode Mode) error {
	if mode == Async {
		mode = Sync
	}
	name := call.ToolName
	req := *call
	req.ID, req.Time = newID(), time.Now().UTC()
	req.Kind, req.RequiresApproval, req.ApprovalStatus = event.KindApprovalRequest, true, event.ApprovalPending
	if err := r.record(ctx, &req, mode); err != nil {
		return &notApproved{typ: "approval_unrecorded", err: fmt.Errorf("%w: the call to %s needs approval, and its approval request could not be recorded: %w", ErrNotApproved, name, err)}
	}
	actx, cancel := context.WithTimeout(ctx, cfg.approvalTimeout)
	d, err := cfg.approver.Approve(actx, ApprovalRequest{ID: req.ID, SessionID: req.SessionID, Tool: name, CallID: req.ToolCallID,
		UserID: req.UserID, AgentID: req.AgentID, Time: req.Time})
	cancel()
	switch {
	case err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil:
		d = ApprovalDecision{Status: event.ApprovalRejected, Approver: "agentaudit:timeout", Note: fmt.Sprintf("no decision within %v", cfg.approvalTimeout)}
	case err != nil:
		d = ApprovalDecision{Status: event.ApprovalRejected, Approver: "agentaudit", Note: "waiting for the decision failed: " + err.Error()}
	case d.Status != event.ApprovalApproved && d.Status != event.ApprovalRejected:
		d = ApprovalDecision{Status: event.ApprovalRejected, Approver: "agentaudit", Note: fmt.Sprintf("the approver answered status %q", d.Status)}
	}
	dec := req
	dec.ID, dec.Time, dec.Arguments = newID(), time.Now().UTC(), nil
	dec.Kind, dec.ParentID, dec.RequiresApproval = event.KindApprovalDecision, req.ID, false
	dec.ApprovalStatus, dec.ApproverID, dec.Rationale = d.Status, d.Approver, d.Note
	// The decision is made: a caller hanging up must not drop its record.
	if err := r.record(context.WithoutCancel(ctx), &dec, mode); err != nil {
		return &notApproved{typ: "approval_unrecorded", err: fmt.Errorf("%w: the decision on the call to %s could not be recorded: %w", ErrNotApproved, name, err)}
	}
	if d.Status != event.ApprovalApproved {
		why := fmt.Sprintf("the call to %s was rejected by %s", name, d.Approver)
		if d.Note != "" {
			why += ": " + d.Note
		}
		return &notApproved{typ: "approval_rejected", err: fmt.Errorf("%w: %s", ErrNotApproved, why)}
	}
	return nil
}

// notApproved carries the error_type of a denied call: approval_rejected (rejected or timed
// out) or approval_unrecorded (the request or decision could not be recorded).
type notApproved struct {
	typ string
	err error
}

func (e *notApproved) Error() string     { return e.err.Error() }
func (e *notApproved) Unwrap() error     { return e.err }
func (e *notApproved) ErrorType() string { return e.typ }

func newID() string {
	id, _ := uuid.NewV7()
	return id.String()
}
