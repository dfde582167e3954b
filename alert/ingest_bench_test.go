package alert_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/alert"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
)

// BenchmarkIngest: durable ingest (real SQLite, fsync, the built-in sanitizer), 16 goroutines
// appending batches of 100 events, into two logs side by side: one without the alert engine, one
// with the built-in rules on. Each iteration is one round on each, alternating, so load from
// elsewhere on the machine falls on both alike; it reports both rates and the difference.
func BenchmarkIngest(b *testing.B) {
	type side struct {
		w    *datadir.Writer
		eng  *alert.Engine
		took time.Duration
		n    atomic.Int64
	}
	open := func(rules bool) *side {
		dir := datadir.Dir{Path: filepath.Join(b.TempDir(), "data")}
		if _, err := dir.Init(context.Background(), ""); err != nil {
			b.Fatal(err)
		}
		s := &side{}
		var opts ledger.Options
		if rules {
			cfg, err := alert.Parse("built-in", nil)
			if err != nil {
				b.Fatal(err)
			}
			if s.eng, err = alert.New(alert.Options{Config: cfg, Dir: filepath.Join(dir.Path, "alerts")}); err != nil {
				b.Fatal(err)
			}
			opts.Committed = s.eng.Committed
		}
		var err error
		if s.w, err = dir.OpenWriter(context.Background(), opts); err != nil {
			b.Fatal(err)
		}
		if s.eng != nil {
			if err := s.eng.Start(context.Background(), s.w.Ledger, s.w.Store); err != nil {
				b.Fatal(err)
			}
		}
		return s
	}
	const writers, batches, per = 16, 4, 100
	round := func(s *side) time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		for range writers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				evs := make([]*event.Event, per)
				for range batches {
					for i := range evs {
						evs[i] = benchEvent(s.n.Add(1))
					}
					if _, err := s.w.AppendBatch(context.Background(), evs); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		d := time.Since(start)
		s.took += d
		return d
	}
	// AGENTAUDIT_BENCH_AA=1 runs the engine on neither side: the A/A run that shows the bias
	// between the two directories.
	aa := os.Getenv("AGENTAUDIT_BENCH_AA") == "1"
	off, on := open(false), open(!aa)
	// Each pair of rounds runs back to back, so their ratio is little touched by load that
	// comes and goes; the median of the ratios is the figure.
	var ratios []float64
	for i := 0; b.Loop(); i++ {
		var a, c time.Duration
		if i%2 == 0 { // which goes first alternates too
			a = round(off)
			c = round(on)
		} else {
			c = round(on)
			a = round(off)
		}
		ratios = append(ratios, c.Seconds()/a.Seconds())
	}
	slices.Sort(ratios)
	rate := func(s *side) float64 { return float64(s.n.Load()) / s.took.Seconds() }
	b.ReportMetric(rate(off), "events/s-off")
	b.ReportMetric(rate(on), "events/s-builtin")
	b.ReportMetric(100*(rate(off)-rate(on))/rate(off), "%slower-total")
	b.ReportMetric(100*(1-1/ratios[len(ratios)/2]), "%slower-median-pair")
	if aa {
		on.w.Close()
		off.w.Close()
		return
	}
	// The engine kept up, or caught up from the store: everything was evaluated.
	deadline := time.Now().Add(time.Minute)
	for on.eng.Evaluated() < on.w.Head().N && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if on.eng.Evaluated() < on.w.Head().N {
		b.Errorf("engine evaluated %d of %d", on.eng.Evaluated(), on.w.Head().N)
	}
	on.eng.Close()
	as, err := alert.List(context.Background(), on.w.Store, "", alert.ListFilter{})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(len(as)), "alerts")
	on.w.Close()
	off.w.Close()
}

// benchEvent is half accesses, half tool calls, from 500 users (the odd ones of 1000) each reading
// its own 40 patients in turn (a patient again every 40,000 events): a workload in which the rules evaluate every event and rarely fire.
func benchEvent(i int64) *event.Event {
	ev := &event.Event{Kind: event.KindAccess, SessionID: fmt.Sprintf("s-%d", i/50), AgentID: "med-records", UserID: fmt.Sprintf("u-%d", i%1000),
		UserRole: "nurse", SubjectType: "patient", SubjectID: fmt.Sprintf("P-%d", (i%1000)*40+(i/1000)%40), Purpose: "treatment", Outcome: event.OutcomeSuccess}
	if i%2 == 0 {
		ev.Kind, ev.SubjectType, ev.SubjectID, ev.Purpose = event.KindToolCall, "", "", ""
		ev.ToolName, ev.DurationMS, ev.Success = fmt.Sprintf("tool-%d", i%30), 12.5, event.Bool(true)
	}
	return ev
}
