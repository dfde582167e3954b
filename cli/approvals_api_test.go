package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestMCPProxyApprovalsThroughAPI: `agentaudit serve` and `agentaudit mcp-proxy --server` on one
// data directory; the proxy holds the real server-everything's echo, a person lists the held
// call with GET /v1/approvals and approves one, rejects another with POST
// /v1/approvals/ID/approve|reject; the MCP client sees the tool run, then the tool error with
// the key and the note, and the server's log has both decisions with apikey:NAME.
func TestMCPProxyApprovalsThroughAPI(t *testing.T) {
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
	key := func(role string) string {
		code, out, errs := run(t, dir, "", "keys", "create", "--role", role, "--name", "ops-"+role)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || !strings.HasPrefix(lines[len(lines)-1], "aak_") {
			t.Fatalf("keys create: %d %q %q", code, out, errs)
		}
		return lines[len(lines)-1]
	}
	auditor, writer := key("auditor"), key("writer")
	keyFile := filepath.Join(t.TempDir(), "writer.key")
	os.WriteFile(keyFile, []byte(writer+"\n"), 0o600)
	policy := filepath.Join(t.TempDir(), "policy.yaml")
	os.WriteFile(policy, []byte("version: 1\nrequire_approval: [echo]\n"), 0o600)

	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	base := "http://" + addr
	sctx, stop := context.WithCancel(context.Background())
	served := make(chan int, 1)
	var serveErr syncBuffer
	go func() {
		served <- Run(sctx, []string{"--data", dir, "serve", "--listen", addr}, strings.NewReader(""), io.Discard, &serveErr)
	}()
	defer func() {
		stop()
		if code := <-served; code != 0 {
			t.Errorf("serve exited %d: %s", code, serveErr.String())
		}
	}()
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+auditor)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for i := 0; ; i++ {
		if code, _ := call("GET", "/v1/approvals", ""); code == 200 {
			break
		}
		if i == 400 {
			t.Fatalf("serve did not answer: %s", serveErr.String())
		}
		time.Sleep(25 * time.Millisecond)
	}

	cr, pw := io.Pipe()
	pr, cw := io.Pipe()
	done := make(chan int, 1)
	var stderr syncBuffer
	go func() {
		code := Run(context.Background(), []string{"--data", dir, "--policy", policy, "mcp-proxy", "--server", base, "--key-file", keyFile,
			"--mode", "sync", "--user", "usr_9", "--", "node", index, "stdio"}, cr, cw, &stderr)
		cw.Close()
		done <- code
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "api-host", Version: "1"}, nil).Connect(ctx, &mcp.IOTransport{Reader: pr, Writer: pw}, nil)
	if err != nil {
		t.Fatal(err)
	}
	decideNext := func(verb, note string) {
		for range 300 {
			code, body := call("GET", "/v1/approvals", "")
			var list struct {
				Approvals []struct{ ID, Tool, UserID string } `json:"approvals"`
			}
			if code == 200 && json.Unmarshal([]byte(body), &list) == nil && len(list.Approvals) > 0 {
				if a := list.Approvals[0]; a.Tool != "echo" {
					t.Errorf("listed %+v", a)
				}
				if code, body := call("POST", "/v1/approvals/"+list.Approvals[0].ID+"/"+verb, `{"note": "`+note+`"}`); code != 200 {
					t.Errorf("%s: %d %s", verb, code, body)
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
		t.Error("no held call was listed")
	}
	text := func(r *mcp.CallToolResult) string {
		var b bytes.Buffer
		for _, c := range r.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		return b.String()
	}

	go decideNext("approve", "ticket OPS-12")
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "held"}})
	if err != nil || res.IsError || !strings.Contains(text(res), "held") {
		t.Fatalf("approved echo: %v %+v", err, res)
	}
	go decideNext("reject", "not today")
	res, err = cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "refused"}})
	if err != nil || !res.IsError || !strings.Contains(text(res), "rejected by apikey:ops-auditor: not today") {
		t.Fatalf("rejected echo: %v %+v", err, res)
	}
	cs.Close()
	if code := <-done; code != 0 {
		t.Fatalf("mcp-proxy exit %d: %s", code, stderr.String())
	}
	code, body := call("GET", "/v1/events?kind=approval_decision&user_id=usr_9", "")
	if code != 200 {
		t.Fatalf("events: %d %s", code, body)
	}
	for _, want := range []string{`"approval_status":"approved","approver_id":"apikey:ops-auditor"`, `"rationale":"ticket OPS-12"`,
		`"approval_status":"rejected","approver_id":"apikey:ops-auditor"`, `"rationale":"not today"`} {
		if !strings.Contains(body, want) {
			t.Errorf("the log lacks %s: %s", want, body)
		}
	}
}
