package store_test

import (
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/benchevent"
	"github.com/agentaudit/agentaudit/retention"
	"github.com/agentaudit/agentaudit/store"
)

// BenchmarkColumnsOf reads the query columns of the append benchmarks' 1 KiB event, classified
// as serve classifies it: what the ledger's preparers and verification do per event.
func BenchmarkColumnsOf(b *testing.B) {
	ev := benchevent.KiB(1)
	ev.RecordedAt = time.Now().UTC()
	class, until, err := retention.Default().Classify(ev)
	if err != nil {
		b.Fatal(err)
	}
	ev.RetentionClass, ev.RetainUntil = class, until
	body, err := ev.Canonical()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ColumnsOf", func(b *testing.B) {
		for b.Loop() {
			if _, err := store.ColumnsOf(body); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ColumnReader", func(b *testing.B) { // as the ledger's preparers and verification read them
		var r store.ColumnReader
		for b.Loop() {
			if _, err := r.Of(body); err != nil {
				b.Fatal(err)
			}
		}
	})
}
