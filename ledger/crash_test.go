package ledger_test

import (
	"bufio"
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

// TestCrashChild is the appending process that TestCrashSafety kills; it runs only when asked.
func TestCrashChild(t *testing.T) {
	dir := os.Getenv("AGENTAUDIT_CRASH_DIR")
	if dir == "" {
		t.Skip("run by TestCrashSafety")
	}
	skey, _ := os.ReadFile(filepath.Join(dir, "signing.key"))
	vkey, _ := os.ReadFile(filepath.Join(dir, "verifier.key"))
	s, _ := note.NewSigner(string(skey))
	v, _ := note.NewVerifier(string(vkey))
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "ledger.db")})
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
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				ev := toolEvent(i)
				ev.ID = fmt.Sprintf("%s-%d-%d", run, w, i)
				r, err := l.Append(context.Background(), ev)
				if err != nil {
					fmt.Println("append:", err)
					os.Exit(4)
				}
				mu.Lock()
				// One write(2) per line: the parent sees exactly the acknowledged events.
				os.Stdout.WriteString(fmt.Sprintf("ack %s %d\n", r.ID, r.Seq))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}

// TestCrashSafety kills an appending process with SIGKILL at random moments and checks, after
// each crash, that every acknowledged event is stored at its seq and the log verifies.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("crash test is not short")
	}
	dir := t.TempDir()
	skey, vkey, _ := ledger.GenerateKey(origin)
	os.WriteFile(filepath.Join(dir, "signing.key"), []byte(skey), 0o600)
	os.WriteFile(filepath.Join(dir, "verifier.key"), []byte(vkey), 0o644)
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	acked := map[string]int64{}
	intakeOnly := 0
	const runs = 20
	for run := 0; run < runs; run++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
		cmd.Env = append(os.Environ(), "AGENTAUDIT_CRASH_DIR="+dir, fmt.Sprintf("AGENTAUDIT_CRASH_RUN=r%d", run))
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
		// Wait for the first acknowledgement, then kill at a random moment.
		first, ok := <-lines
		if !ok {
			cmd.Wait()
			t.Fatalf("run %d: child exited before appending", run)
		}
		time.Sleep(time.Duration(rand.IntN(150)) * time.Millisecond)
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

		// How many acknowledged events the database file itself lacks: they are only in the
		// store's intake (store/sqlite applies them behind the acknowledgement).
		var maxSeq, inFile int64 = -1, 0
		for _, seq := range acked {
			maxSeq = max(maxSeq, seq)
		}
		if db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "ledger.db")+"?mode=ro"); err == nil {
			db.QueryRow("SELECT count(*) FROM events").Scan(&inFile)
			db.Close()
		}
		if inFile <= maxSeq {
			intakeOnly++
		}

		st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "ledger.db")})
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
		st.Close()
		t.Logf("run %d: %d acknowledged this run, log of %d verifies", run, n, rep.Events)
	}
	if len(acked) < runs {
		t.Fatalf("only %d events acknowledged over %d runs", len(acked), runs)
	}
	if intakeOnly == 0 {
		t.Fatalf("no run was killed while acknowledged events were only in the intake: the test did not cover it")
	}
	t.Logf("%d of %d runs were killed with acknowledged events only in the intake", intakeOnly, runs)
}

func drain(ch <-chan string) []string {
	var out []string
	for s := range ch {
		if strings.HasPrefix(s, "ack ") {
			out = append(out, s)
		}
	}
	return out
}
