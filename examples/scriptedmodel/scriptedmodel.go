// Package scriptedmodel is a local stand-in for the Anthropic Messages API that answers from a
// script, so the example agents run with the official client, offline and without a key. Each
// conversation advances one step per request: step N answers with Script[N], where N counts the
// assistant turns already in the request's messages.
package scriptedmodel

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
)

// Block is one content block of a scripted answer: text, or a tool_use.
type Block struct {
	Text     string
	ToolID   string
	ToolName string
	Input    any
}

// Turn is one scripted answer.
type Turn struct {
	Blocks       []Block
	InputTokens  int
	OutputTokens int
}

// Server serves scripts keyed by a phrase of the first user message.
type Server struct {
	URL     string
	scripts map[string][]Turn
	srv     *http.Server
	ln      net.Listener
}

// Start listens on a loopback port and serves the scripts.
func Start(scripts map[string][]Turn) (*Server, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{URL: "http://" + ln.Addr().String(), scripts: scripts, ln: ln}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serve)}
	go s.srv.Serve(ln)
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

type request struct {
	Model    string `json:"model"`
	Stream   bool   `json:"stream"`
	Messages []struct {
		Role    string          `json:"role"`
		Content json.RawMessage `json:"content"`
	} `json:"messages"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v1/messages" || r.Method != http.MethodPost {
		http.Error(w, `{"type":"error","error":{"type":"not_found_error","message":"not found"}}`, http.StatusNotFound)
		return
	}
	var req request
	body, _ := io.ReadAll(io.LimitReader(r.Body, 8<<20))
	if err := json.Unmarshal(body, &req); err != nil || len(req.Messages) == 0 {
		http.Error(w, `{"type":"error","error":{"type":"invalid_request_error","message":"bad request"}}`, http.StatusBadRequest)
		return
	}
	var script []Turn
	for phrase, sc := range s.scripts {
		if strings.Contains(string(req.Messages[0].Content), phrase) {
			script = sc
		}
	}
	step := 0
	for _, m := range req.Messages {
		if m.Role == "assistant" {
			step++
		}
	}
	if script == nil || step >= len(script) {
		http.Error(w, `{"type":"error","error":{"type":"invalid_request_error","message":"no scripted answer"}}`, http.StatusBadRequest)
		return
	}
	turn := script[step]
	var content []map[string]any
	stop := "end_turn"
	for _, b := range turn.Blocks {
		if b.ToolName != "" {
			content = append(content, map[string]any{"type": "tool_use", "id": b.ToolID, "name": b.ToolName, "input": b.Input})
			stop = "tool_use"
		} else {
			content = append(content, map[string]any{"type": "text", "text": b.Text})
		}
	}
	msg := map[string]any{"id": fmt.Sprintf("msg_%d", step), "type": "message", "role": "assistant", "model": req.Model,
		"content": content, "stop_reason": stop, "stop_sequence": nil,
		"usage": map[string]any{"input_tokens": turn.InputTokens, "output_tokens": turn.OutputTokens}}
	if !req.Stream {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(msg)
		return
	}
	w.Header().Set("Content-Type", "text/event-stream")
	send := func(name string, v any) {
		data, _ := json.Marshal(v)
		fmt.Fprintf(w, "event: %s\ndata: %s\n\n", name, data)
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	start := map[string]any{}
	for k, v := range msg {
		start[k] = v
	}
	start["content"], start["stop_reason"] = []any{}, nil
	start["usage"] = map[string]any{"input_tokens": turn.InputTokens, "output_tokens": 1}
	send("message_start", map[string]any{"type": "message_start", "message": start})
	for i, c := range content {
		if c["type"] == "text" {
			send("content_block_start", map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]any{"type": "text", "text": ""}})
			for _, word := range strings.SplitAfter(c["text"].(string), " ") {
				send("content_block_delta", map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]any{"type": "text_delta", "text": word}})
			}
		} else {
			send("content_block_start", map[string]any{"type": "content_block_start", "index": i, "content_block": map[string]any{"type": "tool_use", "id": c["id"], "name": c["name"], "input": map[string]any{}}})
			in, _ := json.Marshal(c["input"])
			half := len(in) / 2
			send("content_block_delta", map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]any{"type": "input_json_delta", "partial_json": string(in[:half])}})
			send("content_block_delta", map[string]any{"type": "content_block_delta", "index": i, "delta": map[string]any{"type": "input_json_delta", "partial_json": string(in[half:])}})
		}
		send("content_block_stop", map[string]any{"type": "content_block_stop", "index": i})
	}
	send("message_delta", map[string]any{"type": "message_delta", "delta": map[string]any{"stop_reason": stop, "stop_sequence": nil}, "usage": map[string]any{"output_tokens": turn.OutputTokens}})
	send("message_stop", map[string]any{"type": "message_stop"})
}
