package pgtest_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/pgtest"
)

// A test binary killed without running Stop (SIGKILL, a test timeout) leaves no server and no
// directory behind: the watchdog stops the server. The child is this test binary, killed while
// TestHelperHoldsServer waits.
func TestServerStopsWhenTheTestsDie(t *testing.T) {
	pgtest.Shared(t) // skips where PostgreSQL is missing
	out := filepath.Join(t.TempDir(), "dir")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHoldsServer$")
	cmd.Env = append(os.Environ(), "PGTEST_HELPER_OUT="+out)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var dir string
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if b, err := os.ReadFile(out); err == nil && len(b) > 0 {
			dir = string(b)
			break
		}
	}
	cmd.Process.Kill()
	cmd.Wait()
	if dir == "" {
		t.Fatal("the helper did not start a server")
	}
	for deadline := time.Now().Add(15 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			return
		}
	}
	t.Errorf("%s still exists 15 s after the test binary was killed", dir)
}

func TestHelperHoldsServer(t *testing.T) {
	out := os.Getenv("PGTEST_HELPER_OUT")
	if out == "" {
		t.Skip("run by TestServerStopsWhenTheTestsDie")
	}
	s := pgtest.Shared(t)
	if err := os.WriteFile(out+".tmp", []byte(s.Dir()), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Rename(out+".tmp", out)
	time.Sleep(time.Minute)
}
