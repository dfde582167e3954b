package query_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
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

var update = flag.Bool("update", false, "rewrite golden files")

// logOf appends the events of a JSONL file into a new log, signs a checkpoint, and returns the
// store (open) and the verifier.
func logOf(t testing.TB, lines [][]byte) (*sqlite.Store, note.Verifier) {
	t.Helper()
	skey, vkey, _ := ledger.GenerateKey("test/log")
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(t.TempDir(), "ledger.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l, err := ledger.Open(context.Background(), st, s, v, ledger.Options{Sanitizer: ledger.Unsanitized, Now: func() time.Time { return time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	var evs []*event.Event
	for _, line := range lines {
		ev, err := event.Parse(line)
		if err != nil {
			t.Fatalf("%s: %v", line, err)
		}
		evs = append(evs, ev)
	}
	if _, err := l.AppendBatch(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return st, v
}

func sample(t testing.TB) [][]byte {
	data, err := os.ReadFile("../cli/sample-session.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSpace(data), []byte("\n"))
}

func TestTimelineGolden(t *testing.T) {
	st, _ := logOf(t, sample(t))
	recs, err := query.Session(context.Background(), st, "sess-demo-001")
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	if err := query.WriteTimeline(&text, recs); err != nil {
		t.Fatal(err)
	}
	tree, _ := json.MarshalIndent(query.Tree(recs), "", "  ")
	for name, got := range map[string][]byte{"timeline.txt": text.Bytes(), "timeline-tree.json": append(tree, '\n')} {
		path := filepath.Join("testdata", name)
		if *update {
			os.WriteFile(path, got, 0o644)
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the golden file (go test -update to accept):\n%s", name, got)
		}
	}
	if !strings.Contains(text.String(), `[Turn 1] ❌ update_order_status({"order_id": "ORD-456", "status": "cancelled"}) → {"error": "Cannot cancel shipped order", "success": false} [38ms]`) {
		t.Error("the failed tool call is not rendered in the seed's form")
	}
	if _, err := query.Session(context.Background(), st, "nope"); !errors.Is(err, query.ErrNoSuchSession) {
		t.Errorf("unknown session: %v", err)
	}
}

func TestTreeLinksToolCallsToTheirLLMCall(t *testing.T) {
	lines := [][]byte{
		[]byte(`{"id":"l1","session_id":"s","kind":"llm_call","time":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"id":"t1","session_id":"s","kind":"tool_call","tool_name":"a","parent_id":"l1","time":"2026-01-01T00:00:01Z"}`),
		[]byte(`{"id":"t2","session_id":"s","kind":"tool_call","tool_name":"b","parent_id":"l1","time":"2026-01-01T00:00:02Z"}`),
		[]byte(`{"id":"r1","session_id":"s","kind":"tool_result","tool_name":"a","parent_id":"t1","time":"2026-01-01T00:00:03Z"}`),
		[]byte(`{"id":"l2","session_id":"s","kind":"llm_call","parent_id":"elsewhere","time":"2026-01-01T00:00:04Z"}`),
	}
	st, _ := logOf(t, lines)
	recs, _ := query.Session(context.Background(), st, "s")
	roots := query.Tree(recs)
	if len(roots) != 2 || roots[0].Event.ID != "l1" || roots[1].Event.ID != "l2" {
		t.Fatalf("roots %v", roots)
	}
	if c := roots[0].Children; len(c) != 2 || c[0].Event.ID != "t1" || c[1].Event.ID != "t2" || len(c[0].Children) != 1 || c[0].Children[0].Event.ID != "r1" {
		t.Fatalf("children of l1: %+v", c)
	}
}

func TestFindFiltersAndPages(t *testing.T) {
	var lines [][]byte
	for i := 0; i < 250; i++ {
		ok := i%10 != 0
		lines = append(lines, fmt.Appendf(nil, `{"id":"e%03d","session_id":"s%d","kind":"tool_call","tool_name":"%s","user_id":"u%d","model":"m%d","agent_id":"a","time":"2026-01-%02dT00:00:00Z","success":%v,"duration_ms":%d}`,
			i, i%5, []string{"get_order", "refund"}[i%2], i%3, i%2, 1+i%28, ok, i))
	}
	st, _ := logOf(t, lines)
	ctx := context.Background()
	count := func(f store.Filter) int {
		n := 0
		cursor := ""
		for pages := 0; ; pages++ {
			f.Limit = 7
			p, err := query.Find(ctx, st, f, cursor)
			if err != nil {
				t.Fatal(err)
			}
			for i := 1; i < len(p.Records); i++ {
				if p.Records[i].Seq <= p.Records[i-1].Seq {
					t.Fatal("records out of order")
				}
			}
			n += len(p.Records)
			if p.Next == "" {
				return n
			}
			cursor = p.Next
		}
	}
	tests := []struct {
		name string
		f    store.Filter
		want int
	}{
		{"all", store.Filter{}, 250},
		{"session", store.Filter{SessionID: "s3"}, 50},
		{"tool", store.Filter{ToolName: "refund"}, 125},
		{"user and tool", store.Filter{UserID: "u0", ToolName: "get_order"}, 42},
		{"failures", store.Filter{Failures: true}, 25},
		{"failures since", store.Filter{Failures: true, Since: time.Date(2026, 1, 15, 0, 0, 0, 0, time.UTC)}, 12},
		{"time range", store.Filter{Since: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC), Until: time.Date(2026, 1, 4, 0, 0, 0, 0, time.UTC)}, 18},
		{"model and kind", store.Filter{Model: "m1", Kind: "tool_call"}, 125},
		{"nothing", store.Filter{UserID: "nobody"}, 0},
	}
	for _, tt := range tests {
		if got := count(tt.f); got != tt.want {
			t.Errorf("%s: %d events, want %d", tt.name, got, tt.want)
		}
	}
	if _, err := query.Find(ctx, st, store.Filter{}, "not-a-cursor"); !errors.Is(err, query.ErrBadCursor) {
		t.Errorf("bad cursor: %v", err)
	}
	if _, err := query.Find(ctx, st, store.Filter{Limit: query.MaxPageSize + 1}, ""); err == nil {
		t.Error("an oversized page was accepted")
	}
}

func TestToolStats(t *testing.T) {
	var lines [][]byte
	for i := 1; i <= 100; i++ {
		lines = append(lines, fmt.Appendf(nil, `{"kind":"tool_call","tool_name":"get_order","user_id":"u%d","time":"2026-01-01T00:00:00Z","duration_ms":%d,"success":%v}`, i%4, i, i > 10))
	}
	lines = append(lines, []byte(`{"kind":"tool_call","tool_name":"refund","time":"2026-01-01T00:00:00Z"}`),
		[]byte(`{"kind":"tool_result","tool_name":"refund","time":"2026-01-01T00:00:00Z","duration_ms":5}`))
	st, _ := logOf(t, lines)
	stats, err := query.ToolStats(context.Background(), st, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := []query.ToolStat{
		{Tool: "get_order", Calls: 100, Successes: 90, Failures: 10, SuccessRate: 0.9, AvgMS: 50.5, MaxMS: 100, P50MS: 50, P95MS: 95, P99MS: 99, UniqueUsers: 4},
		{Tool: "refund", Calls: 1},
	}
	if fmt.Sprint(stats) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", stats, want)
	}
	later, _ := query.ToolStats(context.Background(), st, time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC), time.Time{})
	if len(later) != 0 {
		t.Errorf("since filter: %+v", later)
	}
}

func TestAccessReport(t *testing.T) {
	st, v := logOf(t, sample(t))
	ctx := context.Background()
	from, to := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	rep, err := query.AccessReportFor(ctx, st, st, v, "patient", "P-123", from, to, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Total != 2 || rep.UniqueUsers != 2 || rep.BreakGlass != 1 || !rep.IntegrityVerified {
		t.Fatalf("report %+v", rep)
	}
	a := rep.Accesses[1]
	if a.UserID != "dr_jones" || !a.BreakGlass || a.BreakGlassReason == "" || a.Purpose != "emergency_treatment" || !a.Verified {
		t.Errorf("break-glass access %+v", a)
	}
	// Out of range, other subject type: nothing.
	if r, _ := query.AccessReportFor(ctx, st, st, v, "customer", "P-123", from, to, time.Now()); r.Total != 0 {
		t.Errorf("other subject type matched: %+v", r)
	}
	// Another key: integrity is not claimed.
	_, vkey, _ := ledger.GenerateKey("test/log")
	other, _ := note.NewVerifier(vkey)
	if r, _ := query.AccessReportFor(ctx, st, st, other, "patient", "P-123", from, to, time.Now()); r.IntegrityVerified || r.IntegrityNote == "" {
		t.Errorf("integrity claimed with the wrong key: %+v", r)
	}
	var csvOut, html bytes.Buffer
	if err := query.WriteAccessCSV(&csvOut, rep); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Split(strings.TrimSpace(csvOut.String()), "\n"); len(lines) != 3 || !strings.HasPrefix(lines[0], "seq,id,time,user_id") {
		t.Errorf("csv:\n%s", csvOut.String())
	}
	if err := query.WriteAccessHTML(&html, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Access report: patient P-123", "dr_jones", "yes: unconscious patient", "verified"} {
		if !strings.Contains(html.String(), want) {
			t.Errorf("html lacks %q", want)
		}
	}
}

func TestSafeCell(t *testing.T) {
	for in, want := range map[string]string{"=HYPERLINK(1)": "'=HYPERLINK(1)", "+1": "'+1", "-2": "'-2", "@x": "'@x", "ok": "ok", "": ""} {
		if got := query.SafeCell(in); got != want {
			t.Errorf("SafeCell(%q) = %q, want %q", in, got, want)
		}
	}
}
