package agentaudit

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/agentaudit/agentaudit/event"
)

// SessionInfo says who is acting, through which agent and model, and why.
type SessionInfo struct {
	ID           string // the conversation id; a UUIDv7 when empty
	UserID       string
	UserRole     string
	ClientIP     string
	UserAgent    string
	AgentID      string
	AgentVersion string
	Model        string
	// SystemPrompt is hashed (SHA-256) into every event for reproducibility; the text itself is
	// stored only with KeepSystemPrompt, in the session_start event's metadata.
	SystemPrompt     string
	KeepSystemPrompt bool
	Trigger          event.Trigger   // why the session started; user_request when empty
	Metadata         json.RawMessage // a JSON object for session_start
}

// Session is one conversation. Its methods record events carrying the session's attribution,
// turn and step numbers, and parent links. It is safe for concurrent use.
type Session struct {
	rec  *Recorder
	info SessionInfo
	hash string

	mu        sync.Mutex
	turn      int64
	step      int64
	lastLLM   string            // id of the latest LLM call: the default parent of a tool call
	requested map[string]string // tool_use / tool_call id -> id of the LLM call that requested it
}

type sessionKey struct{}

// SessionFrom returns the session riding on ctx, or nil.
func SessionFrom(ctx context.Context) *Session {
	s, _ := ctx.Value(sessionKey{}).(*Session)
	return s
}

// ContextWithSession returns ctx carrying s, as the context StartSession returns does: for code
// that keeps sessions across requests, such as the LLM proxy.
func ContextWithSession(ctx context.Context, s *Session) context.Context {
	return context.WithValue(ctx, sessionKey{}, s)
}

// StartSession records session_start and returns ctx carrying the session.
func (r *Recorder) StartSession(ctx context.Context, info SessionInfo) (context.Context, *Session, error) {
	if info.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return ctx, nil, err
		}
		info.ID = id.String()
	}
	if info.Trigger == "" {
		info.Trigger = event.TriggerUserRequest
	}
	s := &Session{rec: r, info: info, requested: map[string]string{}}
	if info.SystemPrompt != "" {
		sum := sha256.Sum256([]byte(info.SystemPrompt))
		s.hash = hex.EncodeToString(sum[:])
	}
	ev := s.base(event.KindSessionStart)
	ev.Trigger = info.Trigger
	ev.Metadata = info.Metadata
	if info.KeepSystemPrompt && info.SystemPrompt != "" {
		md := map[string]any{}
		if len(info.Metadata) > 0 {
			if err := json.Unmarshal(info.Metadata, &md); err != nil {
				return ctx, nil, fmt.Errorf("agentaudit: SessionInfo.Metadata: %w", err)
			}
		}
		md["system_prompt"] = info.SystemPrompt
		ev.Metadata, _ = json.Marshal(md)
	}
	if err := r.Record(ctx, ev); err != nil {
		return ctx, nil, err
	}
	return context.WithValue(ctx, sessionKey{}, s), s, nil
}

// ID returns the session id.
func (s *Session) ID() string { return s.info.ID }

// NextTurn starts the next turn (a user message and the agent's work on it) and returns its
// number. Steps count from 1 within each turn.
func (s *Session) NextTurn() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.turn++
	s.step = 0
	return s.turn
}

// base returns a new event of kind with the session's attribution, turn and next step.
func (s *Session) base(kind event.Kind) *event.Event {
	id, _ := uuid.NewV7()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.step++
	turn := s.turn
	if kind == event.KindSessionStart {
		s.step = 0
	}
	ev := &event.Event{
		ID: id.String(), Kind: kind, Time: time.Now().UTC(), SessionID: s.info.ID,
		UserID: s.info.UserID, UserRole: s.info.UserRole, ClientIP: s.info.ClientIP, UserAgent: s.info.UserAgent,
		AgentID: s.info.AgentID, AgentVersion: s.info.AgentVersion, Model: s.info.Model, SystemPromptHash: s.hash,
		Turn: turn,
	}
	if kind != event.KindSessionStart {
		ev.Step = s.step
	}
	return ev
}

// LLMCall is one model call. ToolCalls lists the tool calls the model requested; their ids link
// the tool calls recorded later (WrapTool, ToolCall) to this event.
type LLMCall struct {
	Model         string // overrides the session's model
	InputMessages any    // marshaled to JSON
	OutputText    string
	ToolCalls     []RequestedTool
	InputTokens   int64
	OutputTokens  int64
	Latency       time.Duration
	// Start is when the call was sent; the event's time. Zero: now less Latency, so an LLM
	// call is dated when it began, as OpenTelemetry dates spans.
	Start      time.Time
	StopReason string
	Trigger    event.Trigger
	Err        error
}

// RequestedTool is a tool call an LLM asked for.
type RequestedTool struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Input any    `json:"input,omitempty"`
}

// LLMCall records an LLM call and returns its event id.
func (s *Session) LLMCall(ctx context.Context, c LLMCall) (string, error) {
	return s.recordLLM(ctx, c, nil)
}

func (s *Session) recordLLM(ctx context.Context, c LLMCall, extra func(*event.Event)) (string, error) {
	ev := s.base(event.KindLLMCall)
	if c.Model != "" {
		ev.Model = c.Model
	}
	var err error
	if c.InputMessages != nil {
		if ev.InputMessages, err = json.Marshal(c.InputMessages); err != nil {
			return "", fmt.Errorf("agentaudit: LLMCall.InputMessages: %w", err)
		}
	}
	if len(c.ToolCalls) > 0 {
		if ev.ToolCallsRequested, err = json.Marshal(c.ToolCalls); err != nil {
			return "", fmt.Errorf("agentaudit: LLMCall.ToolCalls: %w", err)
		}
	}
	ev.OutputText, ev.InputTokens, ev.OutputTokens, ev.StopReason = c.OutputText, c.InputTokens, c.OutputTokens, c.StopReason
	ev.LatencyMS = ms(c.Latency)
	if ev.Time = c.Start.UTC(); c.Start.IsZero() {
		ev.Time = time.Now().UTC().Add(-c.Latency)
	}
	ev.Trigger = s.trigger(c.Trigger)
	if c.Err != nil {
		ev.Error, ev.ErrorType, ev.Outcome = c.Err.Error(), ErrorType(c.Err), event.OutcomeError
	}
	if extra != nil {
		extra(ev)
	}
	s.mu.Lock()
	s.lastLLM = ev.ID
	for _, t := range c.ToolCalls {
		if t.ID != "" {
			s.requested[t.ID] = ev.ID
		}
	}
	s.mu.Unlock()
	return ev.ID, s.rec.Record(ctx, ev)
}

func (s *Session) trigger(t event.Trigger) event.Trigger {
	if t != "" {
		return t
	}
	return s.info.Trigger
}

// parentFor returns the LLM call that requested toolCallID, or the latest LLM call.
func (s *Session) parentFor(toolCallID string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p, ok := s.requested[toolCallID]; ok && toolCallID != "" {
		return p
	}
	return s.lastLLM
}

func ms(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }

// Reasoning records a decision and its rationale.
func (s *Session) Reasoning(ctx context.Context, decision, rationale string) error {
	ev := s.base(event.KindReasoning)
	ev.Decision, ev.Rationale, ev.ParentID, ev.Trigger = decision, rationale, s.parentFor(""), s.info.Trigger
	return s.rec.Record(ctx, ev)
}

// ApprovalRequest records that a tool call waits for a human's approval, and returns its id.
func (s *Session) ApprovalRequest(ctx context.Context, tool string, args any) (string, error) {
	ev := s.base(event.KindApprovalRequest)
	ev.ToolName, ev.RequiresApproval, ev.ApprovalStatus = tool, true, event.ApprovalPending
	if args != nil {
		var err error
		if ev.Arguments, err = json.Marshal(args); err != nil {
			return "", fmt.Errorf("agentaudit: ApprovalRequest args: %w", err)
		}
	}
	return ev.ID, s.rec.Record(ctx, ev)
}

// ApprovalDecision records a human's decision on the request requestID.
func (s *Session) ApprovalDecision(ctx context.Context, requestID, tool string, status event.ApprovalStatus, approverID, rationale string) error {
	ev := s.base(event.KindApprovalDecision)
	ev.ParentID, ev.ToolName, ev.ApprovalStatus, ev.ApproverID, ev.Rationale = requestID, tool, status, approverID, rationale
	return s.rec.Record(ctx, ev)
}

// ApprovalRequestForCall is ApprovalRequest for the tool call callID (the MCP JSON-RPC id, the
// LLM's tool_use id), so the request, its decision and the call link up.
func (s *Session) ApprovalRequestForCall(ctx context.Context, tool, callID string, args json.RawMessage) (string, error) {
	ev := s.base(event.KindApprovalRequest)
	ev.ToolName, ev.ToolCallID, ev.RequiresApproval, ev.ApprovalStatus, ev.Arguments = tool, callID, true, event.ApprovalPending, args
	return ev.ID, s.rec.Record(ctx, ev)
}

// ApprovalDecisionForCall is ApprovalDecision for the tool call callID.
func (s *Session) ApprovalDecisionForCall(ctx context.Context, requestID, tool, callID string, status event.ApprovalStatus, approverID, rationale string) error {
	ev := s.base(event.KindApprovalDecision)
	ev.ParentID, ev.ToolName, ev.ToolCallID, ev.ApprovalStatus, ev.ApproverID, ev.Rationale = requestID, tool, callID, status, approverID, rationale
	return s.rec.Record(ctx, ev)
}

// HumanIntervention records a person stepping in: who, what they decided and why.
func (s *Session) HumanIntervention(ctx context.Context, who, decision, rationale string) error {
	ev := s.base(event.KindHumanIntervention)
	ev.ApproverID, ev.Decision, ev.Rationale = who, decision, rationale
	return s.rec.Record(ctx, ev)
}

// Error records an error of the agent itself (not of a tool call, which WrapTool records).
func (s *Session) Error(ctx context.Context, err error) error {
	ev := s.base(event.KindError)
	ev.Error, ev.ErrorType, ev.Outcome = err.Error(), ErrorType(err), event.OutcomeError
	return s.rec.Record(ctx, ev)
}

// FinalOutput records the agent's answer.
func (s *Session) FinalOutput(ctx context.Context, text string) error {
	ev := s.base(event.KindFinalOutput)
	ev.OutputText, ev.ParentID, ev.Outcome = text, s.parentFor(""), event.OutcomeSuccess
	return s.rec.Record(ctx, ev)
}

// End records session_end with the outcome.
func (s *Session) End(ctx context.Context, outcome event.Outcome) error {
	ev := s.base(event.KindSessionEnd)
	ev.Outcome = outcome
	return s.rec.Record(ctx, ev)
}

// Timeout records session_timeout.
func (s *Session) Timeout(ctx context.Context) error {
	return s.rec.Record(ctx, s.base(event.KindSessionTimeout))
}

// Access records access to data about a subject (a patient, a customer) and the purpose.
func (s *Session) Access(ctx context.Context, a Access) error {
	ev := s.base(event.KindAccess)
	ev.SubjectType, ev.SubjectID, ev.Purpose, ev.ToolName = a.SubjectType, a.SubjectID, a.Purpose, a.Tool
	ev.BreakGlass, ev.BreakGlassReason, ev.Trigger = a.BreakGlassReason != "", a.BreakGlassReason, s.info.Trigger
	ev.Outcome = event.OutcomeSuccess
	if a.Denied {
		ev.Outcome = event.OutcomeDenied
	}
	return s.rec.Record(ctx, ev)
}

// Access describes a data access. A BreakGlassReason marks an emergency override.
type Access struct {
	SubjectType, SubjectID, Purpose, Tool string
	BreakGlassReason                      string
	Denied                                bool
}

// ToolCall is a tool call recorded by hand, for tools not wrapped with WrapTool.
type ToolCall struct {
	Name      string
	CallID    string // the LLM's tool_use / tool_call id: links the call to the LLM call
	Arguments any
	Result    any
	Err       error
	Duration  time.Duration
}

// ToolCall records a tool call that already ran.
func (s *Session) ToolCall(ctx context.Context, c ToolCall) error {
	ev := s.base(event.KindToolCall)
	ev.ToolName, ev.ToolCallID, ev.ParentID, ev.Trigger = c.Name, c.CallID, s.parentFor(c.CallID), s.info.Trigger
	var err error
	if ev.Arguments, err = marshalPayload(c.Arguments); err != nil {
		return fmt.Errorf("agentaudit: ToolCall.Arguments: %w", err)
	}
	ev.DurationMS = ms(c.Duration)
	if c.Err != nil {
		ev.Error, ev.ErrorType, ev.Success, ev.Outcome = c.Err.Error(), ErrorType(c.Err), event.Bool(false), event.OutcomeError
	} else {
		ev.Success, ev.Outcome = event.Bool(true), event.OutcomeSuccess
		if ev.Result, err = marshalPayload(c.Result); err != nil {
			return fmt.Errorf("agentaudit: ToolCall.Result: %w", err)
		}
	}
	return s.rec.Record(ctx, ev)
}
