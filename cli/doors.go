package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/embedded"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/llmproxy"
	"github.com/agentaudit/agentaudit/mcpproxy"
)

// readKeyFile reads an API key from a file that only its owner may read.
func readKeyFile(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", fmt.Errorf("key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("key file %s is readable by others (mode %v); chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("key file: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// doorSink is where a door records: the server at --server, or the data directory (through its
// server's API when a server holds it).
func (e *env) doorSink(serverURL, keyFile, spool string, mode agentaudit.Mode, logger *slog.Logger) (agentaudit.Sink, error) {
	if serverURL != "" {
		if keyFile == "" {
			return nil, usagef("--server needs --key-file (a file, mode 0600, holding a writer key)")
		}
		key, err := readKeyFile(keyFile)
		if err != nil {
			return nil, err
		}
		opts := []agentaudit.RemoteOption{agentaudit.WithRemoteLogger(logger)}
		if spool != "" {
			// The spool is on disk: its events are sanitized first, with the policy and the
			// pseudonym key of the data directory (created on first use; copy the server's
			// pseudonym.key there for the tokens to match the server's).
			if err := os.MkdirAll(e.dir.Path, 0o700); err != nil {
				return nil, err
			}
			r, err := e.dir.Redactor(e.policy)
			if err != nil {
				return nil, err
			}
			opts = append(opts, agentaudit.WithSpool(spool, 0), agentaudit.WithSanitizer(r))
			if mode != agentaudit.Async {
				// An fsynced spool line counts as recorded: a sync door keeps its promise
				// through a server outage without holding every answer until the server is back.
				opts = append(opts, agentaudit.WithFailClosed())
			}
		}
		return agentaudit.Dial(serverURL, key, opts...)
	}
	r, err := e.dir.Redactor(e.policy)
	if err != nil {
		return nil, err
	}
	sink, err := embedded.Open(e.dir.Path, ledger.Options{Sanitizer: r})
	if errors.Is(err, datadir.ErrLocked) {
		return e.remote(err)
	}
	return sink, err
}

// doorMode reads --mode: async records beside the traffic; sync commits each event before the
// message that completes it is forwarded, so an answer the agent has seen is on record even if
// the proxy is killed the next instant. llm-proxy defaults to sync (TestLLMProxyKilled), since
// a commit is small next to a model call; mcp-proxy to async.
func doorMode(s string) (agentaudit.Mode, error) {
	for _, m := range []agentaudit.Mode{agentaudit.Async, agentaudit.Sync, agentaudit.FailClosed} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, usagef("--mode %q (want async, sync or fail-closed)", s)
}

// doorRecorder opens a door's recorder on doorSink; delivery failures go to the log.
func (e *env) doorRecorder(serverURL, keyFile, spool, mode string, logger *slog.Logger) (*agentaudit.Recorder, error) {
	m, err := doorMode(mode)
	if err != nil {
		return nil, err
	}
	sink, err := e.doorSink(serverURL, keyFile, spool, m, logger)
	if err != nil {
		return nil, err
	}
	rec, err := agentaudit.New(sink, agentaudit.WithMode(m), agentaudit.WithErrorHandler(func(err error) { logger.Error("agentaudit: not recorded", "err", err) }))
	if err != nil {
		sink.Close()
		return nil, err
	}
	return rec, nil
}

func runMCPProxy(e *env) error {
	fs := e.flags("mcp-proxy")
	serverURL := fs.String("server", "", "record to the agentaudit server at this URL instead of the data directory")
	keyFile := fs.String("key-file", "", "file (mode 0600) holding the server's writer key")
	spool := fs.String("spool", "", "with --server: spool file for events while the server is unreachable")
	mode := fs.String("mode", "async", "async, or sync: each event is committed before the answer it records is forwarded")
	userID := fs.String("user", "", "the user the agent acts for")
	agentID := fs.String("agent", "", "the agent's id (default: the MCP client's name)")
	approvals := fs.String("approvals", "", "directory of pending approvals (default DATA/approvals)")
	upstream := fs.String("upstream", "", "Streamable HTTP: the MCP server's endpoint, e.g. http://127.0.0.1:3001/mcp (instead of a command)")
	listen := fs.String("listen", DefaultMCPProxyListen, "Streamable HTTP: address to listen on")
	if err := fs.Parse(e.args); err != nil {
		return err
	}
	argv := fs.Args()
	if len(argv) == 0 && *upstream == "" {
		return usagef("give the MCP server's command after --, or --upstream URL")
	}
	if len(argv) > 0 && *upstream != "" {
		return usagef("--upstream and a command exclude each other")
	}
	// Standard output is the MCP stream: everything else goes to standard error.
	logger := slog.New(slog.NewTextHandler(e.stderr, nil))
	var gate *mcpproxy.Gate
	if e.policy != "" {
		data, err := os.ReadFile(e.policy)
		if err != nil {
			return err
		}
		if gate, err = mcpproxy.ParsePolicy(e.policy, data); err != nil {
			return err
		}
		if gate != nil {
			gate.Decider = &mcpproxy.DirDecider{Dir: e.approvalsDir(*approvals)}
		}
	}
	rec, err := e.doorRecorder(*serverURL, *keyFile, *spool, *mode, logger)
	if err != nil {
		return err
	}
	cfg := mcpproxy.Config{Recorder: rec, UserID: *userID, AgentID: *agentID, Gate: gate, Logger: logger}
	if *upstream != "" {
		hp, err := mcpproxy.NewHTTP(cfg, *upstream)
		if err != nil {
			rec.Close()
			return err
		}
		err = serveUntilDone(e, *listen, hp, "mcp-proxy", *upstream)
		hp.Close()
		return errors.Join(err, rec.Close())
	}
	p, err := mcpproxy.New(cfg)
	if err != nil {
		rec.Close()
		return err
	}
	runErr := p.RunCommand(e.ctx, argv, e.stdin, e.stdout, e.stderr)
	return errors.Join(runErr, rec.Close())
}

// DefaultMCPProxyListen is loopback, as every listener of agentaudit by default.
const DefaultMCPProxyListen = "127.0.0.1:8436"

// serveUntilDone serves h on addr until the command's context ends (SIGINT, SIGTERM).
func serveUntilDone(e *env, addr string, h http.Handler, name, upstream string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "%s: http://%s -> %s\n", name, ln.Addr(), upstream)
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	shut := make(chan struct{})
	go func() {
		defer close(shut)
		<-e.ctx.Done()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		hs.Shutdown(ctx)
	}()
	err = hs.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		// Serve returns as Shutdown begins; the calls still in their handlers (an async door
		// records after the answer has gone) finish before the caller closes the recorder.
		<-shut
		err = nil
	}
	return err
}

func (e *env) approvalsDir(flagValue string) string {
	if flagValue != "" {
		return flagValue
	}
	return filepath.Join(e.dir.Path, "approvals")
}

func runApprovals(e *env) error {
	fs := e.flags("approvals")
	dir := fs.String("dir", "", "directory of pending approvals (default DATA/approvals)")
	note := fs.String("note", "", "why (recorded with the decision)")
	as := fs.String("as", "", "who decides (default: the OS user)")
	asJSON := fs.Bool("json", false, "list as JSON")
	pos, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	d := &mcpproxy.DirDecider{Dir: e.approvalsDir(*dir)}
	if len(pos) == 1 && pos[0] == "list" {
		reqs, err := d.Pending()
		if err != nil {
			return err
		}
		if *asJSON {
			return json.NewEncoder(e.stdout).Encode(reqs)
		}
		tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tTOOL\tCALL\tSESSION\tUSER\tWAITING")
		for _, r := range reqs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.ID, r.Tool, r.CallID, r.SessionID, r.UserID, time.Since(r.Time).Round(time.Second))
		}
		return tw.Flush()
	}
	if len(pos) != 2 || (pos[0] != "approve" && pos[0] != "reject") {
		return usagef("want list, approve ID or reject ID")
	}
	who := *as
	if who == "" {
		if u, err := user.Current(); err == nil {
			who = u.Username
		}
	}
	status := event.ApprovalApproved
	if pos[0] == "reject" {
		status = event.ApprovalRejected
	}
	if err := d.Decide(pos[1], mcpproxy.Decision{Status: status, Approver: who, Note: *note}); err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "%s %s\n", status, pos[1])
	return nil
}

// DefaultLLMProxyListen is loopback: the proxy sees API keys, and exposing it is a decision.
const DefaultLLMProxyListen = "127.0.0.1:8435"

func runLLMProxy(e *env) error {
	fs := e.flags("llm-proxy")
	listen := fs.String("listen", DefaultLLMProxyListen, "address to listen on")
	upstream := fs.String("upstream", "", "the API's base URL, e.g. https://api.anthropic.com or https://api.openai.com (required)")
	serverURL := fs.String("server", "", "record to the agentaudit server at this URL instead of the data directory")
	keyFile := fs.String("key-file", "", "file (mode 0600) holding the server's writer key")
	spool := fs.String("spool", "", "with --server: spool file for events while the server is unreachable")
	mode := fs.String("mode", "sync", "sync (default): each call is committed before its answer is handed to the agent; async: recorded beside the traffic, the last calls before a crash can be lost")
	userID := fs.String("user", "", "the user calls are attributed to when they carry no X-Agentaudit-User header")
	agentID := fs.String("agent", "", "the agent calls are attributed to when they carry no X-Agentaudit-Agent header")
	if pos, err := parse(fs, e.args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *upstream == "" {
		return usagef("--upstream is required")
	}
	logger := slog.New(slog.NewTextHandler(e.stderr, nil))
	rec, err := e.doorRecorder(*serverURL, *keyFile, *spool, *mode, logger)
	if err != nil {
		return err
	}
	p, err := llmproxy.New(llmproxy.Config{Recorder: rec, Upstream: *upstream, UserID: *userID, AgentID: *agentID})
	if err != nil {
		rec.Close()
		return err
	}
	err = serveUntilDone(e, *listen, p, "llm-proxy", *upstream)
	return errors.Join(err, rec.Close())
}
