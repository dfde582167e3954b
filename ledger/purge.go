package ledger

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/store"
)

// The records of the system events that govern retention, as they stand in Event.Record. The
// retention package writes them; verification reads them to account for every erased body.

// Purge reasons.
const (
	PurgeRetention = "retention" // the events' retention ran out
	PurgeErasure   = "erasure"   // a data subject's erasure request, before their time
)

// PurgeRecord is the record of a purge event: which events it erases and why. It is committed
// before any body it covers is erased.
type PurgeRecord struct {
	Reason string `json:"reason"`
	// At is the time the events were judged due against (the purge's clock).
	At time.Time `json:"at"`
	// Policy is the SHA-256 of the retention policy in force (its canonical JSON), in hex.
	Policy string       `json:"policy,omitempty"`
	Ranges []PurgeRange `json:"ranges"`
	// Holds are the ids of the holds active when the purge ran: none of them covers an event
	// in Ranges.
	Holds []string `json:"holds"`
	// Erasure: the subject's type (its id is not repeated here), and why mandatory classes were
	// erased too, when they were.
	SubjectType       string `json:"subject_type,omitempty"`
	OverrideMandatory string `json:"override_mandatory,omitempty"`
}

// PurgeRange is a run of consecutive seqs of one retention class that a purge erases, with the
// latest retain_until among them.
type PurgeRange struct {
	From      int64     `json:"from"`
	To        int64     `json:"to"` // inclusive
	Class     string    `json:"class"`
	Until     time.Time `json:"until"`
	Mandatory bool      `json:"mandatory,omitempty"`
}

// HoldRecord is the record of a legal_hold event; the hold's id is the event's id.
type HoldRecord struct {
	Scope HoldScope `json:"scope"`
}

// ReleaseRecord is the record of a hold_release event.
type ReleaseRecord struct {
	Hold string `json:"hold"`
}

// HoldScope selects the events a hold keeps: every given field must match (identifiers as the
// log stores them, pseudonyms included), and the event's time must fall in [Since, Until).
type HoldScope struct {
	SessionID   string    `json:"session_id,omitempty"`
	UserID      string    `json:"user_id,omitempty"`
	AgentID     string    `json:"agent_id,omitempty"`
	ToolName    string    `json:"tool_name,omitempty"`
	SubjectType string    `json:"subject_type,omitempty"`
	SubjectID   string    `json:"subject_id,omitempty"`
	Kind        string    `json:"kind,omitempty"`
	Since       time.Time `json:"since,omitzero"`
	Until       time.Time `json:"until,omitzero"`
}

// Empty reports whether the scope selects nothing in particular (it would hold everything).
func (s HoldScope) Empty() bool { return s == HoldScope{} }

// Filter is the store filter that finds the scope's events.
func (s HoldScope) Filter() store.Filter {
	return store.Filter{SessionID: s.SessionID, UserID: s.UserID, AgentID: s.AgentID, ToolName: s.ToolName,
		SubjectType: s.SubjectType, SubjectID: s.SubjectID, Kind: s.Kind, Since: s.Since, Until: s.Until}
}

// Matches reports whether ev is in the scope; times compare in whole milliseconds, as the
// store's filters do.
func (s HoldScope) Matches(ev *event.Event) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	ms := ev.Time.UnixMilli()
	return eq(s.SessionID, ev.SessionID) && eq(s.UserID, ev.UserID) && eq(s.AgentID, ev.AgentID) &&
		eq(s.ToolName, ev.ToolName) && eq(s.SubjectType, ev.SubjectType) && eq(s.SubjectID, ev.SubjectID) &&
		eq(s.Kind, string(ev.Kind)) && (s.Since.IsZero() || ms >= s.Since.UnixMilli()) && (s.Until.IsZero() || ms < s.Until.UnixMilli())
}

func (s HoldScope) String() string {
	var parts []string
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("session", s.SessionID)
	add("user", s.UserID)
	add("agent", s.AgentID)
	add("tool", s.ToolName)
	if s.SubjectType != "" || s.SubjectID != "" {
		add("subject", s.SubjectType+":"+s.SubjectID)
	}
	add("kind", s.Kind)
	if !s.Since.IsZero() {
		add("since", s.Since.Format(time.RFC3339))
	}
	if !s.Until.IsZero() {
		add("until", s.Until.Format(time.RFC3339))
	}
	return strings.Join(parts, " ")
}

// Hold is a legal hold as the log records it.
type Hold struct {
	ID       string    `json:"id"`
	Seq      int64     `json:"seq"`
	Scope    HoldScope `json:"scope"`
	Reason   string    `json:"reason"`
	PlacedBy string    `json:"placed_by,omitempty"`
	PlacedAt time.Time `json:"placed_at"`
	// Released is set once a hold_release names it.
	ReleasedSeq    int64     `json:"released_seq,omitempty"`
	ReleasedBy     string    `json:"released_by,omitempty"`
	ReleasedAt     time.Time `json:"released_at,omitzero"`
	ReleasedReason string    `json:"released_reason,omitempty"`
}

// ActiveAt reports whether the hold is in force for a purge at seq.
func (h *Hold) ActiveAt(seq int64) bool {
	return h.Seq < seq && (h.ReleasedSeq == 0 || h.ReleasedSeq > seq)
}

// Governance is the log's own record of its governance: purge events and holds, in seq order.
type Governance struct {
	Purges []PurgeEvent
	Holds  []*Hold

	problems []Problem // system events verification could not read
}

// PurgeEvent is a committed purge event.
type PurgeEvent struct {
	Seq        int64
	ID         string
	RecordedAt time.Time
	Record     PurgeRecord
}

// Add takes in one stored event if it is a purge, a hold or a release (others are ignored). A
// system event whose record does not parse is an error naming its seq.
func (g *Governance) Add(seq int64, ev *event.Event) error {
	switch ev.Kind {
	case event.KindPurge:
		var r PurgeRecord
		if err := strictJSON(ev.Record, &r); err != nil {
			return fmt.Errorf("purge event at seq %d: record: %w", seq, err)
		}
		g.Purges = append(g.Purges, PurgeEvent{Seq: seq, ID: ev.ID, RecordedAt: ev.RecordedAt, Record: r})
	case event.KindLegalHold:
		var r HoldRecord
		if err := strictJSON(ev.Record, &r); err != nil {
			return fmt.Errorf("legal_hold event at seq %d: record: %w", seq, err)
		}
		g.Holds = append(g.Holds, &Hold{ID: ev.ID, Seq: seq, Scope: r.Scope, Reason: ev.Rationale, PlacedBy: ev.UserID, PlacedAt: ev.RecordedAt})
	case event.KindHoldRelease:
		var r ReleaseRecord
		if err := strictJSON(ev.Record, &r); err != nil {
			return fmt.Errorf("hold_release event at seq %d: record: %w", seq, err)
		}
		for _, h := range g.Holds {
			if h.ID == r.Hold && h.ReleasedSeq == 0 {
				h.ReleasedSeq, h.ReleasedBy, h.ReleasedAt, h.ReleasedReason = seq, ev.UserID, ev.RecordedAt, ev.Rationale
			}
		}
	}
	return nil
}

// ActiveHolds returns the holds in force for a purge at seq (math.MaxInt64: now).
func (g *Governance) ActiveHolds(seq int64) []*Hold {
	var out []*Hold
	for _, h := range g.Holds {
		if h.ActiveAt(seq) {
			out = append(out, h)
		}
	}
	return out
}

func strictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// governance reports whether verification collects events of kind k while it hashes.
func governance(k event.Kind) bool {
	return k == event.KindPurge || k == event.KindLegalHold || k == event.KindHoldRelease
}

// purgedAt is an erased entry met by verification.
type purgedAt struct {
	seq, by int64
	id      string
}

// PurgeStore is what accounting for purges reads beyond the scan: entries that a purge event
// covers but that are still intact (the purge was recorded, and a crash or a stop came before
// their bodies were erased), to check them against the purge's claims.
type PurgeStore interface {
	Entry(ctx context.Context, seq int64) (store.Entry, error)
}

// purgeAudit is what checkPurges found.
type purgeAudit struct {
	problems []Problem
	pending  int64
}

// checkPurges accounts for every erased body: a purge event after it must cover it. It checks
// each purge event's own claims: its ranges lie before it; a retention purge's events were due
// at its time (no range kept until later), which was not after it was recorded; an erasure of
// a mandatory class says why; every hold in force when it ran is listed as considered. Entries
// a purge covers that are still intact are checked against its claims and the holds.
func checkPurges(ctx context.Context, st PurgeStore, purged []purgedAt, g *Governance) (*purgeAudit, error) {
	a := &purgeAudit{}
	type cover struct {
		from, to, by int64
	}
	var covers []cover
	for i := range g.Purges {
		p := &g.Purges[i]
		r := &p.Record
		bad := func(format string, args ...any) {
			a.problems = append(a.problems, Problem{Kind: ProblemPurge, Seq: p.Seq, ID: p.ID, Detail: fmt.Sprintf(format, args...)})
		}
		if r.Reason != PurgeRetention && r.Reason != PurgeErasure {
			bad("purge event gives reason %q (want %s or %s)", r.Reason, PurgeRetention, PurgeErasure)
		}
		if r.Reason == PurgeRetention && r.At.After(p.RecordedAt.Add(time.Minute)) {
			bad("purge event judges events due at %s, after it was recorded (%s)", r.At.Format(time.RFC3339), p.RecordedAt.Format(time.RFC3339))
		}
		considered := map[string]bool{}
		for _, id := range r.Holds {
			considered[id] = true
		}
		active := g.ActiveHolds(p.Seq)
		for _, h := range active {
			if !considered[h.ID] {
				bad("purge event ignores hold %s (placed at seq %d, in force): it does not list it as considered", h.ID, h.Seq)
			}
		}
		for _, rg := range r.Ranges {
			switch {
			case rg.From < 0 || rg.To < rg.From:
				bad("purge event has an empty or negative range %d..%d", rg.From, rg.To)
				continue
			case rg.To >= p.Seq:
				bad("purge event covers seq %d..%d, which is not before it", rg.From, rg.To)
				continue
			}
			switch {
			case r.Reason == PurgeRetention && rg.Until.After(r.At):
				bad("purge event covers seq %d..%d (class %s), kept until %s: not due at %s", rg.From, rg.To, rg.Class, rg.Until.Format(time.RFC3339), r.At.Format(time.RFC3339))
			case r.Reason == PurgeErasure && rg.Mandatory && r.OverrideMandatory == "":
				bad("erasure covers seq %d..%d of mandatory class %s without an override reason", rg.From, rg.To, rg.Class)
			}
			covers = append(covers, cover{rg.From, rg.To, p.Seq})
			if err := checkIntact(ctx, st, a, p, rg, purged, active); err != nil {
				return nil, err
			}
		}
	}
	sort.Slice(covers, func(i, j int) bool { return covers[i].from < covers[j].from })
	// Every erased body needs a purge event covering it. covers is sorted by start; a running
	// maximum of the ends makes the lookup one pass over both sorted lists.
	ci, reach := 0, int64(-1)
	for _, pe := range purged {
		for ci < len(covers) && covers[ci].from <= pe.seq {
			reach = max(reach, covers[ci].to)
			ci++
		}
		if reach < pe.seq {
			a.problems = append(a.problems, Problem{Kind: ProblemUnaccounted, Seq: pe.seq, ID: pe.id,
				Detail: fmt.Sprintf("the event's body was erased and no purge event covers it (the row names seq %d)", pe.by)})
		}
	}
	return a, nil
}

// checkIntact checks the entries of rg that are still intact against the purge's claims: such
// an entry is one the purge has not erased yet, so its body can still say whether it was due,
// of the class claimed, and free of every hold.
func checkIntact(ctx context.Context, st PurgeStore, a *purgeAudit, p *PurgeEvent, rg PurgeRange, purged []purgedAt, active []*Hold) error {
	i, _ := slices.BinarySearchFunc(purged, rg.From, func(x purgedAt, s int64) int { return int(x.seq - s) })
	for seq := rg.From; seq <= rg.To; seq++ {
		if i < len(purged) && purged[i].seq == seq {
			i++
			continue
		}
		e, err := st.Entry(ctx, seq)
		if err != nil {
			return fmt.Errorf("purge event at seq %d covers seq %d: %w", p.Seq, seq, err)
		}
		if e.Purged() {
			continue // erased since the scan
		}
		a.pending++
		ev, err := event.ParseStored(e.Body)
		if err != nil {
			return fmt.Errorf("seq %d: %w", seq, err)
		}
		bad := func(format string, args ...any) {
			a.problems = append(a.problems, Problem{Kind: ProblemPurge, Seq: p.Seq, ID: p.ID, Detail: fmt.Sprintf("purge event covers seq %d, ", seq) + fmt.Sprintf(format, args...)})
		}
		switch {
		case ev.RetentionClass != rg.Class:
			bad("whose class is %q, not %q as it claims", ev.RetentionClass, rg.Class)
		case ev.RetainUntil.After(rg.Until):
			bad("kept until %s, later than the %s it claims", ev.RetainUntil.Format(time.RFC3339), rg.Until.Format(time.RFC3339))
		case p.Record.Reason == PurgeRetention && (ev.RetainUntil.IsZero() || ev.RetainUntil.After(p.Record.At)):
			bad("which is not due at %s", p.Record.At.Format(time.RFC3339))
		}
		for _, h := range active {
			if h.Scope.Matches(ev) {
				bad("which hold %s keeps", h.ID)
			}
		}
	}
	return nil
}
