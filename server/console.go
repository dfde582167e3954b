package server

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/query"
	"github.com/agentaudit/agentaudit/store"
)

// The web console: plain HTML, CSS and JavaScript modules embedded in the binary (no build step,
// nothing fetched from the internet), served at / and reading only the public API below, with
// the user's key. The routes it added to the API (sessions, tool statistics, access reports, the
// live stream) are audited reads like every other.

//go:embed console
var consoleFiles embed.FS

// ConsoleCSP is the Content-Security-Policy of the console: its own scripts and styles only, no
// inline script or handler, no framing.
const ConsoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// Limits of the live stream.
const (
	MaxStreams     = 32                     // concurrent subscribers; more get 503
	StreamPoll     = 250 * time.Millisecond // how often a subscriber looks for new entries
	streamBatchMax = 500                    // entries sent per poll
	// StreamLifetime ends a stream, which the client resumes from its last seq: it stays under
	// serve's 30 s graceful shutdown, which waits for requests in flight.
	StreamLifetime = 20 * time.Second
)

func (s *Server) consoleRoutes() {
	sub, _ := fs.Sub(consoleFiles, "console")
	files := http.FileServer(http.FS(sub))
	static := func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ConsoleCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}
	s.mux.HandleFunc("GET /{$}", static)
	s.mux.HandleFunc("GET /console/", func(w http.ResponseWriter, r *http.Request) {
		http.StripPrefix("/console", http.HandlerFunc(static)).ServeHTTP(w, r)
	})
	s.handle("GET /v1/sessions", s.listSessions, apikey.Reader, apikey.Auditor, apikey.Admin)
	s.handle("GET /v1/stats/tools", s.toolStats, apikey.Reader, apikey.Auditor, apikey.Admin)
	s.handle("GET /v1/reports/access", s.accessReport, apikey.Auditor, apikey.Admin)
	s.handle("GET /v1/stream", s.stream, apikey.Reader, apikey.Auditor, apikey.Admin)
}

func badRequest(format string, a ...any) error {
	return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: fmt.Sprintf(format, a...)}
}

// timeParams reads RFC 3339 query parameters into dst (absent: left zero).
func timeParams(r *http.Request, dst map[string]*time.Time) error {
	for name, t := range dst {
		if v := r.URL.Query().Get(name); v != "" {
			var err error
			if *t, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return badRequest("%s: want an RFC 3339 time, e.g. 2026-01-31T00:00:00Z", name)
			}
		}
	}
	return nil
}

// WarmSessions builds the console's session index now (on a log of 1,000,000 events it takes
// about 20 s, which the first sessions page would otherwise wait); serve runs it in the
// background at start. Later pages read only what was committed since.
func (s *Server) WarmSessions(ctx context.Context) error {
	return s.console.sessions.Update(ctx, s.cfg.Store)
}

// consoleState is what the console's routes keep between requests.
type consoleState struct {
	sessions query.SessionIndex
	streamMu sync.Mutex
	streams  int
}

func (s *Server) listSessions(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	q := r.URL.Query()
	f := query.SessionFilter{UserID: q.Get("user_id"), AgentID: q.Get("agent_id"), Model: q.Get("model"), ToolName: q.Get("tool_name"),
		Subject: q.Get("subject"), Failures: q.Get("failures") == "true"}
	if err := timeParams(r, map[string]*time.Time{"since": &f.Since, "until": &f.Until}); err != nil {
		return err
	}
	if v := q.Get("limit"); v != "" {
		var err error
		if f.Limit, err = strconv.Atoi(v); err != nil {
			return badRequest("limit: want a number")
		}
	}
	if err := s.console.sessions.Update(r.Context(), s.cfg.Store); err != nil {
		return err
	}
	page, err := s.console.sessions.List(f, q.Get("cursor"))
	if err != nil {
		return err
	}
	if err := s.audit(r, k, "sessions", len(page.Sessions)); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page)
}

func (s *Server) toolStats(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	var since, until time.Time
	if err := timeParams(r, map[string]*time.Time{"since": &since, "until": &until}); err != nil {
		return err
	}
	stats, err := query.ToolStats(r.Context(), s.cfg.Store, since, until)
	if err != nil {
		return err
	}
	if stats == nil {
		stats = []query.ToolStat{}
	}
	if err := s.audit(r, k, "tool_stats", len(stats)); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"tools": stats})
}

// accessReport answers GET /v1/reports/access?subject=TYPE:ID&from=&to=[&format=csv]: every
// access to the subject in [from, to) (default: the last 30 days), with its integrity checked.
func (s *Server) accessReport(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	q := r.URL.Query()
	typ, id, err := query.ParseSubject(q.Get("subject"))
	if err != nil {
		return badRequest("subject: %v", err)
	}
	now := time.Now()
	from, to := now.AddDate(0, 0, -30), now
	if err := timeParams(r, map[string]*time.Time{"from": &from, "to": &to}); err != nil {
		return err
	}
	if !from.Before(to) {
		return badRequest("from must be before to")
	}
	format := q.Get("format")
	if format != "" && format != "json" && format != "csv" {
		return badRequest("format %q: want json or csv", format)
	}
	rep, err := query.AccessReportFor(r.Context(), s.cfg.Store, s.cfg.Store, s.cfg.Verifier, typ, id, from, to, now)
	if err != nil {
		return err
	}
	if err := s.audit(r, k, "access_report:"+q.Get("subject"), rep.Total); err != nil {
		return err
	}
	if format == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		w.Header().Set("Content-Disposition", `attachment; filename="access-report.csv"`)
		return query.WriteAccessCSV(w, rep)
	}
	return writeJSON(w, http.StatusOK, rep)
}

// stream answers GET /v1/stream[?from=SEQ] with Server-Sent Events: one "event" message per
// entry committed at or after from (default: entries committed from now on), masked for readers
// as every read is, until the client goes away. Opening a stream is one audited read. It polls
// the store (no hook in the ledger), a few times a second, at most MaxStreams at once.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	next := int64(-1)
	if v := r.URL.Query().Get("from"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			return badRequest("from: want a seq, 0 or more")
		}
		next = n
	}
	s.console.streamMu.Lock()
	if s.console.streams >= MaxStreams {
		s.console.streamMu.Unlock()
		return &Problem{Status: http.StatusServiceUnavailable, Title: "Too many streams", Detail: fmt.Sprintf("at most %d live streams at once", MaxStreams), retry: 5}
	}
	s.console.streams++
	s.console.streamMu.Unlock()
	defer func() {
		s.console.streamMu.Lock()
		s.console.streams--
		s.console.streamMu.Unlock()
	}()
	if next < 0 {
		size, err := s.cfg.Store.Size(r.Context())
		if err != nil {
			return err
		}
		next = size
	}
	if err := s.audit(r, k, "stream", 0); err != nil {
		return err
	}
	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, "retry: 2000\n: from seq %d\n\n", next)
	tick := time.NewTicker(StreamPoll)
	defer tick.Stop()
	end := time.NewTimer(StreamLifetime)
	defer end.Stop()
	idle := 0
	for {
		rc.SetWriteDeadline(time.Now().Add(time.Minute)) // a stream outlives the server's WriteTimeout
		sent := 0
		err := s.cfg.Store.Find(r.Context(), store.Filter{FromSeq: next, Limit: streamBatchMax}, func(e store.Entry) error {
			next = e.Seq + 1
			sent++
			rec := query.Record{Seq: e.Seq, PurgedBy: e.PurgedBy}
			if !e.Purged() {
				ev, err := event.ParseStored(e.Body)
				if err != nil {
					return fmt.Errorf("stored event %d does not parse (run verify): %w", e.Seq, err)
				}
				rec.Event = masked(ev, k)
			}
			data, err := json.Marshal(rec)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintf(w, "id: %d\nevent: event\ndata: %s\n\n", e.Seq, data)
			return err
		})
		if err != nil {
			if r.Context().Err() == nil {
				s.cfg.Logger.Error("stream ended", "err", err)
			}
			return nil // the client went away, or the store failed mid-stream: the response has begun
		}
		if sent == 0 {
			if idle++; idle%60 == 0 { // a comment every 15 s keeps proxies from closing the stream
				if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
					return nil
				}
			}
		} else {
			idle = 0
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
		if sent == streamBatchMax {
			continue
		}
		select {
		case <-r.Context().Done():
			return nil
		case <-end.C:
			return nil
		case <-tick.C:
		}
	}
}

// Unwrap lets http.ResponseController reach the connection under the request log's writer, to
// flush and extend the write deadline of a stream.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
