package server_test

import (
	"context"
	"encoding/hex"
	"strings"
	"testing"

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
