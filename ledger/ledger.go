// Package ledger owns the tamper-evident log: it sequences events, salts and hashes them into the
// leaves of an RFC 6962 Merkle tree (golang.org/x/mod/sumdb/tlog does the tree math), commits
// each group of events with its tree hashes in one durable store transaction, signs C2SP
// tlog-checkpoint notes (golang.org/x/mod/sumdb/note, Ed25519), and builds and checks proofs.
//
// leaf(seq) = RFC 6962 leaf hash of (salt ‖ canonical event bytes), with a random 16-byte salt per
// event so a purged payload cannot be confirmed by guessing it.
//
// Appends from many goroutines are group-committed: the caller's goroutine validates, sanitizes,
// canonicalizes and hashes its events; one writer goroutine takes whatever is waiting, assigns
// seqs, computes the tree hashes, commits one transaction with fsync, and only then answers each
// caller. Storage is the caller's through the Store interface; the ledger keeps only the tree's
// right frontier in memory.
//
// Several ledgers, in several processes, may append to one store that implements SharedStore
// (store/postgres): the writer then numbers each batch inside the store's transaction, from the
// size the store's locked tail gives, rebuilding its frontier from the stored hashes when another
// process appended; checkpoints are signed by whichever ledger holds the store's lease, of the
// stored tree. A commit that fails with store.ErrUnavailable may have landed: the writer asks the
// store before answering.
package ledger

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"runtime"
	"sync"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/store"
)

// Store is what the ledger needs from a storage driver. Append must commit the whole batch
// durably or nothing, and report an already stored id as store.ErrDuplicateID.
type Store interface {
	Append(ctx context.Context, b store.Batch) error
	Size(ctx context.Context) (int64, error)
	HashCount(ctx context.Context) (int64, error)
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	Entry(ctx context.Context, seq int64) (store.Entry, error)
	EntryByID(ctx context.Context, id string) (store.Entry, error)
	AddCheckpoint(ctx context.Context, c store.Checkpoint) error
	LatestCheckpoint(ctx context.Context) (store.Checkpoint, error)
}

// SharedStore is a Store that several ledgers, in several processes, append to at once
// (store/postgres). The ledger uses it when the store provides it:
//
//   - AppendAt runs build inside the store's transaction, with the log's tail locked: build
//     gets the log's size as that transaction sees it and a reader of its stored hashes, and
//     returns the batch that continues the log there. The ledger rebuilds its frontier from the
//     reader when another process has appended since its last commit.
//   - CheckpointLease runs sign for the one ledger that holds the lease (held false: another
//     does), with the log's size, the largest signed size (-1: none) and the stored hashes; the
//     note sign returns (nil: none) is stored in the same transaction. A checkpoint is always
//     of the store's own tree, so two are never inconsistent whichever ledger signs them.
type SharedStore interface {
	Store
	AppendAt(ctx context.Context, build func(size int64, hashes tlog.HashReader) (store.Batch, error)) error
	CheckpointLease(ctx context.Context, sign func(size, signed int64, hashes tlog.HashReader) ([]byte, error)) (held bool, err error)
}

// Sanitizer removes secrets and PII from an event before it is hashed or written.
type Sanitizer interface {
	Sanitize(ev *event.Event) error
}

// Classifier decides an event's retention at ingest: the class and until when the body must be
// kept. It runs in the caller's goroutine on the validated event, whose RecordedAt is set; an
// error refuses the event (a client asking for an unknown class, say).
type Classifier interface {
	Classify(ev *event.Event) (class string, until time.Time, err error)
}

// Defaults for Options.
const (
	DefaultMaxEventBytes      = 1 << 20
	DefaultMaxBatch           = 4096
	DefaultQueueSize          = 4096
	DefaultCheckpointInterval = time.Second
	SaltSize                  = 16
)

// Options configure Open. Zero values take the defaults above; Open refuses negative ones, naming
// the option.
type Options struct {
	// MaxEventBytes limits one event's canonical size.
	MaxEventBytes int
	// MaxBatch limits the events committed in one transaction.
	MaxBatch int
	// QueueSize limits the append requests waiting for the writer; Append blocks (TryAppend
	// refuses with ErrBackpressure) when it is full.
	QueueSize int
	// CheckpointInterval is how often a new checkpoint is signed while the tree grows.
	CheckpointInterval time.Duration
	// Sanitizer runs on every event before validation and hashing. It is required: nothing
	// reaches the log unsanitized unless a test says so with Unsanitized.
	Sanitizer Sanitizer
	// Retention, when set, gives every event its retention_class and retain_until, which are
	// then committed with it; without it the fields are stored as given.
	Retention Classifier
	// Now is the clock for recorded_at and defaulted times (tests set it).
	Now func() time.Time
	// Logger receives checkpoint failures; nil discards them.
	Logger *slog.Logger
	// OnCommit, when set, is told of every commit: how many events, how long it took, its error.
	// It runs on the writer goroutine and must be quick (a metrics update).
	OnCommit func(events int, d time.Duration, err error)
	// Committed, when set, is given the entries of every durable commit, in seq order, whichever
	// door they came by (Submit and AppendSystem alike), with the committed events (events[i] is
	// entries[i]'s, as its body encodes it), on the writer goroutine right after the commit and
	// before any caller is answered. It must not block and must not write to either: a consumer
	// that can fall behind (the alert engine) copies what it keeps into a queue and, when the
	// queue is full, catches up from the store.
	Committed func(entries []store.Entry, events []*event.Event)
}

// Unsanitized is the explicit opt-out of sanitization, for tests of the ledger itself: events are
// stored exactly as given.
var Unsanitized Sanitizer = unsanitized{}

type unsanitized struct{}

func (unsanitized) Sanitize(*event.Event) error { return nil }

// ErrOption: an Options value is out of range; the error names the option.
var ErrOption = errors.New("invalid ledger option")

// withDefaults checks o and fills in the defaults for zero values.
func (o Options) withDefaults() (Options, error) {
	for _, c := range []struct {
		name string
		v    int64
	}{
		{"MaxEventBytes", int64(o.MaxEventBytes)}, {"MaxBatch", int64(o.MaxBatch)},
		{"QueueSize", int64(o.QueueSize)}, {"CheckpointInterval", int64(o.CheckpointInterval)},
	} {
		if c.v < 0 {
			return o, fmt.Errorf("%w: %s is %d; want a positive value, or 0 for the default", ErrOption, c.name, c.v)
		}
	}
	if o.Sanitizer == nil {
		return o, fmt.Errorf("%w: Sanitizer is required (ledger.Unsanitized opts out, for tests)", ErrOption)
	}
	if o.MaxEventBytes == 0 {
		o.MaxEventBytes = DefaultMaxEventBytes
	}
	if o.MaxBatch == 0 {
		o.MaxBatch = DefaultMaxBatch
	}
	if o.QueueSize == 0 {
		o.QueueSize = DefaultQueueSize
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = DefaultCheckpointInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// Errors callers act on.
var (
	// ErrClosed: the ledger was closed.
	ErrClosed = errors.New("ledger closed")
	// ErrConflict: the event's id is already stored with different content.
	ErrConflict = errors.New("event id already stored with different content")
	// ErrTooLarge: the event's canonical form exceeds MaxEventBytes. It wraps event.ErrInvalid.
	ErrTooLarge = fmt.Errorf("%w: event too large", event.ErrInvalid)
	// ErrBackpressure: the append queue is full; retry later.
	ErrBackpressure = errors.New("append queue full")
	// ErrTampered: the store does not match its own signed checkpoints; the ledger refuses to
	// sign anything more. Run Verify for the details.
	ErrTampered = errors.New("store does not match its signed checkpoints")
)

// Receipt acknowledges a durably committed event.
type Receipt struct {
	Seq       int64
	ID        string
	Leaf      tlog.Hash
	Duplicate bool // the id was already stored with identical content; Seq is the stored one
}

// Result is the outcome of one event of a batch: a receipt or an error.
type Result struct {
	Receipt
	Err error
}

// Ledger is an open log. It is safe for concurrent use.
type Ledger struct {
	st       Store
	signer   note.Signer
	verifier note.Verifier
	origin   string
	opts     Options

	queue   chan *request // in log order, for the writer
	prep    chan *request // the same requests, for the preparers
	stop    chan struct{} // closed by Close: the writer drains and exits
	done    chan struct{} // closed when the writer and checkpointer have exited
	closeMu sync.RWMutex  // held for reading while enqueueing, so Close sees every queued request
	closed  bool

	// The writer owns the frontier; head is what it publishes after each commit.
	front    *frontier
	mu       sync.Mutex
	head     tlog.Tree
	signed   int64     // size of the latest stored checkpoint
	signedAt time.Time // when this process last stored one
	cpMu     sync.Mutex
}

type item struct {
	ev            *event.Event
	body          []byte
	salt          []byte
	leaf          tlog.Hash
	cols          store.Columns // the query columns of body, for drivers that store them
	timeDefaulted bool
	failed        bool // preparation failed; res.Err says why
	res           *Result
}

// request is one caller's group of items; committed (may be nil) learns the outcome of their
// commit on the writer goroutine. results is what committed is given, complete by then. ready is
// closed once a preparer has sanitized, encoded and hashed every item.
type request struct {
	items     []*item
	results   []Result
	committed func([]Result, error)
	ready     chan struct{}
	// Storage for the common single-event request (an SDK event), saving three allocations.
	one struct {
		its   [1]item
		res   [1]Result
		items [1]*item
	}
}

// Open opens the ledger on st. The signer's name is the checkpoint origin; verifier must be the
// signer's public key: the ledger checks the store against its latest checkpoint before it will
// sign another, and refuses (ErrTampered) if they disagree.
func Open(ctx context.Context, st Store, signer note.Signer, verifier note.Verifier, opts Options) (*Ledger, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if signer == nil || verifier == nil {
		return nil, errors.New("ledger: a signer and its verifier are required")
	}
	if signer.Name() != verifier.Name() || signer.KeyHash() != verifier.KeyHash() {
		return nil, errors.New("ledger: the verifier key is not the signer's")
	}
	l := &Ledger{
		st: st, signer: signer, verifier: verifier, origin: signer.Name(), opts: opts,
		queue: make(chan *request, opts.QueueSize), prep: make(chan *request, opts.QueueSize),
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	if err := l.load(ctx, verifier); err != nil {
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); l.writer() }()
	go func() { defer wg.Done(); l.checkpointer() }()
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() { defer wg.Done(); l.preparer() }()
	}
	go func() { wg.Wait(); close(l.done) }()
	return l, nil
}

// load reads the tree's frontier and checks the store against its latest signed checkpoint.
func (l *Ledger) load(ctx context.Context, verifier note.Verifier) error {
	size, hc, cp, err := l.readTail(ctx)
	if err != nil {
		return err
	}
	if want := tlog.StoredHashCount(size); hc != want {
		return fmt.Errorf("ledger: %d events need %d tree hashes, the store has %d: %w", size, want, hc, ErrTampered)
	}
	idx := frontierIndexes(size)
	hs, err := l.st.ReadHashes(ctx, idx)
	if err != nil {
		return err
	}
	l.front = newFrontier(size, nil)
	for i, x := range idx {
		l.front.m[x] = hs[i]
	}
	root, err := l.front.root()
	if err != nil {
		return err
	}
	l.head = tlog.Tree{N: size, Hash: root}

	if cp == nil {
		return nil
	}
	c, err := OpenCheckpoint(cp.Note, verifier)
	if err != nil {
		return fmt.Errorf("ledger: latest stored checkpoint: %w", errors.Join(ErrTampered, err))
	}
	if c.Origin != l.origin {
		return fmt.Errorf("ledger: stored checkpoint origin %q, signer %q: %w", c.Origin, l.origin, ErrTampered)
	}
	if c.N > size {
		return fmt.Errorf("ledger: checkpoint signed for %d events, the store has %d: %w", c.N, size, ErrTampered)
	}
	old, err := tlog.TreeHash(c.N, l.storeReader(ctx))
	if err != nil {
		return err
	}
	if old != c.Hash {
		return fmt.Errorf("ledger: tree at size %d does not match its signed checkpoint: %w", c.N, ErrTampered)
	}
	l.signed = c.N
	return nil
}

// readTail reads the log's size, its number of stored tree hashes and its latest checkpoint (nil:
// none) as of one instant: for a shared store, under its tail lock (an empty AppendAt), as other
// processes append and sign meanwhile (none can sign past the locked size).
func (l *Ledger) readTail(ctx context.Context) (size, hashes int64, cp *store.Checkpoint, err error) {
	read := func() error {
		if size, err = l.st.Size(ctx); err != nil {
			return err
		}
		if hashes, err = l.st.HashCount(ctx); err != nil {
			return err
		}
		c, err := l.st.LatestCheckpoint(ctx)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		cp = &c
		return err
	}
	if sh, ok := l.st.(SharedStore); ok {
		err = sh.AppendAt(ctx, func(int64, tlog.HashReader) (store.Batch, error) { return store.Batch{}, read() })
		return size, hashes, cp, err
	}
	return size, hashes, cp, read()
}

func (l *Ledger) storeReader(ctx context.Context) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return l.st.ReadHashes(ctx, idx) })
}

// Head returns the committed tree size and root.
func (l *Ledger) Head() tlog.Tree {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.head
}

// QueueLen returns how many append requests wait for the writer.
func (l *Ledger) QueueLen() int { return len(l.queue) }

// LastCheckpoint returns when this process last signed a checkpoint (zero if it has not).
func (l *Ledger) LastCheckpoint() time.Time {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	return l.signedAt
}

// Origin returns the checkpoint origin (the signer's name).
func (l *Ledger) Origin() string { return l.origin }

// Append records one event and returns after it is durably committed.
func (l *Ledger) Append(ctx context.Context, ev *event.Event) (Receipt, error) {
	rs, err := l.AppendBatch(ctx, []*event.Event{ev})
	if err != nil {
		return Receipt{}, err
	}
	return rs[0].Receipt, rs[0].Err
}

// AppendBatch records events and returns after they are durably committed. Each event succeeds
// or fails on its own (Result.Err names the field for invalid ones); the returned error is set
// only when nothing could be committed (store failure, ctx done, ledger closed).
// The events are normalized and sanitized in place.
func (l *Ledger) AppendBatch(ctx context.Context, evs []*event.Event) ([]Result, error) {
	return l.appendBatch(ctx, evs, true)
}

// TryAppendBatch is AppendBatch that refuses with ErrBackpressure instead of waiting for room in
// the queue, for servers that answer 429/503.
func (l *Ledger) TryAppendBatch(ctx context.Context, evs []*event.Event) ([]Result, error) {
	return l.appendBatch(ctx, evs, false)
}

func (l *Ledger) appendBatch(ctx context.Context, evs []*event.Event, wait bool) ([]Result, error) {
	done := make(chan error, 1)
	var res []Result
	refused, err := l.Submit(ctx, evs, wait, func(r []Result, err error) { res = r; done <- err })
	if err != nil {
		return nil, err
	}
	if queued(refused, len(evs)) == 0 {
		res = make([]Result, len(evs))
		for i, err := range refused {
			res[i].Err = err
		}
		return res, nil
	}
	// Once queued, the request is committed or failed by the writer; waiting for it does not
	// depend on ctx, so an acknowledged-but-abandoned event is never reported as lost.
	if err := <-done; err != nil {
		return nil, err
	}
	return res, nil
}

// queued counts the events of n that Submit did not refuse.
func queued(refused []error, n int) int {
	for _, err := range refused {
		if err != nil {
			n--
		}
	}
	return n
}

// Submit is the ledger's one way in. In the caller's goroutine it completes each event (id,
// time) and validates it, the one validation every door gets; it queues those that pass behind
// everything queued before and returns without waiting: preparers sanitize, canonicalize, salt
// and hash them in parallel, and the writer commits them in queue order. refused is nil when
// every event was queued; otherwise it holds, at each refused event's index, why (the same error
// the results will carry). Preparation can still refuse an event (malformed JSON in a payload,
// over MaxEventBytes): its result says so. When at least one event was queued, committed (if not
// nil) is called exactly once with the complete results, on the writer goroutine, after the
// durable commit (err nil) or its failure; it must not block. When every event was refused, or on
// an error return (nothing queued: ctx done, ErrClosed, or ErrBackpressure when wait is false and
// the queue is full), it is not called.
func (l *Ledger) Submit(ctx context.Context, evs []*event.Event, wait bool, committed func([]Result, error)) (refused []error, err error) {
	return l.submit(ctx, evs, wait, false, committed)
}

// AppendSystem records events that agentaudit writes about the log itself (the system kinds:
// purges, holds, alerts, reviews, with their Record), which Submit refuses from clients, and
// returns after they are durably committed. The retention, alert and review packages call it.
func (l *Ledger) AppendSystem(ctx context.Context, evs []*event.Event) ([]Result, error) {
	done := make(chan error, 1)
	var res []Result
	refused, err := l.submit(ctx, evs, true, true, func(r []Result, err error) { res = r; done <- err })
	if err != nil {
		return nil, err
	}
	if queued(refused, len(evs)) == 0 {
		res = make([]Result, len(evs))
		for i, err := range refused {
			res[i].Err = err
		}
		return res, nil
	}
	if err := <-done; err != nil {
		return nil, err
	}
	return res, nil
}

func (l *Ledger) submit(ctx context.Context, evs []*event.Event, wait, system bool, committed func([]Result, error)) (refused []error, err error) {
	req := &request{committed: committed, ready: make(chan struct{})}
	var its []item
	if len(evs) == 1 {
		req.results, req.items, its = req.one.res[:], req.one.items[:0], req.one.its[:]
	} else {
		req.results, req.items, its = make([]Result, len(evs)), make([]*item, 0, len(evs)), make([]item, len(evs))
	}
	now := l.opts.Now().UTC()
	for i, ev := range evs {
		it := &its[i]
		if err := l.check(it, ev, now, system); err != nil {
			if refused == nil {
				refused = make([]error, len(evs))
			}
			req.results[i].Err, refused[i] = err, err
			continue
		}
		it.res = &req.results[i]
		req.items = append(req.items, it)
	}
	if len(req.items) == 0 {
		return refused, nil
	}
	if err := l.enqueue(ctx, req, wait); err != nil {
		return nil, err
	}
	return refused, nil
}

// Flush returns once everything queued before it is committed (or failed).
func (l *Ledger) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	req := &request{committed: func(_ []Result, err error) { done <- err }, ready: make(chan struct{})}
	if err := l.enqueue(ctx, req, true); err != nil {
		return err
	}
	<-done
	return nil
}

func (l *Ledger) enqueue(ctx context.Context, req *request, wait bool) error {
	l.closeMu.RLock()
	defer l.closeMu.RUnlock()
	if l.closed {
		return ErrClosed
	}
	if !wait {
		select {
		case l.queue <- req:
		default:
			return ErrBackpressure
		}
	} else {
		select {
		case l.queue <- req:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// prep has the queue's capacity and preparers always drain it, so this waits at most for one
	// of them to take a request.
	l.prep <- req
	return nil
}

// check does the caller's part: complete the event, validate it, refuse what only agentaudit may
// write unless system says it does, and decide its retention.
func (l *Ledger) check(it *item, ev *event.Event, now time.Time, system bool) error {
	if ev == nil {
		return fmt.Errorf("%w: nil event", event.ErrInvalid)
	}
	*it = item{ev: ev, timeDefaulted: ev.Time.IsZero()}
	if !system {
		if err := ev.CheckClient(); err != nil {
			return err
		}
	}
	if err := ev.Normalize(now); err != nil {
		return err
	}
	if err := ev.Validate(); err != nil {
		return err
	}
	ev.RecordedAt = now
	if l.opts.Retention != nil {
		class, until, err := l.opts.Retention.Classify(ev)
		if err != nil {
			return err
		}
		ev.RetentionClass, ev.RetainUntil = class, until.UTC()
	}
	return nil
}

// preparer prepares queued requests until Close: the work that may run in parallel.
func (l *Ledger) preparer() {
	var cols store.ColumnReader
	for req := range l.prep {
		for _, it := range req.items {
			if err := l.prepare(it, &cols); err != nil {
				it.failed, it.res.Err = true, err
			}
		}
		close(req.ready)
	}
}

// prepare sanitizes, canonicalizes, salts and hashes a checked item. The sanitizer keeps a valid
// event valid (redact's tests hold it to that), so validation need not run again.
func (l *Ledger) prepare(it *item, cols *store.ColumnReader) error {
	if err := l.opts.Sanitizer.Sanitize(it.ev); err != nil {
		return fmt.Errorf("sanitize: %w", err)
	}
	body, err := it.ev.Canonical()
	if err != nil {
		return err
	}
	if len(body) > l.opts.MaxEventBytes {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(body), l.opts.MaxEventBytes)
	}
	// Read back from the bytes committed, not taken from the event: the one derivation that
	// verification repeats.
	if it.cols, err = cols.Of(body); err != nil {
		return fmt.Errorf("ledger: query columns: %w", err)
	}
	it.body = body
	it.salt = make([]byte, SaltSize)
	rand.Read(it.salt)
	it.leaf = LeafHash(it.salt, body)
	return nil
}

// LeafHash is the RFC 6962 leaf hash of salt ‖ body: tlog.RecordHash of their concatenation,
// computed without building it (a test pins the equality).
func LeafHash(salt, body []byte) tlog.Hash {
	return leafHashWith(sha256.New(), salt, body)
}

// leafHashWith is LeafHash with a SHA-256 state the caller reuses (verification hashes millions).
func leafHashWith(h hash.Hash, salt, body []byte) tlog.Hash {
	h.Reset()
	h.Write([]byte{0x00}) // RFC 6962 leaf prefix
	h.Write(salt)
	h.Write(body)
	var out tlog.Hash
	h.Sum(out[:0])
	return out
}

// writer is the one goroutine that commits.
func (l *Ledger) writer() {
	for {
		var first *request
		select {
		case first = <-l.queue:
		case <-l.stop:
			// Drain what was queued before Close.
			for {
				select {
				case r := <-l.queue:
					l.commitRequests([]*request{r})
				default:
					return
				}
			}
		}
		reqs := []*request{first}
		n := len(first.items)
	gather:
		for n < l.opts.MaxBatch {
			select {
			case r := <-l.queue:
				reqs = append(reqs, r)
				n += len(r.items)
			default:
				break gather
			}
		}
		l.commitRequests(reqs)
	}
}

func (l *Ledger) commitRequests(reqs []*request) {
	var items []*item
	for _, r := range reqs {
		<-r.ready
		for _, it := range r.items {
			if !it.failed {
				items = append(items, it)
			}
		}
	}
	var err error
	if len(items) > 0 { // a Flush alone commits nothing
		start := time.Now()
		err = l.commit(context.Background(), items)
		if l.opts.OnCommit != nil {
			l.opts.OnCommit(len(items), time.Since(start), err)
		}
	}
	for _, r := range reqs {
		if r.committed != nil {
			r.committed(r.results, err)
		}
	}
}

// commit appends items in one transaction. Items whose id is already stored (or repeated in the
// batch) become duplicates or conflicts and the rest is committed.
func (l *Ledger) commit(ctx context.Context, items []*item) error {
	items, dups := dedupeBatch(items)
	defer func() {
		for _, d := range dups { // repeats share the receipt of their first occurrence
			if d[1].res.Err != nil {
				d[0].res.Err = d[1].res.Err
			} else {
				*d[0].res = Result{Receipt: d[1].res.Receipt}
				d[0].res.Duplicate = true
			}
		}
	}()
	for attempt := 0; ; attempt++ {
		if len(items) == 0 {
			return nil
		}
		err := l.tryCommit(ctx, items)
		if !errors.Is(err, store.ErrDuplicateID) || attempt > 0 {
			return err
		}
		// Some ids are stored already: resolve them one by one, then commit the rest.
		if items, err = l.resolveStored(ctx, items); err != nil {
			return err
		}
	}
}

// dedupeBatch takes ids repeated within one batch out of it: a repeat with the same content is
// returned in dups with its first occurrence, to share its receipt; one with other content fails.
func dedupeBatch(items []*item) (out []*item, dups [][2]*item) {
	seen := make(map[string]*item, len(items))
	for _, it := range items {
		if first, ok := seen[it.ev.ID]; ok {
			if sameContent(first.ev, it) {
				dups = append(dups, [2]*item{it, first})
			} else {
				it.res.Err = fmt.Errorf("event %s: %w", it.ev.ID, ErrConflict)
			}
			continue
		}
		seen[it.ev.ID] = it
		out = append(out, it)
	}
	return out, dups
}

func (l *Ledger) resolveStored(ctx context.Context, items []*item) ([]*item, error) {
	var rest []*item
	for _, it := range items {
		e, err := l.st.EntryByID(ctx, it.ev.ID)
		if errors.Is(err, store.ErrNotFound) {
			rest = append(rest, it)
			continue
		}
		if err != nil {
			return nil, err
		}
		if e.Purged() {
			it.res.Err = fmt.Errorf("event %s (stored at seq %d, purged by seq %d): %w", it.ev.ID, e.Seq, e.PurgedBy, ErrConflict)
			continue
		}
		stored, err := event.ParseStored(e.Body)
		if err != nil {
			return nil, fmt.Errorf("ledger: stored event %d: %w", e.Seq, err)
		}
		if sameContent(stored, it) {
			*it.res = Result{Receipt: Receipt{Seq: e.Seq, ID: e.ID, Leaf: LeafHash(e.Salt, e.Body), Duplicate: true}}
		} else {
			it.res.Err = fmt.Errorf("event %s (stored at seq %d): %w", it.ev.ID, e.Seq, ErrConflict)
		}
	}
	return rest, nil
}

// sameContent reports whether it carries the same event as stored, ignoring what the ledger
// decides (recorded_at, and the retention derived from it and the policy) and, when the retry
// left it out, the defaulted time.
func sameContent(stored *event.Event, it *item) bool {
	a, b := *stored, *it.ev
	a.RecordedAt, b.RecordedAt = time.Time{}, time.Time{}
	a.RetainUntil, b.RetainUntil = time.Time{}, time.Time{}
	a.RetentionClass, b.RetentionClass = "", ""
	if it.timeDefaulted {
		b.Time = a.Time
	}
	ca, err1 := a.Canonical()
	cb, err2 := b.Canonical()
	return err1 == nil && err2 == nil && bytes.Equal(ca, cb)
}

func (l *Ledger) tryCommit(ctx context.Context, items []*item) error {
	var (
		f    *frontier
		b    store.Batch
		root tlog.Hash
	)
	// build grows a copy of the frontier from size: it replaces the writer's only once the batch
	// is committed.
	build := func(size int64, hashes tlog.HashReader) (store.Batch, error) {
		var err error
		if f, err = l.frontierAt(size, hashes); err != nil {
			return store.Batch{}, err
		}
		b = store.Batch{Entries: make([]store.Entry, len(items)), FirstHash: tlog.StoredHashIndex(0, size)}
		for i, it := range items {
			hs, err := f.add(it.leaf)
			if err != nil {
				return store.Batch{}, err
			}
			b.Hashes = append(b.Hashes, hs...)
			b.Entries[i] = store.Entry{Seq: size + int64(i), ID: it.ev.ID, Salt: it.salt, Body: it.body, Cols: &it.cols}
		}
		root, err = f.root()
		return b, err
	}
	var err error
	if sh, ok := l.st.(SharedStore); ok {
		err = sh.AppendAt(ctx, build)
	} else if _, err = build(l.front.n, nil); err == nil {
		err = l.st.Append(ctx, b)
	}
	if errors.Is(err, store.ErrUnavailable) {
		// The commit's outcome may be unknown (the connection died around COMMIT): find out
		// before answering, so a batch that landed is acknowledged and never appended twice.
		var landed bool
		if landed, err = l.landed(ctx, items, err); landed {
			if err := l.resync(ctx); err != nil {
				// A shared store's next commit rebuilds the frontier; SQLite never gets here.
				l.opts.Logger.Warn("ledger: frontier not reloaded after a commit of unknown outcome", "err", err)
			}
			return nil
		}
	}
	if err != nil {
		return err
	}
	f.prune()
	l.front = f
	l.setHead(tlog.Tree{N: f.n, Hash: root})
	l.committed(b.Entries, items)
	for i, it := range items {
		*it.res = Result{Receipt: Receipt{Seq: b.Entries[0].Seq + int64(i), ID: it.ev.ID, Leaf: it.leaf}}
	}
	return nil
}

// committed tells Options.Committed of a commit.
func (l *Ledger) committed(entries []store.Entry, items []*item) {
	if l.opts.Committed == nil {
		return
	}
	evs := make([]*event.Event, len(items))
	for i, it := range items {
		evs[i] = it.ev
	}
	l.opts.Committed(entries, evs)
}

// setHead publishes a committed tree; it never moves back (another process's commits, seen
// later, only move it on).
func (l *Ledger) setHead(t tlog.Tree) {
	l.mu.Lock()
	if t.N >= l.head.N {
		l.head = t
	}
	l.mu.Unlock()
}

// frontierAt returns a copy of the writer's frontier when the log has size entries, else the
// frontier of size read through hashes (another process appended since this one's last commit).
func (l *Ledger) frontierAt(size int64, hashes tlog.HashReader) (*frontier, error) {
	if size == l.front.n {
		return l.front.clone(), nil
	}
	if hashes == nil {
		return nil, fmt.Errorf("ledger: the log has %d entries, this ledger appended up to %d: %w", size, l.front.n, store.ErrOutOfOrder)
	}
	idx := frontierIndexes(size)
	hs, err := hashes.ReadHashes(idx)
	if err != nil {
		return nil, fmt.Errorf("ledger: frontier of %d entries: %w", size, err)
	}
	f := newFrontier(size, nil)
	for i, x := range idx {
		f.m[x] = hs[i]
	}
	return f, nil
}

// landed finds out whether a batch whose commit failed with commitErr was committed all the
// same (the database went away around COMMIT), asking the store, which may take a while to
// come back, for its first event by id: its salt, random per attempt, tells this attempt's row
// from any other. It fills in the items' receipts when it was. It answers commitErr while the
// store cannot tell.
func (l *Ledger) landed(ctx context.Context, items []*item, commitErr error) (bool, error) {
	wait := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		e, err := l.st.EntryByID(ctx, items[0].ev.ID)
		switch {
		case errors.Is(err, store.ErrNotFound):
			return false, commitErr // nothing was written: the callers may retry
		case err == nil:
			if !bytes.Equal(e.Salt, items[0].salt) {
				return false, commitErr
			}
			entries := make([]store.Entry, len(items))
			for i, it := range items {
				entries[i] = store.Entry{Seq: e.Seq + int64(i), ID: it.ev.ID, Salt: it.salt, Body: it.body}
				*it.res = Result{Receipt: Receipt{Seq: e.Seq + int64(i), ID: it.ev.ID, Leaf: it.leaf}}
			}
			l.committed(entries, items)
			return true, nil
		case attempt >= 3 || !errors.Is(err, store.ErrUnavailable):
			return false, errors.Join(commitErr, err)
		}
		time.Sleep(wait)
		wait *= 2
	}
}

// resync reloads the writer's frontier and head from the store, after a commit whose outcome
// the writer learned only by asking.
func (l *Ledger) resync(ctx context.Context) error {
	size, err := l.st.Size(ctx)
	if err != nil {
		return err
	}
	f, err := l.frontierAt(size, l.storeReader(ctx))
	if err != nil {
		return err
	}
	root, err := f.root()
	if err != nil {
		return err
	}
	l.front = f
	l.setHead(tlog.Tree{N: size, Hash: root})
	return nil
}

// checkpointer signs a checkpoint every interval while the tree grows.
func (l *Ledger) checkpointer() {
	t := time.NewTicker(l.opts.CheckpointInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if _, err := l.SignCheckpoint(context.Background()); err != nil {
				l.opts.Logger.Error("checkpoint failed", "err", err)
			}
		case <-l.stop:
			return
		}
	}
}

// SignCheckpoint signs and stores a checkpoint of the committed tree if it grew since the last
// one, and returns the latest signed checkpoint note.
func (l *Ledger) SignCheckpoint(ctx context.Context) ([]byte, error) {
	l.cpMu.Lock()
	defer l.cpMu.Unlock()
	if sh, ok := l.st.(SharedStore); ok {
		return l.signShared(ctx, sh)
	}
	head := l.Head()
	if head.N > l.signed || head.N == 0 && l.signed == 0 {
		if head.N == 0 {
			if _, err := l.st.LatestCheckpoint(ctx); err == nil {
				return l.latestNote(ctx)
			}
		}
		msg, err := note.Sign(&note.Note{Text: FormatCheckpoint(l.origin, head)}, l.signer)
		if err != nil {
			return nil, fmt.Errorf("ledger: sign checkpoint: %w", err)
		}
		if err := l.st.AddCheckpoint(ctx, store.Checkpoint{Size: head.N, Note: msg}); err != nil {
			return nil, err
		}
		l.signed, l.signedAt = head.N, time.Now()
		return msg, nil
	}
	return l.latestNote(ctx)
}

// leaseTries bounds how often signShared asks for a lease another process holds: a holder
// keeps it for a few queries, so a proof waiting for a checkpoint gets one within
// milliseconds.
const leaseTries = 20

// signShared signs the store's tree, not this process's: under the checkpoint lease it reads the
// log's size and root from the stored hashes and, when the tree grew past the latest signed
// checkpoint, checks that checkpoint's consistency with it before signing. A rewritten stored
// hash is refused (ErrTampered) rather than signed. When another process holds the lease, it
// signs instead of this one.
func (l *Ledger) signShared(ctx context.Context, sh SharedStore) ([]byte, error) {
	var msg []byte
	var size int64
	sign := func(n, signed int64, hashes tlog.HashReader) ([]byte, error) {
		if n <= signed {
			return nil, nil
		}
		root, err := tlog.TreeHash(n, hashes)
		if err != nil {
			return nil, err
		}
		if signed >= 0 {
			if err := l.checkConsistent(ctx, tlog.Tree{N: n, Hash: root}, hashes); err != nil {
				return nil, err
			}
		}
		if msg, err = note.Sign(&note.Note{Text: FormatCheckpoint(l.origin, tlog.Tree{N: n, Hash: root})}, l.signer); err != nil {
			return nil, fmt.Errorf("ledger: sign checkpoint: %w", err)
		}
		size = n
		return msg, nil
	}
	for try := 0; ; try++ {
		held, err := sh.CheckpointLease(ctx, sign)
		if err != nil {
			return nil, err
		}
		if held || try == leaseTries {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if msg == nil {
		return l.latestNote(ctx)
	}
	l.signed, l.signedAt = size, time.Now()
	return msg, nil
}

// checkConsistent checks that the stored tree t extends the latest signed checkpoint.
func (l *Ledger) checkConsistent(ctx context.Context, t tlog.Tree, hashes tlog.HashReader) error {
	cp, err := l.st.LatestCheckpoint(ctx)
	if err != nil {
		return err
	}
	c, err := OpenCheckpoint(cp.Note, l.verifier)
	if err != nil {
		return fmt.Errorf("ledger: latest stored checkpoint: %w", errors.Join(ErrTampered, err))
	}
	if c.N > t.N {
		return fmt.Errorf("ledger: checkpoint signed for %d events, the store has %d: %w", c.N, t.N, ErrTampered)
	}
	if c.N == 0 { // every tree extends the empty one
		return nil
	}
	proof, err := tlog.ProveTree(t.N, c.N, hashes)
	if err != nil {
		return err
	}
	if err := tlog.CheckTree(proof, t.N, t.Hash, c.N, c.Hash); err != nil {
		return fmt.Errorf("ledger: the stored tree of %d events does not extend the checkpoint of %d: %w", t.N, c.N, errors.Join(ErrTampered, err))
	}
	return nil
}

func (l *Ledger) latestNote(ctx context.Context) ([]byte, error) {
	cp, err := l.st.LatestCheckpoint(ctx)
	if err != nil {
		return nil, err
	}
	return cp.Note, nil
}

// Close stops accepting appends, commits what is queued, signs a final checkpoint and stops.
// It does not close the store.
func (l *Ledger) Close() error {
	l.closeMu.Lock()
	if l.closed {
		l.closeMu.Unlock()
		return nil
	}
	l.closed = true
	close(l.stop)
	close(l.prep) // no request can be queued any more; the preparers finish what is there
	l.closeMu.Unlock()
	<-l.done
	_, err := l.SignCheckpoint(context.Background())
	return err
}
