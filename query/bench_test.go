package query_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/query"
	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

// benchEvents is the log size for the query benchmarks (AGENTAUDIT_BENCH_EVENTS overrides).
func benchEvents() int {
	n := 1_000_000
	if s := os.Getenv("AGENTAUDIT_BENCH_EVENTS"); s != "" {
		fmt.Sscan(s, &n)
	}
	return n
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

// benchEvent i: sessions of 100 events; 10 tools; 1,000 users; 10,000 patients each touched every
// 10,000th event; times spread over a year.
func benchEvent(i int, n int) *event.Event {
	ev := &event.Event{
		ID: fmt.Sprintf("q-%09d", i), SessionID: fmt.Sprintf("sess-%07d", i/100), AgentID: "records-v1", Model: "claude-opus-4-6",
		UserID: fmt.Sprintf("usr_%04d", i%1000), UserRole: "physician", Kind: event.KindToolCall, Turn: int64(i%100/10 + 1),
		Time:     epoch.Add(time.Duration(i) * (365 * 24 * time.Hour / time.Duration(n))),
		ToolName: fmt.Sprintf("tool_%d", i%10), Arguments: json.RawMessage(`{"patient_id":"P-` + fmt.Sprint(i%10000) + `","fields":["allergies","medications"]}`),
		Result:     json.RawMessage(`{"status":"ok","detail":"` + strings.Repeat("r", 500) + `"}`),
		DurationMS: float64(i%997) / 3, Success: event.Bool(i%13 != 0), Trigger: event.TriggerUserRequest,
		SubjectType: "patient", SubjectID: fmt.Sprintf("P-%d", i%10000), Purpose: "treatment",
	}
	if i%50 == 0 {
		ev.Kind, ev.ToolName = event.KindLLMCall, ""
	}
	return ev
}

// benchDir is where benchStore keeps the log of benchEvents() events, a data directory.
func benchDir() string {
	return filepath.Join(os.TempDir(), fmt.Sprintf("agentaudit-bench-query-%d", benchEvents()))
}

// benchStore opens (building once, kept in the temp directory between runs) a log of n events.
func benchStore(b *testing.B) (*sqlite.Store, note.Verifier) {
	n := benchEvents()
	dir := benchDir()
	if _, err := os.Stat(filepath.Join(dir, "complete")); err != nil {
		os.RemoveAll(dir)
		os.MkdirAll(dir, 0o700)
		if _, err := ledger.WriteKeyFiles("bench/log", filepath.Join(dir, "signing.key"), filepath.Join(dir, "verifier.key")); err != nil {
			b.Fatal(err)
		}
		s, v, err := ledger.LoadSigner(filepath.Join(dir, "signing.key"))
		if err != nil {
			b.Fatal(err)
		}
		st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "ledger.db")})
		if err != nil {
			b.Fatal(err)
		}
		l, err := ledger.Open(context.Background(), st, s, v, ledger.Options{Sanitizer: ledger.Unsanitized})
		if err != nil {
			b.Fatal(err)
		}
		var evs []*event.Event
		for i := 0; i < n; i++ {
			evs = append(evs, benchEvent(i, n))
			if len(evs) == 4096 || i == n-1 {
				if _, err := l.AppendBatch(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
				evs = evs[:0]
			}
		}
		l.Close()
		st.Close()
		os.WriteFile(filepath.Join(dir, "complete"), nil, 0o644)
	}
	v, err := ledger.ParseVerifier(filepath.Join(dir, "verifier.key"))
	if err != nil {
		b.Fatal(err)
	}
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "ledger.db"), ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	return st, v
}

// benchLog is what the query benchmarks read, on either driver.
type benchLog interface {
	query.Store
	query.TreeReader
}

// BenchmarkTimeline: a 100-event session's timeline, read and rendered.
func BenchmarkTimeline(b *testing.B) {
	st, _ := benchStore(b)
	benchTimeline(b, st)
}

func benchTimeline(b *testing.B, st benchLog) {
	i := 0
	for b.Loop() {
		i = (i + 7919) % (benchEvents() / 100)
		recs, err := query.Session(context.Background(), st, fmt.Sprintf("sess-%07d", i))
		if err != nil || len(recs) != 100 {
			b.Fatal(err, len(recs))
		}
		if err := query.WriteTimeline(io.Discard, recs); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAccessReport: one patient over 90 days, with every listed event's inclusion proof.
func BenchmarkAccessReport(b *testing.B) {
	st, v := benchStore(b)
	benchAccessReport(b, st, v)
}

func benchAccessReport(b *testing.B, st benchLog, v note.Verifier) {
	i, total := 0, 0
	for b.Loop() {
		i = (i + 7919) % 10000
		from := epoch.AddDate(0, 3, 0)
		rep, err := query.AccessReportFor(context.Background(), st, st, v, "patient", fmt.Sprintf("P-%d", i), from, from.AddDate(0, 0, 90), time.Now())
		if err != nil || !rep.IntegrityVerified {
			b.Fatal(err, rep.IntegrityNote)
		}
		total += rep.Total
	}
	b.ReportMetric(float64(total)/float64(b.N), "accesses/report")
}

// BenchmarkToolStats: per-tool statistics over the whole log.
func BenchmarkToolStats(b *testing.B) {
	st, _ := benchStore(b)
	benchToolStats(b, st)
}

func benchToolStats(b *testing.B, st benchLog) {
	for b.Loop() {
		stats, err := query.ToolStats(context.Background(), st, time.Time{}, time.Time{})
		if err != nil || len(stats) != 10 {
			b.Fatal(err, len(stats))
		}
	}
}

// BenchmarkExportAll: every event of the log read, decoded and written as JSON Lines (the
// export command's path; the format writers' own cost is in package export's benchmark).
func BenchmarkExportAll(b *testing.B) {
	st, _ := benchStore(b)
	benchExportAll(b, st)
}

func benchExportAll(b *testing.B, st benchLog) {
	n := 0
	for b.Loop() {
		n = 0
		err := query.Each(context.Background(), st, store.Filter{}, func(r query.Record) error {
			n++
			_, err := r.Event.Canonical()
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
