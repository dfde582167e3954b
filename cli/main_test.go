package cli

import (
	"bytes"
	"context"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/agentaudit/agentaudit/internal/pgtest"
)

// TestMain runs the CLI in a child process when a test re-executes this binary to SIGKILL it
// (AGENTAUDIT_TEST_CLI holds the command line); otherwise it runs the tests, with a PostgreSQL
// started for those that ask for one.
func TestMain(m *testing.M) {
	if args := os.Getenv("AGENTAUDIT_TEST_CLI"); args != "" {
		os.Exit(Run(context.Background(), strings.Fields(args), os.Stdin, os.Stdout, os.Stderr))
	}
	os.Exit(pgtest.Main(m))
}

// syncBuffer is a bytes.Buffer that a server running in the test (whose request log, scheduled
// jobs and shutdown all write its stderr) and the test's reads can share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
