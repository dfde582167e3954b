package mcpproxy_test

import (
	"context"
	"net/http"
	"os/exec"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/internal/benchlat"
	"github.com/agentaudit/agentaudit/mcpproxy"
)

// BenchmarkToolsCall measures what the proxy adds to one tools/call (echo) of the real
// server-everything, "against the same server without the proxy in one run": each call through
// the proxy is paired with one made directly to a second server-everything started the same way
// and warmed up the same, back to back, alternating which goes first (benchlat), so the noise of
// a shared machine lands on both; it reports both sides' p50 and p99, the added p50 and p99, the
// median of the per-pair differences and a bootstrap interval of the added p99. Over stdio with
// the proxy recording to an embedded data directory async (mcp-proxy's default) and sync
// (committed before the answer is forwarded), and over Streamable HTTP, async. The recorder is
// flushed between pairs, outside the timing.
//
//	go test -run '^$' -bench ToolsCall -benchtime 3000x -count 3 ./mcpproxy
func BenchmarkToolsCall(b *testing.B) {
	argv := everything(b)
	ctx := context.Background()
	params := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hello"}}
	call := func(cs *mcp.ClientSession) benchlat.Call {
		return func(b *testing.B) time.Duration {
			t := time.Now()
			if _, err := cs.CallTool(ctx, params); err != nil {
				b.Fatal(err)
			}
			return time.Since(t)
		}
	}
	measure := func(b *testing.B, direct *mcp.ClientSession, h *harness) {
		d, p := call(direct), call(h.client)
		for range 200 { // warm up both node processes' JIT alike
			d(b)
			p(b)
		}
		flush := func() {
			if err := h.rec.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		flush()
		benchlat.Measure(b, d, p, flush).Report(b)
	}
	stdio := func(b *testing.B) *mcp.ClientSession {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx,
			&mcp.CommandTransport{Command: exec.Command(argv[0], argv[1:]...)}, nil)
		if err != nil {
			b.Fatal(err)
		}
		return cs
	}
	for _, mode := range []agentaudit.Mode{agentaudit.Async, agentaudit.Sync} {
		b.Run("stdio/"+mode.String(), func(b *testing.B) {
			direct := stdio(b)
			defer direct.Close()
			h := start(b, argv, mcpproxy.Config{}, agentaudit.WithMode(mode))
			defer func() { h.client.Close(); <-h.done; h.rec.Close() }()
			measure(b, direct, h)
		})
	}
	b.Run("http/async", func(b *testing.B) {
		direct, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(ctx,
			&mcp.StreamableClientTransport{Endpoint: everythingHTTP(b), HTTPClient: &http.Client{}, MaxRetries: -1}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer direct.Close()
		h := startHTTP(b, mcpproxy.Config{})
		defer func() { h.client.Close(); h.closeProxy(); h.rec.Close() }()
		measure(b, direct, h)
	})
}
