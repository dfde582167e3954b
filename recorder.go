// Package agentaudit is the Go SDK that agents import to record what they do: sessions with who
// and why, LLM calls, tool calls (wrapped once, timed and linked to the LLM call that asked for
// them), reasoning, approvals, interventions, errors and outcomes, into the tamper-evident ledger.
//
//	sink, err := agentaudit.Dial("http://127.0.0.1:8433", writerKey) // or embedded.Open(dir, ledger.Options{})
//	rec, err := agentaudit.New(sink)
//	ctx, sess, err := rec.StartSession(ctx, agentaudit.SessionInfo{UserID: "usr_98765", AgentID: "support-v1"})
//	getOrder := agentaudit.WrapTool(rec, "get_order", getOrderFunc)
//	order, err := getOrder(ctx, args) // recorded with arguments, result, duration, outcome
//	sess.End(ctx, event.OutcomeSuccess)
//	rec.Close()
//
// The recorder delivers to a Sink: the embedded store in a local data directory
// (agentaudit/embedded, which compiles the database; this package does not), or a server.
// Every event passes the ledger's one path: validation, sanitization, canonical encoding, the
// Merkle log. Three delivery modes trade latency for guarantees (Mode): Async returns at once and
// batches in the background (Flush and Close drain), Sync returns after the durable commit, and
// FailClosed (per tool) refuses to run a tool whose audit record cannot be written first.
package agentaudit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

// Mode is how the recorder delivers events.
type Mode int

const (
	// Async queues the event and returns at once; a background goroutine commits batches.
	// Validation errors are still returned at once. Flush and Close wait for the queue.
	Async Mode = iota
	// Sync returns after the event is durably committed.
	Sync
	// FailClosed is Sync, and for a wrapped tool it also records the call before running it: if
	// that record cannot be written, the tool does not run and the caller gets the error.
	FailClosed
)

func (m Mode) String() string {
	switch m {
	case Async:
		return "async"
	case Sync:
		return "sync"
	case FailClosed:
		return "fail-closed"
	}
	return fmt.Sprintf("Mode(%d)", int(m))
}

// Sink is where a recorder delivers events: a server client, or (embedded.Open) the embedded
// ledger.
type Sink interface {
	// AppendBatch commits evs durably, in order, and returns one error per event (nil when it
	// was stored); the error return is set only when nothing was committed.
	AppendBatch(ctx context.Context, evs []*event.Event) ([]error, error)
	Close() error
}

// QueueSink is a Sink with a queue of its own that batches and commits in order, as the embedded
// ledger group-commits. The recorder hands each event straight to it: no second queue, no timer,
// and the event is checked once, by the sink.
type QueueSink interface {
	Sink
	// Enqueue completes ev (id, time), checks and sanitizes it, and queues it behind everything
	// queued before, returning at once: an error means ev was refused and nothing was queued.
	// Otherwise committed is called exactly once with the outcome of the durable commit, on the
	// sink's goroutine; it must not block.
	Enqueue(ctx context.Context, ev *event.Event, committed func(error)) error
	// Flush returns once everything queued before it is committed.
	Flush(ctx context.Context) error
}

// Defaults for options.
const (
	DefaultQueueSize     = 65536
	DefaultBatchSize     = 1024
	DefaultFlushInterval = 20 * time.Millisecond
)

type config struct {
	mode          Mode
	queueSize     int
	batchSize     int
	flushInterval time.Duration
	onError       func(error)
}

// Option configures a Recorder.
type Option func(*config) error

// WithMode sets the default delivery mode (Async unless set).
func WithMode(m Mode) Option {
	return func(c *config) error {
		if m < Async || m > FailClosed {
			return fmt.Errorf("agentaudit: WithMode: unknown mode %d", m)
		}
		c.mode = m
		return nil
	}
}

// WithQueue sets the async queue size and the largest batch committed at once.
func WithQueue(size, batch int) Option {
	return func(c *config) error {
		if size < 1 || batch < 1 {
			return fmt.Errorf("agentaudit: WithQueue: size %d and batch %d must be positive", size, batch)
		}
		c.queueSize, c.batchSize = size, batch
		return nil
	}
}

// WithFlushInterval sets how long an async event may wait for more to batch with.
func WithFlushInterval(d time.Duration) Option {
	return func(c *config) error {
		if d <= 0 {
			return fmt.Errorf("agentaudit: WithFlushInterval: %v must be positive", d)
		}
		c.flushInterval = d
		return nil
	}
}

// WithErrorHandler receives errors of async deliveries (the caller has already returned). It runs
// on the delivering goroutine and must not block. The default logs them with slog at error
// level.
func WithErrorHandler(f func(error)) Option {
	return func(c *config) error { c.onError = f; return nil }
}

// Recorder records events. It is safe for concurrent use.
type Recorder struct {
	sink  Sink
	queue QueueSink // sink, when it queues by itself; then the fields below are unused
	cfg   config

	batch    chan queued
	done     chan struct{}
	closeMu  sync.RWMutex
	closed   bool
	closeErr error
}

// queued is an event, or (ev nil) a flush marker. done, when set, receives the event's result
// (nil for a flush) once it and everything queued before it is committed. Every event goes
// through the one queue, so the log keeps the order in which the agent recorded them, whatever
// the mode.
type queued struct {
	ev   *event.Event
	done chan error
}

// ErrClosed: the recorder was closed.
var ErrClosed = errors.New("agentaudit: recorder closed")

// New opens a recorder on any sink.
func New(sink Sink, opts ...Option) (*Recorder, error) {
	var cfg config
	if err := cfg.apply(opts); err != nil {
		return nil, err
	}
	return newRecorder(sink, cfg), nil
}

func (c *config) apply(opts []Option) error {
	*c = config{mode: Async, queueSize: DefaultQueueSize, batchSize: DefaultBatchSize, flushInterval: DefaultFlushInterval,
		onError: func(err error) { slog.Error("agentaudit: async delivery failed", "err", err) }}
	for _, o := range opts {
		if err := o(c); err != nil {
			return err
		}
	}
	return nil
}

func newRecorder(sink Sink, cfg config) *Recorder {
	r := &Recorder{sink: sink, cfg: cfg}
	if qs, ok := sink.(QueueSink); ok {
		r.queue = qs
		return r
	}
	r.batch, r.done = make(chan queued, cfg.queueSize), make(chan struct{})
	go r.deliver()
	return r
}

// Mode returns the recorder's default delivery mode.
func (r *Recorder) Mode() Mode { return r.cfg.mode }

// Record delivers one event in the recorder's mode. The event is completed (id, time) and
// validated in the caller's goroutine, so a bad event is an error here in every mode.
func (r *Recorder) Record(ctx context.Context, ev *event.Event) error {
	return r.record(ctx, ev, r.cfg.mode)
}

func (r *Recorder) record(ctx context.Context, ev *event.Event, m Mode) error {
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	if r.queue != nil {
		return r.enqueueDirect(ctx, ev, m)
	}
	// A sink without a queue of its own (a server): check here so a bad event is an error at once
	// in every mode, then batch.
	if err := ev.Normalize(time.Now()); err != nil {
		return err
	}
	if err := ev.Validate(); err != nil {
		return err
	}
	q := queued{ev: ev}
	if m != Async {
		q.done = make(chan error, 1)
	}
	select {
	case r.batch <- q:
	case <-ctx.Done():
		return ctx.Err()
	}
	if q.done == nil {
		return nil
	}
	// Queued: the commit happens whatever ctx does, so wait for its outcome.
	return <-q.done
}

// enqueueDirect hands ev to a queueing sink; Sync and FailClosed wait for the commit.
func (r *Recorder) enqueueDirect(ctx context.Context, ev *event.Event, m Mode) error {
	if m == Async {
		return r.queue.Enqueue(ctx, ev, func(err error) {
			if err != nil {
				r.cfg.onError(fmt.Errorf("event %s not recorded: %w", ev.ID, err))
			}
		})
	}
	done := make(chan error, 1)
	if err := r.queue.Enqueue(ctx, ev, func(err error) { done <- err }); err != nil {
		return err
	}
	return <-done
}

// deliver commits queued events in batches: at once when someone waits for the batch (a Sync
// event, a Flush), otherwise after the flush interval or when the batch is full.
func (r *Recorder) deliver() {
	defer close(r.done)
	var batch []queued
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	commit := func() {
		var evs []*event.Event
		for _, q := range batch {
			if q.ev != nil {
				evs = append(evs, q.ev)
			}
		}
		var res []error
		var err error
		if len(evs) > 0 {
			res, err = r.sink.AppendBatch(context.Background(), evs)
		}
		i := 0
		for _, q := range batch {
			var qerr error
			if q.ev != nil {
				switch {
				case err != nil:
					qerr = err
				default:
					qerr = res[i]
				}
				i++
			}
			if q.done != nil {
				q.done <- qerr
			} else if qerr != nil {
				r.cfg.onError(fmt.Errorf("event %s not recorded: %w", q.ev.ID, qerr))
			}
		}
		batch = batch[:0]
	}
	for {
		var q queued
		var ok bool
		select {
		case q, ok = <-r.batch:
		case <-timer.C:
			commit()
			continue
		}
		if !ok {
			commit()
			return
		}
		if len(batch) == 0 {
			timer.Reset(r.cfg.flushInterval)
		}
		batch = append(batch, q)
		waited := q.done != nil
	drain:
		for len(batch) < r.cfg.batchSize {
			select {
			case q, ok := <-r.batch:
				if !ok {
					commit()
					return
				}
				batch = append(batch, q)
				waited = waited || q.done != nil
			default:
				break drain
			}
		}
		if waited || len(batch) >= r.cfg.batchSize {
			timer.Stop()
			commit()
		}
	}
}

// Flush waits until every event queued before it is committed (async failures go to the error
// handler).
func (r *Recorder) Flush(ctx context.Context) error {
	r.closeMu.RLock()
	defer r.closeMu.RUnlock()
	if r.closed {
		return ErrClosed
	}
	if r.queue != nil {
		return r.queue.Flush(ctx)
	}
	q := queued{done: make(chan error, 1)}
	select {
	case r.batch <- q:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close drains the queue, then closes the sink (embedded: signs a final checkpoint).
func (r *Recorder) Close() error {
	r.closeMu.Lock()
	if r.closed {
		r.closeMu.Unlock()
		return r.closeErr
	}
	r.closed = true
	if r.batch != nil {
		close(r.batch)
	}
	r.closeMu.Unlock()
	if r.done != nil {
		<-r.done
	}
	r.closeErr = r.sink.Close()
	return r.closeErr
}
