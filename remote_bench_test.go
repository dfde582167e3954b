package agentaudit_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/event"
)

// BenchmarkRemote: events queued into a Remote and delivered to a real server on loopback
// (SQLite data directory, the default policy), Flush at the end: the client's throughput end
// to end.
//
//	go test -run '^$' -bench Remote -benchtime 20000x .
func BenchmarkRemote(b *testing.B) {
	hs, _, key := loopbackServer(b)
	for _, spool := range []bool{false, true} {
		b.Run(fmt.Sprintf("spool=%v", spool), func(b *testing.B) {
			opts := []agentaudit.RemoteOption{agentaudit.WithRemoteLogger(slog.New(slog.DiscardHandler))}
			if spool {
				opts = append(opts, agentaudit.WithSpool(filepath.Join(b.TempDir(), "spool"), 0), sanitizer(b))
			}
			r, err := agentaudit.Dial(hs.URL, key, opts...)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			i := 0
			start := time.Now()
			for b.Loop() {
				ev := &event.Event{Kind: event.KindToolCall, SessionID: "bench", ToolName: "get_order", Arguments: []byte(fmt.Sprintf(`{"order_id":"ORD-%d"}`, i))}
				if err := r.Enqueue(ctx, ev, nil); err != nil {
					b.Fatal(err)
				}
				i++
			}
			if err := r.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			// Delivered, not only queued: the clock runs until Flush returns.
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "delivered-events/s")
			if err := r.Close(); err != nil || r.Lost() != 0 {
				b.Fatal(err, r.Lost())
			}
		})
	}
}
