package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
	"testing"

	"golang.org/x/mod/sumdb/tlog"
)

// TestCompactRangeIsTheFrontier: verification's compactRange gives, record after record, the
// stored hashes and roots the writer's frontier (tlog's own functions) gives.
func TestCompactRangeIsTheFrontier(t *testing.T) {
	f := newFrontier(0, nil)
	var c compactRange
	var buf [64]tlog.Hash
	for n := int64(0); n < 3000; n++ {
		var b [8]byte
		binary.BigEndian.PutUint64(b[:], uint64(n))
		leaf := tlog.Hash(sha256.Sum256(b[:]))
		want, err := f.add(leaf)
		if err != nil {
			t.Fatal(err)
		}
		if got := c.add(leaf, buf[:0]); !slices.Equal(got, want) {
			t.Fatalf("record %d: stored hashes %x, frontier %x", n, got, want)
		}
		if n%97 == 0 {
			f.prune()
		}
		wantRoot, err := f.root()
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.root(); err != nil || got != wantRoot {
			t.Fatalf("size %d: root %x, %v; frontier %x", n+1, got, err, wantRoot)
		}
	}
}
