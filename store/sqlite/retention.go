package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/agentaudit/agentaudit/store"
)

// Erase erases the salt and body of the intact entries in ranges (inclusive, ascending) and
// marks them purged by the purge event at purgeSeq, in one fsynced transaction: all of them or,
// on any error, none. The entries are deleted and put back as stubs (seq, id, purged_by), which
// returns their pages to the file (Reclaim then gives them back to the file system). The
// triggers refuse it unless purgeSeq is a stored purge event after every range
// (store.ErrNotPurgeable). Entries already purged are left alone; n counts those erased now.
func (s *Store) Erase(ctx context.Context, purgeSeq int64, ranges [][2]int64) (n int64, err error) {
	if s.w == nil {
		return 0, fmt.Errorf("sqlite: erase: %w", store.ErrReadOnly)
	}
	// Only after every acknowledged entry is in the database: a checkpoint or a purge
	// covers what it has.
	if err := s.emptyIntake(ctx); err != nil {
		return 0, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return 0, mapErr("sqlite: begin", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback()
		}
	}()
	type stub struct {
		seq int64
		id  string
	}
	var stubs []stub
	for _, r := range ranges {
		if _, err := tx.ExecContext(ctx, "INSERT INTO purging(from_seq, to_seq, purge_seq) VALUES (?, ?, ?)", r[0], r[1], purgeSeq); err != nil {
			return 0, eraseErr(purgeSeq, r, err)
		}
		rows, err := tx.QueryContext(ctx, "SELECT seq, id FROM events WHERE seq BETWEEN ? AND ? AND purged_by IS NULL", r[0], r[1])
		if err != nil {
			return 0, mapErr("sqlite: erase", err)
		}
		for rows.Next() {
			var x stub
			if err := rows.Scan(&x.seq, &x.id); err != nil {
				rows.Close()
				return 0, mapErr("sqlite: erase", err)
			}
			stubs = append(stubs, x)
		}
		if err := rows.Close(); err != nil {
			return 0, mapErr("sqlite: erase", err)
		}
		if _, err := tx.ExecContext(ctx, "DELETE FROM events WHERE seq BETWEEN ? AND ? AND purged_by IS NULL", r[0], r[1]); err != nil {
			return 0, eraseErr(purgeSeq, r, err)
		}
	}
	// The stubs go back after every delete of the transaction: put back one by one, each would
	// land in the page its entry left, and the pages would stay allocated.
	args := make([]any, 0, 3*chunk)
	for i := 0; i < len(stubs); i += chunk {
		part := stubs[i:min(i+chunk, len(stubs))]
		args = args[:0]
		for _, x := range part {
			args = append(args, x.seq, x.id, purgeSeq)
		}
		if _, err := tx.ExecContext(ctx, rowsSQL(insertStubs, 3, len(part))+")", args...); err != nil {
			return 0, mapErr("sqlite: erase", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "DELETE FROM purging"); err != nil {
		return 0, mapErr("sqlite: erase", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, mapErr("sqlite: commit", err)
	}
	return int64(len(stubs)), nil
}

func eraseErr(purgeSeq int64, r [2]int64, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_TRIGGER {
		return fmt.Errorf("sqlite: erase seq %d..%d by purge event %d: %w", r[0], r[1], purgeSeq, store.ErrNotPurgeable)
	}
	return mapErr("sqlite: erase", err)
}

// insertStubs puts erased entries back: rowsSQL's rows are (seq, id, purged_by).
const insertStubs = "INSERT INTO events(seq, id, salt, body, purged_by) SELECT column1, column2, zeroblob(16), '{}', column3 FROM (VALUES "

// DueEntries calls fn for every intact entry whose retain_until is at or before at, in the
// order of their retain_until, reading only the retention index.
func (s *Store) DueEntries(ctx context.Context, at time.Time, fn func(store.Due) error) error {
	if err := s.caughtUp(ctx); err != nil {
		return err
	}
	if s.legacy {
		return nil
	}
	rows, err := s.r.QueryContext(ctx, "SELECT seq, retention_class, retain_until_ms FROM events INDEXED BY events_retention WHERE retain_until_ms IS NOT NULL AND retain_until_ms <= ? ORDER BY retain_until_ms", at.UnixMilli())
	if err != nil {
		return mapErr("sqlite: due entries", err)
	}
	defer rows.Close()
	intern := map[string]string{}
	for rows.Next() {
		var d store.Due
		var class sql.RawBytes
		var ms int64
		if err := rows.Scan(&d.Seq, &class, &ms); err != nil {
			return mapErr("sqlite: due entries", err)
		}
		c, ok := intern[string(class)]
		if !ok {
			c = string(class)
			intern[c] = c
		}
		d.Class, d.Until = c, time.UnixMilli(ms).UTC()
		if err := fn(d); err != nil {
			return err
		}
	}
	return mapErr("sqlite: due entries", rows.Err())
}

// RetentionCounts counts the intact entries of each retention class and those due at at, from
// the retention index alone.
func (s *Store) RetentionCounts(ctx context.Context, at time.Time) ([]store.ClassCount, error) {
	if err := s.caughtUp(ctx); err != nil {
		return nil, err
	}
	if s.legacy {
		return nil, nil
	}
	rows, err := s.r.QueryContext(ctx, `SELECT retention_class, count(*), min(retain_until_ms), sum(retain_until_ms <= ?)
		FROM events INDEXED BY events_retention WHERE retain_until_ms IS NOT NULL GROUP BY retention_class ORDER BY retention_class`, at.UnixMilli())
	if err != nil {
		return nil, mapErr("sqlite: retention counts", err)
	}
	defer rows.Close()
	var out []store.ClassCount
	for rows.Next() {
		var c store.ClassCount
		var class sql.NullString
		var next int64
		if err := rows.Scan(&class, &c.Events, &next, &c.Due); err != nil {
			return nil, mapErr("sqlite: retention counts", err)
		}
		c.Class, c.NextUntil = class.String, time.UnixMilli(next).UTC()
		out = append(out, c)
	}
	return out, mapErr("sqlite: retention counts", rows.Err())
}

// systemKinds is the condition of the events_system index, which a query repeats to use it.
const systemKinds = "kind IN ('purge', 'legal_hold', 'hold_release', 'alert', 'review')"

// SystemEntries calls fn for every intact entry of a system kind (purge, legal_hold,
// hold_release, alert, review), in seq order, from the index that lists them.
func (s *Store) SystemEntries(ctx context.Context, kind string, fn func(store.Entry) error) error {
	if s.legacy {
		return nil
	}
	return s.entries(ctx, "sqlite: system entries", "SELECT "+entryCols+" FROM events INDEXED BY events_system WHERE kind = ? AND "+systemKinds+" ORDER BY seq", []any{kind}, false, fn)
}

// Bytes is the database's size: pages in use times the page size.
func (s *Store) Bytes(ctx context.Context) (int64, error) {
	if err := s.caughtUp(ctx); err != nil {
		return 0, err
	}
	var pages, size int64
	err := s.r.QueryRowContext(ctx, "SELECT (SELECT page_count FROM pragma_page_count()) - (SELECT freelist_count FROM pragma_freelist_count()), (SELECT page_size FROM pragma_page_size())").Scan(&pages, &size)
	return pages * size, mapErr("sqlite: size in bytes", err)
}

// Reclaim returns the pages that purges freed to the file system, and reports how many bytes
// the file shrank by. A file created before retention existed is not in incremental
// auto-vacuum mode; its first Reclaim switches it with one VACUUM, which rewrites the file
// (it needs as much free disk as the file's size, and holds writers for its duration).
func (s *Store) Reclaim(ctx context.Context) (int64, error) {
	if s.w == nil {
		return 0, fmt.Errorf("sqlite: reclaim: %w", store.ErrReadOnly)
	}
	// Only after every acknowledged entry is in the database: a checkpoint or a purge
	// covers what it has.
	if err := s.caughtUp(ctx); err != nil {
		return 0, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	conn, err := s.w.Conn(ctx)
	if err != nil {
		return 0, mapErr("sqlite: reclaim", err)
	}
	defer conn.Close()
	pages := func() (n, size int64, err error) {
		err = conn.QueryRowContext(ctx, "SELECT (SELECT page_count FROM pragma_page_count()), (SELECT page_size FROM pragma_page_size())").Scan(&n, &size)
		return n, size, err
	}
	before, size, err := pages()
	if err != nil {
		return 0, mapErr("sqlite: reclaim", err)
	}
	var mode int
	if err := conn.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&mode); err != nil {
		return 0, mapErr("sqlite: reclaim", err)
	}
	if mode != 2 {
		if _, err := conn.ExecContext(ctx, "PRAGMA auto_vacuum = 2"); err != nil {
			return 0, mapErr("sqlite: reclaim", err)
		}
		if _, err := conn.ExecContext(ctx, "VACUUM"); err != nil {
			return 0, mapErr("sqlite: vacuum", err)
		}
	} else if _, err := conn.ExecContext(ctx, "PRAGMA incremental_vacuum"); err != nil {
		return 0, mapErr("sqlite: incremental vacuum", err)
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
		return 0, mapErr("sqlite: checkpoint", err)
	}
	after, _, err := pages()
	if err != nil {
		return 0, mapErr("sqlite: reclaim", err)
	}
	return (before - after) * size, nil
}
