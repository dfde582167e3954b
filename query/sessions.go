package query

import (
	"cmp"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/store"
)

// SessionSummary aggregates one session's events: who ran it, when, how long, how many events,
// failures and tokens, and which tools and subjects it touched.
type SessionSummary struct {
	SessionID    string    `json:"session_id"`
	UserIDs      []string  `json:"user_ids"`
	AgentIDs     []string  `json:"agent_ids"`
	Models       []string  `json:"models"`
	Tools        []string  `json:"tools"`
	Subjects     []string  `json:"subjects"` // TYPE:ID
	Start        time.Time `json:"start"`
	End          time.Time `json:"end"`
	DurationMS   float64   `json:"duration_ms"`
	Events       int       `json:"events"`
	Failures     int       `json:"failures"`
	InputTokens  int64     `json:"input_tokens"`
	OutputTokens int64     `json:"output_tokens"`
	FirstSeq     int64     `json:"first_seq"`
	LastSeq      int64     `json:"last_seq"`
}

// SessionFilter selects sessions: each set field must match one of the session's values; a time
// range keeps the sessions that overlap [Since, Until).
type SessionFilter struct {
	UserID, AgentID, Model, ToolName, Subject string
	Since, Until                              time.Time
	Failures                                  bool
	Limit                                     int
}

// SessionPage is one page of sessions, newest first, and the cursor of the next.
type SessionPage struct {
	Sessions []SessionSummary `json:"sessions"`
	Next     string           `json:"next,omitempty"`
	// Indexed is the seq up to which the log has been read into the index.
	Indexed int64 `json:"indexed"`
}

// SessionIndex keeps every session's summary in memory, built by one scan of the log and brought
// up to date by reading only the entries after the last one it saw (the log is append-only), so
// that listing sessions costs no scan. A purge does not shrink a summary: it counts what was
// committed. Safe for concurrent use.
type SessionIndex struct {
	mu     sync.Mutex
	next   int64 // the first seq not yet read
	byID   map[string]*sessionAcc
	sorted []*sessionAcc // newest start first; nil when stale
}

type sessionAcc struct {
	SessionSummary
	sets map[string]struct{} // "u:", "a:", "m:", "t:", "s:" prefixed values
}

// the slice of an event the index reads; decoding only it keeps a catch-up fast.
type sessionFields struct {
	SessionID    string    `json:"session_id"`
	Time         time.Time `json:"time"`
	UserID       string    `json:"user_id"`
	AgentID      string    `json:"agent_id"`
	Model        string    `json:"model"`
	ToolName     string    `json:"tool_name"`
	Kind         string    `json:"kind"`
	Outcome      string    `json:"outcome"`
	Success      *bool     `json:"success"`
	SubjectType  string    `json:"subject_type"`
	SubjectID    string    `json:"subject_id"`
	InputTokens  int64     `json:"input_tokens"`
	OutputTokens int64     `json:"output_tokens"`
	DurationMS   float64   `json:"duration_ms"`
}

// Update reads the entries committed since the last call.
func (x *SessionIndex) Update(ctx context.Context, st Store) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.byID == nil {
		x.byID = map[string]*sessionAcc{}
	}
	var f sessionFields
	// FromSeq 0 is no bound: the first call reads the whole log.
	err := st.Find(ctx, store.Filter{FromSeq: x.next}, func(e store.Entry) error {
		if e.Seq < x.next {
			return nil
		}
		x.next = e.Seq + 1
		if e.Purged() {
			return nil
		}
		f = sessionFields{}
		if err := json.Unmarshal(e.Body, &f); err != nil {
			return fmt.Errorf("stored event %d does not parse (run verify): %w", e.Seq, err)
		}
		if f.SessionID == "" {
			return nil
		}
		x.add(e.Seq, &f)
		return nil
	})
	return err
}

func (x *SessionIndex) add(seq int64, f *sessionFields) {
	a := x.byID[f.SessionID]
	if a == nil {
		a = &sessionAcc{SessionSummary: SessionSummary{SessionID: f.SessionID, Start: f.Time, End: f.Time, FirstSeq: seq}, sets: map[string]struct{}{}}
		x.byID[f.SessionID] = a
	}
	x.sorted = nil
	a.Events++
	a.LastSeq = seq
	if f.Time.Before(a.Start) {
		a.Start = f.Time
	}
	end := f.Time.Add(time.Duration(f.DurationMS * float64(time.Millisecond)))
	if end.After(a.End) {
		a.End = end
	}
	a.DurationMS = float64(a.End.Sub(a.Start).Microseconds()) / 1000
	a.InputTokens += f.InputTokens
	a.OutputTokens += f.OutputTokens
	if f.Outcome == "error" || f.Outcome == "denied" || (f.Success != nil && !*f.Success) || f.Kind == "error" {
		a.Failures++
	}
	put := func(prefix, v string, list *[]string) {
		if v == "" {
			return
		}
		if _, ok := a.sets[prefix+v]; !ok {
			a.sets[prefix+v] = struct{}{}
			*list = append(*list, v)
		}
	}
	put("u:", f.UserID, &a.UserIDs)
	put("a:", f.AgentID, &a.AgentIDs)
	put("m:", f.Model, &a.Models)
	put("t:", f.ToolName, &a.Tools)
	if f.SubjectID != "" {
		put("s:", f.SubjectType+":"+f.SubjectID, &a.Subjects)
	}
}

func (a *sessionAcc) matches(f SessionFilter) bool {
	has := func(prefix, v string) bool {
		if v == "" {
			return true
		}
		_, ok := a.sets[prefix+v]
		return ok
	}
	switch {
	case !has("u:", f.UserID), !has("a:", f.AgentID), !has("m:", f.Model), !has("t:", f.ToolName), !has("s:", f.Subject):
		return false
	case f.Failures && a.Failures == 0:
		return false
	case !f.Since.IsZero() && a.End.Before(f.Since):
		return false
	case !f.Until.IsZero() && !a.Start.Before(f.Until):
		return false
	}
	return true
}

// List returns one page of the sessions matching f, newest start first, from cursor ("" for
// the first page). f.Limit is the page size (DefaultPageSize when 0, at most MaxPageSize).
func (x *SessionIndex) List(f SessionFilter, cursor string) (SessionPage, error) {
	size := f.Limit
	switch {
	case size == 0:
		size = DefaultPageSize
	case size < 0 || size > MaxPageSize:
		return SessionPage{}, fmt.Errorf("%d: %w", size, ErrPageSize)
	}
	after, err := decodeSessionCursor(cursor)
	if err != nil {
		return SessionPage{}, err
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.sorted == nil {
		x.sorted = make([]*sessionAcc, 0, len(x.byID))
		for _, a := range x.byID {
			x.sorted = append(x.sorted, a)
		}
		slices.SortFunc(x.sorted, func(a, b *sessionAcc) int { return newestFirst(a.key(), b.key()) })
	}
	// The cursor is the (start, first seq) of the next page's first session: sessions recorded
	// meanwhile do not shift the pages after it.
	i := 0
	if after != nil {
		i, _ = slices.BinarySearchFunc(x.sorted, *after, func(a *sessionAcc, k sessionKey) int { return newestFirst(a.key(), k) })
	}
	p := SessionPage{Sessions: []SessionSummary{}, Indexed: x.next - 1}
	for ; i < len(x.sorted); i++ {
		a := x.sorted[i]
		if !a.matches(f) {
			continue
		}
		if len(p.Sessions) == size {
			p.Next = encodeSessionCursor(a.key())
			break
		}
		s := a.SessionSummary
		s.UserIDs, s.AgentIDs, s.Models = slices.Clone(s.UserIDs), slices.Clone(s.AgentIDs), slices.Clone(s.Models)
		s.Tools, s.Subjects = slices.Clone(s.Tools), slices.Clone(s.Subjects)
		p.Sessions = append(p.Sessions, s)
	}
	return p, nil
}

// Len is the number of sessions indexed.
func (x *SessionIndex) Len() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.byID)
}

type sessionKey struct {
	start    int64 // Unix nanoseconds
	firstSeq int64
}

func (a *sessionAcc) key() sessionKey { return sessionKey{a.Start.UnixNano(), a.FirstSeq} }

func newestFirst(a, b sessionKey) int {
	switch {
	case a.start != b.start:
		return cmp.Compare(b.start, a.start)
	default:
		return cmp.Compare(b.firstSeq, a.firstSeq)
	}
}

func encodeSessionCursor(k sessionKey) string {
	return base64.RawURLEncoding.EncodeToString([]byte("session:" + strconv.FormatInt(k.start, 10) + ":" + strconv.FormatInt(k.firstSeq, 10)))
}

func decodeSessionCursor(c string) (*sessionKey, error) {
	if c == "" {
		return nil, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	rest, ok := strings.CutPrefix(string(raw), "session:")
	a, b, ok2 := strings.Cut(rest, ":")
	if err != nil || !ok || !ok2 {
		return nil, ErrBadCursor
	}
	start, err1 := strconv.ParseInt(a, 10, 64)
	seq, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil || seq < 0 {
		return nil, ErrBadCursor
	}
	return &sessionKey{start, seq}, nil
}
