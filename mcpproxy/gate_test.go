package mcpproxy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/embedded"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/mcpproxy"
	"github.com/agentaudit/agentaudit/redact"
)

// decideNext waits for the next pending request in d and answers it.
func decideNext(t *testing.T, d *mcpproxy.DirDecider, dec mcpproxy.Decision) {
	t.Helper()
	for range 200 {
		reqs, _ := d.Pending()
		if len(reqs) > 0 {
			if err := d.Decide(reqs[0].ID, dec); err != nil {
				t.Error(err)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("no request was held")
}

// TestApprovalGate: echo needs approval (the policy's require_approval); get-sum does not. An
// approved call runs, a rejected one and one left undecided answer the client with a tool
// error saying why; request and decision are recorded and linked to the call. The same, over
// stdio and over Streamable HTTP, through the real server-everything.
func TestApprovalGate(t *testing.T) {
	for _, transport := range []string{"stdio", "http"} {
		t.Run(transport, func(t *testing.T) { testApprovalGate(t, transport) })
	}
}

func testApprovalGate(t *testing.T, transport string) {
	argv := everything(t)
	gate, err := mcpproxy.ParsePolicy("policy.yaml", []byte("require_approval:\n  tools: [\"ec*\"]\n  timeout: 1s\n"))
	if err != nil {
		t.Fatal(err)
	}
	dec := &mcpproxy.DirDecider{Dir: filepath.Join(t.TempDir(), "approvals"), Poll: 10 * time.Millisecond}
	gate.Decider = dec
	var h *harness
	if transport == "http" {
		h = startHTTP(t, mcpproxy.Config{Gate: gate})
	} else {
		h = start(t, argv, mcpproxy.Config{Gate: gate})
	}
	ctx := context.Background()
	call := func(msg string) *mcp.CallToolResult {
		res, err := h.client.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": msg}})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	text := func(r *mcp.CallToolResult) string { return r.Content[0].(*mcp.TextContent).Text }

	go decideNext(t, dec, mcpproxy.Decision{Status: event.ApprovalApproved, Approver: "alice"})
	if r := call("approved one"); r.IsError || !strings.Contains(text(r), "approved one") {
		t.Errorf("approved: %+v", r)
	}
	go decideNext(t, dec, mcpproxy.Decision{Status: event.ApprovalRejected, Approver: "bob", Note: "not on prod"})
	if r := call("rejected one"); !r.IsError || !strings.Contains(text(r), "rejected by bob: not on prod") {
		t.Errorf("rejected: %+v", r)
	}
	if r := call("nobody decides"); !r.IsError || !strings.Contains(text(r), "no decision within 1s") {
		t.Errorf("timeout: %+v", r)
	}
	if r, err := h.client.CallTool(ctx, &mcp.CallToolParams{Name: "get-sum", Arguments: map[string]any{"a": 1, "b": 2}}); err != nil || r.IsError {
		t.Errorf("get-sum is not held: %v %+v", err, r)
	}
	if reqs, _ := dec.Pending(); len(reqs) != 0 {
		t.Errorf("left pending: %+v", reqs)
	}

	evs := h.stop(t)
	requests := map[string]*event.Event{}
	var decisions []string
	calls := map[string]*event.Event{}
	for _, ev := range evs {
		switch ev.Kind {
		case event.KindApprovalRequest:
			requests[ev.ID] = ev
		case event.KindApprovalDecision:
			req := requests[ev.ParentID]
			if req == nil || req.ToolCallID != ev.ToolCallID || ev.ToolName != "echo" {
				t.Errorf("decision not linked to its request: %+v", ev)
			}
			decisions = append(decisions, string(ev.ApprovalStatus)+" "+ev.ApproverID)
		case event.KindToolCall:
			calls[ev.ToolCallID] = ev
		}
	}
	if got := strings.Join(decisions, ", "); got != "approved alice, rejected bob, rejected agentaudit:timeout" {
		t.Errorf("decisions: %s", got)
	}
	for _, req := range requests {
		c := calls[req.ToolCallID]
		if c == nil {
			t.Errorf("no tool call for request %s", req.ToolCallID)
			continue
		}
		if ok := c.Success != nil && *c.Success; ok != strings.Contains(string(c.Arguments), "approved one") {
			t.Errorf("call %s: success %v, error %q", c.ToolCallID, ok, c.Error)
		}
	}
}

// TestParsePolicy: both forms of require_approval, and mistakes named with their line.
func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		tools      []string
		err        string
	}{
		{"list", "require_approval: [\"delete_*\", send_email]\n", []string{"delete_*", "send_email"}, ""},
		{"mapping", "version: 1\nrequire_approval:\n  tools: [a]\n  timeout: 2m\n  on_timeout: approve\n", []string{"a"}, ""},
		{"absent", "version: 1\n", nil, ""},
		{"bad timeout", "require_approval:\n  tools: [a]\n  timeout: soon\n", nil, "policy.yaml:3: require_approval: timeout"},
		{"bad key", "require_approval:\n  tool: [a]\n", nil, "policy.yaml:2: require_approval: unknown key \"tool\""},
		{"bad pattern", "require_approval: [\"[\"]\n", nil, "policy.yaml:1: require_approval: pattern"},
		{"not a list", "require_approval: yes\n", nil, "want a list"},
		{"bad on_timeout", "require_approval:\n  tools: [a]\n  on_timeout: maybe\n", nil, "on_timeout \"maybe\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, err := mcpproxy.ParsePolicy("policy.yaml", []byte(tc.yaml))
			if tc.err != "" {
				var pe *redact.PolicyError
				if err == nil || !strings.Contains(err.Error(), tc.err) || !errors.As(err, &pe) {
					t.Fatalf("got %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var tools []string
			if g != nil {
				tools = g.Tools
			}
			if strings.Join(tools, ",") != strings.Join(tc.tools, ",") {
				t.Errorf("tools %q, want %q", tools, tc.tools)
			}
		})
	}
	// The redact package accepts the same file.
	if _, err := redact.Parse("policy.yaml", []byte("version: 1\nrequire_approval: [a]\n")); err != nil {
		t.Errorf("redact refuses the section: %v", err)
	}
}

// discard is a sink that stores nothing, for the fuzzer.
type discard struct{}

func (discard) AppendBatch(ctx context.Context, evs []*event.Event) ([]error, error) {
	return make([]error, len(evs)), nil
}
func (discard) Close() error { return nil }

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }

// FuzzProxyLine: whatever a client sends, the server receives the same bytes, and the proxy
// neither panics nor hangs.
func FuzzProxyLine(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"x","arguments":{}}}` + "\n",
		`{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}` + "\n",
		"[1,2,{\"id\":null}]\n", "\xff\n\n", `{"id":{},"method":"resources/read","params":[]}`, "not json",
	} {
		f.Add([]byte(s))
	}
	rec, _ := agentaudit.New(discard{})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := mcpproxy.New(mcpproxy.Config{Recorder: rec, MaxMessageBytes: 256})
		if err != nil {
			t.Fatal(err)
		}
		var toServer, toClient bytes.Buffer
		if err := p.Run(context.Background(), bytes.NewReader(in), &toClient, nopCloser{&toServer}, bytes.NewReader(in)); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(toServer.Bytes(), in) || !bytes.Equal(toClient.Bytes(), in) {
			t.Fatalf("changed the stream: %q -> %q / %q", in, toServer.Bytes(), toClient.Bytes())
		}
	})
}

// TestDirDeciderDecide: one decision per request, for pending requests only, with a valid status.
func TestDirDeciderDecide(t *testing.T) {
	d := &mcpproxy.DirDecider{Dir: filepath.Join(t.TempDir(), "approvals"), Poll: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := d.Await(ctx, mcpproxy.Request{ID: "r1", Tool: "wipe", Time: time.Now()})
		done <- err
	}()
	for range 200 {
		if reqs, _ := d.Pending(); len(reqs) == 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := d.Decide("r2", mcpproxy.Decision{Status: event.ApprovalApproved, Approver: "a"}); !errors.Is(err, mcpproxy.ErrNoRequest) {
		t.Errorf("unknown id: %v", err)
	}
	if err := d.Decide("r1", mcpproxy.Decision{Status: event.ApprovalPending, Approver: "a"}); err == nil {
		t.Error("a pending decision was taken")
	}
	if err := d.Decide("r1", mcpproxy.Decision{Status: event.ApprovalRejected, Approver: "a"}); err != nil {
		t.Fatal(err)
	}
	if err := d.Decide("r1", mcpproxy.Decision{Status: event.ApprovalApproved, Approver: "b"}); !errors.Is(err, mcpproxy.ErrAlreadyDecided) {
		t.Errorf("second decision: %v", err)
	}
	cancel()
	<-done
}

// TestGateRefusesHeldBatch: a JSON-RPC batch that calls a held tool is no way around the gate.
// Behind `cat` (a server that echoes what it gets) and behind an HTTP upstream that counts what
// reaches it, the batch never reaches the server: the client gets an invalid-request error for
// each request, naming the tool, and the calls are recorded as refused. A batch that calls no
// held tool passes unchanged.
func TestGateRefusesHeldBatch(t *testing.T) {
	const held = `[{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}},` +
		`{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"get-sum","arguments":{}}},{"jsonrpc":"2.0","method":"notifications/progress"}]`
	const free = `[{"jsonrpc":"2.0","id":7,"method":"ping"}]`
	gate := func() *mcpproxy.Gate {
		return &mcpproxy.Gate{Tools: []string{"ec*"}, Decider: &mcpproxy.DirDecider{Dir: filepath.Join(t.TempDir(), "approvals")}}
	}
	checkAnswer := func(t *testing.T, answer []byte) {
		t.Helper()
		var got []struct {
			ID    int `json:"id"`
			Error struct {
				Code    int    `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := json.Unmarshal(answer, &got); err != nil || len(got) != 2 {
			t.Fatalf("answer to the batch: %v %s", err, answer)
		}
		for i, a := range got {
			if a.ID != 5+i || a.Error.Code != -32600 || !strings.Contains(a.Error.Message, "echo needs approval") {
				t.Errorf("answer %d: %+v", i, a)
			}
		}
	}
	t.Run("stdio", func(t *testing.T) {
		r := startRawConfig(t, []string{"cat"}, mcpproxy.Config{Gate: gate()})
		io.WriteString(r.in, held+"\n")
		line, err := r.out.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		checkAnswer(t, []byte(line))
		io.WriteString(r.in, free+"\n")
		if line, _ := r.out.ReadString('\n'); line != free+"\n" {
			t.Errorf("a batch without a held tool came back as %q", line)
		}
		r.in.Close()
		evs, _ := r.wait(t)
		refused := 0
		for _, ev := range evs {
			if ev.Kind == event.KindToolCall && ev.ErrorType == "approval_batch_refused" {
				refused++
			}
		}
		if refused != 2 {
			t.Errorf("%d calls recorded as refused, want 2: %s", refused, kinds(evs))
		}
	})
	t.Run("http", func(t *testing.T) {
		var reached atomic.Int32
		up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			reached.Add(1)
			w.WriteHeader(http.StatusAccepted)
		}))
		defer up.Close()
		rec, _ := agentaudit.New(discard{})
		hp, err := mcpproxy.NewHTTP(mcpproxy.Config{Recorder: rec, Gate: gate()}, up.URL)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(hp)
		defer srv.Close()
		post := func(body string) (int, []byte) {
			resp, err := http.Post(srv.URL, "application/json", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, b
		}
		if code, b := post(held); code != http.StatusOK {
			t.Errorf("held batch: %d %s", code, b)
		} else {
			checkAnswer(t, b)
		}
		if reached.Load() != 0 {
			t.Error("the batch reached the upstream")
		}
		post(free)
		if reached.Load() != 1 {
			t.Error("a batch without a held tool did not reach the upstream")
		}
	})
}

// TestGateHTTPClientLeaves: a Streamable HTTP client that hangs up while its call waits for
// approval withdraws the request (nobody can approve it any more), the call never reaches the
// server, and the decision is recorded as rejected because the client left.
func TestGateHTTPClientLeaves(t *testing.T) {
	var reached atomic.Int32
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer up.Close()
	dir := filepath.Join(t.TempDir(), "data")
	sink, err := embedded.Open(dir, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := agentaudit.New(sink)
	dec := &mcpproxy.DirDecider{Dir: filepath.Join(t.TempDir(), "approvals"), Poll: 10 * time.Millisecond}
	hp, err := mcpproxy.NewHTTP(mcpproxy.Config{Recorder: rec, Gate: &mcpproxy.Gate{Tools: []string{"echo"}, Decider: dec}}, up.URL)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(hp)
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for range 200 { // hang up once the call is held
			if reqs, _ := dec.Pending(); len(reqs) == 1 {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
	}()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL,
		strings.NewReader(`{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}`))
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatalf("the held call was answered: %s", resp.Status)
	}
	var left bool
	for range 200 {
		if reqs, _ := dec.Pending(); len(reqs) == 0 {
			left = true
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !left {
		t.Fatal("the request of a client that left is still pending")
	}
	hp.Close()
	rec.Close()
	if reached.Load() != 0 {
		t.Error("the call reached the server")
	}
	var decided *event.Event
	for _, ev := range readEvents(t, dir) {
		if ev.Kind == event.KindApprovalDecision {
			decided = ev
		}
	}
	if decided == nil || decided.ApprovalStatus != event.ApprovalRejected || !strings.Contains(decided.Rationale, "the client left") {
		t.Errorf("decision: %+v", decided)
	}
}
