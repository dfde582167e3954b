package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/bits"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/store"
)

// VerifyStore is what a full verification reads.
type VerifyStore interface {
	ScanEntries(ctx context.Context, from int64, fn func(store.Entry) error) error
	ScanHashes(ctx context.Context, from int64, fn func(idx int64, h tlog.Hash) error) error
	Checkpoints(ctx context.Context) ([]store.Checkpoint, error)
}

// ProblemKind classifies what verification found.
type ProblemKind string

// The kinds of problem.
const (
	ProblemModified     ProblemKind = "modified"      // the event's content differs from what was committed
	ProblemMissing      ProblemKind = "missing"       // a committed event is gone
	ProblemInserted     ProblemKind = "inserted"      // an event that was never committed
	ProblemMoved        ProblemKind = "moved"         // a committed event stands at another seq (swapped, reordered, shifted)
	ProblemTruncated    ProblemKind = "truncated"     // the log is shorter than a signed checkpoint
	ProblemTreeHash     ProblemKind = "tree_hash"     // a stored tree hash was changed, added or removed
	ProblemSignature    ProblemKind = "signature"     // a checkpoint's signature does not verify with the key
	ProblemRoot         ProblemKind = "root"          // the events do not reproduce a signed root
	ProblemInconsistent ProblemKind = "inconsistent"  // a saved checkpoint is not a prefix of the log
	ProblemNoCheckpoint ProblemKind = "no_checkpoint" // nothing in the log is signed by the key
)

// Problem is one finding. Seq is -1 when it is not about one event.
type Problem struct {
	Kind     ProblemKind `json:"kind"`
	Seq      int64       `json:"seq"`
	ID       string      `json:"id,omitempty"`
	Detail   string      `json:"detail"`
	Expected string      `json:"expected,omitempty"` // hex hash that was committed or signed
	Found    string      `json:"found,omitempty"`    // hex hash recomputed from what is stored
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(string(p.Kind))
	if p.Seq >= 0 {
		fmt.Fprintf(&b, " seq %d", p.Seq)
	}
	if p.ID != "" {
		fmt.Fprintf(&b, " (id %s)", p.ID)
	}
	b.WriteString(": ")
	b.WriteString(p.Detail)
	return b.String()
}

// Report is the result of a full verification.
type Report struct {
	Events       int64       `json:"events"`
	TreeHashes   int64       `json:"tree_hashes"`
	Checkpoints  int         `json:"checkpoints"`
	SignedSize   int64       `json:"signed_size"` // largest tree size signed by the key
	RootVerified bool        `json:"root_verified"`
	Problems     []Problem   `json:"problems"`
	Saved        *Checkpoint `json:"saved_checkpoint,omitempty"`
}

// OK reports whether verification found nothing wrong.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// TamperError is returned by Verify when it finds problems; the report carries each one.
type TamperError struct{ Report *Report }

func (e *TamperError) Error() string {
	ps := e.Report.Problems
	msg := fmt.Sprintf("verification failed: %d problem(s)", len(ps))
	if len(ps) > 0 {
		msg += "; first: " + ps[0].String()
	}
	return msg
}

// VerifyOptions adjust Verify.
type VerifyOptions struct {
	// Saved is a checkpoint note kept outside the log (by an auditor, say). Verify proves the log
	// is consistent with it, which catches a history rewritten and re-signed by an insider.
	Saved []byte
}

type leafAt struct {
	seq  int64
	id   string
	leaf tlog.Hash
}

// rawChunk holds events copied out of the store's scan: salt and body end to end in data.
type rawChunk struct {
	seqs []int64
	ids  []string
	ends []int // ends[2i] ends the salt of event i, ends[2i+1] its body
	data []byte
}

const rawChunkLen = 1024

func newRawChunk() *rawChunk {
	return &rawChunk{seqs: make([]int64, 0, rawChunkLen), ids: make([]string, 0, rawChunkLen), ends: make([]int, 0, 2*rawChunkLen), data: make([]byte, 0, rawChunkLen*1200)}
}

func (c *rawChunk) add(e store.Entry) {
	c.seqs = append(c.seqs, e.Seq)
	c.ids = append(c.ids, e.ID)
	c.data = append(c.data, e.Salt...)
	c.ends = append(c.ends, len(c.data))
	c.data = append(c.data, e.Body...)
	c.ends = append(c.ends, len(c.data))
}

func (c *rawChunk) reset() {
	c.seqs, c.ids, c.ends, c.data = c.seqs[:0], c.ids[:0], c.ends[:0], c.data[:0]
}

func (c *rawChunk) leaves() []leafAt {
	out := make([]leafAt, len(c.seqs))
	h := sha256.New()
	start := 0
	for i := range c.seqs {
		salt, body := c.data[start:c.ends[2*i]], c.data[c.ends[2*i]:c.ends[2*i+1]]
		out[i] = leafAt{seq: c.seqs[i], id: c.ids[i], leaf: leafHashWith(h, salt, body)}
		start = c.ends[2*i+1]
	}
	return out
}

type hashAt struct {
	idx  int64
	hash tlog.Hash
}

// Verify recomputes every leaf from the stored events, rebuilds the tree, compares it with every
// stored tree hash, and checks every checkpoint's signature (with v, never with a key found in the
// store) and root. It returns the report, and a *TamperError when there is any problem.
//
// How a finding is classified: the signed checkpoints are the reference. Where the events
// reproduce a signed root, the events are authentic and any differing stored hash is reported as
// tree_hash; elsewhere an event whose leaf differs from the committed one is moved when it was
// committed at another seq, inserted when the event committed at its seq still exists elsewhere,
// and modified otherwise.
func Verify(ctx context.Context, st VerifyStore, v note.Verifier, opts VerifyOptions) (*Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := &Report{}
	add := func(p Problem) { r.Problems = append(r.Problems, p) }

	// Signed tree heads, by size; storedSigned counts those the log itself holds.
	signed := map[int64]tlog.Hash{}
	storedSigned := map[int64]bool{}
	cps, err := st.Checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	r.Checkpoints = len(cps)
	for _, cp := range cps {
		c, err := OpenCheckpoint(cp.Note, v)
		if err != nil {
			add(Problem{Kind: ProblemSignature, Seq: -1, Detail: fmt.Sprintf("checkpoint of size %d does not verify with key %s: %v", cp.Size, v.Name(), err)})
			continue
		}
		if c.N != cp.Size {
			add(Problem{Kind: ProblemSignature, Seq: -1, Detail: fmt.Sprintf("checkpoint stored as size %d signs size %d", cp.Size, c.N)})
			continue
		}
		signed[c.N] = c.Hash
		storedSigned[c.N] = true
		r.SignedSize = max(r.SignedSize, c.N)
	}
	var saved *Checkpoint
	if opts.Saved != nil {
		c, err := OpenCheckpoint(opts.Saved, v)
		if err != nil {
			return nil, fmt.Errorf("saved checkpoint: %w", err)
		}
		saved, r.Saved = &c, &c
		if h, ok := signed[c.N]; ok && h != c.Hash {
			add(Problem{Kind: ProblemInconsistent, Seq: -1, Detail: fmt.Sprintf("the saved checkpoint and a stored checkpoint both sign size %d with different roots: the log was re-signed", c.N),
				Expected: hex.EncodeToString(c.Hash[:]), Found: hex.EncodeToString(h[:])})
		}
		signed[c.N] = c.Hash
	}
	sizes := make([]int64, 0, len(signed))
	for n := range signed {
		sizes = append(sizes, n)
	}
	sort.Slice(sizes, func(i, j int) bool { return sizes[i] < sizes[j] })

	// Three goroutines run beside the merge: one steps through the events (copying them out of
	// SQLite's buffers), one hashes their leaves, one reads the stored tree hashes. Stepping
	// SQLite is the longest of them; hashing in its own goroutine takes SHA-256 off that path.
	raw := make(chan *rawChunk, 4)
	free := make(chan *rawChunk, 6) // chunks the hasher is done with, for the reader to refill
	events := make(chan []leafAt, 8)
	hashes := make(chan []hashAt, 8)
	errc := make(chan error, 2)
	go func() {
		defer close(raw)
		c := newRawChunk()
		err := st.ScanEntries(ctx, 0, func(e store.Entry) error {
			c.add(e)
			if len(c.seqs) == rawChunkLen {
				select {
				case raw <- c:
				case <-ctx.Done():
					return ctx.Err()
				}
				select {
				case c = <-free:
					c.reset()
				default:
					c = newRawChunk()
				}
			}
			return nil
		})
		if err == nil && len(c.seqs) > 0 {
			raw <- c
		}
		errc <- err
	}()
	go func() {
		defer close(events)
		for c := range raw {
			leaves := c.leaves()
			select {
			case free <- c:
			default:
			}
			select {
			case events <- leaves:
			case <-ctx.Done():
				for range raw { // let the reader finish
				}
				return
			}
		}
	}()
	go func() {
		defer close(hashes)
		const chunk = 2048
		buf := make([]hashAt, 0, chunk)
		err := st.ScanHashes(ctx, 0, func(idx int64, h tlog.Hash) error {
			buf = append(buf, hashAt{idx, h})
			if len(buf) == chunk {
				select {
				case hashes <- buf:
				case <-ctx.Done():
					return ctx.Err()
				}
				buf = make([]hashAt, 0, chunk)
			}
			return nil
		})
		if err == nil && len(buf) > 0 {
			hashes <- buf
		}
		errc <- err
	}()
	ev := &stream[leafAt]{ch: events}
	th := &stream[hashAt]{ch: hashes}

	type mismatch struct {
		seq                 int64
		id                  string
		eventLeaf, treeLeaf tlog.Hash
		hasEvent, hasTree   bool
	}
	var mismatches []mismatch
	evTree := newFrontier(0, nil)
	evBroken := false // the tree cannot grow past a missing event
	eventRootOK := map[int64]bool{}
	var lastSeq int64 = -1

	for n := int64(0); ; n++ {
		e, hasEvent := ev.peek()
		hasEvent = hasEvent && e.seq == n
		base := tlog.StoredHashIndex(0, n)
		h, hasTree := th.peek()
		hasTree = hasTree && h.idx == base
		if !hasEvent && !hasTree {
			// Past the end of both, or a gap in both: stop when nothing at all remains.
			_, moreE := ev.peek()
			_, moreH := th.peek()
			if !moreE && !moreH {
				break
			}
		}
		if hasEvent {
			ev.next()
			r.Events++
			lastSeq = n
		}
		// The stored hashes of record n: its leaf, then one parent per trailing 1-bit of n.
		want := 1 + bits.TrailingZeros64(uint64(n+1))
		var storedBuf [64]tlog.Hash
		var presentBuf [64]bool
		stored, present := storedBuf[:want], presentBuf[:want]
		for j := 0; j < want; j++ {
			for {
				x, ok := th.peek()
				if !ok || x.idx > base+int64(j) {
					break
				}
				th.next()
				if x.idx == base+int64(j) {
					stored[j], present[j] = x.hash, true
					r.TreeHashes++
					break
				}
			}
		}
		var rebuilt []tlog.Hash
		if hasEvent && !evBroken {
			if rebuilt, err = evTree.add(e.leaf); err != nil {
				return nil, err
			}
			if n%1024 == 0 {
				evTree.prune()
			}
		} else if !hasEvent {
			evBroken = true
		}
		if !hasEvent && hasTree {
			mismatches = append(mismatches, mismatch{seq: n, treeLeaf: stored[0], hasTree: true})
		} else if hasEvent && (!hasTree || e.leaf != stored[0]) {
			mismatches = append(mismatches, mismatch{seq: n, id: e.id, eventLeaf: e.leaf, treeLeaf: stored[0], hasEvent: true, hasTree: hasTree})
		}
		// Compare every stored parent with the tree rebuilt from the events. Where a leaf below it
		// differs, the parent differs as a consequence and the leaf is what gets reported.
		if !evBroken {
			lo := n - (1 << (want - 1)) + 1 // the first seq under the highest parent completed here
			leafTrouble := len(mismatches) > 0 && mismatches[len(mismatches)-1].seq >= lo
			for j := 1; j < want; j++ {
				lo := (n >> j) << j
				switch {
				case !present[j]:
					add(Problem{Kind: ProblemTreeHash, Seq: n, Detail: fmt.Sprintf("tree hash %d (level %d over seq %d..%d) is missing", base+int64(j), j, lo, n)})
				case stored[j] != rebuilt[j] && !leafTrouble:
					add(Problem{Kind: ProblemTreeHash, Seq: n, Detail: fmt.Sprintf("tree hash %d (level %d over seq %d..%d) was changed", base+int64(j), j, lo, n),
						Expected: hex.EncodeToString(rebuilt[j][:]), Found: hex.EncodeToString(stored[j][:])})
				}
			}
		}
		// Signed roots at this size.
		if want, ok := signed[n+1]; ok && !evBroken {
			got, err := evTree.root()
			if err != nil {
				return nil, err
			}
			eventRootOK[n+1] = got == want
		}
	}
	for i := 0; i < 2; i++ {
		if err := <-errc; err != nil {
			return nil, err
		}
	}
	// Anything left in the tree stream is past the last record.
	for {
		x, ok := th.peek()
		if !ok {
			break
		}
		th.next()
		add(Problem{Kind: ProblemTreeHash, Seq: -1, Detail: fmt.Sprintf("tree hash %d belongs to no record", x.idx)})
	}
	size := lastSeq + 1

	// An event is authentic when a signed root at a larger size was reproduced from the events.
	authentic := func(seq int64) bool {
		for _, s := range sizes {
			if s > seq {
				return eventRootOK[s]
			}
		}
		return false
	}
	committedAt := map[tlog.Hash]int64{}
	eventAt := map[tlog.Hash]int64{}
	for _, m := range mismatches {
		if m.hasTree {
			committedAt[m.treeLeaf] = m.seq
		}
		if m.hasEvent {
			eventAt[m.eventLeaf] = m.seq
		}
	}
	explained := map[int64]bool{} // seqs whose event-level problem explains a root mismatch
	for _, m := range mismatches {
		hexp, hfound := hex.EncodeToString(m.treeLeaf[:]), hex.EncodeToString(m.eventLeaf[:])
		switch {
		case !m.hasEvent:
			if _, elsewhere := eventAt[m.treeLeaf]; !elsewhere {
				add(Problem{Kind: ProblemMissing, Seq: m.seq, Detail: "the committed event is gone", Expected: hexp})
			}
		case m.hasTree && authentic(m.seq):
			add(Problem{Kind: ProblemTreeHash, Seq: m.seq, ID: m.id, Detail: "the stored leaf hash was changed; the event itself matches the signed root", Expected: hfound, Found: hexp})
			continue
		case !m.hasTree:
			if at, ok := committedAt[m.eventLeaf]; ok {
				add(Problem{Kind: ProblemMoved, Seq: m.seq, ID: m.id, Detail: fmt.Sprintf("this event was committed at seq %d", at)})
			} else {
				add(Problem{Kind: ProblemInserted, Seq: m.seq, ID: m.id, Detail: "this event is beyond the committed tree: it was never appended", Found: hfound})
			}
		default:
			if at, ok := committedAt[m.eventLeaf]; ok {
				add(Problem{Kind: ProblemMoved, Seq: m.seq, ID: m.id, Detail: fmt.Sprintf("this event was committed at seq %d", at)})
				if _, elsewhere := eventAt[m.treeLeaf]; !elsewhere {
					add(Problem{Kind: ProblemMissing, Seq: m.seq, Detail: "the event committed at this seq is gone", Expected: hexp})
				}
			} else if at, ok := eventAt[m.treeLeaf]; ok && at != m.seq {
				add(Problem{Kind: ProblemInserted, Seq: m.seq, ID: m.id, Detail: fmt.Sprintf("this event was never committed; the one committed here now stands at seq %d", at), Found: hfound})
			} else {
				add(Problem{Kind: ProblemModified, Seq: m.seq, ID: m.id, Detail: "the event's content or salt differs from what was committed", Expected: hexp, Found: hfound})
			}
		}
		explained[m.seq] = true
	}
	firstExplained := int64(-1)
	for _, m := range mismatches {
		if explained[m.seq] {
			firstExplained = m.seq
			break
		}
	}
	for _, s := range sizes {
		if s > size {
			add(Problem{Kind: ProblemTruncated, Seq: size, Detail: fmt.Sprintf("a signed checkpoint covers %d events; the log has %d (seq %d..%d gone)", s, size, size, s-1)})
			break
		}
	}
	for _, s := range sizes {
		if ok, checked := eventRootOK[s]; checked && !ok && storedSigned[s] && (firstExplained < 0 || firstExplained >= s) {
			add(Problem{Kind: ProblemRoot, Seq: -1, Detail: fmt.Sprintf("the events do not reproduce the signed root of size %d", s)})
		}
	}
	if saved != nil {
		if saved.N > size {
			// Reported as truncation above.
		} else if !eventRootOK[saved.N] {
			add(Problem{Kind: ProblemInconsistent, Seq: -1, Detail: fmt.Sprintf("the log's first %d events are not the ones in the saved checkpoint: history was rewritten", saved.N)})
		}
	}
	if len(storedSigned) == 0 && size > 0 {
		add(Problem{Kind: ProblemNoCheckpoint, Seq: -1, Detail: "no checkpoint in the log is signed by key " + v.Name()})
	}
	if len(signed) > 0 {
		r.RootVerified = eventRootOK[sizes[len(sizes)-1]]
	}
	sort.SliceStable(r.Problems, func(i, j int) bool {
		a, b := r.Problems[i], r.Problems[j]
		if (a.Seq < 0) != (b.Seq < 0) {
			return a.Seq >= 0
		}
		return a.Seq < b.Seq
	})
	if !r.OK() {
		return r, &TamperError{Report: r}
	}
	return r, nil
}

// stream reads chunks from a channel one item at a time.
type stream[T any] struct {
	ch  <-chan []T
	buf []T
}

func (s *stream[T]) peek() (T, bool) {
	for len(s.buf) == 0 {
		b, ok := <-s.ch
		if !ok {
			var zero T
			return zero, false
		}
		s.buf = b
	}
	return s.buf[0], true
}

func (s *stream[T]) next() { s.buf = s.buf[1:] }
