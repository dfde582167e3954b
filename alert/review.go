package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store"
)

// Finder is what listing alerts and reviews reads: events by filter, in seq order.
type Finder interface {
	Find(ctx context.Context, f store.Filter, fn func(store.Entry) error) error
	EntryByID(ctx context.Context, id string) (store.Entry, error)
}

// Review is a break-the-glass access and its review, if any.
type Review struct {
	Seq        int64        `json:"seq"`
	Access     *event.Event `json:"access"`
	Age        string       `json:"age"`
	Reviewed   bool         `json:"reviewed"`
	ReviewID   string       `json:"review_id,omitempty"`
	Reviewer   string       `json:"reviewer,omitempty"`
	ReviewedAt time.Time    `json:"reviewed_at,omitzero"`
}

// ReviewRecord is the record of a review event.
type ReviewRecord struct {
	AccessID  string `json:"access_id"`
	AccessSeq int64  `json:"access_seq"`
	Reviewer  string `json:"reviewer"`
}

var reviewNamespace = uuid.MustParse("2b7d1f4e-8c3a-4f0e-9a61-5d2e7c9b0a44")

// Errors of CloseReview.
var (
	ErrNotBreakGlass   = errors.New("not a break-glass access")
	ErrAlreadyReviewed = errors.New("break-glass access already reviewed")
	ErrNoNote          = errors.New("a review needs a note: the reviewer's decision")
)

// Reviewed returns the ids of the accesses that have a review, with the review event.
func Reviewed(ctx context.Context, st Finder) (map[string]*event.Event, error) {
	out := map[string]*event.Event{}
	err := st.Find(ctx, store.Filter{Kind: string(event.KindReview)}, func(en store.Entry) error {
		if len(en.Body) == 0 {
			return nil
		}
		ev, err := event.ParseStored(en.Body)
		if err == nil && ev.ParentID != "" {
			out[ev.ParentID] = ev
		}
		return nil
	})
	return out, err
}

// Reviews lists the break-glass accesses, oldest first; all false keeps the unreviewed ones.
func Reviews(ctx context.Context, st Finder, now time.Time, all bool) ([]Review, error) {
	done, err := Reviewed(ctx, st)
	if err != nil {
		return nil, err
	}
	var out []Review
	err = st.Find(ctx, store.Filter{Kind: string(event.KindAccess)}, func(en store.Entry) error {
		if len(en.Body) == 0 {
			return nil
		}
		ev, err := event.ParseStored(en.Body)
		if err != nil || !ev.BreakGlass {
			return nil
		}
		r := Review{Seq: en.Seq, Access: ev, Age: now.Sub(ev.RecordedAt).Round(time.Second).String()}
		if rv := done[ev.ID]; rv != nil {
			r.Reviewed, r.ReviewID, r.Reviewer, r.ReviewedAt = true, rv.ID, rv.UserID, rv.RecordedAt
		}
		if all || !r.Reviewed {
			out = append(out, r)
		}
		return nil
	})
	return out, err
}

// CloseReview records a reviewer's decision on a break-glass access as a review event linked to
// it (parent_id); the note goes in rationale, which is sanitized like any text.
func CloseReview(ctx context.Context, log Log, st Finder, accessID, reviewer, note string) (*event.Event, int64, error) {
	if strings.TrimSpace(note) == "" {
		return nil, 0, ErrNoNote
	}
	en, err := st.EntryByID(ctx, accessID)
	if err != nil {
		return nil, 0, fmt.Errorf("access %s: %w", accessID, err)
	}
	acc, err := event.ParseStored(en.Body)
	if err != nil || acc.Kind != event.KindAccess || !acc.BreakGlass {
		return nil, 0, fmt.Errorf("event %s: %w", accessID, ErrNotBreakGlass)
	}
	done, err := Reviewed(ctx, st)
	if err != nil {
		return nil, 0, err
	}
	if rv := done[accessID]; rv != nil {
		return nil, 0, fmt.Errorf("event %s (review %s by %s): %w", accessID, rv.ID, rv.UserID, ErrAlreadyReviewed)
	}
	rec, _ := json.Marshal(ReviewRecord{AccessID: accessID, AccessSeq: en.Seq, Reviewer: reviewer})
	// One review per access, even when two reviewers close it at once: the review's id is derived
	// from the access's, so the second is a conflict in the ledger.
	id := uuid.NewSHA1(reviewNamespace, []byte(accessID)).String()
	ev := &event.Event{ID: id, Kind: event.KindReview, ParentID: accessID, UserID: reviewer, SubjectType: acc.SubjectType,
		SubjectID: acc.SubjectID, Decision: "reviewed", Rationale: note, Outcome: event.OutcomeSuccess, Record: rec}
	res, err := log.AppendSystem(ctx, []*event.Event{ev})
	if err != nil {
		return nil, 0, err
	}
	switch {
	case errors.Is(res[0].Err, ledger.ErrConflict), res[0].Err == nil && res[0].Duplicate:
		return nil, 0, fmt.Errorf("event %s (review %s): %w", accessID, id, ErrAlreadyReviewed)
	case res[0].Err != nil:
		return nil, 0, res[0].Err
	}
	return ev, res[0].Seq, nil
}

// Listed is an alert as `alerts list` and GET /v1/alerts show it: the event, its record and its
// delivery attempts.
type Listed struct {
	Seq        int64        `json:"seq"`
	ID         string       `json:"id"`
	Time       time.Time    `json:"time"`
	Record     Record       `json:"record"`
	Deliveries []Attempt    `json:"deliveries,omitempty"`
	Event      *event.Event `json:"-"`
}

// ListFilter selects alerts.
type ListFilter struct {
	Since time.Time
	Rule  string
	Limit int
}

// List returns the alerts in the log, oldest first, with the delivery attempts recorded in dir
// (the engine's directory; "" for none).
func List(ctx context.Context, st Finder, dir string, f ListFilter) ([]Listed, error) {
	var byID map[string][]Attempt
	if dir != "" {
		as, err := readAttempts(outboxPath(dir))
		if err != nil {
			return nil, err
		}
		byID = map[string][]Attempt{}
		for _, a := range as {
			if a.FromSeq == nil {
				byID[a.AlertID] = append(byID[a.AlertID], a)
			}
		}
	}
	var out []Listed
	err := st.Find(ctx, store.Filter{Kind: string(event.KindAlert), Since: f.Since}, func(en store.Entry) error {
		if len(en.Body) == 0 {
			return nil
		}
		ev, err := event.ParseStored(en.Body)
		if err != nil {
			return nil
		}
		var rec Record
		if json.Unmarshal(ev.Record, &rec) != nil || f.Rule != "" && rec.Rule != f.Rule {
			return nil
		}
		out = append(out, Listed{Seq: en.Seq, ID: ev.ID, Time: ev.RecordedAt, Record: rec, Deliveries: byID[ev.ID], Event: ev})
		return nil
	})
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[len(out)-f.Limit:]
	}
	return slices.Clip(out), err
}

// Replay evaluates the log's events recorded since `since` through cfg's rules and returns what
// would have fired, without recording anything: a team tunes a rule on its own history first.
// The timed rules run on the log's clock.
func Replay(ctx context.Context, st Store, cfg *Config, since time.Time) ([]Firing, int, error) {
	ev, err := NewEvaluator(cfg)
	if err != nil {
		return nil, 0, err
	}
	var out []Firing
	n := 0
	err = st.ScanEntries(ctx, 0, func(en store.Entry) error {
		if len(en.Body) == 0 {
			return nil
		}
		e, err := event.ParseStored(en.Body)
		if err != nil || e.RecordedAt.Before(since) || e.Kind == event.KindAlert {
			return nil
		}
		n++
		out = append(out, ev.Observe(en.Seq, e)...)
		return nil
	})
	return out, n, err
}
