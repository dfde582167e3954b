package ledger_test

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
)

// TestDriversCrashChild is the appending process TestDriversCrashSafety kills; it runs only
// when asked, on the backend and store location it is given.
func TestDriversCrashChild(t *testing.T) {
	name, loc := os.Getenv("AGENTAUDIT_CRASH_BACKEND"), os.Getenv("AGENTAUDIT_CRASH_LOC")
	if name == "" {
		t.Skip("run by TestDriversCrashSafety")
	}
	var b backend
	for _, x := range backends {
		if x.name == name {
			b = x
		}
	}
	s, _ := note.NewSigner(os.Getenv("AGENTAUDIT_CRASH_SKEY"))
	v, _ := note.NewVerifier(os.Getenv("AGENTAUDIT_CRASH_VKEY"))
	st, err := b.open(context.Background(), loc)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	l, err := ledger.Open(context.Background(), st, s, v, ledger.Options{Sanitizer: ledger.Unsanitized, CheckpointInterval: 5 * time.Millisecond})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	run := os.Getenv("AGENTAUDIT_CRASH_RUN")
	var mu sync.Mutex
	for w := 0; w < 8; w++ {
		go func() {
			evs := make([]*event.Event, 1+w%4) // single events and small batches
			for i := 0; ; i += len(evs) {
				for j := range evs {
					evs[j] = toolEvent(i + j)
					evs[j].ID = fmt.Sprintf("%s-%d-%d", run, w, i+j)
				}
				res, err := l.AppendBatch(context.Background(), evs)
				if err != nil {
					fmt.Println("append:", err)
					os.Exit(4)
				}
				mu.Lock()
				for _, r := range res {
					if r.Err != nil {
						fmt.Println("append:", r.Err)
						os.Exit(4)
					}
					// One write(2) per line: the parent sees exactly the acknowledged events.
					os.Stdout.WriteString(fmt.Sprintf("ack %s %d\n", r.Receipt.ID, r.Receipt.Seq))
				}
				mu.Unlock()
			}
		}()
	}
	select {}
}

// TestDriversCrashSafety kills a process appending to PostgreSQL with SIGKILL at random moments,
// ten times, and checks after each that every acknowledged event is stored exactly once at its
// seq, that the ledger reopens (the stored tree reproduces every signed checkpoint) and that the
// log verifies. TestCrashSafety does the same on SQLite.
func TestDriversCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test is not short")
	}
	for _, b := range backends {
		if b.name == "sqlite" {
			continue // TestCrashSafety
		}
		t.Run(b.name, func(t *testing.T) {
			loc := b.create(t)
			skey, vkey, _ := ledger.GenerateKey(origin)
			s, _ := note.NewSigner(skey)
			v, _ := note.NewVerifier(vkey)
			acked := map[string]int64{}
			const runs = 10
			for run := range runs {
				cmd := exec.Command(os.Args[0], "-test.run=^TestDriversCrashChild$", "-test.v=false")
				cmd.Env = append(os.Environ(), "AGENTAUDIT_CRASH_BACKEND="+b.name, "AGENTAUDIT_CRASH_LOC="+loc,
					"AGENTAUDIT_CRASH_SKEY="+skey, "AGENTAUDIT_CRASH_VKEY="+vkey, fmt.Sprintf("AGENTAUDIT_CRASH_RUN=r%d", run))
				out, err := cmd.StdoutPipe()
				if err != nil {
					t.Fatal(err)
				}
				if err := cmd.Start(); err != nil {
					t.Fatal(err)
				}
				lines := make(chan string, 1024)
				go func() {
					sc := bufio.NewScanner(out)
					for sc.Scan() {
						lines <- sc.Text()
					}
					close(lines)
				}()
				first, ok := <-lines
				if !ok {
					cmd.Wait()
					t.Fatalf("run %d: child exited before appending", run)
				}
				time.Sleep(time.Duration(rand.IntN(300)) * time.Millisecond)
				cmd.Process.Signal(syscall.SIGKILL)
				n := 0
				for _, line := range append([]string{first}, drain(lines)...) {
					var id string
					var seq int64
					if _, err := fmt.Sscanf(line, "ack %s %d", &id, &seq); err != nil {
						t.Fatalf("run %d: child said %q", run, line)
					}
					acked[id] = seq
					n++
				}
				cmd.Wait()

				st, err := b.open(context.Background(), loc)
				if err != nil {
					t.Fatalf("run %d: reopen: %v", run, err)
				}
				for id, seq := range acked {
					e, err := st.EntryByID(context.Background(), id)
					if err != nil || e.Seq != seq {
						t.Fatalf("run %d: acknowledged event %s (seq %d) lost after the crash: %v", run, id, seq, err)
					}
				}
				l, err := ledger.Open(context.Background(), st, s, v, ledger.Options{Sanitizer: ledger.Unsanitized})
				if err != nil {
					t.Fatalf("run %d: the ledger does not reopen after a crash: %v", run, err)
				}
				l.Close()
				rep, err := ledger.Verify(context.Background(), st, v, ledger.VerifyOptions{})
				if err != nil {
					t.Fatalf("run %d: verify after crash: %v", run, err)
				}
				// Exactly once: no id twice (the unique index) and no entry beyond the acknowledged
				// ones but those the killed process committed and could not report.
				if rep.Events < int64(len(acked)) {
					t.Fatalf("run %d: %d entries, %d acknowledged", run, rep.Events, len(acked))
				}
				st.Close()
				t.Logf("run %d: %d acknowledged this run, log of %d verifies", run, n, rep.Events)
			}
		})
	}
}
