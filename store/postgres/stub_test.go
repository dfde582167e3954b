package postgres_test

import (
	"context"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/store"
)

// A purged entry in a batch (a copied log's) is stored as the stub Erase leaves: seq, id and
// purged_by, no salt or body; the intact entries beside it keep theirs.
func TestAppendPurgedStub(t *testing.T) {
	ctx := context.Background()
	s := open(t)
	b := store.Batch{Entries: []store.Entry{
		{Seq: 0, ID: "kept", Salt: make([]byte, 16), Body: []byte(`{"kind":"custom"}`)},
		{Seq: 1, ID: "gone", PurgedBy: 2},
		{Seq: 2, ID: "purge", Salt: make([]byte, 16), Body: []byte(`{"kind":"purge"}`)},
	}, Hashes: make([]tlog.Hash, tlog.StoredHashCount(3))}
	if err := s.Append(ctx, b); err != nil {
		t.Fatal(err)
	}
	for _, want := range b.Entries {
		got, err := s.Entry(ctx, want.Seq)
		if err != nil || got.ID != want.ID || got.PurgedBy != want.PurgedBy || string(got.Body) != string(want.Body) || len(got.Salt) != len(want.Salt) {
			t.Errorf("seq %d: %+v, %v; want %+v", want.Seq, got, err, want)
		}
	}
}
