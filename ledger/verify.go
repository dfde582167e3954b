package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"runtime"
	"sort"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/store"
)

// VerifyStore is what a full verification reads. ReadHashes serves only to tell which events
// differ from a saved checkpoint the log does not reproduce; Entry only to check the entries a
// purge covers that are still intact.
type VerifyStore interface {
	PurgeStore
	// Extent reads, at one instant (one statement), one past the largest stored seq and one
	// past the largest stored tree hash index: the log verification judges. What the scans meet
	// beyond it was committed after that instant, while verification ran.
	Extent(ctx context.Context) (events, hashes int64, err error)
	ScanEntries(ctx context.Context, from int64, fn func(store.Entry) error) error
	ScanHashes(ctx context.Context, from int64, fn func(idx int64, h tlog.Hash) error) error
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
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
	ProblemUnaccounted  ProblemKind = "unaccounted"   // a body was erased and no purge event covers it
	ProblemPurge        ProblemKind = "purge"         // a purge event covers what it must not (not due, held, not before it)
	ProblemIndex        ProblemKind = "index"         // a stored query column disagrees with the committed body
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
	Events       int64 `json:"events"`
	TreeHashes   int64 `json:"tree_hashes"`
	Checkpoints  int   `json:"checkpoints"`
	SignedSize   int64 `json:"signed_size"` // largest tree size signed by the key
	RootVerified bool  `json:"root_verified"`
	// Purged counts the events whose body a purge erased (their leaves still verify); Purges
	// the purge events; PendingPurge the events a purge covers whose body is not erased yet.
	Purged       int64       `json:"purged"`
	Purges       int         `json:"purges"`
	PendingPurge int64       `json:"pending_purge"`
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

// Verify recomputes every leaf from the stored events, rebuilds the tree, compares it with every
// stored tree hash, and checks every checkpoint's signature (with v, never with a key found in the
// store) and root. It returns the report, and a *TamperError when there is any problem.
//
// How a finding is classified: the signed checkpoints are the reference. Where the events
// reproduce a signed root, the events are authentic and any differing stored hash is reported as
// tree_hash; elsewhere an event whose leaf differs from the committed one is moved when it was
// committed at another seq, inserted when the event committed at its seq still exists elsewhere,
// and modified otherwise.
//
// The phases: openHeads checks the checkpoints' signatures; readLog streams the events (through
// scanEntries and hashLeaves) and the stored hashes (scanTreeHashes) to walkTree, which merges
// them record by record; classify explains each record where they differ; checkHeads compares
// the log with the signed sizes and roots.
func Verify(ctx context.Context, st VerifyStore, v note.Verifier, opts VerifyOptions) (*Report, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	heads, err := openHeads(ctx, st, v, opts.Saved)
	if err != nil {
		return nil, err
	}
	r := &Report{Checkpoints: heads.count, SignedSize: heads.largestStored, Saved: heads.saved}
	r.Problems = append(r.Problems, heads.problems...)

	// The extent is read after the checkpoints, so that every checkpoint read signs a tree inside
	// it: a log being written (verify beside serve) is judged as it stood at that instant.
	ext, err := readExtent(ctx, st)
	if err != nil {
		return nil, err
	}
	gov := &Governance{}
	var index indexProblems
	ev, th, wait := readLog(ctx, st, ext, gov, &index)
	w, err := walkTree(ev, th, heads.roots)
	if err != nil {
		return nil, err
	}
	if err := wait(); err != nil {
		return nil, err
	}
	r.Events, r.TreeHashes = w.events, w.treeHashes
	r.Problems = append(r.Problems, w.problems...)
	pa, err := checkPurges(ctx, st, w.purged, gov)
	if err != nil {
		return nil, err
	}
	r.Purged, r.Purges, r.PendingPurge = int64(len(w.purged)), len(gov.Purges), pa.pending
	r.Problems = append(r.Problems, gov.problems...)
	r.Problems = append(r.Problems, pa.problems...)
	r.Problems = append(r.Problems, index.list()...)

	found, firstExplained := classify(w.mismatches, heads.authentic(w.eventRootOK))
	r.Problems = append(r.Problems, found...)
	saved, err := checkSaved(ctx, st, heads.saved, w, found)
	if err != nil {
		return nil, err
	}
	r.Problems = append(r.Problems, heads.check(w, firstExplained, saved, v)...)
	if len(heads.roots) > 0 {
		r.RootVerified = w.eventRootOK[heads.sizes[len(heads.sizes)-1]]
	}
	sortProblems(r.Problems)
	if !r.OK() {
		return r, &TamperError{Report: r}
	}
	return r, nil
}

// signedHeads are the tree heads the log is checked against: each stored checkpoint that
// verifies with the key, and the saved one the caller brought.
type signedHeads struct {
	roots         map[int64]tlog.Hash // signed root by tree size
	stored        map[int64]bool      // sizes the log itself holds a valid checkpoint of
	sizes         []int64             // the keys of roots, ascending
	saved         *Checkpoint
	count         int   // checkpoints stored, valid or not
	largestStored int64 // largest stored size signed by the key
	problems      []Problem
}

// openHeads reads the stored checkpoints and keeps those whose signature verifies with v (a
// checkpoint signed by any other key is a problem, never a reference), then opens the saved
// checkpoint, which must verify.
func openHeads(ctx context.Context, st VerifyStore, v note.Verifier, savedNote []byte) (*signedHeads, error) {
	h := &signedHeads{roots: map[int64]tlog.Hash{}, stored: map[int64]bool{}}
	cps, err := st.Checkpoints(ctx)
	if err != nil {
		return nil, err
	}
	h.count = len(cps)
	for _, cp := range cps {
		c, err := OpenCheckpoint(cp.Note, v)
		if err != nil {
			h.problems = append(h.problems, Problem{Kind: ProblemSignature, Seq: -1, Detail: fmt.Sprintf("checkpoint of size %d does not verify with key %s: %v", cp.Size, v.Name(), err)})
			continue
		}
		if c.N != cp.Size {
			h.problems = append(h.problems, Problem{Kind: ProblemSignature, Seq: -1, Detail: fmt.Sprintf("checkpoint stored as size %d signs size %d", cp.Size, c.N)})
			continue
		}
		h.roots[c.N] = c.Hash
		h.stored[c.N] = true
		h.largestStored = max(h.largestStored, c.N)
	}
	if savedNote != nil {
		c, err := OpenCheckpoint(savedNote, v)
		if err != nil {
			return nil, fmt.Errorf("saved checkpoint: %w", err)
		}
		h.saved = &c
		if root, ok := h.roots[c.N]; ok && root != c.Hash {
			h.problems = append(h.problems, Problem{Kind: ProblemInconsistent, Seq: -1, Detail: fmt.Sprintf("the saved checkpoint and a stored checkpoint both sign size %d with different roots: the log was re-signed", c.N),
				Expected: hex.EncodeToString(c.Hash[:]), Found: hex.EncodeToString(root[:])})
		}
		h.roots[c.N] = c.Hash
	}
	h.sizes = make([]int64, 0, len(h.roots))
	for n := range h.roots {
		h.sizes = append(h.sizes, n)
	}
	sort.Slice(h.sizes, func(i, j int) bool { return h.sizes[i] < h.sizes[j] })
	return h, nil
}

// authentic returns whether the event at a seq is proven: the events reproduce the first signed
// root of a size above it.
func (h *signedHeads) authentic(eventRootOK map[int64]bool) func(seq int64) bool {
	return func(seq int64) bool {
		for _, s := range h.sizes {
			if s > seq {
				return eventRootOK[s]
			}
		}
		return false
	}
}

// check compares the log as walked with the signed heads: a log shorter than a signed size is
// truncated; a stored signed root the events do not reproduce, where no event-level problem
// below it explains why, is a root problem; then comes saved, checkSaved's finding (if any); a
// log with events and no valid stored checkpoint is signed by no one.
func (h *signedHeads) check(w *treeWalk, firstExplained int64, saved *Problem, v note.Verifier) []Problem {
	var ps []Problem
	for _, s := range h.sizes {
		if s > w.size {
			ps = append(ps, Problem{Kind: ProblemTruncated, Seq: w.size, Detail: fmt.Sprintf("a signed checkpoint covers %d events; the log has %d (seq %d..%d gone)", s, w.size, w.size, s-1)})
			break
		}
	}
	for _, s := range h.sizes {
		if ok, checked := w.eventRootOK[s]; checked && !ok && h.stored[s] && (firstExplained < 0 || firstExplained >= s) {
			ps = append(ps, Problem{Kind: ProblemRoot, Seq: -1, Detail: fmt.Sprintf("the events do not reproduce the signed root of size %d", s)})
		}
	}
	if saved != nil {
		ps = append(ps, *saved)
	}
	if len(h.stored) == 0 && w.size > 0 {
		ps = append(ps, Problem{Kind: ProblemNoCheckpoint, Seq: -1, Detail: "no checkpoint in the log is signed by key " + v.Name()})
	}
	return ps
}

// checkSaved checks that the root of the log's first N events is the root of the checkpoint an
// auditor saved (nil: no saved checkpoint). When it is not, history was rewritten — truncation
// included: the log is then no longer an extension of what was signed — and the problem says
// which events differ where that can be known. The checkpoint holds only a root, so that needs
// the stored tree hashes: where they still reproduce the saved root they are what was signed,
// and the events that differ from them (the event-level problems below N, found) are exactly
// the ones that changed. Where they do not, a rewrite rebuilt them too.
func checkSaved(ctx context.Context, st VerifyStore, saved *Checkpoint, w *treeWalk, found []Problem) (*Problem, error) {
	if saved == nil {
		return nil, nil
	}
	if empty, _ := tlog.TreeHash(0, nil); w.eventRootOK[saved.N] || (saved.N == 0 && saved.Hash == empty) {
		return nil, nil // the empty tree, which walkTree does not check, is a prefix of every log
	}
	p := &Problem{Kind: ProblemInconsistent, Seq: -1, Expected: hex.EncodeToString(saved.Hash[:])}
	if root, ok := w.eventRoots[saved.N]; ok {
		p.Found = hex.EncodeToString(root[:])
	}
	var b strings.Builder
	if w.size < saved.N {
		fmt.Fprintf(&b, "the saved checkpoint signs %d events and the log has %d, which cannot reproduce its root: history was rewritten (a truncation too rewrites it)", saved.N, w.size)
	} else {
		fmt.Fprintf(&b, "the log's first %d events do not reproduce the root of the saved checkpoint: history was rewritten", saved.N)
	}
	differ := describeSeqs(found, saved.N)
	storedRoot, err := tlog.TreeHash(saved.N, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return st.ReadHashes(ctx, idx) }))
	switch {
	case errors.Is(err, store.ErrNotFound), err == nil && storedRoot != saved.Hash:
		b.WriteString("; the stored tree hashes do not reproduce it either, so which events differ cannot be told from the checkpoint alone")
		if differ != "" {
			b.WriteString("; the events that differ from the stored tree: " + differ)
		}
	case err != nil:
		return nil, fmt.Errorf("saved checkpoint: stored tree hashes: %w", err)
	case differ != "":
		b.WriteString("; the stored tree hashes still reproduce it, and the events that differ from what was signed are " + differ)
	}
	p.Detail = b.String()
	return p, nil
}

// describeSeqs lists the event-level problems (missing, moved, inserted, modified) below seq n,
// as "seq 4 (modified), 7..9 (missing)", runs of one kind collapsed, at most a dozen runs shown.
func describeSeqs(ps []Problem, n int64) string {
	type run struct {
		kind     ProblemKind
		from, to int64
	}
	var runs []run
	for _, p := range ps {
		switch p.Kind {
		case ProblemMissing, ProblemMoved, ProblemInserted, ProblemModified:
		default:
			continue
		}
		if p.Seq < 0 || p.Seq >= n {
			continue
		}
		if k := len(runs) - 1; k >= 0 && runs[k].kind == p.Kind && runs[k].to == p.Seq-1 {
			runs[k].to = p.Seq
			continue
		}
		runs = append(runs, run{p.Kind, p.Seq, p.Seq})
	}
	const show = 12
	var parts []string
	for i, r := range runs {
		if i == show {
			parts = append(parts, fmt.Sprintf("and %d more", len(runs)-show))
			break
		}
		if r.from == r.to {
			parts = append(parts, fmt.Sprintf("%d (%s)", r.from, r.kind))
		} else {
			parts = append(parts, fmt.Sprintf("%d..%d (%s)", r.from, r.to, r.kind))
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return "seq " + strings.Join(parts, ", ")
}

// sortProblems puts the problems about one event first, in seq order, then the others, each
// group keeping the order they were found in.
func sortProblems(ps []Problem) {
	sort.SliceStable(ps, func(i, j int) bool {
		a, b := ps[i], ps[j]
		if (a.Seq < 0) != (b.Seq < 0) {
			return a.Seq >= 0
		}
		return a.Seq < b.Seq
	})
}

// leafAt is an event's recomputed leaf hash, or for a purged event (purgedBy > 0) the seq of
// the purge event its row names: its leaf is the stored one.
type leafAt struct {
	seq      int64
	id       string
	leaf     tlog.Hash
	purgedBy int64
}

// rawChunk holds events copied out of the store's scan: salt and body end to end in data.
type rawChunk struct {
	seqs   []int64
	ids    []string
	purged []int64 // the entry's PurgedBy
	cols   []store.Columns
	hasCol []bool // the store returned the entry's stored query columns
	beyond []bool // the entry was committed after the extent was read
	ends   []int  // ends[2i] ends the salt of event i, ends[2i+1] its body
	data   []byte
}

const rawChunkLen = 1024

func newRawChunk() *rawChunk {
	return &rawChunk{seqs: make([]int64, 0, rawChunkLen), ids: make([]string, 0, rawChunkLen), purged: make([]int64, 0, rawChunkLen),
		cols: make([]store.Columns, 0, rawChunkLen), hasCol: make([]bool, 0, rawChunkLen), beyond: make([]bool, 0, rawChunkLen),
		ends: make([]int, 0, 2*rawChunkLen), data: make([]byte, 0, rawChunkLen*1200)}
}

func (c *rawChunk) add(e store.Entry, beyond bool) {
	c.beyond = append(c.beyond, beyond)
	c.seqs = append(c.seqs, e.Seq)
	c.ids = append(c.ids, e.ID)
	c.purged = append(c.purged, e.PurgedBy)
	if e.Cols != nil {
		c.cols, c.hasCol = append(c.cols, *e.Cols), append(c.hasCol, true)
	} else {
		c.cols, c.hasCol = append(c.cols, store.Columns{}), append(c.hasCol, false)
	}
	c.data = append(c.data, e.Salt...)
	c.ends = append(c.ends, len(c.data))
	c.data = append(c.data, e.Body...)
	c.ends = append(c.ends, len(c.data))
}

func (c *rawChunk) reset() {
	c.seqs, c.ids, c.purged, c.ends, c.data = c.seqs[:0], c.ids[:0], c.purged[:0], c.ends[:0], c.data[:0]
	c.cols, c.hasCol, c.beyond = c.cols[:0], c.hasCol[:0], c.beyond[:0]
}

// leaves hashes the chunk's events and checks their stored query columns against their bodies
// (problems in index: a query answered from an edited, removed or forged column would disagree
// with the hashed log). gov lists the chunk's purges and holds (indexes into the chunk), for
// the caller to hand to the Governance in log order.
//
// An entry beyond the extent (committed while verification runs) is not judged; a purge or hold
// among them still goes to gov, since a purge committed after the extent may have erased bodies
// inside it before the scan reached them.
func (c *rawChunk) leaves(r *store.ColumnReader) (out []leafAt, index []Problem, gov []int) {
	out = make([]leafAt, 0, len(c.seqs))
	h := sha256.New()
	start := 0
	for i := range c.seqs {
		salt, body := c.data[start:c.ends[2*i]], c.data[c.ends[2*i]:c.ends[2*i+1]]
		start = c.ends[2*i+1]
		if c.beyond[i] {
			if cols, err := r.Of(body); c.purged[i] == 0 && err == nil && governance(event.Kind(cols.Kind)) {
				gov = append(gov, i)
			}
			continue
		}
		if c.purged[i] > 0 {
			if c.hasCol[i] {
				if d := (store.Columns{Success: -1}).Diff(c.cols[i]); d != "" {
					index = append(index, Problem{Kind: ProblemIndex, Seq: c.seqs[i], ID: c.ids[i], Detail: "purged entry: " + d})
				}
			}
			out = append(out, leafAt{seq: c.seqs[i], id: c.ids[i], purgedBy: c.purged[i]})
			continue
		}
		out = append(out, leafAt{seq: c.seqs[i], id: c.ids[i], leaf: leafHashWith(h, salt, body)})
		// One read of the body's top-level members gives both the columns to check and the
		// kind that says whether gov wants the event.
		cols, err := r.Of(body)
		switch {
		case err != nil && c.hasCol[i]:
			index = append(index, Problem{Kind: ProblemIndex, Seq: c.seqs[i], ID: c.ids[i],
				Detail: "the body is not an event object, so its query columns cannot be checked: " + err.Error()})
		case c.hasCol[i]:
			if d := cols.Diff(c.cols[i]); d != "" {
				index = append(index, Problem{Kind: ProblemIndex, Seq: c.seqs[i], ID: c.ids[i], Detail: d})
			}
		}
		if err == nil && governance(event.Kind(cols.Kind)) {
			gov = append(gov, i)
		}
	}
	return out, index, gov
}

// addGovernance hands the chunk's event i, a purge or hold, to gov.
func (c *rawChunk) addGovernance(gov *Governance, i int) {
	ev, err := event.ParseStored(c.data[c.ends[2*i]:c.ends[2*i+1]])
	if err == nil {
		err = gov.Add(c.seqs[i], ev)
	}
	if err != nil {
		gov.problems = append(gov.problems, Problem{Kind: ProblemPurge, Seq: c.seqs[i], ID: c.ids[i], Detail: err.Error()})
	}
}

// indexProblems collects the index problems of a verification, the first maxIndexProblems
// in full: a table whose columns were all rewritten would otherwise give a report per event.
type indexProblems struct {
	ps   []Problem
	more int64
}

const maxIndexProblems = 1000

func (x *indexProblems) add(ps []Problem) {
	for _, p := range ps {
		if len(x.ps) < maxIndexProblems {
			x.ps = append(x.ps, p)
		} else {
			x.more++
		}
	}
}

func (x *indexProblems) list() []Problem {
	if x.more == 0 {
		return x.ps
	}
	return append(x.ps, Problem{Kind: ProblemIndex, Seq: -1, Detail: fmt.Sprintf("and %d more events whose query columns disagree with their bodies", x.more)})
}

// hashAt is a stored tree hash.
type hashAt struct {
	idx  int64
	hash tlog.Hash
}

// readLog starts the readers that feed walkTree, which runs beside them: scanEntries steps
// through the events, copying them out of the store's buffers in chunks; hashers (one per core)
// hash the chunks' leaves and check their columns; inOrder passes the results on in log order;
// scanTreeHashes reads the stored tree hashes. wait returns the first read error once the
// streams are drained.
func readLog(ctx context.Context, st VerifyStore, ext extent, gov *Governance, index *indexProblems) (ev *stream[leafAt], th *stream[hashAt], wait func() error) {
	hashers := min(runtime.GOMAXPROCS(0), 4)
	work := make(chan *hashJob, hashers)
	ordered := make(chan *hashJob, hashers+2)
	free := make(chan *rawChunk, hashers+4) // chunks inOrder is done with, for scanEntries to refill
	leaves := make(chan []leafAt, 8)
	hashes := make(chan []hashAt, 8)
	errc := make(chan error, 3)
	go func() { errc <- scanEntries(ctx, st, ext, work, ordered, free) }()
	for range hashers {
		go func() {
			var r store.ColumnReader
			for j := range work {
				j.leaves, j.index, j.gov = j.c.leaves(&r)
				close(j.done)
			}
		}()
	}
	go func() { errc <- inOrder(ctx, ordered, free, leaves, gov, index) }()
	go func() { errc <- scanTreeHashes(ctx, st, ext, hashes) }()
	wait = func() error {
		for range 3 {
			if err := <-errc; err != nil {
				return err
			}
		}
		return nil
	}
	return &stream[leafAt]{ch: leaves}, &stream[hashAt]{ch: hashes}, wait
}

// hashJob is one chunk of events on its way through a hasher; done is closed once the results
// are set.
type hashJob struct {
	c      *rawChunk
	leaves []leafAt
	index  []Problem
	gov    []int
	done   chan struct{}
}

// send sends v unless ctx is done first.
func send[T any](ctx context.Context, ch chan<- T, v T) error {
	select {
	case ch <- v:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// scanEntries reads every event into chunks of rawChunkLen, each sent to the hashers on work and,
// in log order, on ordered (both closed at the end). It refills the chunks inOrder hands back on
// free, so the scan allocates little.
func scanEntries(ctx context.Context, st VerifyStore, ext extent, work, ordered chan<- *hashJob, free <-chan *rawChunk) error {
	defer close(ordered)
	defer close(work)
	c := newRawChunk()
	flush := func() error {
		j := &hashJob{c: c, done: make(chan struct{})}
		if err := send(ctx, ordered, j); err != nil {
			return err
		}
		return send(ctx, work, j)
	}
	err := st.ScanEntries(ctx, 0, func(e store.Entry) error {
		c.add(e, e.Seq >= ext.events)
		if len(c.seqs) < rawChunkLen {
			return nil
		}
		if err := flush(); err != nil {
			return err
		}
		select {
		case c = <-free:
			c.reset()
		default:
			c = newRawChunk()
		}
		return nil
	})
	if err == nil && len(c.seqs) > 0 {
		err = flush()
	}
	return err
}

// inOrder waits for each chunk's results in log order and sends its leaves on out (closed at
// the end), hands its purges and holds to gov and its index problems to index (so both are in
// log order, as the report wants), and hands the chunk back on free when there is room. gov is
// complete once out is closed.
func inOrder(ctx context.Context, ordered <-chan *hashJob, free chan<- *rawChunk, out chan<- []leafAt, gov *Governance, index *indexProblems) error {
	defer close(out)
	for j := range ordered {
		select {
		case <-j.done:
		case <-ctx.Done():
		}
		if ctx.Err() == nil {
			for _, i := range j.gov {
				j.c.addGovernance(gov, i)
			}
			index.add(j.index)
		}
		if err := send(ctx, out, j.leaves); err != nil {
			for range ordered { // let scanEntries finish
			}
			return err
		}
		select {
		case free <- j.c:
		default:
		}
	}
	return nil
}

// scanTreeHashes reads every stored tree hash, in index order, in chunks sent on out (closed at
// the end).
func scanTreeHashes(ctx context.Context, st VerifyStore, ext extent, out chan<- []hashAt) error {
	defer close(out)
	const chunk = 2048
	buf := make([]hashAt, 0, chunk)
	err := st.ScanHashes(ctx, 0, func(idx int64, h tlog.Hash) error {
		if idx >= ext.hashes {
			return errBeyond // appended while verification runs: in index order, all that is left
		}
		buf = append(buf, hashAt{idx, h})
		if len(buf) < chunk {
			return nil
		}
		if err := send(ctx, out, buf); err != nil {
			return err
		}
		buf = make([]hashAt, 0, chunk)
		return nil
	})
	if errors.Is(err, errBeyond) {
		err = nil
	}
	if err == nil && len(buf) > 0 {
		err = send(ctx, out, buf)
	}
	return err
}

// extent is the log verification judges: events with seq < events, tree hashes with index <
// hashes, as the store held them at one instant.
type extent struct{ events, hashes int64 }

func readExtent(ctx context.Context, st VerifyStore) (extent, error) {
	e, h, err := st.Extent(ctx)
	if err != nil {
		return extent{}, fmt.Errorf("ledger: verify: %w", err)
	}
	return extent{e, h}, nil
}

// errBeyond stops a scan at the end of the extent.
var errBeyond = errors.New("beyond the extent")

// mismatch is a record whose event and stored leaf differ, or that has only one of them.
type mismatch struct {
	seq                 int64
	id                  string
	eventLeaf, treeLeaf tlog.Hash
	hasEvent, hasTree   bool
}

// treeWalk is what walkTree found.
type treeWalk struct {
	events, treeHashes int64 // read
	size               int64 // the last event's seq + 1
	mismatches         []mismatch
	eventRootOK        map[int64]bool      // by signed size: whether the events reproduce its root
	eventRoots         map[int64]tlog.Hash // by signed size: the events' root, where they reach it
	problems           []Problem           // stored tree hashes that differ from the events' tree
	purged             []purgedAt          // erased entries, in seq order
}

// walkTree merges the events' leaves with the stored tree hashes, record by record (the stored
// hashes of record n are its leaf, then one parent per trailing 1-bit of n). It rebuilds the tree
// from the events, up to the first missing one, compares every stored parent with it, notes the
// records whose event and stored leaf differ for classify, and computes the events' root at
// every signed size.
func walkTree(ev *stream[leafAt], th *stream[hashAt], signed map[int64]tlog.Hash) (*treeWalk, error) {
	w := &treeWalk{eventRootOK: map[int64]bool{}, eventRoots: map[int64]tlog.Hash{}}
	var evTree compactRange
	var rebuiltBuf [64]tlog.Hash
	evBroken := false // the tree cannot grow past a missing event
	var lastSeq int64 = -1
	for n := int64(0); ; n++ {
		e, hasEvent := ev.peek()
		hasEvent = hasEvent && e.seq == n
		base := tlog.StoredHashIndex(0, n)
		h, hasTree := th.peek()
		hasTree = hasTree && h.idx == base
		if !hasEvent && !hasTree {
			// Past the end of both, or a gap in both: stop when nothing at all remains, else go on
			// at the next record that holds an event or a stored hash. The records between hold
			// nothing to compare, and stepping through them one by one would let a single row at a
			// far seq or index stall verification.
			next, more := nextRecord(ev, th)
			if !more {
				break
			}
			if next > n {
				evBroken = true
				n = next - 1
				continue
			}
		}
		if hasEvent {
			ev.next()
			w.events++
			lastSeq = n
		}
		want := 1 + bits.TrailingZeros64(uint64(n+1))
		purged := hasEvent && e.purgedBy > 0
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
					w.treeHashes++
					break
				}
			}
		}
		if purged {
			// An erased body: its committed leaf is the stored one, which the signed roots above
			// it still check; checkPurges accounts for the erasure.
			w.purged = append(w.purged, purgedAt{seq: n, by: e.purgedBy, id: e.id})
			if present[0] {
				e.leaf = stored[0]
			} else {
				hasEvent = false // nothing left to rebuild the tree from: as good as missing
			}
		}
		var rebuilt []tlog.Hash
		if hasEvent && !evBroken {
			rebuilt = evTree.add(e.leaf, rebuiltBuf[:0])
		} else if !hasEvent {
			evBroken = true
		}
		if !hasEvent && hasTree {
			w.mismatches = append(w.mismatches, mismatch{seq: n, treeLeaf: stored[0], hasTree: true})
		} else if hasEvent && (!hasTree || e.leaf != stored[0]) {
			w.mismatches = append(w.mismatches, mismatch{seq: n, id: e.id, eventLeaf: e.leaf, treeLeaf: stored[0], hasEvent: true, hasTree: hasTree})
		}
		// Compare every stored parent with the tree rebuilt from the events. Where a leaf below it
		// differs, the parent differs as a consequence and the leaf is what gets reported.
		if !evBroken {
			lo := n - (1 << (want - 1)) + 1 // the first seq under the highest parent completed here
			leafTrouble := len(w.mismatches) > 0 && w.mismatches[len(w.mismatches)-1].seq >= lo
			for j := 1; j < want; j++ {
				lo := (n >> j) << j
				switch {
				case !present[j]:
					w.problems = append(w.problems, Problem{Kind: ProblemTreeHash, Seq: n, Detail: fmt.Sprintf("tree hash %d (level %d over seq %d..%d) is missing", base+int64(j), j, lo, n)})
				case stored[j] != rebuilt[j] && !leafTrouble:
					w.problems = append(w.problems, Problem{Kind: ProblemTreeHash, Seq: n, Detail: fmt.Sprintf("tree hash %d (level %d over seq %d..%d) was changed", base+int64(j), j, lo, n),
						Expected: hex.EncodeToString(rebuilt[j][:]), Found: hex.EncodeToString(stored[j][:])})
				}
			}
		}
		if want, ok := signed[n+1]; ok && !evBroken {
			got, err := evTree.root()
			if err != nil {
				return nil, err
			}
			w.eventRootOK[n+1], w.eventRoots[n+1] = got == want, got
		}
	}
	// Anything left in the tree stream is past the last record.
	for {
		x, ok := th.peek()
		if !ok {
			break
		}
		th.next()
		w.problems = append(w.problems, Problem{Kind: ProblemTreeHash, Seq: -1, Detail: fmt.Sprintf("tree hash %d belongs to no record", x.idx)})
	}
	w.size = lastSeq + 1
	return w, nil
}

// nextRecord returns the first record that the next event or the next stored hash belongs to,
// and false when both streams are done.
func nextRecord(ev *stream[leafAt], th *stream[hashAt]) (int64, bool) {
	next, more := int64(math.MaxInt64), false
	if e, ok := ev.peek(); ok {
		next, more = e.seq, true
	}
	if h, ok := th.peek(); ok {
		level, k := tlog.SplitStoredHashIndex(h.idx)
		next, more = min(next, (k+1)<<level-1), true // a level-L hash is stored with the record that completes it
	}
	return next, more
}

// classify explains each mismatch as a problem: an event missing, moved (its leaf was committed
// at another seq), inserted (never committed, or the one committed at its seq stands elsewhere),
// or modified; or, where authentic says the event is proven by a signed root, a changed stored
// leaf. It returns the problems and the first seq whose event-level problem explains why a
// signed root is not reproduced (-1 if none).
func classify(mismatches []mismatch, authentic func(seq int64) bool) (ps []Problem, firstExplained int64) {
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
	firstExplained = -1
	for _, m := range mismatches {
		hexp, hfound := hex.EncodeToString(m.treeLeaf[:]), hex.EncodeToString(m.eventLeaf[:])
		switch {
		case !m.hasEvent:
			if _, elsewhere := eventAt[m.treeLeaf]; !elsewhere {
				ps = append(ps, Problem{Kind: ProblemMissing, Seq: m.seq, Detail: "the committed event is gone", Expected: hexp})
			}
		case m.hasTree && authentic(m.seq):
			ps = append(ps, Problem{Kind: ProblemTreeHash, Seq: m.seq, ID: m.id, Detail: "the stored leaf hash was changed; the event itself matches the signed root", Expected: hfound, Found: hexp})
			continue
		case !m.hasTree:
			if at, ok := committedAt[m.eventLeaf]; ok {
				ps = append(ps, Problem{Kind: ProblemMoved, Seq: m.seq, ID: m.id, Detail: fmt.Sprintf("this event was committed at seq %d", at)})
			} else {
				ps = append(ps, Problem{Kind: ProblemInserted, Seq: m.seq, ID: m.id, Detail: "this event is beyond the committed tree: it was never appended", Found: hfound})
			}
		default:
			if at, ok := committedAt[m.eventLeaf]; ok {
				ps = append(ps, Problem{Kind: ProblemMoved, Seq: m.seq, ID: m.id, Detail: fmt.Sprintf("this event was committed at seq %d", at)})
				if _, elsewhere := eventAt[m.treeLeaf]; !elsewhere {
					ps = append(ps, Problem{Kind: ProblemMissing, Seq: m.seq, Detail: "the event committed at this seq is gone", Expected: hexp})
				}
			} else if at, ok := eventAt[m.treeLeaf]; ok && at != m.seq {
				ps = append(ps, Problem{Kind: ProblemInserted, Seq: m.seq, ID: m.id, Detail: fmt.Sprintf("this event was never committed; the one committed here now stands at seq %d", at), Found: hfound})
			} else {
				ps = append(ps, Problem{Kind: ProblemModified, Seq: m.seq, ID: m.id, Detail: "the event's content or salt differs from what was committed", Expected: hexp, Found: hfound})
			}
		}
		if firstExplained < 0 {
			firstExplained = m.seq
		}
	}
	return ps, firstExplained
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
