package ledger

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/store"
)

// BundleFormat is the first member of every bundle, so a later format is never mistaken for it.
const BundleFormat = "agentaudit-bundle/v1"

// Bundle is a self-contained proof that one event is in the log: it verifies offline with only
// the log's verifier key (VerifyBundle).
//
// The bundle of a purged event has no event and salt (they are erased): it carries the leaf
// hash the log committed, its inclusion proof, and in Purge the purge event that explains the
// missing body with that event's own inclusion proof, against the same checkpoint.
type Bundle struct {
	Format     string          `json:"format"`
	Seq        int64           `json:"seq"`
	Event      json.RawMessage `json:"event"` // canonical JSON, exactly as hashed; null when purged
	Salt       string          `json:"salt"`  // base64
	Proof      []string        `json:"proof"` // base64 hashes, tlog.RecordProof order
	Checkpoint string          `json:"checkpoint"`
	Leaf       string          `json:"leaf,omitempty"`  // base64; a purged event's committed leaf hash
	Purge      *Bundle         `json:"purge,omitempty"` // a purged event's purge event, proven alike
}

// ProofStore is what proofs read from a store.
type ProofStore interface {
	PurgeStore
	EntryByID(ctx context.Context, id string) (store.Entry, error)
	ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error)
	LatestCheckpoint(ctx context.Context) (store.Checkpoint, error)
}

// ErrNotYetSigned: the event is newer than the latest signed checkpoint.
var ErrNotYetSigned = errors.New("event is not yet covered by a signed checkpoint")

// Prove builds the inclusion bundle of event id against the latest stored checkpoint.
func Prove(ctx context.Context, st ProofStore, id string) (*Bundle, error) {
	e, err := st.EntryByID(ctx, id)
	if err != nil {
		return nil, err
	}
	cp, err := st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return nil, fmt.Errorf("event %s at seq %d, no checkpoint yet: %w", id, e.Seq, ErrNotYetSigned)
	}
	if err != nil {
		return nil, err
	}
	if cp.Size <= e.Seq {
		return nil, fmt.Errorf("event %s at seq %d, latest checkpoint size %d: %w", id, e.Seq, cp.Size, ErrNotYetSigned)
	}
	c, err := parseUnverified(cp.Note) // the bundle's verifier checks the signature
	if err != nil {
		return nil, err
	}
	b, err := proveEntry(ctx, st, e, c, cp.Note)
	if err != nil || !e.Purged() {
		return b, err
	}
	hs, err := st.ReadHashes(ctx, []int64{tlog.StoredHashIndex(0, e.Seq)})
	if err != nil {
		return nil, fmt.Errorf("leaf of purged seq %d: %w", e.Seq, err)
	}
	b.Leaf = base64.StdEncoding.EncodeToString(hs[0][:])
	pe, err := st.Entry(ctx, e.PurgedBy)
	if err != nil {
		return nil, fmt.Errorf("purge event of seq %d: %w", e.Seq, err)
	}
	if pe.Purged() || pe.Seq >= c.N {
		return nil, fmt.Errorf("purge event at seq %d of seq %d is erased or not yet signed: %w", pe.Seq, e.Seq, ErrNotYetSigned)
	}
	if b.Purge, err = proveEntry(ctx, st, pe, c, cp.Note); err != nil {
		return nil, err
	}
	b.Purge.Checkpoint = "" // the same as the outer bundle's
	return b, nil
}

// proveEntry builds the bundle of one stored entry against the checkpoint c (note).
func proveEntry(ctx context.Context, st ProofStore, e store.Entry, c Checkpoint, note []byte) (*Bundle, error) {
	proof, err := tlog.ProveRecord(c.N, e.Seq, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		return st.ReadHashes(ctx, idx)
	}))
	if err != nil {
		return nil, fmt.Errorf("inclusion proof for seq %d: %w", e.Seq, err)
	}
	b := &Bundle{Format: BundleFormat, Seq: e.Seq, Checkpoint: string(note)}
	if !e.Purged() {
		b.Event, b.Salt = json.RawMessage(e.Body), base64.StdEncoding.EncodeToString(e.Salt)
	}
	for _, h := range proof {
		b.Proof = append(b.Proof, base64.StdEncoding.EncodeToString(h[:]))
	}
	return b, nil
}

// Prove is the package Prove, after signing a checkpoint that covers the event if needed.
func (l *Ledger) Prove(ctx context.Context, id string) (*Bundle, error) {
	b, err := Prove(ctx, l.st, id)
	if errors.Is(err, ErrNotYetSigned) {
		if _, err := l.SignCheckpoint(ctx); err != nil {
			return nil, err
		}
		return Prove(ctx, l.st, id)
	}
	return b, err
}

// ErrBadBundle wraps every reason a bundle does not verify.
var ErrBadBundle = errors.New("bundle does not verify")

// VerifiedBundle is what a verified bundle proves: this event is at Seq in the tree of the
// signed Checkpoint. For a purged event, Event is nil and Purge is the purge event, itself
// proven in the same tree, whose record covers Seq.
type VerifiedBundle struct {
	Checkpoint Checkpoint
	Seq        int64
	Event      *event.Event
	Purge      *event.Event
	PurgeSeq   int64
}

// VerifyBundle checks a bundle with only the log's verifier key: the checkpoint's signature, the
// event's leaf hash (recomputed from salt and the event's canonical bytes), and the inclusion
// proof against the signed root. The event may have been reformatted; it is canonicalized again.
func VerifyBundle(data []byte, v note.Verifier) (*VerifiedBundle, error) {
	var b Bundle
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return nil, fmt.Errorf("%w: not a bundle: %w", ErrBadBundle, err)
	}
	if b.Format != BundleFormat {
		return nil, fmt.Errorf("%w: format %q, want %q", ErrBadBundle, b.Format, BundleFormat)
	}
	c, err := OpenCheckpoint([]byte(b.Checkpoint), v)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadBundle, err)
	}
	if b.Purge == nil {
		ev, err := checkBundleEvent(&b, c)
		if err != nil {
			return nil, err
		}
		return &VerifiedBundle{Checkpoint: c, Seq: b.Seq, Event: ev}, nil
	}
	// A purged event: its committed leaf is in the tree, and so is a purge event covering it.
	if len(b.Event) > 0 && string(b.Event) != "null" || b.Salt != "" {
		return nil, fmt.Errorf("%w: a purged event's bundle carries no event or salt", ErrBadBundle)
	}
	leaf, err := base64.StdEncoding.DecodeString(b.Leaf)
	if err != nil || len(leaf) != tlog.HashSize {
		return nil, fmt.Errorf("%w: leaf is not a base64 SHA-256 hash", ErrBadBundle)
	}
	if err := checkInclusion(&b, c, tlog.Hash(leaf)); err != nil {
		return nil, err
	}
	if b.Purge.Purge != nil || b.Purge.Checkpoint != "" || b.Purge.Format != BundleFormat {
		return nil, fmt.Errorf("%w: purge: a purge event's proof is a plain bundle against the same checkpoint", ErrBadBundle)
	}
	pev, err := checkBundleEvent(b.Purge, c)
	if err != nil {
		return nil, fmt.Errorf("purge event: %w", err)
	}
	if pev.Kind != event.KindPurge {
		return nil, fmt.Errorf("%w: the event proven in purge is of kind %q, not purge", ErrBadBundle, pev.Kind)
	}
	var rec PurgeRecord
	if err := strictJSON(pev.Record, &rec); err != nil {
		return nil, fmt.Errorf("%w: purge event record: %w", ErrBadBundle, err)
	}
	covered := slices.ContainsFunc(rec.Ranges, func(r PurgeRange) bool { return r.From <= b.Seq && b.Seq <= r.To })
	if !covered || b.Purge.Seq <= b.Seq {
		return nil, fmt.Errorf("%w: the purge event at seq %d does not cover seq %d", ErrBadBundle, b.Purge.Seq, b.Seq)
	}
	return &VerifiedBundle{Checkpoint: c, Seq: b.Seq, Purge: pev, PurgeSeq: b.Purge.Seq}, nil
}

// checkBundleEvent checks b's event: its leaf (from its salt and canonical bytes) and inclusion
// proof against c.
func checkBundleEvent(b *Bundle, c Checkpoint) (*event.Event, error) {
	if b.Leaf != "" {
		return nil, fmt.Errorf("%w: a bundle with an event gives no leaf: it is computed", ErrBadBundle)
	}
	salt, err := base64.StdEncoding.DecodeString(b.Salt)
	if err != nil || len(salt) < SaltSize {
		return nil, fmt.Errorf("%w: salt is not base64 of at least %d bytes", ErrBadBundle, SaltSize)
	}
	body, err := event.Canonicalize(b.Event)
	if err != nil {
		return nil, fmt.Errorf("%w: event: %w", ErrBadBundle, err)
	}
	ev, err := event.ParseStored(body) // what was committed reads back, even after a rule of the model changed
	if err != nil {
		return nil, fmt.Errorf("%w: event: %w", ErrBadBundle, err)
	}
	if err := checkInclusion(b, c, LeafHash(salt, body)); err != nil {
		return nil, err
	}
	return ev, nil
}

// checkInclusion checks b's proof that leaf is at b.Seq in c's tree.
func checkInclusion(b *Bundle, c Checkpoint, leaf tlog.Hash) error {
	if b.Seq < 0 || b.Seq >= c.N {
		return fmt.Errorf("%w: seq %d is outside the checkpoint's tree of size %d", ErrBadBundle, b.Seq, c.N)
	}
	if len(b.Proof) > 64 {
		return fmt.Errorf("%w: proof has %d hashes", ErrBadBundle, len(b.Proof))
	}
	proof := make(tlog.RecordProof, len(b.Proof))
	for i, s := range b.Proof {
		h, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(h) != tlog.HashSize {
			return fmt.Errorf("%w: proof[%d] is not a base64 SHA-256 hash", ErrBadBundle, i)
		}
		copy(proof[i][:], h)
	}
	if err := tlog.CheckRecord(proof, c.N, c.Hash, b.Seq, leaf); err != nil {
		return fmt.Errorf("%w: the event, its salt or the proof does not match the signed root at seq %d: %w", ErrBadBundle, b.Seq, err)
	}
	return nil
}

// InconsistentError reports that a checkpoint saved earlier is not a prefix of today's tree:
// history was rewritten or truncated after it was signed.
type InconsistentError struct {
	Saved, Latest Checkpoint
	Reason        string
}

func (e *InconsistentError) Error() string {
	return fmt.Sprintf("saved checkpoint (size %d) is not consistent with the log (size %d): %s", e.Saved.N, e.Latest.N, e.Reason)
}

// CheckConsistency proves that saved, a checkpoint signed earlier, is a prefix of the tree of the
// latest stored checkpoint, with an RFC 6962 consistency proof built from the store's hashes.
// Both are verified with v. A truncated or rewritten log gives an *InconsistentError.
func CheckConsistency(ctx context.Context, st ProofStore, saved []byte, v note.Verifier) (Checkpoint, error) {
	old, err := OpenCheckpoint(saved, v)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("saved checkpoint: %w", err)
	}
	cp, err := st.LatestCheckpoint(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return old, &InconsistentError{Saved: old, Reason: "the log has no checkpoint at all"}
	}
	if err != nil {
		return old, err
	}
	latest, err := OpenCheckpoint(cp.Note, v)
	if err != nil {
		return old, &InconsistentError{Saved: old, Reason: fmt.Sprintf("the latest stored checkpoint (size %d) does not verify: %v", cp.Size, err)}
	}
	if latest.N < old.N {
		return old, &InconsistentError{Saved: old, Latest: latest, Reason: fmt.Sprintf("the log was truncated: %d events are gone", old.N-latest.N)}
	}
	proof, err := tlog.ProveTree(latest.N, old.N, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		return st.ReadHashes(ctx, idx)
	}))
	if err != nil {
		return old, &InconsistentError{Saved: old, Latest: latest, Reason: fmt.Sprintf("no consistency proof can be built: %v", err)}
	}
	if err := tlog.CheckTree(proof, latest.N, latest.Hash, old.N, old.Hash); err != nil {
		return old, &InconsistentError{Saved: old, Latest: latest, Reason: "the first " + fmt.Sprint(old.N) + " events differ from what was signed (history rewritten)"}
	}
	return old, nil
}

// ProveConsistency returns the RFC 6962 consistency proof from the tree of size old to the tree
// of the latest stored checkpoint (base64 hashes), with that checkpoint's tree.
func ProveConsistency(ctx context.Context, st ProofStore, old int64) ([]string, tlog.Tree, error) {
	cp, err := st.LatestCheckpoint(ctx)
	if err != nil {
		return nil, tlog.Tree{}, err
	}
	c, err := parseUnverified(cp.Note) // the client checks the signature
	if err != nil {
		return nil, tlog.Tree{}, err
	}
	if old > c.N {
		return nil, tlog.Tree{}, fmt.Errorf("tree size %d is larger than the latest checkpoint's %d: %w", old, c.N, ErrNotYetSigned)
	}
	proof, err := tlog.ProveTree(c.N, old, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return st.ReadHashes(ctx, idx) }))
	if err != nil {
		return nil, tlog.Tree{}, err
	}
	out := make([]string, len(proof))
	for i, h := range proof {
		out[i] = base64.StdEncoding.EncodeToString(h[:])
	}
	return out, c.Tree, nil
}

// parseUnverified parses a signed checkpoint note without checking its signature, for proofs
// whose recipient checks it with the key they trust.
func parseUnverified(msg []byte) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList())
	var unverified *note.UnverifiedNoteError
	if errors.As(err, &unverified) {
		n = unverified.Note
	} else if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint: %w", err)
	}
	return ParseCheckpoint(n.Text)
}
