package agentaudit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/proxyhttp"
)

// MaxLLMBodyBytes bounds how much of a request or non-streamed response the transport reads to
// record it; larger bodies pass through unrecorded beyond the limit (the event says so).
const MaxLLMBodyBytes = 16 << 20

// Transport is an http.RoundTripper that records the LLM calls made through any HTTP client:
// Anthropic Messages (/v1/messages) and OpenAI Chat Completions (/v1/chat/completions) and
// Responses (/v1/responses), streamed or not. Other requests pass through untouched.
//
// Streams (SSE) reach the caller unbuffered while the transport reassembles the text, the tool
// calls (joining their JSON arguments from deltas), the stop reason, token usage, latency and time
// to first token; the event is recorded when the stream ends. An error event inside a 200 stream,
// a dropped connection and a non-2xx answer are recorded as errors. Headers are never recorded,
// so API keys and Authorization never reach the log.
//
// The session comes from the request's context (SessionFrom); without one the call is recorded
// with no session.
type Transport struct {
	Recorder *Recorder
	Base     http.RoundTripper // http.DefaultTransport when nil
}

// HTTPClient returns a client whose calls go through a Transport.
func (r *Recorder) HTTPClient() *http.Client { return &http.Client{Transport: &Transport{Recorder: r}} }

type apiKind int

const (
	apiNone apiKind = iota
	apiAnthropic
	apiChat
	apiResponses
)

func apiOf(req *http.Request) apiKind {
	if req.Method != http.MethodPost {
		return apiNone
	}
	switch p := strings.TrimSuffix(req.URL.Path, "/"); {
	case strings.HasSuffix(p, "/v1/messages"):
		return apiAnthropic
	case strings.HasSuffix(p, "/chat/completions"):
		return apiChat
	case strings.HasSuffix(p, "/v1/responses") || strings.HasSuffix(p, "/responses"):
		return apiResponses
	}
	return apiNone
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	api := apiOf(req)
	if api == apiNone || t.Recorder == nil {
		return base.RoundTrip(req)
	}
	call := &llmCall{api: api, start: time.Now()}
	if req.Body != nil {
		body, err := io.ReadAll(io.LimitReader(req.Body, MaxLLMBodyBytes+1))
		req.Body.Close()
		if err != nil {
			return nil, err
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		call.reqBody = body // parsed when recorded: off the way to the upstream and back
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		call.err = fmt.Sprintf("request failed: %v", err)
		t.record(req, call)
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, MaxLLMBodyBytes))
		resp.Body.Close()
		call.end = time.Now()
		call.err = fmt.Sprintf("HTTP %d: %s", resp.StatusCode, apiErrorMessage(body))
		call.errType = fmt.Sprintf("http_%d", resp.StatusCode)
		t.hand(req, resp, body, call)
		return resp, nil
	}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		resp.Body = &streamRecorder{rc: resp.Body, call: call, done: func() { t.record(req, call) }}
		return resp, nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxLLMBodyBytes))
	resp.Body.Close()
	call.end = time.Now()
	if err != nil {
		call.err = fmt.Sprintf("reading the response: %v", err)
	}
	t.hand(req, resp, body, call)
	return resp, nil
}

// hand gives the caller the answer read into body, and records the call: in Sync and FailClosed
// mode first, so the call is committed before the caller has its answer; in Async mode once the
// caller has read the body to its end or closed it, as a stream is recorded, so that the answer
// never waits for its recording (nor for the parsing of the body, which then happens after). A
// caller that neither reads to the end nor closes the body (which net/http requires) leaves the
// call unrecorded.
func (t *Transport) hand(req *http.Request, resp *http.Response, body []byte, c *llmCall) {
	done := func() {
		if c.err == "" {
			c.parseResponse(body)
		}
		t.record(req, c)
	}
	if t.Recorder.cfg.mode != Async {
		done()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return
	}
	resp.Body = proxyhttp.AfterRead(body, done)
}

// record writes the llm_call event. Delivery follows the recorder's mode; a failure goes to the
// error handler, since the caller already has its answer.
func (t *Transport) record(req *http.Request, c *llmCall) {
	if c.end.IsZero() {
		c.end = time.Now()
	}
	c.parseRequest(c.reqBody)
	lc := LLMCall{Model: c.model, InputMessages: c.input, OutputText: c.text.String(), InputTokens: c.inTokens,
		OutputTokens: c.outTokens, Latency: c.end.Sub(c.start), Start: c.start, StopReason: c.stop}
	for _, tc := range c.tools {
		lc.ToolCalls = append(lc.ToolCalls, RequestedTool{ID: tc.id, Name: tc.name, Input: rawOrString(tc.args.String())})
	}
	if c.err != "" {
		lc.Err = errors.New(c.err)
	}
	ctx := context.WithoutCancel(req.Context()) // the call happened: record it even if the caller left
	var err error
	if s := SessionFrom(ctx); s != nil {
		_, err = s.recordLLM(ctx, lc, func(ev *event.Event) { decorate(ev, c) })
	} else {
		err = t.Recorder.Record(ctx, llmEvent(lc, c))
	}
	if err != nil {
		t.Recorder.cfg.onError(fmt.Errorf("agentaudit: LLM call not recorded: %w", err))
	}
}

func rawOrString(s string) any {
	if s == "" {
		return nil
	}
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	return s
}

// llmCall is what the transport learns about one call.
type llmCall struct {
	api                 apiKind
	start               time.Time
	end                 time.Time // the answer was read (non-streamed); zero until then
	reqBody             []byte
	firstToken          time.Duration
	model, stop         string
	input               json.RawMessage
	stream              bool
	text                strings.Builder
	tools               []*toolUse
	inTokens, outTokens int64
	err, errType        string
}

type toolUse struct {
	index    int
	id, name string
	args     strings.Builder
}

func (c *llmCall) tool(index int) *toolUse {
	for _, t := range c.tools {
		if t.index == index {
			return t
		}
	}
	t := &toolUse{index: index}
	c.tools = append(c.tools, t)
	return t
}

func (c *llmCall) token() {
	if c.firstToken == 0 {
		c.firstToken = time.Since(c.start)
	}
}

func (c *llmCall) parseRequest(body []byte) {
	var r struct {
		Model    string          `json:"model"`
		Messages json.RawMessage `json:"messages"`
		Input    json.RawMessage `json:"input"`
		System   json.RawMessage `json:"system"`
		Stream   bool            `json:"stream"`
	}
	if len(body) == 0 || json.Unmarshal(body, &r) != nil {
		return
	}
	if c.model == "" { // the answer's model, when it names one, is the one that answered
		c.model = r.Model
	}
	c.stream = r.Stream
	if len(r.Messages) > 0 {
		c.input = r.Messages
	} else {
		c.input = r.Input
	}
}

func apiErrorMessage(body []byte) string {
	var e struct {
		Error struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
		return e.Error.Message
	}
	if len(body) > 200 {
		body = body[:200]
	}
	return strings.TrimSpace(string(body))
}

// parseResponse reads a non-streamed answer.
func (c *llmCall) parseResponse(body []byte) {
	switch c.api {
	case apiAnthropic:
		var m anthropicMessage
		if json.Unmarshal(body, &m) == nil {
			c.anthropicMessage(&m)
		}
	case apiChat:
		var r struct {
			Model   string `json:"model"`
			Choices []struct {
				Message struct {
					Content   string         `json:"content"`
					ToolCalls []chatToolCall `json:"tool_calls"`
				} `json:"message"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
			Usage chatUsage `json:"usage"`
		}
		if json.Unmarshal(body, &r) != nil {
			return
		}
		if r.Model != "" {
			c.model = r.Model
		}
		if len(r.Choices) > 0 {
			ch := r.Choices[0]
			c.text.WriteString(ch.Message.Content)
			c.stop = ch.FinishReason
			for i, tc := range ch.Message.ToolCalls {
				t := c.tool(i)
				t.id, t.name = tc.ID, tc.Function.Name
				t.args.WriteString(tc.Function.Arguments)
			}
		}
		c.inTokens, c.outTokens = r.Usage.PromptTokens, r.Usage.CompletionTokens
	case apiResponses:
		var r responsesObject
		if json.Unmarshal(body, &r) == nil {
			c.responses(&r)
		}
	}
}

type anthropicMessage struct {
	Model   string `json:"model"`
	Content []struct {
		Type  string          `json:"type"`
		Text  string          `json:"text"`
		ID    string          `json:"id"`
		Name  string          `json:"name"`
		Input json.RawMessage `json:"input"`
	} `json:"content"`
	StopReason string `json:"stop_reason"`
	Usage      struct {
		InputTokens  int64 `json:"input_tokens"`
		OutputTokens int64 `json:"output_tokens"`
	} `json:"usage"`
}

func (c *llmCall) anthropicMessage(m *anthropicMessage) {
	if m.Model != "" {
		c.model = m.Model
	}
	for i, b := range m.Content {
		switch b.Type {
		case "text":
			c.text.WriteString(b.Text)
		case "tool_use":
			t := c.tool(i)
			t.id, t.name = b.ID, b.Name
			t.args.Write(b.Input)
		}
	}
	if m.StopReason != "" {
		c.stop = m.StopReason
	}
	c.inTokens = max(c.inTokens, m.Usage.InputTokens)
	c.outTokens = max(c.outTokens, m.Usage.OutputTokens)
}

type chatToolCall struct {
	Index    int    `json:"index"`
	ID       string `json:"id"`
	Function struct {
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
	} `json:"function"`
}

type chatUsage struct {
	PromptTokens     int64 `json:"prompt_tokens"`
	CompletionTokens int64 `json:"completion_tokens"`
}

type responsesObject struct {
	Model  string `json:"model"`
	Status string `json:"status"`
	Output []struct {
		Type    string `json:"type"`
		CallID  string `json:"call_id"`
		Name    string `json:"name"`
		Args    string `json:"arguments"`
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
	Usage struct {
		InputTokens  int64 `json:"input_tokens"`
		OutputTokens int64 `json:"output_tokens"`
	} `json:"usage"`
	Error *struct {
		Message string `json:"message"`
	} `json:"error"`
}

func (c *llmCall) responses(r *responsesObject) {
	if r.Model != "" {
		c.model = r.Model
	}
	c.text.Reset()
	c.tools = nil
	for i, o := range r.Output {
		switch o.Type {
		case "message":
			for _, p := range o.Content {
				if p.Type == "output_text" {
					c.text.WriteString(p.Text)
				}
			}
		case "function_call":
			t := c.tool(i)
			t.id, t.name = o.CallID, o.Name
			t.args.WriteString(o.Args)
		}
	}
	c.stop = r.Status
	c.inTokens, c.outTokens = r.Usage.InputTokens, r.Usage.OutputTokens
	if r.Error != nil && r.Error.Message != "" {
		c.err = r.Error.Message
	}
}

// streamRecorder passes an SSE body through to the caller unchanged while parsing its events.
type streamRecorder struct {
	rc   io.ReadCloser
	call *llmCall
	done func()
	once sync.Once
	buf  []byte // an incomplete line carried to the next Read
	data []string
	name string
}

func (s *streamRecorder) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	if n > 0 {
		s.feed(p[:n])
	}
	if err == io.EOF {
		s.feed([]byte("\n\n")) // flush a last event without its blank line
		s.finish("")
	} else if err != nil {
		s.finish(fmt.Sprintf("stream interrupted: %v", err))
	}
	return n, err
}

func (s *streamRecorder) Close() error {
	err := s.rc.Close()
	s.finish("stream closed by the caller before it ended")
	return err
}

func (s *streamRecorder) finish(errMsg string) {
	s.once.Do(func() {
		if errMsg != "" && s.call.err == "" && s.call.stop == "" {
			s.call.err = errMsg
		}
		s.done()
	})
}

func (s *streamRecorder) feed(b []byte) {
	s.buf = append(s.buf, b...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		if i < 0 {
			if len(s.buf) > MaxLLMBodyBytes {
				s.buf = s.buf[:0] // a line this long is not an SSE event we can use
			}
			return
		}
		line := strings.TrimSuffix(string(s.buf[:i]), "\r")
		s.buf = s.buf[i+1:]
		switch {
		case line == "":
			if len(s.data) > 0 && s.call.sseEvent(s.name, strings.Join(s.data, "\n")) {
				// The terminal event: record now, as clients often stop reading here.
				s.finish("")
			}
			s.data, s.name = s.data[:0], ""
		case strings.HasPrefix(line, "data:"):
			s.data = append(s.data, strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " "))
		case strings.HasPrefix(line, "event:"):
			s.name = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		}
	}
}

// sseEvent handles one server-sent event of either API and reports whether it ends the stream
// (Anthropic message_stop or error, OpenAI [DONE] or a terminal response event).
func (c *llmCall) sseEvent(name, data string) (terminal bool) {
	if data == "[DONE]" {
		return true
	}
	switch c.api {
	case apiAnthropic:
		var e struct {
			Type         string            `json:"type"`
			Index        int               `json:"index"`
			Message      *anthropicMessage `json:"message"`
			ContentBlock struct {
				Type string `json:"type"`
				ID   string `json:"id"`
				Name string `json:"name"`
				Text string `json:"text"`
			} `json:"content_block"`
			Delta struct {
				Type        string `json:"type"`
				Text        string `json:"text"`
				PartialJSON string `json:"partial_json"`
				StopReason  string `json:"stop_reason"`
			} `json:"delta"`
			Usage struct {
				InputTokens  int64 `json:"input_tokens"`
				OutputTokens int64 `json:"output_tokens"`
			} `json:"usage"`
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(data), &e) != nil {
			return false
		}
		switch e.Type {
		case "message_stop":
			return true
		case "message_start":
			if e.Message != nil {
				c.anthropicMessage(e.Message)
			}
		case "content_block_start":
			if e.ContentBlock.Type == "tool_use" {
				t := c.tool(e.Index)
				t.id, t.name = e.ContentBlock.ID, e.ContentBlock.Name
			}
			c.text.WriteString(e.ContentBlock.Text)
		case "content_block_delta":
			c.token()
			switch e.Delta.Type {
			case "text_delta":
				c.text.WriteString(e.Delta.Text)
			case "input_json_delta":
				c.tool(e.Index).args.WriteString(e.Delta.PartialJSON)
			}
		case "message_delta":
			if e.Delta.StopReason != "" {
				c.stop = e.Delta.StopReason
			}
			// Anthropic's message_delta usage is cumulative.
			c.outTokens = max(c.outTokens, e.Usage.OutputTokens)
			c.inTokens = max(c.inTokens, e.Usage.InputTokens)
		case "error":
			c.err, c.errType = e.Error.Message, e.Error.Type
			return true
		}
	case apiChat:
		var e struct {
			Model   string `json:"model"`
			Choices []struct {
				Delta struct {
					Content   string         `json:"content"`
					ToolCalls []chatToolCall `json:"tool_calls"`
				} `json:"delta"`
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
			Usage *chatUsage `json:"usage"`
			Error *struct {
				Message string `json:"message"`
				Type    string `json:"type"`
			} `json:"error"`
		}
		if json.Unmarshal([]byte(data), &e) != nil {
			return false
		}
		if e.Model != "" {
			c.model = e.Model
		}
		if e.Error != nil {
			c.err, c.errType = e.Error.Message, e.Error.Type
			return true
		}
		for _, ch := range e.Choices {
			if ch.Delta.Content != "" || len(ch.Delta.ToolCalls) > 0 {
				c.token()
			}
			c.text.WriteString(ch.Delta.Content)
			for _, tc := range ch.Delta.ToolCalls {
				t := c.tool(tc.Index)
				if tc.ID != "" {
					t.id = tc.ID
				}
				if tc.Function.Name != "" {
					t.name = tc.Function.Name
				}
				t.args.WriteString(tc.Function.Arguments)
			}
			if ch.FinishReason != "" {
				c.stop = ch.FinishReason
			}
		}
		if e.Usage != nil { // the include_usage chunk
			c.inTokens, c.outTokens = e.Usage.PromptTokens, e.Usage.CompletionTokens
		}
	case apiResponses:
		var e struct {
			Type     string          `json:"type"`
			Delta    string          `json:"delta"`
			Response responsesObject `json:"response"`
			Message  string          `json:"message"`
		}
		if json.Unmarshal([]byte(data), &e) != nil {
			return false
		}
		switch e.Type {
		case "response.output_text.delta":
			c.token()
			c.text.WriteString(e.Delta)
		case "response.function_call_arguments.delta":
			c.token()
		case "response.completed", "response.incomplete", "response.failed":
			c.responses(&e.Response)
			return true
		case "error":
			c.err = e.Message
			return true
		}
	}
	return false
}

func llmEvent(lc LLMCall, c *llmCall) *event.Event {
	ev := &event.Event{Kind: event.KindLLMCall, Model: lc.Model, OutputText: lc.OutputText, InputTokens: lc.InputTokens,
		OutputTokens: lc.OutputTokens, LatencyMS: ms(lc.Latency), StopReason: lc.StopReason}
	ev.InputMessages, _ = marshalPayload(lc.InputMessages)
	if len(lc.ToolCalls) > 0 {
		ev.ToolCallsRequested, _ = json.Marshal(lc.ToolCalls)
	}
	if lc.Err != nil {
		ev.Error, ev.Outcome = lc.Err.Error(), event.OutcomeError
	}
	decorate(ev, c)
	return ev
}

// decorate adds what the transport measured beyond LLMCall's fields.
func decorate(ev *event.Event, c *llmCall) {
	md := map[string]any{"api": [...]string{"", "anthropic.messages", "openai.chat.completions", "openai.responses"}[c.api], "stream": c.stream}
	if c.firstToken > 0 {
		md["time_to_first_token_ms"] = ms(c.firstToken)
	}
	ev.Metadata, _ = json.Marshal(md)
	if c.errType != "" {
		ev.ErrorType = c.errType
	}
}
