package agentaudit_test

import (
	"context"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/ledger"
)

// benchWrapped measures the latency a wrapped tool call adds, with concurrent agents.
func benchWrapped(b *testing.B, mode agentaudit.Mode, agents int) {
	rec, err := openEmbedded(b.TempDir(), ledger.Options{}, agentaudit.WithMode(mode))
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	tool := agentaudit.WrapTool(rec, "get_order", func(ctx context.Context, id string) (string, error) { return "shipped", nil })
	ctx, _, _ := rec.StartSession(context.Background(), agentaudit.SessionInfo{UserID: "u", AgentID: "a"})
	lat := make([][]time.Duration, agents)
	var next sync.Mutex
	n := 0
	b.ResetTimer()
	var wg sync.WaitGroup
	for a := 0; a < agents; a++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				if n >= b.N {
					next.Unlock()
					return
				}
				n++
				next.Unlock()
				t := time.Now()
				if _, err := tool(ctx, "ORD-456"); err != nil {
					b.Error(err)
					return
				}
				lat[a] = append(lat[a], time.Since(t))
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	var all []time.Duration
	for _, l := range lat {
		all = append(all, l...)
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	if len(all) > 0 {
		b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
		b.ReportMetric(float64(len(all))/b.Elapsed().Seconds(), "calls/s")
	}
	rec.Flush(context.Background())
}

// BenchmarkWrapToolAsync: one agent; the queue absorbs the writes.
func BenchmarkWrapToolAsync(b *testing.B) { benchWrapped(b, agentaudit.Async, 1) }

// BenchmarkWrapToolSync64: 64 agents, each call waits for its durable commit.
func BenchmarkWrapToolSync64(b *testing.B) { benchWrapped(b, agentaudit.Sync, 64) }

// BenchmarkRecordSustained: events/s through the SDK into the embedded store, async, including
// the commit of every event (Flush at the end is inside the timing).
func BenchmarkRecordSustained(b *testing.B) {
	rec, err := openEmbedded(b.TempDir(), ledger.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer rec.Close()
	ctx, sess, _ := rec.StartSession(context.Background(), agentaudit.SessionInfo{UserID: "u", AgentID: "a"})
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := sess.Reasoning(ctx, "decide", "because"); err != nil {
			b.Fatal(err)
		}
	}
	if err := rec.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
