package otlp_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	collectorpb "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/slim/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/slim/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/otlp"
	"github.com/agentaudit/agentaudit/store"
)

// want is what one span of an export must become: an event (as JSON, compared canonically, so
// every field the conversion sets is asserted and nothing else may appear) or an error.
type want struct {
	event string
	err   string // substring of the span's error; the event must then be nil
}

// The fixtures are OTLP/HTTP JSON exports as SDKs send them (hex ids, int64 as strings, enums as
// integers or names).
var fixtures = []struct {
	file string
	want []want
}{
	{"genai_chat.json", []want{
		// invoke_agent is kept as a custom event with the agent's fields (its name is its id when it
		// has no gen_ai.agent.id); resource attributes (service.name, service.version, user.id) fill
		// what the span does not say.
		{event: `{"id":"otel-5b8efff798038103d269b633813fc60c-1111111111111111","kind":"custom","time":"2026-01-01T00:00:00Z",
			"session_id":"conv-1","user_id":"usr_resource","agent_id":"support","agent_name":"support","agent_version":"1.4.2","provider":"anthropic",
			"metadata":{"span_name":"invoke_agent support","gen_ai.operation.name":"invoke_agent"}}`},
		// chat: the agent of its invoke_agent parent (not service.name), the requested model, the
		// model and response id that answered, the provider, tokens (as a string and as a JSON
		// number), latency from the span's times, messages, finish reason, success (the status is
		// unset, no error.type); the span's user.id wins over the resource's; the parent is the
		// agent span.
		{event: `{"id":"otel-5b8efff798038103d269b633813fc60c-2222222222222222","parent_id":"otel-5b8efff798038103d269b633813fc60c-1111111111111111",
			"kind":"llm_call","time":"2026-01-01T00:00:00.1Z","latency_ms":1250,
			"session_id":"conv-1","user_id":"usr_98765","agent_id":"support","agent_name":"support","agent_version":"1.4.2",
			"model":"claude-opus-4-6","response_model":"claude-opus-4-6-20260101","response_id":"msg_01XFDUDYJgAACzvnptvVoYEL","provider":"anthropic",
			"input_tokens":812,"output_tokens":64,"stop_reason":"tool_call","outcome":"success",
			"input_messages":[{"role":"user","parts":[{"type":"text","content":"Cancel order ORD-456"}]}],
			"metadata":{"span_name":"chat claude-opus-4-6",
				"output_messages":[{"role":"assistant","parts":[{"type":"tool_call","id":"call_1","name":"update_order_status"}],"finish_reason":"tool_call"}]}}`},
		// execute_tool: the agent of its grandparent, tool name, call id, tool type, JSON arguments
		// and result, duration, success.
		{event: `{"id":"otel-5b8efff798038103d269b633813fc60c-3333333333333333","parent_id":"otel-5b8efff798038103d269b633813fc60c-2222222222222222",
			"kind":"tool_call","time":"2026-01-01T00:00:01.4Z","duration_ms":38,
			"session_id":"conv-1","user_id":"usr_resource","agent_id":"support","agent_name":"support","agent_version":"1.4.2",
			"tool_name":"get_order","tool_call_id":"call_0","tool_type":"function","arguments":{"order_id":"ORD-456"},"result":{"status":"shipped"},
			"success":true,"outcome":"success","metadata":{"span_name":"execute_tool get_order"}}`},
		// A tool span with status ERROR: the status message and error.type, success false.
		{event: `{"id":"otel-5b8efff798038103d269b633813fc60c-4444444444444444","parent_id":"otel-5b8efff798038103d269b633813fc60c-2222222222222222",
			"kind":"tool_call","time":"2026-01-01T00:00:01.5Z","duration_ms":40,
			"session_id":"conv-1","user_id":"usr_resource","agent_id":"support","agent_name":"support","agent_version":"1.4.2",
			"tool_name":"update_order_status","tool_call_id":"call_1","arguments":{"order_id":"ORD-456","status":"cancelled"},
			"success":false,"outcome":"error","error":"Cannot cancel shipped order","error_type":"OrderShipped",
			"metadata":{"span_name":"execute_tool update_order_status"}}`},
	}},
	{"genai_operations.json", []want{
		// text_completion with the older gen_ai.system as the provider, tokens as a string and a
		// double, two finish reasons (one per choice), and an ERROR status without a message.
		{event: `{"id":"otel-0102030405060708090a0b0c0d0e0f10-0000000000000001","kind":"llm_call","time":"2026-01-01T00:00:00Z","latency_ms":400,
			"agent_id":"batch-worker","model":"gpt-3.5-turbo-instruct","provider":"openai","input_tokens":12,"output_tokens":7,"stop_reason":"stop,length",
			"outcome":"error","error":"span status ERROR",
			"metadata":{"span_name":"text_completion gpt-3.5-turbo-instruct"}}`},
		// generate_content: gen_ai.agent.id wins over the agent name and service.name, and the name
		// is kept; plain-text input is kept as a JSON string; finish reasons sent as a JSON-array
		// string.
		{event: `{"id":"otel-0102030405060708090a0b0c0d0e0f10-0000000000000002","kind":"llm_call","time":"2026-01-01T00:00:01Z",
			"agent_id":"agent-7","agent_name":"summarizer","model":"gemini-2.5-pro","provider":"gcp.gemini","input_messages":"Summarize the ticket",
			"stop_reason":"STOP","outcome":"success","metadata":{"span_name":"generate_content gemini-2.5-pro"}}`},
		{event: `{"id":"otel-0102030405060708090a0b0c0d0e0f10-0000000000000003","kind":"custom","time":"2025-12-31T23:59:59Z",
			"agent_id":"summarizer","agent_name":"summarizer","provider":"gcp.gemini",
			"metadata":{"span_name":"create_agent summarizer","gen_ai.operation.name":"create_agent"}}`},
	}},
	{"openinference.json", []want{
		// CHAIN is kept as custom, with its kind in the metadata.
		{event: `{"id":"otel-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331","kind":"custom","time":"2026-01-01T00:00:00Z",
			"session_id":"oi-sess","agent_id":"py-agent","input_messages":"what's the weather in Paris?",
			"metadata":{"span_name":"RunnableSequence","openinference.span.kind":"CHAIN"}}`},
		// LLM: llm.model_name, llm.token_count.*, llm.provider, input.value, output.value.
		{event: `{"id":"otel-0af7651916cd43dd8448eb211c80319c-c7ad6b7169203331","parent_id":"otel-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
			"kind":"llm_call","time":"2026-01-01T00:00:00.1Z","latency_ms":800,
			"session_id":"oi-sess","agent_id":"py-agent","model":"gpt-4o","provider":"openai","input_tokens":25,"output_tokens":9,
			"input_messages":{"messages":[{"role":"user","content":"what's the weather in Paris?"}]},"output_text":"Let me check.",
			"outcome":"success","metadata":{"span_name":"ChatOpenAI"}}`},
		// TOOL (in lower case) without tool.name: the span name is the tool name.
		{event: `{"id":"otel-0af7651916cd43dd8448eb211c80319c-d7ad6b7169203331","parent_id":"otel-0af7651916cd43dd8448eb211c80319c-c7ad6b7169203331",
			"kind":"tool_call","time":"2026-01-01T00:00:01Z","duration_ms":20,
			"session_id":"oi-sess","agent_id":"py-agent","tool_name":"get_weather","arguments":{"city":"Paris"},"result":{"temp_c":21},
			"success":true,"outcome":"success","metadata":{"span_name":"get_weather"}}`},
		{event: `{"id":"otel-0af7651916cd43dd8448eb211c80319c-e7ad6b7169203331","parent_id":"otel-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
			"kind":"custom","time":"2026-01-01T00:00:02Z","session_id":"oi-sess","agent_id":"py-agent",
			"metadata":{"span_name":"WeatherAgent","openinference.span.kind":"AGENT"}}`},
	}},
	{"plain.json", []want{
		// A span of no convention is a custom event. Upper-case hex ids give the same lower-case
		// event id; a null parentSpanId is no parent; unknown fields are ignored.
		{event: `{"id":"otel-abcdef0123456789abcdef0123456789-fedcba9876543210","kind":"custom","time":"2026-01-01T00:00:00Z",
			"user_id":"usr_span","agent_id":"orders-api","metadata":{"span_name":"db.query"}}`},
		// In another resource: no service.name, enduser.id, a non-string session id, no times.
		{event: `{"id":"otel-abcdef0123456789abcdef0123456789-0123456789abcdef","parent_id":"otel-abcdef0123456789abcdef0123456789-fedcba9876543210",
			"kind":"custom","session_id":"42","user_id":"usr_enduser","metadata":{"span_name":"cache.get"}}`},
	}},
	{"partial.json", []want{
		{event: `{"id":"otel-5b8efff798038103d269b633813fc60c-aaaaaaaaaaaaaaaa","kind":"custom","time":"2026-01-01T00:00:00Z","metadata":{"span_name":"good-1"}}`},
		{err: `span "short-ids": trace id must be 16 bytes and span id 8`},
		{err: `span "short-span-id": trace id must be 16 bytes and span id 8`},
		{err: `span "no-trace-id": trace id must be 16 bytes and span id 8`},
		{event: `{"id":"otel-5b8efff798038103d269b633813fc60c-cccccccccccccccc","kind":"custom","time":"2026-01-01T00:00:00Z","metadata":{"span_name":"good-2"}}`},
	}},
	{"numeric.json", []want{
		// Times sent as JSON numbers keep every nanosecond (float64 would round them).
		{event: `{"id":"otel-5b8efff798038103d269b633813fc60c-dddddddddddddddd","kind":"llm_call","time":"2026-01-01T00:00:00.123456789Z",
			"latency_ms":500,"input_tokens":30,"outcome":"success","metadata":{"span_name":"chat"}}`},
	}},
}

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func decodeFixture(t *testing.T, name string) *collectorpb.ExportTraceServiceRequest {
	t.Helper()
	req, err := otlp.DecodeJSON(readFixture(t, name))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return req
}

func canonical(t *testing.T, ev *event.Event) string {
	t.Helper()
	b, err := ev.Canonical()
	if err != nil {
		t.Fatalf("event %s: %v", ev.ID, err)
	}
	return string(b)
}

func checkSpans(t *testing.T, got []otlp.Span, wants []want) {
	t.Helper()
	if len(got) != len(wants) {
		t.Fatalf("%d spans, want %d", len(got), len(wants))
	}
	for i, w := range wants {
		sp := got[i]
		if w.err != "" {
			if sp.Err == nil || !errors.Is(sp.Err, otlp.ErrMalformed) || !strings.Contains(sp.Err.Error(), w.err) || sp.Event != nil {
				t.Errorf("span %d: event %v, error %v; want no event and an ErrMalformed naming %q", i, sp.Event, sp.Err, w.err)
			}
			continue
		}
		if sp.Err != nil {
			t.Errorf("span %d: %v", i, sp.Err)
			continue
		}
		wantJSON, err := event.Canonicalize([]byte(w.event))
		if err != nil {
			t.Fatalf("span %d: the test's JSON: %v", i, err)
		}
		if g := canonical(t, sp.Event); g != string(wantJSON) {
			t.Errorf("span %d:\n got %s\nwant %s", i, g, wantJSON)
		}
	}
}

func TestEventsFromJSON(t *testing.T) {
	for _, tc := range fixtures {
		t.Run(tc.file, func(t *testing.T) {
			checkSpans(t, otlp.Events(decodeFixture(t, tc.file)), tc.want)
		})
	}
}

// The protobuf encoding of the same export gives the same events.
func TestEventsFromProtobuf(t *testing.T) {
	for _, tc := range fixtures {
		t.Run(tc.file, func(t *testing.T) {
			body, err := proto.Marshal(decodeFixture(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			req, err := otlp.DecodeProtobuf(body)
			if err != nil {
				t.Fatal(err)
			}
			checkSpans(t, otlp.Events(req), tc.want)
		})
	}
}

// Every event made from a well-formed span is one the ledger accepts as it stands (the ledger
// fills the time of a span that had none).
func TestEventsAreValid(t *testing.T) {
	now := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range fixtures {
		for _, sp := range otlp.Events(decodeFixture(t, tc.file)) {
			if sp.Err != nil {
				continue
			}
			ev := *sp.Event
			if err := ev.Normalize(now); err != nil {
				t.Fatal(err)
			}
			if err := ev.Validate(); err != nil {
				t.Errorf("%s: %s: %v", tc.file, ev.ID, err)
			}
			if _, err := event.Parse([]byte(canonical(t, &ev))); err != nil {
				t.Errorf("%s: %s does not parse back: %v", tc.file, ev.ID, err)
			}
		}
	}
}

// A re-sent export gives the same event ids, so the ledger stores it once; distinct spans give
// distinct ids.
func TestEventIDsAreIdempotent(t *testing.T) {
	seen := map[string]string{}
	for _, tc := range fixtures {
		first, again := otlp.Events(decodeFixture(t, tc.file)), otlp.Events(decodeFixture(t, tc.file))
		for i, sp := range first {
			if sp.Err != nil {
				continue
			}
			if again[i].Event.ID != sp.Event.ID {
				t.Errorf("%s span %d: id %s, then %s", tc.file, i, sp.Event.ID, again[i].Event.ID)
			}
			if prev, dup := seen[sp.Event.ID]; dup {
				t.Errorf("%s span %d: id %s already made by %s", tc.file, i, sp.Event.ID, prev)
			}
			seen[sp.Event.ID] = tc.file
		}
	}
	for _, tc := range []struct {
		trace, span []byte
		want        string
	}{
		{[]byte{0x5b, 0x8e, 0xff, 0xf7, 0x98, 0x03, 0x81, 0x03, 0xd2, 0x69, 0xb6, 0x33, 0x81, 0x3f, 0xc6, 0x0c}, []byte{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74},
			"otel-5b8efff798038103d269b633813fc60c-eee19b7ec3c1b174"},
		// The same span id in another trace is another event.
		{make([]byte, 16), []byte{0xee, 0xe1, 0x9b, 0x7e, 0xc3, 0xc1, 0xb1, 0x74},
			"otel-00000000000000000000000000000000-eee19b7ec3c1b174"},
	} {
		if got := otlp.EventID(tc.trace, tc.span); got != tc.want {
			t.Errorf("EventID: %s, want %s", got, tc.want)
		}
	}
}

// Spans built with the official OTLP proto types, as the Go SDK's exporter sends them: each
// convention maps to its kind.
func TestKindMapping(t *testing.T) {
	for _, tc := range []struct {
		name  string
		attrs []*commonpb.KeyValue
		kind  event.Kind
	}{
		{"chat", []*commonpb.KeyValue{str("gen_ai.operation.name", "chat")}, event.KindLLMCall},
		{"text_completion", []*commonpb.KeyValue{str("gen_ai.operation.name", "text_completion")}, event.KindLLMCall},
		{"generate_content", []*commonpb.KeyValue{str("gen_ai.operation.name", "generate_content")}, event.KindLLMCall},
		{"execute_tool", []*commonpb.KeyValue{str("gen_ai.operation.name", "execute_tool"), str("gen_ai.tool.name", "t")}, event.KindToolCall},
		{"invoke_agent", []*commonpb.KeyValue{str("gen_ai.operation.name", "invoke_agent")}, event.KindCustom},
		{"create_agent", []*commonpb.KeyValue{str("gen_ai.operation.name", "create_agent")}, event.KindCustom},
		{"embeddings", []*commonpb.KeyValue{str("gen_ai.operation.name", "embeddings")}, event.KindCustom},
		{"openinference LLM", []*commonpb.KeyValue{str("openinference.span.kind", "LLM")}, event.KindLLMCall},
		{"openinference llm", []*commonpb.KeyValue{str("openinference.span.kind", "llm")}, event.KindLLMCall},
		{"openinference TOOL", []*commonpb.KeyValue{str("openinference.span.kind", "TOOL")}, event.KindToolCall},
		{"openinference AGENT", []*commonpb.KeyValue{str("openinference.span.kind", "AGENT")}, event.KindCustom},
		{"openinference CHAIN", []*commonpb.KeyValue{str("openinference.span.kind", "CHAIN")}, event.KindCustom},
		{"openinference RETRIEVER", []*commonpb.KeyValue{str("openinference.span.kind", "RETRIEVER")}, event.KindCustom},
		{"no convention", []*commonpb.KeyValue{str("http.method", "GET")}, event.KindCustom},
		{"no attributes", nil, event.KindCustom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
				Resource: &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "go-agent")}},
				ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{
					TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), Name: tc.name,
					StartTimeUnixNano: 1767225600000000000, EndTimeUnixNano: 1767225600002000000, Attributes: tc.attrs,
				}}}},
			}}}
			body, err := proto.Marshal(req)
			if err != nil {
				t.Fatal(err)
			}
			dec, err := otlp.DecodeProtobuf(body)
			if err != nil {
				t.Fatal(err)
			}
			spans := otlp.Events(dec)
			if len(spans) != 1 || spans[0].Err != nil {
				t.Fatalf("%+v", spans)
			}
			ev := spans[0].Event
			if ev.Kind != tc.kind || ev.AgentID != "go-agent" {
				t.Errorf("kind %s agent %q, want %s go-agent", ev.Kind, ev.AgentID, tc.kind)
			}
			// The span's duration lands in the field of its kind.
			switch tc.kind {
			case event.KindLLMCall:
				if ev.LatencyMS != 2 || ev.DurationMS != 0 {
					t.Errorf("latency %v duration %v, want latency 2", ev.LatencyMS, ev.DurationMS)
				}
			case event.KindToolCall:
				if ev.DurationMS != 2 || ev.LatencyMS != 0 {
					t.Errorf("latency %v duration %v, want duration 2", ev.LatencyMS, ev.DurationMS)
				}
			}
		})
	}
}

func TestDecodeJSONMalformed(t *testing.T) {
	for _, tc := range []struct {
		file string
		want string // in the error, which always wraps ErrMalformed
	}{
		{"truncated.json", "malformed OTLP"},
		{"syntax-error.json", "at byte 34: invalid character '}'"},
		{"two-documents.json", "after top-level value"},
		{"top-level-array.json", "unexpected token ["},
		{"trace-id-number.json", "traceId must be a hex string"},
		{"span-id-not-hex.json", `spanId "zz" is not hex`},
		{"parent-span-id-odd.json", `parentSpanId "abc" is not hex`},
		{"link-trace-id-not-hex.json", `traceId "not-hex" is not hex`},
		{"snake-case-span-id.json", `span_id "xyz" is not hex`},
		{"start-time-not-number.json", "startTimeUnixNano"},
		{"int-value-not-number.json", "intValue"},
		{"name-not-string.json", "invalid value for string field name"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			req, err := otlp.DecodeJSON(readFixture(t, filepath.Join("malformed", tc.file)))
			// protojson's "(line 1:N)" would count in the rewritten document: never shown.
			if err == nil || !errors.Is(err, otlp.ErrMalformed) || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "(line ") {
				t.Errorf("got %v, %v; want an ErrMalformed containing %q", req, err, tc.want)
			}
		})
	}
}

// An export from a newer SDK still decodes: an unknown enum name is left unset, as protojson does
// for unknown fields (which plain.json also carries).
func TestDecodeJSONForwardCompatible(t *testing.T) {
	req := decodeFixture(t, "unknown-span-kind.json")
	spans := otlp.Events(req)
	if len(spans) != 1 || spans[0].Err != nil || spans[0].Event.Kind != event.KindCustom {
		t.Fatalf("%+v", spans)
	}
	if k := req.GetResourceSpans()[0].GetScopeSpans()[0].GetSpans()[0].GetKind(); k != tracepb.Span_SPAN_KIND_UNSPECIFIED {
		t.Errorf("span kind %v, want unspecified", k)
	}
}

func TestDecodeProtobufMalformed(t *testing.T) {
	good, err := proto.Marshal(decodeFixture(t, "genai_chat.json"))
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string][]byte{
		"garbage":               []byte("\xff\xff\xff"),
		"truncated":             good[:len(good)-7],
		"json sent as protobuf": readFixture(t, "genai_chat.json"),
	} {
		if _, err := otlp.DecodeProtobuf(body); !errors.Is(err, otlp.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	// An empty body is an empty export, not an error.
	if req, err := otlp.DecodeProtobuf(nil); err != nil || len(otlp.Events(req)) != 0 {
		t.Errorf("empty body: %v, %v", req, err)
	}
}

// The answer counts the rejected spans as OTLP partial success; a fully accepted export has none.
func TestResponse(t *testing.T) {
	for _, tc := range []struct {
		rejected int
		msg      string
		json     string
	}{
		{0, "", `{}`},
		{2, `span "x": trace id must be 16 bytes and span id 8`, `{"partialSuccess":{"rejectedSpans":"2","errorMessage":"span \"x\": trace id must be 16 bytes and span id 8"}}`},
	} {
		resp := otlp.Response(tc.rejected, tc.msg)
		if got := resp.GetPartialSuccess().GetRejectedSpans(); got != int64(tc.rejected) {
			t.Errorf("rejected %d: partial success counts %d", tc.rejected, got)
		}
		if tc.rejected == 0 && resp.PartialSuccess != nil {
			t.Errorf("no rejection, yet partial success %v", resp.PartialSuccess)
		}
		b, err := protojson.Marshal(resp)
		if err != nil {
			t.Fatal(err)
		}
		if got, _ := event.Canonicalize(b); string(got) != mustCanon(t, tc.json) {
			t.Errorf("rejected %d: %s, want %s", tc.rejected, b, tc.json)
		}
	}
	// Decoding a partially bad export and answering for its bad spans counts exactly those.
	var rejected int
	for _, sp := range otlp.Events(decodeFixture(t, "partial.json")) {
		if sp.Err != nil {
			rejected++
		}
	}
	if got := otlp.Response(rejected, "").GetPartialSuccess().GetRejectedSpans(); got != 3 {
		t.Errorf("partial.json: %d rejected, want 3", got)
	}
}

func mustCanon(t *testing.T, s string) string {
	t.Helper()
	b, err := event.Canonicalize([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A span's own attributes are more specific than its resource's: any alias set on the span
// (enduser.id) wins over any alias set on the resource (user.id).
func TestSpanAttributesWinOverResource(t *testing.T) {
	span := func(attrs ...*commonpb.KeyValue) *tracepb.Span {
		return &tracepb.Span{TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), Name: "s", Attributes: attrs}
	}
	for _, tc := range []struct {
		name      string
		res, span []*commonpb.KeyValue
		user      string
	}{
		{"span enduser.id over resource user.id", []*commonpb.KeyValue{str("user.id", "res")}, []*commonpb.KeyValue{str("enduser.id", "span")}, "span"},
		{"span user.id over resource enduser.id", []*commonpb.KeyValue{str("enduser.id", "res")}, []*commonpb.KeyValue{str("user.id", "span")}, "span"},
		{"resource fills what the span lacks", []*commonpb.KeyValue{str("enduser.id", "res")}, nil, "res"},
		{"first alias on one level", nil, []*commonpb.KeyValue{str("enduser.id", "b"), str("user.id", "a")}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
				Resource:   &resourcepb.Resource{Attributes: tc.res},
				ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{span(tc.span...)}}},
			}}}
			spans := otlp.Events(req)
			if len(spans) != 1 || spans[0].Err != nil {
				t.Fatalf("%+v", spans)
			}
			if got := spans[0].Event.UserID; got != tc.user {
				t.Errorf("user %q, want %q", got, tc.user)
			}
		})
	}
}

// A parent span id of the wrong length is an error naming it, not a silent root.
func TestParentSpanIDLength(t *testing.T) {
	for _, tc := range []struct {
		parent []byte
		err    string
	}{
		{nil, ""},
		{[]byte("abcdefgh"), ""},
		{[]byte("abcd"), "parent span id must be 8 bytes, not 4"},
		{[]byte("abcdefghijklmnop"), "parent span id must be 8 bytes, not 16"},
	} {
		req := &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
			ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), ParentSpanId: tc.parent, Name: "s"}}}},
		}}}
		spans := otlp.Events(req)
		if len(spans) != 1 {
			t.Fatalf("%d spans", len(spans))
		}
		switch err := spans[0].Err; {
		case tc.err == "" && err != nil:
			t.Errorf("parent %q: %v", tc.parent, err)
		case tc.err != "" && (err == nil || !errors.Is(err, otlp.ErrMalformed) || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("parent %q: error %v, want %q", tc.parent, err, tc.err)
		case tc.err == "" && len(tc.parent) == 8 && spans[0].Event.ParentID != otlp.EventID([]byte("0123456789abcdef"), tc.parent):
			t.Errorf("parent id %q", spans[0].Event.ParentID)
		}
	}
}

// A span kept as a custom event (invoke_agent) keeps its output messages beside the span's name.
func TestCustomSpanKeepsOutputMessages(t *testing.T) {
	req := &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{{TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), Name: "invoke_agent a",
			Attributes: []*commonpb.KeyValue{str("gen_ai.operation.name", "invoke_agent"), str("gen_ai.output.messages", `[{"role":"assistant","parts":[{"type":"text","content":"done"}]}]`)}}}}},
	}}}
	spans := otlp.Events(req)
	if len(spans) != 1 || spans[0].Err != nil {
		t.Fatalf("%+v", spans)
	}
	got, err := event.Canonicalize(spans[0].Event.Metadata)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"gen_ai.operation.name":"invoke_agent","output_messages":[{"parts":[{"content":"done","type":"text"}],"role":"assistant"}],"span_name":"invoke_agent a"}`
	if string(got) != want {
		t.Errorf("metadata\n got %s\nwant %s", got, want)
	}
}

// str is a string attribute.
func str(k, v string) *commonpb.KeyValue {
	return &commonpb.KeyValue{Key: k, Value: &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}}
}

// oneSpan converts a single span under a resource with the given attributes.
func oneSpan(t *testing.T, res []*commonpb.KeyValue, sp *tracepb.Span) *event.Event {
	t.Helper()
	req := &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: res},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: []*tracepb.Span{sp}}},
	}}}
	spans := otlp.Events(req)
	if len(spans) != 1 || spans[0].Err != nil {
		t.Fatalf("%+v", spans)
	}
	return spans[0].Event
}

// An event's time is its span's start, to the nanosecond (as the SDK records an llm_call's time
// as the call's start), and its latency_ms (llm_call) or duration_ms (tool_call) is the span's
// duration; a span without a usable start or end has no duration rather than a wrong one.
func TestSpanTiming(t *testing.T) {
	const start = 1767225600123456789 // 2026-01-01T00:00:00.123456789Z
	for _, tc := range []struct {
		name              string
		op                string
		start, end        uint64
		time              string // RFC 3339; "" for none
		latency, duration float64
	}{
		{"chat", "chat", start, start + 1_250_000_000, "2026-01-01T00:00:00.123456789Z", 1250, 0},
		{"chat, sub-millisecond", "chat", start, start + 1_500_001, "2026-01-01T00:00:00.123456789Z", 1.500001, 0},
		{"execute_tool", "execute_tool", start, start + 38_000_000, "2026-01-01T00:00:00.123456789Z", 0, 38},
		{"invoke_agent: custom, time only", "invoke_agent", start, start + 2_000_000_000, "2026-01-01T00:00:00.123456789Z", 0, 0},
		{"no end", "chat", start, 0, "2026-01-01T00:00:00.123456789Z", 0, 0},
		{"end before start", "execute_tool", start, start - 1, "2026-01-01T00:00:00.123456789Z", 0, 0},
		{"zero length", "chat", start, start, "2026-01-01T00:00:00.123456789Z", 0, 0},
		{"no start", "chat", 0, start, "", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := oneSpan(t, nil, &tracepb.Span{TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), Name: "s",
				StartTimeUnixNano: tc.start, EndTimeUnixNano: tc.end,
				Attributes: []*commonpb.KeyValue{str("gen_ai.operation.name", tc.op), str("gen_ai.tool.name", "t")}})
			var got string
			if !ev.Time.IsZero() {
				got = ev.Time.Format(time.RFC3339Nano)
			}
			if got != tc.time || ev.LatencyMS != tc.latency || ev.DurationMS != tc.duration {
				t.Errorf("time %q latency %v duration %v; want %q, %v, %v", got, ev.LatencyMS, ev.DurationMS, tc.time, tc.latency, tc.duration)
			}
		})
	}
}

// The GenAI facts each have their field: the requested model (model) and the one that answered
// (response_model), the response id, the provider (gen_ai.provider.name, else the older
// gen_ai.system, else OpenInference's llm.provider), the tool type and the agent's name and
// version. An llm_call or tool_call always has an outcome: error when the status is ERROR or
// error.type is set (the conventions' two signs of failure), success otherwise.
func TestGenAIFacts(t *testing.T) {
	const head = `"id":"otel-30313233343536373839616263646566-3031323334353637","time":"2026-01-01T00:00:00Z"`
	ok := &tracepb.Status{Code: tracepb.Status_STATUS_CODE_OK}
	failed := &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR, Message: "rate limited"}
	for _, tc := range []struct {
		name   string
		res    []*commonpb.KeyValue
		attrs  []*commonpb.KeyValue
		status *tracepb.Status
		want   string // the event without id and time
	}{
		{"request and response model kept apart", nil, []*commonpb.KeyValue{str("gen_ai.operation.name", "chat"),
			str("gen_ai.request.model", "claude-opus-4-6"), str("gen_ai.response.model", "claude-opus-4-6-20260101"),
			str("gen_ai.response.id", "msg_01XFDUDYJgAACzvnptvVoYEL"), str("gen_ai.provider.name", "anthropic")}, nil,
			`"kind":"llm_call","model":"claude-opus-4-6","response_model":"claude-opus-4-6-20260101","response_id":"msg_01XFDUDYJgAACzvnptvVoYEL",
			"provider":"anthropic","outcome":"success","metadata":{"span_name":"s"}`},
		{"only the response model: it is the model too", nil, []*commonpb.KeyValue{str("gen_ai.operation.name", "chat"),
			str("gen_ai.response.model", "gpt-4o-2024-08-06")}, nil,
			`"kind":"llm_call","model":"gpt-4o-2024-08-06","response_model":"gpt-4o-2024-08-06","outcome":"success","metadata":{"span_name":"s"}`},
		{"only the request model", nil, []*commonpb.KeyValue{str("gen_ai.operation.name", "chat"), str("gen_ai.request.model", "gpt-4o")}, ok,
			`"kind":"llm_call","model":"gpt-4o","outcome":"success","metadata":{"span_name":"s"}`},
		{"older gen_ai.system is the provider", nil, []*commonpb.KeyValue{str("gen_ai.operation.name", "text_completion"), str("gen_ai.system", "openai")}, nil,
			`"kind":"llm_call","provider":"openai","outcome":"success","metadata":{"span_name":"s"}`},
		{"gen_ai.provider.name wins over gen_ai.system", nil, []*commonpb.KeyValue{str("gen_ai.operation.name", "chat"),
			str("gen_ai.system", "az.ai.openai"), str("gen_ai.provider.name", "azure.ai.openai")}, nil,
			`"kind":"llm_call","provider":"azure.ai.openai","outcome":"success","metadata":{"span_name":"s"}`},
		{"OpenInference model and provider", nil, []*commonpb.KeyValue{str("openinference.span.kind", "LLM"),
			str("llm.model_name", "gpt-4o"), str("llm.provider", "openai")}, nil,
			`"kind":"llm_call","model":"gpt-4o","provider":"openai","outcome":"success","metadata":{"span_name":"s"}`},
		{"chat failed: status ERROR", nil, []*commonpb.KeyValue{str("gen_ai.operation.name", "chat"), str("error.type", "429")}, failed,
			`"kind":"llm_call","outcome":"error","error":"rate limited","error_type":"429","metadata":{"span_name":"s"}`},
		{"chat failed: error.type without a status", nil, []*commonpb.KeyValue{str("gen_ai.operation.name", "chat"), str("error.type", "timeout")}, nil,
			`"kind":"llm_call","outcome":"error","error_type":"timeout","metadata":{"span_name":"s"}`},
		{"an explicit OK status is the application's last word", nil, []*commonpb.KeyValue{str("gen_ai.operation.name", "chat"), str("error.type", "timeout")}, ok,
			`"kind":"llm_call","outcome":"success","metadata":{"span_name":"s"}`},
		{"tool type", nil, []*commonpb.KeyValue{str("gen_ai.operation.name", "execute_tool"), str("gen_ai.tool.name", "get_weather"),
			str("gen_ai.tool.type", "function")}, nil,
			`"kind":"tool_call","tool_name":"get_weather","tool_type":"function","success":true,"outcome":"success","metadata":{"span_name":"s"}`},
		{"tool failed: error.type without a status", nil, []*commonpb.KeyValue{str("gen_ai.operation.name", "execute_tool"),
			str("gen_ai.tool.name", "get_weather"), str("error.type", "TimeoutError")}, nil,
			`"kind":"tool_call","tool_name":"get_weather","success":false,"outcome":"error","error_type":"TimeoutError","metadata":{"span_name":"s"}`},
		{"agent id, name, version and provider", []*commonpb.KeyValue{str("service.name", "svc"), str("service.version", "2.0.0")},
			[]*commonpb.KeyValue{str("gen_ai.operation.name", "invoke_agent"), str("gen_ai.agent.id", "asst_5j66UpCpwteGg4YSxUnt7lPY"),
				str("gen_ai.agent.name", "Math Tutor"), str("gen_ai.agent.version", "1.0.0"), str("gen_ai.provider.name", "openai")}, nil,
			`"kind":"custom","agent_id":"asst_5j66UpCpwteGg4YSxUnt7lPY","agent_name":"Math Tutor","agent_version":"1.0.0","provider":"openai",
			"metadata":{"span_name":"s","gen_ai.operation.name":"invoke_agent"}`},
		{"agent name only: it is the id too", []*commonpb.KeyValue{str("service.name", "svc"), str("service.version", "2.0.0")},
			[]*commonpb.KeyValue{str("gen_ai.operation.name", "invoke_agent"), str("gen_ai.agent.name", "Math Tutor")}, nil,
			`"kind":"custom","agent_id":"Math Tutor","agent_name":"Math Tutor","agent_version":"2.0.0","metadata":{"span_name":"s","gen_ai.operation.name":"invoke_agent"}`},
		{"OpenInference agent.name", nil, []*commonpb.KeyValue{str("openinference.span.kind", "AGENT"), str("agent.name", "WeatherAgent")}, nil,
			`"kind":"custom","agent_id":"WeatherAgent","agent_name":"WeatherAgent","metadata":{"span_name":"s","openinference.span.kind":"AGENT"}`},
		{"a failed custom span has an outcome, a plain one none", nil, []*commonpb.KeyValue{str("gen_ai.operation.name", "invoke_agent"), str("error.type", "_OTHER")}, nil,
			`"kind":"custom","outcome":"error","error_type":"_OTHER","metadata":{"span_name":"s","gen_ai.operation.name":"invoke_agent"}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ev := oneSpan(t, tc.res, &tracepb.Span{TraceId: []byte("0123456789abcdef"), SpanId: []byte("01234567"), Name: "s",
				StartTimeUnixNano: 1767225600000000000, Attributes: tc.attrs, Status: tc.status})
			if got, want := canonical(t, ev), mustCanon(t, "{"+head+","+tc.want+"}"); got != want {
				t.Errorf("\n got %s\nwant %s", got, want)
			}
		})
	}
}

// spanSpec is a span of an inheritance case: its id and its parent's (short names, padded to 8
// bytes), in one trace.
type spanSpec struct {
	id, parent string
	attrs      []*commonpb.KeyValue
}

func spanID(name string) []byte {
	b := make([]byte, 8)
	copy(b, name)
	return b
}

var inheritTrace = []byte("0123456789abcdef")

func exportOf(specs []spanSpec) *collectorpb.ExportTraceServiceRequest {
	var spans []*tracepb.Span
	for _, s := range specs {
		sp := &tracepb.Span{TraceId: inheritTrace, SpanId: spanID(s.id), Name: s.id, StartTimeUnixNano: 1767225600000000000, Attributes: s.attrs}
		if s.parent != "" {
			sp.ParentSpanId = spanID(s.parent)
		}
		spans = append(spans, sp)
	}
	return &collectorpb.ExportTraceServiceRequest{ResourceSpans: []*tracepb.ResourceSpans{{
		Resource:   &resourcepb.Resource{Attributes: []*commonpb.KeyValue{str("service.name", "svc"), str("service.version", "9")}},
		ScopeSpans: []*tracepb.ScopeSpans{{Spans: spans}},
	}}}
}

// fakeStore is the log as the OTLP receiver reads it: canonical bodies by event id.
type fakeStore struct {
	bodies  map[string][]byte
	err     error // returned by every read when set
	lookups int
}

func (f *fakeStore) EntryByID(_ context.Context, id string) (store.Entry, error) {
	f.lookups++
	if f.err != nil {
		return store.Entry{}, f.err
	}
	b, ok := f.bodies[id]
	if !ok {
		return store.Entry{}, fmt.Errorf("event %s: %w", id, store.ErrNotFound)
	}
	return store.Entry{ID: id, Body: b}, nil
}

// record converts an export as the server does, reading ancestors from the store, and stores
// its events.
func (f *fakeStore) record(t *testing.T, specs []spanSpec) []otlp.Span {
	t.Helper()
	spans, err := otlp.Convert(context.Background(), exportOf(specs), otlp.Options{Lookup: otlp.FromStore(f)})
	if err != nil {
		t.Fatal(err)
	}
	for _, sp := range spans {
		if sp.Err != nil {
			t.Fatal(sp.Err)
		}
		f.bodies[sp.Event.ID] = []byte(canonical(t, sp.Event))
	}
	return spans
}

func invokeAgent(kv ...*commonpb.KeyValue) []*commonpb.KeyValue {
	return append([]*commonpb.KeyValue{str("gen_ai.operation.name", "invoke_agent")}, kv...)
}

var (
	chatAttrs = []*commonpb.KeyValue{str("gen_ai.operation.name", "chat")}
	toolAttrs = []*commonpb.KeyValue{str("gen_ai.operation.name", "execute_tool"), str("gen_ai.tool.name", "t")}
	support   = invokeAgent(str("gen_ai.agent.id", "asst_1"), str("gen_ai.agent.name", "Support"), str("gen_ai.agent.version", "1.0"))
)

// Spans inherit the agent (id, name, version) of their nearest invoke_agent (or OpenInference
// AGENT) ancestor, whether it came in the same export, in any order, or was recorded from an
// earlier one; a span that names its own agent keeps it.
func TestAgentInheritance(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before [][]spanSpec // exports recorded earlier, in order
		export []spanSpec
		want   map[string]string // span id: agent_id/agent_name/agent_version
	}{
		{"same export, parent first", nil,
			[]spanSpec{{"agent", "", support}, {"chat", "agent", chatAttrs}, {"tool", "chat", toolAttrs}},
			map[string]string{"agent": "asst_1/Support/1.0", "chat": "asst_1/Support/1.0", "tool": "asst_1/Support/1.0"}},
		{"same export, children first", nil,
			[]spanSpec{{"tool", "chat", toolAttrs}, {"chat", "agent", chatAttrs}, {"agent", "", support}},
			map[string]string{"agent": "asst_1/Support/1.0", "chat": "asst_1/Support/1.0", "tool": "asst_1/Support/1.0"}},
		{"nested agents: the nearest wins", nil,
			[]spanSpec{{"tool2", "chat2", toolAttrs}, {"chat2", "inner", chatAttrs},
				{"inner", "outer", invokeAgent(str("gen_ai.agent.id", "asst_2"), str("gen_ai.agent.name", "Refunds"))},
				{"chat1", "outer", chatAttrs}, {"outer", "", support}},
			map[string]string{"outer": "asst_1/Support/1.0", "chat1": "asst_1/Support/1.0",
				"inner": "asst_2/Refunds/9", "chat2": "asst_2/Refunds/9", "tool2": "asst_2/Refunds/9"}},
		{"the nearest agent span names no agent: its service", nil,
			[]spanSpec{{"outer", "", support}, {"inner", "outer", invokeAgent()}, {"chat", "inner", chatAttrs}},
			map[string]string{"outer": "asst_1/Support/1.0", "inner": "svc//9", "chat": "svc//9"}},
		{"a span naming another agent keeps it", nil,
			[]spanSpec{{"agent", "", support}, {"chat", "agent", append([]*commonpb.KeyValue{str("gen_ai.agent.id", "asst_9")}, chatAttrs...)}},
			map[string]string{"agent": "asst_1/Support/1.0", "chat": "asst_9//9"}},
		{"a span naming its agent by name alone gets the id", nil,
			[]spanSpec{{"agent", "", support}, {"chat", "agent", append([]*commonpb.KeyValue{str("gen_ai.agent.name", "Support")}, chatAttrs...)}},
			map[string]string{"agent": "asst_1/Support/1.0", "chat": "asst_1/Support/1.0"}},
		{"no agent above: the service", nil,
			[]spanSpec{{"root", "", nil}, {"chat", "root", chatAttrs}, {"orphan", "gone", toolAttrs}},
			map[string]string{"root": "svc//9", "chat": "svc//9", "orphan": "svc//9"}},
		{"OpenInference AGENT span", nil,
			[]spanSpec{{"agent", "", []*commonpb.KeyValue{str("openinference.span.kind", "AGENT"), str("agent.name", "WeatherAgent")}},
				{"llm", "agent", []*commonpb.KeyValue{str("openinference.span.kind", "LLM")}}},
			map[string]string{"agent": "WeatherAgent/WeatherAgent/9", "llm": "WeatherAgent/WeatherAgent/9"}},
		{"a parent cycle ends", nil,
			[]spanSpec{{"a", "b", chatAttrs}, {"b", "a", chatAttrs}},
			map[string]string{"a": "svc//9", "b": "svc//9"}},
		{"across exports: the agent was recorded earlier",
			[][]spanSpec{{{"agent", "", support}}},
			[]spanSpec{{"tool", "chat", toolAttrs}, {"chat", "agent", chatAttrs}},
			map[string]string{"chat": "asst_1/Support/1.0", "tool": "asst_1/Support/1.0"}},
		{"across exports: through a recorded span that inherited nothing",
			// The chat was recorded before its agent, so it kept the service; its tool, exported
			// after both, still finds the agent through it.
			[][]spanSpec{{{"chat", "agent", chatAttrs}}, {{"agent", "", support}}},
			[]spanSpec{{"tool", "chat", toolAttrs}},
			map[string]string{"tool": "asst_1/Support/1.0"}},
		{"across exports: a recorded inner agent is nearer than an outer one in the export",
			[][]spanSpec{{{"inner", "outer", invokeAgent(str("gen_ai.agent.id", "asst_2"))}}},
			[]spanSpec{{"outer", "", support}, {"chat", "inner", chatAttrs}},
			map[string]string{"outer": "asst_1/Support/1.0", "chat": "asst_2//9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &fakeStore{bodies: map[string][]byte{}}
			for _, b := range tc.before {
				st.record(t, b)
			}
			spans := st.record(t, tc.export)
			got := map[string]string{}
			for i, sp := range spans {
				got[tc.export[i].id] = sp.Event.AgentID + "/" + sp.Event.AgentName + "/" + sp.Event.AgentVersion
			}
			for id, want := range tc.want {
				if got[id] != want {
					t.Errorf("%s: agent %s, want %s", id, got[id], want)
				}
			}
		})
	}
}

// The store is read at most once per ancestor in an export, and a failed read fails the
// conversion (the receiver answers 503, and the exporter retries) rather than recording spans
// under the wrong agent for good.
func TestConvertReadsTheStore(t *testing.T) {
	st := &fakeStore{bodies: map[string][]byte{}}
	st.record(t, []spanSpec{{"agent", "", support}})
	st.lookups = 0
	spans := st.record(t, []spanSpec{{"chat1", "agent", chatAttrs}, {"chat2", "agent", chatAttrs}, {"tool", "chat1", toolAttrs}})
	if st.lookups != 1 {
		t.Errorf("%d reads of the store, want 1", st.lookups)
	}
	for _, sp := range spans {
		if sp.Event.AgentID != "asst_1" {
			t.Errorf("%s: agent %s", sp.Event.ID, sp.Event.AgentID)
		}
	}
	broken := errors.New("disk on fire")
	st.err = broken
	if spans, err := otlp.Convert(context.Background(), exportOf([]spanSpec{{"chat3", "agent", chatAttrs}}), otlp.Options{Lookup: otlp.FromStore(st)}); !errors.Is(err, broken) || spans != nil {
		t.Errorf("store failing: %v, %v; want the store's error and no spans", spans, err)
	}
	// Spans without a parent, or whose parents are all in the export, never read the store.
	st.lookups = 0
	if _, err := otlp.Convert(context.Background(), exportOf([]spanSpec{{"chat4", "root", chatAttrs}, {"root", "", support}}), otlp.Options{Lookup: otlp.FromStore(st)}); err != nil || st.lookups != 0 {
		t.Errorf("%v, %d reads", err, st.lookups)
	}
}

// FromStore reads stored events: an absent event is no ancestor, and so is one whose body can
// no longer be read (a purged payload), since the spans below it are still worth recording.
func TestFromStore(t *testing.T) {
	agent := otlp.Events(exportOf([]spanSpec{{"agent", "", support}}))[0].Event
	good := []byte(canonical(t, agent))
	st := &fakeStore{bodies: map[string][]byte{"good": good, "purged": nil, "garbage": []byte("{not json")}}
	lookup := otlp.FromStore(st)
	for _, tc := range []struct {
		id    string
		found bool
	}{{"good", true}, {"absent", false}, {"purged", false}, {"garbage", false}} {
		ev, found, err := lookup(context.Background(), tc.id)
		if err != nil || found != tc.found || found && (ev == nil || ev.AgentID != "asst_1") {
			t.Errorf("%s: %v, %v, %v; want found %v", tc.id, ev, found, err, tc.found)
		}
	}
	st.err = errors.New("disk on fire")
	if _, _, err := lookup(context.Background(), "good"); !errors.Is(err, st.err) {
		t.Errorf("failing store: %v", err)
	}
}
