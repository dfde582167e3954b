package agentaudit

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

// Remote is a QueueSink that sends events to an agentaudit server (POST /v1/events as gzipped
// JSON Lines), for agents that record to a server instead of a data directory of their own.
//
// Events leave in the order they were queued, in batches (WithBatching: a size, and how long the
// first event of a batch may wait for more). A batch that meets a network error, 429 or 5xx is
// sent again after an exponential backoff (Retry-After is honoured), for as long as it takes:
// every event carries its id, so a batch sent twice is stored once. While the server cannot be
// reached, events go to a spool file (WithSpool), bounded in size; when the server answers again
// the spool is drained in order before anything newer, so nothing is lost and the order is kept,
// even across a restart of the agent (Dial resumes an existing spool). Flush and Close wait for
// delivery.
//
// Two ways to meet a full spool (or, without a spool, a full queue): by default the event is
// dropped, counted (Lost) and logged; WithFailClosed refuses it instead (Enqueue returns
// ErrSpoolFull, so a FailClosed tool does not run), and every spool write is fsynced, so that a
// spooled event counts as recorded.
type Remote struct {
	endpoint string
	key      string
	cfg      remoteConfig

	mu        sync.Mutex
	mem       []pendingEvent // queued in memory, after everything in the spool
	spool     *os.File
	spoolSize int64          // bytes in the spool file
	spoolSent int64          // bytes of it the server has answered for
	spoolWait []spooledEvent // callbacks of events spooled by this process, in order
	down      bool           // the last attempt failed: new events go to the spool
	queued    uint64         // events accepted so far (and lines found in the spool at Dial)
	settled   uint64         // of those, delivered, refused or dropped
	progress  chan struct{}  // closed and replaced whenever settled grows
	hurry     int            // Flush and Close in progress: send without waiting for a full batch
	closing   bool

	wake      chan struct{}
	ctx       context.Context // canceled when Close gives up
	cancel    context.CancelFunc
	senderEnd chan struct{}
	lost      atomic.Int64
	closeErr  error
	closeOnce sync.Once
}

type pendingEvent struct {
	line []byte // canonical JSON
	cb   func(error)
	at   time.Time
}

type spooledEvent struct {
	end int64 // offset just past its line
	cb  func(error)
}

// Limits and defaults of a Remote.
const (
	// RemoteAttempts is how many times Send tries a batch while the server answers 429/5xx or the
	// connection fails. (The queue behind Enqueue retries until Close gives up.)
	RemoteAttempts = 5
	// RemoteMaxWait caps the wait between attempts, whatever Retry-After says.
	RemoteMaxWait = 10 * time.Second
	// DefaultRemoteBatch is the most events in one request; DefaultRemoteBatchBytes the most
	// bytes (before compression; the server's default limit is 16 MiB).
	DefaultRemoteBatch      = 1000
	DefaultRemoteBatchBytes = 4 << 20
	// DefaultRemoteQueue is how many events wait in memory when there is no spool.
	DefaultRemoteQueue = 65536
	// DefaultSpoolBytes bounds the spool file.
	DefaultSpoolBytes = 256 << 20
	// DefaultCloseTimeout is how long Close waits for delivery.
	DefaultCloseTimeout = 30 * time.Second
)

// ErrRemote: the server did not store the batch (an HTTP error, or an answer that is not the
// API's). The error carries the status and the server's problem title and detail.
var ErrRemote = errors.New("agentaudit server refused the batch")

// ErrSpoolFull: the server cannot be reached and the spool (or the memory queue) is full. In
// fail-closed mode the event is refused with it; otherwise the event is dropped and counted.
var ErrSpoolFull = errors.New("agentaudit: the server is unreachable and the spool is full")

// ErrUndelivered: Close gave up waiting; the events are in the spool when there is one.
var ErrUndelivered = errors.New("agentaudit: events not delivered")

type remoteConfig struct {
	batch, batchBytes int
	age               time.Duration
	queue             int
	spoolPath         string
	spoolMax          int64
	sanitizer         Sanitizer
	failClosed        bool
	client            *http.Client
	logger            *slog.Logger
	closeTimeout      time.Duration
}

// RemoteOption configures a Remote (Dial).
type RemoteOption func(*remoteConfig) error

// WithBatching sets the most events in one request and how long the first event of a batch may
// wait for more. With age 0 (the default) a batch leaves as soon as the previous one is answered,
// holding whatever arrived meanwhile: a group commit, with no timer on the path.
func WithBatching(size int, age time.Duration) RemoteOption {
	return func(c *remoteConfig) error {
		if size < 1 || age < 0 {
			return fmt.Errorf("agentaudit: WithBatching: size %d must be positive and age %v not negative", size, age)
		}
		c.batch, c.age = size, age
		return nil
	}
}

// WithSpool keeps events in the file at path (created mode 0600) while the server cannot be
// reached, up to maxBytes (0: DefaultSpoolBytes). It needs WithSanitizer: nothing reaches the
// disk unsanitized, the spool included (Dial refuses a spool without one, ErrNoSanitizer).
func WithSpool(path string, maxBytes int64) RemoteOption {
	return func(c *remoteConfig) error {
		if path == "" || maxBytes < 0 {
			return fmt.Errorf("agentaudit: WithSpool: want a path and a size ≥ 0, got %q and %d", path, maxBytes)
		}
		if maxBytes == 0 {
			maxBytes = DefaultSpoolBytes
		}
		c.spoolPath, c.spoolMax = path, maxBytes
		return nil
	}
}

// Sanitizer strips secrets and PII from an event in place before it is written anywhere. It is
// the method of ledger.Sanitizer, so the redactor the embedded store runs (*redact.Redactor,
// e.g. from datadir.Dir.Redactor) fits; the SDK package names the interface itself so that it
// compiles no sanitizer of its own.
type Sanitizer interface {
	Sanitize(ev *event.Event) error
}

// ErrNoSanitizer: Dial was given a spool (WithSpool) and no WithSanitizer.
var ErrNoSanitizer = errors.New("agentaudit: a spool needs a sanitizer (WithSanitizer): nothing is written to disk unsanitized")

// WithSanitizer runs s on every event in Enqueue, before the event is encoded: the spool and the
// request carry only sanitized events. The server sanitizes again; that changes nothing, since a
// redaction marker or a pseudonym is left as it is. Pseudonyms are made with s's key: give the
// agent the server's pseudonym key for them to match the server's tokens of the same values.
func WithSanitizer(s Sanitizer) RemoteOption {
	return func(c *remoteConfig) error {
		if s == nil {
			return errors.New("agentaudit: WithSanitizer: nil sanitizer")
		}
		c.sanitizer = s
		return nil
	}
}

// WithFailClosed makes every spool write durable (fsync) before the event counts as recorded,
// and refuses events (ErrSpoolFull) instead of dropping them when the spool or queue is full.
func WithFailClosed() RemoteOption {
	return func(c *remoteConfig) error { c.failClosed = true; return nil }
}

// WithQueueLimit sets how many events may wait in memory (DefaultRemoteQueue).
func WithQueueLimit(n int) RemoteOption {
	return func(c *remoteConfig) error {
		if n < 1 {
			return fmt.Errorf("agentaudit: WithQueueLimit: %d must be positive", n)
		}
		c.queue = n
		return nil
	}
}

// WithHTTPClient sends through client (TLS settings, proxies) instead of a default one.
func WithHTTPClient(client *http.Client) RemoteOption {
	return func(c *remoteConfig) error {
		if client == nil {
			return errors.New("agentaudit: WithHTTPClient: nil client")
		}
		c.client = client
		return nil
	}
}

// WithRemoteLogger receives the Remote's warnings (server unreachable, events dropped); the
// default is slog.Default(). No key or event content is ever logged.
func WithRemoteLogger(l *slog.Logger) RemoteOption {
	return func(c *remoteConfig) error { c.logger = l; return nil }
}

// WithCloseTimeout sets how long Close waits for delivery (DefaultCloseTimeout).
func WithCloseTimeout(d time.Duration) RemoteOption {
	return func(c *remoteConfig) error {
		if d <= 0 {
			return fmt.Errorf("agentaudit: WithCloseTimeout: %v must be positive", d)
		}
		c.closeTimeout = d
		return nil
	}
}

var _ QueueSink = (*Remote)(nil)

// Dial returns a Remote for the server at baseURL (http or https, e.g. http://127.0.0.1:8433)
// that authenticates with apiKey (a writer or admin key). With a spool that holds events from an
// earlier run, it starts sending them at once; otherwise it sends nothing yet.
func Dial(baseURL, apiKey string, opts ...RemoteOption) (*Remote, error) {
	u, err := url.Parse(baseURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("agentaudit: Dial: %q is not an http(s) URL", baseURL)
	}
	if strings.TrimSpace(apiKey) == "" {
		return nil, errors.New("agentaudit: Dial: an API key is required")
	}
	cfg := remoteConfig{batch: DefaultRemoteBatch, batchBytes: DefaultRemoteBatchBytes, queue: DefaultRemoteQueue,
		client: &http.Client{Timeout: 30 * time.Second}, closeTimeout: DefaultCloseTimeout}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	if cfg.spoolPath != "" && cfg.sanitizer == nil {
		return nil, fmt.Errorf("%w: spool %s", ErrNoSanitizer, cfg.spoolPath)
	}
	if cfg.logger == nil {
		cfg.logger = slog.Default()
	}
	r := &Remote{endpoint: strings.TrimRight(baseURL, "/") + "/v1/events", key: strings.TrimSpace(apiKey), cfg: cfg,
		progress: make(chan struct{}), wake: make(chan struct{}, 1), senderEnd: make(chan struct{})}
	if cfg.spoolPath != "" {
		if err := r.openSpool(); err != nil {
			return nil, err
		}
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	go r.run()
	return r, nil
}

// openSpool opens (or creates) the spool, cuts a line torn by a crash, and resumes after the
// offset saved beside it (a missing or stale offset resends from the start: the server keeps one
// copy of each event id).
func (r *Remote) openSpool() error {
	f, err := os.OpenFile(r.cfg.spoolPath, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("agentaudit: spool: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("agentaudit: spool: %w", err)
	}
	end := int64(bytes.LastIndexByte(data, '\n') + 1)
	if end != int64(len(data)) {
		if err := f.Truncate(end); err != nil {
			f.Close()
			return fmt.Errorf("agentaudit: spool: cutting a torn line: %w", err)
		}
	}
	r.spool, r.spoolSize = f, end
	if b, err := os.ReadFile(r.cfg.spoolPath + ".offset"); err == nil {
		if off, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil && off >= 0 && off <= end &&
			(off == 0 || data[off-1] == '\n') {
			r.spoolSent = off
		}
	}
	r.queued = uint64(bytes.Count(data[r.spoolSent:end], []byte{'\n'}))
	if r.spoolSent < r.spoolSize {
		r.down = true // drain what an earlier run left before anything new
	}
	return nil
}

// Lost returns how many events were dropped because the spool or queue was full, or because the
// server refused their batch for good (a wrong key, a body too large).
func (r *Remote) Lost() int64 { return r.lost.Load() }

// Enqueue implements QueueSink: ev is completed and checked here, then queued behind everything
// queued before (in memory, or in the spool while the server is unreachable).
func (r *Remote) Enqueue(ctx context.Context, ev *event.Event, committed func(error)) error {
	if err := ev.Normalize(time.Now()); err != nil {
		return err
	}
	if r.cfg.sanitizer != nil {
		if err := r.cfg.sanitizer.Sanitize(ev); err != nil {
			return err
		}
	}
	if err := ev.Validate(); err != nil {
		return err
	}
	line, err := ev.Canonical()
	if err != nil {
		return err
	}
	if committed == nil {
		committed = func(error) {}
	}
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return ErrClosed
	}
	var dropped error
	if r.spool != nil && (r.down || r.spoolSent < r.spoolSize) {
		dropped = r.spoolLocked(line, committed)
	} else if len(r.mem) >= r.cfg.queue {
		dropped = fmt.Errorf("%w: %d events wait in memory", ErrSpoolFull, len(r.mem))
	} else {
		r.mem = append(r.mem, pendingEvent{line: line, cb: committed, at: time.Now()})
		r.queued++
	}
	r.mu.Unlock()
	if dropped != nil {
		if r.cfg.failClosed {
			return dropped
		}
		n := r.lost.Add(1)
		r.cfg.logger.Warn("agentaudit: event dropped", "id", ev.ID, "lost", n, "err", dropped)
		committed(dropped)
		return nil
	}
	r.signal()
	return nil
}

// spoolLocked appends line to the spool; in fail-closed mode the event counts as recorded once
// the write is synced.
func (r *Remote) spoolLocked(line []byte, cb func(error)) error {
	if r.spoolSize+int64(len(line))+1 > r.cfg.spoolMax {
		return fmt.Errorf("%w (%d of %d bytes)", ErrSpoolFull, r.spoolSize, r.cfg.spoolMax)
	}
	buf := make([]byte, 0, len(line)+1)
	buf = append(append(buf, line...), '\n')
	if _, err := r.spool.WriteAt(buf, r.spoolSize); err != nil {
		r.spool.Truncate(r.spoolSize)
		return fmt.Errorf("agentaudit: spool: %w", err)
	}
	if r.cfg.failClosed {
		if err := r.spool.Sync(); err != nil {
			return fmt.Errorf("agentaudit: spool: %w", err)
		}
	}
	r.spoolSize += int64(len(buf))
	r.queued++
	if r.cfg.failClosed {
		cb(nil) // durable: recorded, delivery follows
		cb = nil
	}
	r.spoolWait = append(r.spoolWait, spooledEvent{end: r.spoolSize, cb: cb})
	return nil
}

func (r *Remote) signal() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// AppendBatch implements Sink: it queues evs and waits for their delivery.
func (r *Remote) AppendBatch(ctx context.Context, evs []*event.Event) ([]error, error) {
	errs := make([]error, len(evs))
	var wg sync.WaitGroup
	for i, ev := range evs {
		wg.Add(1)
		if err := r.Enqueue(ctx, ev, func(err error) { errs[i] = err; wg.Done() }); err != nil {
			errs[i] = err
			wg.Done()
		}
	}
	wg.Wait()
	return errs, nil
}

// Flush returns once every event queued before it is delivered (stored or refused by the
// server, or dropped).
func (r *Remote) Flush(ctx context.Context) error {
	r.mu.Lock()
	target := r.queued
	r.hurry++
	r.mu.Unlock()
	r.signal()
	defer func() {
		r.mu.Lock()
		r.hurry--
		r.mu.Unlock()
	}()
	for {
		r.mu.Lock()
		done, ch := r.settled >= target, r.progress
		r.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Close waits up to the close timeout for delivery, then stops. Events still undelivered stay in
// the spool for the next Dial (without a spool they are lost); the error says how many.
func (r *Remote) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closing = true
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), r.cfg.closeTimeout)
		ferr := r.Flush(ctx)
		cancel()
		r.cancel()
		r.signal()
		<-r.senderEnd
		r.mu.Lock()
		defer r.mu.Unlock()
		if ferr != nil {
			left := r.queued - r.settled
			var spoolErr error
			if r.spool != nil {
				for _, p := range r.mem { // keep them for the next run
					spoolErr = errors.Join(spoolErr, r.spoolLocked(p.line, p.cb))
				}
				r.mem = nil
			}
			where := "lost"
			if r.spool != nil && spoolErr == nil {
				where = "kept in " + r.cfg.spoolPath
			}
			r.closeErr = fmt.Errorf("%w: %d events %s after waiting %v: %w", ErrUndelivered, left, where, r.cfg.closeTimeout, errors.Join(ferr, spoolErr))
			for _, p := range r.mem {
				p.cb(r.closeErr)
			}
			for _, s := range r.spoolWait {
				if s.cb != nil {
					s.cb(r.closeErr)
				}
			}
		}
		if r.spool != nil {
			r.saveOffsetLocked()
			r.closeErr = errors.Join(r.closeErr, r.spool.Close())
		}
		r.cfg.client.CloseIdleConnections()
	})
	return r.closeErr
}

// batch is what the sender posts: lines from the spool [from, to), or the first n of mem.
type batch struct {
	body      []byte
	lines     int
	fromSpool bool
	from, to  int64
	ends      []int64 // spool: the end offset of each line
}

// next waits for a batch to send; false means Close has given up.
func (r *Remote) next() (batch, bool) {
	for {
		r.mu.Lock()
		if r.ctx.Err() != nil {
			r.mu.Unlock()
			return batch{}, false
		}
		if r.spool != nil && r.spoolSent < r.spoolSize {
			b, err := r.readSpoolLocked()
			r.mu.Unlock()
			if err != nil {
				r.cfg.logger.Error("agentaudit: reading the spool", "err", err)
				if !r.sleep(time.Second) {
					return batch{}, false
				}
				continue
			}
			return b, true
		}
		var wait time.Duration = -1
		if n := len(r.mem); n > 0 {
			age := time.Since(r.mem[0].at)
			if n >= r.cfg.batch || r.cfg.age == 0 || age >= r.cfg.age || r.hurry > 0 || r.closing {
				b := batch{}
				var buf bytes.Buffer
				for _, p := range r.mem {
					if b.lines == r.cfg.batch || (b.lines > 0 && buf.Len()+len(p.line) >= r.cfg.batchBytes) {
						break
					}
					buf.Write(p.line)
					buf.WriteByte('\n')
					b.lines++
				}
				b.body = buf.Bytes()
				r.mu.Unlock()
				return b, true
			}
			wait = r.cfg.age - age
		}
		r.mu.Unlock()
		var timer <-chan time.Time
		var t *time.Timer
		if wait >= 0 {
			t = time.NewTimer(wait)
			timer = t.C
		}
		select {
		case <-r.wake:
		case <-timer:
		case <-r.ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
	}
}

func (r *Remote) readSpoolLocked() (batch, error) {
	end := min(r.spoolSize, r.spoolSent+int64(r.cfg.batchBytes))
	buf := make([]byte, end-r.spoolSent)
	if _, err := r.spool.ReadAt(buf, r.spoolSent); err != nil && !errors.Is(err, io.EOF) {
		return batch{}, err
	}
	b := batch{fromSpool: true, from: r.spoolSent}
	off := 0
	for b.lines < r.cfg.batch {
		i := bytes.IndexByte(buf[off:], '\n')
		if i < 0 {
			break
		}
		off += i + 1
		b.lines++
		b.ends = append(b.ends, r.spoolSent+int64(off))
	}
	if b.lines == 0 { // one line longer than batchBytes: send it alone
		rest := make([]byte, r.spoolSize-r.spoolSent)
		if _, err := r.spool.ReadAt(rest, r.spoolSent); err != nil && !errors.Is(err, io.EOF) {
			return batch{}, err
		}
		buf, off = rest, bytes.IndexByte(rest, '\n')+1
		b.lines, b.ends = 1, []int64{r.spoolSent + int64(off)}
	}
	b.body, b.to = buf[:off], r.spoolSent+int64(off)
	return b, nil
}

func (r *Remote) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.ctx.Done():
		return false
	}
}

// run is the sender: one batch at a time, in order, each until the server answers for it.
func (r *Remote) run() {
	defer close(r.senderEnd)
	failures := 0
	for {
		b, ok := r.next()
		if !ok {
			return
		}
		res, wait, err := r.post(r.ctx, b.body, b.lines)
		if r.ctx.Err() != nil {
			return // Close gave up: the batch stays queued (and spooled)
		}
		if wait > 0 {
			failures++
			if failures == 1 || failures%20 == 0 {
				r.cfg.logger.Warn("agentaudit: server unreachable, retrying", "attempts", failures, "err", err)
			}
			if !b.fromSpool {
				r.toSpool()
			}
			d := min(wait<<min(failures-1, 10), RemoteMaxWait)
			d = d/2 + rand.N(d/2+1) // jitter, so that many agents do not return at once
			if !r.sleep(d) {
				return
			}
			continue
		}
		if failures > 0 {
			r.cfg.logger.Info("agentaudit: server reachable again", "after_attempts", failures)
			failures = 0
		}
		if err != nil {
			n := r.lost.Add(int64(b.lines))
			r.cfg.logger.Error("agentaudit: batch refused for good, events lost", "events", b.lines, "lost", n, "err", err)
		}
		r.settle(b, res, err)
	}
}

// toSpool moves what waits in memory to the spool, in order, once the server is unreachable.
func (r *Remote) toSpool() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.spool == nil {
		return
	}
	r.down = true
	mem := r.mem
	r.mem = nil
	for i, p := range mem {
		r.queued-- // spoolLocked counts it again
		if err := r.spoolLocked(p.line, p.cb); err != nil {
			// Full: the rest stays in memory, still in order, after the spool.
			r.queued++
			r.mem = mem[i:]
			return
		}
	}
}

// settle hands out the server's answer for b and drops b from the queue.
func (r *Remote) settle(b batch, res []Result, err error) {
	errOf := func(i int) error {
		if err != nil {
			return err
		}
		return res[i].Err
	}
	var cbs []func()
	r.mu.Lock()
	if b.fromSpool {
		r.spoolSent = b.to
		for i, end := range b.ends {
			for len(r.spoolWait) > 0 && r.spoolWait[0].end <= end {
				if s := r.spoolWait[0]; s.end == end && s.cb != nil {
					e := errOf(i)
					cbs = append(cbs, func() { s.cb(e) })
				}
				r.spoolWait = r.spoolWait[1:]
			}
		}
		if r.spoolSent == r.spoolSize {
			r.spool.Truncate(0)
			if r.cfg.failClosed {
				r.spool.Sync()
			}
			r.spoolSize, r.spoolSent, r.down = 0, 0, false
		}
		r.saveOffsetLocked()
	} else {
		for i, p := range r.mem[:b.lines] {
			e := errOf(i)
			cbs = append(cbs, func() { p.cb(e) })
		}
		r.mem = r.mem[b.lines:]
	}
	r.settled += uint64(b.lines)
	close(r.progress)
	r.progress = make(chan struct{})
	r.mu.Unlock()
	for _, f := range cbs {
		f()
	}
}

func (r *Remote) saveOffsetLocked() {
	if r.spoolSent == 0 {
		os.Remove(r.cfg.spoolPath + ".offset")
		return
	}
	os.WriteFile(r.cfg.spoolPath+".offset", []byte(strconv.FormatInt(r.spoolSent, 10)), 0o600)
}

// Result is the server's answer for one event: its position in the log, or why it was refused.
type Result struct {
	ID        string
	Seq       int64
	Duplicate bool // stored before, with identical content
	Err       error
}

// Send posts evs as one batch now, past the queue, and returns one result per event; the error
// is set when nothing was stored. It tries RemoteAttempts times.
func (r *Remote) Send(ctx context.Context, evs []*event.Event) ([]Result, error) {
	var body bytes.Buffer
	for _, ev := range evs {
		b, err := ev.Canonical()
		if err != nil {
			return nil, err
		}
		body.Write(b)
		body.WriteByte('\n')
	}
	var lastErr error
	for attempt := 0; attempt < RemoteAttempts; attempt++ {
		res, wait, err := r.post(ctx, body.Bytes(), len(evs))
		if wait == 0 {
			return res, err
		}
		lastErr = err
		if attempt == RemoteAttempts-1 {
			break
		}
		select {
		case <-time.After(min(wait<<attempt, RemoteMaxWait)):
		case <-ctx.Done():
			return nil, errors.Join(ctx.Err(), lastErr)
		}
	}
	return nil, fmt.Errorf("after %d attempts: %w", RemoteAttempts, lastErr)
}

// gzipAbove: bodies larger than this are sent gzipped.
const gzipAbove = 1024

// post sends one attempt; wait > 0 means it may be retried after about that long.
func (r *Remote) post(ctx context.Context, body []byte, n int) ([]Result, time.Duration, error) {
	var rd io.Reader = bytes.NewReader(body)
	gz := len(body) > gzipAbove
	if gz {
		var zb bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&zb, gzip.BestSpeed)
		zw.Write(body)
		zw.Close()
		rd = &zb
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.endpoint, rd)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Content-Type", "application/x-ndjson")
	if gz {
		req.Header.Set("Content-Encoding", "gzip")
	}
	req.Header.Set("Authorization", "Bearer "+r.key)
	resp, err := r.cfg.client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		// The URL error names only the endpoint; the key is in a header and never in it.
		return nil, 100 * time.Millisecond, fmt.Errorf("%w: %w", ErrRemote, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, 100 * time.Millisecond, fmt.Errorf("%w: reading the answer: %w", ErrRemote, err)
	}
	var answer struct {
		Title, Detail string
		Results       []struct {
			Index     int
			ID        string
			Seq       *int64
			Duplicate bool
			Field     string
			Error     string
		}
	}
	jsonErr := json.Unmarshal(data, &answer)
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		wait := 200 * time.Millisecond
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			wait = time.Duration(s) * time.Second
		}
		return nil, wait, fmt.Errorf("%w: %s: %s %s", ErrRemote, resp.Status, answer.Title, answer.Detail)
	case resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusMultiStatus && resp.StatusCode != http.StatusUnprocessableEntity,
		jsonErr != nil:
		return nil, 0, fmt.Errorf("%w: %s: %s %s", ErrRemote, resp.Status, answer.Title, answer.Detail)
	case len(answer.Results) != n:
		return nil, 0, fmt.Errorf("%w: %s: %d results for %d events", ErrRemote, resp.Status, len(answer.Results), n)
	}
	out := make([]Result, n)
	for i, x := range answer.Results {
		if x.Index != i {
			return nil, 0, fmt.Errorf("%w: result %d answers event %d", ErrRemote, i, x.Index)
		}
		out[i] = Result{ID: x.ID, Duplicate: x.Duplicate}
		switch {
		case x.Error != "":
			out[i].Err = &RemoteEventError{Field: x.Field, Message: x.Error}
		case x.Seq == nil:
			return nil, 0, fmt.Errorf("%w: event %d neither stored nor refused", ErrRemote, i)
		default:
			out[i].Seq = *x.Seq
		}
	}
	return out, 0, nil
}

// RemoteEventError is the server's refusal of one event, naming the field where it can. It
// wraps event.ErrInvalid: the server refuses events for what they are, not for its own state.
type RemoteEventError struct {
	Field, Message string
}

func (e *RemoteEventError) Error() string { return e.Message }
func (e *RemoteEventError) Unwrap() error { return event.ErrInvalid }
