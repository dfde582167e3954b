package retention_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/retention"
)

// TestApplyCrashChild is the process TestApplyCrash kills: it appends a thousand events
// recorded a year and two days ago, then purges them; it runs only when asked.
func TestApplyCrashChild(t *testing.T) {
	dir := os.Getenv("AGENTAUDIT_PURGE_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestApplyCrash")
	}
	retention.SetLimits(250, 80) // many purge events and erase transactions per apply
	f := &fixture{dir: datadir.Dir{Path: dir}, clock: &clock{t: t0}}
	f.open(t, retention.Default())
	run := os.Getenv("AGENTAUDIT_PURGE_CRASH_RUN")
	evs := make([]*event.Event, 1000)
	for i := range evs {
		evs[i] = tool(fmt.Sprintf("%s-%d", run, i), "lookup_order", "s-"+run, nil)
	}
	f.append(t, evs...)
	f.clock.Set(t0.AddDate(1, 0, 2))
	fmt.Println("applying")
	res, err := f.m.Apply(context.Background(), "crash-test")
	if err != nil {
		fmt.Println("apply:", err)
		os.Exit(4)
	}
	fmt.Printf("done %d\n", res.Erased)
	f.w.Close()
}

// TestApplyCrash kills `retention apply` with SIGKILL at random moments, 20 times: after each
// crash the log verifies — every event is intact, or erased and covered by a purge event — and
// the next apply finishes what the killed one started.
func TestApplyCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("kills child processes; -short")
	}
	ctx := context.Background()
	dir := datadir.Dir{Path: t.TempDir()}
	if _, err := dir.Init(ctx, "test.agentaudit.local/log"); err != nil {
		t.Fatal(err)
	}
	// A first signed checkpoint: a log killed before it ever signed one has nothing to verify
	// against (no_checkpoint), which is not what this test is about.
	first := &fixture{dir: dir, clock: &clock{t: t0}}
	first.open(t, retention.Default())
	first.append(t, tool("first", "lookup_order", "s0", nil))
	if err := first.w.Close(); err != nil {
		t.Fatal(err)
	}
	var pendingSeen, killedMidway int
	for run := range 20 {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestApplyCrashChild$", "-test.v")
		cmd.Env = append(os.Environ(), "AGENTAUDIT_PURGE_CRASH_DIR="+dir.Path, fmt.Sprintf("AGENTAUDIT_PURGE_CRASH_RUN=r%d", run))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := bufio.NewScanner(out)
		done := false
		for lines.Scan() {
			if lines.Text() == "applying" {
				break
			}
		}
		time.Sleep(time.Duration(rand.IntN(250)) * time.Millisecond)
		cmd.Process.Kill()
		for lines.Scan() {
			done = done || strings.HasPrefix(lines.Text(), "done")
		}
		cmd.Wait()
		if !done {
			killedMidway++
		}

		r, err := func() (*ledger.Report, error) {
			st, err := dir.OpenStore(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			v, _ := dir.Verifier()
			return ledger.Verify(ctx, st, v, ledger.VerifyOptions{})
		}()
		if err != nil {
			for _, p := range r.Problems {
				t.Error(p)
			}
			t.Fatalf("run %d: verify after SIGKILL: %v", run, err)
		}
		if r.PendingPurge > 0 {
			pendingSeen++
		}
	}
	// Finish: the next apply completes every interrupted purge and erases what is due.
	f := &fixture{dir: dir, clock: &clock{t: t0.AddDate(1, 0, 2)}}
	f.open(t, retention.Default())
	defer f.w.Close()
	if _, err := f.m.Apply(ctx, "final"); err != nil {
		t.Fatal(err)
	}
	r := f.verify(t, nil)
	if r.Purged != 20*1000+1 || r.PendingPurge != 0 {
		t.Errorf("after the final apply: %d purged, %d pending; want %d, 0", r.Purged, r.PendingPurge, 20*1000+1)
	}
	t.Logf("20 kills: %d in the middle of an apply, %d left a purge recorded but not finished (each verified, then finished)", killedMidway, pendingSeen)
	if killedMidway == 0 {
		t.Error("no kill landed inside an apply: the test did not test anything")
	}
}
