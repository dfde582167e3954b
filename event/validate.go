package event

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ErrInvalid is wrapped by every error about a malformed or invalid event, so callers can tell
// bad input (answer 400, skip the line) from a failure of the system.
var ErrInvalid = errors.New("invalid event")

// FieldError names the field that broke a rule.
type FieldError struct {
	Field string // JSON name, dotted for nested fields
	Rule  string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %s", e.Field, e.Rule) }
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Limits on single fields. The whole event's size is limited by the ledger.
const (
	MaxIDLen     = 256  // ids, names, roles, models
	MaxShortText = 4096 // reasons, user agents, error types
)

// Parse decodes one JSON event strictly: the input must be one valid I-JSON object (valid UTF-8, no
// duplicate names: encoding/json would silently keep the last of two user_id members, or replace
// invalid UTF-8, either of which could smuggle content past a reviewer), every member must be a
// known field of the right type, and the result must pass Validate. Errors wrap ErrInvalid and
// name the field or byte offset.
func Parse(data []byte) (*Event, error) {
	ev, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev, nil
}

// ParseStored decodes an event's canonical bytes as the ledger stored them. It is Parse: the
// single-pass decoder made the separate I-JSON check that once made stored reads slower free.
func ParseStored(canonical []byte) (*Event, error) { return Parse(canonical) }

// Normalize fills what a client may leave out: a UUIDv7 id and the time (now, UTC), and puts
// times in UTC. It is called before Validate on every way in.
func (e *Event) Normalize(now time.Time) error {
	if e.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("event id: %w", err)
		}
		e.ID = id.String()
	}
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = e.Time.UTC()
	e.RecordedAt = e.RecordedAt.UTC()
	return nil
}

// Validate checks every rule of the event model and returns the first broken one as a
// *FieldError (which wraps ErrInvalid). Malformed JSON in the JSON-valued fields (arguments,
// result, messages, metadata) is reported by Canonical, also as a *FieldError. The total size is
// the ledger's to check.
func (e *Event) Validate() error {
	if !slices.Contains(Kinds, e.Kind) {
		if e.Kind == "" {
			return &FieldError{"kind", "is required"}
		}
		return &FieldError{"kind", fmt.Sprintf("unknown kind %q", e.Kind)}
	}
	ids := []struct {
		name, v  string
		required bool
	}{
		{"id", e.ID, false}, {"session_id", e.SessionID, false}, {"agent_id", e.AgentID, false},
		{"agent_version", e.AgentVersion, false}, {"user_id", e.UserID, false}, {"user_role", e.UserRole, false},
		{"parent_id", e.ParentID, false}, {"model", e.Model, false}, {"tool_name", e.ToolName, false},
		{"tool_call_id", e.ToolCallID, false}, {"approver_id", e.ApproverID, false},
		{"subject_type", e.SubjectType, false}, {"subject_id", e.SubjectID, false}, {"purpose", e.Purpose, false},
		{"client_ip", e.ClientIP, false}, {"stop_reason", e.StopReason, false}, {"error_type", e.ErrorType, false},
	}
	for _, f := range ids {
		if err := checkText(f.name, f.v, MaxIDLen, false); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{
		{"user_agent", e.UserAgent}, {"break_glass_reason", e.BreakGlassReason}, {"decision", e.Decision},
	} {
		if err := checkText(f.name, f.v, MaxShortText, false); err != nil {
			return err
		}
	}
	for _, f := range []struct{ name, v string }{
		{"output_text", e.OutputText}, {"error", e.Error}, {"rationale", e.Rationale},
	} {
		if err := checkText(f.name, f.v, 0, true); err != nil {
			return err
		}
	}
	if e.Time.IsZero() {
		return &FieldError{"time", "is required"}
	}
	if y := e.Time.Year(); y < 1970 || y > 9999 {
		return &FieldError{"time", "must be between 1970 and 9999"}
	}
	if y := e.RecordedAt.Year(); !e.RecordedAt.IsZero() && (y < 1970 || y > 9999) {
		return &FieldError{"recorded_at", "must be between 1970 and 9999"}
	}
	if e.Trigger != "" && !slices.Contains([]Trigger{TriggerUserRequest, TriggerProactive, TriggerRetry, TriggerFollowUp, TriggerSystem}, e.Trigger) {
		return &FieldError{"trigger", fmt.Sprintf("unknown trigger %q; one of user_request, proactive, retry, follow_up, system", e.Trigger)}
	}
	if e.ApprovalStatus != "" && !slices.Contains([]ApprovalStatus{ApprovalApproved, ApprovalRejected, ApprovalPending}, e.ApprovalStatus) {
		return &FieldError{"approval_status", fmt.Sprintf("unknown status %q; one of approved, rejected, pending", e.ApprovalStatus)}
	}
	if e.Outcome != "" && !slices.Contains([]Outcome{OutcomeSuccess, OutcomeError, OutcomeDenied}, e.Outcome) {
		return &FieldError{"outcome", fmt.Sprintf("unknown outcome %q; one of success, error, denied", e.Outcome)}
	}
	if h := e.SystemPromptHash; h != "" && !isLowerHex(h, 64) {
		return &FieldError{"system_prompt_hash", "must be a SHA-256 as 64 lowercase hex digits"}
	}
	for _, f := range []struct {
		name string
		v    int64
	}{{"turn", e.Turn}, {"step", e.Step}, {"input_tokens", e.InputTokens}, {"output_tokens", e.OutputTokens}} {
		if f.v < 0 {
			return &FieldError{f.name, "must not be negative"}
		}
		if f.v > 1<<53 {
			return &FieldError{f.name, "must be at most 2^53"}
		}
	}
	for _, f := range []struct {
		name string
		v    float64
	}{{"latency_ms", e.LatencyMS}, {"duration_ms", e.DurationMS}} {
		if f.v < 0 || math.IsNaN(f.v) || math.IsInf(f.v, 0) {
			return &FieldError{f.name, "must be a finite number of milliseconds, not negative"}
		}
	}
	// The JSON-valued fields are checked by Canonical (and, for parsed input, by Parse), which
	// must run anyway; parsing them here too would double the ingest cost.
	if m := bytes.TrimSpace(e.Metadata); len(m) > 0 && m[0] != '{' {
		return &FieldError{"metadata", "must be a JSON object"}
	}
	for i, r := range e.Redactions {
		if r.Path == "" || r.Kind == "" || r.Action == "" {
			return &FieldError{fmt.Sprintf("redactions[%d]", i), "needs path, kind and action"}
		}
	}
	switch e.Kind {
	case KindToolCall, KindToolResult:
		if e.ToolName == "" {
			return &FieldError{"tool_name", "is required for kind " + string(e.Kind)}
		}
	case KindApprovalDecision:
		if e.ApprovalStatus == "" {
			return &FieldError{"approval_status", "is required for kind approval_decision"}
		}
	case KindAccess:
		if e.SubjectID == "" {
			return &FieldError{"subject_id", "is required for kind access"}
		}
	}
	if e.BreakGlassReason != "" && !e.BreakGlass {
		return &FieldError{"break_glass_reason", "is only meaningful with break_glass: true"}
	}
	return nil
}

func checkText(field, v string, max int, multiline bool) error {
	if max > 0 && len(v) > max {
		return &FieldError{field, fmt.Sprintf("longer than %d bytes", max)}
	}
	if !utf8.ValidString(v) {
		return &FieldError{field, "is not valid UTF-8"}
	}
	if !multiline {
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] == 0x7f {
				return &FieldError{field, "must not contain control characters"}
			}
		}
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
