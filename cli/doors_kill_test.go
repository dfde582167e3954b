package cli

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/agentaudit/agentaudit/internal/testenv"
)

// TestMCPProxyKilled: `mcp-proxy --mode sync` in front of the real server-everything is
// SIGKILLed, three times, right after the client has read an answer. Every answered tools/call
// (acknowledged = its answer was forwarded) is in the log afterwards: none lost, none twice.
func TestMCPProxyKilled(t *testing.T) {
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
	acked := 0
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "AGENTAUDIT_TEST_CLI=--data "+dir+" mcp-proxy --mode sync -- node "+index+" stdio")
		in, _ := cmd.StdinPipe()
		outPipe, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		out := bufio.NewReader(outPipe)
		answer := func(id int) {
			t.Helper()
			for {
				line, err := out.ReadString('\n')
				if err != nil {
					t.Fatalf("round %d: waiting for %d: %v", round, id, err)
				}
				if strings.Contains(line, fmt.Sprintf(`"id":%d`, id)) {
					return
				}
			}
		}
		io.WriteString(in, `{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"kill","version":"0"}}}`+"\n")
		answer(0)
		io.WriteString(in, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n")
		for i := 1; i <= 10+round*7; i++ {
			fmt.Fprintf(in, `{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"get-sum","arguments":{"a":%d,"b":1}}}`+"\n", i, i)
			answer(i)
			acked++
		}
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		in.Close()
	}
	code, out, errs := run(t, dir, "", "query", "--tool", "get-sum", "--kind", "tool_call", "--limit", "1000", "--json")
	if code != 0 {
		t.Fatal(errs)
	}
	if got := strings.Count(out, `"kind": "tool_call"`); got != acked {
		t.Errorf("%d get-sum calls in the log, %d answered; query said:\n%.600s", got, acked, out)
	}
}
