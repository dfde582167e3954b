package event

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// fieldNames are the JSON names of Event's fields, from its struct tags.
var fieldNames = func() []string {
	t := reflect.TypeFor[Event]()
	names := make([]string, 0, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		names = append(names, name)
	}
	return names
}()

// Canonical returns the event's RFC 8785 canonical bytes: what the ledger salts and hashes.
// Empty fields are left out, times are UTC RFC 3339 with nanoseconds as needed. A zero
// RecordedAt is left out, so the canonical form of a not-yet-recorded event identifies its
// content for idempotent retries.
func (e *Event) Canonical() ([]byte, error) {
	return e.AppendCanonical(make([]byte, 0, 512+len(e.Arguments)+len(e.Result)+len(e.InputMessages)+len(e.OutputText)))
}

// AppendCanonical appends the canonical bytes to dst. It writes the members directly in sorted
// order (a test checks the order against the general JCS encoder), since encoding/json followed
// by a JCS pass costs several times more on the ingest path.
func (e *Event) AppendCanonical(dst []byte) ([]byte, error) {
	w := canonWriter{b: append(dst, '{')}
	w.str("agent_id", e.AgentID)
	w.str("agent_version", e.AgentVersion)
	w.str("approval_status", string(e.ApprovalStatus))
	w.str("approver_id", e.ApproverID)
	w.raw("arguments", e.Arguments)
	w.boolean("break_glass", e.BreakGlass)
	w.str("break_glass_reason", e.BreakGlassReason)
	w.str("client_ip", e.ClientIP)
	w.str("decision", e.Decision)
	w.num("duration_ms", e.DurationMS)
	w.str("error", e.Error)
	w.str("error_type", e.ErrorType)
	w.str("id", e.ID)
	w.raw("input_messages", e.InputMessages)
	w.int("input_tokens", e.InputTokens)
	w.str("kind", string(e.Kind))
	w.num("latency_ms", e.LatencyMS)
	w.raw("metadata", e.Metadata)
	w.str("model", e.Model)
	w.str("outcome", string(e.Outcome))
	w.str("output_text", e.OutputText)
	w.int("output_tokens", e.OutputTokens)
	w.str("parent_id", e.ParentID)
	w.str("purpose", e.Purpose)
	w.str("rationale", e.Rationale)
	w.time("recorded_at", e.RecordedAt)
	if len(e.Redactions) > 0 {
		w.key("redactions")
		w.b = append(w.b, '[')
		for i, r := range e.Redactions {
			if i > 0 {
				w.b = append(w.b, ',')
			}
			w.b = append(w.b, `{"action":`...)
			w.b = appendJCSString(w.b, r.Action)
			w.b = append(w.b, `,"kind":`...)
			w.b = appendJCSString(w.b, r.Kind)
			w.b = append(w.b, `,"path":`...)
			w.b = appendJCSString(w.b, r.Path)
			w.b = append(w.b, '}')
		}
		w.b = append(w.b, ']')
	}
	w.boolean("requires_approval", e.RequiresApproval)
	w.raw("result", e.Result)
	w.raw("result_summary", e.ResultSummary)
	w.str("session_id", e.SessionID)
	w.int("step", e.Step)
	w.str("stop_reason", e.StopReason)
	w.str("subject_id", e.SubjectID)
	w.str("subject_type", e.SubjectType)
	if e.Success != nil {
		w.key("success")
		w.b = strconv.AppendBool(w.b, *e.Success)
	}
	w.str("system_prompt_hash", e.SystemPromptHash)
	w.time("time", e.Time)
	w.str("tool_call_id", e.ToolCallID)
	w.raw("tool_calls_requested", e.ToolCallsRequested)
	w.str("tool_name", e.ToolName)
	w.str("trigger", string(e.Trigger))
	w.int("turn", e.Turn)
	w.str("user_agent", e.UserAgent)
	w.str("user_id", e.UserID)
	w.str("user_role", e.UserRole)
	if w.err != nil {
		return dst, w.err
	}
	return append(w.b, '}'), nil
}

type canonWriter struct {
	b     []byte
	first bool
	err   error
}

func (w *canonWriter) key(k string) {
	if w.first {
		w.b = append(w.b, ',')
	}
	w.first = true
	w.b = append(w.b, '"')
	w.b = append(w.b, k...)
	w.b = append(w.b, '"', ':')
}

func (w *canonWriter) str(k, v string) {
	if v != "" {
		w.key(k)
		w.b = appendJCSString(w.b, v)
	}
}

func (w *canonWriter) int(k string, v int64) {
	if v != 0 {
		w.key(k)
		w.b = strconv.AppendInt(w.b, v, 10)
	}
}

func (w *canonWriter) num(k string, v float64) {
	if v != 0 {
		w.key(k)
		w.b = AppendNumber(w.b, v)
	}
}

func (w *canonWriter) boolean(k string, v bool) {
	if v {
		w.key(k)
		w.b = append(w.b, "true"...)
	}
}

func (w *canonWriter) time(k string, t time.Time) {
	if !t.IsZero() {
		w.key(k)
		w.b = append(w.b, '"')
		w.b = t.UTC().AppendFormat(w.b, time.RFC3339Nano)
		w.b = append(w.b, '"')
	}
}

func (w *canonWriter) raw(k string, v json.RawMessage) {
	if len(v) == 0 || w.err != nil {
		return
	}
	w.key(k)
	var err error
	if w.b, err = AppendCanonical(w.b, v); err != nil {
		w.err = &FieldError{Field: k, Rule: err.Error()}
	}
}
