// Package alert owns the log's watch on itself: alert rules (CEL conditions over the event,
// sliding-window aggregates, first_seen combinations, and the built-in rules), evaluated on the
// committed stream whatever door the events came by; the alerts they raise, appended to the log
// as events of kind alert so their history is as tamper-evident as the rest; webhook delivery
// through a durable outbox, signed with HMAC-SHA256; and the reviews that break-the-glass accesses
// call for.
//
// The evaluator is deterministic in the log: the same events, in seq order, raise the same
// alerts with the same ids. The engine rebuilds its windows at start-up by replaying the log,
// evaluates live only what lies past its watermark (the last seq whose alerts are committed), and
// an alert raised twice after a crash is one event, because its id is derived from the rule, the
// group and the triggering seq.
package alert

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store"
)

// Log is what the engine needs from the ledger: a way to append the events only agentaudit
// writes.
type Log interface {
	AppendSystem(ctx context.Context, evs []*event.Event) ([]ledger.Result, error)
}

// Store is what the engine reads: the log in seq order, its size, its latest checkpoint, and
// alert events by kind.
type Store interface {
	ScanEntries(ctx context.Context, from int64, fn func(store.Entry) error) error
	Find(ctx context.Context, f store.Filter, fn func(store.Entry) error) error
	Size(ctx context.Context) (int64, error)
	LatestCheckpoint(ctx context.Context) (store.Checkpoint, error)
}

// Options configure an Engine.
type Options struct {
	Config *Config
	// Dir keeps the engine's files (mode 0600): state.json (the watermark) and deliveries.jsonl
	// (every delivery attempt). Required.
	Dir    string
	Logger *slog.Logger
	// Tick is how often timed rules run and the engine checks it has seen every commit.
	Tick time.Duration
	// RetryBase and RetryMax bound the delivery backoff (exponential, full jitter).
	RetryBase, RetryMax time.Duration
	// Transport, when set, carries webhook calls (tests); redirects are never followed.
	Transport http.RoundTripper
	// QueueSize is how many commits may wait for the engine before it reads them from the store.
	QueueSize int
}

// Defaults for Options.
const (
	DefaultTick      = time.Second
	DefaultRetryBase = 500 * time.Millisecond
	DefaultRetryMax  = 5 * time.Minute
	DefaultQueueSize = 1024
)

// Engine evaluates the rules on the committed stream and delivers the alerts.
type Engine struct {
	opts  Options
	eval  *Evaluator
	log   Log
	st    Store
	queue chan committed
	out   *outbox

	next      int64 // the next seq to evaluate
	evaluated atomic.Int64
	dropped   atomic.Bool // a commit did not fit in the queue: read the log's tail from the store
	saved     int64       // the watermark last written
	cpSize    int64       // checkpoint_stale: the checkpoint size seen, and since when
	cpSince   time.Time
	cpAlerted map[int64]bool

	stop    chan struct{}
	done    chan struct{}
	started bool
	mu      sync.Mutex

	fired    *prometheus.CounterVec
	attempts *prometheus.CounterVec
}

// New checks opts and returns an engine; it evaluates nothing until Start. Give its Committed
// to the ledger (ledger.Options.Committed) before opening the ledger.
func New(opts Options) (*Engine, error) {
	if opts.Config == nil {
		return nil, errors.New("alert: Config is required")
	}
	if opts.Dir == "" {
		return nil, errors.New("alert: Dir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Tick <= 0 {
		opts.Tick = DefaultTick
	}
	if opts.RetryBase <= 0 {
		opts.RetryBase = DefaultRetryBase
	}
	if opts.RetryMax <= 0 {
		opts.RetryMax = DefaultRetryMax
	}
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	ev, err := NewEvaluator(opts.Config)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("alert: %w", err)
	}
	e := &Engine{opts: opts, eval: ev, queue: make(chan committed, opts.QueueSize), cpAlerted: map[int64]bool{},
		stop: make(chan struct{}), done: make(chan struct{}),
		fired: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentaudit_alerts_total",
			Help: "Alerts raised (alert events appended), by rule and severity."}, []string{"rule", "severity"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agentaudit_alert_deliveries_total",
			Help: "Webhook delivery attempts, by webhook and outcome (delivered, failed)."}, []string{"webhook", "outcome"}),
	}
	return e, nil
}

// Collectors are the engine's Prometheus metrics.
func (e *Engine) Collectors() []prometheus.Collector {
	return []prometheus.Collector{e.fired, e.attempts}
}

// Committed is the ledger's hook (ledger.Options.Committed): it hands copies of the committed
// events to the engine without ever blocking (parsing the stored bodies again would cost more
// than the rules); when the queue is full they are dropped here and read back from the store.
func (e *Engine) Committed(entries []store.Entry, events []*event.Event) {
	if len(entries) == 0 {
		return
	}
	c := committed{first: entries[0].Seq, events: make([]event.Event, len(events))}
	for i, ev := range events {
		c.events[i] = *ev
	}
	select {
	case e.queue <- c:
	default:
		e.dropped.Store(true)
	}
}

// committed is one commit's events, copied, numbered from first.
type committed struct {
	first  int64
	events []event.Event
}

type state struct {
	Version   int   `json:"version"`
	Evaluated int64 `json:"evaluated"` // every event up to this seq has its alerts committed
}

func (e *Engine) statePath() string { return filepath.Join(e.opts.Dir, "state.json") }

// Start rebuilds the windows from the log, raises what was not raised before the last stop (the
// events past the watermark: appended while the server was down, or whose alerts a crash lost),
// starts delivering what is undelivered, and then follows the committed stream.
func (e *Engine) Start(ctx context.Context, log Log, st Store) error {
	e.log, e.st = log, st
	size, err := st.Size(ctx)
	if err != nil {
		return err
	}
	wm := size - 1 // a first start: what is in the log already is history, not news
	if b, err := os.ReadFile(e.statePath()); err == nil {
		var s state
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("alert: %s: %w", e.statePath(), err)
		}
		wm = s.Evaluated
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("alert: %w", err)
	}
	if e.out, err = openOutbox(ctx, e, st, size); err != nil {
		return err
	}
	var pending []Firing
	err = st.ScanEntries(ctx, 0, func(en store.Entry) error {
		if en.Seq >= size {
			return errStop
		}
		fs := e.observe(en)
		if en.Seq > wm {
			pending = append(pending, fs...)
		}
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	e.next = size
	if err := e.emit(ctx, pending); err != nil {
		return err
	}
	e.saved = wm
	e.saveState()
	e.evaluated.Store(e.next)
	e.out.start()
	e.mu.Lock()
	e.started = true
	e.mu.Unlock()
	go e.run()
	return nil
}

var errStop = errors.New("stop")

// observe evaluates one stored entry; a purged one (no body) is skipped.
func (e *Engine) observe(en store.Entry) []Firing {
	if len(en.Body) == 0 {
		return nil
	}
	ev, err := event.ParseStored(en.Body)
	if err != nil {
		e.opts.Logger.Error("alert: unreadable event", "seq", en.Seq, "err", err)
		return nil
	}
	return e.eval.Observe(en.Seq, ev)
}

func (e *Engine) run() {
	defer close(e.done)
	t := time.NewTicker(e.opts.Tick)
	defer t.Stop()
	ctx := context.Background()
	for {
		select {
		case batch := <-e.queue:
			e.process(ctx, batch)
		case now := <-t.C:
			// A gap before a queued commit is filled when that commit is processed; a dropped
			// last commit is found here. Without drops the store is not read.
			if e.dropped.Swap(false) {
				e.catchUp(ctx, -1)
			}
			e.tick(ctx, now)
			e.saveState()
		case <-e.stop:
			// What is queued was committed: evaluate it before stopping.
			for {
				select {
				case batch := <-e.queue:
					e.process(ctx, batch)
				default:
					e.saveState()
					return
				}
			}
		}
	}
}

func (e *Engine) process(ctx context.Context, batch committed) {
	if batch.first > e.next {
		e.catchUp(ctx, batch.first)
	}
	var fs []Firing
	for i := range batch.events {
		seq := batch.first + int64(i)
		if seq < e.next {
			continue
		}
		fs = append(fs, e.eval.Observe(seq, &batch.events[i])...)
		e.next = seq + 1
	}
	if err := e.emit(ctx, fs); err != nil {
		e.opts.Logger.Error("alert: alerts not recorded", "err", err)
	}
	e.evaluated.Store(e.next)
}

// Evaluated returns how many of the log's first events the engine has evaluated (their alerts
// committed).
func (e *Engine) Evaluated() int64 { return e.evaluated.Load() }

// catchUp evaluates from the store what the queue dropped, up to before seq `until` (-1: to
// the end).
func (e *Engine) catchUp(ctx context.Context, until int64) {
	var fs []Firing
	err := e.st.ScanEntries(ctx, e.next, func(en store.Entry) error {
		if until >= 0 && en.Seq >= until {
			return errStop
		}
		fs = append(fs, e.observe(en)...)
		e.next = en.Seq + 1
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		e.opts.Logger.Error("alert: reading the log", "err", err)
	}
	if err := e.emit(ctx, fs); err != nil {
		e.opts.Logger.Error("alert: alerts not recorded", "err", err)
	}
	e.evaluated.Store(e.next)
}

func (e *Engine) tick(ctx context.Context, now time.Time) {
	fs := e.eval.Tick(now)
	if r := e.eval.checkpointRule(); r != nil {
		if f := e.checkpointAge(ctx, r, now); f != nil {
			fs = append(fs, *f)
		}
	}
	if err := e.emit(ctx, fs); err != nil {
		e.opts.Logger.Error("alert: alerts not recorded", "err", err)
	}
}

// checkpointAge raises checkpoint_stale when events wait unsigned for longer than the rule's
// After: the newest checkpoint has not moved while the log grew.
func (e *Engine) checkpointAge(ctx context.Context, c *compiled, now time.Time) *Firing {
	size, err := e.st.Size(ctx)
	if err != nil {
		return nil
	}
	var signed int64
	if cp, err := e.st.LatestCheckpoint(ctx); err == nil {
		signed = cp.Size
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if size <= signed {
		e.cpSince = time.Time{}
		return nil
	}
	if e.cpSince.IsZero() || signed != e.cpSize {
		e.cpSize, e.cpSince = signed, now
		return nil
	}
	if now.Sub(e.cpSince) < c.After || e.cpAlerted[signed] {
		return nil
	}
	e.cpAlerted[signed] = true
	key := fmt.Sprintf("checkpoint_size=%d", signed)
	rec := Record{Rule: c.Name, Severity: c.Severity.String(), GroupKey: key, TriggerSeq: signed,
		Message: fmt.Sprintf("the newest checkpoint (size %d) is older than %s while the log holds %d events", signed, c.After, size)}
	f := c.fire(rec, key, now)
	return &f
}

// emit appends the firings' alert events and hands the new ones to delivery. An alert already in
// the log (raised before a crash) comes back as a duplicate and is neither counted nor delivered
// again here (the outbox found it at start-up if it was undelivered).
func (e *Engine) emit(ctx context.Context, fs []Firing) error {
	if len(fs) == 0 {
		return nil
	}
	evs := make([]*event.Event, len(fs))
	for i := range fs {
		evs[i] = fs[i].Event
	}
	res, err := e.log.AppendSystem(ctx, evs)
	if err != nil {
		return err
	}
	var errs []error
	for i, r := range res {
		f := &fs[i]
		switch {
		case r.Err != nil && errors.Is(r.Err, ledger.ErrConflict):
			// The same id with other figures: the alert was raised under other rules; it stands.
		case r.Err != nil:
			errs = append(errs, fmt.Errorf("alert %s: %w", f.Rule.Name, r.Err))
		case r.Duplicate:
		default:
			e.fired.WithLabelValues(f.Rule.Name, f.Record.Severity).Inc()
			e.opts.Logger.Warn("alert", "rule", f.Rule.Name, "severity", f.Record.Severity, "group", f.Record.GroupKey,
				"seq", r.Seq, "id", r.ID, "message", f.Record.Message)
			e.out.enqueue(Alert{Seq: r.Seq, Event: f.Event, Record: f.Record})
		}
	}
	return errors.Join(errs...)
}

func (e *Engine) saveState() {
	wm := e.next - 1
	if wm == e.saved {
		return
	}
	b, _ := json.Marshal(state{Version: 1, Evaluated: wm})
	tmp := e.statePath() + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		e.opts.Logger.Error("alert: saving the watermark", "err", err)
		return
	}
	if err := os.Rename(tmp, e.statePath()); err != nil {
		e.opts.Logger.Error("alert: saving the watermark", "err", err)
		return
	}
	e.saved = wm
}

// Close evaluates what is queued, saves the watermark and stops delivery (an undelivered alert
// stays in the outbox for the next start). Close it before the ledger.
func (e *Engine) Close() error {
	e.mu.Lock()
	started := e.started
	e.started = false
	e.mu.Unlock()
	if !started {
		return nil
	}
	close(e.stop)
	<-e.done
	return e.out.close()
}

// Deliveries returns every delivery attempt of the alert with id, per webhook, oldest first.
func (e *Engine) Deliveries(id string) []Attempt {
	if e.out == nil {
		return nil
	}
	return e.out.attemptsOf(id)
}

func (ev *Evaluator) checkpointRule() *compiled {
	for _, c := range ev.timed {
		if c.timed == timedCheckpoint {
			return c
		}
	}
	return nil
}

// MarkHistory makes what a log of size events holds the history of a first start, if the
// engine in dir has never started: events appended after it (the demo that `serve --demo`
// records before the engine runs, say) are news, and raise their alerts at the start. It does
// nothing once the engine has a watermark.
func MarkHistory(dir string, size int64) error {
	path := filepath.Join(dir, "state.json")
	if _, err := os.Stat(path); err == nil || !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("alert: %w", err)
	}
	b, _ := json.Marshal(state{Version: 1, Evaluated: size - 1})
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return fmt.Errorf("alert: %w", err)
	}
	return nil
}
