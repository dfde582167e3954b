package cli

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/ledger"
)

// sampleSession is a customer-support agent session and two medical record accesses.
//
//go:embed sample-session.jsonl
var sampleSession []byte

// runDemo initializes the data directory if needed, appends the sample session (idempotently:
// a second run stores nothing new), shows the newest events and verifies the whole log.
func runDemo(e *env) error {
	if pos, err := parse(e.flags("demo"), e.args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	vkey, err := e.dir.Init(e.ctx, "")
	switch {
	case err == nil:
		fmt.Fprintf(e.stdout, "initialized %s; verifier key:\n  %s\n", e.dir.Path, vkey)
	case errors.Is(err, datadir.ErrInitialized):
	default:
		return err
	}
	w, err := e.dir.OpenWriter(e.ctx, ledger.Options{})
	if err != nil {
		return err
	}
	sum, err := appendLines(e, w.Ledger, bytes.NewReader(sampleSession), "sample-session.jsonl")
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "recorded the sample session: %d new events, %d already stored\n\n", sum.appended, sum.duplicates)
	fmt.Fprintln(e.stdout, "$ agentaudit tail -n 3")
	if err := runTail(&env{ctx: e.ctx, dir: e.dir, args: []string{"-n", "3"}, stdout: e.stdout, stderr: e.stderr}); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "\n$ agentaudit checkpoint")
	if err := runCheckpoint(&env{ctx: e.ctx, dir: e.dir, stdout: e.stdout, stderr: e.stderr}); err != nil {
		return err
	}
	fmt.Fprintln(e.stdout, "\n$ agentaudit verify")
	return runVerify(&env{ctx: e.ctx, dir: e.dir, stdout: e.stdout, stderr: e.stderr})
}
