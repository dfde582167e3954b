// Package query answers the questions of debugging and compliance from the log: filtered,
// paginated event lists, a session's timeline, per-tool statistics, and the access report for a
// subject with integrity checked by inclusion proofs. The CLI and the server both call it: one
// engine, whatever the door.
package query

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/store"
)

// Store is what queries read.
type Store interface {
	Find(ctx context.Context, f store.Filter, fn func(store.Entry) error) error
	ToolCalls(ctx context.Context, since, until time.Time, fn func(store.ToolCall) error) error
}

// Record is a logged event with its seq. A purged event's record has no event: PurgedBy is the
// seq of the purge event that erased it.
type Record struct {
	Seq      int64        `json:"seq"`
	Event    *event.Event `json:"event"`
	PurgedBy int64        `json:"purged_by,omitempty"`
}

func decode(e store.Entry) (Record, error) {
	if e.Purged() {
		return Record{Seq: e.Seq, PurgedBy: e.PurgedBy}, nil
	}
	ev, err := event.ParseStored(e.Body)
	if err != nil {
		return Record{}, fmt.Errorf("stored event %d does not parse (run verify): %w", e.Seq, err)
	}
	return Record{Seq: e.Seq, Event: ev}, nil
}

// Limits on one page.
const (
	DefaultPageSize = 100
	MaxPageSize     = 10000
)

// ErrBadCursor: the cursor is not one this package issued.
var ErrBadCursor = errors.New("invalid cursor")

// ErrPageSize: the requested page size is out of range.
var ErrPageSize = fmt.Errorf("page size must be 1..%d", MaxPageSize)

// Page is one page of results and the cursor of the next ("" when there is none).
type Page struct {
	Records []Record `json:"records"`
	Next    string   `json:"next,omitempty"`
}

// Cursors are opaque to clients: base64 of "seq:N", the first seq of the next page. Events are
// append-only, so a cursor stays valid forever and pages never shift.
func encodeCursor(seq int64) string {
	return base64.RawURLEncoding.EncodeToString([]byte("seq:" + strconv.FormatInt(seq, 10)))
}

func decodeCursor(c string) (int64, error) {
	if c == "" {
		return 0, nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || !strings.HasPrefix(string(raw), "seq:") {
		return 0, ErrBadCursor
	}
	n, err := strconv.ParseInt(string(raw[4:]), 10, 64)
	if err != nil || n < 0 {
		return 0, ErrBadCursor
	}
	return n, nil
}

// Find returns one page of events matching f, starting at cursor ("" for the first page).
// f.Limit is the page size (DefaultPageSize when 0, at most MaxPageSize).
func Find(ctx context.Context, st Store, f store.Filter, cursor string) (Page, error) {
	from, err := decodeCursor(cursor)
	if err != nil {
		return Page{}, err
	}
	size := f.Limit
	switch {
	case size == 0:
		size = DefaultPageSize
	case size < 0 || size > MaxPageSize:
		return Page{}, fmt.Errorf("%d: %w", size, ErrPageSize)
	}
	f.FromSeq = max(f.FromSeq, from)
	f.Limit = size + 1             // one more tells whether a next page exists
	p := Page{Records: []Record{}} // an empty page is [], never null
	err = st.Find(ctx, f, func(e store.Entry) error {
		if len(p.Records) == size {
			p.Next = encodeCursor(e.Seq)
			return nil
		}
		r, err := decode(e)
		if err != nil {
			return err
		}
		p.Records = append(p.Records, r)
		return nil
	})
	return p, err
}

// ErrNoSuchSession: no event carries the session id.
var ErrNoSuchSession = errors.New("no events for that session")

// Session returns every event of a session, in order.
func Session(ctx context.Context, st Store, sessionID string) ([]Record, error) {
	var out []Record
	err := st.Find(ctx, store.Filter{SessionID: sessionID}, func(e store.Entry) error {
		r, err := decode(e)
		if err == nil {
			out = append(out, r)
		}
		return err
	})
	if err == nil && len(out) == 0 {
		return nil, fmt.Errorf("session %q: %w", sessionID, ErrNoSuchSession)
	}
	return out, err
}

// Each calls fn for every event matching f, in seq order, in constant memory (f.Limit and
// f.FromSeq apply as given). Decoding, the dominant cost of a full export, runs on every core
// while fn still sees the events in order.
func Each(ctx context.Context, st Store, f store.Filter, fn func(Record) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type job struct {
		e    store.Entry
		r    Record
		err  error
		done chan struct{}
	}
	const window = 256 // events in flight between the reader and fn
	work := make(chan *job, window)
	ordered := make(chan *job, window)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range work {
				j.r, j.err = decode(j.e)
				close(j.done)
			}
		}()
	}
	readErr := make(chan error, 1)
	go func() {
		defer close(ordered)
		defer close(work)
		readErr <- st.Find(ctx, f, func(e store.Entry) error {
			j := &job{e: e, done: make(chan struct{})}
			select {
			case ordered <- j:
			case <-ctx.Done():
				return ctx.Err()
			}
			work <- j
			return nil
		})
	}()
	var err error
	for j := range ordered {
		<-j.done
		if err == nil {
			if err = j.err; err == nil {
				err = fn(j.r)
			}
			if err != nil {
				cancel() // stop the reader; keep draining so it can exit
			}
		}
	}
	wg.Wait()
	if rerr := <-readErr; err == nil && !errors.Is(rerr, context.Canceled) {
		err = rerr
	}
	return err
}
