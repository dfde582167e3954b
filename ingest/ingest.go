// Package ingest is the one step above the ledger that every door takes: the HTTP API, OTLP, the
// CLI's append, and the proxies to come. A door turns what it received into Items (raw JSON
// events, events it decoded itself, or the reason it could not); Append decodes the raw ones,
// appends every event that decoded as one batch, and answers one result per item, in input
// order, with decoding errors in place. Completing (id, time), sanitizing and validating are the
// ledger's, so every door gets the same defaults and the same errors.
package ingest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
)

// Item is one input: Raw JSON to decode, or an Event a door decoded itself, or Err, why the door
// could not decode it.
type Item struct {
	Raw   []byte
	Event *event.Event
	Err   error
}

// Appender reaches the ledger: (*ledger.Ledger).AppendBatch, or TryAppendBatch for a server that
// answers 429 when the queue is full.
type Appender func(ctx context.Context, evs []*event.Event) ([]ledger.Result, error)

// Append decodes each item, appends the events as one batch, and returns one result per item in
// input order: the receipt, or (Err) why that item was refused. The error return is set only
// when nothing could be committed (the ledger's error: a full queue, a failed store).
func Append(ctx context.Context, appendFn Appender, items []Item) ([]ledger.Result, error) {
	results := make([]ledger.Result, len(items))
	evs := make([]*event.Event, 0, len(items))
	at := make([]int, 0, len(items))
	for i, it := range items {
		ev, err := it.Event, it.Err
		if err == nil && ev == nil {
			ev, err = event.Decode(it.Raw)
		}
		if err != nil {
			results[i].Err = err
			continue
		}
		evs, at = append(evs, ev), append(at, i)
	}
	if len(evs) == 0 {
		return results, nil
	}
	res, err := appendFn(ctx, evs)
	if err != nil {
		return nil, err
	}
	for j, r := range res {
		results[at[j]] = r
	}
	return results, nil
}

// ErrMalformed: a body is not one event, an array of events, or JSON Lines.
var ErrMalformed = errors.New("malformed body")

// Split cuts a JSON body into items: one event object, or a JSON array of them.
func Split(data []byte) ([]Item, error) {
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) == 0 {
		return nil, nil
	}
	switch trimmed[0] {
	case '[':
		var arr []json.RawMessage
		if err := json.Unmarshal(trimmed, &arr); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrMalformed, err)
		}
		items := make([]Item, len(arr))
		for i, raw := range arr {
			items[i].Raw = raw
		}
		return items, nil
	case '{':
		return []Item{{Raw: trimmed}}, nil
	}
	return nil, fmt.Errorf("%w: want an event object or an array of them", ErrMalformed)
}

// LineTooLongError is the Err of an item whose line was longer than the limit; the line itself is
// not kept. It wraps event.ErrInvalid.
type LineTooLongError struct{ Max int }

func (e *LineTooLongError) Error() string { return fmt.Sprintf("line longer than %d bytes", e.Max) }
func (e *LineTooLongError) Unwrap() error { return event.ErrInvalid }

// Lines reads JSON Lines from r and calls fn with batches of at most batch items and the line
// number (from 1) of each; blank lines are skipped. A line longer than maxLine becomes an item
// with a *LineTooLongError, read past without holding it in memory. An error reading r is returned
// with the line it happened on.
func Lines(r io.Reader, maxLine, batch int, fn func(items []Item, lines []int) error) error {
	br := bufio.NewReaderSize(r, 64<<10)
	// batch is a bound, not a size hint: the slices grow with the lines actually read, so a caller
	// may pass a large bound to get one batch without an allocation of that size.
	items := make([]Item, 0, min(batch, 256))
	lines := make([]int, 0, min(batch, 256))
	flush := func() error {
		if len(items) == 0 {
			return nil
		}
		err := fn(items, lines)
		items, lines = items[:0], lines[:0]
		return err
	}
	for n := 1; ; n++ {
		line, tooLong, err := readLine(br, maxLine)
		if err == io.EOF && line == nil && !tooLong {
			break
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("line %d: %w", n, err)
		}
		switch {
		case tooLong:
			items = append(items, Item{Err: &LineTooLongError{Max: maxLine}})
		case len(bytes.TrimSpace(line)) == 0:
			continue
		default:
			items = append(items, Item{Raw: line})
		}
		lines = append(lines, n)
		if len(items) == batch {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// SplitLines cuts a JSON Lines body already in memory into items, one per line that is not
// blank, as Lines does with no line limit and one batch (a fuzz test holds the two equal), but
// without copying: each Raw is a slice of data, capped at its line, so data must not change while
// the items are used. It returns at most limit items, and in n the count of all the lines that are
// not blank, so a caller refuses a body of more than limit events with its true count without
// holding an item for each (16 MiB of "{}" lines would be millions). A server reading a whole
// request body uses it; Lines is for streams.
func SplitLines(data []byte, limit int) (items []Item, n int) {
	items = make([]Item, 0, max(0, min(bytes.Count(data, []byte{'\n'})+1, limit)))
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i+1], data[i+1:]
		} else {
			data = nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if n++; n <= limit {
			items = append(items, Item{Raw: line[:len(line):len(line)]})
		}
	}
	return items, n
}

// readLine reads one line of at most max bytes; a longer one is consumed and reported tooLong.
func readLine(r *bufio.Reader, max int) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > max {
			tooLong = true
		} else {
			line = append(line, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF && len(line) == 0 && !tooLong {
			return nil, false, io.EOF
		}
		if tooLong {
			line = nil
		}
		return line, tooLong, err
	}
}
