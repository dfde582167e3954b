package server_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/otlp"
	"github.com/agentaudit/agentaudit/query"
	"github.com/agentaudit/agentaudit/server"
)

// TestOTLPFromTheOfficialExporter sends real GenAI spans with the OpenTelemetry Go SDK's
// OTLP/HTTP exporter (protobuf, gzip) and reads the events back.
func TestOTLPFromTheOfficialExporter(t *testing.T) {
	e := start(t, server.Config{})
	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(e.url+"/v1/traces"),
		otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + e.keys[apikey.Writer]}),
		otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	if err != nil {
		t.Fatal(err)
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "support-agent-py"))))
	tr := tp.Tracer("test")

	ctx, agent := tr.Start(ctx, "invoke_agent support", trace2(
		attribute.String("gen_ai.operation.name", "invoke_agent"), attribute.String("gen_ai.agent.name", "support-v1"),
		attribute.String("gen_ai.conversation.id", "conv-42"), attribute.String("user.id", "usr_98765")))
	cctx, chat := tr.Start(ctx, "chat claude-opus-4-6", trace2(
		attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.provider.name", "anthropic"),
		attribute.String("gen_ai.request.model", "claude-opus-4-6"), attribute.Int("gen_ai.usage.input_tokens", 812),
		attribute.Int("gen_ai.usage.output_tokens", 64), attribute.String("gen_ai.conversation.id", "conv-42"),
		attribute.StringSlice("gen_ai.response.finish_reasons", []string{"tool_use"})))
	chat.End()
	_ = cctx
	_, tool := tr.Start(ctx, "execute_tool update_order_status", trace2(
		attribute.String("gen_ai.operation.name", "execute_tool"), attribute.String("gen_ai.tool.name", "update_order_status"),
		attribute.String("gen_ai.tool.call.id", "toolu_03"), attribute.String("gen_ai.tool.call.arguments", `{"order_id":"ORD-456","status":"cancelled"}`),
		attribute.String("gen_ai.conversation.id", "conv-42"), attribute.String("error.type", "InvalidStateError")))
	tool.SetStatus(codes.Error, "Cannot cancel shipped order")
	tool.End()
	_, oi := tr.Start(ctx, "lookup", trace2(attribute.String("openinference.span.kind", "TOOL"), attribute.String("tool.name", "get_order"),
		attribute.String("session.id", "conv-42"), attribute.String("input.value", `{"order_id":"ORD-456"}`)))
	oi.End()
	_, other := tr.Start(ctx, "db.query", trace2(attribute.String("db.system", "postgresql"), attribute.String("gen_ai.conversation.id", "conv-42")))
	other.End()
	agent.End()
	if err := tp.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}

	recs, err := query.Session(context.Background(), e.w.Store, "conv-42")
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[event.Kind][]*event.Event{}
	for _, r := range recs {
		byKind[r.Event.Kind] = append(byKind[r.Event.Kind], r.Event)
	}
	llm := byKind[event.KindLLMCall]
	if len(llm) != 1 || llm[0].Model != "claude-opus-4-6" || llm[0].InputTokens != 812 || llm[0].OutputTokens != 64 || llm[0].StopReason != "tool_use" || llm[0].LatencyMS <= 0 {
		t.Fatalf("chat span: %+v", llm)
	}
	tools := byKind[event.KindToolCall]
	if len(tools) != 2 {
		t.Fatalf("%d tool calls, want 2", len(tools))
	}
	var failed *event.Event
	for _, x := range tools {
		if x.ToolName == "update_order_status" {
			failed = x
		}
	}
	if failed == nil || failed.Error != "Cannot cancel shipped order" || failed.ErrorType != "InvalidStateError" || *failed.Success ||
		string(failed.Arguments) != `{"order_id":"ORD-456","status":"cancelled"}` || failed.ToolCallID != "toolu_03" || failed.UserID != "" && failed.UserID != "usr_98765" {
		t.Errorf("execute_tool span: %+v", failed)
	}
	// The agent span and the non-GenAI span are kept as custom events.
	custom := byKind[event.KindCustom]
	if len(custom) != 2 || !strings.Contains(string(custom[0].Metadata)+string(custom[1].Metadata), `"span_name":"db.query"`) ||
		!strings.Contains(string(custom[0].Metadata)+string(custom[1].Metadata), `"gen_ai.operation.name":"invoke_agent"`) {
		t.Errorf("custom spans: %s / %s", custom[0].Metadata, custom[len(custom)-1].Metadata)
	}
	// Parent links follow span parents: the chat span's parent is the agent span.
	agentEv, err := e.w.Store.EntryByID(context.Background(), llm[0].ParentID)
	if err != nil || !strings.Contains(string(agentEv.Body), "invoke_agent") {
		t.Errorf("chat's parent %s: %v", llm[0].ParentID, err)
	}
}

func trace2(kv ...attribute.KeyValue) trace.SpanStartOption { return trace.WithAttributes(kv...) }

func TestOTLPJSONAndBadBodies(t *testing.T) {
	e := start(t, server.Config{})
	body := `{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"py-agent"}}]},
	"scopeSpans":[{"spans":[
	 {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174","name":"chat","startTimeUnixNano":"1767225600000000000","endTimeUnixNano":"1767225601500000000",
	  "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}},{"key":"gen_ai.request.model","value":{"stringValue":"gpt-4o"}},
	  {"key":"gen_ai.usage.input_tokens","value":{"intValue":"30"}},{"key":"session.id","value":{"stringValue":"json-sess"}}]},
	 {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174","name":"tool",
	  "attributes":[{"key":"openinference.span.kind","value":{"stringValue":"TOOL"}},{"key":"tool.name","value":{"stringValue":"get_order"}},{"key":"session.id","value":{"stringValue":"json-sess"}}]},
	 {"traceId":"00","spanId":"01","name":"broken"}
	]}]}]}`
	code, _, b := e.do(t, apikey.Writer, "POST", "/v1/traces", "application/json", []byte(body))
	if code != 200 || !strings.Contains(string(b), `"rejectedSpans":"1"`) {
		t.Fatalf("json export: %d %s", code, b)
	}
	recs, err := query.Session(context.Background(), e.w.Store, "json-sess")
	if err != nil || len(recs) != 2 || recs[0].Event.Kind != event.KindLLMCall || recs[0].Event.InputTokens != 30 || recs[0].Event.LatencyMS != 1500 ||
		recs[1].Event.ParentID != otlp.EventID(hexb("5b8efff798038103d269b633813fc60c"), hexb("eee19b7ec3c1b174")) {
		t.Fatalf("json spans: %v %+v", err, recs)
	}
	// The same export again stores nothing new: ids derive from trace and span ids.
	e.do(t, apikey.Writer, "POST", "/v1/traces", "application/json", []byte(body))
	if again, _ := query.Session(context.Background(), e.w.Store, "json-sess"); len(again) != 2 {
		t.Errorf("a re-sent export added events: %d", len(again))
	}
	for name, tc := range map[string]struct {
		ctype, body string
		want        int
	}{
		"not json":     {"application/json", `{"resourceSpans":`, 400},
		"not protobuf": {"application/x-protobuf", "\xff\xff\xff", 400},
		"bad hex id":   {"application/json", `{"resourceSpans":[{"scopeSpans":[{"spans":[{"traceId":"zz","spanId":"01"}]}]}]}`, 400},
		"wrong type":   {"text/plain", "x", 415},
	} {
		if code, _, b := e.do(t, apikey.Writer, "POST", "/v1/traces", tc.ctype, []byte(tc.body)); code != tc.want {
			t.Errorf("%s: %d %s, want %d", name, code, b, tc.want)
		}
	}
	if code, _, _ := e.do(t, apikey.Reader, "POST", "/v1/traces", "application/json", []byte(body)); code != 403 {
		t.Errorf("reader posting traces: %d, want 403", code)
	}
}

func hexb(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}

// TestOTLPAgentInheritanceAcrossExports sends an agent's spans with the OpenTelemetry Go SDK's
// batching exporter, the agent span in an earlier export than its model and tool calls (as when
// it ends first), and finds the whole run under the agent's id through GET /v1/events?agent_id=.
func TestOTLPAgentInheritanceAcrossExports(t *testing.T) {
	e := start(t, server.Config{})
	ctx := context.Background()
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(e.url+"/v1/traces"),
		otlptracehttp.WithHeaders(map[string]string{"Authorization": "Bearer " + e.keys[apikey.Writer]}))
	if err != nil {
		t.Fatal(err)
	}
	// Exports happen only at ForceFlush: each flush below is one request.
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp, sdktrace.WithBatchTimeout(time.Hour)),
		sdktrace.WithResource(resource.NewSchemaless(attribute.String("service.name", "support-agent-py"))))
	tr := tp.Tracer("test")
	flush := func() {
		t.Helper()
		if err := tp.ForceFlush(ctx); err != nil {
			t.Fatal(err)
		}
	}

	// Export 1: the agent span alone.
	actx, agent := tr.Start(ctx, "invoke_agent Support", trace2(attribute.String("gen_ai.operation.name", "invoke_agent"),
		attribute.String("gen_ai.agent.id", "asst_1"), attribute.String("gen_ai.agent.name", "Support"),
		attribute.String("gen_ai.provider.name", "anthropic")))
	agent.End()
	flush()

	// Export 2: a chat and its tool call, and a nested agent with its own chat, ended (so sent)
	// children first.
	start := time.Date(2026, 1, 1, 0, 0, 0, 123456789, time.UTC)
	cctx, chat := tr.Start(actx, "chat claude-opus-4-6", trace.WithTimestamp(start), trace2(attribute.String("gen_ai.operation.name", "chat"),
		attribute.String("gen_ai.provider.name", "anthropic"), attribute.String("gen_ai.request.model", "claude-opus-4-6"),
		attribute.String("gen_ai.response.model", "claude-opus-4-6-20260101"), attribute.String("gen_ai.response.id", "msg_01")))
	_, tool := tr.Start(cctx, "execute_tool get_order", trace2(attribute.String("gen_ai.operation.name", "execute_tool"),
		attribute.String("gen_ai.tool.name", "get_order"), attribute.String("gen_ai.tool.type", "function")))
	tool.End()
	chat.End(trace.WithTimestamp(start.Add(1250 * time.Millisecond)))
	ictx, inner := tr.Start(actx, "invoke_agent Refunds", trace2(attribute.String("gen_ai.operation.name", "invoke_agent"),
		attribute.String("gen_ai.agent.id", "asst_2"), attribute.String("gen_ai.agent.name", "Refunds")))
	_, chat2 := tr.Start(ictx, "chat gpt-4o", trace2(attribute.String("gen_ai.operation.name", "chat"), attribute.String("gen_ai.request.model", "gpt-4o")))
	chat2.End()
	inner.End()
	flush()

	// Export 3: a late tool call under the chat of export 2.
	_, late := tr.Start(cctx, "execute_tool refund", trace2(attribute.String("gen_ai.operation.name", "execute_tool"), attribute.String("gen_ai.tool.name", "refund")))
	late.End()
	if err := tp.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}

	byAgent := func(id string) map[string]*event.Event {
		t.Helper()
		code, _, b := e.do(t, apikey.Auditor, "GET", "/v1/events?agent_id="+id, "", nil)
		var page query.Page
		if err := json.Unmarshal(b, &page); code != 200 || err != nil {
			t.Fatalf("agent %s: %d %s", id, code, b)
		}
		out := map[string]*event.Event{}
		for _, r := range page.Records {
			out[spanName(t, r.Event)] = r.Event
		}
		return out
	}
	want := map[string][]string{
		"asst_1": {"chat claude-opus-4-6", "execute_tool get_order", "execute_tool refund", "invoke_agent Support"},
		"asst_2": {"chat gpt-4o", "invoke_agent Refunds"},
	}
	runs := map[string]map[string]*event.Event{}
	for id, names := range want {
		runs[id] = byAgent(id)
		var got []string
		for name, ev := range runs[id] {
			got = append(got, name)
			if wantName := map[string]string{"asst_1": "Support", "asst_2": "Refunds"}[id]; ev.AgentName != wantName {
				t.Errorf("%s: agent name %q, want %q", name, ev.AgentName, wantName)
			}
		}
		slices.Sort(got)
		if !slices.Equal(got, names) {
			t.Errorf("agent_id=%s: %q, want %q", id, got, names)
		}
	}
	// The chat keeps both models, the provider and the response id; its time is its span's
	// start and its latency the span's duration. The tool keeps its type.
	c := runs["asst_1"]["chat claude-opus-4-6"]
	if c == nil || c.Model != "claude-opus-4-6" || c.ResponseModel != "claude-opus-4-6-20260101" || c.Provider != "anthropic" ||
		c.ResponseID != "msg_01" || c.Outcome != event.OutcomeSuccess || !c.Time.Equal(start) || c.LatencyMS != 1250 {
		t.Errorf("chat: %+v", c)
	}
	if tl := runs["asst_1"]["execute_tool get_order"]; tl == nil || tl.ToolType != "function" {
		t.Errorf("tool: %+v", tl)
	}
}

func spanName(t *testing.T, ev *event.Event) string {
	t.Helper()
	var md struct {
		SpanName string `json:"span_name"`
	}
	if err := json.Unmarshal(ev.Metadata, &md); err != nil {
		t.Fatalf("%s: metadata %s: %v", ev.ID, ev.Metadata, err)
	}
	return md.SpanName
}

// When the log cannot be read for the agent of a span's ancestors, the export is refused with a
// status the OTLP exporters retry (503 with Retry-After), not a 500 they would drop.
func TestOTLPUnreadableLogIsRetried(t *testing.T) {
	e := start(t, server.Config{})
	body := `{"resourceSpans":[{"scopeSpans":[{"spans":[
	 {"traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b175","parentSpanId":"eee19b7ec3c1b174","name":"chat",
	  "attributes":[{"key":"gen_ai.operation.name","value":{"stringValue":"chat"}}]}]}]}]}`
	if err := e.w.Store.Close(); err != nil {
		t.Fatal(err)
	}
	code, hdr, b := e.do(t, apikey.Writer, "POST", "/v1/traces", "application/json", []byte(body))
	if code != 503 || hdr.Get("Retry-After") == "" {
		t.Errorf("%d %v %s, want 503 with Retry-After", code, hdr, b)
	}
}

// An export over the batch limit is refused before any span's ancestors are read from the log.
func TestOTLPBatchLimitBeforeReads(t *testing.T) {
	e := start(t, server.Config{MaxBatch: 2})
	var spans []string
	for i := range 3 {
		spans = append(spans, fmt.Sprintf(`{"traceId":"5b8efff798038103d269b633813fc60c","spanId":"00000000000000%02x","parentSpanId":"00000000000001%02x","name":"s"}`, i, i))
	}
	body := `{"resourceSpans":[{"scopeSpans":[{"spans":[` + strings.Join(spans, ",") + `]}]}]}`
	if err := e.w.Store.Close(); err != nil { // a read would answer 503
		t.Fatal(err)
	}
	if code, _, b := e.do(t, apikey.Writer, "POST", "/v1/traces", "application/json", []byte(body)); code != 413 || !strings.Contains(string(b), "3 spans; the limit is 2") {
		t.Errorf("%d %s, want 413", code, b)
	}
}
