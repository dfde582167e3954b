package event

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func fullEvent() *Event {
	return &Event{
		ID: "e1", SessionID: "s1", AgentID: "support-v1", AgentVersion: "1.2.0", UserID: "usr_98765",
		UserRole: "support_agent", ClientIP: "203.0.113.7", UserAgent: "curl/8 \"quoted\"",
		Metadata: json.RawMessage(`{"z":1,"a":{"y":[1,2.50]}}`),
		Time:     time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC), RecordedAt: time.Date(2026, 3, 1, 12, 0, 1, 0, time.UTC),
		Kind: KindToolCall, Turn: 3, Step: 2, ParentID: "e0", Trigger: TriggerUserRequest,
		Model: "claude-opus-4-6", SystemPromptHash: strings.Repeat("ab", 32),
		InputMessages: json.RawMessage(`[{"role":"user","content":"hi <b>"}]`), OutputText: "ok\n\u2028é",
		ToolCallsRequested: json.RawMessage(`[{"id":"t1","name":"get_order"}]`), InputTokens: 1200, OutputTokens: 80,
		LatencyMS: 812.5, StopReason: "tool_use", ToolName: "update_order_status", ToolCallID: "toolu_1",
		Arguments: json.RawMessage(` {"status": "cancelled", "order_id": "ORD-456"} `), Result: json.RawMessage(`{"success":false}`),
		ResultSummary: json.RawMessage(`{"success":false}`), Error: "Cannot cancel shipped order", ErrorType: "ValueError",
		DurationMS: 38, Success: Bool(false), RequiresApproval: true, ApprovalStatus: ApprovalApproved, ApproverID: "mgr_1",
		Decision: "refund", Rationale: "policy 4.2", SubjectType: "patient", SubjectID: "P-123", Purpose: "treatment",
		BreakGlass: true, BreakGlassReason: "ER", Outcome: OutcomeError,
		Redactions: []Redaction{{Path: "arguments.card", Kind: "credit_card", Action: "redact"}},
	}
}

// The hand-ordered canonical encoder must agree with the general JCS encoder over encoding/json.
func TestCanonicalMatchesGeneralJCS(t *testing.T) {
	events := []*Event{fullEvent(), {Kind: KindCustom, ID: "x", Time: time.Unix(1, 0), RecordedAt: time.Unix(2, 5)}}
	for _, ev := range events {
		got, err := ev.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		j, err := json.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		want, err := Canonicalize(j)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("canonical encoder disagrees\n got  %s\n want %s", got, want)
		}
	}
}

func TestParseRoundTrip(t *testing.T) {
	c1, _ := fullEvent().Canonical()
	ev, err := Parse(c1)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := ev.Canonical()
	if string(c1) != string(c2) {
		t.Errorf("round trip changed the event\n%s\n%s", c1, c2)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	const ok = `"kind":"tool_call","tool_name":"t","time":"2026-01-01T00:00:00Z"`
	tests := []struct{ name, in, field, says string }{
		{"wrong type", `{` + ok + `,"turn":"three"}`, "turn", "integer"},
		{"wrong type string", `{` + ok + `,"user_id":42}`, "user_id", "string"},
		{"unknown field", `{` + ok + `,"usr_id":"u"}`, "usr_id", "unknown field"},
		{"missing kind", `{"time":"2026-01-01T00:00:00Z"}`, "kind", "required"},
		{"bad kind", `{"kind":"tool","time":"2026-01-01T00:00:00Z"}`, "kind", "unknown kind"},
		{"bad time", `{"kind":"custom","time":"yesterday"}`, "time", "RFC 3339"},
		{"bad recorded_at", `{"kind":"custom","time":"2026-01-01T00:00:00Z","recorded_at":"soon"}`, "recorded_at", "RFC 3339"},
		{"tool without name", `{"kind":"tool_call","time":"2026-01-01T00:00:00Z"}`, "tool_name", "required"},
		{"bad trigger", `{` + ok + `,"trigger":"whim"}`, "trigger", "unknown trigger"},
		{"bad approval", `{` + ok + `,"approval_status":"maybe"}`, "approval_status", "unknown status"},
		{"bad outcome", `{` + ok + `,"outcome":"meh"}`, "outcome", "unknown outcome"},
		{"bad hash", `{` + ok + `,"system_prompt_hash":"abc"}`, "system_prompt_hash", "SHA-256"},
		{"negative tokens", `{` + ok + `,"input_tokens":-1}`, "input_tokens", "negative"},
		{"negative duration", `{` + ok + `,"duration_ms":-0.5}`, "duration_ms", "negative"},
		{"metadata not object", `{` + ok + `,"metadata":[1]}`, "metadata", "object"},
		{"control char in id", `{` + ok + `,"user_id":"a\u0000b"}`, "user_id", "control"},
		{"access without subject", `{"kind":"access","time":"2026-01-01T00:00:00Z"}`, "subject_id", "required"},
		{"decision without status", `{"kind":"approval_decision","time":"2026-01-01T00:00:00Z"}`, "approval_status", "required"},
		{"long id", `{` + ok + `,"session_id":"` + strings.Repeat("x", MaxIDLen+1) + `"}`, "session_id", "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.in))
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %v, want a *FieldError", err)
			}
			if fe.Field != tt.field || !strings.Contains(fe.Rule, tt.says) {
				t.Errorf("got field %q rule %q, want field %q saying %q", fe.Field, fe.Rule, tt.field, tt.says)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Error("does not wrap ErrInvalid")
			}
		})
	}
}

func TestParseRejectsMalformed(t *testing.T) {
	for _, in := range []string{``, `[]`, `{"kind":"custom"`, "{\"kind\":\"custom\",\"user_id\":\"\xff\"}", `{"kind":"custom","kind":"error"}`, `null`} {
		if _, err := Parse([]byte(in)); !errors.Is(err, ErrInvalid) {
			t.Errorf("Parse(%q) = %v, want ErrInvalid", in, err)
		}
	}
}

func TestNormalize(t *testing.T) {
	ev := &Event{Kind: KindCustom, Time: time.Date(2026, 1, 1, 1, 0, 0, 0, time.FixedZone("X", 3600))}
	if err := ev.Normalize(time.Now()); err != nil {
		t.Fatal(err)
	}
	if len(ev.ID) != 36 || ev.ID[14] != '7' {
		t.Errorf("id %q is not a UUIDv7", ev.ID)
	}
	if ev.Time.Location() != time.UTC || ev.Time.Hour() != 0 {
		t.Errorf("time not converted to UTC: %v", ev.Time)
	}
}

func FuzzParse(f *testing.F) {
	c, _ := fullEvent().Canonical()
	f.Add(c)
	f.Add([]byte(`{"kind":"custom","time":"2026-01-01T00:00:00Z","metadata":{"a":[1,{"b":null}]}}`))
	f.Add([]byte(`{"kind":"tool_call","tool_name":"x","time":"2026-01-01T00:00:00.5+02:00","turn":1e2}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		ev, err := Parse(in)
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		c1, err := ev.Canonical()
		if err != nil {
			t.Fatalf("valid event has no canonical form: %v", err)
		}
		ev2, err := Parse(c1)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, c1)
		}
		c2, _ := ev2.Canonical()
		if string(c1) != string(c2) {
			t.Fatalf("unstable canonical form\n%s\n%s", c1, c2)
		}
	})
}

func TestAttribution(t *testing.T) {
	tests := []struct {
		ev   Event
		want string
	}{
		{Event{UserID: "usr_98765", UserRole: "support_agent", AgentID: "support-v1", Model: "claude-opus-4-6", ToolName: "update_order_status", Trigger: TriggerUserRequest},
			"usr_98765 (support_agent) → support-v1/claude-opus-4-6 → update_order_status [user_request]"},
		{Event{AgentID: "bot", AgentVersion: "2.1", Trigger: TriggerProactive}, "? → bot@2.1 [proactive]"},
		{Event{UserID: "u", Model: "gpt-5"}, "u → gpt-5"},
	}
	for _, tt := range tests {
		if got := tt.ev.Attribution(); got != tt.want {
			t.Errorf("got %q, want %q", got, tt.want)
		}
	}
}

// encoding/json would fill user_id from "USER_ID"; member names are exact.
func TestParseNamesAreExact(t *testing.T) {
	_, err := Parse([]byte(`{"kind":"custom","time":"2026-01-01T00:00:00Z","user_id":"alice","USER_ID":"mallory"}`))
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Field != "USER_ID" {
		t.Fatalf("got %v, want USER_ID refused as an unknown field", err)
	}
}
