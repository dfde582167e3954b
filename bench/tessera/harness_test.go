package tesserabench

import (
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/transparency-dev/tessera"
	"github.com/transparency-dev/tessera/storage/posix"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/benchevent"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

// writers is the number of concurrent appenders on both sides.
const writers = 64

const origin = "bench.agentaudit.local/log"

// appendFunc appends events first .. first+n-1 and returns once all of them are durable.
type appendFunc func(ctx context.Context, first int64, n int) error

// testLog is one log under test: how to append to it and how big it is now.
type testLog struct {
	append appendFunc
	size   func(ctx context.Context) (uint64, error)
}

// entryBytes is what Tessera is handed for event i: the canonical bytes of the same event the
// ledger is handed, with RecordedAt set as the ledger sets it.
func entryBytes(i int64) ([]byte, error) {
	ev := benchevent.KiB(i)
	ev.RecordedAt = time.Now().UTC()
	return ev.Canonical()
}

// openTessera starts a Tessera POSIX log in a fresh directory under the Go temp dir. opts nil
// means Tessera's defaults (with the checkpoint signer it requires).
func openTessera(tb testing.TB, opts *tessera.AppendOptions) testLog {
	tb.Helper()
	skey, _, err := note.GenerateKey(rand.Reader, origin)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	if opts == nil {
		opts = tessera.NewAppendOptions()
	}
	dir, err := os.MkdirTemp("", "tessera-bench-")
	if err != nil {
		tb.Fatal(err)
	}
	// Background tasks (the batch flusher, checkpoint publishing) run until ctx is cancelled.
	// Teardown cancels without calling the appender's shutdown, which would wait up to one
	// checkpoint interval (10 s) for a checkpoint that the measurement does not need: every
	// future has resolved by then, so the entries are already durable. A task may still be
	// finishing a write after the cancel (Tessera offers no way to wait for them), so the
	// directory's removal is retried for a while.
	ctx, cancel := context.WithCancel(context.Background())
	tb.Cleanup(func() {
		cancel()
		for try := 0; ; try++ {
			err := os.RemoveAll(dir)
			if err == nil {
				return
			}
			if try == 100 {
				tb.Errorf("removing Tessera's directory: %v", err)
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
	driver, err := posix.New(ctx, posix.Config{Path: filepath.Join(dir, "tessera")})
	if err != nil {
		tb.Fatal(err)
	}
	a, _, reader, err := tessera.NewAppender(ctx, driver, opts.WithCheckpointSigner(signer))
	if err != nil {
		tb.Fatal(err)
	}
	return testLog{
		append: func(ctx context.Context, first int64, n int) error {
			futures := make([]tessera.IndexFuture, n)
			for i := range futures {
				data, err := entryBytes(first + int64(i))
				if err != nil {
					return err
				}
				futures[i] = a.Add(ctx, tessera.NewEntry(data))
			}
			for _, f := range futures {
				if _, err := f(); err != nil {
					return fmt.Errorf("tessera: %w", err)
				}
			}
			return nil
		},
		size: reader.IntegratedSize,
	}
}

// openLedger opens agentaudit's ledger on a SQLite store in a fresh directory under tb's temp
// dir, with the defaults the ledger's own append benchmarks use.
func openLedger(tb testing.TB) testLog {
	tb.Helper()
	ctx := context.Background()
	skey, vkey, err := ledger.GenerateKey(origin)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := note.NewSigner(skey)
	if err != nil {
		tb.Fatal(err)
	}
	verifier, err := note.NewVerifier(vkey)
	if err != nil {
		tb.Fatal(err)
	}
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(tb.TempDir(), "ledger.db")})
	if err != nil {
		tb.Fatal(err)
	}
	l, err := ledger.Open(ctx, st, signer, verifier, ledger.Options{Sanitizer: ledger.Unsanitized})
	if err != nil {
		st.Close()
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		l.Close()
		st.Close()
	})
	return testLog{
		append: func(ctx context.Context, first int64, n int) error {
			evs := make([]*event.Event, n)
			for i := range evs {
				evs[i] = benchevent.KiB(first + int64(i))
			}
			res, err := l.AppendBatch(ctx, evs)
			if err != nil {
				return fmt.Errorf("agentaudit: %w", err)
			}
			for _, r := range res {
				if r.Err != nil {
					return fmt.Errorf("agentaudit: event %s: %w", r.ID, r.Err)
				}
			}
			return nil
		},
		size: func(context.Context) (uint64, error) { return uint64(l.Head().N), nil },
	}
}

// drive makes calls appends of perCall events each from exactly `writers` goroutines, which
// take the next call number from a shared counter, and returns the first error.
func drive(ctx context.Context, log testLog, calls, perCall int) error {
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	var wg sync.WaitGroup
	for range writers {
		wg.Go(func() {
			for {
				c := next.Add(1) - 1
				if c >= int64(calls) {
					return
				}
				if err := log.append(ctx, c*int64(perCall), perCall); err != nil {
					once.Do(func() { firstErr = err })
					return
				}
			}
		})
	}
	wg.Wait()
	return firstErr
}

// measure times b.N calls of perCall events on log and returns the rate in events/s.
func measure(b *testing.B, log testLog, perCall int) float64 {
	b.ResetTimer()
	err := drive(context.Background(), log, b.N, perCall)
	b.StopTimer()
	if err != nil {
		b.Fatal(err)
	}
	rate := float64(b.N*perCall) / b.Elapsed().Seconds()
	b.ReportMetric(rate, "events/s")
	return rate
}

// BenchmarkVsTessera: for each shape, Tessera's POSIX log and then agentaudit's ledger, 64
// writers, 1 KiB events, durable; agentaudit's rate is also reported as a multiple of the
// Tessera rate measured just before it (x-tessera), and both are printed on one line.
func BenchmarkVsTessera(b *testing.B) {
	for _, shape := range []struct {
		name    string
		perCall int
	}{{"one-per-call", 1}, {"100-per-call", 100}} {
		b.Run(shape.name, func(b *testing.B) {
			var tes, aa float64
			b.Run("tessera", func(b *testing.B) { tes = measure(b, openTessera(b, nil), shape.perCall) })
			if shape.perCall == 1 {
				// Tessera tuned to this workload: a batch is full when every writer has added.
				b.Run("tessera-batch64", func(b *testing.B) {
					opts := tessera.NewAppendOptions().WithBatching(writers, tessera.DefaultBatchMaxAge)
					measure(b, openTessera(b, opts), shape.perCall)
				})
			}
			b.Run("agentaudit", func(b *testing.B) {
				aa = measure(b, openLedger(b), shape.perCall)
				if tes > 0 {
					b.ReportMetric(aa/tes, "x-tessera")
				}
			})
			if tes > 0 && aa > 0 {
				// Printed rather than logged: a parent benchmark's log is not shown. The line
				// starts neither with "Benchmark" nor with a lower-case "key:", so benchstat
				// skips it instead of misreading it as a result or a configuration line.
				fmt.Printf("%s (%d writers, 1 KiB events): tessera %.0f events/s, agentaudit %.0f events/s, agentaudit/tessera %.2f\n",
					strings.TrimPrefix(b.Name(), "Benchmark"), writers, tes, aa, aa/tes)
			}
		})
	}
}

// TestSmoke runs the benchmark's workload briefly on both logs, in both shapes, and checks that
// every acknowledged event is in the log, so the harness cannot silently measure nothing.
func TestSmoke(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(testing.TB) testLog
	}{
		{"tessera", func(tb testing.TB) testLog {
			// A short batch age keeps the one-per-call case quick; the code path is the same.
			return openTessera(tb, tessera.NewAppendOptions().WithBatching(tessera.DefaultBatchMaxSize, 10*time.Millisecond))
		}},
		{"agentaudit", openLedger},
	} {
		for _, perCall := range []int{1, 100} {
			t.Run(fmt.Sprintf("%s/%d-per-call", tc.name, perCall), func(t *testing.T) {
				ctx := context.Background()
				log := tc.open(t)
				calls := 2 * writers
				if err := drive(ctx, log, calls, perCall); err != nil {
					t.Fatal(err)
				}
				got, err := log.size(ctx)
				if err != nil {
					t.Fatal(err)
				}
				if want := uint64(calls * perCall); got != want {
					t.Fatalf("log holds %d entries after %d acknowledged", got, want)
				}
			})
		}
	}
}
