package cli

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/alert"
	"github.com/agentaudit/agentaudit/export"
	"github.com/agentaudit/agentaudit/query"
	"github.com/agentaudit/agentaudit/store"
)

// parseTime accepts RFC 3339, a date (YYYY-MM-DD, midnight UTC; with endOfDay the midnight after
// it, so "--to 2026-03-31" includes that day), or a duration back from now ("24h", or "30d" in
// days).
func parseTime(s string, now time.Time, endOfDay bool) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		if endOfDay {
			t = t.AddDate(0, 0, 1)
		}
		return t, nil
	}
	if d, err := time.ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	if n, ok := strings.CutSuffix(s, "d"); ok {
		if days, err := strconv.Atoi(n); err == nil && days > 0 {
			return now.AddDate(0, 0, -days), nil
		}
	}
	return time.Time{}, usagef("time %q: want RFC 3339 (2026-01-02T15:04:05Z), a date (2026-01-02) or a duration (24h, 30d)", s)
}

// timeRange parses a from/to pair with parseTime; a date as "to" includes that day.
func timeRange(from, to string, now time.Time) (time.Time, time.Time, error) {
	f, err := parseTime(from, now, false)
	if err != nil {
		return f, f, err
	}
	t, err := parseTime(to, now, true)
	return f, t, err
}

// writeJSON prints v as indented JSON.
func (e *env) writeJSON(v any) error {
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(e.stdout, "%s\n", out)
	return err
}

func runTimeline(e *env) error {
	fs := e.flags("timeline")
	format := fs.String("format", "text", "text, or json for a tree (an LLM call with the tool calls it requested)")
	id, err := oneArg(fs, e.args, "session id")
	if err != nil {
		return err
	}
	if *format != "text" && *format != "json" {
		return usagef("--format must be text or json")
	}
	st, err := e.dir.OpenStore(e.ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	recs, err := query.Session(e.ctx, st, id)
	if err != nil {
		return err
	}
	if *format == "json" {
		return e.writeJSON(query.Tree(recs))
	}
	return query.WriteTimeline(e.stdout, recs)
}

func runStats(e *env) error {
	fs := e.flags("stats")
	since := fs.String("since", "", "only calls at or after this time")
	until := fs.String("until", "", "only calls before this time")
	asJSON := fs.Bool("json", false, "print JSON")
	what, err := oneArg(fs, e.args, "statistic (tools)")
	if err != nil {
		return err
	}
	if what != "tools" {
		return usagef("unknown statistic %q (want tools)", what)
	}
	from, to, err := timeRange(*since, *until, time.Now())
	if err != nil {
		return err
	}
	st, err := e.dir.OpenStore(e.ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	stats, err := query.ToolStats(e.ctx, st, from, to)
	if err != nil {
		return err
	}
	if *asJSON {
		return e.writeJSON(stats)
	}
	fmt.Fprintf(e.stdout, "%-28s %7s %8s %9s %9s %9s %9s %9s %6s\n", "TOOL", "CALLS", "SUCCESS", "AVG", "P50", "P95", "P99", "MAX", "USERS")
	for _, s := range stats {
		fmt.Fprintf(e.stdout, "%-28s %7d %7.1f%% %7.1fms %7.1fms %7.1fms %7.1fms %7.1fms %6d\n",
			s.Tool, s.Calls, 100*s.SuccessRate, s.AvgMS, s.P50MS, s.P95MS, s.P99MS, s.MaxMS, s.UniqueUsers)
	}
	return nil
}

func runReport(e *env) error {
	fs := e.flags("report")
	subject := fs.String("subject", "", "TYPE:ID, e.g. patient:P-123 (required)")
	fromS := fs.String("from", "", "start of the period (required)")
	toS := fs.String("to", "", "end of the period, inclusive for a date (required)")
	format := fs.String("format", "json", "json, csv or html")
	key := fs.String("key", "", "verifier key, or a file holding it (default: the data directory's)")
	what, err := oneArg(fs, e.args, "report (access)")
	if err != nil {
		return err
	}
	if what != "access" {
		return usagef("unknown report %q (want access)", what)
	}
	if *subject == "" || *fromS == "" || *toS == "" {
		return usagef("--subject, --from and --to are required")
	}
	typ, id, err := query.ParseSubject(*subject)
	if err != nil {
		return usagef("%v", err)
	}
	now := time.Now()
	from, to, err := timeRange(*fromS, *toS, now)
	if err != nil {
		return err
	}
	if !to.After(from) {
		return usagef("--to must be after --from")
	}
	v, err := e.verifierFor(*key)
	if err != nil {
		return err
	}
	st, err := e.dir.OpenStore(e.ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := query.AccessReportFor(e.ctx, st, st, v, typ, id, from, to, now)
	if err != nil {
		return err
	}
	switch *format {
	case "json":
		err = e.writeJSON(rep)
	case "csv":
		err = query.WriteAccessCSV(e.stdout, rep)
	case "html":
		err = query.WriteAccessHTML(e.stdout, rep)
	default:
		return usagef("--format must be json, csv or html")
	}
	return err
}

// filterFlags adds the event filters to fs; the returned function builds the filter once fs is
// parsed.
func filterFlags(fs *flag.FlagSet) func() (store.Filter, error) {
	var f store.Filter
	fs.StringVar(&f.SessionID, "session", "", "session id")
	fs.StringVar(&f.UserID, "user", "", "user id")
	fs.StringVar(&f.AgentID, "agent", "", "agent id")
	fs.StringVar(&f.Model, "model", "", "model")
	fs.StringVar(&f.ToolName, "tool", "", "tool name")
	fs.StringVar(&f.Kind, "kind", "", "event kind")
	fs.StringVar(&f.Outcome, "outcome", "", "success, error or denied")
	fs.BoolVar(&f.Failures, "failures", false, "only failed actions")
	subject := fs.String("subject", "", "TYPE:ID or ID")
	since := fs.String("since", "", "events at or after this time")
	until := fs.String("until", "", "events before this time")
	return func() (store.Filter, error) {
		var err error
		if f.Since, f.Until, err = timeRange(*since, *until, time.Now()); err != nil {
			return f, err
		}
		if *subject != "" {
			if f.SubjectType, f.SubjectID, err = query.ParseSubject(*subject); err != nil {
				return f, usagef("%v", err)
			}
		}
		return f, nil
	}
}

func runQuery(e *env) error {
	fs := e.flags("query")
	filter := filterFlags(fs)
	limit := fs.Int("limit", query.DefaultPageSize, "page size")
	cursor := fs.String("cursor", "", "the cursor printed after the previous page")
	asJSON := fs.Bool("json", false, "print the page as one JSON object with its next cursor")
	if pos, err := parse(fs, e.args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	f, err := filter()
	if err != nil {
		return err
	}
	f.Limit = *limit
	st, err := e.dir.OpenStore(e.ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	page, err := query.Find(e.ctx, st, f, *cursor)
	switch {
	case errors.Is(err, query.ErrBadCursor):
		return usagef("--cursor: %v", err)
	case errors.Is(err, query.ErrPageSize):
		return usagef("--limit %v", err)
	case err != nil:
		return err
	}
	if *asJSON {
		return e.writeJSON(page)
	}
	enc := json.NewEncoder(e.stdout)
	for _, r := range page.Records {
		if err := enc.Encode(r); err != nil {
			return err
		}
	}
	if page.Next != "" {
		fmt.Fprintf(e.stderr, "more: --cursor %s\n", page.Next)
	}
	return nil
}

func runExport(e *env) error {
	fs := e.flags("export")
	filter := filterFlags(fs)
	format := fs.String("format", "jsonl", "fhir, ocsf, jsonl or csv")
	if pos, err := parse(fs, e.args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	f, err := filter()
	if err != nil {
		return err
	}
	origin := ""
	if v, err := e.dir.Verifier(); err == nil {
		origin = v.Name()
	}
	if !slices.Contains(export.Formats(), export.Format(*format)) {
		_, err := export.NewWriter(e.stdout, export.Format(*format), export.Options{})
		return usagef("--format: %v", err)
	}
	st, err := e.dir.OpenStore(e.ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	opts := export.Options{LogOrigin: origin}
	if export.Format(*format) == export.FHIR {
		// Break-glass accesses without a review are marked as such.
		reviewed, err := alert.Reviewed(e.ctx, st)
		if err != nil {
			return err
		}
		opts.Reviewed = map[string]bool{}
		for id := range reviewed {
			opts.Reviewed[id] = true
		}
	}
	w, err := export.NewWriter(e.stdout, export.Format(*format), opts)
	if err != nil {
		return err
	}
	if err := query.Each(e.ctx, st, f, w.Write); err != nil {
		return err
	}
	return w.Close()
}
