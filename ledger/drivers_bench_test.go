package ledger_test

import (
	"context"
	"testing"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
)

// BenchmarkDriversAppendBatch is BenchmarkAppendBatch on each driver in one run: 64 goroutines
// each appending batches of 100 1 KiB events through one ledger, durably (SQLite fsyncs each
// commit; PostgreSQL commits with synchronous_commit on).
func BenchmarkDriversAppendBatch(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			appendBatches(b, newDFixOpts(b, be, ledger.Options{Sanitizer: ledger.Unsanitized}).l)
		})
	}
}

// BenchmarkDriversVerify: full verification of a log of 1,000,000 1 KiB events on each driver
// (AGENTAUDIT_BENCH_EVENTS for another size). Building the log is not timed.
func BenchmarkDriversVerify(b *testing.B) {
	n := benchEvents()
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			f := newDFixOpts(b, be, ledger.Options{Sanitizer: ledger.Unsanitized})
			const batch = 4096
			evs := make([]*event.Event, 0, batch)
			for i := range n {
				evs = append(evs, kibEvent(i))
				if len(evs) == batch || i == n-1 {
					if _, err := f.l.AppendBatch(context.Background(), evs); err != nil {
						b.Fatal(err)
					}
					evs = evs[:0]
				}
			}
			f.close()
			st := f.reopenStore(b)
			b.ResetTimer()
			for b.Loop() {
				rep, err := ledger.Verify(context.Background(), st, f.v, ledger.VerifyOptions{})
				if err != nil || rep.Events != n {
					b.Fatalf("%v %+v", err, rep)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
