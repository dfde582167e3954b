package datadir_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/pgtest"
	"github.com/agentaudit/agentaudit/ledger"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Several writers on one PostgreSQL database, from several data directories holding the same
// keys (several machines), append at once; a reader opens beside them; the log verifies.
func TestPostgresSeveralWriters(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	a, b := datadir.Dir{Path: t.TempDir(), Store: url}, datadir.Dir{Path: t.TempDir(), Store: url}
	if _, err := a.Init(ctx, ""); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"signing.key", "verifier.key", "pseudonym.key"} { // the same keys on another machine
		data, err := os.ReadFile(filepath.Join(a.Path, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(b.Path, f), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wa, err := a.OpenWriter(ctx, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	wb, err := b.OpenWriter(ctx, ledger.Options{})
	if err != nil {
		t.Fatalf("second writer: %v", err)
	}
	for i, w := range []*datadir.Writer{wa, wb, wa, wb} {
		ev := &event.Event{ID: fmt.Sprint("ev-", i), Kind: event.KindCustom}
		if r, err := w.Append(ctx, ev); err != nil || r.Seq != int64(i) {
			t.Fatalf("append %d: seq %d, %v", i, r.Seq, err)
		}
	}
	st, err := b.OpenStore(ctx)
	if err != nil {
		t.Fatalf("reader beside the writers: %v", err)
	}
	defer st.Close()
	if err := errors.Join(wa.Close(), wb.Close()); err != nil {
		t.Fatal(err)
	}
	v, err := a.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := ledger.Verify(ctx, st, v, ledger.VerifyOptions{}); err != nil || !rep.OK() || rep.SignedSize != 4 {
		t.Errorf("verify: %+v %v", rep, err)
	}
}
