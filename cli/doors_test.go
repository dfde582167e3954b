package cli

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestMCPProxyCommand: `agentaudit --policy P mcp-proxy -- node server-everything` as an MCP
// host starts it, driven by the official Go SDK client; a held call is listed and approved with
// `agentaudit approvals`, and the session is in the log afterwards.
func TestMCPProxyCommand(t *testing.T) {
	index, _ := filepath.Abs("../mcpproxy/testdata/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Missing(t, "node is not installed (the MCP server-everything runs on it)")
	}
	if _, err := os.Stat(index); err != nil {
		testenv.Missing(t, "the MCP server-everything is not installed: cd mcpproxy/testdata && npm ci")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := run(t, dir, "", "init"); code != 0 {
		t.Fatal(stderr)
	}
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(policy, []byte("version: 1\nrequire_approval: [echo]\n"), 0o600)

	cr, pw := io.Pipe()
	pr, cw := io.Pipe()
	done := make(chan int, 1)
	var stderr syncBuffer // the server's stderr and the proxy's log both write to it
	go func() {
		code := Run(context.Background(), []string{"--data", dir, "--policy", policy, "mcp-proxy", "--user", "usr_7", "--", "node", index, "stdio"}, cr, cw, &stderr)
		cw.Close()
		done <- code
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "cli-host", Version: "1"}, nil).Connect(ctx, &mcp.IOTransport{Reader: pr, Writer: pw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go approveWhenListed(t, dir)
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "held"}})
	if err != nil || res.IsError {
		t.Fatalf("echo: %v %+v", err, res)
	}
	cs.Close()
	if code := <-done; code != 0 {
		t.Fatalf("mcp-proxy exit %d: %s", code, stderr.String())
	}
	code, out, errs := run(t, dir, "", "query", "--user", "usr_7", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	for _, want := range []string{`"session_start"`, `"approval_request"`, `"approval_decision"`, `"carol"`, `"tool_call"`, `"session_end"`} {
		if !strings.Contains(out, want) {
			t.Errorf("query output lacks %s", want)
		}
	}
	if code, _, errs := run(t, dir, "", "approvals", "approve", "nope"); code == 0 || !strings.Contains(errs, "no pending approval") {
		t.Errorf("approving an unknown id: %d %s", code, errs)
	}
}

// approveWhenListed approves, as carol, the first held call `approvals list` shows.
func approveWhenListed(t *testing.T, dir string) {
	for range 300 {
		code, out, _ := run(t, dir, "", "approvals", "list", "--json")
		var reqs []struct{ ID, Tool string }
		if code == 0 && json.Unmarshal([]byte(out), &reqs) == nil && len(reqs) > 0 {
			if code, out, errs := run(t, dir, "", "approvals", "approve", reqs[0].ID, "--note", "looks fine", "--as", "carol"); code != 0 {
				t.Errorf("approve: %s %s", out, errs)
			}
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Error("no held call was listed")
}

// TestMCPProxyCommandHTTP: `agentaudit --policy P mcp-proxy --upstream URL --listen ADDR` in front
// of the real server-everything's Streamable HTTP endpoint holds a call to a tool the policy
// names until `agentaudit approvals approve` lets it through; request, decision and call are in
// the log.
func TestMCPProxyCommandHTTP(t *testing.T) {
	index, _ := filepath.Abs("../mcpproxy/testdata/node_modules/@modelcontextprotocol/server-everything/dist/index.js")
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Missing(t, "node is not installed (the MCP server-everything runs on it)")
	}
	if _, err := os.Stat(index); err != nil {
		testenv.Missing(t, "the MCP server-everything is not installed: cd mcpproxy/testdata && npm ci")
	}
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := run(t, dir, "", "init"); code != 0 {
		t.Fatal(stderr)
	}
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(policy, []byte("version: 1\nrequire_approval: [echo]\n"), 0o600)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	l.Close()
	srv := exec.Command("node", index, "streamableHttp")
	srv.Env = append(os.Environ(), "PORT="+port)
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { srv.Process.Kill(); srv.Wait() }()
	for i := 0; ; i++ {
		if c, err := net.Dial("tcp", "127.0.0.1:"+port); err == nil {
			c.Close()
			break
		}
		if i == 200 {
			t.Fatal("server-everything (streamableHttp) did not listen")
		}
		time.Sleep(25 * time.Millisecond)
	}

	ctx, stop := context.WithCancel(context.Background())
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"--data", dir, "--policy", policy, "mcp-proxy", "--user", "usr_8",
			"--upstream", "http://127.0.0.1:" + port + "/mcp", "--listen", "127.0.0.1:0"}, strings.NewReader(""), io.Discard, &stderr)
	}()
	endpoint := ""
	for range 200 {
		if _, after, ok := strings.Cut(stderr.String(), "mcp-proxy: "); ok {
			endpoint = strings.Fields(after)[0]
			break
		}
		time.Sleep(25 * time.Millisecond)
	}
	if endpoint == "" {
		stop()
		t.Fatalf("mcp-proxy did not say where it listens: %s", stderr.String())
	}
	cctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "cli-http-host", Version: "1"}, nil).Connect(cctx,
		&mcp.StreamableClientTransport{Endpoint: endpoint, HTTPClient: &http.Client{}, MaxRetries: -1}, nil)
	if err != nil {
		t.Fatal(err)
	}
	go approveWhenListed(t, dir)
	res, err := cs.CallTool(cctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "held over http"}})
	if err != nil || res.IsError {
		t.Fatalf("echo: %v %+v", err, res)
	}
	cs.Close()
	stop()
	if code := <-done; code != 0 {
		t.Fatalf("mcp-proxy exit %d: %s", code, stderr.String())
	}
	code, out, errs := run(t, dir, "", "query", "--user", "usr_8", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	for _, want := range []string{`"approval_request"`, `"approval_decision"`, `"carol"`, `"tool_call"`, `held over http`} {
		if !strings.Contains(out, want) {
			t.Errorf("query output lacks %s", want)
		}
	}
}
