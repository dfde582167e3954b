package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/agentaudit/agentaudit/alert"
	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/event"
)

// listAlerts answers GET /v1/alerts[?since=RFC3339][&rule=NAME][&limit=N]: the alert events with
// each delivery attempt, and the id, seq, kind and session of each triggering event (one lookup
// per id, at most 20 an alert).
func (s *Server) listAlerts(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	q := r.URL.Query()
	f := alert.ListFilter{Rule: q.Get("rule")}
	if v := q.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: "since: want an RFC 3339 time"}
		}
		f.Since = t
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: "limit: want a number"}
		}
		f.Limit = n
	}
	as, err := alert.List(r.Context(), s.cfg.Store, s.cfg.AlertsDir, f)
	if err != nil {
		return err
	}
	if err := s.audit(r, k, "alerts", len(as)); err != nil {
		return err
	}
	out := make([]listedAlert, len(as))
	for i, a := range as {
		out[i] = listedAlert{Listed: a, Triggers: []alertTrigger{}}
		for _, id := range a.Record.TriggerIDs {
			out[i].Triggers = append(out[i].Triggers, s.alertTrigger(r, id))
		}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"alerts": out})
}

// listedAlert is an alert as GET /v1/alerts shows it: with its triggering events' sessions, which
// the console links to.
type listedAlert struct {
	alert.Listed
	Triggers []alertTrigger `json:"triggers"`
}

// alertTrigger is one event that triggered an alert: its attribution only (no content), so a
// reader sees it as every reader sees events.
type alertTrigger struct {
	ID        string `json:"id"`
	Seq       int64  `json:"seq,omitempty"`
	Kind      string `json:"kind,omitempty"`
	SessionID string `json:"session_id,omitempty"`
	Purged    bool   `json:"purged,omitempty"`
}

func (s *Server) alertTrigger(r *http.Request, id string) alertTrigger {
	t := alertTrigger{ID: id}
	e, err := s.cfg.Store.EntryByID(r.Context(), id)
	if err != nil {
		return t // not found (or unreadable): the id alone
	}
	t.Seq, t.Purged = e.Seq, e.Purged()
	if !t.Purged {
		if ev, err := event.ParseStored(e.Body); err == nil {
			t.Kind, t.SessionID = string(ev.Kind), ev.SessionID
		}
	}
	return t
}

// listReviews answers GET /v1/reviews[?all=true]: break-the-glass accesses not yet reviewed
// (all: with the reviewed ones), with their age.
func (s *Server) listReviews(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	rs, err := alert.Reviews(r.Context(), s.cfg.Store, time.Now(), r.URL.Query().Get("all") == "true")
	if err != nil {
		return err
	}
	if err := s.audit(r, k, "reviews", len(rs)); err != nil {
		return err
	}
	if rs == nil {
		rs = []alert.Review{}
	}
	return writeJSON(w, http.StatusOK, map[string]any{"reviews": rs})
}

// closeReview answers POST /v1/reviews/{id}/close with {"note": "..."}: the key's holder records
// the review of break-glass access id.
func (s *Server) closeReview(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var req struct {
		Note     string `json:"note"`
		Reviewer string `json:"reviewer"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		return &Problem{Status: http.StatusBadRequest, Title: "Malformed JSON", Detail: "want {\"note\": \"the decision\"}"}
	}
	reviewer := "apikey:" + k.Name
	if req.Reviewer != "" {
		reviewer = fmt.Sprintf("%s (via apikey:%s)", req.Reviewer, k.Name)
	}
	ev, seq, err := alert.CloseReview(r.Context(), s.cfg.Ledger, s.cfg.Store, r.PathValue("id"), reviewer, req.Note)
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"id": ev.ID, "seq": seq, "access_id": r.PathValue("id"), "reviewer": reviewer})
}
