// Package embedded opens a local data directory as the agentaudit.Sink of an agent that records
// in-process: events go straight into the directory's ledger (no server, no second queue), are
// sanitized there, and are committed to its SQLite store. It is the only part of the SDK that
// compiles the database; an agent that sends to a server imports the root package alone.
//
//	sink, err := embedded.Open("./agentaudit-data", ledger.Options{})
//	rec, err := agentaudit.New(sink)
package embedded

import (
	"context"
	"errors"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
)

// Sink is an open data directory. It queues and group-commits by itself, so a Recorder hands it
// each event directly (agentaudit.QueueSink).
type Sink struct {
	w *datadir.Writer
}

var _ agentaudit.QueueSink = (*Sink)(nil)

// Open opens dir for appending, initializing it (keys, store) on first use, and takes its writer
// lock. Zero opts sanitize with the built-in policy and the directory's pseudonym key, and queue
// up to agentaudit.DefaultQueueSize events (each event is its own request on this path, so an
// agent's burst waits in the ledger's queue instead of blocking the agent).
func Open(dir string, opts ledger.Options) (*Sink, error) {
	if opts.QueueSize == 0 {
		opts.QueueSize = agentaudit.DefaultQueueSize
	}
	d := datadir.Dir{Path: dir}
	if _, err := d.Init(context.Background(), ""); err != nil && !errors.Is(err, datadir.ErrInitialized) {
		return nil, err
	}
	w, err := d.OpenWriter(context.Background(), opts)
	if err != nil {
		return nil, err
	}
	return &Sink{w: w}, nil
}

// Ledger returns the open ledger, for proofs and checkpoints.
func (s *Sink) Ledger() *ledger.Ledger { return s.w.Ledger }

// AppendBatch commits evs and returns once they are durable.
func (s *Sink) AppendBatch(ctx context.Context, evs []*event.Event) ([]error, error) {
	res, err := s.w.AppendBatch(ctx, evs)
	if err != nil {
		return nil, err
	}
	errs := make([]error, len(res))
	for i := range res {
		errs[i] = res[i].Err
	}
	return errs, nil
}

// Enqueue prepares ev in the caller's goroutine and queues it for the ledger's writer.
func (s *Sink) Enqueue(ctx context.Context, ev *event.Event, committed func(error)) error {
	refused, err := s.w.Submit(ctx, []*event.Event{ev}, true, func(res []ledger.Result, err error) {
		if err == nil {
			err = res[0].Err // refused while being prepared (too large, say)
		}
		committed(err)
	})
	if err != nil {
		return err
	}
	if refused != nil {
		return refused[0]
	}
	return nil
}

// Flush waits until everything queued before it is committed.
func (s *Sink) Flush(ctx context.Context) error { return s.w.Flush(ctx) }

// Close commits what is queued, signs a final checkpoint, and releases the directory.
func (s *Sink) Close() error { return s.w.Close() }
