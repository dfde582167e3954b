// Package mcpproxy owns the MCP audit proxy: it sits between an MCP host and an MCP server over
// stdio (MCP 2025-06-18, newline-delimited JSON-RPC 2.0), passes every message both ways unchanged,
// and records what the agent did through the server: initialize as session_start (client and
// server names and versions), each tools/call and its answer as one tool_call event (arguments,
// result, isError as failure, duration, the JSON-RPC id as tool_call_id), resources/read and
// prompts/get as access events, errors and cancellations, and session_end when either side
// closes. Tools that match the policy's require_approval patterns are held until a person
// decides (Gate), over stdio and Streamable HTTP alike.
//
// The proxy never rewrites a message it forwards. A line that is not JSON, is too large to
// parse, or is not valid UTF-8 is still forwarded (the other side would have seen it) and
// recorded as an error event; the proxy only parses to record.
package mcpproxy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/event"
)

// DefaultMaxMessageBytes bounds the message the proxy parses to record; a larger one passes
// through unparsed and is recorded as oversized.
const DefaultMaxMessageBytes = 16 << 20

// Config wires a Proxy.
type Config struct {
	Recorder *agentaudit.Recorder
	// UserID and AgentID attribute the session; AgentID defaults to the client's name.
	UserID, AgentID string
	// MaxMessageBytes bounds the messages parsed (DefaultMaxMessageBytes when 0).
	MaxMessageBytes int
	// Gate holds calls to tools that need a person's approval; nil holds none.
	Gate *Gate
	// Logger receives the proxy's own trouble (recording failures); never stdout.
	Logger *slog.Logger
}

// Proxy is one proxied connection: one MCP session.
type Proxy struct {
	cfg Config

	toServer sync.Mutex // serializes writes to the server (held calls are released later)
	toClient sync.Mutex
	srvW     io.Writer
	cliW     io.Writer
	cliGone  atomic.Bool // writing to the client failed: it left; the server's output is still read and recorded

	mu      sync.Mutex
	sess    *agentaudit.Session
	ctx     context.Context
	client  peerInfo
	proto   string
	initID  string
	pending map[string]*call // tools/call requests by JSON-RPC id
	ended   bool

	// Over HTTP in Async mode an answer is handed to the client before it is recorded, so a
	// client may end the session (DELETE) in between. finish waits for those recordings, so that
	// session_end comes after every call the client was answered, recorded with its answer.
	handedOn int           // answers handed on, not yet recorded
	recorded chan struct{} // closed when handedOn falls back to zero
}

// handOn counts an answer handed to the client before its recording; recordedHandedOn, once it
// is recorded.
func (p *Proxy) handOn() {
	p.mu.Lock()
	if p.handedOn == 0 {
		p.recorded = make(chan struct{})
	}
	p.handedOn++
	p.mu.Unlock()
}

func (p *Proxy) recordedHandedOn() {
	p.mu.Lock()
	if p.handedOn--; p.handedOn == 0 {
		close(p.recorded)
	}
	p.mu.Unlock()
}

// handedOnWait bounds finish's wait for answers handed on but not yet recorded, since a recording
// can wait on a write to a client that has stopped reading. A call still waiting then is recorded
// as unanswered, before session_end.
const handedOnWait = 5 * time.Second

type peerInfo struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

type call struct {
	name  string
	args  json.RawMessage
	start time.Time
}

// message is the part of a JSON-RPC 2.0 message the proxy reads.
type message struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// New returns a proxy for one connection.
func New(cfg Config) (*Proxy, error) {
	if cfg.Recorder == nil {
		return nil, errors.New("mcpproxy: a Recorder is required")
	}
	if cfg.MaxMessageBytes < 0 {
		return nil, fmt.Errorf("mcpproxy: MaxMessageBytes is %d; want a positive size, or 0 for the default", cfg.MaxMessageBytes)
	}
	if cfg.MaxMessageBytes == 0 {
		cfg.MaxMessageBytes = DefaultMaxMessageBytes
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Proxy{cfg: cfg, pending: map[string]*call{}, ctx: context.Background()}, nil
}

// Run passes messages from client to server and back until the client closes its side (then the
// server's input is closed and its remaining output still forwarded) and the server's output
// ends. serverIn is closed when the client's input ends.
func (p *Proxy) Run(ctx context.Context, clientIn io.Reader, clientOut io.Writer, serverIn io.WriteCloser, serverOut io.Reader) error {
	err := p.run(clientIn, clientOut, serverIn, serverOut)
	p.finish(ctx, "the MCP server closed its output before answering")
	return err
}

func (p *Proxy) run(clientIn io.Reader, clientOut io.Writer, serverIn io.WriteCloser, serverOut io.Reader) error {
	p.srvW, p.cliW = serverIn, clientOut
	errc := make(chan error, 1)
	go func() {
		err := p.pump(clientIn, fromClient)
		p.toServer.Lock()
		serverIn.Close()
		p.toServer.Unlock()
		errc <- err
	}()
	// Until the server's output ends (it exited or closed stdout); what the client asked and
	// never got an answer for is then recorded as such (finish).
	err := p.pump(serverOut, fromServer)
	select {
	case cerr := <-errc:
		err = errors.Join(err, cerr)
	case <-time.After(100 * time.Millisecond):
		// The client is still connected, but the server is gone: stop here, as the server's exit
		// would have ended the client's connection.
	}
	return err
}

type side int

const (
	fromClient side = iota
	fromServer
)

func (s side) String() string {
	if s == fromClient {
		return "client"
	}
	return "server"
}

// pump forwards lines from r to the other side, recording each. A line longer than the parse
// limit is streamed through in pieces.
func (p *Proxy) pump(r io.Reader, from side) error {
	br := bufio.NewReaderSize(r, 64<<10)
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			if len(line)+len(chunk) <= p.cfg.MaxMessageBytes {
				line = append(line, chunk...)
				continue
			}
			// Oversized: stream the rest through without keeping it.
			n, ferr := p.streamOversized(br, from, append(line, chunk...))
			line = line[:0]
			p.recordError(from, "oversized_message", fmt.Sprintf("a message from the %s of more than %d bytes (%d) was forwarded unparsed", from, p.cfg.MaxMessageBytes, n))
			if ferr != nil {
				return ferr
			}
			continue
		case err != nil && !errors.Is(err, io.EOF):
			return fmt.Errorf("mcpproxy: reading from the %s: %w", from, err)
		}
		line = append(line, chunk...)
		if len(line) > 0 {
			if werr := p.handle(from, line); werr != nil {
				return werr
			}
		}
		line = line[:0]
		if err != nil { // EOF
			return nil
		}
	}
}

// streamOversized forwards head and the rest of its line to the other side.
func (p *Proxy) streamOversized(br *bufio.Reader, from side, head []byte) (int, error) {
	n := len(head)
	if err := p.forward(from, head); err != nil {
		return n, err
	}
	for {
		chunk, err := br.ReadSlice('\n')
		n += len(chunk)
		if werr := p.forward(from, chunk); werr != nil {
			return n, werr
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			if errors.Is(err, io.EOF) {
				err = nil
			}
			return n, err
		}
	}
}

func (p *Proxy) writerTo(from side) (io.Writer, *sync.Mutex) {
	if from == fromClient {
		return p.srvW, &p.toServer
	}
	return p.cliW, &p.toClient
}

// forward writes line unchanged to the other side.
func (p *Proxy) forward(from side, line []byte) error {
	w, mu := p.writerTo(from)
	mu.Lock()
	defer mu.Unlock()
	if from == fromServer && p.cliGone.Load() {
		return nil
	}
	_, err := w.Write(line)
	if err != nil && from == fromServer {
		// The client left: what the server still says is recorded, and goes nowhere, as it
		// would without the proxy.
		p.cliGone.Store(true)
		p.cfg.Logger.Warn("mcpproxy: the client left; the server's remaining output is recorded and dropped", "err", err)
		return nil
	}
	return err
}

// handle records line and forwards it (a held tools/call is forwarded by the gate later, or
// answered by it).
func (p *Proxy) handle(from side, line []byte) error {
	if from == fromClient {
		if m, name, args, ok := p.heldCall(line); ok {
			p.observe(from, m)
			go p.hold(m, name, args, bytes.Clone(line))
			return nil
		}
		if answer, refused := p.refuseHeldBatch(line); refused {
			if len(answer) == 0 {
				return nil
			}
			return p.forward(fromServer, answer)
		}
	}
	if from == fromServer && p.recordAfter() {
		err := p.forward(from, line)
		p.inspect(from, line)
		return err
	}
	p.inspect(from, line)
	return p.forward(from, line)
}

// recordAfter reports whether the server's messages are forwarded before they are recorded:
// in Async mode, so that an answer never waits for its recording, once the session has started
// (the answer to initialize is recorded first, so that nothing the client sends next can start
// the session without the server's name). Sync and FailClosed record (commit) first: that is
// their guarantee.
func (p *Proxy) recordAfter() bool {
	if p.cfg.Recorder.Mode() != agentaudit.Async {
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.sess != nil
}

// heldCall reports whether line is a tools/call the gate holds (never without a gate).
func (p *Proxy) heldCall(line []byte) (*message, string, json.RawMessage, bool) {
	if p.cfg.Gate == nil {
		return nil, "", nil, false
	}
	body := bytes.TrimSpace(line)
	if len(body) == 0 || body[0] != '{' {
		return nil, "", nil, false
	}
	var m message
	if json.Unmarshal(body, &m) != nil || m.Method != "tools/call" {
		return nil, "", nil, false
	}
	var params struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	}
	json.Unmarshal(m.Params, &params)
	if !p.cfg.Gate.Holds(params.Name) {
		return nil, "", nil, false
	}
	return &m, params.Name, params.Arguments, true
}

// refuseHeldBatch answers a JSON-RPC batch that calls a tool the gate holds, instead of letting
// it through: one call of a batch cannot wait while the others go on, and a batch must not be a
// way around the gate. Every request of the batch gets an invalid-request error saying why, and
// its tool calls are recorded as refused; the answer is empty when the batch has no request.
// refused is false for any other line.
func (p *Proxy) refuseHeldBatch(line []byte) (answer []byte, refused bool) {
	body := bytes.TrimSpace(line)
	if p.cfg.Gate == nil || len(body) == 0 || body[0] != '[' {
		return nil, false
	}
	var msgs []message
	if json.Unmarshal(body, &msgs) != nil {
		return nil, false
	}
	held := ""
	for _, m := range msgs {
		var params struct {
			Name string `json:"name"`
		}
		if m.Method == "tools/call" && json.Unmarshal(m.Params, &params) == nil && p.cfg.Gate.Holds(params.Name) {
			held = params.Name
			break
		}
	}
	if held == "" {
		return nil, false
	}
	why := fmt.Sprintf("agentaudit: %s needs approval and cannot be called in a JSON-RPC batch; send the call alone", held)
	var answers []map[string]any
	for i := range msgs {
		m := &msgs[i]
		if len(m.ID) == 0 || string(m.ID) == "null" || m.Method == "" {
			continue
		}
		p.observe(fromClient, m)
		id := idString(m.ID)
		p.mu.Lock()
		c := p.pending[id]
		delete(p.pending, id)
		p.mu.Unlock()
		if c != nil {
			p.recordTool(id, c, nil, &toolErr{msg: why, typ: "approval_batch_refused"})
		}
		answers = append(answers, map[string]any{"jsonrpc": "2.0", "id": m.ID, "error": map[string]any{"code": -32600, "message": why}})
	}
	if len(answers) == 0 {
		return nil, true
	}
	b, _ := json.Marshal(answers)
	return append(b, '\n'), true
}

// inspect records what line means: each message of it, or why it could not be read.
func (p *Proxy) inspect(from side, line []byte) {
	body := bytes.TrimSpace(line)
	if len(body) == 0 {
		return
	}
	if !utf8.Valid(body) {
		p.recordError(from, "invalid_utf8", fmt.Sprintf("a %d-byte message from the %s is not valid UTF-8; forwarded unparsed", len(body), from))
		return
	}
	var msgs []message
	var err error
	if body[0] == '[' { // a JSON-RPC batch (MCP 2025-03-26)
		err = json.Unmarshal(body, &msgs)
	} else {
		msgs = make([]message, 1)
		err = json.Unmarshal(body, &msgs[0])
	}
	if err != nil {
		p.recordError(from, "malformed_jsonrpc", fmt.Sprintf("a message from the %s is not JSON-RPC: %v", from, err))
		return
	}
	for i := range msgs {
		p.observe(from, &msgs[i])
	}
}

// idString is a JSON-RPC id as the tool_call_id: a string id bare, a number as written.
func idString(id json.RawMessage) string {
	var s string
	if json.Unmarshal(id, &s) == nil {
		return s
	}
	return string(id)
}

// observe records what m means.
func (p *Proxy) observe(from side, m *message) {
	isReq := m.Method != "" && len(m.ID) > 0 && string(m.ID) != "null"
	isResp := m.Method == "" && len(m.ID) > 0
	switch {
	case from == fromClient && isReq:
		p.clientRequest(m)
	case from == fromClient && m.Method == "notifications/cancelled":
		var params struct {
			RequestID json.RawMessage `json:"requestId"`
			Reason    string          `json:"reason"`
		}
		json.Unmarshal(m.Params, &params)
		id := idString(params.RequestID)
		p.mu.Lock()
		c := p.pending[id]
		delete(p.pending, id)
		p.mu.Unlock()
		if c != nil {
			reason := "cancelled by the client"
			if params.Reason != "" {
				reason += ": " + params.Reason
			}
			p.recordTool(id, c, nil, &toolErr{msg: reason, typ: "cancelled"})
		}
	case from == fromServer && isResp:
		p.serverResponse(m)
	}
}

func (p *Proxy) clientRequest(m *message) {
	id := idString(m.ID)
	switch m.Method {
	case "initialize":
		var params struct {
			ProtocolVersion string   `json:"protocolVersion"`
			ClientInfo      peerInfo `json:"clientInfo"`
		}
		json.Unmarshal(m.Params, &params)
		p.mu.Lock()
		p.client, p.proto, p.initID = params.ClientInfo, params.ProtocolVersion, id
		p.mu.Unlock()
	case "tools/call":
		var params struct {
			Name      string          `json:"name"`
			Arguments json.RawMessage `json:"arguments"`
		}
		json.Unmarshal(m.Params, &params)
		p.mu.Lock()
		p.pending[id] = &call{name: params.Name, args: params.Arguments, start: time.Now()}
		p.mu.Unlock()
	case "resources/read", "prompts/get":
		var params struct {
			URI  string `json:"uri"`
			Name string `json:"name"`
		}
		json.Unmarshal(m.Params, &params)
		a := agentaudit.Access{SubjectType: "mcp_resource", SubjectID: params.URI, Tool: m.Method, Purpose: "mcp"}
		if m.Method == "prompts/get" {
			a.SubjectType, a.SubjectID = "mcp_prompt", params.Name
		}
		s := p.session()
		if err := s.Access(p.ctx, a); err != nil {
			p.cfg.Logger.Error("mcpproxy: access not recorded", "err", err)
		}
	}
}

type toolErr struct{ msg, typ string }

func (e *toolErr) Error() string     { return e.msg }
func (e *toolErr) ErrorType() string { return e.typ }

func (p *Proxy) serverResponse(m *message) {
	id := idString(m.ID)
	p.mu.Lock()
	isInit := p.initID != "" && id == p.initID && p.sess == nil
	c := p.pending[id]
	delete(p.pending, id)
	p.mu.Unlock()
	if isInit {
		var res struct {
			ProtocolVersion string   `json:"protocolVersion"`
			ServerInfo      peerInfo `json:"serverInfo"`
		}
		json.Unmarshal(m.Result, &res)
		p.startSession(res.ServerInfo, res.ProtocolVersion, m)
		return
	}
	if c == nil {
		return
	}
	switch {
	case m.Error != nil:
		p.recordTool(id, c, nil, &toolErr{msg: fmt.Sprintf("JSON-RPC error %d: %s", m.Error.Code, m.Error.Message), typ: "jsonrpc_error"})
	default:
		var res struct {
			IsError bool `json:"isError"`
			Content []struct {
				Type string `json:"type"`
				Text string `json:"text"`
			} `json:"content"`
		}
		json.Unmarshal(m.Result, &res)
		if res.IsError {
			var texts []string
			for _, c := range res.Content {
				if c.Type == "text" {
					texts = append(texts, c.Text)
				}
			}
			msg := strings.Join(texts, "\n")
			if msg == "" {
				msg = "the tool reported an error"
			}
			p.recordTool(id, c, m.Result, &toolErr{msg: msg, typ: "tool_error"})
			return
		}
		p.recordTool(id, c, m.Result, nil)
	}
}

// startSession records session_start once the server has answered initialize.
func (p *Proxy) startSession(server peerInfo, proto string, m *message) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess != nil {
		return
	}
	p.startLocked(server, proto, m)
}

func (p *Proxy) startLocked(server peerInfo, proto string, m *message) {
	agent, version := p.cfg.AgentID, ""
	if agent == "" {
		agent = p.client.Name
	}
	if p.cfg.AgentID == "" || p.cfg.AgentID == p.client.Name {
		version = p.client.Version
	}
	if proto == "" {
		proto = p.proto
	}
	md := map[string]any{"mcp_client": p.client, "mcp_server": server, "mcp_protocol_version": proto, "door": "mcp-proxy"}
	if m != nil && m.Error != nil {
		md["initialize_error"] = m.Error.Message
	}
	raw, _ := json.Marshal(md)
	ctx, s, err := p.cfg.Recorder.StartSession(context.Background(), agentaudit.SessionInfo{UserID: p.cfg.UserID, AgentID: agent,
		AgentVersion: version, UserAgent: strings.TrimSpace(p.client.Name + "/" + p.client.Version), Trigger: event.TriggerUserRequest, Metadata: raw})
	if err != nil {
		p.cfg.Logger.Error("mcpproxy: session_start not recorded", "err", err)
		// Keep recording into a session object all the same, so later events carry its id.
		ctx, s, _ = p.cfg.Recorder.StartSession(context.Background(), agentaudit.SessionInfo{UserID: p.cfg.UserID, AgentID: agent})
	}
	p.ctx, p.sess = ctx, s
}

// session returns the session, starting one if the client never initialized.
func (p *Proxy) session() *agentaudit.Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sess == nil {
		p.startLocked(peerInfo{}, "", nil)
	}
	return p.sess
}

func (p *Proxy) recordTool(id string, c *call, result json.RawMessage, err error) {
	s := p.session()
	tc := agentaudit.ToolCall{Name: c.name, CallID: id, Arguments: c.args, Duration: time.Since(c.start), Err: err}
	if len(result) > 0 && err == nil {
		tc.Result = result
	}
	if rerr := s.ToolCall(p.ctx, tc); rerr != nil {
		p.cfg.Logger.Error("mcpproxy: tool call not recorded", "tool", c.name, "err", rerr)
	}
}

func (p *Proxy) recordError(from side, typ, msg string) {
	s := p.session()
	if err := s.Error(p.ctx, &toolErr{msg: msg, typ: typ}); err != nil {
		p.cfg.Logger.Error("mcpproxy: error event not recorded", "err", err)
	}
}

// finish records the calls left unanswered and session_end, once.
func (p *Proxy) finish(ctx context.Context, why string) {
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return
	}
	if p.handedOn > 0 {
		recorded := p.recorded
		p.mu.Unlock()
		select {
		case <-recorded:
		case <-time.After(handedOnWait):
		}
		p.mu.Lock()
		if p.ended {
			p.mu.Unlock()
			return
		}
	}
	p.ended = true
	pending := p.pending
	p.pending = map[string]*call{}
	started := p.sess != nil
	p.mu.Unlock()
	for id, c := range pending {
		p.recordTool(id, c, nil, &toolErr{msg: why, typ: "unanswered"})
	}
	outcome := event.OutcomeSuccess
	if len(pending) > 0 {
		outcome = event.OutcomeError
	}
	if !started && len(pending) == 0 {
		return // nothing happened: no session to end
	}
	if err := p.session().End(p.ctx, outcome); err != nil {
		p.cfg.Logger.Error("mcpproxy: session_end not recorded", "err", err)
	}
}
