package mcpproxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/heldsink"
	"github.com/agentaudit/agentaudit/mcpproxy"
)

// TestAnswerAndRecording: a tools/call to the real server-everything, over stdio and Streamable
// HTTP. In async mode (mcp-proxy's default) the client has the answer while its recording is
// still held; in sync mode it has nothing until the recording is done. Either way the call is
// recorded once, with its result.
func TestAnswerAndRecording(t *testing.T) {
	argv := everything(t)
	ctx := context.Background()
	connect := map[string]func(t *testing.T, cfg mcpproxy.Config) (*mcp.ClientSession, func()){
		"stdio": func(t *testing.T, cfg mcpproxy.Config) (*mcp.ClientSession, func()) {
			p, err := mcpproxy.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			cr, pw := io.Pipe()
			pr, cw := io.Pipe()
			done := make(chan error, 1)
			go func() {
				err := p.RunCommand(ctx, argv, cr, cw, os.Stderr)
				cw.Close()
				done <- err
			}()
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "order-test", Version: "1"}, nil).Connect(ctx, &mcp.IOTransport{Reader: pr, Writer: pw}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return cs, func() { cs.Close(); <-done }
		},
		"http": func(t *testing.T, cfg mcpproxy.Config) (*mcp.ClientSession, func()) {
			hp, err := mcpproxy.NewHTTP(cfg, everythingHTTP(t))
			if err != nil {
				t.Fatal(err)
			}
			srv := httptest.NewServer(hp)
			cs, err := mcp.NewClient(&mcp.Implementation{Name: "order-test", Version: "1"}, nil).Connect(ctx,
				&mcp.StreamableClientTransport{Endpoint: srv.URL, HTTPClient: &http.Client{}, MaxRetries: -1}, nil)
			if err != nil {
				t.Fatal(err)
			}
			return cs, func() { cs.Close(); hp.Close(); srv.Close() }
		},
	}
	for _, transport := range []string{"stdio", "http"} {
		for _, tc := range []struct {
			mode          agentaudit.Mode
			answerWaiting bool // the answer waits for its recording
		}{{agentaudit.Async, false}, {agentaudit.Sync, true}} {
			t.Run(transport+"/"+tc.mode.String(), func(t *testing.T) {
				// Tool calls are held; the rest (the session's start) is recorded at once.
				sink := heldsink.New(func(ev *event.Event) bool { return ev.Kind == event.KindToolCall })
				release := sink.Release
				rec, err := agentaudit.New(sink, agentaudit.WithMode(tc.mode))
				if err != nil {
					t.Fatal(err)
				}
				cs, closeAll := connect[transport](t, mcpproxy.Config{Recorder: rec})
				stop := sync.OnceFunc(closeAll)
				defer stop()
				defer release() // before stop, which waits for the held proxy
				answer := make(chan error, 1)
				go func() {
					_, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hello"}})
					answer <- err
				}()
				if tc.answerWaiting {
					select {
					case err := <-answer:
						t.Fatalf("the answer (err %v) arrived before its recording", err)
					case <-time.After(300 * time.Millisecond):
					}
					release()
					if err := <-answer; err != nil {
						t.Fatal(err)
					}
				} else {
					select {
					case err := <-answer:
						if err != nil {
							t.Fatal(err)
						}
					case <-time.After(10 * time.Second):
						t.Fatal("the answer waited for its recording")
					}
					release()
				}
				stop()
				if err := rec.Close(); err != nil {
					t.Fatal(err)
				}
				var calls []*event.Event
				for _, ev := range sink.Events() {
					if ev.Kind == event.KindToolCall {
						calls = append(calls, ev)
					}
				}
				if len(calls) != 1 || calls[0].ToolName != "echo" || len(calls[0].Result) == 0 {
					t.Fatalf("recorded tool calls %+v; want the one echo with its result", calls)
				}
			})
		}
	}
}
