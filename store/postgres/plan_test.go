package postgres_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/internal/pgtest"
	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/postgres"
)

// Each question Find answers is served by the index made for it, once the table has enough
// rows for an index to pay: the expressions of the indexes and of the queries agree.
func TestQueryPlans(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	s, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const n = 20000
	b := store.Batch{}
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range int64(n) {
		body := fmt.Sprintf(`{"id":"e-%d","kind":"tool_call","session_id":"s-%d","subject_id":"P-%d","subject_type":"patient","time":"%s","tool_name":"t-%d","user_id":"u-%d"}`,
			i, i/20, i%500, base.Add(time.Duration(i)*time.Second).Format(time.RFC3339Nano), i%30, i%200)
		b.Entries = append(b.Entries, store.Entry{Seq: i, ID: fmt.Sprint("e-", i), Salt: make([]byte, 16), Body: []byte(body)})
	}
	b.Hashes = make([]tlog.Hash, tlog.StoredHashCount(n))
	if err := s.Append(ctx, b); err != nil {
		t.Fatal(err)
	}
	c := conn(t, url)
	if _, err := c.Exec(ctx, "ANALYZE events"); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		f     store.Filter
		index string
	}{
		{store.Filter{SessionID: "s-7"}, "events_session"},
		{store.Filter{UserID: "u-3", Since: base.Add(time.Hour)}, "events_user"},
		{store.Filter{SubjectID: "P-9", Since: base, Until: base.Add(time.Hour)}, "events_subject"},
		{store.Filter{Since: base.Add(time.Hour), Until: base.Add(2 * time.Hour)}, "events_time"},
		// Since an hour in, not near the end: time and seq rise together here, so a range of
		// the last few minutes is rightly served by events_time (schema 1's expression index
		// had no correlation statistics for the planner to see that).
		{store.Filter{ToolName: "t-3", Kind: "tool_call", Since: base.Add(time.Hour)}, "events_tool"},
	} {
		q, args := postgres.FindQuery(tt.f)
		rows, err := c.Query(ctx, "EXPLAIN "+q, args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var line string
			rows.Scan(&line)
			plan = append(plan, line)
		}
		rows.Close()
		if p := strings.Join(plan, "\n"); !strings.Contains(p, tt.index) {
			t.Errorf("Find(%+v) does not use %s:\n%s", tt.f, tt.index, p)
		}
	}
}
