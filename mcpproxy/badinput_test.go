package mcpproxy_test

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/embedded"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/mcpproxy"
)

// rawProxy runs the proxy in front of argv with raw pipes for the client, recording into a new
// data directory.
type rawProxy struct {
	dir  string
	rec  *agentaudit.Recorder
	in   io.WriteCloser
	out  *bufio.Reader
	done chan error
}

func startRaw(t *testing.T, argv []string, max int) *rawProxy {
	t.Helper()
	return startRawConfig(t, argv, mcpproxy.Config{MaxMessageBytes: max})
}

func startRawConfig(t *testing.T, argv []string, cfg mcpproxy.Config) *rawProxy {
	t.Helper()
	r := &rawProxy{dir: filepath.Join(t.TempDir(), "data"), done: make(chan error, 1)}
	sink, err := embedded.Open(r.dir, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r.rec, _ = agentaudit.New(sink)
	cfg.Recorder = r.rec
	p, err := mcpproxy.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cr, pw := io.Pipe()
	pr, cw := io.Pipe()
	r.in, r.out = pw, bufio.NewReaderSize(pr, 1<<20)
	go func() {
		err := p.RunCommand(context.Background(), argv, cr, cw, os.Stderr)
		cw.Close()
		r.done <- err
	}()
	return r
}

func (r *rawProxy) wait(t *testing.T) ([]*event.Event, error) {
	t.Helper()
	var err error
	select {
	case err = <-r.done:
	case <-time.After(20 * time.Second):
		t.Fatal("the proxy hangs")
	}
	r.rec.Close()
	return readEvents(t, r.dir), err
}

func kinds(evs []*event.Event) string {
	var ks []string
	for _, ev := range evs {
		k := string(ev.Kind)
		if ev.ErrorType != "" {
			k += ":" + ev.ErrorType
		}
		ks = append(ks, k)
	}
	return strings.Join(ks, " ")
}

// TestBadInputPassesThrough: behind `cat` (a server that answers with exactly what it got) every
// byte comes back unchanged, whatever the line: a non-JSON line, invalid UTF-8, a message over
// the parse limit, a JSON-RPC batch. Each bad one is recorded as an error event.
func TestBadInputPassesThrough(t *testing.T) {
	const max = 64 << 10
	lines := []string{
		`{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","clientInfo":{"name":"raw","version":"0"}}}`,
		`this is not JSON`,
		"{\"jsonrpc\":\"2.0\",\"method\":\"x\",\"params\":\"\xff\xfe\"}",
		`{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"big","arguments":{"blob":"` + strings.Repeat("a", 3*max) + `"}}}`,
		`[{"jsonrpc":"2.0","id":3,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"}]`,
		`   `,
	}
	r := startRaw(t, []string{"cat"}, max)
	var sent bytes.Buffer
	for _, l := range lines {
		sent.WriteString(l + "\n")
	}
	go func() {
		r.in.Write(sent.Bytes())
		r.in.Close()
	}()
	got, err := io.ReadAll(r.out)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, sent.Bytes()) {
		t.Errorf("the stream changed: sent %d bytes, got %d", sent.Len(), len(got))
	}
	evs, err := r.wait(t)
	if err != nil {
		t.Fatal(err)
	}
	k := kinds(evs)
	// Each bad client line is recorded once from each direction (cat sends it back).
	for _, want := range []string{"error:malformed_jsonrpc", "error:invalid_utf8", "error:oversized_message"} {
		if strings.Count(k, want) != 2 {
			t.Errorf("want %s twice in %s", want, k)
		}
	}
}

// TestServerExitsMidCall: a server that reads the call and exits with status 3. The proxy ends,
// the client sees its output close (as it would without the proxy), the call is recorded as
// unanswered and the exit as an error.
func TestServerExitsMidCall(t *testing.T) {
	r := startRaw(t, []string{"sh", "-c", "head -n 1 >/dev/null; exit 3"}, 0)
	go io.WriteString(r.in, `{"jsonrpc":"2.0","id":"c1","method":"tools/call","params":{"name":"slow","arguments":{}}}`+"\n")
	if b, _ := io.ReadAll(r.out); len(b) != 0 {
		t.Errorf("client got %q", b)
	}
	evs, err := r.wait(t)
	if err == nil || !strings.Contains(err.Error(), "exited") {
		t.Errorf("RunCommand: %v", err)
	}
	k := kinds(evs)
	if !strings.Contains(k, "tool_call:unanswered") || !strings.Contains(k, "error:server_exit") || !strings.HasSuffix(k, "session_end") {
		t.Errorf("events: %s", k)
	}
	if calls := toolCalls(evs); calls["slow"] == nil || calls["slow"].ToolCallID != "c1" {
		t.Errorf("the unanswered call: %+v", calls["slow"])
	}
}

// TestClientDisconnectsMidCall: the client closes while the real server runs a long tool. The
// proxy ends (the server is stopped), and the call and the session end are recorded.
func TestClientDisconnectsMidCall(t *testing.T) {
	r := startRaw(t, everything(t), 0)
	io.WriteString(r.in, `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"raw","version":"0"}}}`+"\n")
	if _, err := r.out.ReadBytes('\n'); err != nil {
		t.Fatal(err)
	}
	io.WriteString(r.in, `{"jsonrpc":"2.0","method":"notifications/initialized"}`+"\n")
	io.WriteString(r.in, `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"trigger-long-running-operation","arguments":{"duration":30,"steps":2}}}`+"\n")
	time.Sleep(300 * time.Millisecond)
	r.in.Close()
	go io.Copy(io.Discard, r.out)
	evs, _ := r.wait(t)
	k := kinds(evs)
	if !strings.HasPrefix(k, "session_start") || !strings.HasSuffix(k, "session_end") || toolCalls(evs)["trigger-long-running-operation"] == nil {
		t.Errorf("events: %s", k)
	}
	if ev := toolCalls(evs)["trigger-long-running-operation"]; ev != nil && (ev.Success == nil || *ev.Success) {
		t.Errorf("a call the client left is recorded as a success: %+v", ev)
	}
}
