package retention_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/retention"
)

// An auditor's verify that runs while a purge erases bodies (in many transactions) and agents
// keep appending judges the log as it stood when it started: a body erased after that instant by
// a purge event committed after it is accounted for, and nothing is reported.
func TestVerifyDuringPurge(t *testing.T) {
	retention.SetLimits(50_000, 50) // erase in transactions of 50 bodies
	defer retention.SetLimits(50_000, 10_000)
	ctx := context.Background()
	f := newFixture(t, retention.Default())
	var evs []*event.Event
	for i := range 2000 {
		evs = append(evs, tool(fmt.Sprintf("gen-%d", i), "lookup_order", fmt.Sprintf("s-%d", i/100), nil))
	}
	f.append(t, evs...)
	if _, err := f.w.SignCheckpoint(ctx); err != nil {
		t.Fatal(err)
	}
	v, err := f.dir.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Set(t0.AddDate(1, 0, 1))

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // agents keep appending
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := f.w.AppendBatch(ctx, []*event.Event{tool(fmt.Sprintf("new-%d", i), "lookup_order", "s-new", nil)}); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	verified := 0
	go func() { // the auditor verifies over and over
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			rep, err := ledger.Verify(ctx, f.w.Store, v, ledger.VerifyOptions{})
			if err != nil {
				for _, p := range rep.Problems {
					t.Error(p)
				}
				t.Errorf("verify during the purge: %v", err)
				return
			}
			verified++
		}
	}()
	got, err := f.m.Apply(ctx, "ops")
	close(stop)
	wg.Wait()
	if err != nil || got.Erased != 2000 {
		t.Fatalf("apply: %+v, %v", got, err)
	}
	t.Logf("%d verifications ran during the purge", verified)
	f.verify(t, nil)
}
