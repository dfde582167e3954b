package ledger_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/ledger"
)

// Verification of a log that is being written (an auditor runs verify beside serve) judges the
// log as it stood at one instant: no problem comes from a commit landing between its reads.
// (Before the extent, this failed within a few rounds: events committed after the tree hashes
// were read showed as inserted, or the other way round as missing hashes.)
func TestDriversVerifyWhileWriting(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		f := newDFix(t, b)
		appendN(t, f.l, 0, 500)
		f.sign(t)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			// At most 5,000 more events: appends to SQLite's intake outrun a verification of
			// the whole log many times over under the race detector.
			for i := 500; i < 5500; i += 20 {
				select {
				case <-stop:
					return
				default:
				}
				appendN(t, f.l, i, 20)
				time.Sleep(2 * time.Millisecond)
			}
		}()
		defer func() { close(stop); wg.Wait() }()
		for range 20 {
			rep, err := ledger.Verify(context.Background(), f.st, f.v, ledger.VerifyOptions{})
			if err != nil {
				t.Fatalf("verify while writing (%d events): %v", rep.Events, err)
			}
		}
	})
}
