package retention

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store"
)

// Reader is what plans and hold listings read from a store.
type Reader interface {
	RetentionCounts(ctx context.Context, at time.Time) ([]store.ClassCount, error)
	DueEntries(ctx context.Context, at time.Time, fn func(store.Due) error) error
	SystemEntries(ctx context.Context, kind string, fn func(store.Entry) error) error
	Find(ctx context.Context, f store.Filter, fn func(store.Entry) error) error
	Entry(ctx context.Context, seq int64) (store.Entry, error)
	Size(ctx context.Context) (int64, error)
	Bytes(ctx context.Context) (int64, error)
}

// Store is what purges need besides reading: erasing bodies a recorded purge covers, and giving
// the freed pages back to the file system.
type Store interface {
	Reader
	Erase(ctx context.Context, purgeSeq int64, ranges [][2]int64) (int64, error)
	Reclaim(ctx context.Context) (int64, error)
}

// Appender records the system events (ledger.Ledger.AppendSystem).
type Appender interface {
	AppendSystem(ctx context.Context, evs []*event.Event) ([]ledger.Result, error)
}

// Sanitizer turns identifiers into what the log stores (pseudonyms for detected PII), so a hold
// or an erasure names a person the way their events do; the ledger's sanitizer.
type Sanitizer interface {
	Sanitize(ev *event.Event) error
}

// Errors callers act on; each is wrapped with detail.
var (
	// ErrBadRequest: a hold, release or erasure is missing what it needs (a reason, a scope, a
	// subject); nothing was recorded.
	ErrBadRequest = errors.New("bad retention request")
	// ErrUnknownHold: no hold in force has that id.
	ErrUnknownHold = errors.New("no such hold in force")
)

// Limits of one purge event: its record must stay far below the ledger's event size limit, and
// one erase transaction bounded. (Variables only so that a test can shrink them.)
const maxRangesPerPurge = 4096

var (
	maxEventsPerPurge       = 50_000
	eraseChunk        int64 = 10_000 // entries per erase transaction
)

// Manager runs plans, purges, holds and erasures on one log. Its operations are serialized: two
// purges never interleave, so only the newest purge event can be partly applied (after a crash),
// and Apply finishes it first.
type Manager struct {
	Store    Store
	Ledger   Appender
	Policy   *Policy
	Sanitize Sanitizer
	Now      func() time.Time // nil: time.Now

	mu sync.Mutex
}

func (m *Manager) now() time.Time {
	if m.Now != nil {
		return m.Now().UTC()
	}
	return time.Now().UTC()
}

// ClassPlan is one class's line of a plan.
type ClassPlan struct {
	Class     string    `json:"class"`
	Keep      string    `json:"keep"` // "" for a class the policy no longer defines
	Mandatory bool      `json:"mandatory"`
	Events    int64     `json:"events"`     // intact events of the class
	NextUntil time.Time `json:"next_until"` // the earliest retain_until among them
	// Oldest is when the oldest of them was recorded, from NextUntil and the class's keep
	// (zero when the policy no longer defines the class, or keeps it forever).
	Oldest time.Time `json:"oldest,omitzero"`
	Due    int64     `json:"due"`   // retain_until at or before the plan's time
	Held   int64     `json:"held"`  // due, but kept by a hold
	Purge  int64     `json:"purge"` // due and not held: what apply erases
}

// Plan is what a purge at At would do.
type Plan struct {
	At      time.Time      `json:"at"`
	Policy  string         `json:"policy"`
	Classes []ClassPlan    `json:"classes"`
	Due     int64          `json:"due"`
	Held    int64          `json:"held"`
	Purge   int64          `json:"purge"`
	Holds   []*ledger.Hold `json:"holds"` // in force
	// Bytes estimates what the purge frees: the average stored event's size times Purge.
	Bytes int64 `json:"bytes"`
}

// Plan reports, per class, what a purge at at would erase, without changing anything.
func (m *Manager) Plan(ctx context.Context, at time.Time) (*Plan, error) {
	return plan(ctx, m.Store, m.Policy, at)
}

// PlanOn is Plan on a store opened for reading only.
func PlanOn(ctx context.Context, st Reader, p *Policy, at time.Time) (*Plan, error) {
	return plan(ctx, st, p, at)
}

func plan(ctx context.Context, st Reader, p *Policy, at time.Time) (*Plan, error) {
	at = at.UTC()
	counts, err := st.RetentionCounts(ctx, at)
	if err != nil {
		return nil, err
	}
	holds, err := Holds(ctx, st)
	if err != nil {
		return nil, err
	}
	active := activeNow(holds)
	held, err := heldSeqs(ctx, st, active)
	if err != nil {
		return nil, err
	}
	heldBy := map[string]int64{}
	if len(held) > 0 {
		if err := st.DueEntries(ctx, at, func(d store.Due) error {
			if held[d.Seq] {
				heldBy[d.Class]++
			}
			return nil
		}); err != nil {
			return nil, err
		}
	}
	pl := &Plan{At: at, Policy: p.Digest(), Holds: active}
	for _, c := range counts {
		cp := ClassPlan{Class: c.Class, Events: c.Events, NextUntil: c.NextUntil, Due: c.Due, Held: heldBy[c.Class]}
		if cl := p.Class(c.Class); cl != nil {
			cp.Keep, cp.Mandatory = cl.Keep.String(), cl.Mandatory
			if !cl.Keep.Forever && c.Events > 0 {
				cp.Oldest = c.NextUntil.AddDate(-cl.Keep.Years, -cl.Keep.Months, -cl.Keep.Days)
			}
		}
		cp.Purge = cp.Due - cp.Held
		pl.Classes = append(pl.Classes, cp)
		pl.Due, pl.Held, pl.Purge = pl.Due+cp.Due, pl.Held+cp.Held, pl.Purge+cp.Purge
	}
	for _, cl := range p.Classes { // classes with no events yet still show
		if !slices.ContainsFunc(pl.Classes, func(x ClassPlan) bool { return x.Class == cl.Name }) {
			pl.Classes = append(pl.Classes, ClassPlan{Class: cl.Name, Keep: cl.Keep.String(), Mandatory: cl.Mandatory})
		}
	}
	var total int64
	for _, c := range counts {
		total += c.Events
	}
	if total > 0 && pl.Purge > 0 {
		b, err := st.Bytes(ctx)
		if err != nil {
			return nil, err
		}
		pl.Bytes = int64(float64(b) / float64(total) * float64(pl.Purge))
	}
	return pl, nil
}

// Result is what a purge or an erasure did.
type Result struct {
	PurgeEvents []int64 `json:"purge_events"` // seqs of the purge events recorded
	Erased      int64   `json:"erased"`       // bodies erased
	Resumed     int64   `json:"resumed"`      // of them, left over by an interrupted purge
	Held        int64   `json:"held"`         // due (or asked for), kept by a hold
	Mandatory   int64   `json:"mandatory"`    // erasure: kept because their class is mandatory
	Bytes       int64   `json:"bytes"`        // the database file shrank by this much
}

// Apply purges every event due now and not held: for each group of them it records a purge
// event, then erases their bodies. It first finishes a purge a crash interrupted. by says who
// runs it (recorded as the purge event's user).
func (m *Manager) Apply(ctx context.Context, by string) (*Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	res := &Result{}
	var err error
	if res.Resumed, err = m.resume(ctx); err != nil {
		return nil, err
	}
	res.Erased = res.Resumed
	at := m.now()
	holds, err := Holds(ctx, m.Store)
	if err != nil {
		return nil, err
	}
	active := activeNow(holds)
	held, err := heldSeqs(ctx, m.Store, active)
	if err != nil {
		return nil, err
	}
	var due []store.Due
	if err := m.Store.DueEntries(ctx, at, func(d store.Due) error {
		if held[d.Seq] {
			res.Held++
			return nil
		}
		due = append(due, d)
		return nil
	}); err != nil {
		return nil, err
	}
	rec := ledger.PurgeRecord{Reason: ledger.PurgeRetention, At: at, Policy: m.Policy.Digest(), Holds: holdIDs(active)}
	if err := m.purge(ctx, by, "retention: events past their retain_until", rec, due, nil, res); err != nil {
		return res, err
	}
	if res.Erased > 0 {
		if res.Bytes, err = m.Store.Reclaim(ctx); err != nil {
			return res, err
		}
	}
	return res, nil
}

// purge records purge events for due (sorted here by seq) and erases their bodies.
func (m *Manager) purge(ctx context.Context, by, why string, rec ledger.PurgeRecord, due []store.Due, mandatory map[string]bool, res *Result) error {
	sort.Slice(due, func(i, j int) bool { return due[i].Seq < due[j].Seq })
	for len(due) > 0 {
		var ranges []ledger.PurgeRange
		n := 0
		for n < len(due) && n < maxEventsPerPurge {
			d := due[n]
			if k := len(ranges) - 1; k >= 0 && ranges[k].To == d.Seq-1 && ranges[k].Class == d.Class {
				ranges[k].To = d.Seq
				if d.Until.After(ranges[k].Until) {
					ranges[k].Until = d.Until
				}
			} else {
				if len(ranges) == maxRangesPerPurge {
					break
				}
				ranges = append(ranges, ledger.PurgeRange{From: d.Seq, To: d.Seq, Class: d.Class, Until: d.Until, Mandatory: mandatory[d.Class]})
			}
			n++
		}
		due = due[n:]
		r := rec
		r.Ranges = ranges
		seq, err := m.record(ctx, &event.Event{Kind: event.KindPurge, UserID: by, Rationale: why, Time: m.now()}, r)
		if err != nil {
			return err
		}
		res.PurgeEvents = append(res.PurgeEvents, seq)
		erased, err := m.erase(ctx, seq, ranges)
		res.Erased += erased
		if err != nil {
			return err
		}
	}
	return nil
}

// erase erases the ranges of the purge event at seq, eraseChunk entries per transaction.
func (m *Manager) erase(ctx context.Context, seq int64, ranges []ledger.PurgeRange) (int64, error) {
	var total int64
	var batch [][2]int64
	var inBatch int64
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, err := m.Store.Erase(ctx, seq, batch)
		total += n
		batch, inBatch = batch[:0], 0
		return err
	}
	for _, r := range ranges {
		for from := r.From; from <= r.To; {
			to := min(r.To, from+eraseChunk-inBatch-1)
			batch = append(batch, [2]int64{from, to})
			inBatch += to - from + 1
			from = to + 1
			if inBatch >= eraseChunk {
				if err := flush(); err != nil {
					return total, err
				}
			}
		}
	}
	return total, flush()
}

// resume finishes the newest purge event's erasures, which a crash or a stop may have
// interrupted (purges are serialized, so no older one can be unfinished).
func (m *Manager) resume(ctx context.Context) (int64, error) {
	var last store.Entry
	if err := m.Store.SystemEntries(ctx, string(event.KindPurge), func(e store.Entry) error { last = e; return nil }); err != nil {
		return 0, err
	}
	if last.Body == nil {
		return 0, nil
	}
	ev, err := event.ParseStored(last.Body)
	if err != nil {
		return 0, fmt.Errorf("purge event at seq %d: %w", last.Seq, err)
	}
	var g ledger.Governance
	if err := g.Add(last.Seq, ev); err != nil {
		return 0, err
	}
	return m.erase(ctx, last.Seq, g.Purges[0].Record.Ranges)
}

// record appends one system event with its record and returns its seq.
func (m *Manager) record(ctx context.Context, ev *event.Event, rec any) (int64, error) {
	data, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	ev.Record = data
	res, err := m.Ledger.AppendSystem(ctx, []*event.Event{ev})
	if err != nil {
		return 0, err
	}
	if res[0].Err != nil {
		return 0, res[0].Err
	}
	return res[0].Seq, nil
}

// Holds returns every hold the log records, in force or released, oldest first.
func Holds(ctx context.Context, st Reader) ([]*ledger.Hold, error) {
	var g ledger.Governance
	var evs []store.Entry
	for _, k := range []event.Kind{event.KindLegalHold, event.KindHoldRelease} {
		if err := st.SystemEntries(ctx, string(k), func(e store.Entry) error { evs = append(evs, e); return nil }); err != nil {
			return nil, err
		}
	}
	sort.Slice(evs, func(i, j int) bool { return evs[i].Seq < evs[j].Seq })
	for _, e := range evs {
		ev, err := event.ParseStored(e.Body)
		if err != nil {
			return nil, fmt.Errorf("seq %d: %w", e.Seq, err)
		}
		if err := g.Add(e.Seq, ev); err != nil {
			return nil, err
		}
	}
	return g.Holds, nil
}

func activeNow(holds []*ledger.Hold) []*ledger.Hold {
	var out []*ledger.Hold
	for _, h := range holds {
		if h.ActiveAt(math.MaxInt64) {
			out = append(out, h)
		}
	}
	return out
}

func holdIDs(hs []*ledger.Hold) []string {
	out := make([]string, 0, len(hs))
	for _, h := range hs {
		out = append(out, h.ID)
	}
	return out
}

// heldSeqs returns the seqs of the intact events some hold in force keeps.
func heldSeqs(ctx context.Context, st Reader, active []*ledger.Hold) (map[int64]bool, error) {
	held := map[int64]bool{}
	for _, h := range active {
		if err := st.Find(ctx, h.Scope.Filter(), func(e store.Entry) error {
			held[e.Seq] = true
			return nil
		}); err != nil {
			return nil, err
		}
	}
	return held, nil
}

// PlaceHold records a legal hold on the events scope selects (present and future) and returns
// it. Identifiers in scope are given as known (an e-mail address, say) and stored as the log
// stores them. A hold needs a scope and a reason.
func (m *Manager) PlaceHold(ctx context.Context, scope ledger.HoldScope, reason, by string) (*ledger.Hold, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if strings.TrimSpace(reason) == "" {
		return nil, fmt.Errorf("%w: a hold needs a reason (--reason)", ErrBadRequest)
	}
	if scope.Empty() {
		return nil, fmt.Errorf("%w: a hold needs a scope: a subject, session, user, agent, tool, kind or time range", ErrBadRequest)
	}
	if !scope.Since.IsZero() && !scope.Until.IsZero() && !scope.Since.Before(scope.Until) {
		return nil, fmt.Errorf("%w: the hold's since must be before its until", ErrBadRequest)
	}
	if scope.Kind != "" && !slices.Contains(event.Kinds, event.Kind(scope.Kind)) {
		return nil, fmt.Errorf("%w: unknown kind %q", ErrBadRequest, scope.Kind)
	}
	var err error
	if scope, err = m.stored(scope); err != nil {
		return nil, err
	}
	ev := &event.Event{Kind: event.KindLegalHold, UserID: by, Rationale: reason, Time: m.now()}
	seq, err := m.record(ctx, ev, ledger.HoldRecord{Scope: scope})
	if err != nil {
		return nil, err
	}
	return &ledger.Hold{ID: ev.ID, Seq: seq, Scope: scope, Reason: ev.Rationale, PlacedBy: by, PlacedAt: ev.RecordedAt}, nil
}

// stored returns scope with its identifiers as the log stores them: sanitized as the same
// fields of an event are.
func (m *Manager) stored(s ledger.HoldScope) (ledger.HoldScope, error) {
	if m.Sanitize == nil {
		return s, nil
	}
	ev := &event.Event{Kind: event.KindCustom, SessionID: s.SessionID, UserID: s.UserID, AgentID: s.AgentID, ToolName: s.ToolName,
		SubjectType: s.SubjectType, SubjectID: s.SubjectID}
	if err := m.Sanitize.Sanitize(ev); err != nil {
		return s, err
	}
	s.SessionID, s.UserID, s.AgentID, s.ToolName, s.SubjectType, s.SubjectID = ev.SessionID, ev.UserID, ev.AgentID, ev.ToolName, ev.SubjectType, ev.SubjectID
	return s, nil
}

// ReleaseHold records the release of the hold in force with that id.
func (m *Manager) ReleaseHold(ctx context.Context, id, reason, by string) (*ledger.Hold, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if strings.TrimSpace(reason) == "" {
		return nil, fmt.Errorf("%w: releasing a hold needs a reason (--reason)", ErrBadRequest)
	}
	holds, err := Holds(ctx, m.Store)
	if err != nil {
		return nil, err
	}
	i := slices.IndexFunc(holds, func(h *ledger.Hold) bool { return h.ID == id && h.ReleasedSeq == 0 })
	if i < 0 {
		return nil, fmt.Errorf("hold %q: %w", id, ErrUnknownHold)
	}
	h := holds[i]
	ev := &event.Event{Kind: event.KindHoldRelease, UserID: by, Rationale: reason, ParentID: id, Time: m.now()}
	seq, err := m.record(ctx, ev, ledger.ReleaseRecord{Hold: id})
	if err != nil {
		return nil, err
	}
	h.ReleasedSeq, h.ReleasedBy, h.ReleasedAt, h.ReleasedReason = seq, by, ev.RecordedAt, ev.Rationale
	return h, nil
}

// Erasure is a data subject's request to erase their events before their time.
type Erasure struct {
	SubjectType, SubjectID string
	Reason                 string
	// OverrideMandatory, when set, is why events of mandatory classes are erased too; without
	// it they are kept and counted.
	OverrideMandatory string
	By                string
}

// Erase purges the bodies of the subject's events now, except those a hold keeps and, unless
// overridden, those of mandatory classes; it records one purge event (reason erasure) per group
// before erasing. The purge event names the subject's type, not its id.
func (m *Manager) Erase(ctx context.Context, req Erasure) (*Result, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if req.SubjectType == "" || req.SubjectID == "" {
		return nil, fmt.Errorf("%w: an erasure needs a subject, as TYPE:ID (--subject patient:P-123)", ErrBadRequest)
	}
	if strings.TrimSpace(req.Reason) == "" {
		return nil, fmt.Errorf("%w: an erasure needs a reason (--reason)", ErrBadRequest)
	}
	res := &Result{}
	var err error
	if res.Resumed, err = m.resume(ctx); err != nil {
		return nil, err
	}
	res.Erased = res.Resumed
	scope, err := m.stored(ledger.HoldScope{SubjectType: req.SubjectType, SubjectID: req.SubjectID})
	if err != nil {
		return nil, err
	}
	holds, err := Holds(ctx, m.Store)
	if err != nil {
		return nil, err
	}
	active := activeNow(holds)
	mandatory := map[string]bool{}
	var due []store.Due
	if err := m.Store.Find(ctx, scope.Filter(), func(e store.Entry) error {
		ev, err := event.ParseStored(e.Body)
		if err != nil {
			return fmt.Errorf("seq %d: %w", e.Seq, err)
		}
		if ev.Kind.System() {
			return nil
		}
		for _, h := range active {
			if h.Scope.Matches(ev) {
				res.Held++
				return nil
			}
		}
		// A class the policy no longer knows is treated as mandatory: erasing early is the
		// irreversible choice, so it needs the override.
		c := m.Policy.Class(ev.RetentionClass)
		if c == nil || c.Mandatory {
			mandatory[ev.RetentionClass] = true
			if req.OverrideMandatory == "" {
				res.Mandatory++
				return nil
			}
		}
		due = append(due, store.Due{Seq: e.Seq, Class: ev.RetentionClass, Until: ev.RetainUntil})
		return nil
	}); err != nil {
		return nil, err
	}
	rec := ledger.PurgeRecord{Reason: ledger.PurgeErasure, At: m.now(), Policy: m.Policy.Digest(), Holds: holdIDs(active),
		SubjectType: scope.SubjectType, OverrideMandatory: req.OverrideMandatory}
	if err := m.purge(ctx, req.By, req.Reason, rec, due, mandatory, res); err != nil {
		return res, err
	}
	if res.Erased > 0 {
		if res.Bytes, err = m.Store.Reclaim(ctx); err != nil {
			return res, err
		}
	}
	return res, nil
}

// Schedule runs Apply now and then every interval until ctx is done, telling report of each
// run (a failed run is retried at the next tick: nothing is lost, the due events are still due).
func (m *Manager) Schedule(ctx context.Context, every time.Duration, report func(*Result, error)) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		res, err := m.Apply(ctx, "scheduler")
		report(res, err)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
