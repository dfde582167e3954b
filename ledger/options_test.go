package ledger_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

// TestOpenRefusesBadOptions: a negative limit or a missing sanitizer is refused with the
// option's name, instead of silently becoming a default (or an unsanitized log).
func TestOpenRefusesBadOptions(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	f.close()
	for _, tc := range []struct {
		name string
		opts ledger.Options
	}{
		{"MaxEventBytes", ledger.Options{Sanitizer: ledger.Unsanitized, MaxEventBytes: -1}},
		{"MaxBatch", ledger.Options{Sanitizer: ledger.Unsanitized, MaxBatch: -5}},
		{"QueueSize", ledger.Options{Sanitizer: ledger.Unsanitized, QueueSize: -1}},
		{"CheckpointInterval", ledger.Options{Sanitizer: ledger.Unsanitized, CheckpointInterval: -time.Second}},
		{"Sanitizer", ledger.Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, err := sqlite.Open(context.Background(), sqlite.Config{Path: f.db})
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			l, err := ledger.Open(context.Background(), st, f.signer, f.v, tc.opts)
			if err == nil {
				l.Close()
				t.Fatal("opened")
			}
			if !errors.Is(err, ledger.ErrOption) || !strings.Contains(err.Error(), tc.name) {
				t.Errorf("error %q does not name %s", err, tc.name)
			}
		})
	}
}

// TestSubmitReturnsBeforeCommit: Submit refuses invalid events at once, queues the rest in
// order, and reports the commit through its callback; Flush waits for everything before it.
func TestSubmitReturnsBeforeCommit(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	ctx := context.Background()
	evs := []*event.Event{toolEvent(1), {Kind: "nope"}, toolEvent(2)}
	done := make(chan []ledger.Result, 1)
	refused, err := f.l.Submit(ctx, evs, true, func(r []ledger.Result, err error) {
		if err != nil {
			t.Error(err)
		}
		done <- r
	})
	if err != nil {
		t.Fatal(err)
	}
	var fe *event.FieldError
	if len(refused) != 3 || refused[0] != nil || !errors.As(refused[1], &fe) || fe.Field != "kind" {
		t.Fatalf("refusal not at once: %v", refused)
	}
	if err := f.l.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-done:
		if r[0].Err != nil || r[1].Err != refused[1] || r[2].Err != nil || r[2].Seq != r[0].Seq+1 {
			t.Errorf("results %+v", r)
		}
	default:
		t.Fatal("Flush returned before the earlier submission was committed")
	}
	if evs[0].ID == "" {
		t.Error("Submit did not give the event its id in the caller's goroutine")
	}
	// Nothing valid: all refused at once, and the callback is not called.
	called := false
	refused, err = f.l.Submit(ctx, []*event.Event{{}}, true, func([]ledger.Result, error) { called = true })
	if err != nil || len(refused) != 1 || refused[0] == nil {
		t.Errorf("all refused: %v %v", refused, err)
	}
	f.l.Flush(ctx)
	if called {
		t.Error("callback called for a request that queued nothing")
	}
}
