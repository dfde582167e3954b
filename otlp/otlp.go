// Package otlp turns OTLP trace exports into events, so agents in any language record through
// their OpenTelemetry SDK. Spans following the OpenTelemetry GenAI semantic conventions
// (gen_ai.operation.name chat, text_completion, generate_content, execute_tool, invoke_agent,
// create_agent) and OpenInference spans (openinference.span.kind LLM, TOOL, AGENT, CHAIN) become
// events of the matching kind; other spans are kept as custom events. Each event's id derives from
// its trace and span ids, so a re-sent export is idempotent, and parent links follow span parents.
// Model and tool calls take the agent of their nearest agent span (Convert), which the
// conventions alone name.
//
// Both OTLP/HTTP encodings are read: application/x-protobuf, and application/json with trace and
// span ids as hex strings (the OTLP JSON rule, which differs from protobuf's JSON mapping).
package otlp

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"
	"time"

	collectorpb "go.opentelemetry.io/proto/slim/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/slim/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/slim/otlp/trace/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/store"
)

// ErrMalformed: the body is not an OTLP trace export in the declared encoding.
var ErrMalformed = errors.New("malformed OTLP trace export")

// DecodeProtobuf decodes an application/x-protobuf ExportTraceServiceRequest.
func DecodeProtobuf(body []byte) (*collectorpb.ExportTraceServiceRequest, error) {
	var req collectorpb.ExportTraceServiceRequest
	if err := proto.Unmarshal(body, &req); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	return &req, nil
}

// DecodeJSON decodes an application/json ExportTraceServiceRequest, whose traceId, spanId and
// parentSpanId are hex strings. Numbers are kept exactly: a 64-bit time or integer sent as a JSON
// number (which OTLP/JSON allows) must not be rounded through float64.
func DecodeJSON(body []byte) (*collectorpb.ExportTraceServiceRequest, error) {
	var doc any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return nil, fmt.Errorf("%w: at byte %d: %w", ErrMalformed, se.Offset, err)
		}
		return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after top-level value", ErrMalformed)
	}
	if err := hexIDsToBase64(doc); err != nil {
		return nil, err
	}
	fixed, _ := json.Marshal(doc)
	var req collectorpb.ExportTraceServiceRequest
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(fixed, &req); err != nil {
		// protojson's "(line 1:N)" counts in the rewritten document, not in the body the client
		// sent: drop it and keep what names the field.
		return nil, fmt.Errorf("%w: %s", ErrMalformed, protoPosition.ReplaceAllString(err.Error(), ""))
	}
	return &req, nil
}

var protoPosition = regexp.MustCompile(`\(line \d+:\d+\): `)

// hexIDsToBase64 rewrites the id fields of OTLP JSON into protojson's base64 for bytes.
func hexIDsToBase64(x any) error {
	switch v := x.(type) {
	case map[string]any:
		for k, val := range v {
			switch k {
			case "traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id":
				if val == nil {
					continue // proto3 JSON: null is the field's default (no id)
				}
				s, ok := val.(string)
				if !ok {
					return fmt.Errorf("%w: %s must be a hex string", ErrMalformed, k)
				}
				b, err := hex.DecodeString(s)
				if err != nil {
					return fmt.Errorf("%w: %s %q is not hex", ErrMalformed, k, s)
				}
				v[k] = base64.StdEncoding.EncodeToString(b)
			default:
				if err := hexIDsToBase64(val); err != nil {
					return err
				}
			}
		}
	case []any:
		for _, e := range v {
			if err := hexIDsToBase64(e); err != nil {
				return err
			}
		}
	}
	return nil
}

// Span is one span to record: the event made from it, or why none could be.
type Span struct {
	Event *event.Event
	Err   error
}

// Lookup finds an event already recorded, by id: (nil, false, nil) when there is none. An error
// means the log could not be read.
type Lookup func(ctx context.Context, id string) (*event.Event, bool, error)

// Options tunes Convert.
type Options struct {
	// Lookup finds the events of spans exported in earlier requests, so that spans whose agent
	// span was exported before them still inherit its agent. Nil: only the export itself is
	// searched.
	Lookup Lookup
}

// SpanCount is the number of spans in the export, for a limit checked before Convert reads the
// store.
func SpanCount(req *collectorpb.ExportTraceServiceRequest) int {
	n := 0
	for _, rs := range req.GetResourceSpans() {
		for _, ss := range rs.GetScopeSpans() {
			n += len(ss.GetSpans())
		}
	}
	return n
}

// Events maps every span of the export to an event, in order, with agents inherited within the
// export only.
func Events(req *collectorpb.ExportTraceServiceRequest) []Span {
	spans, _ := Convert(context.Background(), req, Options{}) // no Lookup, no error
	return spans
}

// Convert maps every span of the export to an event, in order. A span that names no agent of its
// own takes the agent (id, name, version) of its nearest agent span ancestor (invoke_agent, or
// OpenInference AGENT), looked for in the export, in any order, and then through
// opts.Lookup among the events already recorded: the conventions put gen_ai.agent.* on the
// agent span only, and without this its model and tool calls would be split from it under the
// service's name. The error is Lookup's: the export should then be retried, not recorded under
// the wrong agent for good.
//
// A span exported before its agent span (a BatchSpanProcessor exports spans as they end, and a
// parent ends last) cannot inherit from it: the log is append-only, and the span is recorded with
// what was known when it came.
func Convert(ctx context.Context, req *collectorpb.ExportTraceServiceRequest, opts Options) ([]Span, error) {
	var out []Span
	var nodes []*node
	byID := map[string]*node{}
	for _, rs := range req.GetResourceSpans() {
		res := attrs(rs.GetResource().GetAttributes())
		for _, ss := range rs.GetScopeSpans() {
			for _, sp := range ss.GetSpans() {
				n, err := toNode(sp, res)
				if err != nil {
					out = append(out, Span{Err: err})
					continue
				}
				out = append(out, Span{Event: n.ev})
				nodes = append(nodes, n)
				byID[n.ev.ID] = n
			}
		}
	}
	in := inheritance{ctx: ctx, export: byID, lookup: opts.Lookup, nearest: map[string]agentOf{}}
	for _, n := range nodes {
		if n.agent || n.ev.ParentID == "" {
			continue // an agent span names the agent that ran (or the service does), never its caller
		}
		a, err := in.nearestAgent(n.ev.ParentID)
		if err != nil {
			return nil, err
		}
		if a.found {
			n.inherit(a)
		}
	}
	return out, nil
}

// node is a span's event and what inheritance needs of the span.
type node struct {
	ev    *event.Event
	agent bool // an agent span: invoke_agent or OpenInference AGENT
	// The agent the span's own attributes name (not its resource's: one process may run many).
	ownID, ownName, ownVersion string
}

// agentOf is the agent of the nearest agent span above a span, if one was found.
type agentOf struct {
	found             bool
	id, name, version string
}

func agentOfEvent(ev *event.Event) agentOf {
	return agentOf{found: true, id: ev.AgentID, name: ev.AgentName, version: ev.AgentVersion}
}

// inherit gives the span its agent span's agent, unless the span names another agent itself. A
// span that names the same agent (by id, or by name alone) gets what it left out.
func (n *node) inherit(a agentOf) {
	switch {
	case n.ownID == "" && n.ownName == "":
	case n.ownID != "" && n.ownID == a.id, n.ownID == "" && n.ownName == a.name:
	default:
		return
	}
	n.ev.AgentID = a.id
	if n.ownName == "" {
		n.ev.AgentName = a.name
	}
	if n.ownVersion == "" && a.version != "" {
		n.ev.AgentVersion = a.version
	}
}

// maxAncestors bounds the walk up a trace: deeper agents are not looked for.
const maxAncestors = 64

// inheritance finds each span's nearest agent span, in the export or among recorded events,
// reading each recorded ancestor at most once per export.
type inheritance struct {
	ctx     context.Context
	export  map[string]*node
	lookup  Lookup
	nearest map[string]agentOf // event id: the agent at or above it
}

func (in *inheritance) nearestAgent(id string) (agentOf, error) {
	var path []string
	onPath := map[string]bool{}
	var found agentOf
	for id != "" && len(path) < maxAncestors {
		if a, ok := in.nearest[id]; ok {
			found = a
			break
		}
		if onPath[id] {
			break // a parent cycle: malformed, no agent
		}
		path, onPath[id] = append(path, id), true
		parent, a, err := in.step(id)
		if err != nil {
			return agentOf{}, err
		}
		if a.found {
			found = a
			break
		}
		id = parent
	}
	for _, p := range path {
		in.nearest[p] = found
	}
	return found, nil
}

// step reads one ancestor: its agent if it is an agent span, else its parent.
func (in *inheritance) step(id string) (parent string, a agentOf, err error) {
	if n, ok := in.export[id]; ok {
		if n.agent {
			return "", agentOfEvent(n.ev), nil
		}
		return n.ev.ParentID, agentOf{}, nil
	}
	if in.lookup == nil {
		return "", agentOf{}, nil
	}
	ev, ok, err := in.lookup(in.ctx, id)
	if err != nil {
		return "", agentOf{}, fmt.Errorf("otlp: read ancestor %s: %w", id, err)
	}
	if !ok {
		return "", agentOf{}, nil
	}
	if isAgentEvent(ev) {
		return "", agentOfEvent(ev), nil
	}
	return ev.ParentID, agentOf{}, nil
}

// isAgentEvent reports whether a recorded event was made from an agent span, which Convert
// keeps as a custom event naming its convention in the metadata.
func isAgentEvent(ev *event.Event) bool {
	if ev.Kind != event.KindCustom || len(ev.Metadata) == 0 {
		return false
	}
	var md struct {
		Op     string `json:"gen_ai.operation.name"`
		OIKind string `json:"openinference.span.kind"`
	}
	if json.Unmarshal(ev.Metadata, &md) != nil {
		return false
	}
	return md.Op == "invoke_agent" || md.OIKind == "AGENT"
}

// EntryReader is what FromStore needs of the log's store (store/sqlite's Store has it).
type EntryReader interface {
	EntryByID(ctx context.Context, id string) (store.Entry, error)
}

// FromStore is a Lookup that reads the store. An event whose body no longer parses (a purged
// payload) is no ancestor: the spans below it are still worth recording.
func FromStore(st EntryReader) Lookup {
	return func(ctx context.Context, id string) (*event.Event, bool, error) {
		e, err := st.EntryByID(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil, false, nil
		}
		if err != nil {
			return nil, false, err
		}
		ev, err := event.ParseStored(e.Body)
		if err != nil {
			return nil, false, nil
		}
		return ev, true, nil
	}
}

type attrMap map[string]*commonpb.AnyValue

// layered looks attributes up on the span first and on its resource second: any of a span's
// aliases (enduser.id) wins over the resource's (user.id), since the span is the more specific.
type layered struct{ span, res attrMap }

func (l layered) get(k string) *commonpb.AnyValue {
	if v := l.span[k]; v != nil {
		return v
	}
	return l.res[k]
}

func (l layered) str(keys ...string) string {
	if s := l.span.str(keys...); s != "" {
		return s
	}
	return l.res.str(keys...)
}

func (l layered) int(keys ...string) int64 {
	if n := l.span.int(keys...); n != 0 {
		return n
	}
	return l.res.int(keys...)
}

func attrs(kvs []*commonpb.KeyValue) attrMap {
	m := make(attrMap, len(kvs))
	for _, kv := range kvs {
		m[kv.GetKey()] = kv.GetValue()
	}
	return m
}

// str returns the first of keys that is set, as a string.
func (a attrMap) str(keys ...string) string {
	for _, k := range keys {
		if v, ok := a[k]; ok && v != nil {
			if s := anyString(v); s != "" {
				return s
			}
		}
	}
	return ""
}

func (a attrMap) int(keys ...string) int64 {
	for _, k := range keys {
		if v, ok := a[k]; ok && v != nil {
			switch x := v.GetValue().(type) {
			case *commonpb.AnyValue_IntValue:
				return x.IntValue
			case *commonpb.AnyValue_DoubleValue:
				return int64(x.DoubleValue)
			case *commonpb.AnyValue_StringValue:
				if n, err := strconv.ParseInt(x.StringValue, 10, 64); err == nil {
					return n
				}
			}
		}
	}
	return 0
}

func anyString(v *commonpb.AnyValue) string {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return strconv.FormatInt(x.IntValue, 10)
	case *commonpb.AnyValue_DoubleValue:
		return strconv.FormatFloat(x.DoubleValue, 'g', -1, 64)
	case *commonpb.AnyValue_BoolValue:
		return strconv.FormatBool(x.BoolValue)
	case *commonpb.AnyValue_ArrayValue, *commonpb.AnyValue_KvlistValue:
		b, _ := json.Marshal(anyJSON(v))
		return string(b)
	}
	return ""
}

// anyJSON converts an attribute value to plain JSON values.
func anyJSON(v *commonpb.AnyValue) any {
	switch x := v.GetValue().(type) {
	case *commonpb.AnyValue_StringValue:
		return x.StringValue
	case *commonpb.AnyValue_IntValue:
		return x.IntValue
	case *commonpb.AnyValue_DoubleValue:
		return x.DoubleValue
	case *commonpb.AnyValue_BoolValue:
		return x.BoolValue
	case *commonpb.AnyValue_ArrayValue:
		var out []any
		for _, e := range x.ArrayValue.GetValues() {
			out = append(out, anyJSON(e))
		}
		return out
	case *commonpb.AnyValue_KvlistValue:
		out := map[string]any{}
		for _, kv := range x.KvlistValue.GetValues() {
			out[kv.GetKey()] = anyJSON(kv.GetValue())
		}
		return out
	case *commonpb.AnyValue_BytesValue:
		return base64.StdEncoding.EncodeToString(x.BytesValue)
	}
	return nil
}

// jsonOrString returns s as raw JSON when it is JSON (tool arguments usually are), else as a
// JSON string.
func jsonOrString(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	if t := strings.TrimSpace(s); (strings.HasPrefix(t, "{") || strings.HasPrefix(t, "[")) && json.Valid([]byte(t)) {
		return json.RawMessage(t)
	}
	b, _ := json.Marshal(s)
	return b
}

// EventID is the id of the event made from a span.
func EventID(traceID, spanID []byte) string {
	return "otel-" + hex.EncodeToString(traceID) + "-" + hex.EncodeToString(spanID)
}

func toNode(sp *tracepb.Span, res attrMap) (*node, error) {
	if len(sp.GetTraceId()) != 16 || len(sp.GetSpanId()) != 8 {
		return nil, fmt.Errorf("%w: span %q: trace id must be 16 bytes and span id 8", ErrMalformed, sp.GetName())
	}
	a := layered{span: attrs(sp.GetAttributes()), res: res}
	ev := &event.Event{ID: EventID(sp.GetTraceId(), sp.GetSpanId()), Kind: event.KindCustom}
	if start := sp.GetStartTimeUnixNano(); start > 0 {
		ev.Time = time.Unix(0, int64(start)).UTC()
	}
	var dur float64
	if s, e := sp.GetStartTimeUnixNano(), sp.GetEndTimeUnixNano(); e > s && s > 0 {
		dur = float64(e-s) / 1e6
	}
	switch p := sp.GetParentSpanId(); len(p) {
	case 0:
	case 8:
		ev.ParentID = EventID(sp.GetTraceId(), p)
	default:
		return nil, fmt.Errorf("%w: span %q: parent span id must be 8 bytes, not %d", ErrMalformed, sp.GetName(), len(p))
	}
	op := a.str("gen_ai.operation.name")
	oiKind := strings.ToUpper(a.str("openinference.span.kind"))
	switch {
	case op == "chat" || op == "text_completion" || op == "generate_content" || oiKind == "LLM":
		ev.Kind = event.KindLLMCall
		ev.LatencyMS = dur
	case op == "execute_tool" || oiKind == "TOOL":
		ev.Kind = event.KindToolCall
		ev.DurationMS = dur
	}
	ev.SessionID = a.str("gen_ai.conversation.id", "session.id")
	ev.UserID = a.str("user.id", "enduser.id")
	// The agent: gen_ai.agent.* (OpenInference: agent.name). Without an id the name identifies
	// it, and without either the service does.
	ev.AgentName = a.str("gen_ai.agent.name", "agent.name")
	ev.AgentID = a.str("gen_ai.agent.id", "gen_ai.agent.name", "agent.name", "service.name")
	ev.AgentVersion = a.str("gen_ai.agent.version", "service.version")
	// model is the model asked for; response_model the one that answered. When only the answering
	// model is known it is the model too, so filters and statistics by model still find the call.
	ev.Model = a.str("gen_ai.request.model", "llm.model_name")
	ev.ResponseModel = a.str("gen_ai.response.model")
	if ev.Model == "" {
		ev.Model = ev.ResponseModel
	}
	ev.ResponseID = a.str("gen_ai.response.id")
	ev.Provider = a.str("gen_ai.provider.name", "gen_ai.system", "llm.provider")
	ev.InputTokens = a.int("gen_ai.usage.input_tokens", "llm.token_count.prompt")
	ev.OutputTokens = a.int("gen_ai.usage.output_tokens", "llm.token_count.completion")
	ev.InputMessages = jsonOrString(a.str("gen_ai.input.messages", "llm.input_messages", "input.value"))
	// Metadata: the span's name (to find the span in a tracing backend), the output messages, and
	// for a custom event the convention that named it.
	md := map[string]any{"span_name": sp.GetName()}
	if out := a.str("gen_ai.output.messages", "llm.output_messages"); out != "" {
		md["output_messages"] = json.RawMessage(jsonOrString(out))
	}
	ev.StopReason = finishReasons(a.get("gen_ai.response.finish_reasons"))
	n := &node{ev: ev, agent: op == "invoke_agent" || oiKind == "AGENT",
		ownID: a.span.str("gen_ai.agent.id"), ownName: a.span.str("gen_ai.agent.name", "agent.name"), ownVersion: a.span.str("gen_ai.agent.version")}
	switch ev.Kind {
	case event.KindToolCall:
		ev.ToolName = a.str("gen_ai.tool.name", "tool.name")
		if ev.ToolName == "" {
			ev.ToolName = sp.GetName()
		}
		ev.ToolCallID = a.str("gen_ai.tool.call.id", "tool_call.id")
		ev.ToolType = a.str("gen_ai.tool.type")
		ev.Arguments = jsonOrString(a.str("gen_ai.tool.call.arguments", "tool.parameters", "input.value"))
		ev.Result = jsonOrString(a.str("gen_ai.tool.call.result", "output.value"))
		ev.InputMessages = nil
	case event.KindLLMCall:
		if v := a.str("output.value"); v != "" && md["output_messages"] == nil {
			ev.OutputText = v
		}
	case event.KindCustom:
		if op != "" {
			md["gen_ai.operation.name"] = op
		}
		if oiKind != "" {
			md["openinference.span.kind"] = oiKind
		}
	}
	ev.Metadata = mustObject(md)
	// Failure, per the conventions' Recording Errors: status ERROR, or error.type on a span whose
	// status was left unset (an explicit OK is the application's last word). A model or tool call
	// that did not fail succeeded; other spans say nothing of success.
	code := sp.GetStatus().GetCode()
	errType := a.str("error.type")
	switch {
	case code == tracepb.Status_STATUS_CODE_ERROR || code == tracepb.Status_STATUS_CODE_UNSET && errType != "":
		ev.Outcome, ev.ErrorType = event.OutcomeError, errType
		if code == tracepb.Status_STATUS_CODE_ERROR {
			ev.Error = sp.GetStatus().GetMessage()
			if ev.Error == "" {
				ev.Error = "span status ERROR"
			}
		}
		if ev.Kind == event.KindToolCall {
			ev.Success = event.Bool(false)
		}
	case ev.Kind == event.KindToolCall:
		ev.Success, ev.Outcome = event.Bool(true), event.OutcomeSuccess
	case ev.Kind == event.KindLLMCall:
		ev.Outcome = event.OutcomeSuccess
	}
	return n, nil
}

// finishReasons is gen_ai.response.finish_reasons (a string array, one reason per choice) as one
// stop reason: the reasons joined with commas. A plain string, or one holding a JSON array, is
// read the same way.
func finishReasons(v *commonpb.AnyValue) string {
	if v == nil {
		return ""
	}
	var reasons []string
	if arr, ok := v.GetValue().(*commonpb.AnyValue_ArrayValue); ok {
		for _, e := range arr.ArrayValue.GetValues() {
			if s := anyString(e); s != "" {
				reasons = append(reasons, s)
			}
		}
		return strings.Join(reasons, ",")
	}
	s := anyString(v)
	if json.Unmarshal([]byte(s), &reasons) == nil {
		return strings.Join(reasons, ",")
	}
	return strings.Trim(s, `[]"`)
}

func mustObject(m map[string]any) json.RawMessage {
	b, _ := json.Marshal(m)
	return b
}

// Response is the OTLP answer: partial success when some spans were rejected.
func Response(rejected int, msg string) *collectorpb.ExportTraceServiceResponse {
	resp := &collectorpb.ExportTraceServiceResponse{}
	if rejected > 0 {
		resp.PartialSuccess = &collectorpb.ExportTracePartialSuccess{RejectedSpans: int64(rejected), ErrorMessage: msg}
	}
	return resp
}
