package ledger_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

// fillUntilFull appends batches until the store reports a full disk, and returns how many events
// were acknowledged.
func fillUntilFull(t *testing.T, l *ledger.Ledger) int64 {
	t.Helper()
	var acked int64
	for i := 0; i < 100000; i++ {
		evs := make([]*event.Event, 50)
		for j := range evs {
			evs[j] = kibEvent(int64(i*50 + j))
		}
		res, err := l.AppendBatch(context.Background(), evs)
		if err != nil {
			if !errors.Is(err, store.ErrNoSpace) {
				t.Fatalf("append on a full disk: %v, want store.ErrNoSpace", err)
			}
			if strings.Contains(err.Error(), "bench-") {
				t.Errorf("the error quotes event content: %v", err)
			}
			return acked
		}
		acked += int64(len(res))
	}
	t.Fatal("the disk never filled")
	return 0
}

// checkIntact reopens the store without limits and checks that exactly the acknowledged events
// are there and the log verifies: nothing half-written.
func checkIntact(t *testing.T, f *fixture, acked int64) {
	t.Helper()
	f.open(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	if h := f.l.Head(); h.N != acked {
		t.Fatalf("after the full disk the log has %d events, %d were acknowledged", h.N, acked)
	}
	if err := f.l.Close(); err != nil {
		t.Fatalf("final checkpoint: %v", err)
	}
	f.l = nil
	rep, err := ledger.Verify(context.Background(), f.st, f.v, ledger.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify after a full disk: %v", err)
	}
	if rep.Events != acked {
		t.Fatalf("verified %d events, want %d", rep.Events, acked)
	}
}

func TestFullDatabase(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	f.close()
	// A page cap makes SQLite answer SQLITE_FULL exactly as a full volume does.
	var err error
	if f.st, err = sqlite.Open(context.Background(), sqlite.Config{Path: f.db, MaxPages: 300}); err != nil {
		t.Fatal(err)
	}
	if f.l, err = ledger.Open(context.Background(), f.st, f.signer, f.v, ledger.Options{Sanitizer: ledger.Unsanitized}); err != nil {
		t.Fatal(err)
	}
	acked := fillUntilFull(t, f.l)
	if acked == 0 {
		t.Fatal("nothing fit before the cap")
	}
	f.close()
	checkIntact(t, f, acked)
}

func TestFullVolume(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	f.close()
	dir := testenv.MountTmpfs(t, "3m")
	f.db = filepath.Join(dir, "ledger.db")
	f.open(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	acked := fillUntilFull(t, f.l)
	f.close()
	// Make room, as an operator would, and check nothing acknowledged was lost or half-written.
	testenv.ResizeTmpfs(t, dir, "16m")
	checkIntact(t, f, acked)
}

func TestReadOnlyVolume(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	f.close()
	dir := testenv.MountTmpfs(t, "8m")
	f.db = filepath.Join(dir, "ledger.db")
	f.open(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	appendN(t, f.l, 0, 20)
	f.close()
	testenv.RemountReadOnly(t, dir)
	_, err := sqlite.Open(context.Background(), sqlite.Config{Path: f.db})
	if !errors.Is(err, store.ErrReadOnly) || !strings.Contains(err.Error(), dir) {
		t.Fatalf("opening a read-only volume for writing: %v; want store.ErrReadOnly naming %s", err, dir)
	}
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: f.db, ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open of a read-only volume: %v", err)
	}
	defer st.Close()
	if rep, err := ledger.Verify(context.Background(), st, f.v, ledger.VerifyOptions{}); err != nil || rep.Events != 20 {
		t.Fatalf("verify on a read-only volume: %v %+v", err, rep)
	}
}
