package cli

import (
	"context"
	"os"
	"strings"
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
