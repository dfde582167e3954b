package mcpproxy_test

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/embedded"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/mcpproxy"
	"github.com/agentaudit/agentaudit/store"
)

// everything is the command line of the real @modelcontextprotocol/server-everything, installed
// by `npm ci` in testdata (pinned by its package-lock.json).
func everything(t testing.TB) []string {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Missing(t, "node is not installed (the MCP server-everything runs on it)")
	}
	index := "testdata/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
	if _, err := os.Stat(index); err != nil {
		testenv.Missing(t, "the MCP server-everything is not installed: cd mcpproxy/testdata && npm ci")
	}
	return []string{"node", index, "stdio"}
}

// harness is a proxy recording into an embedded data directory, and the official Go SDK client
// connected to it over a pair of pipes, as an MCP host's stdio would be.
type harness struct {
	dir     string
	rec     *agentaudit.Recorder
	client  *mcp.ClientSession
	toProxy io.WriteCloser
	done    chan error
	// closeProxy, when set, ends a proxy that does not end with its client (Streamable HTTP).
	closeProxy func()
}

func start(t testing.TB, argv []string, cfg mcpproxy.Config, opts ...agentaudit.Option) *harness {
	t.Helper()
	h := &harness{dir: filepath.Join(t.TempDir(), "data"), done: make(chan error, 1)}
	sink, err := embedded.Open(h.dir, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if h.rec, err = agentaudit.New(sink, opts...); err != nil {
		t.Fatal(err)
	}
	cfg.Recorder = h.rec
	p, err := mcpproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cr, pw := io.Pipe() // client -> proxy
	pr, cw := io.Pipe() // proxy -> client
	h.toProxy = pw
	var stderr io.Writer = os.Stderr
	if _, bench := t.(*testing.B); bench {
		stderr = io.Discard // node's banner would break the benchmark's result lines
	}
	go func() {
		err := p.RunCommand(context.Background(), argv, cr, cw, stderr)
		cw.Close()
		h.done <- err
	}()
	c := mcp.NewClient(&mcp.Implementation{Name: "proxy-test-host", Version: "1.2.3"}, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h.client, err = c.Connect(ctx, &mcp.IOTransport{Reader: pr, Writer: pw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// stop closes the client, waits for the proxy and returns the recorded events in log order.
func (h *harness) stop(t *testing.T) []*event.Event {
	t.Helper()
	h.client.Close()
	if h.closeProxy != nil {
		h.closeProxy()
	}
	select {
	case <-h.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the proxy did not end after the client closed")
	}
	if err := h.rec.Close(); err != nil {
		t.Fatal(err)
	}
	return readEvents(t, h.dir)
}

func readEvents(t *testing.T, dir string) []*event.Event {
	t.Helper()
	s, err := datadir.Dir{Path: dir}.OpenStore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var evs []*event.Event
	err = s.ScanEntries(context.Background(), 0, func(e store.Entry) error {
		if strings.Contains(string(e.Body), secret) {
			t.Errorf("event %d holds the secret on disk", e.Seq)
		}
		ev, err := event.ParseStored(e.Body)
		evs = append(evs, ev)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

const secret = "ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5"

func toolCalls(evs []*event.Event) map[string]*event.Event {
	out := map[string]*event.Event{}
	for _, ev := range evs {
		if ev.Kind == event.KindToolCall {
			out[ev.ToolName] = ev
		}
	}
	return out
}

// TestEverythingThroughProxy drives the real server-everything through the proxy with the
// official Go SDK client: tools/list passes unchanged; echo, get-sum, a long-running tool, a
// tool error and a large result are recorded with the right fields; resources/read and
// prompts/get are access events; a secret in arguments never reaches the disk.
func TestEverythingThroughProxy(t *testing.T) {
	argv := everything(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The same server without the proxy: what tools/list must look like.
	direct, err := mcp.NewClient(&mcp.Implementation{Name: "direct", Version: "1"}, nil).Connect(ctx,
		&mcp.CommandTransport{Command: exec.Command(argv[0], argv[1:]...)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want, err := direct.ListTools(ctx, nil)
	direct.Close()
	if err != nil {
		t.Fatal(err)
	}

	h := start(t, argv, mcpproxy.Config{UserID: "usr_1", AgentID: "coder"})
	got, err := h.client.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tools/list through the proxy differs from the server's own answer")
	}
	call := func(name string, args map[string]any) *mcp.CallToolResult {
		t.Helper()
		res, err := h.client.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return res
	}
	if res := call("echo", map[string]any{"message": "hello " + secret}); res.IsError {
		t.Errorf("echo: %+v", res)
	}
	call("get-sum", map[string]any{"a": 2, "b": 3})
	call("trigger-long-running-operation", map[string]any{"duration": 1, "steps": 2})
	large := strings.Repeat("x", 300<<10)
	if res := call("echo", map[string]any{"message": large}); !strings.Contains(res.Content[0].(*mcp.TextContent).Text, large) {
		t.Error("the large result did not come through whole")
	}
	bad := call("get-sum", map[string]any{"a": "not a number"})
	if !bad.IsError {
		t.Fatalf("get-sum with a string: want a tool error, got %+v", bad)
	}
	resources, err := h.client.ListResources(ctx, nil)
	if err != nil || len(resources.Resources) == 0 {
		t.Fatalf("resources: %v", err)
	}
	uri := resources.Resources[0].URI
	if _, err := h.client.ReadResource(ctx, &mcp.ReadResourceParams{URI: uri}); err != nil {
		t.Fatal(err)
	}
	prompts, err := h.client.ListPrompts(ctx, nil)
	if err != nil || len(prompts.Prompts) == 0 {
		t.Fatalf("prompts: %v", err)
	}
	var prompt string
	for _, p := range prompts.Prompts {
		if len(p.Arguments) == 0 {
			prompt = p.Name
		}
	}
	if _, err := h.client.GetPrompt(ctx, &mcp.GetPromptParams{Name: prompt}); err != nil {
		t.Fatal(err)
	}

	evs := h.stop(t)
	if evs[0].Kind != event.KindSessionStart || evs[len(evs)-1].Kind != event.KindSessionEnd {
		t.Fatalf("first %s, last %s", evs[0].Kind, evs[len(evs)-1].Kind)
	}
	var md map[string]map[string]string
	json.Unmarshal(evs[0].Metadata, &md)
	if md["mcp_client"]["name"] != "proxy-test-host" || md["mcp_client"]["version"] != "1.2.3" || !strings.Contains(md["mcp_server"]["name"], "everything") {
		t.Errorf("session_start metadata: %s", evs[0].Metadata)
	}
	if evs[0].UserID != "usr_1" || evs[0].AgentID != "coder" {
		t.Errorf("attribution: user %q agent %q", evs[0].UserID, evs[0].AgentID)
	}
	calls := toolCalls(evs)
	for _, name := range []string{"echo", "trigger-long-running-operation"} {
		ev := calls[name]
		if ev == nil || ev.Success == nil || !*ev.Success || ev.ToolCallID == "" || len(ev.Arguments) == 0 || ev.SessionID != evs[0].SessionID {
			t.Errorf("%s: %+v", name, ev)
		}
	}
	if ev := calls["trigger-long-running-operation"]; ev != nil && ev.DurationMS < 900 {
		t.Errorf("long-running tool took %v ms; it runs 1 s", ev.DurationMS)
	}
	if ev := calls["get-sum"]; ev == nil || ev.Success == nil || *ev.Success || ev.ErrorType != "tool_error" || ev.Error == "" {
		t.Errorf("tool error: %+v", ev)
	}
	var access []string
	for _, ev := range evs {
		if ev.Kind == event.KindAccess {
			access = append(access, ev.ToolName+" "+ev.SubjectID)
		}
	}
	if !reflect.DeepEqual(access, []string{"resources/read " + uri, "prompts/get " + prompt}) {
		t.Errorf("access events: %q", access)
	}
}
