package ledger

import (
	"fmt"
	"maps"

	"golang.org/x/mod/sumdb/tlog"
)

// frontier is a Merkle tree held as its right edge only: the hashes of the complete subtrees
// that make up a tree of size n. tlog needs nothing else to add a record or compute the root, so
// the writer and the verifier grow trees of any size in constant memory.
type frontier struct {
	n int64
	m map[int64]tlog.Hash // stored-hash index -> hash, for frontierIndexes(n) (and, mid-batch, more)
}

func newFrontier(n int64, hashes map[int64]tlog.Hash) *frontier {
	if hashes == nil {
		hashes = map[int64]tlog.Hash{}
	}
	return &frontier{n: n, m: hashes}
}

func (f *frontier) clone() *frontier { return &frontier{n: f.n, m: maps.Clone(f.m)} }

// ReadHashes implements tlog.HashReader over the frontier.
func (f *frontier) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		h, ok := f.m[x]
		if !ok {
			return nil, fmt.Errorf("ledger: tree hash %d is not on the frontier of a tree of size %d", x, f.n)
		}
		out[i] = h
	}
	return out, nil
}

// add appends a record with the given leaf hash and returns the hashes a store must keep for it
// (tlog's stored hashes, starting at StoredHashIndex(0, old size)).
func (f *frontier) add(leaf tlog.Hash) ([]tlog.Hash, error) {
	hs, err := tlog.StoredHashesForRecordHash(f.n, leaf, f)
	if err != nil {
		return nil, err
	}
	base := tlog.StoredHashIndex(0, f.n)
	for j, h := range hs {
		f.m[base+int64(j)] = h
	}
	f.n++
	return hs, nil
}

// prune drops every hash not on the frontier, keeping the map small.
func (f *frontier) prune() {
	if len(f.m) <= 64 {
		keep := frontierIndexes(f.n)
		for x := range f.m {
			if !containsIndex(keep, x) {
				delete(f.m, x)
			}
		}
		return
	}
	m := make(map[int64]tlog.Hash, 64)
	for _, x := range frontierIndexes(f.n) {
		m[x] = f.m[x]
	}
	f.m = m
}

func containsIndex(xs []int64, x int64) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// root returns the tree hash of the frontier's tree.
func (f *frontier) root() (tlog.Hash, error) { return tlog.TreeHash(f.n, f) }

// frontierIndexes returns the stored-hash indexes of the complete subtrees that make up a tree of
// size n.
func frontierIndexes(n int64) []int64 {
	var idx []int64
	for level := 0; n>>level > 0; level++ {
		if (n>>level)&1 == 1 {
			idx = append(idx, tlog.StoredHashIndex(level, (n>>level)-1))
		}
	}
	return idx
}

// compactRange is a tree grown leaf by leaf keeping only the hashes of its complete subtrees
// (levels[l] is the level-l subtree's hash when bit l of n is set): what verification needs to
// rebuild a log's tree in order, without the frontier's map and the allocations of
// tlog.StoredHashesForRecordHash per record.
type compactRange struct {
	n      int64
	levels [64]tlog.Hash
}

// add appends a record with the given leaf hash and returns its stored hashes, as frontier.add
// does (the leaf, then one parent per trailing 1-bit of the old size), in buf's memory.
func (c *compactRange) add(leaf tlog.Hash, buf []tlog.Hash) []tlog.Hash {
	hs, h := append(buf[:0], leaf), leaf
	for l := 0; c.n>>l&1 == 1; l++ {
		h = tlog.NodeHash(c.levels[l], h)
		hs = append(hs, h)
	}
	c.levels[len(hs)-1] = h
	c.n++
	return hs
}

// root returns the tree hash of the range's tree.
func (c *compactRange) root() (tlog.Hash, error) { return tlog.TreeHash(c.n, c) }

// ReadHashes implements tlog.HashReader for TreeHash, which reads only the complete subtrees.
func (c *compactRange) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		l, k := tlog.SplitStoredHashIndex(x)
		if c.n>>l&1 == 0 || k != c.n>>l-1 {
			return nil, fmt.Errorf("ledger: tree hash %d is not a complete subtree of a tree of size %d", x, c.n)
		}
		out[i] = c.levels[l]
	}
	return out, nil
}
