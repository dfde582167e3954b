package mcpproxy_test

import (
	"context"
	"net/http"
	"os/exec"
	"slices"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/mcpproxy"
)

// BenchmarkToolsCall measures one tools/call (echo) against the real server-everything, directly
// and through the proxy (recording to an embedded data directory, async: mcp-proxy's default;
// and sync: committed before the answer is forwarded), in one run; the difference of the
// percentiles is what the proxy adds. The same over Streamable HTTP, directly and proxied.
//
//	go test -run '^$' -bench ToolsCall -benchtime 3000x -count 3 ./mcpproxy
func BenchmarkToolsCall(b *testing.B) {
	argv := everything(b)
	latencies := func(b *testing.B, cs *mcp.ClientSession) {
		ctx := context.Background()
		params := &mcp.CallToolParams{Name: "echo", Arguments: map[string]any{"message": "hello"}}
		for range 50 { // warm up node's JIT
			cs.CallTool(ctx, params)
		}
		var lat []time.Duration
		for b.Loop() {
			t := time.Now()
			if _, err := cs.CallTool(ctx, params); err != nil {
				b.Fatal(err)
			}
			lat = append(lat, time.Since(t))
		}
		slices.Sort(lat)
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
	b.Run("direct", func(b *testing.B) {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(context.Background(),
			&mcp.CommandTransport{Command: exec.Command(argv[0], argv[1:]...)}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		latencies(b, cs)
	})
	for _, mode := range []agentaudit.Mode{agentaudit.Async, agentaudit.Sync} {
		b.Run("proxied-"+mode.String(), func(b *testing.B) {
			h := start(b, argv, mcpproxy.Config{}, agentaudit.WithMode(mode))
			defer func() { h.client.Close(); <-h.done; h.rec.Close() }()
			latencies(b, h.client)
		})
	}
	b.Run("http/direct", func(b *testing.B) {
		cs, err := mcp.NewClient(&mcp.Implementation{Name: "bench", Version: "1"}, nil).Connect(context.Background(),
			&mcp.StreamableClientTransport{Endpoint: everythingHTTP(b), HTTPClient: &http.Client{}, MaxRetries: -1}, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer cs.Close()
		latencies(b, cs)
	})
	b.Run("http/proxied-async", func(b *testing.B) {
		h := startHTTP(b, mcpproxy.Config{})
		defer func() { h.client.Close(); h.closeProxy(); h.rec.Close() }()
		latencies(b, h.client)
	})
}
