package cli

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
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
	go func() {
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
	}()
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
