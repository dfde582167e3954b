package mcpproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"sync/atomic"
	"time"
)

// RunCommand starts the MCP server argv (its stderr goes to stderr) and proxies between the
// client (stdin, stdout) and it until either side closes. When the client closes, the server's
// input is closed and it gets a moment to exit before it is killed.
func (p *Proxy) RunCommand(ctx context.Context, argv []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(argv) == 0 {
		return errors.New("mcpproxy: no MCP server command")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = stderr
	cmd.WaitDelay = 2 * time.Second
	in, err := cmd.StdinPipe()
	if err != nil {
		return err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		p.recordError(fromServer, "server_start_failed", fmt.Sprintf("the MCP server %q did not start: %v", argv[0], err))
		p.finish(ctx, "the MCP server did not start")
		return fmt.Errorf("mcpproxy: starting %s: %w", argv[0], err)
	}
	var killed atomic.Bool // by the proxy: not the server's failure
	kill := func() { killed.Store(true); cmd.Process.Kill() }
	stop := context.AfterFunc(ctx, kill)
	defer stop()
	// When the client closes, the server gets a moment to exit by itself before it is killed.
	clientGone := &eofHook{r: stdin, hook: func() {
		time.AfterFunc(5*time.Second, kill)
	}}
	runErr := p.run(clientGone, stdout, in, out)
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	var werr error
	select {
	case werr = <-waited:
	case <-time.After(5 * time.Second):
		kill()
		werr = <-waited
	}
	var ee *exec.ExitError
	if errors.As(werr, &ee) && ee.ExitCode() != 0 && !killed.Load() {
		p.recordError(fromServer, "server_exit", fmt.Sprintf("the MCP server exited: %v", ee))
		p.finish(ctx, "the MCP server exited before answering")
		return errors.Join(runErr, fmt.Errorf("mcpproxy: the MCP server exited: %w", werr))
	}
	p.finish(ctx, "the MCP server closed its output before answering")
	return runErr
}

// eofHook calls hook once when r ends.
type eofHook struct {
	r    io.Reader
	hook func()
	done bool
}

func (e *eofHook) Read(b []byte) (int, error) {
	n, err := e.r.Read(b)
	if err != nil && !e.done {
		e.done = true
		e.hook()
	}
	return n, err
}
