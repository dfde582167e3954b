// Package event owns the audit record of one agent action: the Event type, its kinds and enums,
// strict parsing, validation with errors that name the field and the rule, and the canonical
// bytes (RFC 8785, JSON Canonicalization Scheme) that the ledger hashes.
//
// Every field of the audit model is typed and first-class; only Metadata is free-form. Payload
// fields that carry arbitrary JSON (arguments, results, messages) are json.RawMessage and are
// canonicalized with the rest of the event.
package event

import (
	"encoding/json"
	"time"
)

// Kind is what happened.
type Kind string

// The kinds of event.
const (
	KindSessionStart      Kind = "session_start"
	KindLLMCall           Kind = "llm_call"
	KindToolCall          Kind = "tool_call"
	KindToolResult        Kind = "tool_result"
	KindReasoning         Kind = "reasoning"
	KindApprovalRequest   Kind = "approval_request"
	KindApprovalDecision  Kind = "approval_decision"
	KindHumanIntervention Kind = "human_intervention"
	KindError             Kind = "error"
	KindFinalOutput       Kind = "final_output"
	KindSessionEnd        Kind = "session_end"
	KindSessionTimeout    Kind = "session_timeout"
	KindAccess            Kind = "access"
	KindCustom            Kind = "custom"

	// System kinds: events agentaudit writes about the log itself. No door accepts them from a
	// client (CheckClient); their details are in Record.
	KindPurge       Kind = "purge"        // bodies erased by retention or an erasure request
	KindLegalHold   Kind = "legal_hold"   // a hold placed: matching events are never purged
	KindHoldRelease Kind = "hold_release" // a hold released
	KindAlert       Kind = "alert"        // an alert rule fired
	KindReview      Kind = "review"       // a person reviewed an event (a break-the-glass access)
)

// Kinds lists every valid kind, in the order above.
var Kinds = []Kind{
	KindSessionStart, KindLLMCall, KindToolCall, KindToolResult, KindReasoning,
	KindApprovalRequest, KindApprovalDecision, KindHumanIntervention, KindError,
	KindFinalOutput, KindSessionEnd, KindSessionTimeout, KindAccess, KindCustom,
	KindPurge, KindLegalHold, KindHoldRelease, KindAlert, KindReview,
}

// System reports whether agentaudit alone writes events of kind k.
func (k Kind) System() bool {
	switch k {
	case KindPurge, KindLegalHold, KindHoldRelease, KindAlert, KindReview:
		return true
	}
	return false
}

// Trigger is why the agent acted.
type Trigger string

// The triggers.
const (
	TriggerUserRequest Trigger = "user_request"
	TriggerProactive   Trigger = "proactive"
	TriggerRetry       Trigger = "retry"
	TriggerFollowUp    Trigger = "follow_up"
	TriggerSystem      Trigger = "system"
)

// Triggers lists every valid trigger.
var Triggers = []Trigger{TriggerUserRequest, TriggerProactive, TriggerRetry, TriggerFollowUp, TriggerSystem}

// ApprovalStatus is the state of a human approval.
type ApprovalStatus string

// The approval states.
const (
	ApprovalApproved ApprovalStatus = "approved"
	ApprovalRejected ApprovalStatus = "rejected"
	ApprovalPending  ApprovalStatus = "pending"
)

// ApprovalStatuses lists every valid approval state.
var ApprovalStatuses = []ApprovalStatus{ApprovalApproved, ApprovalRejected, ApprovalPending}

// Outcome is how the action ended.
type Outcome string

// The outcomes.
const (
	OutcomeSuccess Outcome = "success"
	OutcomeError   Outcome = "error"
	OutcomeDenied  Outcome = "denied"
)

// Outcomes lists every valid outcome.
var Outcomes = []Outcome{OutcomeSuccess, OutcomeError, OutcomeDenied}

// Event is one recorded agent action. The JSON names are the wire and storage contract; Fields
// is the table of them (type, class, limits) that every other part of the project follows, so a
// member added here must be added there too (TestFieldsCoverEvent fails until it is).
//
// Integer fields use 0 for "absent" and are omitted from the canonical form when 0; Success is a
// pointer because false is meaningful.
type Event struct {
	// Identity and attribution.
	ID           string          `json:"id,omitempty"`
	SessionID    string          `json:"session_id,omitempty"`
	AgentID      string          `json:"agent_id,omitempty"`
	AgentName    string          `json:"agent_name,omitempty"`
	AgentVersion string          `json:"agent_version,omitempty"`
	UserID       string          `json:"user_id,omitempty"`
	UserRole     string          `json:"user_role,omitempty"`
	ClientIP     string          `json:"client_ip,omitempty"`
	UserAgent    string          `json:"user_agent,omitempty"`
	Metadata     json.RawMessage `json:"metadata,omitempty"`

	// Timing: Time is the client's clock, RecordedAt the ledger's.
	Time       time.Time `json:"time"`
	RecordedAt time.Time `json:"recorded_at"`

	// What and where in the session.
	Kind     Kind    `json:"kind"`
	Turn     int64   `json:"turn,omitempty"`
	Step     int64   `json:"step,omitempty"`
	ParentID string  `json:"parent_id,omitempty"`
	Trigger  Trigger `json:"trigger,omitempty"`

	// Reproducibility: the model asked for, the provider, and the model and response id that
	// answered (OpenTelemetry's gen_ai.request.model, gen_ai.provider.name,
	// gen_ai.response.model, gen_ai.response.id).
	Model            string `json:"model,omitempty"`
	Provider         string `json:"provider,omitempty"`
	ResponseModel    string `json:"response_model,omitempty"`
	ResponseID       string `json:"response_id,omitempty"`
	SystemPromptHash string `json:"system_prompt_hash,omitempty"`

	// llm_call.
	InputMessages      json.RawMessage `json:"input_messages,omitempty"`
	OutputText         string          `json:"output_text,omitempty"`
	ToolCallsRequested json.RawMessage `json:"tool_calls_requested,omitempty"`
	InputTokens        int64           `json:"input_tokens,omitempty"`
	OutputTokens       int64           `json:"output_tokens,omitempty"`
	LatencyMS          float64         `json:"latency_ms,omitempty"`
	StopReason         string          `json:"stop_reason,omitempty"`

	// tool_call and tool_result.
	ToolName         string          `json:"tool_name,omitempty"`
	ToolCallID       string          `json:"tool_call_id,omitempty"`
	ToolType         string          `json:"tool_type,omitempty"` // gen_ai.tool.type: function, extension, datastore
	Arguments        json.RawMessage `json:"arguments,omitempty"`
	Result           json.RawMessage `json:"result,omitempty"`
	ResultSummary    json.RawMessage `json:"result_summary,omitempty"`
	Error            string          `json:"error,omitempty"`
	ErrorType        string          `json:"error_type,omitempty"`
	DurationMS       float64         `json:"duration_ms,omitempty"`
	Success          *bool           `json:"success,omitempty"`
	RequiresApproval bool            `json:"requires_approval,omitempty"`
	ApprovalStatus   ApprovalStatus  `json:"approval_status,omitempty"`
	ApproverID       string          `json:"approver_id,omitempty"`

	// reasoning: a decision and why.
	Decision  string `json:"decision,omitempty"`
	Rationale string `json:"rationale,omitempty"`

	// Subject and purpose of a data access.
	SubjectType      string `json:"subject_type,omitempty"`
	SubjectID        string `json:"subject_id,omitempty"`
	Purpose          string `json:"purpose,omitempty"`
	BreakGlass       bool   `json:"break_glass,omitempty"`
	BreakGlassReason string `json:"break_glass_reason,omitempty"`

	Outcome Outcome `json:"outcome,omitempty"`

	// Retention, decided by the ledger at ingest from the retention policy and committed with
	// the event, so editing a column cannot shorten it: the class, and when the body may be
	// purged (recorded_at plus the class's duration).
	RetentionClass string    `json:"retention_class,omitempty"`
	RetainUntil    time.Time `json:"retain_until,omitzero"`

	// Record holds the details of a system event (purge ranges, a hold's scope, an alert's
	// figures), written by agentaudit itself; a client may not set it.
	Record json.RawMessage `json:"record,omitempty"`

	// Redactions records what sanitization did to this event (never the values).
	Redactions []Redaction `json:"redactions,omitempty"`
}

// Redaction records one change the sanitizer made: where, what kind of value, which action.
type Redaction struct {
	Path   string `json:"path"`
	Kind   string `json:"kind"`
	Action string `json:"action"`
}

// Bool returns a pointer to b, for Event.Success.
func Bool(b bool) *bool { return &b }
