package mcpproxy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/redact"
)

// DefaultApprovalTimeout is how long a held call waits for a decision.
const DefaultApprovalTimeout = 5 * time.Minute

// Gate holds the calls to tools that need a person's approval. A held call is recorded as an
// approval_request, then waits for a Decider; approve forwards it to the server, reject or a
// timeout (denied unless OnTimeoutApprove) answers the client with an MCP tool error
// (isError) that says why. The decision is an approval_decision event whose parent is the
// request, both carrying the call's JSON-RPC id as tool_call_id.
type Gate struct {
	// Tools are glob patterns (path.Match) of tool names to hold.
	Tools            []string
	Timeout          time.Duration // DefaultApprovalTimeout when 0
	OnTimeoutApprove bool
	Decider          Decider
}

// Holds reports whether calls to tool wait for approval.
func (g *Gate) Holds(tool string) bool {
	for _, p := range g.Tools {
		if ok, _ := path.Match(p, tool); ok {
			return true
		}
	}
	return false
}

// Request is a held call waiting for a decision.
type Request struct {
	ID        string    `json:"id"` // the approval_request event's id
	SessionID string    `json:"session_id"`
	Tool      string    `json:"tool"`
	CallID    string    `json:"tool_call_id"`
	UserID    string    `json:"user_id,omitempty"`
	AgentID   string    `json:"agent_id,omitempty"`
	Time      time.Time `json:"time"`
}

// Decision is a person's answer to a Request.
type Decision struct {
	Status   event.ApprovalStatus `json:"status"` // approved or rejected
	Approver string               `json:"approver"`
	Note     string               `json:"note,omitempty"`
}

// Decider waits for the decision on a request: until one is made or ctx ends.
type Decider interface {
	Await(ctx context.Context, req Request) (Decision, error)
}

// ParsePolicy reads the require_approval section of a policy file (the rest belongs to package
// redact). Both forms are accepted:
//
//	require_approval: ["delete_*", send_email]
//
//	require_approval:
//	  tools: ["delete_*"]
//	  timeout: 2m
//	  on_timeout: deny   # or approve
//
// A file without the section gives a nil Gate.
func ParsePolicy(name string, data []byte) (*Gate, error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, &redact.PolicyError{File: name, Line: 1, Msg: err.Error()}
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, nil
	}
	root := doc.Content[0]
	perr := func(n *yaml.Node, format string, args ...any) error {
		return &redact.PolicyError{File: name, Line: n.Line, Msg: "require_approval: " + fmt.Sprintf(format, args...)}
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		if root.Content[i].Value != "require_approval" {
			continue
		}
		v := root.Content[i+1]
		g := &Gate{}
		tools := v
		if v.Kind == yaml.MappingNode {
			tools = nil
			for j := 0; j+1 < len(v.Content); j += 2 {
				k, x := v.Content[j], v.Content[j+1]
				switch k.Value {
				case "tools":
					tools = x
				case "timeout":
					d, err := time.ParseDuration(x.Value)
					if err != nil || d <= 0 {
						return nil, perr(x, "timeout %q is not a positive duration (e.g. 5m)", x.Value)
					}
					g.Timeout = d
				case "on_timeout":
					switch x.Value {
					case "deny":
					case "approve":
						g.OnTimeoutApprove = true
					default:
						return nil, perr(x, "on_timeout %q (want deny or approve)", x.Value)
					}
				default:
					return nil, perr(k, "unknown key %q (want tools, timeout, on_timeout)", k.Value)
				}
			}
			if tools == nil {
				return nil, perr(v, "no tools listed")
			}
		}
		if tools.Kind != yaml.SequenceNode {
			return nil, perr(tools, "want a list of tool name patterns")
		}
		for _, t := range tools.Content {
			if t.Kind != yaml.ScalarNode || t.Value == "" {
				return nil, perr(t, "a tool pattern must be a non-empty string")
			}
			if _, err := path.Match(t.Value, ""); err != nil {
				return nil, perr(t, "pattern %q: %v", t.Value, err)
			}
			g.Tools = append(g.Tools, t.Value)
		}
		return g, nil
	}
	return nil, nil
}

// hold is the stdio side of the gate: it waits for the decision (approve), then forwards the
// call to the server or answers the client with the tool error.
func (p *Proxy) hold(m *message, tool string, args json.RawMessage, line []byte) {
	if answer := p.approve(context.Background(), m, tool, args); answer != nil {
		if err := p.forward(fromServer, append(answer, '\n')); err != nil {
			p.cfg.Logger.Error("mcpproxy: answering a denied call", "err", err)
		}
		return
	}
	if err := p.forward(fromClient, line); err != nil {
		p.cfg.Logger.Error("mcpproxy: forwarding an approved call", "err", err)
	}
}

// approve records the approval request for a held tools/call (already observed as pending),
// waits for the decision until the gate's timeout or until parent ends (an HTTP client that hung
// up), and records it. It returns nil when the call may go to the server; otherwise the call is
// recorded as denied and approve returns the JSON-RPC answer for the client: a tool error
// (isError) that says why. Both transports use it, so a held call is decided the same way over
// stdio and Streamable HTTP.
func (p *Proxy) approve(parent context.Context, m *message, tool string, args json.RawMessage) []byte {
	g := p.cfg.Gate
	id := idString(m.ID)
	s := p.session()
	deny := func(why, typ string) []byte {
		p.mu.Lock()
		c := p.pending[id]
		delete(p.pending, id)
		p.mu.Unlock()
		if c != nil {
			p.recordTool(id, c, nil, &toolErr{msg: why, typ: typ})
		}
		answer, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": m.ID, "result": map[string]any{
			"content": []map[string]string{{"type": "text", "text": why}}, "isError": true}})
		return answer
	}
	// The request must be on record before anyone can approve it: if it cannot be written, the
	// call is denied.
	reqID, err := s.ApprovalRequestForCall(p.ctx, tool, id, args)
	if err != nil {
		return deny(fmt.Sprintf("agentaudit: the call to %s needs approval, and its approval request could not be recorded", tool), "approval_unrecorded")
	}
	timeout := g.Timeout
	if timeout == 0 {
		timeout = DefaultApprovalTimeout
	}
	ctx, cancel := context.WithTimeout(parent, timeout)
	d, err := g.Decider.Await(ctx, Request{ID: reqID, SessionID: s.ID(), Tool: tool, CallID: id, UserID: p.cfg.UserID, AgentID: p.cfg.AgentID, Time: time.Now().UTC()})
	cancel()
	switch {
	case err != nil && parent.Err() != nil:
		d = Decision{Status: event.ApprovalRejected, Approver: "agentaudit", Note: "the client left before a decision"}
	case err != nil && errors.Is(err, context.DeadlineExceeded):
		d = Decision{Status: event.ApprovalRejected, Approver: "agentaudit:timeout", Note: fmt.Sprintf("no decision within %v", timeout)}
		if g.OnTimeoutApprove {
			d.Status = event.ApprovalApproved
		}
	case err != nil:
		d = Decision{Status: event.ApprovalRejected, Approver: "agentaudit", Note: "waiting for the decision failed: " + err.Error()}
	}
	if err := s.ApprovalDecisionForCall(p.ctx, reqID, tool, id, d.Status, d.Approver, d.Note); err != nil {
		p.cfg.Logger.Error("mcpproxy: approval decision not recorded", "err", err)
		if d.Status == event.ApprovalApproved {
			return deny(fmt.Sprintf("agentaudit: the call to %s was approved, but the decision could not be recorded", tool), "approval_unrecorded")
		}
	}
	if d.Status != event.ApprovalApproved {
		why := fmt.Sprintf("agentaudit: the call to %s was rejected by %s", tool, d.Approver)
		if d.Note != "" {
			why += ": " + d.Note
		}
		return deny(why, "approval_rejected")
	}
	p.mu.Lock()
	if c := p.pending[id]; c != nil {
		c.start = time.Now() // the tool's own duration, not the wait
	}
	p.mu.Unlock()
	return nil
}

// DirDecider keeps pending requests and decisions as files in a directory (mode 0700), so that
// `agentaudit approvals` in another process can list and decide them: ID.request.json written by
// the proxy, ID.decision.json by the person deciding. Files are removed once the decision is
// read. It holds no secret: a request names the tool, never its arguments.
type DirDecider struct {
	Dir  string
	Poll time.Duration // 100ms when 0
}

var (
	_ Decider             = (*DirDecider)(nil)
	_ agentaudit.Approver = (*DirDecider)(nil)
)

func validID(id string) bool {
	return id != "" && !strings.ContainsAny(id, `/\.`) && len(id) <= 128
}

// Await implements Decider: Submit, then Check until decided or ctx ends, then Withdraw.
func (d *DirDecider) Await(ctx context.Context, req Request) (Decision, error) {
	if err := d.Submit(req); err != nil {
		return Decision{}, err
	}
	defer d.Withdraw(req.ID)
	poll := d.Poll
	if poll == 0 {
		poll = 100 * time.Millisecond
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		dec, ok, err := d.Check(req.ID)
		if err != nil || ok {
			return dec, err
		}
		select {
		case <-ctx.Done():
			return Decision{}, ctx.Err()
		case <-t.C:
		}
	}
}

// ErrBadRequest: the request to Submit has no valid id or no tool.
var ErrBadRequest = errors.New("not a valid approval request")

// ErrDuplicateRequest: a request with that id is already pending.
var ErrDuplicateRequest = errors.New("an approval request with that id is already pending")

// Submit puts req in the directory, pending, for `agentaudit approvals` and /v1/approvals to
// list and decide.
func (d *DirDecider) Submit(req Request) error {
	if !validID(req.ID) {
		return fmt.Errorf("%w: id %q: want 1 to 128 characters without / \\ or .", ErrBadRequest, req.ID)
	}
	if req.Tool == "" {
		return fmt.Errorf("%w: it names no tool", ErrBadRequest)
	}
	if err := os.MkdirAll(d.Dir, 0o700); err != nil {
		return fmt.Errorf("mcpproxy: approvals: %w", err)
	}
	reqFile := filepath.Join(d.Dir, req.ID+".request.json")
	if _, err := os.Stat(reqFile); err == nil {
		return fmt.Errorf("%w: %s", ErrDuplicateRequest, req.ID)
	}
	b, _ := json.MarshalIndent(req, "", "  ")
	return writeFileAtomic(reqFile, b)
}

// Check returns the decision on the pending request id, if one was made (ok false: still
// pending). It does not consume it: Withdraw does.
func (d *DirDecider) Check(id string) (dec Decision, ok bool, err error) {
	if !validID(id) {
		return Decision{}, false, fmt.Errorf("%w: %q", ErrNoRequest, id)
	}
	b, err := os.ReadFile(filepath.Join(d.Dir, id+".decision.json"))
	if err == nil {
		if err := json.Unmarshal(b, &dec); err != nil || (dec.Status != event.ApprovalApproved && dec.Status != event.ApprovalRejected) {
			return Decision{}, false, fmt.Errorf("mcpproxy: %s.decision.json is not a decision", id)
		}
		return dec, true, nil
	}
	if _, err := os.Stat(filepath.Join(d.Dir, id+".request.json")); err != nil {
		return Decision{}, false, fmt.Errorf("%w: %s", ErrNoRequest, id)
	}
	return Decision{}, false, nil
}

// Withdraw removes the request id and its decision, if any: the waiting call has its answer (or
// has given up), and nobody can decide it any more.
func (d *DirDecider) Withdraw(id string) {
	if !validID(id) {
		return
	}
	os.Remove(filepath.Join(d.Dir, id+".decision.json"))
	os.Remove(filepath.Join(d.Dir, id+".request.json"))
}

// Pending lists the requests waiting in the directory, oldest first.
func (d *DirDecider) Pending() ([]Request, error) {
	files, err := filepath.Glob(filepath.Join(d.Dir, "*.request.json"))
	if err != nil {
		return nil, err
	}
	var out []Request
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue // decided meanwhile
		}
		var r Request
		if json.Unmarshal(b, &r) == nil {
			out = append(out, r)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Time.Before(out[j].Time) })
	return out, nil
}

// ErrNoRequest: no pending request has that id.
var ErrNoRequest = errors.New("no pending approval request with that id")

// ErrAlreadyDecided: the request has a decision that the waiting call has not read yet. The
// first decision stands; once the call has read it, the request is gone (ErrNoRequest).
var ErrAlreadyDecided = errors.New("the approval request is already decided")

// Decide answers the pending request id. Only one decision is taken: a second one, before the
// waiting call has read the first, gets ErrAlreadyDecided.
func (d *DirDecider) Decide(id string, dec Decision) error {
	if !validID(id) {
		return fmt.Errorf("%w: %q", ErrNoRequest, id)
	}
	if dec.Status != event.ApprovalApproved && dec.Status != event.ApprovalRejected {
		return fmt.Errorf("mcpproxy: decision status %q (want approved or rejected)", dec.Status)
	}
	if _, err := os.Stat(filepath.Join(d.Dir, id+".request.json")); err != nil {
		return fmt.Errorf("%w: %s", ErrNoRequest, id)
	}
	b, _ := json.Marshal(dec)
	decFile := filepath.Join(d.Dir, id+".decision.json")
	tmp, err := os.CreateTemp(d.Dir, id+".decision-*.tmp")
	if err != nil {
		return fmt.Errorf("mcpproxy: approvals: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, werr := tmp.Write(b)
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return fmt.Errorf("mcpproxy: approvals: %w", werr)
	}
	// A hard link fails if the target exists: of two deciders, one wins, whole.
	if err := os.Link(tmp.Name(), decFile); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s", ErrAlreadyDecided, id)
		}
		return fmt.Errorf("mcpproxy: approvals: %w", err)
	}
	return nil
}

// Approve implements agentaudit.Approver, so that a Go agent's WrapTool(...,
// agentaudit.RequireApproval(d, timeout)) waits on the same directory as the MCP proxy: its
// requests are listed and decided by `agentaudit approvals` and the server's /v1/approvals.
func (d *DirDecider) Approve(ctx context.Context, req agentaudit.ApprovalRequest) (agentaudit.ApprovalDecision, error) {
	dec, err := d.Await(ctx, Request{ID: req.ID, SessionID: req.SessionID, Tool: req.Tool, CallID: req.CallID,
		UserID: req.UserID, AgentID: req.AgentID, Time: req.Time})
	if err != nil {
		return agentaudit.ApprovalDecision{}, err
	}
	return agentaudit.ApprovalDecision{Status: dec.Status, Approver: dec.Approver, Note: dec.Note}, nil
}

func writeFileAtomic(name string, data []byte) error {
	tmp := name + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("mcpproxy: approvals: %w", err)
	}
	if err := os.Rename(tmp, name); err != nil {
		return fmt.Errorf("mcpproxy: approvals: %w", err)
	}
	return nil
}
