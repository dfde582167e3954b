// Package server is the HTTP API over one ledger: ingest (one event, a JSON array or NDJSON, gzip
// accepted, acknowledged only after the durable commit), queries, checkpoints, proofs and
// verification, behind API keys with roles. Every read through the API is itself recorded as an
// access event (subject_type audit_log): access to the audit log is audited. Errors are RFC 9457
// problem details, written in one place (writeProblem).
package server

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentaudit/agentaudit/alert"
	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ingest"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/query"
	"github.com/agentaudit/agentaudit/retention"
	"github.com/agentaudit/agentaudit/store"
)

// Defaults for Config.
const (
	DefaultMaxBodyBytes = 16 << 20 // after decompression
	DefaultMaxBatch     = 10000
)

// Store is what the server reads from the ledger's store: queries, proofs, verification, and
// its size for readiness. Every driver that passes store/storetest provides it.
type Store interface {
	query.Store
	ledger.ProofStore
	ledger.VerifyStore
	Size(ctx context.Context) (int64, error)
}

// Config wires a server.
type Config struct {
	Ledger   *ledger.Ledger
	Store    Store // the ledger's store, for reads
	Keys     *apikey.Store
	Verifier note.Verifier
	// MaxBodyBytes bounds a request body after decompression; MaxBatch the events in one.
	MaxBodyBytes int64
	MaxBatch     int
	// Logger receives one structured line per request; nil discards them.
	Logger *slog.Logger
	// Metrics, when set, is served at /metrics (NewMetrics; give its ObserveCommit to the ledger).
	Metrics *Metrics
	// Retention, when set, serves plans, purges, holds and erasures (retentionRoutes).
	Retention *retention.Manager
	// AlertsDir is the alert engine's directory, whose delivery records GET /v1/alerts shows.
	AlertsDir string
	// ApprovalsDir is the approval gate's directory of pending requests (DATA/approvals), listed
	// and decided through /v1/approvals; empty: none is pending.
	ApprovalsDir string
}

// Server serves the API.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	limiter authLimiter
	console consoleState // the web console's session index and live streams (console.go)
}

// New validates cfg and returns a server.
func New(cfg Config) (*Server, error) {
	if cfg.Ledger == nil || cfg.Store == nil || cfg.Keys == nil || cfg.Verifier == nil {
		return nil, errors.New("server: Ledger, Store, Keys and Verifier are required")
	}
	switch {
	case cfg.MaxBodyBytes < 0:
		return nil, fmt.Errorf("server: MaxBodyBytes is %d; want a positive size, or 0 for the default", cfg.MaxBodyBytes)
	case cfg.MaxBatch < 0:
		return nil, fmt.Errorf("server: MaxBatch is %d; want a positive count, or 0 for the default", cfg.MaxBatch)
	}
	if cfg.MaxBodyBytes == 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MaxBatch == 0 {
		cfg.MaxBatch = DefaultMaxBatch
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	cfg.Metrics.watchLedger(cfg.Ledger)
	cfg.Metrics.watchStore(cfg.Store)
	s := &Server{cfg: cfg, mux: http.NewServeMux()}
	s.routes()
	return s, nil
}

// Handler returns the API's handler: the routes, with a structured log line and the request
// metrics for every request.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		s.mux.ServeHTTP(sw, r)
		// The mux leaves the pattern it matched on r (mux.Handler's answer, without a second
		// lookup); a request it did not route (404, 405) has none.
		route := r.Pattern
		if route == "" {
			if _, route = s.mux.Handler(r); route == "" {
				route = "unmatched"
			}
		}
		s.cfg.Metrics.countRequest(route, sw.code)
		s.logRequest(r, sw.code, start)
	})
}

// logRequest writes the request's line: what Logger.Info("request", ...) wrote, without the call
// stack Info captures for a source (always this function, so worthless) whether or not the
// handler shows it, nor the boxing of each value: 1.3 instead of 1.7 µs before the write. A
// handler that adds sources (HandlerOptions.AddSource) gets none on these lines.
func (s *Server) logRequest(r *http.Request, code int, start time.Time) {
	h := s.cfg.Logger.Handler()
	ctx := context.Background()
	if !h.Enabled(ctx, slog.LevelInfo) {
		return
	}
	now := time.Now()
	rec := slog.NewRecord(now, slog.LevelInfo, "request", 0)
	rec.AddAttrs(slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.Int("status", code),
		slog.Float64("duration_ms", float64(now.Sub(start).Microseconds())/1000), slog.String("remote", clientIP(r)))
	h.Handle(ctx, rec)
}

type handlerFunc func(w http.ResponseWriter, r *http.Request, k apikey.Key) error

func (s *Server) routes() {
	s.mux.Handle("GET /metrics", s.cfg.Metrics.handler())
	s.mux.HandleFunc("GET /openapi.yaml", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/yaml")
		w.Write(OpenAPI)
	})
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	s.mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := s.cfg.Store.Size(r.Context()); err != nil {
			writeProblem(w, fmt.Errorf("store: %w", err))
			return
		}
		io.WriteString(w, "ready\n")
	})
	s.handle("POST /v1/events", s.ingest, apikey.Writer, apikey.Admin)
	s.handle("GET /v1/events/{id}", s.getEvent, apikey.Reader, apikey.Auditor, apikey.Admin)
	s.handle("GET /v1/events", s.listEvents, apikey.Reader, apikey.Auditor, apikey.Admin)
	s.handle("GET /v1/sessions/{id}", s.getSession, apikey.Reader, apikey.Auditor, apikey.Admin)
	s.handle("GET /v1/checkpoint", s.checkpoint, apikey.Reader, apikey.Auditor, apikey.Admin)
	s.handle("GET /v1/proofs/inclusion", s.inclusion, apikey.Auditor, apikey.Admin)
	s.handle("GET /v1/proofs/consistency", s.consistency, apikey.Auditor, apikey.Admin)
	s.handle("POST /v1/verify", s.verify, apikey.Auditor, apikey.Admin)
	s.handle("POST /v1/traces", s.traces, apikey.Writer, apikey.Admin)
	s.retentionRoutes()
	s.handle("GET /v1/alerts", s.listAlerts, apikey.Reader, apikey.Auditor, apikey.Admin)
	s.handle("GET /v1/reviews", s.listReviews, apikey.Auditor, apikey.Admin)
	s.handle("POST /v1/reviews/{id}/close", s.closeReview, apikey.Auditor, apikey.Admin)
	s.approvalRoutes()
	s.consoleRoutes()
}

// handle wraps h with authentication, the role check and error writing.
func (s *Server) handle(pattern string, h handlerFunc, roles ...apikey.Role) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		k, err := s.authenticate(r)
		if err == nil && !roleIn(k.Role, roles) {
			err = s.forbidden(r, k, pattern)
		}
		if err == nil {
			err = h(w, r, k)
		}
		if err != nil {
			writeProblem(w, err)
		}
	})
}

func roleIn(r apikey.Role, roles []apikey.Role) bool {
	for _, x := range roles {
		if x == r {
			return true
		}
	}
	return false
}

// errNoBearer is worded so that the sanitizer finds nothing to redact in it: it is recorded as
// the reason of the denied access.
var errNoBearer = errors.New("no bearer token was sent")

// authenticate finds the request's key. A failure is counted, recorded in the log as a denied
// access, and limited per client address: past its allowance an address gets 429 for bad keys and
// its failures are no longer recorded, so nobody can flood the log. Valid keys still pass (with
// 256-bit random keys, telling valid from invalid teaches a guesser nothing).
func (s *Server) authenticate(r *http.Request) (apikey.Key, error) {
	ip := clientIP(r)
	auth := r.Header.Get("Authorization")
	secret, ok := strings.CutPrefix(auth, "Bearer ")
	var k apikey.Key
	err := errNoBearer
	if ok && secret != "" {
		k, err = s.cfg.Keys.Lookup(strings.TrimSpace(secret))
	}
	if err == nil {
		return k, nil
	}
	s.cfg.Metrics.authFailures.Inc()
	if s.limiter.blocked(ip) {
		return apikey.Key{}, &Problem{Status: http.StatusTooManyRequests, Title: "Too many failed authentications", Detail: "this address is refused for a while", retry: 60}
	}
	if s.limiter.fail(ip) {
		md, _ := json.Marshal(map[string]any{"endpoint": r.Method + " " + r.URL.Path, "reason": err.Error()})
		ev := &event.Event{Kind: event.KindAccess, UserID: "unauthenticated", ClientIP: ip, UserAgent: r.UserAgent(),
			SubjectType: "audit_log", SubjectID: "api", Purpose: "authentication", Outcome: event.OutcomeDenied, Metadata: md}
		if _, aerr := s.cfg.Ledger.Append(context.WithoutCancel(r.Context()), ev); aerr != nil {
			s.cfg.Logger.Error("failed authentication not recorded", "err", aerr)
		}
	}
	s.cfg.Logger.Warn("authentication failed", "remote", ip)
	return apikey.Key{}, &Problem{Status: http.StatusUnauthorized, Title: "Unauthorized", Detail: "send Authorization: Bearer KEY with a valid key"}
}

// forbidden records a valid key's attempt at what its role may not do as a denied access, and
// returns the 403 to answer.
func (s *Server) forbidden(r *http.Request, k apikey.Key, pattern string) error {
	md, _ := json.Marshal(map[string]any{"endpoint": r.Method + " " + r.URL.Path, "reason": "role not allowed", "key_id": k.ID})
	ev := &event.Event{Kind: event.KindAccess, UserID: "apikey:" + k.Name, UserRole: string(k.Role), ClientIP: clientIP(r),
		UserAgent: r.UserAgent(), SubjectType: "audit_log", SubjectID: "api", Purpose: "authorization", Outcome: event.OutcomeDenied, Metadata: md}
	if _, err := s.cfg.Ledger.Append(context.WithoutCancel(r.Context()), ev); err != nil {
		s.cfg.Logger.Error("denied access not recorded", "err", err)
	}
	return &Problem{Status: http.StatusForbidden, Title: "Forbidden", Detail: fmt.Sprintf("role %s may not %s", k.Role, pattern)}
}

// Problem is an RFC 9457 problem detail; every error a handler returns becomes one.
type Problem struct {
	Status int            `json:"status"`
	Title  string         `json:"title"`
	Detail string         `json:"detail,omitempty"`
	Type   string         `json:"type,omitempty"`
	Errors []EventProblem `json:"errors,omitempty"`
	// Results, on an ingest that stored nothing, is the answer per event.
	Results []IngestResult `json:"results,omitempty"`
	retry   int
}

// EventProblem is the error of one event of a batch.
type EventProblem struct {
	Index int    `json:"index"`
	Field string `json:"field,omitempty"`
	Error string `json:"error"`
}

func (p *Problem) Error() string { return p.Title + ": " + p.Detail }

// writeProblem maps an error to its problem detail: the one place errors meet HTTP.
func writeProblem(w http.ResponseWriter, err error) {
	var p *Problem
	var fe *event.FieldError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &p):
	case errors.As(err, &mbe):
		p = &Problem{Status: http.StatusRequestEntityTooLarge, Title: "Body too large", Detail: fmt.Sprintf("the limit is %d bytes", mbe.Limit)}
	case errors.As(err, &fe):
		p = &Problem{Status: http.StatusBadRequest, Title: "Invalid event", Detail: err.Error(), Errors: []EventProblem{{Field: fe.Field, Error: fe.Rule}}}
	case errors.Is(err, event.ErrInvalid):
		p = &Problem{Status: http.StatusBadRequest, Title: "Invalid event", Detail: err.Error()}
	case errors.Is(err, retention.ErrBadRequest):
		p = &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: err.Error()}
	case errors.Is(err, retention.ErrUnknownHold):
		p = &Problem{Status: http.StatusNotFound, Title: "Not found", Detail: err.Error()}
	case errors.Is(err, alert.ErrAlreadyReviewed):
		p = &Problem{Status: http.StatusConflict, Title: "Already reviewed", Detail: err.Error()}
	case errors.Is(err, alert.ErrNotBreakGlass), errors.Is(err, alert.ErrNoNote):
		p = &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: err.Error()}
	case errors.Is(err, ledger.ErrConflict):
		p = &Problem{Status: http.StatusConflict, Title: "Conflict", Detail: err.Error()}
	case errors.Is(err, ledger.ErrBackpressure):
		p = &Problem{Status: http.StatusTooManyRequests, Title: "Ingest queue full", Detail: "retry after the given seconds", retry: 1}
	case errors.Is(err, store.ErrNotFound), errors.Is(err, query.ErrNoSuchSession):
		p = &Problem{Status: http.StatusNotFound, Title: "Not found", Detail: err.Error()}
	case errors.Is(err, query.ErrBadCursor), errors.Is(err, query.ErrPageSize), errors.Is(err, ledger.ErrNotYetSigned):
		p = &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: err.Error()}
	case errors.Is(err, store.ErrUnavailable):
		// A database restart or failover: nothing of the request was acknowledged, and a retry
		// with the same ids is answered with the stored receipts if it landed after all.
		p = &Problem{Status: http.StatusServiceUnavailable, Title: "Database unavailable", Detail: "the log's database cannot be reached now; retry with the same event ids", retry: 5}
	case errors.Is(err, store.ErrNoSpace), errors.Is(err, store.ErrReadOnly):
		p = &Problem{Status: http.StatusServiceUnavailable, Title: "Storage unavailable", Detail: "the log cannot be written now", retry: 30}
	default:
		p = &Problem{Status: http.StatusInternalServerError, Title: "Internal error", Detail: "see the server log"}
	}
	if p.retry > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(p.retry))
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	json.NewEncoder(w).Encode(p)
}

func writeJSON(w http.ResponseWriter, status int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	return json.NewEncoder(w).Encode(v)
}

// readBody returns the request body, decompressed, and refuses one over MaxBodyBytes after
// decompression (so a gzip bomb stops there).
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	var rd io.Reader = r.Body
	switch enc := r.Header.Get("Content-Encoding"); enc {
	case "", "identity":
	case "gzip":
		zr, err := gzip.NewReader(http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes))
		if err != nil {
			return nil, &Problem{Status: http.StatusBadRequest, Title: "Bad gzip body", Detail: err.Error()}
		}
		rd = zr
	default:
		return nil, &Problem{Status: http.StatusUnsupportedMediaType, Title: "Unsupported encoding", Detail: fmt.Sprintf("Content-Encoding %q (want gzip or none)", enc)}
	}
	// A declared length sizes the buffer once (ReadAll grows it step by step from 512 bytes,
	// copying a 100 KiB batch at each step); the limit still applies to what is actually read.
	var buf bytes.Buffer
	if n := r.ContentLength; rd == r.Body && n > 0 && n <= s.cfg.MaxBodyBytes {
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(io.LimitReader(rd, s.cfg.MaxBodyBytes+1))
	data := buf.Bytes()
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, err
	}
	if err != nil {
		return nil, &Problem{Status: http.StatusBadRequest, Title: "Unreadable body", Detail: err.Error()}
	}
	if int64(len(data)) > s.cfg.MaxBodyBytes {
		return nil, &Problem{Status: http.StatusRequestEntityTooLarge, Title: "Body too large", Detail: fmt.Sprintf("the limit is %d bytes after decompression", s.cfg.MaxBodyBytes)}
	}
	return data, nil
}

// IngestResult is the answer per event.
type IngestResult struct {
	Index     int    `json:"index"`
	ID        string `json:"id,omitempty"`
	Seq       *int64 `json:"seq,omitempty"`
	Leaf      string `json:"leaf,omitempty"`
	Duplicate bool   `json:"duplicate,omitempty"`
	Field     string `json:"field,omitempty"`
	Error     string `json:"error,omitempty"`
}

// ingest answers 200 when every event is stored (or was already), 207 when some were refused
// and the others stored, and 422 with the same per-event results when none was stored: a client
// that trusts any 2xx never takes a refused batch for a stored one. One event posted alone as a
// JSON object gets its error as the answer.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	ct := mediaType(r.Header.Get("Content-Type"))
	if ct != "application/json" && ct != "application/x-ndjson" && ct != "application/jsonl" {
		return &Problem{Status: http.StatusUnsupportedMediaType, Title: "Unsupported content type", Detail: fmt.Sprintf("Content-Type %q (want application/json or application/x-ndjson)", ct)}
	}
	data, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var items []ingest.Item
	tooMany := func(n int) error {
		return &Problem{Status: http.StatusRequestEntityTooLarge, Title: "Batch too large", Detail: fmt.Sprintf("%d events; the limit is %d", n, s.cfg.MaxBatch)}
	}
	if ct == "application/json" {
		if items, err = ingest.Split(data); err != nil {
			return &Problem{Status: http.StatusBadRequest, Title: "Malformed JSON", Detail: err.Error()}
		}
	} else {
		// Items for at most MaxBatch lines: a body of more is refused with its count.
		var n int
		if items, n = ingest.SplitLines(data, s.cfg.MaxBatch); n > s.cfg.MaxBatch {
			return tooMany(n)
		}
	}
	single := ct == "application/json" && len(items) == 1 && bytes.TrimSpace(data)[0] == '{'
	if len(items) == 0 {
		return &Problem{Status: http.StatusBadRequest, Title: "No events", Detail: "the body holds no event"}
	}
	if len(items) > s.cfg.MaxBatch {
		return tooMany(len(items))
	}
	// Detached from the request: once queued, a client hanging up does not drop the record.
	res, err := ingest.Append(context.WithoutCancel(r.Context()), s.cfg.Ledger.TryAppendBatch, items)
	if err != nil {
		return err
	}
	if single && res[0].Err != nil {
		return res[0].Err
	}
	s.countIngested("api", res)
	results := make([]IngestResult, len(res))
	stored, refused := 0, 0
	for i, x := range res {
		ir := &results[i]
		ir.Index = i
		if x.Err != nil {
			refused++
			var fe *event.FieldError
			if errors.As(x.Err, &fe) {
				ir.Field = fe.Field
			}
			ir.Error = x.Err.Error()
			continue
		}
		stored++
		seq := x.Seq
		ir.ID, ir.Seq, ir.Leaf, ir.Duplicate = x.ID, &seq, hex.EncodeToString(x.Leaf[:]), x.Duplicate
	}
	switch {
	case stored == 0:
		return &Problem{Status: http.StatusUnprocessableEntity, Title: "No event stored",
			Detail: fmt.Sprintf("all %d events were refused; each result says why", refused), Results: results}
	case refused > 0:
		return writeJSON(w, http.StatusMultiStatus, ingestReply{results})
	}
	return writeJSON(w, http.StatusOK, ingestReply{results})
}

// ingestReply is the body of a 200 or 207 answer to an ingest: a struct, which encoding/json
// writes several times faster than the map it replaces, with the same bytes.
type ingestReply struct {
	Results []IngestResult `json:"results"`
}

// mediaType is the media type of a Content-Type header, as mime.ParseMediaType gives it; the
// usual values are answered without parsing (which builds a map of parameters).
func mediaType(header string) string {
	switch header {
	case "application/json", "application/x-ndjson", "application/jsonl":
		return header
	}
	ct, _, _ := mime.ParseMediaType(header)
	return ct
}

// audit records a read through the API: who, what, how many results.
func (s *Server) audit(r *http.Request, k apikey.Key, what string, results int) error {
	return s.auditAs(r, k, what, results, event.OutcomeSuccess)
}

// auditAs is audit with the read's outcome: a verification that found problems is recorded with
// outcome error, which the built-in verification_failed alert rule watches.
func (s *Server) auditAs(r *http.Request, k apikey.Key, what string, results int, outcome event.Outcome) error {
	md, _ := json.Marshal(map[string]any{"endpoint": r.Method + " " + r.URL.Path, "query": r.URL.RawQuery, "results": results, "key_id": k.ID})
	ev := &event.Event{Kind: event.KindAccess, UserID: "apikey:" + k.Name, UserRole: string(k.Role), ClientIP: clientIP(r),
		UserAgent: r.UserAgent(), SubjectType: "audit_log", SubjectID: what, Purpose: "audit_log_read", Outcome: outcome, Metadata: md}
	_, err := s.cfg.Ledger.Append(context.WithoutCancel(r.Context()), ev)
	return err
}

func clientIP(r *http.Request) string {
	host := r.RemoteAddr
	if i := strings.LastIndexByte(host, ':'); i > 0 {
		host = host[:i]
	}
	return strings.Trim(host, "[]")
}

// masked hides from readers what the event's field table classes as exchanged content (payloads
// and model output), keeping the attribution: who, when, which agent, model and tool, outcome.
func masked(ev *event.Event, k apikey.Key) *event.Event {
	if k.Role != apikey.Reader {
		return ev
	}
	m := *ev
	for i := range event.Fields {
		f := &event.Fields[i]
		if !f.Class.Masked() {
			continue
		}
		switch {
		case f.Type == event.TypeJSON && len(*f.JSON(&m)) > 0 && f.Object:
			*f.JSON(&m) = json.RawMessage(`{"masked":true}`)
		case f.Type == event.TypeJSON && len(*f.JSON(&m)) > 0:
			*f.JSON(&m) = json.RawMessage(`"[masked]"`)
		case f.Type == event.TypeString && *f.Str(&m) != "":
			*f.Str(&m) = "[masked]"
		}
	}
	return &m
}

func (s *Server) getEvent(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	e, err := s.cfg.Store.EntryByID(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	if e.Purged() {
		if err := s.audit(r, k, "event:"+e.ID, 1); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, query.Record{Seq: e.Seq, PurgedBy: e.PurgedBy})
	}
	ev, err := event.ParseStored(e.Body)
	if err != nil {
		return err
	}
	if err := s.audit(r, k, "event:"+ev.ID, 1); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, query.Record{Seq: e.Seq, Event: masked(ev, k)})
}

func (s *Server) listEvents(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	q := r.URL.Query()
	f := store.Filter{SessionID: q.Get("session_id"), UserID: q.Get("user_id"), ToolName: q.Get("tool_name"), Kind: q.Get("kind"),
		SubjectID: q.Get("subject_id"), SubjectType: q.Get("subject_type"), Outcome: q.Get("outcome"), AgentID: q.Get("agent_id"), Model: q.Get("model")}
	var err error
	for name, dst := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := q.Get(name); v != "" {
			if *dst, err = time.Parse(time.RFC3339Nano, v); err != nil {
				return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: fmt.Sprintf("%s: want an RFC 3339 time", name)}
			}
		}
	}
	if v := q.Get("limit"); v != "" {
		if f.Limit, err = strconv.Atoi(v); err != nil {
			return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: "limit: want a number"}
		}
	}
	f.Failures = q.Get("failures") == "true"
	page, err := query.Find(r.Context(), s.cfg.Store, f, q.Get("cursor"))
	if err != nil {
		return err
	}
	for i := range page.Records {
		page.Records[i].Event = masked(page.Records[i].Event, k)
	}
	if err := s.audit(r, k, "events", len(page.Records)); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, page)
}

func (s *Server) getSession(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	recs, err := query.Session(r.Context(), s.cfg.Store, r.PathValue("id"))
	if err != nil {
		return err
	}
	for i := range recs {
		recs[i].Event = masked(recs[i].Event, k)
	}
	if err := s.audit(r, k, "session:"+r.PathValue("id"), len(recs)); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"session_id": r.PathValue("id"), "records": recs})
}

func (s *Server) checkpoint(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	cp, err := s.cfg.Store.LatestCheckpoint(r.Context())
	if err != nil {
		return err
	}
	if err := s.audit(r, k, "checkpoint", 1); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	_, err = w.Write(cp.Note)
	return err
}

func (s *Server) inclusion(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	id := r.URL.Query().Get("id")
	if id == "" {
		return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: "id is required"}
	}
	b, err := s.cfg.Ledger.Prove(r.Context(), id)
	if err != nil {
		return err
	}
	if err := s.audit(r, k, "proof:"+id, 1); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, b)
}

func (s *Server) consistency(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	old, err := strconv.ParseInt(r.URL.Query().Get("old"), 10, 64)
	if err != nil || old < 1 {
		return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: "old: want a tree size of at least 1"}
	}
	proof, latest, err := ledger.ProveConsistency(r.Context(), s.cfg.Store, old)
	if err != nil {
		return err
	}
	if err := s.audit(r, k, "consistency", 1); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"old": old, "new": latest.N, "proof": proof})
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	rep, err := ledger.Verify(r.Context(), s.cfg.Store, s.cfg.Verifier, ledger.VerifyOptions{})
	var te *ledger.TamperError
	if err != nil && !errors.As(err, &te) {
		return err
	}
	outcome := event.OutcomeSuccess
	if err != nil || len(rep.Problems) > 0 {
		outcome = event.OutcomeError
	}
	if err := s.auditAs(r, k, "verify", len(rep.Problems), outcome); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, rep)
}

func (s *Server) countIngested(door string, res []ledger.Result) {
	n := 0
	for _, x := range res {
		if x.Err == nil && !x.Duplicate {
			n++
		}
	}
	s.cfg.Metrics.countIngested(door, n)
}
