package query_test

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/internal/pgtest"
	"github.com/agentaudit/agentaudit/store/postgres"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// BenchmarkDriversQueries runs the query benchmarks of issue 6 (Timeline, AccessReport,
// ToolStats, ExportAll) on SQLite and on PostgreSQL in one run, over the same log: benchStore's
// SQLite file, copied into a new PostgreSQL database by datadir.Migrate (its time, verification
// of both copies included, is logged). The PostgreSQL store is opened read-only,
// as a reader (or a hot standby) would open it.
func BenchmarkDriversQueries(b *testing.B) {
	lite, v := benchStore(b)
	url := pgtest.NewDB(b)
	start := time.Now()
	rep, err := datadir.Dir{Path: benchDir()}.Migrate(context.Background(), url, datadir.MigrateOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("migrated %d events in %v: copy %v, check %v (after verifying the source)", rep.Events, time.Since(start), rep.Copy, rep.Check)
	pg, err := postgres.Open(context.Background(), postgres.Config{URL: url, ReadOnly: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { pg.Close() })
	for _, d := range []struct {
		name string
		st   benchLog
	}{{"sqlite", lite}, {"postgres", pg}} {
		b.Run(d.name+"/Timeline", func(b *testing.B) { benchTimeline(b, d.st) })
		b.Run(d.name+"/AccessReport", func(b *testing.B) { benchAccessReport(b, d.st, v) })
		b.Run(d.name+"/ToolStats", func(b *testing.B) { benchToolStats(b, d.st) })
		b.Run(d.name+"/ExportAll", func(b *testing.B) { benchExportAll(b, d.st) })
	}
}
