// Package cli is the agentaudit command line: global flags, the table of subcommands, and the
// mapping from errors to exit codes. Each subcommand parses its flags and calls the packages that
// own the work (datadir, ledger, event); none holds logic of its own.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"

	"github.com/agentaudit/agentaudit/datadir"
)

// Exit codes.
const (
	ExitOK    = 0
	ExitFail  = 1 // the command ran and found a problem (verification failed, lines rejected)
	ExitUsage = 2
)

// env is what a command runs with.
type env struct {
	ctx    context.Context
	dir    datadir.Dir
	policy string // redaction policy file; "" for the built-in one
	args   []string
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
}

type command struct {
	usage string // after "agentaudit NAME "
	short string
	run   func(e *env) error
}

// commands is the table of subcommands, filled in init (their flag help refers back to it).
var commands map[string]command

func init() {
	commands = map[string]command{
		"init":          {"[--origin NAME]", "create the data directory and a signing key; print the verifier key", runInit},
		"key":           {"", "print the verifier key", runKey},
		"append":        {"[FILE|-]", "append events from JSON Lines (a file, or standard input)", runAppend},
		"get":           {"ID", "show one event", runGet},
		"tail":          {"[-n N]", "show the last events", runTail},
		"checkpoint":    {"", "print the latest signed checkpoint", runCheckpoint},
		"verify":        {"[--key KEY|FILE] [--checkpoint FILE] [--json]", "check every event, tree hash and checkpoint", runVerify},
		"prove":         {"ID", "write a self-contained inclusion proof bundle for an event", runProve},
		"verify-bundle": {"--key KEY|FILE BUNDLE", "check a bundle offline, with only the verifier key", runVerifyBundle},
		"demo":          {"", "initialize if needed, record a sample agent session, show it and verify it", runDemo},
		"timeline":      {"SESSION [--format text|json]", "a session's trail: LLM calls, tool calls, decisions, approvals, with attribution", runTimeline},
		"stats":         {"tools [--since TIME] [--until TIME] [--json]", "per-tool calls, success rate, latency percentiles, unique users", runStats},
		"report":        {"access --subject TYPE:ID --from TIME --to TIME [--format json|csv|html] [--key KEY]", "every access to a subject's records, integrity-checked", runReport},
		"export":        {"--format fhir|ocsf|jsonl|csv [filters as for query]", "stream events as FHIR R4 AuditEvents, OCSF API Activity, JSON Lines or CSV", runExport},
		"serve":         {"[--listen ADDR] [--alerts FILE] [--tls-cert FILE --tls-key FILE] [--demo] [--store-wait 1m]", "run the HTTP API (initializes the directory and an admin key on first start)", runServe},
		"keys":          {"create --role ROLE --name NAME | list | revoke ID", "manage the server's API keys", runKeys},
		"hash":          {"--field NAME VALUE", "print the pseudonym the log holds for a known value, to search for a person", runHash},
		"retention":     {"plan [--at TIME] [--json] | apply [--json]", "what retention would purge now (or at a time); purge it, keeping every proof", runRetention},
		"hold":          {"place (--subject TYPE:ID | --session ID | --user ID | ...) --reason TEXT | list [--all] | release ID --reason TEXT", "legal holds: events they cover are never purged", runHold},
		"erase":         {"--subject TYPE:ID --reason TEXT [--override-mandatory REASON]", "erase a data subject's events before their time (recorded as a purge)", runErase},
		"alerts":        {"list [--since T] [--rule NAME] [--json] | test RULES [--since 30d] [--json]", "show the alerts raised and their deliveries; replay history through a rules file", runAlerts},
		"review":        {"list [--all] [--json] | close ID --note TEXT", "break-the-glass accesses awaiting review; record a review", runReview},
		"mcp-proxy":     {"[--server URL --key-file F [--spool FILE]] [--user ID] [--agent ID] [--approvals DIR] (-- COMMAND ARGS... | --upstream URL [--listen ADDR])", "run an MCP server behind the audit proxy (stdio or Streamable HTTP): record every tool call, access and approval", runMCPProxy},
		"llm-proxy":     {"--upstream URL [--listen ADDR] [--server URL --key-file F [--spool FILE]] [--user ID] [--agent ID]", "record an agent's Anthropic/OpenAI calls: point its base URL here", runLLMProxy},
		"approvals":     {"list [--json] | approve ID [--note TEXT] | reject ID [--note TEXT] [--as NAME] [--dir DIR]", "list and decide the tool calls the MCP proxy holds for approval", runApprovals},
		"migrate":       {"--from DIR --to postgres://... [--batch N] [--json]", "copy an embedded log into an empty PostgreSQL database, then check the copy", runMigrate},
		"query":         {"[--session ID] [--user ID] [--tool NAME] [--subject TYPE:ID] [--kind K] [--model M] [--agent A] [--outcome O] [--failures] [--since T] [--until T] [--limit N] [--cursor C] [--json]", "find events; combinable filters, paginated", runQuery},
	}
}

// usageError is a command line mistake: exit code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// exitError carries an exit code for a command that already printed its findings.
type exitError struct{ code int }

func (e *exitError) Error() string { return fmt.Sprintf("exit %d", e.code) }

// Main runs the command line and exits.
func Main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Run runs one command line and returns its exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("agentaudit", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", defaultData(), "data directory (env AGENTAUDIT_DATA)")
	policy := fs.String("policy", os.Getenv("AGENTAUDIT_POLICY"), "redaction policy file (env AGENTAUDIT_POLICY; default: the built-in policy)")
	storeURL := fs.String("store", os.Getenv("AGENTAUDIT_STORE"), "the log's database, postgres://... (env AGENTAUDIT_STORE; default: ledger.db in the data directory)")
	fs.Usage = func() { printUsage(stderr) }
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() == 0 {
		printUsage(stderr)
		return ExitUsage
	}
	name := fs.Arg(0)
	cmd, ok := commands[name]
	if !ok {
		fmt.Fprintf(stderr, "agentaudit: unknown command %q\n", name)
		printUsage(stderr)
		return ExitUsage
	}
	e := &env{ctx: ctx, dir: datadir.Dir{Path: *data, Store: *storeURL}, policy: *policy, args: fs.Args()[1:], stdin: stdin, stdout: stdout, stderr: stderr}
	err := cmd.run(e)
	var ue *usageError
	var ee *exitError
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &ue):
		fmt.Fprintf(stderr, "agentaudit %s: %v\nusage: agentaudit [--data DIR] %s %s\n", name, ue.msg, name, cmd.usage)
		return ExitUsage
	case errors.Is(err, flag.ErrHelp):
		return ExitUsage
	default:
		fmt.Fprintf(stderr, "agentaudit %s: %v\n", name, err)
		return ExitFail
	}
}

func defaultData() string {
	if d := os.Getenv("AGENTAUDIT_DATA"); d != "" {
		return d
	}
	return "./agentaudit-data"
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "usage: agentaudit [--data DIR] COMMAND [ARGS]")
	fmt.Fprintln(w, "\nA tamper-evident flight recorder for AI agents.\n\ncommands:")
	names := make([]string, 0, len(commands))
	for n := range commands {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := commands[n]
		fmt.Fprintf(w, "  %-14s %s\n", n, c.short)
		if c.usage != "" {
			fmt.Fprintf(w, "  %-14s   agentaudit %s %s\n", "", n, c.usage)
		}
	}
	fmt.Fprintln(w, "\nglobal flags:\n  --data DIR     data directory (default ./agentaudit-data, env AGENTAUDIT_DATA)")
	fmt.Fprintln(w, "  --policy FILE  redaction policy (default: built in, env AGENTAUDIT_POLICY)")
	fmt.Fprintln(w, "  --store URL    keep the log in PostgreSQL, postgres://user:pass@host/db (env AGENTAUDIT_STORE;")
	fmt.Fprintln(w, "                 default: ledger.db in the data directory, which still holds the keys)")
}

// flags returns a flag set for a command, also accepting --data after the command name.
func (e *env) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("agentaudit "+name, flag.ContinueOnError)
	fs.SetOutput(e.stderr)
	fs.Func("data", "data directory", func(s string) error { e.dir.Path = s; return nil })
	fs.Usage = func() {
		fmt.Fprintf(e.stderr, "usage: agentaudit [--data DIR] %s %s\n", name, commands[name].usage)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, allowing flags after positional arguments too.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
		if len(args) > 0 && args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
	}
}

func oneArg(fs *flag.FlagSet, args []string, what string) (string, error) {
	pos, err := parse(fs, args)
	if err != nil {
		return "", err
	}
	if len(pos) != 1 || strings.TrimSpace(pos[0]) == "" {
		return "", usagef("want exactly one %s", what)
	}
	return pos[0], nil
}
