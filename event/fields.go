package event

import (
	"encoding/json"
	"time"
)

// Type is a field's Go and JSON type.
type Type uint8

// The field types.
const (
	TypeString     Type = iota + 1 // string, or a string enum (Kind, Trigger, ...)
	TypeJSON                       // json.RawMessage: any JSON value, canonicalized with the event
	TypeInt                        // int64, 0 = absent
	TypeFloat                      // float64, 0 = absent
	TypeBool                       // bool, false = absent
	TypeOptBool                    // *bool, nil = absent (false is meaningful)
	TypeTime                       // time.Time, zero = absent
	TypeRedactions                 // []Redaction
)

// Class says what a field holds, and so what the sanitizer does to it and who may read it.
type Class uint8

// The field classes.
const (
	// ClassIdentifier: ids, names, roles, models. A detected secret or PII value inside is
	// pseudonymized, so the field still tells one user or subject from another.
	ClassIdentifier Class = iota + 1
	// ClassEnum: one of a fixed set of words (Field.Values); nothing to sanitize.
	ClassEnum
	// ClassDigest: a hash in a fixed format, checked by validation; nothing to sanitize.
	ClassDigest
	// ClassText: free text written about the action (an error, a rationale, a purpose);
	// detectors replace what they find.
	ClassText
	// ClassContent: free text the model produced; sanitized as ClassText, masked from readers.
	ClassContent
	// ClassPayload: JSON exchanged with a model or tool, or metadata; walked by key rules and
	// detectors, masked from readers.
	ClassPayload
	// ClassTime, ClassNumber, ClassFlag: timestamps, counts and durations, booleans; no free text
	// can hide in them.
	ClassTime
	ClassNumber
	ClassFlag
	// ClassRedactions: the sanitizer's record of what it changed (never the values).
	ClassRedactions
	// ClassRecord: JSON agentaudit writes about the log itself (Event.Record); no client sets
	// it, so there is nothing to sanitize, and every role reads it.
	ClassRecord
)

// Masked reports whether readers (the least privileged role) see the field masked: the
// exchanged content, not the attribution.
func (c Class) Masked() bool { return c == ClassContent || c == ClassPayload }

// Field describes one member of Event: its JSON name, type and class, and its limits. Fields is
// the one table of them that decoding, canonical encoding, validation, sanitization and reader
// masking all follow; TestFieldsCoverEvent fails when Event has a member the table lacks.
type Field struct {
	Name  string
	Type  Type
	Class Class
	// MaxLen bounds a string's length in bytes (0: no bound below the event's).
	MaxLen int
	// Multiline allows control characters (newlines, tabs) in a string.
	Multiline bool
	// Values are the allowed values of a ClassEnum field.
	Values []string
	// Object requires a TypeJSON value to be a JSON object.
	Object bool

	ptr func(*Event) any
	// Typed accessors of string and JSON fields, which the hot paths (validation,
	// sanitization) use without an interface conversion.
	str func(*Event) *string
	raw func(*Event) *json.RawMessage
}

// Str returns the field's string in e (enums included), or nil if the field is not a string.
func (f *Field) Str(e *Event) *string {
	if f.str == nil {
		return nil
	}
	return f.str(e)
}

// JSON returns the field's raw JSON in e, or nil if the field is not JSON.
func (f *Field) JSON(e *Event) *json.RawMessage {
	if f.raw == nil {
		return nil
	}
	return f.raw(e)
}

// Ptr returns a pointer to the field in e: *string, *json.RawMessage, *int64, *float64, *bool,
// **bool, *time.Time or *[]Redaction, by Type.
func (f *Field) Ptr(e *Event) any { return f.ptr(e) }

func identifier(name string, p func(*Event) *string) Field {
	return Field{Name: name, Type: TypeString, Class: ClassIdentifier, MaxLen: MaxIDLen, ptr: func(e *Event) any { return p(e) }, str: p}
}

func text(name string, class Class, max int, multiline bool, p func(*Event) *string) Field {
	return Field{Name: name, Type: TypeString, Class: class, MaxLen: max, Multiline: multiline, ptr: func(e *Event) any { return p(e) }, str: p}
}

func enum(name string, values []string, p func(*Event) *string) Field {
	return Field{Name: name, Type: TypeString, Class: ClassEnum, MaxLen: MaxIDLen, Values: values, ptr: func(e *Event) any { return p(e) }, str: p}
}

func payload(name string, p func(*Event) *json.RawMessage) Field {
	return Field{Name: name, Type: TypeJSON, Class: ClassPayload, ptr: func(e *Event) any { return p(e) }, raw: p}
}

func count(name string, p func(*Event) *int64) Field {
	return Field{Name: name, Type: TypeInt, Class: ClassNumber, ptr: func(e *Event) any { return p(e) }}
}

func millis(name string, p func(*Event) *float64) Field {
	return Field{Name: name, Type: TypeFloat, Class: ClassNumber, ptr: func(e *Event) any { return p(e) }}
}

func flag(name string, p func(*Event) *bool) Field {
	return Field{Name: name, Type: TypeBool, Class: ClassFlag, ptr: func(e *Event) any { return p(e) }}
}

func timestamp(name string, p func(*Event) *time.Time) Field {
	return Field{Name: name, Type: TypeTime, Class: ClassTime, ptr: func(e *Event) any { return p(e) }}
}

func words[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// Fields is every member of Event, in canonical (RFC 8785: sorted by name) order.
var Fields = []Field{
	identifier("agent_id", func(e *Event) *string { return &e.AgentID }),
	identifier("agent_name", func(e *Event) *string { return &e.AgentName }),
	identifier("agent_version", func(e *Event) *string { return &e.AgentVersion }),
	enum("approval_status", words(ApprovalStatuses), func(e *Event) *string { return (*string)(&e.ApprovalStatus) }),
	identifier("approver_id", func(e *Event) *string { return &e.ApproverID }),
	payload("arguments", func(e *Event) *json.RawMessage { return &e.Arguments }),
	flag("break_glass", func(e *Event) *bool { return &e.BreakGlass }),
	text("break_glass_reason", ClassText, MaxShortText, false, func(e *Event) *string { return &e.BreakGlassReason }),
	identifier("client_ip", func(e *Event) *string { return &e.ClientIP }),
	text("decision", ClassText, MaxShortText, false, func(e *Event) *string { return &e.Decision }),
	millis("duration_ms", func(e *Event) *float64 { return &e.DurationMS }),
	text("error", ClassText, 0, true, func(e *Event) *string { return &e.Error }),
	identifier("error_type", func(e *Event) *string { return &e.ErrorType }),
	identifier("id", func(e *Event) *string { return &e.ID }),
	payload("input_messages", func(e *Event) *json.RawMessage { return &e.InputMessages }),
	count("input_tokens", func(e *Event) *int64 { return &e.InputTokens }),
	enum("kind", words(Kinds), func(e *Event) *string { return (*string)(&e.Kind) }),
	millis("latency_ms", func(e *Event) *float64 { return &e.LatencyMS }),
	func() Field {
		f := payload("metadata", func(e *Event) *json.RawMessage { return &e.Metadata })
		f.Object = true
		return f
	}(),
	identifier("model", func(e *Event) *string { return &e.Model }),
	enum("outcome", words(Outcomes), func(e *Event) *string { return (*string)(&e.Outcome) }),
	text("output_text", ClassContent, 0, true, func(e *Event) *string { return &e.OutputText }),
	count("output_tokens", func(e *Event) *int64 { return &e.OutputTokens }),
	identifier("parent_id", func(e *Event) *string { return &e.ParentID }),
	identifier("provider", func(e *Event) *string { return &e.Provider }),
	text("purpose", ClassText, MaxIDLen, false, func(e *Event) *string { return &e.Purpose }),
	text("rationale", ClassText, 0, true, func(e *Event) *string { return &e.Rationale }),
	{Name: "record", Type: TypeJSON, Class: ClassRecord, Object: true, ptr: func(e *Event) any { return &e.Record },
		raw: func(e *Event) *json.RawMessage { return &e.Record }},
	timestamp("recorded_at", func(e *Event) *time.Time { return &e.RecordedAt }),
	{Name: "redactions", Type: TypeRedactions, Class: ClassRedactions, ptr: func(e *Event) any { return &e.Redactions }},
	flag("requires_approval", func(e *Event) *bool { return &e.RequiresApproval }),
	identifier("response_id", func(e *Event) *string { return &e.ResponseID }),
	identifier("response_model", func(e *Event) *string { return &e.ResponseModel }),
	payload("result", func(e *Event) *json.RawMessage { return &e.Result }),
	payload("result_summary", func(e *Event) *json.RawMessage { return &e.ResultSummary }),
	timestamp("retain_until", func(e *Event) *time.Time { return &e.RetainUntil }),
	identifier("retention_class", func(e *Event) *string { return &e.RetentionClass }),
	identifier("session_id", func(e *Event) *string { return &e.SessionID }),
	count("step", func(e *Event) *int64 { return &e.Step }),
	identifier("stop_reason", func(e *Event) *string { return &e.StopReason }),
	identifier("subject_id", func(e *Event) *string { return &e.SubjectID }),
	identifier("subject_type", func(e *Event) *string { return &e.SubjectType }),
	{Name: "success", Type: TypeOptBool, Class: ClassFlag, ptr: func(e *Event) any { return &e.Success }},
	{Name: "system_prompt_hash", Type: TypeString, Class: ClassDigest, MaxLen: 64, ptr: func(e *Event) any { return &e.SystemPromptHash },
		str: func(e *Event) *string { return &e.SystemPromptHash }},
	timestamp("time", func(e *Event) *time.Time { return &e.Time }),
	identifier("tool_call_id", func(e *Event) *string { return &e.ToolCallID }),
	payload("tool_calls_requested", func(e *Event) *json.RawMessage { return &e.ToolCallsRequested }),
	identifier("tool_name", func(e *Event) *string { return &e.ToolName }),
	identifier("tool_type", func(e *Event) *string { return &e.ToolType }),
	enum("trigger", words(Triggers), func(e *Event) *string { return (*string)(&e.Trigger) }),
	count("turn", func(e *Event) *int64 { return &e.Turn }),
	text("user_agent", ClassText, MaxShortText, false, func(e *Event) *string { return &e.UserAgent }),
	identifier("user_id", func(e *Event) *string { return &e.UserID }),
	identifier("user_role", func(e *Event) *string { return &e.UserRole }),
}

// fieldByName finds a field of the table by its JSON name; its index numbers members for
// duplicate detection.
var fieldByName = func() map[string]int {
	m := make(map[string]int, len(Fields))
	for i := range Fields {
		m[Fields[i].Name] = i
	}
	return m
}()

// FieldByName returns the table's field of that JSON name, or nil.
func FieldByName(name string) *Field {
	if i, ok := fieldByName[name]; ok {
		return &Fields[i]
	}
	return nil
}
