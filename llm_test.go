package agentaudit_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go"
	ooption "github.com/openai/openai-go/option"
	"github.com/openai/openai-go/responses"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
)

const secretKey = "sk-test-SECRET-do-not-log-123456"

// modelServer answers like the Anthropic and OpenAI APIs, from scripts keyed by the first user
// message, so the official clients run unmodified against it.
func modelServer(t *testing.T) *httptest.Server {
	sse := func(w http.ResponseWriter, events ...string) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(200)
		for _, e := range events {
			fmt.Fprint(w, e)
			w.(http.Flusher).Flush()
		}
	}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		req := string(raw)
		stream := strings.Contains(req, `"stream":true`)
		switch {
		case r.URL.Path == "/v1/messages" && strings.Contains(req, "overloaded"):
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(529)
			fmt.Fprint(w, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`)
		case r.URL.Path == "/v1/messages" && strings.Contains(req, "fail mid-stream"):
			sse(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-opus-4-6\",\"content\":[],\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n",
				"event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"Internal server error\"}}\n\n")
		case r.URL.Path == "/v1/messages" && strings.Contains(req, "drop"):
			sse(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-opus-4-6\",\"content\":[],\"usage\":{\"input_tokens\":7,\"output_tokens\":1}}}\n\n")
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		case r.URL.Path == "/v1/messages" && stream:
			sse(w,
				"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-opus-4-6\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":812,\"output_tokens\":1}}}\n\n",
				"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Let me \"}}\n\n",
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"check.\"}}\n\n",
				"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
				"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"toolu_01\",\"name\":\"get_order\",\"input\":{}}}\n\n",
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"order_\"}}\n\n",
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"id\\\": \\\"ORD-456\\\"}\"}}\n\n",
				"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":64}}\n\n",
				"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
		case r.URL.Path == "/v1/messages":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"msg_2","type":"message","role":"assistant","model":"claude-opus-4-6","content":[{"type":"text","text":"Looking it up."},{"type":"tool_use","id":"toolu_02","name":"get_order","input":{"order_id":"ORD-456"}}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":100,"output_tokens":20}}`)
		case r.URL.Path == "/v1/chat/completions" && stream:
			sse(w,
				"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_order\",\"arguments\":\"\"}}]},\"finish_reason\":null}]}\n\n",
				"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"order_id\\\":\"}}]},\"finish_reason\":null}]}\n\n",
				"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"ORD-456\\\"}\"}}]},\"finish_reason\":null}]}\n\n",
				"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}\n\n",
				"data: {\"id\":\"c1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[],\"usage\":{\"prompt_tokens\":50,\"completion_tokens\":12,\"total_tokens\":62}}\n\n",
				"data: [DONE]\n\n")
		case r.URL.Path == "/v1/chat/completions":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"c2","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Your order shipped."},"finish_reason":"stop"}],"usage":{"prompt_tokens":30,"completion_tokens":5,"total_tokens":35}}`)
		case r.URL.Path == "/v1/responses" && stream:
			sse(w,
				"event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_2\",\"object\":\"response\",\"created_at\":1,\"status\":\"in_progress\",\"model\":\"gpt-4.1\",\"output\":[]}}\n\n",
				"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"item_id\":\"m1\",\"output_index\":0,\"content_index\":0,\"delta\":\"Order \"}\n\n",
				"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":2,\"item_id\":\"m1\",\"output_index\":0,\"content_index\":0,\"delta\":\"shipped.\"}\n\n",
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":3,\"response\":{\"id\":\"resp_2\",\"object\":\"response\",\"created_at\":1,\"status\":\"completed\",\"model\":\"gpt-4.1\",\"output\":[{\"type\":\"message\",\"id\":\"m1\",\"role\":\"assistant\",\"status\":\"completed\",\"content\":[{\"type\":\"output_text\",\"text\":\"Order shipped.\",\"annotations\":[]}]}],\"usage\":{\"input_tokens\":9,\"output_tokens\":3,\"total_tokens\":12}}}\n\n")
		case r.URL.Path == "/v1/responses":
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprint(w, `{"id":"resp_1","object":"response","created_at":1,"status":"completed","model":"gpt-4.1","output":[{"type":"function_call","id":"fc_1","call_id":"call_9","name":"get_order","arguments":"{\"order_id\":\"ORD-9\"}","status":"completed"},{"type":"message","id":"m1","role":"assistant","status":"completed","content":[{"type":"output_text","text":"Checking.","annotations":[]}]}],"usage":{"input_tokens":11,"output_tokens":4,"total_tokens":15}}`)
		default:
			http.NotFound(w, r)
		}
	}))
}

func TestTransportWithOfficialClients(t *testing.T) {
	srv := modelServer(t)
	defer srv.Close()
	dir := t.TempDir()
	rec, err := openEmbedded(dir, ledger.Options{}, agentaudit.WithMode(agentaudit.Sync))
	if err != nil {
		t.Fatal(err)
	}
	ctx, _, _ := rec.StartSession(context.Background(), agentaudit.SessionInfo{ID: "llm", UserID: "usr_1", AgentID: "support-v1"})
	ant := anthropic.NewClient(aoption.WithBaseURL(srv.URL), aoption.WithAPIKey(secretKey), aoption.WithHTTPClient(rec.HTTPClient()), aoption.WithMaxRetries(0))
	oai := openai.NewClient(ooption.WithBaseURL(srv.URL+"/v1"), ooption.WithAPIKey(secretKey), ooption.WithHTTPClient(rec.HTTPClient()), ooption.WithMaxRetries(0))
	msg := func(text string) anthropic.MessageNewParams {
		return anthropic.MessageNewParams{Model: "claude-opus-4-6", MaxTokens: 1024, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))}}
	}

	// 1. Anthropic, streamed with tool use: the caller sees every event.
	stream := ant.Messages.NewStreaming(ctx, msg("cancel my order"))
	var acc anthropic.Message
	for stream.Next() {
		if err := acc.Accumulate(stream.Current()); err != nil {
			t.Fatal(err)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if len(acc.Content) != 2 || acc.Content[1].Name != "get_order" {
		t.Fatalf("the client got %+v", acc.Content)
	}
	// 2. Anthropic, not streamed.
	if _, err := ant.Messages.New(ctx, msg("where is my order")); err != nil {
		t.Fatal(err)
	}
	// 3. Anthropic, HTTP 529.
	if _, err := ant.Messages.New(ctx, msg("overloaded")); err == nil {
		t.Fatal("529 did not reach the client")
	}
	// 4. Anthropic, an error event inside a 200 stream.
	s2 := ant.Messages.NewStreaming(ctx, msg("fail mid-stream"))
	for s2.Next() {
	}
	if s2.Err() == nil {
		t.Fatal("the stream error did not reach the client")
	}
	// 5. Anthropic, connection dropped mid-stream.
	s3 := ant.Messages.NewStreaming(ctx, msg("drop"))
	for s3.Next() {
	}
	s3.Close()
	// 6. OpenAI chat, streamed with tool calls and include_usage.
	cs := oai.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("where is ORD-456")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	var chatAcc openai.ChatCompletionAccumulator
	for cs.Next() {
		chatAcc.AddChunk(cs.Current())
	}
	if err := cs.Err(); err != nil {
		t.Fatal(err)
	}
	// 7. OpenAI chat, not streamed.
	if _, err := oai.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("status?")}}); err != nil {
		t.Fatal(err)
	}
	// 8. OpenAI Responses.
	if _, err := oai.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4.1", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("order ORD-9")}}); err != nil {
		t.Fatal(err)
	}
	// 9. OpenAI Responses, streamed.
	rs := oai.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "gpt-4.1", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("status of ORD-7")}})
	var streamed string
	for rs.Next() {
		if ev := rs.Current(); ev.Type == "response.output_text.delta" {
			streamed += ev.Delta.OfString
		}
	}
	if err := rs.Err(); err != nil || streamed != "Order shipped." {
		t.Fatalf("responses stream: %q %v", streamed, err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}

	recs := trail(t, dir, "llm")
	var calls []*event.Event
	for _, r := range recs {
		if r.Event.Kind == event.KindLLMCall {
			calls = append(calls, r.Event)
		}
	}
	if len(calls) != 9 {
		for _, c := range calls {
			t.Logf("%s %q %q", c.StopReason, c.OutputText, c.Error)
		}
		t.Fatalf("%d llm_call events, want 9", len(calls))
	}
	check := func(i int, cond bool, what string) {
		t.Helper()
		if !cond {
			t.Errorf("call %d: %s: %+v", i+1, what, calls[i])
		}
	}
	c := calls[0]
	check(0, c.OutputText == "Let me check." && c.StopReason == "tool_use" && c.InputTokens == 812 && c.OutputTokens == 64, "streamed text, stop reason, cumulative usage")
	check(0, strings.Contains(string(c.ToolCallsRequested), `"id":"toolu_01"`) && strings.Contains(string(c.ToolCallsRequested), `"input":{"order_id":"ORD-456"}`), "tool_use joined from deltas")
	check(0, strings.Contains(string(c.Metadata), "time_to_first_token_ms") && strings.Contains(string(c.Metadata), `"stream":true`), "time to first token")
	check(0, strings.Contains(string(c.InputMessages), "cancel my order"), "input messages")
	check(1, calls[1].OutputText == "Looking it up." && strings.Contains(string(calls[1].ToolCallsRequested), "toolu_02") && calls[1].InputTokens == 100, "non-streamed")
	check(2, calls[2].Outcome == event.OutcomeError && strings.Contains(calls[2].Error, "HTTP 529: Overloaded"), "non-2xx")
	check(3, calls[3].Outcome == event.OutcomeError && calls[3].Error == "Internal server error" && calls[3].ErrorType == "api_error", "error inside a 200 stream")
	check(4, calls[4].Outcome == event.OutcomeError && calls[4].Error != "", "dropped connection")
	check(5, strings.Contains(string(calls[5].ToolCallsRequested), `"input":{"order_id":"ORD-456"}`) && calls[5].StopReason == "tool_calls" && calls[5].InputTokens == 50 && calls[5].OutputTokens == 12, "OpenAI stream with tool calls and usage")
	check(6, calls[6].OutputText == "Your order shipped." && calls[6].OutputTokens == 5, "OpenAI chat")
	check(7, calls[7].OutputText == "Checking." && strings.Contains(string(calls[7].ToolCallsRequested), "call_9") && calls[7].InputTokens == 11, "OpenAI responses")
	check(8, calls[8].OutputText == "Order shipped." && calls[8].OutputTokens == 3 && calls[8].StopReason == "completed" && strings.Contains(string(calls[8].Metadata), "time_to_first_token_ms"), "OpenAI responses, streamed")

	// The API key never reaches the disk.
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), secretKey) {
				t.Errorf("the API key is in %s", p)
			}
		}
		return nil
	})
}
