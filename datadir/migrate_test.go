package datadir_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/pgtest"
	"github.com/agentaudit/agentaudit/ledger"
)

// Migrate's refusals are errors callers can branch on: a missing source, a URL naming no
// PostgreSQL database, a target that is not empty, the directory held by a writer.
func TestMigrateErrors(t *testing.T) {
	ctx := context.Background()
	d := datadir.Dir{Path: filepath.Join(t.TempDir(), "data")}
	if _, err := d.Init(ctx, ""); err != nil {
		t.Fatal(err)
	}
	w, err := d.OpenWriter(ctx, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Append(ctx, &event.Event{ID: "e-1", Kind: event.KindCustom}); err != nil {
		t.Fatal(err)
	}
	url := pgtest.NewDB(t)
	if _, err := d.Migrate(ctx, url, datadir.MigrateOptions{}); !errors.Is(err, datadir.ErrLocked) {
		t.Errorf("Migrate while a writer holds the directory: %v, want ErrLocked", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := d.Migrate(ctx, url, datadir.MigrateOptions{})
	if err != nil || rep.Events != 1 || rep.Checkpoints == 0 || !rep.Verify.OK() {
		t.Fatalf("Migrate = %+v, %v", rep, err)
	}
	for _, c := range []struct {
		name string
		dir  datadir.Dir
		url  string
		want error
	}{
		{"target not empty", d, url, datadir.ErrTargetNotEmpty},
		{"no source", datadir.Dir{Path: t.TempDir()}, pgtest.NewDB(t), datadir.ErrNotInitialized},
		{"not postgres", d, "sqlite:///x.db", datadir.ErrStoreURL},
	} {
		if _, err := c.dir.Migrate(ctx, c.url, datadir.MigrateOptions{}); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}

// A migration interrupted after its first batch leaves a partial copy that a rerun refuses
// (the copy is not resumable), and the source, only ever read, still verifies.
func TestMigrateInterrupted(t *testing.T) {
	ctx := context.Background()
	d := datadir.Dir{Path: filepath.Join(t.TempDir(), "data")}
	if _, err := d.Init(ctx, ""); err != nil {
		t.Fatal(err)
	}
	w, err := d.OpenWriter(ctx, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var evs []*event.Event
	for i := range 50 {
		evs = append(evs, &event.Event{ID: fmt.Sprint("e-", i), Kind: event.KindCustom})
	}
	if _, err := w.AppendBatch(ctx, evs); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	url := pgtest.NewDB(t)
	cctx, cancel := context.WithCancel(ctx)
	_, err = d.Migrate(cctx, url, datadir.MigrateOptions{Batch: 10, Progress: func(copied, total int64) {
		if copied == 10 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Migrate cancelled after a batch: %v", err)
	}
	if _, err := d.Migrate(ctx, url, datadir.MigrateOptions{}); !errors.Is(err, datadir.ErrTargetNotEmpty) {
		t.Errorf("rerun on the partial copy: %v, want ErrTargetNotEmpty", err)
	}
	st, err := d.OpenStore(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	v, err := d.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	if rep, err := ledger.Verify(ctx, st, v, ledger.VerifyOptions{}); err != nil || rep.Events != 50 {
		t.Errorf("the source after an interrupted migration: %+v, %v", rep, err)
	}
	if _, err := d.Migrate(ctx, pgtest.NewDB(t), datadir.MigrateOptions{}); err != nil {
		t.Errorf("a rerun into a new database: %v", err)
	}
}
