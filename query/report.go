package query

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store"
)

// ToolStat summarizes the calls of one tool.
type ToolStat struct {
	Tool        string  `json:"tool"`
	Calls       int     `json:"calls"`
	Successes   int     `json:"successes"`
	Failures    int     `json:"failures"`
	SuccessRate float64 `json:"success_rate"` // successes / calls with a known result
	AvgMS       float64 `json:"avg_ms"`
	MaxMS       float64 `json:"max_ms"`
	P50MS       float64 `json:"p50_ms"`
	P95MS       float64 `json:"p95_ms"`
	P99MS       float64 `json:"p99_ms"`
	UniqueUsers int     `json:"unique_users"`
}

// ToolStats computes per-tool statistics over tool_call events in [since, until) (zero values:
// unbounded), sorted by tool name. Durations are over the calls that report one; percentiles are
// nearest-rank.
func ToolStats(ctx context.Context, st Store, since, until time.Time) ([]ToolStat, error) {
	type acc struct {
		ToolStat
		durs  []float64
		users map[string]struct{}
	}
	by := map[string]*acc{}
	err := st.ToolCalls(ctx, since, until, func(c store.ToolCall) error {
		a := by[c.Tool]
		if a == nil {
			a = &acc{ToolStat: ToolStat{Tool: c.Tool}, users: map[string]struct{}{}}
			by[c.Tool] = a
		}
		a.Calls++
		switch c.Success {
		case 1:
			a.Successes++
		case 0:
			a.Failures++
		}
		if c.HasDuration {
			a.durs = append(a.durs, c.DurationMS)
		}
		if c.UserID != "" {
			a.users[c.UserID] = struct{}{}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	out := make([]ToolStat, 0, len(by))
	for _, a := range by {
		if known := a.Successes + a.Failures; known > 0 {
			a.SuccessRate = float64(a.Successes) / float64(known)
		}
		if n := len(a.durs); n > 0 {
			sort.Float64s(a.durs)
			var sum float64
			for _, d := range a.durs {
				sum += d
			}
			a.AvgMS = sum / float64(n)
			a.MaxMS = a.durs[n-1]
			a.P50MS, a.P95MS, a.P99MS = rank(a.durs, 0.50), rank(a.durs, 0.95), rank(a.durs, 0.99)
		}
		a.UniqueUsers = len(a.users)
		out = append(out, a.ToolStat)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tool < out[j].Tool })
	return out, nil
}

// rank is the nearest-rank percentile of sorted values.
func rank(sorted []float64, p float64) float64 {
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// Access is one access to a subject's records.
type Access struct {
	Seq              int64     `json:"seq"`
	ID               string    `json:"id"`
	Time             time.Time `json:"time"`
	UserID           string    `json:"user_id"`
	UserRole         string    `json:"user_role,omitempty"`
	AgentID          string    `json:"agent_id,omitempty"`
	Model            string    `json:"model,omitempty"`
	Tool             string    `json:"tool,omitempty"`
	Kind             string    `json:"kind"`
	Purpose          string    `json:"purpose,omitempty"`
	Success          *bool     `json:"success,omitempty"`
	Outcome          string    `json:"outcome,omitempty"`
	BreakGlass       bool      `json:"break_glass"`
	BreakGlassReason string    `json:"break_glass_reason,omitempty"`
	// Unreviewed marks a break-glass access that no review event (agentaudit review close) covers.
	Unreviewed bool `json:"unreviewed,omitempty"`
	Verified   bool `json:"verified"` // its inclusion proof checks against the signed checkpoint
}

// AccessReport lists every access to one subject's records in a time range.
type AccessReport struct {
	SubjectType       string     `json:"subject_type,omitempty"`
	SubjectID         string     `json:"subject_id"`
	From              time.Time  `json:"from"`
	To                time.Time  `json:"to"`
	Accesses          []Access   `json:"accesses"`
	Total             int        `json:"total"`
	UniqueUsers       int        `json:"unique_users"`
	BreakGlass        int        `json:"break_glass"`
	Unreviewed        int        `json:"unreviewed_break_glass"`
	Failed            int        `json:"failed"`
	IntegrityVerified bool       `json:"integrity_verified"`
	IntegrityNote     string     `json:"integrity_note,omitempty"`
	Checkpoint        *tlog.Tree `json:"checkpoint,omitempty"`
	GeneratedAt       time.Time  `json:"generated_at"`
}

// TreeReader is the signed Merkle tree the report's integrity check proves inclusion in: the
// latest checkpoint and the stored tree hashes that proofs are built from.
type TreeReader interface {
	LatestCheckpoint(ctx context.Context) (store.Checkpoint, error)
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
}

// ParseSubject splits "patient:P-123" into type and id; a bare "P-123" has no type.
func ParseSubject(s string) (typ, id string, err error) {
	typ, id, ok := strings.Cut(s, ":")
	if !ok {
		typ, id = "", s
	}
	if strings.TrimSpace(id) == "" {
		return "", "", fmt.Errorf("subject %q: want TYPE:ID, e.g. patient:P-123", s)
	}
	return typ, id, nil
}

// AccessReportFor builds the access report for a subject over [from, to). Integrity is computed for this
// report, never cached: every listed event's leaf is recomputed from its stored salt and body and
// its inclusion proof is checked against the latest checkpoint, whose signature is checked with v.
func AccessReportFor(ctx context.Context, st Store, tr TreeReader, v note.Verifier, subjectType, subjectID string, from, to time.Time, now time.Time) (*AccessReport, error) {
	rep := &AccessReport{SubjectType: subjectType, SubjectID: subjectID, From: from, To: to, GeneratedAt: now.UTC(), Accesses: []Access{}}
	var entries []store.Entry
	var parents []string // of tool_result events
	err := st.Find(ctx, store.Filter{SubjectType: subjectType, SubjectID: subjectID, Since: from, Until: to}, func(e store.Entry) error {
		r, err := decode(e)
		if err != nil {
			return err
		}
		ev := r.Event
		if ev.Kind == event.KindReview {
			return nil // a review of an access is not an access; it marks one, below
		}
		rep.Accesses = append(rep.Accesses, Access{
			Seq: r.Seq, ID: ev.ID, Time: ev.Time, UserID: ev.UserID, UserRole: ev.UserRole, AgentID: ev.AgentID,
			Model: ev.Model, Tool: ev.ToolName, Kind: string(ev.Kind), Purpose: ev.Purpose, Success: ev.Success,
			Outcome: string(ev.Outcome), BreakGlass: ev.BreakGlass, BreakGlassReason: ev.BreakGlassReason,
		})
		entries = append(entries, store.Entry{Seq: e.Seq, Salt: slices.Clone(e.Salt), Body: slices.Clone(e.Body)})
		if ev.Kind == event.KindToolResult && ev.ParentID != "" {
			parents = append(parents, ev.ParentID)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	// A fail-closed tool call is two events, the call recorded before it ran and its result:
	// one access, listed once, as the result (which carries the outcome).
	completed := map[string]bool{}
	for _, p := range parents {
		completed[p] = true
	}
	kept := rep.Accesses[:0]
	keptEntries := entries[:0]
	for i, a := range rep.Accesses {
		if a.Kind == string(event.KindToolCall) && completed[a.ID] {
			continue
		}
		kept = append(kept, a)
		keptEntries = append(keptEntries, entries[i])
	}
	rep.Accesses, entries = kept, keptEntries
	// Reviews come after the access, maybe after the report's range: all of the subject's.
	reviewed := map[string]bool{}
	err = st.Find(ctx, store.Filter{Kind: string(event.KindReview), SubjectType: subjectType, SubjectID: subjectID}, func(e store.Entry) error {
		if r, err := decode(e); err == nil && r.Event.ParentID != "" {
			reviewed[r.Event.ParentID] = true
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	users := map[string]struct{}{}
	for i := range rep.Accesses {
		a := &rep.Accesses[i]
		users[a.UserID] = struct{}{}
		if a.BreakGlass {
			rep.BreakGlass++
			if !reviewed[a.ID] {
				a.Unreviewed = true
				rep.Unreviewed++
			}
		}
		if a.failed() {
			rep.Failed++
		}
	}
	rep.Total, rep.UniqueUsers = len(rep.Accesses), len(users)

	cp, err := tr.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		rep.IntegrityNote = "the log has no signed checkpoint yet"
		return rep, nil
	}
	if err != nil {
		return nil, err
	}
	c, err := ledger.OpenCheckpoint(cp.Note, v)
	if err != nil {
		rep.IntegrityNote = "the latest checkpoint does not verify with the key: " + err.Error()
		return rep, nil
	}
	rep.Checkpoint = &c.Tree
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return tr.ReadHashes(ctx, idx) })
	verified := 0
	for i, e := range entries {
		if e.Seq >= c.N {
			continue // newer than the checkpoint: not provable yet
		}
		proof, err := tlog.ProveRecord(c.N, e.Seq, hr)
		if err != nil {
			continue
		}
		if tlog.CheckRecord(proof, c.N, c.Hash, e.Seq, ledger.LeafHash(e.Salt, e.Body)) == nil {
			rep.Accesses[i].Verified = true
			verified++
		}
	}
	rep.IntegrityVerified = verified == len(entries)
	if !rep.IntegrityVerified {
		rep.IntegrityNote = fmt.Sprintf("%d of %d listed events are not proven by the checkpoint of size %d (newer than it, or altered: run verify)", len(entries)-verified, len(entries), c.N)
	}
	return rep, nil
}

func (a Access) failed() bool {
	return a.Outcome == "error" || a.Outcome == "denied" || (a.Success != nil && !*a.Success)
}
