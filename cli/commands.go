package cli

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ingest"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store"
)

func runInit(e *env) error {
	fs := e.flags("init")
	origin := fs.String("origin", datadir.DefaultOrigin, "the log's name in its checkpoints (and the key's name)")
	if pos, err := parse(fs, e.args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	vkey, err := e.dir.Init(e.ctx, *origin)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stderr, "initialized %s (signing key %s, mode 0600)\nverifier key (give it to auditors; keep a copy outside this directory):\n", e.dir.Path, e.dir.SigningKey())
	fmt.Fprintln(e.stdout, vkey)
	return nil
}

func runKey(e *env) error {
	if pos, err := parse(e.flags("key"), e.args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	data, err := os.ReadFile(e.dir.VerifierKey())
	if errors.Is(err, os.ErrNotExist) {
		return datadir.ErrNotInitialized
	}
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(data)
	return err
}

// maxLine bounds one input line: a little over the event limit, for insignificant white space.
const maxLine = 2*ledger.DefaultMaxEventBytes + 4096

// appendBatch is how many lines are committed together.
const appendBatch = 1000

func runAppend(e *env) error {
	fs := e.flags("append")
	maxEvent := fs.Int("max-event-bytes", ledger.DefaultMaxEventBytes, "largest accepted event, in canonical bytes")
	pos, err := parse(fs, e.args)
	if err != nil {
		return err
	}
	in := e.stdin
	name := "-"
	switch len(pos) {
	case 0:
	case 1:
		if name = pos[0]; name != "-" {
			f, err := os.Open(name)
			if err != nil {
				return err
			}
			defer f.Close()
			in = f
		}
	default:
		return usagef("at most one input file")
	}
	var sum appendSummary
	w, err := e.openWriter(ledger.Options{MaxEventBytes: *maxEvent})
	switch {
	case errors.Is(err, datadir.ErrLocked):
		// A running server holds the directory: append through its API.
		var r *agentaudit.Remote
		if r, err = e.remote(err); err != nil {
			return err
		}
		fmt.Fprintf(e.stderr, "appending through the server that holds %s\n", e.dir.Path)
		sum, err = appendLines(e, remoteAppender(r), in, name)
	case err != nil:
		return err
	default:
		sum, err = appendLines(e, w.AppendBatch, in, name)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	}
	fmt.Fprintf(e.stdout, "appended %d events (%d already stored), %d lines rejected\n", sum.appended, sum.duplicates, sum.rejected)
	if err != nil {
		return err
	}
	if sum.rejected > 0 {
		return &exitError{ExitFail}
	}
	return nil
}

type appendSummary struct{ appended, duplicates, rejected int }

// appendLines appends each JSON line of in; a bad line is reported with its number and skipped,
// and nothing of it is stored.
func appendLines(e *env, appendFn ingest.Appender, in io.Reader, name string) (appendSummary, error) {
	var sum appendSummary
	err := ingest.Lines(in, maxLine, appendBatch, func(items []ingest.Item, lines []int) error {
		res, err := ingest.Append(e.ctx, appendFn, items)
		if err != nil {
			return fmt.Errorf("lines %d-%d not stored: %w", lines[0], lines[len(lines)-1], err)
		}
		for i, r := range res {
			switch {
			case r.Err != nil:
				sum.rejected++
				fmt.Fprintf(e.stderr, "%s:%d: %v\n", name, lines[i], r.Err)
			case r.Duplicate:
				sum.duplicates++
			default:
				sum.appended++
			}
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("%s: %w", name, err)
	}
	return sum, err
}

// shownEvent is how get and tail print an entry: a purged one as {"seq", "event": null,
// "purged_by"}, as the API's records are.
type shownEvent struct {
	Seq      int64           `json:"seq"`
	Event    json.RawMessage `json:"event"`
	PurgedBy int64           `json:"purged_by,omitempty"`
}

func shown(e store.Entry) shownEvent {
	if e.Purged() {
		return shownEvent{Seq: e.Seq, Event: json.RawMessage("null"), PurgedBy: e.PurgedBy}
	}
	return shownEvent{Seq: e.Seq, Event: e.Body}
}

func runGet(e *env) error {
	id, err := oneArg(e.flags("get"), e.args, "event id")
	if err != nil {
		return err
	}
	st, err := e.dir.OpenStore(e.ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	ent, err := st.EntryByID(e.ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no event with id %q", id)
	}
	if err != nil {
		return err
	}
	return e.writeJSON(shown(ent))
}

func runTail(e *env) error {
	fs := e.flags("tail")
	n := fs.Int("n", 10, "how many events")
	if pos, err := parse(fs, e.args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	if *n < 1 || *n > 100000 {
		return usagef("-n must be between 1 and 100000")
	}
	st, err := e.dir.OpenStore(e.ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	ents, err := st.Tail(e.ctx, *n)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(e.stdout)
	for _, ent := range ents {
		if err := enc.Encode(shown(ent)); err != nil {
			return err
		}
	}
	return nil
}

func runCheckpoint(e *env) error {
	if pos, err := parse(e.flags("checkpoint"), e.args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	st, err := e.dir.OpenStore(e.ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	cp, err := st.LatestCheckpoint(e.ctx)
	if errors.Is(err, store.ErrNotFound) {
		return errors.New("no checkpoint yet: append events first")
	}
	if err != nil {
		return err
	}
	_, err = e.stdout.Write(cp.Note)
	return err
}

// verifierFor returns the key given by --key, or the one in the data directory with a warning.
func (e *env) verifierFor(key string) (note.Verifier, error) {
	if key != "" {
		return ledger.ParseVerifier(key)
	}
	v, err := e.dir.Verifier()
	if err == nil {
		fmt.Fprintf(e.stderr, "note: checking with %s; anyone who can write the data directory can replace it, so auditors pass --key with their own copy\n", e.dir.VerifierKey())
	}
	return v, err
}

func runVerify(e *env) error {
	fs := e.flags("verify")
	key := fs.String("key", "", "verifier key, or a file holding it (default: the data directory's verifier.key)")
	saved := fs.String("checkpoint", "", "a checkpoint saved earlier: prove today's log is consistent with it")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if pos, err := parse(fs, e.args); err != nil {
		return err
	} else if len(pos) > 0 {
		return usagef("unexpected argument %q", pos[0])
	}
	v, err := e.verifierFor(*key)
	if err != nil {
		return err
	}
	var opts ledger.VerifyOptions
	if *saved != "" {
		if opts.Saved, err = os.ReadFile(*saved); err != nil {
			return err
		}
	}
	st, err := e.dir.OpenStore(e.ctx)
	if err != nil {
		return err
	}
	defer st.Close()
	rep, err := ledger.Verify(e.ctx, st, v, opts)
	var te *ledger.TamperError
	if err != nil && !errors.As(err, &te) {
		return err
	}
	if *asJSON {
		if err := e.writeJSON(rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(e.stdout, "checked %d events, %d tree hashes, %d checkpoints (largest signed size %d) with key %s\n",
			rep.Events, rep.TreeHashes, rep.Checkpoints, rep.SignedSize, v.Name()+"+"+strconv.FormatUint(uint64(v.KeyHash()), 16))
		if rep.Saved != nil {
			fmt.Fprintf(e.stdout, "saved checkpoint: size %d, root %s\n", rep.Saved.N, hex.EncodeToString(rep.Saved.Hash[:]))
		}
		if rep.Purged > 0 || rep.Purges > 0 {
			fmt.Fprintf(e.stdout, "purged: %d events, each covered by one of %d purge events", rep.Purged, rep.Purges)
			if rep.PendingPurge > 0 {
				fmt.Fprintf(e.stdout, "; %d more covered and not erased yet (an interrupted purge: the next retention apply finishes it)", rep.PendingPurge)
			}
			fmt.Fprintln(e.stdout)
		}
		if rep.OK() {
			fmt.Fprintln(e.stdout, "OK: nothing was changed, removed, inserted, reordered or truncated")
		} else {
			fmt.Fprintf(e.stdout, "FAILED: %d problem(s)\n", len(rep.Problems))
			const show = 100
			for i, p := range rep.Problems {
				if i == show {
					fmt.Fprintf(e.stdout, "  ... and %d more (use --json for all)\n", len(rep.Problems)-show)
					break
				}
				fmt.Fprintf(e.stdout, "  %s\n", p)
			}
		}
	}
	if !rep.OK() {
		return &exitError{ExitFail}
	}
	return nil
}

func runProve(e *env) error {
	id, err := oneArg(e.flags("prove"), e.args, "event id")
	if err != nil {
		return err
	}
	var b *ledger.Bundle
	// With the directory's writer free, sign a checkpoint covering the event if none does yet.
	// A read-only store (a hot standby) proves against the checkpoints it has.
	if w, werr := e.dir.OpenWriter(e.ctx, ledger.Options{}); werr == nil {
		b, err = w.Prove(e.ctx, id)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
	} else if errors.Is(werr, datadir.ErrLocked) || errors.Is(werr, store.ErrReadOnly) {
		st, serr := e.dir.OpenStore(e.ctx)
		if serr != nil {
			return serr
		}
		defer st.Close()
		b, err = ledger.Prove(e.ctx, st, id)
	} else {
		return werr
	}
	if errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("no event with id %q", id)
	}
	if err != nil {
		return err
	}
	return e.writeJSON(b)
}

func runVerifyBundle(e *env) error {
	fs := e.flags("verify-bundle")
	key := fs.String("key", "", "the log's verifier key, or a file holding it (required)")
	file, err := oneArg(fs, e.args, "bundle file (or - for standard input)")
	if err != nil {
		return err
	}
	if *key == "" {
		return usagef("--key is required: a bundle is checked against the key you trust, never one it carries")
	}
	v, err := ledger.ParseVerifier(*key)
	if err != nil {
		return err
	}
	var data []byte
	if file == "-" {
		data, err = io.ReadAll(io.LimitReader(e.stdin, 8<<20))
	} else {
		data, err = os.ReadFile(file)
	}
	if err != nil {
		return err
	}
	vb, err := ledger.VerifyBundle(data, v)
	if err != nil {
		return err
	}
	if vb.Event == nil {
		fmt.Fprintf(e.stdout, "OK: the event at seq %d of the log %s was purged by the purge event at seq %d (%s by %s), and both are signed at size %d (root %s)\n",
			vb.Seq, vb.Checkpoint.Origin, vb.PurgeSeq, vb.Purge.Rationale, vb.Purge.UserID, vb.Checkpoint.N, hex.EncodeToString(vb.Checkpoint.Hash[:]))
		return nil
	}
	fmt.Fprintf(e.stdout, "OK: event %s is at seq %d of the log %s, signed at size %d (root %s)\n",
		vb.Event.ID, vb.Seq, vb.Checkpoint.Origin, vb.Checkpoint.N, hex.EncodeToString(vb.Checkpoint.Hash[:]))
	return nil
}

// remote is the API of the server that holds the directory (locked is the error that said so),
// authenticated with the admin key the server wrote on first start.
func (e *env) remote(locked error) (*agentaudit.Remote, error) {
	url, key, err := e.holder(locked)
	if err != nil {
		return nil, err
	}
	return agentaudit.Dial(url, key)
}

// holder returns the address and admin key of the server that holds the directory.
func (e *env) holder(locked error) (url, key string, err error) {
	info, err := e.dir.Server()
	if err != nil {
		return "", "", fmt.Errorf("%w; stop that process, or run this command against its API", locked)
	}
	k, err := os.ReadFile(e.dir.AdminKey())
	if err != nil {
		return "", "", fmt.Errorf("%w: the server at %s holds it, and its admin key could not be read: %w", locked, info.URL, err)
	}
	return info.URL, string(k), nil
}

// remoteAppender appends through a server, as the ledger would locally.
func remoteAppender(r *agentaudit.Remote) ingest.Appender {
	return func(ctx context.Context, evs []*event.Event) ([]ledger.Result, error) {
		res, err := r.Send(ctx, evs)
		if err != nil {
			return nil, err
		}
		out := make([]ledger.Result, len(res))
		for i, x := range res {
			out[i] = ledger.Result{Receipt: ledger.Receipt{Seq: x.Seq, ID: x.ID, Duplicate: x.Duplicate}, Err: x.Err}
		}
		return out, nil
	}
}

// openWriter opens the directory for appending with the command line's redaction and retention
// policies (unless opts brings its own).
func (e *env) openWriter(opts ledger.Options) (*datadir.Writer, error) {
	if _, err := os.Stat(e.dir.SigningKey()); errors.Is(err, os.ErrNotExist) {
		return nil, datadir.ErrNotInitialized
	}
	if opts.Sanitizer == nil {
		r, err := e.dir.Redactor(e.policy)
		if err != nil {
			return nil, err
		}
		opts.Sanitizer = r
	}
	if opts.Retention == nil {
		p, err := e.retentionPolicy()
		if err != nil {
			return nil, err
		}
		opts.Retention = p
	}
	return e.dir.OpenWriter(e.ctx, opts)
}

func runHash(e *env) error {
	fs := e.flags("hash")
	field := fs.String("field", "", "the field the value appears in, e.g. patient_name (required)")
	value, err := oneArg(fs, e.args, "value")
	if err != nil {
		return err
	}
	if *field == "" {
		return usagef("--field is required: a pseudonym depends on the field")
	}
	if _, err := os.Stat(e.dir.PseudonymKey()); errors.Is(err, os.ErrNotExist) {
		return datadir.ErrNotInitialized
	}
	r, err := e.dir.Redactor(e.policy)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(e.stdout, r.Pseudonym(*field, value))
	return err
}
