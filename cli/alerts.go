package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentaudit/agentaudit/alert"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/ledger"
)

// alertsDir is where the alert engine keeps its watermark and delivery records.
func (e *env) alertsDir() string { return filepath.Join(e.dir.Path, "alerts") }

// loadAlerts reads the rules: --alerts FILE, else the policy file's alerts section, else the
// built-in rules alone.
func (e *env) loadAlerts(file string) (*alert.Config, error) {
	switch {
	case file != "":
		return alert.Load(file)
	case e.policy != "":
		return alert.Load(e.policy)
	}
	return alert.Parse("built-in", nil)
}

func runAlerts(e *env) error {
	if len(e.args) == 0 {
		return usagef("want list or test")
	}
	switch sub, args := e.args[0], e.args[1:]; sub {
	case "list":
		fs := e.flags("alerts")
		since := fs.String("since", "", "only alerts since this time (RFC 3339) or this long ago (24h, 30d)")
		rule := fs.String("rule", "", "only this rule's alerts")
		asJSON := fs.Bool("json", false, "print JSON Lines")
		if pos, err := parse(fs, args); err != nil {
			return err
		} else if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		t, err := parseTime(*since, time.Now(), false)
		if err != nil {
			return err
		}
		st, err := e.dir.OpenStore(e.ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		as, err := alert.List(e.ctx, st, e.alertsDir(), alert.ListFilter{Since: t, Rule: *rule})
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			for _, a := range as {
				if err := enc.Encode(a); err != nil {
					return err
				}
			}
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tTIME\tSEVERITY\tRULE\tDELIVERY\tMESSAGE")
		for _, a := range as {
			fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", a.Seq, a.Time.Format(time.RFC3339), a.Record.Severity, a.Record.Rule,
				deliverySummary(a.Deliveries), a.Record.Message)
		}
		return tw.Flush()
	case "test":
		fs := e.flags("alerts")
		since := fs.String("since", "30d", "replay the events recorded since this time (RFC 3339) or this long ago")
		asJSON := fs.Bool("json", false, "print JSON Lines")
		file, err := oneArg(fs, args, "rules file")
		if err != nil {
			return err
		}
		t, err := parseTime(*since, time.Now(), false)
		if err != nil {
			return err
		}
		cfg, err := alert.Load(file)
		if err != nil {
			return err
		}
		st, err := e.dir.OpenStore(e.ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		fired, n, err := alert.Replay(e.ctx, st, cfg, t)
		if err != nil {
			return err
		}
		per := map[string]int{}
		enc := json.NewEncoder(e.stdout)
		for _, f := range fired {
			per[f.Rule.Name]++
			if *asJSON {
				enc.Encode(map[string]any{"time": f.Event.Time, "record": f.Record})
				continue
			}
			fmt.Fprintf(e.stdout, "%s  %-8s  %-22s  %s\n", f.Event.Time.Format(time.RFC3339), f.Record.Severity, f.Rule.Name, f.Record.Message)
		}
		fmt.Fprintf(e.stderr, "replayed %d events through %d rules: %d alerts would have fired (nothing recorded)\n", n, len(cfg.Rules), len(fired))
		for _, r := range cfg.Rules {
			if per[r.Name] > 0 {
				fmt.Fprintf(e.stderr, "  %-24s %d\n", r.Name, per[r.Name])
			}
		}
		return nil
	}
	return usagef("unknown alerts command %q (want list or test)", e.args[0])
}

func deliverySummary(as []alert.Attempt) string {
	if len(as) == 0 {
		return "-"
	}
	by := map[string]string{}
	var names []string
	for _, a := range as {
		if _, ok := by[a.Webhook]; !ok {
			names = append(names, a.Webhook)
		}
		switch {
		case a.Delivered:
			by[a.Webhook] = fmt.Sprintf("%s: delivered (attempt %d)", a.Webhook, a.N)
		default:
			by[a.Webhook] = fmt.Sprintf("%s: failing (attempt %d: %s)", a.Webhook, a.N, a.Error)
		}
	}
	var parts []string
	for _, n := range names {
		parts = append(parts, by[n])
	}
	return strings.Join(parts, "; ")
}

func runReview(e *env) error {
	if len(e.args) == 0 {
		return usagef("want list or close")
	}
	switch sub, args := e.args[0], e.args[1:]; sub {
	case "list":
		fs := e.flags("review")
		all := fs.Bool("all", false, "include the reviewed accesses")
		asJSON := fs.Bool("json", false, "print JSON Lines")
		if pos, err := parse(fs, args); err != nil {
			return err
		} else if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		st, err := e.dir.OpenStore(e.ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		rs, err := alert.Reviews(e.ctx, st, time.Now(), *all)
		if err != nil {
			return err
		}
		if *asJSON {
			enc := json.NewEncoder(e.stdout)
			for _, r := range rs {
				enc.Encode(r)
			}
			return nil
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSEQ\tAGE\tUSER\tSUBJECT\tREASON\tREVIEWED")
		for _, r := range rs {
			rev := "no"
			if r.Reviewed {
				rev = "by " + r.Reviewer
			}
			a := r.Access
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s:%s\t%s\t%s\n", a.ID, r.Seq, r.Age, a.UserID, a.SubjectType, a.SubjectID, a.BreakGlassReason, rev)
		}
		return tw.Flush()
	case "close":
		fs := e.flags("review")
		note := fs.String("note", "", "the reviewer's decision (required)")
		reviewer := fs.String("reviewer", os.Getenv("USER"), "who reviewed")
		id, err := oneArg(fs, args, "access id")
		if err != nil {
			return err
		}
		if strings.TrimSpace(*note) == "" {
			return usagef("--note is required: the reviewer's decision")
		}
		w, err := e.openWriter(ledger.Options{})
		if errors.Is(err, datadir.ErrLocked) {
			return e.closeReviewRemote(err, id, *reviewer, *note)
		}
		if err != nil {
			return err
		}
		ev, seq, err := alert.CloseReview(e.ctx, w.Ledger, w.Store, id, *reviewer, *note)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
		fmt.Fprintf(e.stdout, "review %s recorded at seq %d for access %s\n", ev.ID, seq, id)
		return nil
	}
	return usagef("unknown review command %q (want list or close)", e.args[0])
}

// closeReviewRemote records the review through the server that holds the directory.
func (e *env) closeReviewRemote(locked error, id, reviewer, note string) error {
	api, err := e.api(locked)
	if err != nil {
		return err
	}
	var out struct {
		ID  string `json:"id"`
		Seq int64  `json:"seq"`
	}
	if err := api.call(e, http.MethodPost, "/v1/reviews/"+url.PathEscape(id)+"/close", map[string]string{"note": note, "reviewer": reviewer}, &out); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "review %s recorded at seq %d for access %s\n", out.ID, out.Seq, id)
	return nil
}
