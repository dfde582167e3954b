package agentaudit_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/server"
)

// BenchmarkRemote: events queued into a Remote and delivered to a real server on loopback
// (SQLite data directory, the default policy), Flush at the end: the client's throughput end
// to end.
//
//	go test -run '^$' -bench Remote -benchtime 20000x .
func BenchmarkRemote(b *testing.B) {
	d := datadir.Dir{Path: filepath.Join(b.TempDir(), "data")}
	if _, err := d.Init(context.Background(), ""); err != nil {
		b.Fatal(err)
	}
	w, err := d.OpenWriter(context.Background(), ledger.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	keys, _ := apikey.Open(d.APIKeys())
	key, _, _ := keys.Create("bench", apikey.Writer)
	v, _ := d.Verifier()
	srv, err := server.New(server.Config{Ledger: w.Ledger, Store: w.Store, Keys: keys, Verifier: v})
	if err != nil {
		b.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()
	for _, spool := range []bool{false, true} {
		b.Run(fmt.Sprintf("spool=%v", spool), func(b *testing.B) {
			opts := []agentaudit.RemoteOption{agentaudit.WithRemoteLogger(slog.New(slog.DiscardHandler))}
			if spool {
				opts = append(opts, agentaudit.WithSpool(filepath.Join(b.TempDir(), "spool"), 0))
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
