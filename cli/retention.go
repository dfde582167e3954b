package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/query"
	"github.com/agentaudit/agentaudit/retention"
	"github.com/agentaudit/agentaudit/server"
)

// whoami is who a governance command is recorded as having been run by.
func whoami() string {
	if u, err := user.Current(); err == nil && u.Username != "" {
		return "cli:" + u.Username
	}
	return "cli"
}

// retentionPolicy is the retention table of the command line's policy file.
func (e *env) retentionPolicy() (*retention.Policy, error) { return retention.Load(e.policy) }

// governance runs fn with a retention manager on the directory's writer or, when a server holds
// the directory, returns the server's API to call instead (api non-nil).
func (e *env) governance(fn func(m *retention.Manager) error) (api *apiClient, err error) {
	p, err := e.retentionPolicy()
	if err != nil {
		return nil, err
	}
	r, err := e.dir.Redactor(e.policy)
	if err != nil {
		return nil, err
	}
	w, err := e.openWriter(ledger.Options{Retention: p, Sanitizer: r})
	if errors.Is(err, datadir.ErrLocked) {
		return e.api(err)
	}
	if err != nil {
		return nil, err
	}
	m := &retention.Manager{Store: w.Store, Ledger: w.Ledger, Policy: p, Sanitize: r}
	err = fn(m)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return nil, err
}

// apiClient calls the API of the server that holds the directory, with its admin key.
type apiClient struct {
	url, key string
}

func (e *env) api(locked error) (*apiClient, error) {
	url, key, err := e.holder(locked)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(e.stderr, "through the server that holds %s\n", e.dir.Path)
	return &apiClient{url: url, key: strings.TrimSpace(key)}, nil
}

// call sends body (JSON, or nothing when nil) and decodes the answer into out; a problem answer
// becomes an error with its detail.
func (c *apiClient) call(e *env, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(e.ctx, method, c.url+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := (&http.Client{Timeout: 5 * time.Minute}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		var p server.Problem
		if json.Unmarshal(data, &p) == nil && p.Title != "" {
			if resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusNotFound {
				return usagef("%s", p.Detail)
			}
			return fmt.Errorf("server: %s: %s: %s", resp.Status, p.Title, p.Detail)
		}
		return fmt.Errorf("server: %s", resp.Status)
	}
	return json.Unmarshal(data, out)
}

// requestError turns the retention package's refusals into usage errors (exit 2, with usage).
func requestError(err error) error {
	if errors.Is(err, retention.ErrBadRequest) || errors.Is(err, retention.ErrUnknownHold) {
		return usagef("%v", err)
	}
	return err
}

func runRetention(e *env) error {
	if len(e.args) == 0 {
		return usagef("want plan or apply")
	}
	switch sub, args := e.args[0], e.args[1:]; sub {
	case "plan":
		fs := e.flags("retention")
		at := fs.String("at", "", "plan as of this time (RFC 3339 or a date; default now)")
		asJSON := fs.Bool("json", false, "print the plan as JSON")
		if pos, err := parse(fs, args); err != nil {
			return err
		} else if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		when := time.Now()
		if *at != "" {
			var err error
			if when, err = parseTime(*at, when, false); err != nil {
				return err
			}
		}
		p, err := e.retentionPolicy()
		if err != nil {
			return err
		}
		st, err := e.dir.OpenStore(e.ctx)
		if err != nil {
			return err
		}
		defer st.Close()
		pl, err := retention.PlanOn(e.ctx, st, p, when)
		if err != nil {
			return err
		}
		if *asJSON {
			return e.writeJSON(pl)
		}
		fmt.Fprintf(e.stdout, "retention plan at %s\n", pl.At.Format(time.RFC3339))
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "CLASS\tKEEP\tEVENTS\tOLDEST\tNEXT DUE\tDUE\tHELD\tPURGE")
		for _, c := range pl.Classes {
			next := "-"
			if c.Events > 0 {
				next = c.NextUntil.Format("2006-01-02")
				if c.NextUntil.Equal(retention.Forever) {
					next = "never"
				}
			}
			keep, oldest := c.Keep, "-"
			if c.Mandatory {
				keep += " (mandatory)"
			}
			if !c.Oldest.IsZero() {
				oldest = c.Oldest.Format("2006-01-02")
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%s\t%d\t%d\t%d\n", c.Class, keep, c.Events, oldest, next, c.Due, c.Held, c.Purge)
		}
		tw.Flush()
		fmt.Fprintf(e.stdout, "%d due, %d held, %d to purge (about %d bytes); %d holds in force\n", pl.Due, pl.Held, pl.Purge, pl.Bytes, len(pl.Holds))
		return nil
	case "apply":
		fs := e.flags("retention")
		asJSON := fs.Bool("json", false, "print the result as JSON")
		if pos, err := parse(fs, args); err != nil {
			return err
		} else if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		var res *retention.Result
		api, err := e.governance(func(m *retention.Manager) (err error) {
			res, err = m.Apply(e.ctx, whoami())
			return err
		})
		if api != nil {
			res = &retention.Result{}
			err = api.call(e, http.MethodPost, "/v1/retention/apply", nil, res)
		}
		if err != nil {
			return err
		}
		return e.printResult(res, *asJSON, "purged")
	}
	return usagef("unknown retention command %q (want plan or apply)", e.args[0])
}

func (e *env) printResult(res *retention.Result, asJSON bool, verb string) error {
	if asJSON {
		return e.writeJSON(res)
	}
	fmt.Fprintf(e.stdout, "%s %d events", verb, res.Erased)
	if res.Resumed > 0 {
		fmt.Fprintf(e.stdout, " (%d left by an interrupted purge)", res.Resumed)
	}
	fmt.Fprintf(e.stdout, "; %d held", res.Held)
	if res.Mandatory > 0 {
		fmt.Fprintf(e.stdout, ", %d kept as mandatory (--override-mandatory REASON erases them)", res.Mandatory)
	}
	switch {
	case len(res.PurgeEvents) == 0 && res.Erased > 0:
		fmt.Fprintf(e.stdout, "; %d bytes freed\n", res.Bytes)
	case len(res.PurgeEvents) == 0:
		fmt.Fprintln(e.stdout, "; nothing to purge")
	default:
		fmt.Fprintf(e.stdout, "; recorded as purge events at seq %s; %d bytes freed\n", strings.Trim(fmt.Sprint(res.PurgeEvents), "[]"), res.Bytes)
	}
	return nil
}

func runHold(e *env) error {
	if len(e.args) == 0 {
		return usagef("want place, list or release")
	}
	switch sub, args := e.args[0], e.args[1:]; sub {
	case "place":
		fs := e.flags("hold")
		var req server.HoldRequest
		fs.StringVar(&req.Subject, "subject", "", "TYPE:ID, e.g. patient:P-123")
		fs.StringVar(&req.SessionID, "session", "", "session id")
		fs.StringVar(&req.UserID, "user", "", "user id")
		fs.StringVar(&req.AgentID, "agent", "", "agent id")
		fs.StringVar(&req.ToolName, "tool", "", "tool name")
		fs.StringVar(&req.Kind, "kind", "", "event kind")
		since := fs.String("since", "", "events at or after this time")
		until := fs.String("until", "", "events before this time")
		fs.StringVar(&req.Reason, "reason", "", "why (required): the matter, the request")
		asJSON := fs.Bool("json", false, "print the hold as JSON")
		if pos, err := parse(fs, args); err != nil {
			return err
		} else if len(pos) > 0 {
			return usagef("unexpected argument %q", pos[0])
		}
		var err error
		if req.Since, req.Until, err = timeRange(*since, *until, time.Now()); err != nil {
			return err
		}
		scope := ledger.HoldScope{SessionID: req.SessionID, UserID: req.UserID, AgentID: req.AgentID, ToolName: req.ToolName,
			Kind: req.Kind, Since: req.Since, Until: req.Until}
		if req.Subject != "" {
			if scope.SubjectType, scope.SubjectID, err = query.ParseSubject(req.Subject); err != nil {
				return usagef("--subject: %v", err)
			}
		}
		var h *ledger.Hold
		api, err := e.governance(func(m *retention.Manager) (err error) {
			h, err = m.PlaceHold(e.ctx, scope, req.Reason, whoami())
			return err
		})
		if api != nil {
			h = &ledger.Hold{}
			err = api.call(e, http.MethodPost, "/v1/holds", req, h)
		}
		if err != nil {
			return requestError(err)
		}
		if *asJSON {
			return e.writeJSON(h)
		}
		fmt.Fprintf(e.stdout, "hold %s placed (seq %d) on %s\n", h.ID, h.Seq, h.Scope)
		return nil
	case "list":
		fs := e.flags("hold")
		all := fs.Bool("all", false, "released holds too")
		asJSON := fs.Bool("json", false, "print the holds as JSON")
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
		hs, err := retention.Holds(e.ctx, st)
		if err != nil {
			return err
		}
		shown := []*ledger.Hold{}
		for _, h := range hs {
			if *all || h.ReleasedSeq == 0 {
				shown = append(shown, h)
			}
		}
		if *asJSON {
			return e.writeJSON(shown)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tPLACED\tBY\tSCOPE\tREASON\tRELEASED")
		for _, h := range shown {
			released := "-"
			if h.ReleasedSeq > 0 {
				released = h.ReleasedAt.Format(time.RFC3339) + " by " + h.ReleasedBy
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.ID, h.PlacedAt.Format(time.RFC3339), h.PlacedBy, h.Scope, h.Reason, released)
		}
		return tw.Flush()
	case "release":
		fs := e.flags("hold")
		reason := fs.String("reason", "", "why (required)")
		id, err := oneArg(fs, args, "hold id")
		if err != nil {
			return err
		}
		var h *ledger.Hold
		api, err := e.governance(func(m *retention.Manager) (err error) {
			h, err = m.ReleaseHold(e.ctx, id, *reason, whoami())
			return err
		})
		if api != nil {
			h = &ledger.Hold{}
			err = api.call(e, http.MethodPost, "/v1/holds/"+id+"/release", map[string]string{"reason": *reason}, h)
		}
		if err != nil {
			return requestError(err)
		}
		fmt.Fprintf(e.stdout, "hold %s released (seq %d)\n", h.ID, h.ReleasedSeq)
		return nil
	}
	return usagef("unknown hold command %q (want place, list or release)", e.args[0])
}

func runErase(e *env) error {
	fs := e.flags("erase")
	subject := fs.String("subject", "", "TYPE:ID of the data subject (required)")
	reason := fs.String("reason", "", "the request (required), e.g. \"GDPR art. 17 request #881\"")
	override := fs.String("override-mandatory", "", "erase mandatory classes too, and why")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	if pos, err := parse(fs, e.args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	typ, id, err := query.ParseSubject(*subject)
	if err != nil || typ == "" {
		return usagef("--subject TYPE:ID is required (patient:P-123)")
	}
	var res *retention.Result
	api, err := e.governance(func(m *retention.Manager) (err error) {
		res, err = m.Erase(e.ctx, retention.Erasure{SubjectType: typ, SubjectID: id, Reason: *reason, OverrideMandatory: *override, By: whoami()})
		return err
	})
	if api != nil {
		res = &retention.Result{}
		err = api.call(e, http.MethodPost, "/v1/erasures", server.ErasureRequest{Subject: *subject, Reason: *reason, OverrideMandatory: *override}, res)
	}
	if err != nil {
		return requestError(err)
	}
	return e.printResult(res, *asJSON, "erased")
}
