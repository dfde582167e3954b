package sqlite_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

// The filter alone: every id added tests positive however far it grew past the room it was
// made with, and few of the ids never added do (1 in 2,000 at full load).
func TestIDFilterBloom(t *testing.T) {
	f := sqlite.NewIDFilter(0)
	const n = 300_000 // past its first room (65,536) twice
	for i := range n {
		f.Add(fmt.Sprintf("evt-%d", i))
	}
	if f.Parts() < 3 {
		t.Errorf("%d parts for %d ids: it did not grow", f.Parts(), n)
	}
	for i := range n {
		if !f.MayHold(fmt.Sprintf("evt-%d", i)) {
			t.Fatalf("evt-%d was added and tests negative", i)
		}
	}
	fp := 0
	for i := range n {
		if f.MayHold(fmt.Sprintf("other-%d", i)) {
			fp++
		}
	}
	if rate := float64(fp) / n; rate > 0.002 {
		t.Errorf("%.2f%% of ids never added test positive; want under 0.2%%", 100*rate)
	}
	// Its size comes from the file's log end, which a forged seq can make anything: the first part
	// is capped (this ran out of memory before).
	sqlite.NewIDFilter(1 << 40)
}

// TestIDFilter: a reopened store loads a filter of the ids stored before. Append then still
// refuses every stored id, and asks the id index about only the few new ids the filter cannot
// rule out, where before it asked about every one. Ids acknowledged while the filter loads,
// after its snapshot of the database was taken, are refused too.
func TestIDFilter(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	const stored = 2000
	for from := int64(0); from < stored; from += 100 {
		ids := make([]string, 100)
		for i := range ids {
			ids[i] = fmt.Sprintf("old-%d", from+int64(i))
		}
		if err := st.Append(ctx, batchWithIDs(from, ids...)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Reopen with the filter's load paused inside its scan: appends go on meanwhile.
	paused, resume := make(chan struct{}), make(chan struct{})
	sqlite.PauseIDScan(t, func() {
		close(paused)
		<-resume
	})
	st, err = sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	<-paused
	size := int64(stored)
	for i := range 50 {
		if err := st.Append(ctx, batchWithIDs(size, fmt.Sprintf("during-%d", i))); err != nil {
			t.Fatal(err)
		}
		size++
	}
	if _, err := st.Size(ctx); err != nil { // applied: no longer pending, only in the database
		t.Fatal(err)
	}
	if got := sqlite.Lookups(st); got != 50 {
		t.Errorf("%d ids looked up before the filter loaded; want every one (50)", got)
	}
	close(resume)
	if !sqlite.WaitIDFilter(st) {
		t.Fatal("the id filter did not load")
	}

	before := sqlite.Lookups(st)
	refused := 0
	for _, id := range []string{"old-0", "old-1", "old-999", "old-1999", "during-0", "during-49"} {
		if err := st.Append(ctx, batchWithIDs(size, "new-x", id)); !errors.Is(err, store.ErrDuplicateID) {
			t.Errorf("append of stored id %s: %v, want store.ErrDuplicateID", id, err)
		}
		refused++
	}
	const fresh = 1000
	for i := range fresh {
		if err := st.Append(ctx, batchWithIDs(size, fmt.Sprintf("new-%d", i))); err != nil {
			t.Fatal(err)
		}
		size++
	}
	// Each refused batch asked about its stored id (and maybe new-x); of the fresh ids, only the
	// filter's false positives were asked about.
	asked := sqlite.Lookups(st) - before
	if asked < int64(refused) || asked > int64(2*refused+fresh/20) {
		t.Errorf("%d ids looked up for %d refused batches and %d fresh ids", asked, refused, fresh)
	}
	if n, err := st.Size(ctx); err != nil || n != size {
		t.Fatalf("size %d, %v; want %d", n, err, size)
	}
}
