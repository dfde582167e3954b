package datadir

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/postgres"
)

// DefaultMigrateBatch is how many entries Migrate commits in one transaction.
const DefaultMigrateBatch = 5000

// MigrateOptions adjust Migrate.
type MigrateOptions struct {
	// Batch is how many entries one transaction copies; 0 is DefaultMigrateBatch.
	Batch int
	// Progress, when set, is called after each committed batch with the entries copied so far
	// and the source's size.
	Progress func(copied, total int64)
}

// MigrateReport is what Migrate copied and how the copy was checked.
type MigrateReport struct {
	Target      string `json:"target"` // host:port/database, no credentials
	Events      int64  `json:"events"`
	Purged      int64  `json:"purged"`
	TreeHashes  int64  `json:"tree_hashes"`
	Checkpoints int    `json:"checkpoints"`
	// Roots is how many checkpoint sizes (and the final size) had the same tree root in both
	// stores and in the signed note.
	Roots  int            `json:"roots_compared"`
	Copy   time.Duration  `json:"copy_ns"`
	Check  time.Duration  `json:"check_ns"`
	Verify *ledger.Report `json:"verify"` // the copy's full verification
}

// Migrate errors.
var (
	// ErrTargetNotEmpty: the target database already holds a log (or part of one); nothing was
	// written.
	ErrTargetNotEmpty = errors.New("migration target is not empty")
	// ErrCopyDiffers: after copying, the target does not hold exactly what the source does.
	ErrCopyDiffers = errors.New("the copy differs from the source")
)

// Migrate copies the directory's embedded log (its SQLite file, whatever d.Store says) into the
// empty PostgreSQL database at url: every entry with its seq, id, salt and body, purged entries
// as the same stubs (purged_by), every tree hash and every signed checkpoint, byte for byte, in
// transactions of opts.Batch entries. Then it checks the copy: the same entries and tree hashes,
// the same checkpoint notes (so the same signatures), the same root in both stores at every
// checkpoint's size and at the end, and ledger.Verify of the copy with the directory's verifier
// key passing.
//
// Before copying, it takes the directory's writer lock (no server may append during the copy)
// and verifies the source: a source that fails verification is refused, nothing copied, with
// the *ledger.TamperError naming the first problem's seq. A target holding anything is refused
// with ErrTargetNotEmpty. A migration interrupted midway leaves a partial copy that a rerun
// refuses: the copy is not resumable, drop the database and run again (the source is never
// written).
func (d Dir) Migrate(ctx context.Context, url string, opts MigrateOptions) (*MigrateReport, error) {
	if opts.Batch < 0 {
		return nil, fmt.Errorf("migrate: batch %d must not be negative", opts.Batch)
	}
	batch := cmpDefault(opts.Batch, DefaultMigrateBatch)
	if !postgres.IsURL(url) {
		return nil, fmt.Errorf("migrate: target %w %q: want postgres://... or postgresql://...", ErrStoreURL, scheme(url))
	}
	from := Dir{Path: d.Path} // the embedded log, even when the environment names a store
	if from.storeMissing() {
		return nil, fmt.Errorf("migrate: no log to copy at %s: %w", from.DB(), ErrNotInitialized)
	}
	v, err := from.Verifier()
	if err != nil {
		return nil, fmt.Errorf("migrate: %s: %w", from.VerifierKey(), err)
	}
	lock, err := from.lock()
	if err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	defer lock.Close()
	src, err := from.openStore(ctx, true)
	if err != nil {
		return nil, fmt.Errorf("migrate: source: %w", err)
	}
	defer src.Close()
	if _, err := ledger.Verify(ctx, src, v, ledger.VerifyOptions{}); err != nil {
		return nil, fmt.Errorf("migrate: the source %s does not verify; nothing was copied: %w", from.DB(), err)
	}
	to := Dir{Path: d.Path, Store: url, StoreWait: d.StoreWait, StoreLog: d.StoreLog}
	dst, err := to.openStore(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("migrate: target: %w", err)
	}
	defer dst.Close()
	rep := &MigrateReport{}
	if w, ok := dst.(interface{ Where() string }); ok {
		rep.Target = w.Where()
	}
	// Keep a second migrate out of the target while it is incomplete. (Servers no longer take
	// this lock, since several may write to one database: do not start one on the target until
	// the migration is done; the README says so.)
	if wl, ok := dst.(interface{ LockWriter(context.Context) error }); ok {
		if err := wl.LockWriter(ctx); err != nil {
			return nil, fmt.Errorf("migrate: target: %w", err)
		}
	}
	if err := checkEmpty(ctx, dst, rep.Target); err != nil {
		return nil, err
	}

	start := time.Now()
	total, err := src.Size(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: source: %w", err)
	}
	for next := int64(0); next < total; {
		es, err := readEntries(ctx, src, next, batch)
		if err != nil {
			return nil, fmt.Errorf("migrate: source: %w", err)
		}
		if len(es) == 0 {
			return nil, fmt.Errorf("migrate: source: seq %d: %w", next, store.ErrNotFound)
		}
		end := next + int64(len(es))
		hs, err := readHashes(ctx, src, tlog.StoredHashCount(next), tlog.StoredHashCount(end))
		if err != nil {
			return nil, fmt.Errorf("migrate: source: %w", err)
		}
		if err := dst.Append(ctx, store.Batch{Entries: es, FirstHash: tlog.StoredHashCount(next), Hashes: hs}); err != nil {
			return nil, fmt.Errorf("migrate: copy seq %d..%d: %w", next, end-1, err)
		}
		for _, e := range es {
			if e.Purged() {
				rep.Purged++
			}
		}
		next = end
		rep.Events, rep.TreeHashes = end, tlog.StoredHashCount(end)
		if opts.Progress != nil {
			opts.Progress(end, total)
		}
	}
	cps, err := src.Checkpoints(ctx)
	if err != nil {
		return nil, fmt.Errorf("migrate: source: %w", err)
	}
	for _, c := range cps {
		if err := dst.AddCheckpoint(ctx, c); err != nil {
			return nil, fmt.Errorf("migrate: copy checkpoint of size %d: %w", c.Size, err)
		}
	}
	rep.Checkpoints = len(cps)
	rep.Copy = time.Since(start)

	start = time.Now()
	if err := compareStores(ctx, src, dst, v, batch, rep); err != nil {
		return nil, fmt.Errorf("migrate: %w", err)
	}
	if rep.Verify, err = ledger.Verify(ctx, dst, v, ledger.VerifyOptions{}); err != nil {
		return nil, fmt.Errorf("migrate: the copy does not verify: %w", err)
	}
	rep.Check = time.Since(start)
	return rep, nil
}

func cmpDefault(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// checkEmpty refuses a target holding any entry, tree hash or checkpoint.
func checkEmpty(ctx context.Context, st Store, where string) error {
	n, err := st.Size(ctx)
	if err != nil {
		return fmt.Errorf("migrate: target: %w", err)
	}
	h, err := st.HashCount(ctx)
	if err != nil {
		return fmt.Errorf("migrate: target: %w", err)
	}
	cps, err := st.Checkpoints(ctx)
	if err != nil {
		return fmt.Errorf("migrate: target: %w", err)
	}
	if n > 0 || h > 0 || len(cps) > 0 {
		return fmt.Errorf("migrate: %w: %s holds %d events, %d tree hashes and %d checkpoints; migrate copies into an empty database only (create a new one, or drop this one and create it again); nothing was written",
			ErrTargetNotEmpty, where, n, h, len(cps))
	}
	return nil
}

// errEnough stops a scan that has read what it needs.
var errEnough = errors.New("enough")

// readEntries returns up to n entries from seq from on, copied out of the scan.
func readEntries(ctx context.Context, st Store, from int64, n int) ([]store.Entry, error) {
	out := make([]store.Entry, 0, n)
	err := st.ScanEntries(ctx, from, func(e store.Entry) error {
		e.Salt, e.Body = bytes.Clone(e.Salt), bytes.Clone(e.Body)
		// Cols is valid only during the call; the target computes the columns from the body,
		// what the leaf commits to, rather than copying the source's stored ones.
		e.Cols = nil
		out = append(out, e)
		if len(out) == n {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	return out, nil
}

// readHashes returns the stored tree hashes [from, to), all of them or an error.
func readHashes(ctx context.Context, st Store, from, to int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, 0, to-from)
	if to == from {
		return out, nil
	}
	err := st.ScanHashes(ctx, from, func(idx int64, h tlog.Hash) error {
		if idx != from+int64(len(out)) {
			return fmt.Errorf("tree hash %d: %w", from+int64(len(out)), store.ErrNotFound)
		}
		out = append(out, h)
		if idx == to-1 {
			return errEnough
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		return nil, err
	}
	if int64(len(out)) != to-from {
		return nil, fmt.Errorf("tree hash %d: %w", from+int64(len(out)), store.ErrNotFound)
	}
	return out, nil
}

// compareStores checks that b holds exactly what a does: every entry and tree hash, the same
// checkpoint notes, and at every checkpoint's size (and the final one) the same root in both
// stores as in the note signed by v.
func compareStores(ctx context.Context, a, b Store, v note.Verifier, batch int, rep *MigrateReport) error {
	for _, st := range []struct {
		get  func(Store) (int64, error)
		what string
	}{{func(s Store) (int64, error) { return s.Size(ctx) }, "events"}, {func(s Store) (int64, error) { return s.HashCount(ctx) }, "tree hashes"}} {
		na, err := st.get(a)
		if err != nil {
			return err
		}
		nb, err := st.get(b)
		if err != nil {
			return err
		}
		if na != nb {
			return fmt.Errorf("%w: %d %s in the source, %d in the copy", ErrCopyDiffers, na, st.what, nb)
		}
	}
	// b streams once; a is read in batches alongside. (A scan stopped early is cheap on SQLite;
	// pgx reads the rest of a result set when rows close, so b must not be read that way.)
	var pend []store.Entry
	next := int64(0)
	err := b.ScanEntries(ctx, 0, func(y store.Entry) error {
		if len(pend) == 0 {
			var err error
			if pend, err = readEntries(ctx, a, next, batch); err != nil {
				return err
			}
			if len(pend) == 0 {
				return fmt.Errorf("%w: the copy has seq %d, the source ends before it", ErrCopyDiffers, y.Seq)
			}
		}
		x := pend[0]
		pend = pend[1:]
		if x.Seq != y.Seq || x.ID != y.ID || x.PurgedBy != y.PurgedBy || !bytes.Equal(x.Salt, y.Salt) || !bytes.Equal(x.Body, y.Body) {
			return fmt.Errorf("%w: seq %d (id %s)", ErrCopyDiffers, x.Seq, x.ID)
		}
		next++
		return nil
	})
	if err != nil {
		return err
	}
	hashes, err := a.HashCount(ctx)
	if err != nil {
		return err
	}
	var hpend []tlog.Hash
	hnext := int64(0)
	if err := b.ScanHashes(ctx, 0, func(idx int64, h tlog.Hash) error {
		if len(hpend) == 0 {
			var err error
			if hpend, err = readHashes(ctx, a, hnext, min(hashes, hnext+int64(batch))); err != nil {
				return err
			}
			if len(hpend) == 0 {
				return fmt.Errorf("%w: the copy has tree hash %d, the source ends before it", ErrCopyDiffers, idx)
			}
		}
		if idx != hnext || h != hpend[0] {
			return fmt.Errorf("%w: tree hash %d", ErrCopyDiffers, hnext)
		}
		hpend = hpend[1:]
		hnext++
		return nil
	}); err != nil {
		return err
	}
	ca, err := a.Checkpoints(ctx)
	if err != nil {
		return err
	}
	cb, err := b.Checkpoints(ctx)
	if err != nil {
		return err
	}
	if len(ca) != len(cb) {
		return fmt.Errorf("%w: %d checkpoints in the source, %d in the copy", ErrCopyDiffers, len(ca), len(cb))
	}
	size, err := a.Size(ctx)
	if err != nil {
		return err
	}
	sizes := []int64{size}
	for i := range ca {
		if ca[i].Size != cb[i].Size || !bytes.Equal(ca[i].Note, cb[i].Note) {
			return fmt.Errorf("%w: the checkpoint of size %d", ErrCopyDiffers, ca[i].Size)
		}
		sizes = append(sizes, ca[i].Size)
	}
	for i, n := range sizes {
		ra, err := tlog.TreeHash(n, hashReader(ctx, a))
		if err != nil {
			return err
		}
		rb, err := tlog.TreeHash(n, hashReader(ctx, b))
		if err != nil {
			return fmt.Errorf("%w: root at size %d: %w", ErrCopyDiffers, n, err)
		}
		if ra != rb {
			return fmt.Errorf("%w: root at size %d", ErrCopyDiffers, n)
		}
		if i > 0 { // a checkpoint: its signed root too
			c, err := ledger.OpenCheckpoint(cb[i-1].Note, v)
			if err != nil || c.N != n || c.Hash != rb {
				return fmt.Errorf("%w: the checkpoint of size %d does not sign the copy's root", ErrCopyDiffers, n)
			}
		}
		rep.Roots++
	}
	return nil
}

func hashReader(ctx context.Context, st Store) tlog.HashReader {
	return tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return st.ReadHashes(ctx, idx) })
}
