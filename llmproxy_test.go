package agentaudit_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go"
	aoption "github.com/anthropics/anthropic-sdk-go/option"
	"github.com/openai/openai-go"
	ooption "github.com/openai/openai-go/option"
	"github.com/openai/openai-go/responses"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/heldsink"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/llmproxy"
)

// driveModels makes the same six calls with the official Anthropic and OpenAI clients:
// Messages, Chat Completions and Responses, each streamed and not.
func driveModels(t *testing.T, ctx context.Context, ant anthropic.Client, oai openai.Client) {
	t.Helper()
	msg := func(text string) anthropic.MessageNewParams {
		return anthropic.MessageNewParams{Model: "claude-opus-4-6", MaxTokens: 1024, Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(text))}}
	}
	stream := ant.Messages.NewStreaming(ctx, msg("cancel my order"))
	var acc anthropic.Message
	for stream.Next() {
		acc.Accumulate(stream.Current())
	}
	if err := stream.Err(); err != nil || len(acc.Content) != 2 {
		t.Fatalf("anthropic stream: %v %+v", err, acc.Content)
	}
	if _, err := ant.Messages.New(ctx, msg("where is my order")); err != nil {
		t.Fatal(err)
	}
	cs := oai.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("where is ORD-456")},
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)}})
	for cs.Next() {
	}
	if err := cs.Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := oai.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{Model: "gpt-4o", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("status?")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := oai.Responses.New(ctx, responses.ResponseNewParams{Model: "gpt-4.1", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("order ORD-9")}}); err != nil {
		t.Fatal(err)
	}
	rs := oai.Responses.NewStreaming(ctx, responses.ResponseNewParams{Model: "gpt-4.1", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("status of ORD-7")}})
	for rs.Next() {
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
}

// comparable is an llm_call event without what differs between two runs of the same call.
func comparable(ev *event.Event) string {
	c := *ev
	c.ID, c.SessionID, c.Time, c.RecordedAt, c.LatencyMS, c.Metadata, c.UserAgent, c.Step, c.ParentID = "", "", c.Time.AddDate(-3000, 0, 0), c.RecordedAt.AddDate(-3000, 0, 0), 0, nil, "", 0, ""
	b, _ := json.Marshal(c)
	return string(b)
}

// TestLLMProxyRecordsAsTheTransport: the official clients call the model through the LLM proxy
// (only their base URL changed, attribution in headers); the events recorded are the ones the
// SDK's transport records for the same calls made directly. Attribution headers do not reach the
// upstream; the API key does, and never reaches the disk. In both modes: in Async the transport
// records a non-streamed call once its answer has been read, in Sync before it hands it on.
func TestLLMProxyRecordsAsTheTransport(t *testing.T) {
	for _, mode := range []agentaudit.Mode{agentaudit.Sync, agentaudit.Async} {
		t.Run(mode.String(), func(t *testing.T) { testLLMProxyRecordsAsTheTransport(t, mode) })
	}
}

func testLLMProxyRecordsAsTheTransport(t *testing.T, mode agentaudit.Mode) {
	var leaked []string
	model := modelServer(t)
	defer model.Close()
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for h := range r.Header {
			if strings.HasPrefix(strings.ToLower(h), "x-agentaudit") {
				leaked = append(leaked, h)
			}
		}
		if !strings.Contains(r.Header.Get("Authorization")+r.Header.Get("X-Api-Key"), secretKey) {
			leaked = append(leaked, "no API key upstream")
		}
		model.Config.Handler.ServeHTTP(w, r)
	}))
	defer upstream.Close()

	dir := t.TempDir()
	rec, err := openEmbedded(dir, ledger.Options{}, agentaudit.WithMode(mode))
	if err != nil {
		t.Fatal(err)
	}
	// Directly, through the SDK transport.
	ctx, _, _ := rec.StartSession(context.Background(), agentaudit.SessionInfo{ID: "direct", UserID: "usr_1", AgentID: "py-agent"})
	driveModels(t, ctx,
		anthropic.NewClient(aoption.WithBaseURL(upstream.URL), aoption.WithAPIKey(secretKey), aoption.WithHTTPClient(rec.HTTPClient()), aoption.WithMaxRetries(0)),
		openai.NewClient(ooption.WithBaseURL(upstream.URL+"/v1"), ooption.WithAPIKey(secretKey), ooption.WithHTTPClient(rec.HTTPClient()), ooption.WithMaxRetries(0)))

	// Through the proxy, as an agent in another language would: only the base URL changes.
	p, err := llmproxy.New(llmproxy.Config{Recorder: rec, Upstream: upstream.URL})
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(p)
	defer proxy.Close()
	hdr := []struct{ k, v string }{{llmproxy.HeaderSession, "proxied"}, {llmproxy.HeaderUser, "usr_1"}, {llmproxy.HeaderAgent, "py-agent"}}
	aopts := []aoption.RequestOption{aoption.WithBaseURL(proxy.URL), aoption.WithAPIKey(secretKey), aoption.WithMaxRetries(0)}
	oopts := []ooption.RequestOption{ooption.WithBaseURL(proxy.URL + "/v1"), ooption.WithAPIKey(secretKey), ooption.WithMaxRetries(0)}
	for _, h := range hdr {
		aopts = append(aopts, aoption.WithHeader(h.k, h.v))
		oopts = append(oopts, ooption.WithHeader(h.k, h.v))
	}
	driveModels(t, context.Background(), anthropic.NewClient(aopts...), openai.NewClient(oopts...))
	proxy.Close() // waits for the handlers, which record an async answer after sending it
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if len(leaked) > 0 {
		t.Errorf("upstream saw: %q", leaked)
	}

	calls := func(session string) []*event.Event {
		var out []*event.Event
		for _, r := range trail(t, dir, session) {
			if r.Event.Kind == event.KindLLMCall {
				out = append(out, r.Event)
			}
		}
		return out
	}
	direct, proxied := calls("direct"), calls("proxied")
	if len(direct) != 6 || len(proxied) != 6 {
		t.Fatalf("%d direct and %d proxied llm_call events, want 6 each", len(direct), len(proxied))
	}
	for i := range direct {
		if a, b := comparable(direct[i]), comparable(proxied[i]); a != b {
			t.Errorf("call %d differs:\ndirect  %s\nproxied %s", i+1, a, b)
		}
	}
	if s := trail(t, dir, "proxied")[0].Event; s.Kind != event.KindSessionStart || s.UserID != "usr_1" || s.AgentID != "py-agent" {
		t.Errorf("proxied session start: %+v", s)
	}
	filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if b, _ := os.ReadFile(p); strings.Contains(string(b), secretKey) {
				t.Errorf("the API key is in %s", p)
			}
		}
		return nil
	})
}

// TestLLMProxyAnswerAndRecording: in Async mode the agent has the whole answer of a non-streamed
// call while its recording is still held; in Sync mode it has nothing until the recording is
// done. Either way the call is recorded once, with the answer's content.
func TestLLMProxyAnswerAndRecording(t *testing.T) {
	model := modelServer(t)
	defer model.Close()
	for _, tc := range []struct {
		mode          agentaudit.Mode
		answerWaiting bool // the answer waits for the recording
	}{{agentaudit.Async, false}, {agentaudit.Sync, true}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			sink := heldsink.New(nil)
			release := sink.Release
			rec, err := agentaudit.New(sink, agentaudit.WithMode(tc.mode))
			if err != nil {
				t.Fatal(err)
			}
			p, err := llmproxy.New(llmproxy.Config{Recorder: rec, Upstream: model.URL})
			if err != nil {
				t.Fatal(err)
			}
			proxy := httptest.NewServer(p)
			defer proxy.Close()
			defer release()
			answer := make(chan string, 1)
			go func() {
				resp, err := http.Post(proxy.URL+"/v1/messages", "application/json",
					strings.NewReader(`{"model":"claude-opus-4-6","max_tokens":64,"messages":[{"role":"user","content":"where is my order"}]}`))
				if err != nil {
					answer <- "error: " + err.Error()
					return
				}
				b, err := io.ReadAll(resp.Body)
				resp.Body.Close()
				if err != nil {
					answer <- "error: " + err.Error()
					return
				}
				answer <- string(b)
			}()
			var got string
			if tc.answerWaiting {
				select {
				case got = <-answer:
					t.Fatalf("the answer arrived before its recording: %s", got)
				case <-time.After(300 * time.Millisecond):
				}
				release()
				got = <-answer
			} else {
				select {
				case got = <-answer:
				case <-time.After(10 * time.Second):
					t.Fatal("the answer waited for its recording")
				}
				release()
			}
			if !strings.Contains(got, `"type":"message"`) {
				t.Errorf("answer %q; want the model's message", got)
			}
			proxy.Close() // waits for the handler, which records after the answer in async mode
			if err := rec.Close(); err != nil {
				t.Fatal(err)
			}
			if got := sink.Events(); len(got) != 1 || got[0].Kind != event.KindLLMCall || got[0].OutputText == "" || got[0].Model == "" {
				t.Fatalf("recorded %d events (%+v); want the one llm_call with its model and output", len(got), got)
			}
		})
	}
}
