package query_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/query"
)

// BenchmarkSessions: the console's sessions page on the benchmark log (1,000,000 events, 10,000
// sessions): bringing the index up to date (nothing new) and the first page of 100, newest first,
// unfiltered and filtered by user. The one-time build of the index is reported as build_s.
func BenchmarkSessions(b *testing.B) {
	st, _ := benchStore(b)
	ctx := context.Background()
	var x query.SessionIndex
	start := time.Now()
	if err := x.Update(ctx, st); err != nil {
		b.Fatal(err)
	}
	build := time.Since(start)
	for _, c := range []struct {
		name string
		f    query.SessionFilter
	}{{"all", query.SessionFilter{}}, {"user", query.SessionFilter{UserID: "usr_0042"}}, {"failures-tool", query.SessionFilter{Failures: true, ToolName: "tool_3"}}} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if err := x.Update(ctx, st); err != nil {
					b.Fatal(err)
				}
				p, err := x.List(c.f, "")
				if err != nil || len(p.Sessions) == 0 {
					b.Fatal(err, len(p.Sessions))
				}
			}
			b.ReportMetric(build.Seconds(), "build_s")
			b.ReportMetric(float64(x.Len()), "sessions")
		})
	}
}
