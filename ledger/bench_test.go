package ledger_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/benchevent"
	"github.com/agentaudit/agentaudit/internal/cputime"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/retention"
	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

// kibEvent is a tool call whose canonical form is about 1 KiB; the Tessera harness
// (bench/tessera) appends the same events.
func kibEvent(i int64) *event.Event { return benchevent.KiB(i) }

// BenchmarkAppend: 64 goroutines each appending one 1 KiB event at a time, durably.
func BenchmarkAppend(b *testing.B) {
	f := newFixture(b, ledger.Options{Sanitizer: ledger.Unsanitized})
	var n atomic.Int64
	b.SetParallelism(64 / max(1, runtimeProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := f.l.Append(context.Background(), kibEvent(n.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppendBatch: 64 goroutines each appending batches of 100 1 KiB events, durably.
func BenchmarkAppendBatch(b *testing.B) {
	benchAppendBatch(b, ledger.Options{Sanitizer: ledger.Unsanitized})
}

// BenchmarkAppendBatchRetention is BenchmarkAppendBatch with the built-in retention table, as
// every data directory has it: each event is classified and carries its class and retain_until.
func BenchmarkAppendBatchRetention(b *testing.B) {
	benchAppendBatch(b, ledger.Options{Sanitizer: ledger.Unsanitized, Retention: retention.Default()})
}

func benchAppendBatch(b *testing.B, opts ledger.Options) {
	appendBatches(b, newFixture(b, opts).l)
}

// appendBatches times 64 goroutines each appending batches of 100 1 KiB events to l, b.N
// batches in all.
func appendBatches(b *testing.B, l *ledger.Ledger) {
	var n atomic.Int64
	b.SetParallelism(64 / max(1, runtimeProcs()))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		evs := make([]*event.Event, 100)
		for pb.Next() {
			for i := range evs {
				evs[i] = kibEvent(n.Add(1))
			}
			if _, err := l.AppendBatch(context.Background(), evs); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}

// bigLog builds (once per process) a closed log of n 1 KiB events and returns its directory.
var bigLogs sync.Map

func bigLog(b *testing.B, n int64) (dir string, v note.Verifier) {
	type built struct {
		dir string
		v   note.Verifier
	}
	if x, ok := bigLogs.Load(n); ok {
		return x.(built).dir, x.(built).v
	}
	dir, err := os.MkdirTemp("", "agentaudit-bench-")
	if err != nil {
		b.Fatal(err)
	}
	skey, vkey, _ := ledger.GenerateKey(origin)
	s, _ := note.NewSigner(skey)
	v, _ = note.NewVerifier(vkey)
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "ledger.db")})
	if err != nil {
		b.Fatal(err)
	}
	l, err := ledger.Open(context.Background(), st, s, v, ledger.Options{Sanitizer: ledger.Unsanitized})
	if err != nil {
		b.Fatal(err)
	}
	const batch = 4096
	evs := make([]*event.Event, 0, batch)
	for i := int64(0); i < n; i++ {
		evs = append(evs, kibEvent(i))
		if len(evs) == batch || i == n-1 {
			if _, err := l.AppendBatch(context.Background(), evs); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
	}
	l.Close()
	st.Close()
	bigLogs.Store(n, built{dir, v})
	return dir, v
}

// BenchmarkVerify: full verification of a log of 1,000,000 events (set AGENTAUDIT_BENCH_EVENTS
// for another size).
func BenchmarkVerify(b *testing.B) {
	n := benchEvents()
	dir, v := bigLog(b, n)
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "ledger.db"), ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	b.ResetTimer()
	cpu := cputime.Process()
	for b.Loop() {
		rep, err := ledger.Verify(context.Background(), st, v, ledger.VerifyOptions{})
		if err != nil || rep.Events != n {
			b.Fatalf("%v %+v", err, rep)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	b.ReportMetric(float64(cputime.Process()-cpu)/float64(n)/float64(b.N), "cpu-ns/event")
}

// BenchmarkVerifyCeiling measures, on the log BenchmarkVerify checks, the parts verification
// cannot do without, each alone on one goroutine: stepping through the stored events (the scan
// with its query columns, fn doing nothing), and SHA-256 of every leaf with reading each body's
// columns (over events held in memory). Verification runs them side by side on the machine's
// cores; its rate cannot pass the slower of them.
func BenchmarkVerifyCeiling(b *testing.B) {
	n := benchEvents()
	dir, _ := bigLog(b, n)
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "ledger.db"), ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	b.Run("scan", func(b *testing.B) {
		cpu := cputime.Process()
		for b.Loop() {
			var rows int64
			if err := st.ScanEntries(context.Background(), 0, func(store.Entry) error { rows++; return nil }); err != nil || rows != n {
				b.Fatal(rows, err)
			}
		}
		b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		b.ReportMetric(float64(cputime.Process()-cpu)/float64(n)/float64(b.N), "cpu-ns/event")
	})
	b.Run("hash+columns", func(b *testing.B) {
		const m = 100_000 // held in memory, read again
		var salts, bodies [][]byte
		err := st.ScanEntries(context.Background(), 0, func(e store.Entry) error {
			if len(bodies) < m {
				salts, bodies = append(salts, bytes.Clone(e.Salt)), append(bodies, bytes.Clone(e.Body))
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
		for b.Loop() {
			for i := range bodies {
				ledger.LeafHash(salts[i], bodies[i])
				if _, err := store.ColumnsOf(bodies[i]); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.ReportMetric(float64(len(bodies))*float64(b.N)/b.Elapsed().Seconds(), "events/s")
	})
}

// BenchmarkProveInclusion: build and verify one inclusion bundle in a log of 1,000,000 events.
func BenchmarkProveInclusion(b *testing.B) {
	n := benchEvents()
	dir, v := bigLog(b, n)
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "ledger.db"), ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	i := int64(0)
	for b.Loop() {
		i = (i + 7919) % n
		bundle, err := ledger.Prove(context.Background(), st, fmt.Sprintf("bench-%012d", i))
		if err != nil {
			b.Fatal(err)
		}
		data, _ := json.Marshal(bundle)
		if _, err := ledger.VerifyBundle(data, v); err != nil {
			b.Fatal(err)
		}
	}
}

func benchEvents() int64 {
	var n int64 = 1_000_000
	if s := os.Getenv("AGENTAUDIT_BENCH_EVENTS"); s != "" {
		fmt.Sscan(s, &n)
	}
	return n
}

func runtimeProcs() int { return runtime.GOMAXPROCS(0) }
