// Package storetest is the conformance suite every store driver passes: one call from the
// driver's own test, as tessera's and x/mod/sumdb's storage tests are used.
package storetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/query"
	"github.com/agentaudit/agentaudit/retention"
	"github.com/agentaudit/agentaudit/store"
)

// Driver is everything the ledger, its verifier and proofs, the queries, the server and the CLI
// ask of a store: the union of their own interfaces, so a method one of them starts to need is
// asked of every driver here too (and needs a test below).
type Driver interface {
	ledger.Store
	ledger.VerifyStore
	ledger.ProofStore
	query.Store
	query.TreeReader
	retention.Store
	// Tail is the CLI's: the last n entries, oldest first.
	Tail(ctx context.Context, n int) ([]store.Entry, error)
}

func entry(seq int64) store.Entry {
	return store.Entry{Seq: seq, ID: fmt.Sprintf("id-%d", seq), Salt: bytes.Repeat([]byte{byte(seq)}, 16),
		Body: fmt.Appendf(nil, `{"id":"id-%d","kind":"custom"}`, seq)}
}

func hash(i int64) tlog.Hash { return sha256.Sum256(fmt.Appendf(nil, "%d", i)) }

// Batch returns entries [from, from+n) and their tree-hash slots (the hashes are arbitrary: the
// store keeps what it is given), for a driver's own tests too.
func Batch(from, n int64) store.Batch {
	b := store.Batch{FirstHash: tlog.StoredHashIndex(0, from)}
	for s := from; s < from+n; s++ {
		b.Entries = append(b.Entries, entry(s))
	}
	for i := b.FirstHash; i < tlog.StoredHashIndex(0, from+n); i++ {
		b.Hashes = append(b.Hashes, hash(i))
	}
	return b
}

// Run runs the suite; open returns a new, empty store for each subtest.
func Run(t *testing.T, open func(t *testing.T) Driver) {
	ctx := context.Background()
	t.Run("Empty", func(t *testing.T) {
		d := open(t)
		if n, err := d.Size(ctx); err != nil || n != 0 {
			t.Errorf("Size = %d, %v", n, err)
		}
		if n, err := d.HashCount(ctx); err != nil || n != 0 {
			t.Errorf("HashCount = %d, %v", n, err)
		}
		if _, err := d.LatestCheckpoint(ctx); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("LatestCheckpoint = %v, want ErrNotFound", err)
		}
		if _, err := d.EntryByID(ctx, "x"); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("EntryByID = %v, want ErrNotFound", err)
		}
		if _, err := d.ReadHashes(ctx, []int64{0}); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("ReadHashes = %v, want ErrNotFound", err)
		}
	})
	t.Run("AppendAndRead", func(t *testing.T) {
		d := open(t)
		for _, b := range []store.Batch{Batch(0, 3), Batch(3, 300)} {
			if err := d.Append(ctx, b); err != nil {
				t.Fatal(err)
			}
		}
		if n, _ := d.Size(ctx); n != 303 {
			t.Errorf("Size = %d, want 303", n)
		}
		if n, _ := d.HashCount(ctx); n != tlog.StoredHashCount(303) {
			t.Errorf("HashCount = %d, want %d", n, tlog.StoredHashCount(303))
		}
		for _, s := range []int64{0, 2, 3, 302} {
			want := entry(s)
			for _, get := range []func() (store.Entry, error){
				func() (store.Entry, error) { return d.Entry(ctx, s) },
				func() (store.Entry, error) { return d.EntryByID(ctx, want.ID) },
			} {
				e, err := get()
				if err != nil || e.Seq != s || e.ID != want.ID || !bytes.Equal(e.Salt, want.Salt) || !bytes.Equal(e.Body, want.Body) {
					t.Errorf("entry %d = %+v, %v", s, e, err)
				}
			}
		}
		hs, err := d.ReadHashes(ctx, []int64{0, 5, 599})
		if err != nil || hs[0] != hash(0) || hs[1] != hash(5) || hs[2] != hash(599) {
			t.Errorf("ReadHashes = %v, %v", hs, err)
		}
		var seqs []int64
		if err := d.ScanEntries(ctx, 300, func(e store.Entry) error { seqs = append(seqs, e.Seq); return nil }); err != nil || fmt.Sprint(seqs) != "[300 301 302]" {
			t.Errorf("ScanEntries from 300 = %v, %v", seqs, err)
		}
		var n int64
		if err := d.ScanHashes(ctx, 0, func(idx int64, h tlog.Hash) error {
			if idx != n || h != hash(idx) {
				return fmt.Errorf("hash %d at position %d", idx, n)
			}
			n++
			return nil
		}); err != nil || n != tlog.StoredHashCount(303) {
			t.Errorf("ScanHashes: %d, %v", n, err)
		}
		tail, err := d.Tail(ctx, 2)
		if err != nil || len(tail) != 2 || tail[0].Seq != 301 || tail[1].Seq != 302 {
			t.Errorf("Tail(2) = %v, %v", tail, err)
		}
	})
	t.Run("AppendMustContinue", func(t *testing.T) {
		d := open(t)
		if err := d.Append(ctx, Batch(0, 5)); err != nil {
			t.Fatal(err)
		}
		for name, b := range map[string]store.Batch{"gap": Batch(6, 2), "overlap": Batch(4, 2), "restart": Batch(0, 1)} {
			if err := d.Append(ctx, b); !errors.Is(err, store.ErrOutOfOrder) && !errors.Is(err, store.ErrDuplicateID) {
				t.Errorf("%s: %v, want ErrOutOfOrder", name, err)
			}
		}
		if n, _ := d.Size(ctx); n != 5 {
			t.Errorf("Size = %d after refused batches, want 5", n)
		}
	})
	t.Run("DuplicateIDWritesNothing", func(t *testing.T) {
		d := open(t)
		if err := d.Append(ctx, Batch(0, 5)); err != nil {
			t.Fatal(err)
		}
		b := Batch(5, 3)
		b.Entries[2].ID = "id-1"
		if err := d.Append(ctx, b); !errors.Is(err, store.ErrDuplicateID) {
			t.Fatalf("Append = %v, want ErrDuplicateID", err)
		}
		if n, _ := d.Size(ctx); n != 5 {
			t.Errorf("Size = %d: part of a refused batch was written", n)
		}
		if n, _ := d.HashCount(ctx); n != tlog.StoredHashCount(5) {
			t.Errorf("HashCount = %d: hashes of a refused batch were written", n)
		}
	})
	t.Run("Find", func(t *testing.T) { testFind(t, open) })
	t.Run("ToolCalls", func(t *testing.T) { testToolCalls(t, open) })
	t.Run("Retention", func(t *testing.T) { testRetention(t, open) })
	t.Run("Checkpoints", func(t *testing.T) {
		d := open(t)
		for _, n := range []int64{3, 10, 7} {
			if err := d.AddCheckpoint(ctx, store.Checkpoint{Size: n, Note: fmt.Appendf(nil, "note %d\n", n)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := d.AddCheckpoint(ctx, store.Checkpoint{Size: 10, Note: []byte("again\n")}); err == nil {
			t.Error("a second checkpoint of the same size was stored")
		}
		c, err := d.LatestCheckpoint(ctx)
		if err != nil || c.Size != 10 || string(c.Note) != "note 10\n" {
			t.Errorf("LatestCheckpoint = %+v, %v", c, err)
		}
		all, err := d.Checkpoints(ctx)
		if err != nil || len(all) != 3 || all[0].Size != 3 || all[1].Size != 7 || all[2].Size != 10 {
			t.Errorf("Checkpoints = %+v, %v", all, err)
		}
	})
}
