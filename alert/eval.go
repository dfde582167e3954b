package alert

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/agentaudit/agentaudit/event"
)

// Record is the record of an alert event: what fired, for which group, on what figures, and the
// events that triggered it. It is deterministic in the log's content, so evaluating the same
// events again (after a crash) gives the same alert, with the same id, and the ledger stores it
// once.
type Record struct {
	Rule       string            `json:"rule"`
	Severity   string            `json:"severity"`
	Group      map[string]string `json:"group,omitempty"`
	GroupKey   string            `json:"group_key"`
	Aggregate  string            `json:"aggregate,omitempty"`
	Window     string            `json:"window,omitempty"`
	Value      float64           `json:"value,omitempty"`
	Threshold  string            `json:"threshold,omitempty"`
	Events     int               `json:"events,omitempty"` // events in the window
	TriggerSeq int64             `json:"trigger_seq"`
	TriggerIDs []string          `json:"trigger_ids,omitempty"`
	Message    string            `json:"message"`
}

// Firing is one alert the evaluator decided: the alert event to append.
type Firing struct {
	Rule   *Rule
	Record Record
	Event  *event.Event // kind alert, with a deterministic id
}

// maxTriggerIDs bounds the trigger ids an alert names (the latest of the window).
const maxTriggerIDs = 20

// alertNamespace makes alert ids: a UUIDv5 of the rule, group and triggering seq.
var alertNamespace = uuid.MustParse("6f0c9a34-5b0e-4f55-9d0c-1c2b8f9a7e11")

// Evaluator runs rules over events in seq order. It is deterministic: the same events give the
// same firings, which is how window state is rebuilt from the log and how `alerts test` replays
// history. It is not safe for concurrent use.
type Evaluator struct {
	rules   []*compiled
	timed   []*compiled
	open    map[string]openAccess // break-glass accesses not yet reviewed, by id
	alerted map[string]bool       // timed alerts given: rule \x00 group
	act     eventActivation
	last    time.Time // latest recorded_at seen
	tickAt  time.Time
}

type openAccess struct {
	seq  int64
	at   time.Time
	user string
	subj string
}

type compiled struct {
	*Rule
	when, of *condition
	group    []*event.Field
	field    *event.Field
	first    []*event.Field
	groups   map[string]*group
	seen     map[string]bool
	buf      []byte // the group key being built
	sweptAt  int64
}

type group struct {
	q        []entry // window entries, oldest first, from q[head]
	head     int
	firedAt  int64 // unix nanos of the last firing; 0: armed
	sum      float64
	hits     int
	distinct map[string]int
}

type entry struct {
	at  int64
	id  string
	v   float64
	key string
}

// NewEvaluator compiles cfg's rules.
func NewEvaluator(cfg *Config) (*Evaluator, error) {
	e := &Evaluator{open: map[string]openAccess{}, alerted: map[string]bool{}}
	for _, r := range cfg.Rules {
		c := &compiled{Rule: r, groups: map[string]*group{}, seen: map[string]bool{}}
		var err error
		if r.When != "" {
			if c.when, err = compileBool(r.When); err != nil {
				return nil, fmt.Errorf("rule %s: %w", r.Name, err)
			}
		}
		if r.Of != "" {
			if c.of, err = compileBool(r.Of); err != nil {
				return nil, fmt.Errorf("rule %s: %w", r.Name, err)
			}
		}
		for _, f := range r.GroupBy {
			c.group = append(c.group, event.FieldByName(f))
		}
		for _, f := range r.FirstSeen {
			c.first = append(c.first, event.FieldByName(f))
		}
		if r.Field != "" {
			c.field = event.FieldByName(r.Field)
		}
		if r.timed != "" {
			e.timed = append(e.timed, c)
		} else {
			e.rules = append(e.rules, c)
		}
	}
	return e, nil
}

// Observe evaluates one committed event (seq, as stored) and returns what fires. Alert events
// are not evaluated (no rule fires on an alert), but they and review events keep the state of the
// timed rules.
func (e *Evaluator) Observe(seq int64, ev *event.Event) []Firing {
	at := ev.RecordedAt
	if at.After(e.last) {
		e.last = at
	}
	var out []Firing
	switch {
	case ev.Kind == event.KindAlert:
		var rec Record
		if json.Unmarshal(ev.Record, &rec) == nil {
			e.alerted[rec.Rule+"\x00"+rec.GroupKey] = true
		}
		return nil
	case ev.Kind == event.KindReview:
		delete(e.open, ev.ParentID)
	case ev.Kind == event.KindAccess && ev.BreakGlass:
		e.open[ev.ID] = openAccess{seq: seq, at: at, user: ev.UserID, subj: ev.SubjectType + ":" + ev.SubjectID}
	}
	e.act.ev = ev
	for _, c := range e.rules {
		if !c.when.eval(&e.act) {
			continue
		}
		var f *Firing
		switch {
		case len(c.first) > 0:
			f = c.firstSeen(seq, ev)
		case c.Window > 0:
			f = c.windowed(seq, ev, &e.act)
		default:
			f = c.plain(seq, ev)
		}
		if f != nil {
			out = append(out, *f)
		}
	}
	e.act.ev = nil
	// The timed rules also run on the log's clock, so a replay finds what a live run found.
	if e.last.Sub(e.tickAt) >= time.Minute {
		out = append(out, e.Tick(e.last)...)
	}
	return out
}

// Tick runs the timed rules at now: break-glass accesses left unreviewed too long. It also
// forgets windows that emptied.
func (e *Evaluator) Tick(now time.Time) []Firing {
	e.tickAt = now
	var out []Firing
	for _, c := range e.timed {
		if c.timed != timedUnreviewed {
			continue
		}
		ids := slices.Sorted(maps.Keys(e.open))
		for _, id := range ids {
			a := e.open[id]
			if now.Sub(a.at) < c.After || e.alerted[c.Name+"\x00"+id] {
				continue
			}
			e.alerted[c.Name+"\x00"+id] = true
			rec := Record{Rule: c.Name, Severity: c.Severity.String(), GroupKey: id,
				Group:      map[string]string{"user_id": a.user, "subject": a.subj},
				TriggerSeq: a.seq, TriggerIDs: []string{id},
				Message: fmt.Sprintf("break-glass access %s by %s to %s not reviewed after %s", id, a.user, a.subj, c.After)}
			out = append(out, c.fire(rec, id, a.at.Add(c.After)))
		}
	}
	// Windows slide on the log's clock, whatever clock ticks.
	cut := e.last.UnixNano()
	for _, c := range e.rules {
		if c.Window == 0 || cut-c.sweptAt < int64(c.Window) {
			continue
		}
		c.sweptAt = cut
		for k, g := range c.groups {
			if g.head == len(g.q) || g.q[len(g.q)-1].at <= cut-int64(c.Window) {
				if g.firedAt == 0 || c.Quiet == 0 || cut-g.firedAt >= int64(c.Quiet) {
					delete(c.groups, k)
				}
			}
		}
	}
	return out
}

func (c *compiled) fire(rec Record, key string, at time.Time) Firing {
	raw, _ := json.Marshal(rec)
	id := uuid.NewSHA1(alertNamespace, []byte(c.Name+"\x00"+key+"\x00"+strconv.FormatInt(rec.TriggerSeq, 10))).String()
	ev := &event.Event{ID: id, Kind: event.KindAlert, Time: at.UTC(), Record: raw}
	if len(rec.TriggerIDs) > 0 {
		ev.ParentID = rec.TriggerIDs[len(rec.TriggerIDs)-1]
	}
	return Firing{Rule: c.Rule, Record: rec, Event: ev}
}

func (c *compiled) plain(seq int64, ev *event.Event) *Firing {
	key, vals := groupKey(c.group, ev), groupValues(c.group, ev)
	if len(c.group) == 0 {
		key = ev.ID
	} else {
		g := c.groups[key]
		if g == nil {
			g = &group{}
			c.groups[key] = g
		}
		now := ev.RecordedAt.UnixNano()
		if g.firedAt != 0 && now-g.firedAt < int64(c.Quiet) {
			return nil
		}
		g.firedAt = now
	}
	rec := Record{Rule: c.Name, Severity: c.Severity.String(), Group: vals, GroupKey: key, TriggerSeq: seq,
		TriggerIDs: []string{ev.ID}, Message: describe(c.Rule, ev)}
	f := c.fire(rec, key, ev.RecordedAt)
	return &f
}

func (c *compiled) firstSeen(seq int64, ev *event.Event) *Firing {
	c.buf = appendGroupKey(c.buf[:0], c.first, ev)
	if c.seen[string(c.buf)] {
		return nil
	}
	key, vals := string(c.buf), groupValues(c.first, ev)
	c.seen[key] = true
	rec := Record{Rule: c.Name, Severity: c.Severity.String(), Group: vals, GroupKey: key, TriggerSeq: seq,
		TriggerIDs: []string{ev.ID}, Message: fmt.Sprintf("first seen: %s", key)}
	f := c.fire(rec, key, ev.RecordedAt)
	return &f
}

func (c *compiled) windowed(seq int64, ev *event.Event, act *eventActivation) *Firing {
	c.buf = appendGroupKey(c.buf[:0], c.group, ev)
	g := c.groups[string(c.buf)]
	if g == nil {
		g = &group{}
		if c.Aggregate == Distinct {
			g.distinct = map[string]int{}
		}
		c.groups[string(c.buf)] = g
	}
	now := ev.RecordedAt.UnixNano()
	c.expire(g, now)
	if g.firedAt != 0 && (!c.holds(g) || c.Quiet > 0 && now-g.firedAt >= int64(c.Quiet)) {
		g.firedAt = 0 // the condition cleared, or the quiet period passed: armed again
	}
	x := entry{at: now, id: ev.ID}
	switch c.Aggregate {
	case Distinct:
		x.key = fieldString(c.field, ev)
		g.distinct[x.key]++
	case Sum:
		x.v = fieldNumber(c.field, ev)
		g.sum += x.v
	case Ratio:
		if c.of.eval(act) {
			x.v = 1
			g.hits++
		}
	}
	g.q = append(g.q, x)
	if g.firedAt != 0 || !c.holds(g) {
		return nil
	}
	g.firedAt = now
	key, vals := string(c.buf), groupValues(c.group, ev)
	n := len(g.q) - g.head
	from := max(g.head, len(g.q)-maxTriggerIDs)
	ids := make([]string, 0, len(g.q)-from)
	for _, x := range g.q[from:] {
		ids = append(ids, x.id)
	}
	agg := c.aggName()
	rec := Record{Rule: c.Name, Severity: c.Severity.String(), Group: vals, GroupKey: key, Aggregate: agg,
		Window: c.Window.String(), Value: c.value(g), Threshold: fmt.Sprintf("%s %g", c.Op, c.Threshold), Events: n,
		TriggerSeq: seq, TriggerIDs: ids,
		Message: fmt.Sprintf("%s: %s = %g (%s %g) over %s for %s", c.Name, agg, c.value(g), c.Op, c.Threshold, c.Window, key)}
	f := c.fire(rec, key, ev.RecordedAt)
	return &f
}

func (c *compiled) aggName() string {
	switch c.Aggregate {
	case Distinct:
		return "distinct(" + c.Field + ")"
	case Sum:
		return "sum(" + c.Field + ")"
	case Ratio:
		return "ratio(" + c.Of + ")"
	}
	return "count"
}

// expire drops the entries that left the window (at or before now - window).
func (c *compiled) expire(g *group, now int64) {
	cut := now - int64(c.Window)
	for g.head < len(g.q) && g.q[g.head].at <= cut {
		x := g.q[g.head]
		switch c.Aggregate {
		case Distinct:
			if g.distinct[x.key]--; g.distinct[x.key] == 0 {
				delete(g.distinct, x.key)
			}
		case Sum:
			g.sum -= x.v
		case Ratio:
			if x.v == 1 {
				g.hits--
			}
		}
		g.q[g.head] = entry{}
		g.head++
	}
	// Compact when the dead prefix is at least half the slice.
	if g.head > 32 && g.head*2 >= len(g.q) {
		n := copy(g.q, g.q[g.head:])
		clear(g.q[n:])
		g.q, g.head = g.q[:n], 0
	}
}

func (c *compiled) value(g *group) float64 {
	n := len(g.q) - g.head
	switch c.Aggregate {
	case Distinct:
		return float64(len(g.distinct))
	case Sum:
		return g.sum
	case Ratio:
		if n == 0 {
			return 0
		}
		return float64(g.hits) / float64(n)
	}
	return float64(n)
}

// holds reports whether the group's window passes the threshold with enough events.
func (c *compiled) holds(g *group) bool {
	if len(g.q)-g.head < c.MinEvents {
		return false
	}
	v := c.value(g)
	switch c.Op {
	case ">":
		return v > c.Threshold
	case "<=":
		return v <= c.Threshold
	case "<":
		return v < c.Threshold
	case "==":
		return v == c.Threshold
	}
	return v >= c.Threshold
}

// groupKey is the group's key: field=value pairs joined by ", ".
func groupKey(fs []*event.Field, ev *event.Event) string {
	if len(fs) == 0 {
		return "*"
	}
	return string(appendGroupKey(nil, fs, ev))
}

func appendGroupKey(b []byte, fs []*event.Field, ev *event.Event) []byte {
	if len(fs) == 0 {
		return append(b, '*')
	}
	for i, f := range fs {
		if i > 0 {
			b = append(b, ", "...)
		}
		b = append(b, f.Name...)
		b = append(b, '=')
		b = append(b, fieldString(f, ev)...)
	}
	return b
}

// groupValues are the group's fields and values, for the alert's record.
func groupValues(fs []*event.Field, ev *event.Event) map[string]string {
	if len(fs) == 0 {
		return nil
	}
	vals := make(map[string]string, len(fs))
	for _, f := range fs {
		vals[f.Name] = fieldString(f, ev)
	}
	return vals
}

func fieldString(f *event.Field, ev *event.Event) string {
	switch p := f.Ptr(ev).(type) {
	case *string:
		return *p
	case *event.Kind:
		return string(*p)
	case *int64:
		return strconv.FormatInt(*p, 10)
	case *float64:
		return strconv.FormatFloat(*p, 'g', -1, 64)
	case *bool:
		return strconv.FormatBool(*p)
	case **bool:
		if *p == nil {
			return ""
		}
		return strconv.FormatBool(**p)
	}
	if s := f.Str(ev); s != nil {
		return *s
	}
	return ""
}

func fieldNumber(f *event.Field, ev *event.Event) float64 {
	switch p := f.Ptr(ev).(type) {
	case *int64:
		return float64(*p)
	case *float64:
		return *p
	}
	return 0
}

func describe(r *Rule, ev *event.Event) string {
	who := ev.UserID
	if who == "" {
		who = ev.AgentID
	}
	s := fmt.Sprintf("%s: %s event %s", r.Name, ev.Kind, ev.ID)
	if who != "" {
		s += " by " + who
	}
	if ev.SubjectID != "" {
		s += " on " + ev.SubjectType + ":" + ev.SubjectID
	}
	if ev.BreakGlass {
		s += " (break-glass: " + ev.BreakGlassReason + ")"
	}
	return s
}
