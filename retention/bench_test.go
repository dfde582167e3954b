package retention_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/retention"
)

func benchEvents() int64 {
	var n int64 = 1_000_000
	if s := os.Getenv("AGENTAUDIT_BENCH_EVENTS"); s != "" {
		fmt.Sscan(s, &n)
	}
	return n
}

var benchNow = time.Date(2028, 6, 1, 0, 0, 0, 0, time.UTC)

// benchLog builds (once per process) a closed data directory of n 1 KiB events: the first half
// recorded two years before benchNow (general: due), the second half a month before it.
var benchLogs sync.Map

func benchLog(b *testing.B, n int64) string {
	if dir, ok := benchLogs.Load(n); ok {
		return dir.(string)
	}
	dir, err := os.MkdirTemp("", "agentaudit-retention-bench-")
	if err != nil {
		b.Fatal(err)
	}
	d := datadir.Dir{Path: dir}
	if _, err := d.Init(context.Background(), ""); err != nil {
		b.Fatal(err)
	}
	c := &clock{t: benchNow.AddDate(-2, 0, 0)}
	w, err := d.OpenWriter(context.Background(), ledger.Options{Sanitizer: ledger.Unsanitized, Retention: retention.Default(), Now: c.Now})
	if err != nil {
		b.Fatal(err)
	}
	pad := strings.Repeat("x", 700)
	const batch = 4096
	evs := make([]*event.Event, 0, batch)
	for i := int64(0); i < n; i++ {
		evs = append(evs, &event.Event{ID: fmt.Sprintf("bench-%012d", i), SessionID: fmt.Sprintf("s-%d", i/20), UserID: fmt.Sprintf("usr_%d", i%500),
			Kind: event.KindToolCall, ToolName: "lookup_order", Time: benchNow.AddDate(-2, 0, 0),
			Arguments: json.RawMessage(fmt.Sprintf(`{"order_id":"ORD-%d","note":"%s"}`, i, pad)), DurationMS: 12.5, Success: event.Bool(true)})
		if len(evs) == batch || i == n/2-1 || i == n-1 {
			if _, err := w.AppendBatch(context.Background(), evs); err != nil {
				b.Fatal(err)
			}
			evs = evs[:0]
		}
		if i == n/2-1 {
			c.Set(benchNow.AddDate(0, -1, 0))
		}
	}
	if err := w.Close(); err != nil {
		b.Fatal(err)
	}
	benchLogs.Store(n, dir)
	return dir
}

// copyDir copies a closed data directory, so a destructive benchmark starts from the same log.
func copyDir(b *testing.B, from string) string {
	to, err := os.MkdirTemp("", "agentaudit-retention-copy-")
	if err != nil {
		b.Fatal(err)
	}
	entries, _ := os.ReadDir(from)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		src, err := os.Open(filepath.Join(from, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		dst, err := os.OpenFile(filepath.Join(to, e.Name()), os.O_CREATE|os.O_WRONLY, 0o600)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.Copy(dst, src); err != nil {
			b.Fatal(err)
		}
		src.Close()
		dst.Close()
	}
	return to
}

// BenchmarkPlan: the dry run on a log of 1,000,000 events, half of them due.
func BenchmarkPlan(b *testing.B) {
	n := benchEvents()
	d := datadir.Dir{Path: benchLog(b, n)}
	st, err := d.OpenStore(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for b.Loop() {
		p, err := retention.PlanOn(context.Background(), st, retention.Default(), benchNow)
		if err != nil || p.Purge != n/2 {
			b.Fatalf("%+v %v", p, err)
		}
	}
}

// BenchmarkApply: purge the due half of a log of 1,000,000 events (each iteration on a fresh
// copy): purge events recorded, bodies erased, pages returned to the file system.
func BenchmarkApply(b *testing.B) {
	n := benchEvents()
	src := benchLog(b, n)
	var erased int64
	for b.Loop() {
		b.StopTimer()
		dir := copyDir(b, src)
		d := datadir.Dir{Path: dir}
		c := &clock{t: benchNow}
		w, err := d.OpenWriter(context.Background(), ledger.Options{Sanitizer: ledger.Unsanitized, Retention: retention.Default(), Now: c.Now})
		if err != nil {
			b.Fatal(err)
		}
		m := &retention.Manager{Store: w.Store, Ledger: w.Ledger, Policy: retention.Default(), Now: c.Now}
		before, _ := w.Store.Bytes(context.Background())
		b.StartTimer()
		res, err := m.Apply(context.Background(), "bench")
		b.StopTimer()
		if err != nil || res.Erased != n/2 {
			b.Fatalf("%+v %v", res, err)
		}
		erased += res.Erased
		after, _ := w.Store.Bytes(context.Background())
		b.ReportMetric(float64(res.Bytes)/1e6, "MB-freed")
		b.ReportMetric(float64(before-after)/1e6, "MB-smaller")
		w.Close()
		os.RemoveAll(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(erased)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkVerifyPurged: full verification of the log of 1,000,000 events, intact and then with
// its due half purged, side by side.
func BenchmarkVerifyPurged(b *testing.B) {
	n := benchEvents()
	src := benchLog(b, n)
	purged := copyDir(b, src)
	defer os.RemoveAll(purged)
	{
		d := datadir.Dir{Path: purged}
		c := &clock{t: benchNow}
		w, err := d.OpenWriter(context.Background(), ledger.Options{Sanitizer: ledger.Unsanitized, Retention: retention.Default(), Now: c.Now})
		if err != nil {
			b.Fatal(err)
		}
		m := &retention.Manager{Store: w.Store, Ledger: w.Ledger, Policy: retention.Default(), Now: c.Now}
		if _, err := m.Apply(context.Background(), "bench"); err != nil {
			b.Fatal(err)
		}
		w.Close()
	}
	for _, c := range []struct{ name, dir string }{{"intact", src}, {"half-purged", purged}} {
		b.Run(c.name, func(b *testing.B) {
			d := datadir.Dir{Path: c.dir}
			st, err := d.OpenStore(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			v, _ := d.Verifier()
			for b.Loop() {
				r, err := ledger.Verify(context.Background(), st, v, ledger.VerifyOptions{})
				if err != nil || r.Events < n {
					b.Fatalf("%+v %v", r, err)
				}
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
