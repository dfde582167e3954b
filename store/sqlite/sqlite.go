// Package sqlite is the embedded default store: one SQLite file in WAL mode through the pure-Go
// driver modernc.org/sqlite, so builds stay CGO_ENABLED=0.
//
// Events, their tree hashes and checkpoints live in three tables that triggers make append-only:
// an UPDATE or DELETE on any of them aborts. The schema carries a version in the meta table and
// migrates forward on open.
//
// Append makes a batch durable with one write and one fdatasync to the intake, two files beside
// the database (intake.go), and returns; the applier inserts acknowledged batches into the
// database behind it, many per fsynced transaction (apply.go). An Append of a few events then
// costs one small sequential write instead of a transaction that writes and fsyncs every page
// its events touch in nine B-trees. What the bound on visibility is:
//
//   - Through the Store that appended (the ledger, the server, the CLI in one process): every
//     read waits for what was acknowledged before it began. A caller always reads its writes.
//   - Another process, or another Store on the file: a read-only open waits until the database
//     holds what the writer had acknowledged when the open began (waitForWriter); later events
//     appear once applied, within applyLinger (50 ms) and one insert transaction.
//   - After a crash: the next open, read-only or read-write, applies the intake first (as
//     SQLite's readers roll back a hot journal), so every acknowledged event is there. A
//     read-only open of a volume that cannot be written fails instead, saying so.
//
// One Store at a time may write a file: the intake's lock refuses a second (ErrWriting).
package sqlite

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/mod/sumdb/tlog"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/internal/filter"
)

// Config configures Open.
type Config struct {
	// Path of the database file; its directory must exist.
	Path string
	// ReadOnly opens the file for reading only (verification of a copy, for example).
	ReadOnly bool
	// MaxPages caps the database size in pages (PRAGMA max_page_count); 0 leaves SQLite's default.
	// Tests use it to reach a full disk without filling one.
	MaxPages int64
}

// Store is a SQLite ledger store. It is safe for concurrent use; writes are serialized.
type Store struct {
	w, r *sql.DB // the writer (one connection) and a pool of readers (WAL lets them run beside it)

	// legacy: a file of schema 1 or 2 opened read-only (evidence copied before an upgrade). It
	// has no purged_by column and no retention indexes: nothing in it was ever purged.
	legacy bool
	// version is the file's schema; below 4 (read-only opens) the query columns are generated.
	version int
	// path is the database file; full scans open their own connection to it (see rawscan.go).
	path string

	// ckpt copies the WAL back into the database file in the background (see checkpointer), so
	// that no commit waits for it.
	ckpt     *sql.DB
	ckptStop chan struct{}
	ckptDone chan struct{}
	ckptOnce sync.Once // Close may be called twice

	wmu   sync.Mutex // serializes writes: the writer pool has one connection
	mu    sync.Mutex // guards stmts
	stmts map[string]*sql.Stmt

	// Append writes batches to the intake (see intake.go); the applier inserts them.
	in    *intakeFile
	amu   sync.Mutex // serializes Append: the intake has one end
	pmu   sync.Mutex // guards the fields below
	acked struct {
		entries, hashes int64 // where the acknowledged log ends
	}
	pending   []pending       // acknowledged, not yet applied, in order
	unapplied [2]int          // records of each intake file not yet applied
	ids       map[string]bool // the ids of pending entries
	applied   int64           // where the applied log ends (entries)
	applyErr  error           // the applier's last failure, until it succeeds
	progress  chan struct{}   // closed and replaced when applied moves or applyErr changes
	wake      chan struct{}   // tells the applier there is work
	hurry     chan struct{}   // tells the applier a read waits
	stop      chan struct{}   // closed by Close
	applier   chan struct{}   // closed when the applier has returned
	closed    bool
	held      bool // tests hold the applier (export_test.go)

	// filter spares Append the id index for new ids (idfilter.go); loadIDs fills it.
	filter     *idFilter
	filterStop context.CancelFunc
	filterDone chan struct{}
	lookups    atomic.Int64 // ids looked up in the id index (tests)
}

// pending is an acknowledged batch waiting for the applier, and the intake file it is in.
type pending struct {
	store.Batch
	file int
}

// busyTimeoutMS is how long a connection waits for a lock another holds before it fails.
const busyTimeoutMS = 10000

func dsn(path string, readOnly bool) string {
	q := "?_pragma=busy_timeout(" + strconv.Itoa(busyTimeoutMS) + ")&_pragma=foreign_keys(1)"
	if readOnly {
		// Readers map the file: a full scan then costs no read(2) per page.
		q += "&mode=ro&_pragma=query_only(1)&_pragma=mmap_size(1099511627776)"
	} else {
		// auto_vacuum must be set before the first table exists; on an older file it waits for
		// the VACUUM that Reclaim runs once (see there).
		// The writer checkpoints only once the WAL holds walPages (16 MiB); the checkpointer
		// has copied most of it by then (see startCheckpointer).
		q += "&_pragma=auto_vacuum(2)&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)&_pragma=wal_autocheckpoint(" + strconv.Itoa(walPages) + ")&_txlock=immediate"
	}
	return "file:" + path + q
}

// Open opens (creating if needed, unless read-only) the store at cfg.Path and migrates its schema.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("sqlite: Config.Path is empty")
	}
	if cfg.ReadOnly {
		if _, err := os.Stat(cfg.Path); err != nil {
			return nil, fmt.Errorf("sqlite: %w", err)
		}
	} else if err := checkWritableDir(filepath.Dir(cfg.Path)); err != nil {
		return nil, err
	} else if err := createPrivate(cfg.Path); err != nil {
		return nil, err
	}
	s := &Store{stmts: map[string]*sql.Stmt{}, path: cfg.Path}
	var err error
	if s.r, err = sql.Open("sqlite", dsn(cfg.Path, true)); err != nil {
		return nil, fmt.Errorf("sqlite: %w", err)
	}
	s.r.SetMaxOpenConns(4)
	if !cfg.ReadOnly {
		if s.w, err = sql.Open("sqlite", dsn(cfg.Path, false)); err != nil {
			s.r.Close()
			return nil, fmt.Errorf("sqlite: %w", err)
		}
		s.w.SetMaxOpenConns(1)
		s.w.SetMaxIdleConns(1)
		if cfg.MaxPages > 0 {
			if _, err := s.w.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count=%d", cfg.MaxPages)); err != nil {
				s.Close()
				return nil, mapErr("sqlite: set max_page_count", err)
			}
		}
		if err := migrate(ctx, s.w, SchemaVersion); err != nil {
			s.Close()
			return nil, err
		}
		s.version = SchemaVersion
		if err := s.startCheckpointer(cfg.Path); err != nil {
			s.Close()
			return nil, err
		}
		if err := s.startApplier(ctx); err != nil {
			s.Close()
			return nil, err
		}
		s.filter, s.filterDone = newIDFilter(s.applied), make(chan struct{})
		var loadCtx context.Context
		loadCtx, s.filterStop = context.WithCancel(context.Background())
		go s.loadIDs(loadCtx)
	} else if v, err := checkVersion(ctx, s.r); err != nil {
		s.Close()
		return nil, err
	} else {
		s.legacy, s.version = v < 3, v
		if err := s.recoverIntake(ctx); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// createPrivate creates a missing database file with mode 0600: the log is nobody else's to read.
// SQLite gives its -wal and -shm files the database file's mode.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	return f.Close()
}

// checkWritableDir fails early, with the path in the message, when the data directory cannot be
// written; SQLite would otherwise report "unable to open database file".
func checkWritableDir(dir string) error {
	f, err := os.CreateTemp(dir, ".writetest-*")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("sqlite: data directory %s does not exist", dir)
		}
		return fmt.Errorf("sqlite: data directory %s is not writable: %w", dir, errors.Join(store.ErrReadOnly, err))
	}
	name := f.Name()
	f.Close()
	return os.Remove(name)
}

// checkpointEvery is how often the background checkpoint runs while the log is written;
// walPages is the WAL size (in 4 KiB pages) at which the writer checkpoints itself.
const (
	checkpointEvery = 100 * time.Millisecond
	walPages        = 4096
)

// startCheckpointer starts the goroutine that checkpoints the WAL. SQLite's automatic
// checkpoint (every 1,000 pages by default) runs inside the commit that crosses its threshold,
// on the writer: that commit waits for the copy and an fsync of the database file, which is
// what a caller's p99 sees, and the writer, the one serial part of ingest, does the copying. A
// PASSIVE checkpoint on its own connection copies the committed frames while the writer goes on
// (WAL lets both run). It cannot restart the WAL under a steady stream of commits (new frames
// arrive while it copies), so the writer still checkpoints at walPages, by then with little
// left to copy, and the WAL starts over from its beginning. Durability is untouched: each commit
// is fsynced in the WAL before Append returns, and a checkpoint cut short by a crash is redone
// from the WAL on the next open.
func (s *Store) startCheckpointer(path string) error {
	var err error
	if s.ckpt, err = sql.Open("sqlite", "file:"+path+"?_pragma=busy_timeout(10000)&_pragma=synchronous(FULL)"); err != nil {
		return fmt.Errorf("sqlite: %w", err)
	}
	s.ckpt.SetMaxOpenConns(1)
	s.ckptStop, s.ckptDone = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(s.ckptDone)
		t := time.NewTicker(checkpointEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				// A failure (the disk full, say) is retried at the next tick; commits do not
				// depend on it, and the WAL keeps every frame until it succeeds.
				s.ckpt.Exec("PRAGMA wal_checkpoint(PASSIVE)")
			case <-s.ckptStop:
				return
			}
		}
	}()
	return nil
}

// Close closes the store.
func (s *Store) Close() error {
	var errs []error
	if s.filterStop != nil {
		s.filterStop()
		<-s.filterDone
	}
	if s.applier != nil {
		errs = append(errs, s.stopApplier())
	} else if s.in != nil {
		// An open that failed before the applier started: let go of the intake and its lock.
		errs = append(errs, s.in.close())
	}
	if s.ckpt != nil {
		s.ckptOnce.Do(func() {
			close(s.ckptStop)
			<-s.ckptDone
			errs = append(errs, s.ckpt.Close())
		})
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	errs = append(errs, s.r.Close())
	return errors.Join(errs...)
}

// mapErr turns SQLite result codes that callers act on into the store's sentinel errors.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var se interface{ Code() int } // *sqlite.Error, or *rawError from a full scan
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_FULL:
			return fmt.Errorf("%s: %w", op, errors.Join(store.ErrNoSpace, err))
		case sqlite3.SQLITE_READONLY, sqlite3.SQLITE_CANTOPEN, sqlite3.SQLITE_PERM:
			return fmt.Errorf("%s: %w", op, errors.Join(store.ErrReadOnly, err))
		case sqlite3.SQLITE_CONSTRAINT:
			if se.Code() == sqlite3.SQLITE_CONSTRAINT_UNIQUE && strings.Contains(err.Error(), "events.id") {
				return fmt.Errorf("%s: %w", op, store.ErrDuplicateID)
			}
		case sqlite3.SQLITE_IOERR:
			if errors.Is(err, os.ErrPermission) {
				return fmt.Errorf("%s: %w", op, errors.Join(store.ErrReadOnly, err))
			}
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

type preparer interface {
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// stmt returns a statement prepared on the writer or the reader pool, cached. A writer statement
// must be prepared outside a transaction (the pool's one connection is busy inside one); it is
// then reused by the transaction with no new prepare.
func (s *Store) stmt(ctx context.Context, on preparer, query string) (*sql.Stmt, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := query
	if on == preparer(s.r) {
		key = "r:" + query
	}
	if st, ok := s.stmts[key]; ok {
		return st, nil
	}
	st, err := on.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	s.stmts[key] = st
	return st, nil
}

// rowsSQL returns "INSERT ... VALUES (?,?),(?,?)..." for n rows.
func rowsSQL(prefix string, cols, n int) string {
	var b strings.Builder
	b.WriteString(prefix)
	row := "(" + strings.TrimSuffix(strings.Repeat("?,", cols), ",") + ")"
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(row)
	}
	return b.String()
}

const (
	insertHashes = "INSERT INTO tree_hashes(idx, hash) VALUES "
	chunk        = 128 // rows per INSERT statement
)

var (
	// queryCols are the query columns (store.Columns), in AppendValues' order.
	queryCols    = strings.Join(store.ColumnNames, ", ")
	insertEvents = "INSERT INTO events(seq, id, salt, body, " + queryCols + ") VALUES "
	eventArgs    = 4 + len(store.ColumnNames) // the columns insertEvents names
)

// insert commits the batch to the database in one fsynced transaction: all of it or, on any
// error, none of it.
func (s *Store) insert(ctx context.Context, b store.Batch) (err error) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// Prepare the multi-row INSERTs this batch needs before the transaction takes the connection.
	stmts := map[int]*sql.Stmt{} // by rows: events as +n, tree hashes as -n
	for _, n := range []int{min(chunk, len(b.Entries)), len(b.Entries) % chunk, -min(chunk, len(b.Hashes)), -(len(b.Hashes) % chunk)} {
		if n == 0 {
			continue
		}
		q := rowsSQL(insertEvents, eventArgs, n)
		if n < 0 {
			q = rowsSQL(insertHashes, 2, -n)
		}
		st, err := s.stmt(ctx, s.w, q)
		if err != nil {
			return mapErr("sqlite: prepare", err)
		}
		stmts[n] = st
	}
	tail, err := s.stmt(ctx, s.w, tailQuery)
	if err != nil {
		return mapErr("sqlite: prepare", err)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return mapErr("sqlite: begin", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	// The batch must continue the log exactly: checked inside the transaction, so two writers on
	// one file (which the ledger never does) could not interleave.
	var next, nextHash int64
	if err := tx.StmtContext(ctx, tail).QueryRowContext(ctx).Scan(&next, &nextHash); err != nil {
		return mapErr("sqlite: append", err)
	}
	if b.Entries[0].Seq != next || b.FirstHash != nextHash {
		return fmt.Errorf("sqlite: append at seq %d, hash %d; log ends at %d, %d: %w",
			b.Entries[0].Seq, b.FirstHash, next, nextHash, store.ErrOutOfOrder)
	}
	args := make([]any, 0, eventArgs*chunk)
	for i := 0; i < len(b.Entries); i += chunk {
		part := b.Entries[i:min(i+chunk, len(b.Entries))]
		args = args[:0]
		for j, e := range part {
			if e.Seq != b.Entries[0].Seq+int64(i+j) {
				return fmt.Errorf("sqlite: entry seq %d is not consecutive: %w", e.Seq, store.ErrOutOfOrder)
			}
			cols := e.Cols
			if cols == nil {
				c, err := store.ColumnsOf(e.Body)
				if err != nil {
					return fmt.Errorf("sqlite: entry %d: query columns: %w", e.Seq, err)
				}
				cols = &c
			}
			args = append(args, e.Seq, e.ID, e.Salt, string(e.Body))
			args = cols.AppendValues(args)
		}
		if _, err := tx.StmtContext(ctx, stmts[len(part)]).ExecContext(ctx, args...); err != nil {
			return mapErr("sqlite: insert events", err)
		}
	}
	for i := 0; i < len(b.Hashes); i += chunk {
		part := b.Hashes[i:min(i+chunk, len(b.Hashes))]
		args = args[:0]
		for j := range part {
			args = append(args, b.FirstHash+int64(i+j), part[j][:])
		}
		if _, err := tx.StmtContext(ctx, stmts[-len(part)]).ExecContext(ctx, args...); err != nil {
			return mapErr("sqlite: insert tree hashes", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return mapErr("sqlite: commit", err)
	}
	return nil
}

// Size returns the number of entries, that is the next seq.
func (s *Store) Size(ctx context.Context) (int64, error) {
	if err := s.caughtUp(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := s.r.QueryRowContext(ctx, "SELECT coalesce(max(seq)+1, 0) FROM events").Scan(&n)
	return n, mapErr("sqlite: size", err)
}

// tailQuery reads, in one statement, one past the largest seq and one past the largest tree hash
// index: where Append continues the log, and the extent verification judges.
const tailQuery = "SELECT (SELECT coalesce(max(seq)+1, 0) FROM events), (SELECT coalesce(max(idx)+1, 0) FROM tree_hashes)"

// Extent returns, from one read transaction, one past the largest seq and one past the largest
// tree hash index.
func (s *Store) Extent(ctx context.Context) (events, hashes int64, err error) {
	if err := s.caughtUp(ctx); err != nil {
		return 0, 0, err
	}
	return tail(ctx, s.r, "sqlite: extent")
}

// tail reads tailQuery on db: where the log ends, in entries and tree hashes.
func tail(ctx context.Context, db *sql.DB, op string) (events, hashes int64, err error) {
	err = db.QueryRowContext(ctx, tailQuery).Scan(&events, &hashes)
	return events, hashes, mapErr(op, err)
}

// HashCount returns the number of stored tree hashes.
func (s *Store) HashCount(ctx context.Context) (int64, error) {
	if err := s.caughtUp(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := s.r.QueryRowContext(ctx, "SELECT count(*) FROM tree_hashes").Scan(&n)
	return n, mapErr("sqlite: hash count", err)
}

// ReadHashes returns the stored tree hashes at the given tlog stored-hash indexes.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	if err := s.caughtUp(ctx); err != nil {
		return nil, err
	}
	out := make([]tlog.Hash, len(indexes))
	st, err := s.stmt(ctx, s.r, "SELECT hash FROM tree_hashes WHERE idx = ?")
	if err != nil {
		return nil, mapErr("sqlite: prepare", err)
	}
	for i, idx := range indexes {
		var h []byte
		if err := st.QueryRowContext(ctx, idx).Scan(&h); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("sqlite: tree hash %d: %w", idx, store.ErrNotFound)
			}
			return nil, mapErr("sqlite: read hash", err)
		}
		if len(h) != tlog.HashSize {
			return nil, fmt.Errorf("sqlite: tree hash %d has %d bytes, want %d", idx, len(h), tlog.HashSize)
		}
		copy(out[i][:], h)
	}
	return out, nil
}

// entryCols are the columns every entry read selects, in scanEntry's order.
const entryCols = "seq, id, salt, body, coalesce(purged_by, 0)"

// legacyCols stand for entryCols in a file from before purges existed.
const legacyCols = "seq, id, salt, body, 0"

// scanEntry reads one row of entryCols, copying salt and body unless raw (then they are valid
// only until the next row). A purged entry comes back with no salt and body.
func scanEntry(rows interface{ Scan(...any) error }, raw bool) (store.Entry, error) {
	var e store.Entry
	var salt, body sql.RawBytes
	if err := rows.Scan(&e.Seq, &e.ID, &salt, &body, &e.PurgedBy); err != nil {
		return e, err
	}
	switch {
	case e.PurgedBy > 0:
	case raw:
		e.Salt, e.Body = salt, body
	default:
		e.Salt, e.Body = bytes.Clone(salt), bytes.Clone(body)
	}
	return e, nil
}

// Entry returns the entry at seq.
func (s *Store) Entry(ctx context.Context, seq int64) (store.Entry, error) {
	return s.one(ctx, "SELECT "+entryCols+" FROM events WHERE seq = ?", seq)
}

// EntryByID returns the entry with the given event id.
func (s *Store) EntryByID(ctx context.Context, id string) (store.Entry, error) {
	return s.one(ctx, "SELECT "+entryCols+" FROM events WHERE id = ?", id)
}

func (s *Store) one(ctx context.Context, query string, arg any) (store.Entry, error) {
	var e store.Entry
	err := s.entries(ctx, "sqlite: read event", query, []any{arg}, false, func(x store.Entry) error { e = x; return nil })
	if err == nil && e.ID == "" {
		return e, fmt.Errorf("event %v: %w", arg, store.ErrNotFound)
	}
	return e, err
}

// entries runs a query selecting entryCols and calls fn for each row.
func (s *Store) entries(ctx context.Context, op, query string, args []any, raw bool, fn func(store.Entry) error) error {
	if err := s.caughtUp(ctx); err != nil {
		return err
	}
	if s.legacy {
		query = strings.NewReplacer(entryCols, legacyCols, "purged_by IS NULL", "1").Replace(query)
	}
	rows, err := s.r.QueryContext(ctx, query, args...)
	if err != nil {
		return mapErr(op, err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := scanEntry(rows, raw)
		if err != nil {
			return mapErr(op, err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	return mapErr(op, rows.Err())
}

// Tail returns the last n entries in seq order.
func (s *Store) Tail(ctx context.Context, n int) ([]store.Entry, error) {
	var out []store.Entry
	err := s.entries(ctx, "sqlite: tail", "SELECT "+entryCols+" FROM (SELECT * FROM events ORDER BY seq DESC LIMIT ?) ORDER BY seq", []any{n}, false,
		func(e store.Entry) error { out = append(out, e); return nil })
	return out, err
}

// ScanEntries calls fn for every entry with seq >= from, in seq order, with its stored query
// columns (Cols) when the file stores them (schema 4 on; older files generate them from the
// body). The Entry's slices and Cols are valid only during the call.
func (s *Store) ScanEntries(ctx context.Context, from int64, fn func(store.Entry) error) error {
	if err := s.caughtUp(ctx); err != nil {
		return err
	}
	const op = "sqlite: scan events"
	if s.version < 4 {
		return s.entries(ctx, op, "SELECT "+entryCols+" FROM events WHERE seq >= ? ORDER BY seq", []any{from}, true, fn)
	}
	c, err := openRaw(s.path)
	if err != nil {
		return mapErr(op, err)
	}
	defer c.close()
	var (
		cols   store.Columns
		intern store.Interner
		last   [10]string // each string column's value in the row before: often the same
	)
	strs := [...]*string{&cols.SessionID, &cols.Kind, &cols.UserID, &cols.AgentID, &cols.Model,
		&cols.ToolName, &cols.SubjectType, &cols.SubjectID, &cols.Outcome, &cols.RetentionClass}
	err = c.query(ctx, "SELECT "+entryCols+", "+scanCols+" FROM events WHERE seq >= ? ORDER BY seq", []int64{from}, func(r *rawStmt) error {
		e := store.Entry{Seq: r.int64(0), ID: string(r.bytes(1)), PurgedBy: r.int64(4)}
		if e.PurgedBy == 0 {
			e.Salt, e.Body = r.bytes(2), r.bytes(3)
		}
		cols = store.Columns{Success: -1}
		if !r.null(5) {
			cols.TimeMS, cols.HasTime = r.int64(5), true
		}
		if !r.null(6) {
			switch ok := r.int64(6); ok {
			case 0, 1:
				cols.Success = int8(ok)
			default: // an edited row: make it differ from any body
				cols.Success = 2
			}
		}
		if !r.null(7) {
			cols.DurationMS, cols.HasDuration = r.float64(7), true
		}
		if !r.null(8) {
			cols.RetainUntilMS, cols.HasRetain = r.int64(8), true
		}
		for i, d := range strs {
			switch b := r.bytes(9 + i); {
			case b == nil: // NULL
			case len(b) == 0: // the ledger stores NULL, never ''
				*d = editedValue
			case last[i] == string(b):
				*d = last[i]
			default:
				*d = intern.Str(b)
				last[i] = *d
			}
		}
		e.Cols = &cols
		return fn(e)
	})
	return rawScanErr(op, err)
}

// scanCols are the query columns as ScanEntries reads them: the numbers cast to their declared
// types (a value of another type, which only an edit can store, then reads as a number no body
// gives, where scanning it would fail), then the strings.
const scanCols = "CAST(time_ms AS INTEGER), CAST(success AS INTEGER), CAST(duration_ms AS REAL), CAST(retain_until_ms AS INTEGER), " +
	"session_id, kind, user_id, agent_id, model, tool_name, subject_type, subject_id, outcome, retention_class"

// editedValue stands for a stored column value that no body can give.
const editedValue = "\x00(edited: an empty string)"

// ScanHashes calls fn for every stored tree hash with index >= from, in index order.
func (s *Store) ScanHashes(ctx context.Context, from int64, fn func(idx int64, h tlog.Hash) error) error {
	if err := s.caughtUp(ctx); err != nil {
		return err
	}
	c, err := openRaw(s.path)
	if err != nil {
		return mapErr("sqlite: scan tree hashes", err)
	}
	defer c.close()
	err = c.query(ctx, "SELECT idx, hash FROM tree_hashes WHERE idx >= ? ORDER BY idx", []int64{from}, func(r *rawStmt) error {
		idx, raw := r.int64(0), r.bytes(1)
		var h tlog.Hash
		if len(raw) != tlog.HashSize {
			return fmt.Errorf("sqlite: tree hash %d has %d bytes, want %d", idx, len(raw), tlog.HashSize)
		}
		copy(h[:], raw)
		return fn(idx, h)
	})
	return rawScanErr("sqlite: scan tree hashes", err)
}

// AddCheckpoint stores a signed checkpoint. Storing the same size twice is an error.
func (s *Store) AddCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if s.w == nil {
		return fmt.Errorf("sqlite: add checkpoint: %w", store.ErrReadOnly)
	}
	// Only after every acknowledged entry is in the database: a checkpoint or a purge
	// covers what it has.
	if err := s.caughtUp(ctx); err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_, err := s.w.ExecContext(ctx, "INSERT INTO checkpoints(size, note) VALUES (?, ?)", c.Size, string(c.Note))
	return mapErr("sqlite: add checkpoint", err)
}

// LatestCheckpoint returns the checkpoint of the largest size.
func (s *Store) LatestCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	if err := s.caughtUp(ctx); err != nil {
		return store.Checkpoint{}, err
	}
	var c store.Checkpoint
	var note string
	err := s.r.QueryRowContext(ctx, "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").Scan(&c.Size, &note)
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("checkpoint: %w", store.ErrNotFound)
	}
	c.Note = []byte(note)
	return c, mapErr("sqlite: latest checkpoint", err)
}

// Checkpoints returns every stored checkpoint, smallest first.
func (s *Store) Checkpoints(ctx context.Context) ([]store.Checkpoint, error) {
	if err := s.caughtUp(ctx); err != nil {
		return nil, err
	}
	rows, err := s.r.QueryContext(ctx, "SELECT size, note FROM checkpoints ORDER BY size")
	if err != nil {
		return nil, mapErr("sqlite: checkpoints", err)
	}
	defer rows.Close()
	var out []store.Checkpoint
	for rows.Next() {
		var c store.Checkpoint
		var note string
		if err := rows.Scan(&c.Size, &note); err != nil {
			return nil, mapErr("sqlite: checkpoints", err)
		}
		c.Note = []byte(note)
		out = append(out, c)
	}
	return out, mapErr("sqlite: checkpoints", rows.Err())
}

// Find calls fn for each intact entry matching f, in seq order: a purged entry matches no
// filter, and is left out of an empty one too.
func (s *Store) Find(ctx context.Context, f store.Filter, fn func(store.Entry) error) error {
	q, args := findQuery(f)
	return s.entries(ctx, "sqlite: find", q, args, false, fn)
}

// findQuery is the statement Find runs for f; its time bounds compare with time_ms, which the
// indexes cover.
func findQuery(f store.Filter) (q string, args []any) {
	return filter.Query(f, entryCols, filter.Dialect{
		Col: func(name string) string { return name },
		Arg: func(int) string { return "?" },
	})
}

// ToolCalls calls fn for each tool_call event in [since, until) (zero: unbounded), reading only
// the covering index.
func (s *Store) ToolCalls(ctx context.Context, since, until time.Time, fn func(store.ToolCall) error) error {
	if err := s.caughtUp(ctx); err != nil {
		return err
	}
	q := "SELECT tool_name, duration_ms, success, user_id FROM events INDEXED BY events_tool WHERE tool_name IS NOT NULL AND kind = 'tool_call'"
	var args []any
	if !since.IsZero() {
		q += " AND time_ms >= ?"
		args = append(args, since.UnixMilli())
	}
	if !until.IsZero() {
		q += " AND time_ms < ?"
		args = append(args, until.UnixMilli())
	}
	rows, err := s.r.QueryContext(ctx, q, args...)
	if err != nil {
		return mapErr("sqlite: tool calls", err)
	}
	defer rows.Close()
	var intern store.Interner
	str := intern.Str
	for rows.Next() {
		var tool, user sql.RawBytes
		var d, ok any
		if err := rows.Scan(&tool, &d, &ok, &user); err != nil {
			return mapErr("sqlite: tool calls", err)
		}
		c := store.ToolCall{Tool: str(tool), UserID: str(user), Success: -1}
		switch v := d.(type) {
		case float64:
			c.DurationMS, c.HasDuration = v, true
		case int64:
			c.DurationMS, c.HasDuration = float64(v), true
		}
		if v, isInt := ok.(int64); isInt {
			c.Success = int8(min(v, 1))
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return mapErr("sqlite: tool calls", rows.Err())
}
