// Package postgres is the scale-out store: the ledger's log in a PostgreSQL database (15 or
// newer) through github.com/jackc/pgx/v5, for an organization that runs its servers on a
// database it already operates, backs up and replicates.
//
// It owns the schema (schema.go: the tables, query columns, indexes and triggers of
// store/sqlite, translated) and its forward migrations, and implements what store/sqlite does,
// passing the same conformance suite (store/storetest). Events, tree hashes and checkpoints are
// append-only twice: triggers refuse UPDATE, DELETE and TRUNCATE (but for the retention erasure
// path), and the README gives the grants of a role that may only INSERT and SELECT. Every Append
// commits in one transaction under synchronous_commit (PostgreSQL's default, which Open checks):
// nothing is acknowledged before it is durable. The transaction locks the log's tail row, so
// appends from several processes on one database stay linear and gap-free. The query columns
// are written with each entry from the columns the ledger read from its canonical body
// (store.Entry.Cols), and ScanEntries hands them back, so verification checks every one
// against the body it hashes.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/internal/filter"
)

// Config configures Open.
type Config struct {
	// URL is the connection URL, postgres://user:password@host:port/database?options (any form
	// pgx accepts, libpq's key=value too).
	URL string
	// ReadOnly opens the database for reading only: every transaction is read-only, and the
	// schema is checked, not migrated.
	ReadOnly bool
	// MaxConns caps the connection pool; 0 is DefaultMaxConns.
	MaxConns int32
	// ConnectTimeout bounds the first connection, retried with backoff while the database is
	// unreachable; 0 is DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// Logger, when set, gets one line for each failed attempt to connect while retrying: the
	// database (host:port/name, never the password), the error, and when the next attempt is.
	Logger *slog.Logger
	// HoldTimeout is how long a session may sit idle inside a transaction, holding the log's
	// tail lock (AppendAt) or the checkpoint lease, before PostgreSQL ends it and the lock
	// passes on: a process paused or cut off mid-commit must not stall every other writer.
	// 0 is DefaultHoldTimeout.
	HoldTimeout time.Duration
}

// Defaults for Config.
const (
	DefaultMaxConns       = 8
	DefaultConnectTimeout = 10 * time.Second
	// A writer computes a batch's tree hashes, a lease holder reads a few and signs, between
	// statements: milliseconds. Ten seconds of silence means it is paused or cut off.
	DefaultHoldTimeout = 10 * time.Second
)

// IsURL reports whether s names a PostgreSQL database (postgres:// or postgresql://).
func IsURL(s string) bool {
	return strings.HasPrefix(s, "postgres://") || strings.HasPrefix(s, "postgresql://")
}

// Store is a PostgreSQL ledger store. It is safe for concurrent use, and any number of Stores,
// in any number of processes, may append to one database.
type Store struct {
	pool     *pgxpool.Pool
	readOnly bool
	where    string // host:port/database, for messages (never the password)

	writer *pgxpool.Conn // holds the writer lock (LockWriter) until Close
}

// Open connects to cfg.URL and migrates the schema (or, read-only, checks it).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.URL == "" {
		return nil, errors.New("postgres: Config.URL is empty")
	}
	if cfg.MaxConns < 0 || cfg.ConnectTimeout < 0 || cfg.HoldTimeout < 0 {
		return nil, fmt.Errorf("postgres: Config.MaxConns %d, ConnectTimeout %v and HoldTimeout %v must not be negative", cfg.MaxConns, cfg.ConnectTimeout, cfg.HoldTimeout)
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		// pgx's message quotes the URL with its password masked.
		return nil, fmt.Errorf("postgres: bad database URL: %w", err)
	}
	pc.MaxConns = cmp(cfg.MaxConns, DefaultMaxConns)
	timeout := cmp(cfg.ConnectTimeout, DefaultConnectTimeout)
	pc.ConnConfig.ConnectTimeout = timeout
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	pc.ConnConfig.RuntimeParams["application_name"] = "agentaudit"
	if _, set := pc.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"]; !set || cfg.HoldTimeout > 0 { // the URL's, unless Config says
		pc.ConnConfig.RuntimeParams["idle_in_transaction_session_timeout"] = strconv.FormatInt(cmp(cfg.HoldTimeout, DefaultHoldTimeout).Milliseconds(), 10)
	}
	if cfg.ReadOnly {
		pc.ConnConfig.RuntimeParams["default_transaction_read_only"] = "on"
	}
	s := &Store{readOnly: cfg.ReadOnly,
		where: net.JoinHostPort(pc.ConnConfig.Host, strconv.Itoa(int(pc.ConnConfig.Port))) + "/" + pc.ConnConfig.Database}
	if s.pool, err = pgxpool.NewWithConfig(ctx, pc); err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := s.ping(ctx, timeout, cfg.Logger); err != nil {
		s.pool.Close()
		return nil, err
	}
	if cfg.ReadOnly {
		err = s.checkVersion(ctx)
	} else if err = s.migrate(ctx, SchemaVersion); err == nil {
		err = s.checkDurable(ctx)
	}
	if err != nil {
		s.pool.Close()
		return nil, err
	}
	return s, nil
}

// ErrUnreachable: the database did not answer when the store was opened. It comes joined with
// store.ErrUnavailable.
var ErrUnreachable = errors.New("database unreachable")

// ping connects, retrying with backoff (100 ms doubling to 2 s) for up to timeout while the
// database is unreachable or starting up, as it is while a server and its database start
// together. A refusal that waiting does not cure (a wrong password, a missing database) fails at
// once.
func (s *Store) ping(ctx context.Context, timeout time.Duration, logger *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	giveUp := time.Now().Add(timeout)
	wait := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := s.pool.Ping(ctx)
		if err == nil {
			return nil
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code != "57P03" { // cannot_connect_now: starting up
			return fmt.Errorf("postgres: database %s refused the connection: %w", s.where, err)
		}
		if logger != nil && ctx.Err() == nil {
			logger.Warn("postgres: database unreachable; retrying", "database", s.where, "attempt", attempt, "err", err.Error(),
				"next_attempt_in", wait.String(), "give_up_in", time.Until(giveUp).Round(time.Second).String())
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("postgres: database %s unreachable for %v (%d attempts): %w", s.where, timeout, attempt, errors.Join(ErrUnreachable, store.ErrUnavailable, err))
		case <-time.After(wait):
		}
		wait = min(2*wait, 2*time.Second)
	}
}

func cmp[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// checkDurable refuses a session in which a commit could return before it is durable, and a
// hot standby, which can never be written (its readers open it ReadOnly).
func (s *Store) checkDurable(ctx context.Context) error {
	var sc string
	var standby bool
	if err := s.pool.QueryRow(ctx, "SELECT current_setting('synchronous_commit'), pg_is_in_recovery()").Scan(&sc, &standby); err != nil {
		return mapErr("postgres: synchronous_commit", err)
	}
	if standby {
		return fmt.Errorf("postgres: %s is a read-only standby (in recovery): connect writers to the primary: %w", s.where, store.ErrReadOnly)
	}
	if sc == "off" {
		return fmt.Errorf("postgres: synchronous_commit is off for this role or database: an acknowledged event could be lost; set it to on")
	}
	return nil
}

// Close closes the connection pool, releasing the writer lock.
func (s *Store) Close() error {
	if s.writer != nil {
		s.writer.Release()
		s.writer = nil
	}
	s.pool.Close()
	return nil
}

// ErrWriterLocked: another process holds the database's writer lock (LockWriter).
var ErrWriterLocked = errors.New("another agentaudit writer is appending to this database")

// writerLock is the session advisory lock key of the one writer.
const writerLock = 0x61617772 // "aawr"

// LockWriter takes the database's writer lock, a session advisory lock held on one connection
// of the pool until Close, or fails at once with ErrWriterLocked. It is opt-in, for a deployment
// that wants exactly one writer: any number of ledgers may append at once (they sequence through
// AppendAt and sign through CheckpointLease), so agentaudit itself does not take it.
func (s *Store) LockWriter(ctx context.Context) error {
	if err := s.writable("lock writer"); err != nil {
		return err
	}
	if s.writer != nil {
		return nil
	}
	c, err := s.pool.Acquire(ctx)
	if err != nil {
		return mapErr("postgres: lock writer", err)
	}
	var ok bool
	if err := c.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", writerLock).Scan(&ok); err != nil {
		c.Release()
		return mapErr("postgres: lock writer", err)
	}
	if !ok {
		c.Release()
		return fmt.Errorf("postgres: %s: %w", s.where, ErrWriterLocked)
	}
	s.writer = c
	return nil
}

// Where is the database's host:port/name (no credentials), for messages.
func (s *Store) Where() string { return s.where }

// mapErr turns the PostgreSQL errors callers act on into the store's sentinel errors.
func mapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	if unavailable(err) {
		return fmt.Errorf("%s: %w", op, errors.Join(store.ErrUnavailable, err))
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case pe.Code == "23505" && pe.ConstraintName == "events_id_key":
			return fmt.Errorf("%s: %w", op, errors.Join(store.ErrDuplicateID, err))
		case pe.Code == "23505" && (pe.ConstraintName == "events_pkey" || pe.ConstraintName == "tree_hashes_pkey"):
			return fmt.Errorf("%s: %w", op, errors.Join(store.ErrOutOfOrder, err))
		case pe.Code == "53100": // disk_full
			return fmt.Errorf("%s: %w", op, errors.Join(store.ErrNoSpace, err))
		case pe.Code == "25006", pe.Code == "42501": // read_only_sql_transaction, insufficient_privilege
			return fmt.Errorf("%s: %w", op, errors.Join(store.ErrReadOnly, err))
		case pe.Code == "AA002":
			return fmt.Errorf("%s: %w", op, errors.Join(store.ErrNotPurgeable, err))
		}
	}
	return fmt.Errorf("%s: %w", op, err)
}

// unavailable reports whether err is the database going away or not answering, rather than it
// refusing the statement: a lost or refused connection, a server shutting down or starting up,
// a session ended by the server (the checkpoint lease's timeout).
func unavailable(err error) bool {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch {
		case strings.HasPrefix(pe.Code, "08"), // connection_exception
			pe.Code == "57P01", pe.Code == "57P02", pe.Code == "57P03", // admin, crash shutdown; starting up
			pe.Code == "25P03", // idle_in_transaction_session_timeout
			pe.Code == "53300": // too_many_connections
			return true
		}
		return false
	}
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, pgconn.ErrConnClosed) || errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		pgconn.SafeToRetry(err)
}

func (s *Store) writable(op string) error {
	if s.readOnly {
		return fmt.Errorf("postgres: %s: %w", op, store.ErrReadOnly)
	}
	return nil
}

// Append commits the batch in one transaction: all of it or, on any error, none of it. The
// transaction locks the log's tail row first, so a batch is checked against, and continues, the
// log as every other writer left it.
// A purged entry (PurgedBy set) is stored as the stub Erase leaves, which is how a copied log
// (datadir.Migrate) keeps its purged events; the ledger appends only intact ones.
func (s *Store) Append(ctx context.Context, b store.Batch) error {
	return s.AppendAt(ctx, func(int64, tlog.HashReader) (store.Batch, error) { return b, nil })
}

// AppendAt is Append for a writer that shares the database with others: inside the transaction,
// with the log's tail row locked (SELECT ... FOR UPDATE), it calls build with the log's size
// and a reader of its stored tree hashes as that transaction sees them, and commits the batch
// build returns, which must continue the log at size (else store.ErrOutOfOrder). Other writers
// wait on the row lock until the commit, so the log stays linear and gap-free whichever process
// appends. An error of build is returned as is, and nothing is written. A writer that stops
// answering inside the transaction loses the lock after Config.HoldTimeout (PostgreSQL ends its
// session; its commit fails with store.ErrUnavailable).
func (s *Store) AppendAt(ctx context.Context, build func(size int64, hashes tlog.HashReader) (store.Batch, error)) (err error) {
	if err := s.writable("append"); err != nil {
		return err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return mapErr("postgres: begin", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	var next, nextHash int64
	if err := tx.QueryRow(ctx, "SELECT next_seq, next_hash FROM log_tail FOR UPDATE").Scan(&next, &nextHash); err != nil {
		return mapErr("postgres: lock the log's tail", err)
	}
	b, err := build(next, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return readHashes(ctx, tx, idx) }))
	if err != nil {
		return err
	}
	if len(b.Entries) == 0 {
		return mapErr("postgres: commit", tx.Commit(ctx))
	}
	first := b.Entries[0].Seq
	cols := make([]*store.Columns, len(b.Entries)) // nil for a stub
	for i, e := range b.Entries {
		if e.Seq != first+int64(i) {
			return fmt.Errorf("postgres: entry seq %d is not consecutive: %w", e.Seq, store.ErrOutOfOrder)
		}
		switch {
		case e.Purged():
		case e.Cols != nil:
			cols[i] = e.Cols
		default: // a caller other than the ledger (a copied log)
			c, err := store.ColumnsOf(e.Body)
			if err != nil {
				return fmt.Errorf("postgres: entry %d: query columns: %w", e.Seq, err)
			}
			cols[i] = &c
		}
	}
	if first != next || b.FirstHash != nextHash {
		return fmt.Errorf("postgres: append at seq %d, hash %d; log ends at %d, %d: %w",
			first, b.FirstHash, next, nextHash, store.ErrOutOfOrder)
	}
	row := make([]any, 0, len(copyCols))
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, copyCols,
		pgx.CopyFromSlice(len(b.Entries), func(i int) ([]any, error) {
			e := &b.Entries[i]
			if e.Purged() { // a stub, as Erase leaves one (a log copied by datadir.Migrate)
				return append(append(row[:0], e.Seq, e.ID, stubSalt, "{}", e.PurgedBy), noColumns...), nil
			}
			return cols[i].AppendValues(append(row[:0], e.Seq, e.ID, e.Salt, string(e.Body), nil)), nil
		})); err != nil {
		return mapErr("postgres: insert events", err)
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"tree_hashes"}, []string{"idx", "hash"},
		pgx.CopyFromSlice(len(b.Hashes), func(i int) ([]any, error) {
			return []any{b.FirstHash + int64(i), b.Hashes[i][:]}, nil
		})); err != nil {
		return mapErr("postgres: insert tree hashes", err)
	}
	if _, err := tx.Exec(ctx, "UPDATE log_tail SET next_seq = $1, next_hash = $2",
		first+int64(len(b.Entries)), b.FirstHash+int64(len(b.Hashes))); err != nil {
		return mapErr("postgres: move the log's tail", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return mapErr("postgres: commit", err)
	}
	return nil
}

// stubSalt is the salt column of a purged entry, as Erase writes it: sixteen zero bytes.
var stubSalt = make([]byte, 16)

// copyCols are the columns Append copies: the entry, then the query columns (store.Columns) in
// AppendValues' order.
var copyCols = append([]string{"seq", "id", "salt", "body", "purged_by"}, store.ColumnNames...)

// noColumns are a stub's query columns: all NULL.
var noColumns = make([]any, len(store.ColumnNames))

// checkpointLock is the transaction advisory lock key of the checkpoint lease.
const checkpointLock = 0x61616370 // "aacp"

// CheckpointLease runs sign for the one ledger, among all those appending to the database, that
// holds the checkpoint lease: a transaction advisory lock, tried without waiting (held is false,
// and sign is not called, when another process has it). sign gets the log's size, the size of
// the largest stored checkpoint (-1 for none) and a reader of the stored tree hashes; the note
// it returns (nil: nothing to sign) is stored in the same transaction. The lease ends with the
// transaction, or, if its holder stops answering (paused, partitioned), when PostgreSQL ends the
// session after Config.HoldTimeout idle: the holder's checkpoint is then not stored, and
// another process takes the lease.
func (s *Store) CheckpointLease(ctx context.Context, sign func(size, signed int64, hashes tlog.HashReader) ([]byte, error)) (held bool, err error) {
	if err := s.writable("checkpoint"); err != nil {
		return false, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, mapErr("postgres: begin", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) // after Commit, a no-op
	if err := tx.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock($1)", checkpointLock).Scan(&held); err != nil || !held {
		return false, mapErr("postgres: checkpoint lease", err)
	}
	var size, signed int64
	if err := tx.QueryRow(ctx, "SELECT next_seq, (SELECT coalesce(max(size), -1) FROM checkpoints) FROM log_tail").Scan(&size, &signed); err != nil {
		return true, mapErr("postgres: checkpoint lease", err)
	}
	note, err := sign(size, signed, tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return readHashes(ctx, tx, idx) }))
	if err != nil || note == nil {
		return true, err
	}
	if _, err := tx.Exec(ctx, "INSERT INTO checkpoints(size, note) VALUES ($1, $2)", size, string(note)); err != nil {
		return true, mapErr("postgres: add checkpoint", err)
	}
	return true, mapErr("postgres: commit checkpoint", tx.Commit(ctx))
}

// Size returns the number of entries, that is the next seq.
func (s *Store) Size(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, "SELECT coalesce(max(seq)+1, 0) FROM events").Scan(&n)
	return n, mapErr("postgres: size", err)
}

// Extent returns, from one statement (one snapshot), one past the largest seq and one past the
// largest tree hash index: what is stored, whatever log_tail says.
func (s *Store) Extent(ctx context.Context) (events, hashes int64, err error) {
	err = s.pool.QueryRow(ctx, "SELECT (SELECT coalesce(max(seq)+1, 0) FROM events), (SELECT coalesce(max(idx)+1, 0) FROM tree_hashes)").Scan(&events, &hashes)
	return events, hashes, mapErr("postgres: extent", err)
}

// HashCount returns the number of stored tree hashes.
func (s *Store) HashCount(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, "SELECT count(*) FROM tree_hashes").Scan(&n)
	return n, mapErr("postgres: hash count", err)
}

// ReadHashes returns the stored tree hashes at the given tlog stored-hash indexes, in one query.
func (s *Store) ReadHashes(ctx context.Context, indexes []int64) ([]tlog.Hash, error) {
	return readHashes(ctx, s.pool, indexes)
}

// querier is what the pool and a transaction share.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// readHashes is ReadHashes through q: the pool, or a transaction that must see its own snapshot.
func readHashes(ctx context.Context, q querier, indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	if len(indexes) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, "SELECT i.ord, h.hash FROM unnest($1::bigint[]) WITH ORDINALITY AS i(idx, ord) JOIN tree_hashes h ON h.idx = i.idx", indexes)
	if err != nil {
		return nil, mapErr("postgres: read hashes", err)
	}
	defer rows.Close()
	found := 0
	for rows.Next() {
		var ord int64
		if err := rows.Scan(&ord, nil); err != nil {
			return nil, mapErr("postgres: read hashes", err)
		}
		h := rows.RawValues()[1]
		if len(h) != tlog.HashSize {
			return nil, fmt.Errorf("postgres: tree hash %d has %d bytes, want %d", indexes[ord-1], len(h), tlog.HashSize)
		}
		copy(out[ord-1][:], h)
		found++
	}
	if err := rows.Err(); err != nil {
		return nil, mapErr("postgres: read hashes", err)
	}
	if found != len(indexes) {
		// Name the first missing one (an index may be asked for twice).
		have := map[int64]bool{}
		rows, err := q.Query(ctx, "SELECT idx FROM tree_hashes WHERE idx = ANY($1)", indexes)
		if err == nil {
			for rows.Next() {
				var idx int64
				rows.Scan(&idx)
				have[idx] = true
			}
			rows.Close()
		}
		for _, idx := range indexes {
			if !have[idx] {
				return nil, fmt.Errorf("postgres: tree hash %d: %w", idx, store.ErrNotFound)
			}
		}
	}
	return out, nil
}

// entryCols are the columns every entry read selects, in scanEntry's order.
const entryCols = "seq, id, salt, body, coalesce(purged_by, 0)"

// scanEntry reads one row of entryCols, copying salt and body unless raw (then they are valid
// only until the next row). A purged entry comes back with no salt and body.
func scanEntry(rows pgx.Rows, raw bool) (store.Entry, error) {
	var e store.Entry
	var id pgtype.Text
	if err := rows.Scan(&e.Seq, &id, nil, nil, &e.PurgedBy); err != nil {
		return e, err
	}
	e.ID = id.String
	if e.PurgedBy > 0 {
		return e, nil
	}
	v := rows.RawValues()
	if raw {
		e.Salt, e.Body = v[2], v[3]
	} else {
		e.Salt, e.Body = append([]byte(nil), v[2]...), append([]byte(nil), v[3]...)
	}
	return e, nil
}

// Entry returns the entry at seq.
func (s *Store) Entry(ctx context.Context, seq int64) (store.Entry, error) {
	return s.one(ctx, "SELECT "+entryCols+" FROM events WHERE seq = $1", seq)
}

// EntryByID returns the entry with the given event id.
func (s *Store) EntryByID(ctx context.Context, id string) (store.Entry, error) {
	return s.one(ctx, "SELECT "+entryCols+" FROM events WHERE id = $1", id)
}

func (s *Store) one(ctx context.Context, query string, arg any) (store.Entry, error) {
	var e store.Entry
	found := false
	err := s.entries(ctx, "postgres: read event", query, []any{arg}, false, func(x store.Entry) error { e, found = x, true; return nil })
	if err == nil && !found {
		return e, fmt.Errorf("event %v: %w", arg, store.ErrNotFound)
	}
	return e, err
}

// entries runs a query selecting entryCols and calls fn for each row.
func (s *Store) entries(ctx context.Context, op, query string, args []any, raw bool, fn func(store.Entry) error) error {
	rows, err := s.pool.Query(ctx, query, args...)
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
	err := s.entries(ctx, "postgres: tail", "SELECT "+entryCols+" FROM (SELECT * FROM events ORDER BY seq DESC LIMIT $1) t ORDER BY seq", []any{n}, false,
		func(e store.Entry) error { out = append(out, e); return nil })
	return out, err
}

// ScanEntries calls fn for every entry with seq >= from, in seq order, with its stored query
// columns (Cols), which verification checks against the body. The Entry's slices and Cols are
// valid only during the call.
func (s *Store) ScanEntries(ctx context.Context, from int64, fn func(store.Entry) error) error {
	const op = "postgres: scan events"
	rows, err := s.pool.Query(ctx, "SELECT "+entryCols+", "+scanCols+" FROM events WHERE seq >= $1 ORDER BY seq", from)
	if err != nil {
		return mapErr(op, err)
	}
	defer rows.Close()
	var cols store.Columns
	in := interner{}
	var e store.Entry
	dest := make([]any, 5+14) // the query columns are read from RawValues
	dest[0], dest[4] = &e.Seq, &e.PurgedBy
	for rows.Next() {
		e = store.Entry{}
		if err := rows.Scan(dest...); err != nil {
			return mapErr(op, err)
		}
		v := rows.RawValues()
		e.ID = string(v[1])
		if e.PurgedBy == 0 {
			e.Salt, e.Body = v[2], v[3]
		}
		v = v[5:]
		cols = store.Columns{Success: -1}
		cols.TimeMS, cols.HasTime = intCol(v[0])
		cols.RetainUntilMS, cols.HasRetain = intCol(v[1])
		if v[2] != nil {
			cols.HasDuration = true
			if cols.DurationMS, err = strconv.ParseFloat(string(v[2]), 64); err != nil {
				cols.DurationMS = math.NaN() // equal to no body's duration
			}
		}
		switch {
		case v[3] == nil:
		case string(v[3]) == "0":
			cols.Success = 0
		case string(v[3]) == "1":
			cols.Success = 1
		default: // an edited row: make it differ from any body
			cols.Success = 2
		}
		for i, d := range [...]*string{&cols.SessionID, &cols.Kind, &cols.UserID, &cols.AgentID, &cols.Model,
			&cols.ToolName, &cols.SubjectType, &cols.SubjectID, &cols.Outcome, &cols.RetentionClass} {
			switch b := v[4+i]; {
			case b == nil: // NULL
			case len(b) == 0: // the ledger stores NULL, never ''
				*d = editedValue
			default:
				*d = in.str(b)
			}
		}
		e.Cols = &cols
		if err := fn(e); err != nil {
			return err
		}
	}
	return mapErr(op, rows.Err())
}

// scanCols are the query columns as ScanEntries reads them, each as text: a value an insider
// stored after changing a column's type then reads as a value no body gives, where scanning it
// as the declared type would fail. The numbers first, then the strings in Columns.Diff's order.
const scanCols = "time_ms::text, retain_until_ms::text, duration_ms::text, success::text, session_id::text, kind::text, user_id::text, " +
	"agent_id::text, model::text, tool_name::text, subject_type::text, subject_id::text, outcome::text, retention_class::text"

// intCol reads a bigint column's text: absent when NULL, and a value no body gives when it is
// not an integer.
func intCol(b []byte) (int64, bool) {
	if b == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		return math.MinInt64, true
	}
	return n, true
}

// editedValue stands for a stored column value that no body can give.
const editedValue = "\x00(edited: an empty string)"

// ScanHashes calls fn for every stored tree hash with index >= from, in index order.
func (s *Store) ScanHashes(ctx context.Context, from int64, fn func(idx int64, h tlog.Hash) error) error {
	rows, err := s.pool.Query(ctx, "SELECT idx, hash FROM tree_hashes WHERE idx >= $1 ORDER BY idx", from)
	if err != nil {
		return mapErr("postgres: scan tree hashes", err)
	}
	defer rows.Close()
	for rows.Next() {
		var idx int64
		if err := rows.Scan(&idx, nil); err != nil {
			return mapErr("postgres: scan tree hashes", err)
		}
		raw := rows.RawValues()[1]
		if len(raw) != tlog.HashSize {
			return fmt.Errorf("postgres: tree hash %d has %d bytes, want %d", idx, len(raw), tlog.HashSize)
		}
		var h tlog.Hash
		copy(h[:], raw)
		if err := fn(idx, h); err != nil {
			return err
		}
	}
	return mapErr("postgres: scan tree hashes", rows.Err())
}

// AddCheckpoint stores a signed checkpoint. Storing the same size twice is an error.
func (s *Store) AddCheckpoint(ctx context.Context, c store.Checkpoint) error {
	if err := s.writable("add checkpoint"); err != nil {
		return err
	}
	_, err := s.pool.Exec(ctx, "INSERT INTO checkpoints(size, note) VALUES ($1, $2)", c.Size, string(c.Note))
	return mapErr("postgres: add checkpoint", err)
}

// LatestCheckpoint returns the checkpoint of the largest size.
func (s *Store) LatestCheckpoint(ctx context.Context) (store.Checkpoint, error) {
	var c store.Checkpoint
	var note string
	err := s.pool.QueryRow(ctx, "SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1").Scan(&c.Size, &note)
	if errors.Is(err, pgx.ErrNoRows) {
		return c, fmt.Errorf("checkpoint: %w", store.ErrNotFound)
	}
	c.Note = []byte(note)
	return c, mapErr("postgres: latest checkpoint", err)
}

// Checkpoints returns every stored checkpoint, smallest first.
func (s *Store) Checkpoints(ctx context.Context) ([]store.Checkpoint, error) {
	rows, err := s.pool.Query(ctx, "SELECT size, note FROM checkpoints ORDER BY size")
	if err != nil {
		return nil, mapErr("postgres: checkpoints", err)
	}
	defer rows.Close()
	var out []store.Checkpoint
	for rows.Next() {
		var c store.Checkpoint
		var note string
		if err := rows.Scan(&c.Size, &note); err != nil {
			return nil, mapErr("postgres: checkpoints", err)
		}
		c.Note = []byte(note)
		out = append(out, c)
	}
	return out, mapErr("postgres: checkpoints", rows.Err())
}

// Find calls fn for each intact entry matching f, in seq order: a purged entry matches no
// filter, and is left out of an empty one too.
func (s *Store) Find(ctx context.Context, f store.Filter, fn func(store.Entry) error) error {
	q, args := findQuery(f)
	return s.entries(ctx, "postgres: find", q, args, false, fn)
}

// findQuery is the statement Find runs for f: store/sqlite's.
func findQuery(f store.Filter) (q string, args []any) {
	return filter.Query(f, entryCols, filter.Dialect{
		Col: func(name string) string { return name },
		Arg: func(n int) string { return "$" + strconv.Itoa(n) },
	})
}

// interner returns one string for equal byte slices, allocating only for a new value. It
// forgets everything past maxInterned strings, to bound its memory in a scan of millions of
// distinct values (session ids).
type interner map[string]string

const maxInterned = 1 << 16

func (in interner) str(b []byte) string {
	if v, ok := in[string(b)]; ok { // no allocation for the lookup
		return v
	}
	if len(in) >= maxInterned {
		clear(in)
	}
	v := string(b)
	in[v] = v
	return v
}

// ToolCalls calls fn for each tool_call event in [since, until) (zero: unbounded), through the
// events_tool index where the planner takes it.
func (s *Store) ToolCalls(ctx context.Context, since, until time.Time, fn func(store.ToolCall) error) error {
	q := "SELECT tool_name, duration_ms, success, user_id FROM events WHERE tool_name IS NOT NULL AND kind = 'tool_call'"
	var args []any
	if !since.IsZero() {
		args = append(args, since.UnixMilli())
		q += " AND time_ms >= $" + strconv.Itoa(len(args))
	}
	if !until.IsZero() {
		args = append(args, until.UnixMilli())
		q += " AND time_ms < $" + strconv.Itoa(len(args))
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return mapErr("postgres: tool calls", err)
	}
	defer rows.Close()
	in := interner{}
	for rows.Next() {
		var d pgtype.Float8
		var ok pgtype.Int2
		if err := rows.Scan(nil, &d, &ok, nil); err != nil {
			return mapErr("postgres: tool calls", err)
		}
		v := rows.RawValues()
		c := store.ToolCall{Tool: in.str(v[0]), UserID: in.str(v[3]), Success: -1}
		if d.Valid {
			c.DurationMS, c.HasDuration = d.Float64, true
		}
		if ok.Valid {
			c.Success = int8(min(ok.Int16, 1))
		}
		if err := fn(c); err != nil {
			return err
		}
	}
	return mapErr("postgres: tool calls", rows.Err())
}
