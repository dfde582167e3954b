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

// Erase blanks the salt and body of the intact entries in seqs (inclusive ranges, ascending) and
// marks them purged by the purge event at purgeSeq, in one fsynced transaction: all of them or,
// on any error, none. The trigger refuses it unless purgeSeq is a stored purge event after every
// entry erased (store.ErrNotPurgeable). Entries already purged are left alone; n counts those
// this call erased.
func (s *Store) Erase(ctx context.Context, purgeSeq int64, ranges [][2]int64) (n int64, err error) {
	if s.w == nil {
		return 0, fmt.Errorf("sqlite: erase: %w", store.ErrReadOnly)
	}
	const q = "UPDATE events SET salt = zeroblob(16), body = '{}', purged_by = ? WHERE seq BETWEEN ? AND ? AND purged_by IS NULL"
	st, err := s.stmt(ctx, s.w, q)
	if err != nil {
		return 0, mapErr("sqlite: prepare", err)
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
	for _, r := range ranges {
		res, err := tx.StmtContext(ctx, st).ExecContext(ctx, purgeSeq, r[0], r[1])
		if err != nil {
			return 0, eraseErr(purgeSeq, r, err)
		}
		k, _ := res.RowsAffected()
		n += k
	}
	if err := tx.Commit(); err != nil {
		return 0, mapErr("sqlite: commit", err)
	}
	return n, nil
}

func eraseErr(purgeSeq int64, r [2]int64, err error) error {
	var se *sqlite.Error
	if errors.As(err, &se) && se.Code() == sqlite3.SQLITE_CONSTRAINT_TRIGGER {
		return fmt.Errorf("sqlite: erase seq %d..%d by purge event %d: %w", r[0], r[1], purgeSeq, store.ErrNotPurgeable)
	}
	return mapErr("sqlite: erase", err)
}

// DueEntries calls fn for every intact entry whose retain_until is at or before at, in the
// order of their retain_until, reading only the retention index.
func (s *Store) DueEntries(ctx context.Context, at time.Time, fn func(store.Due) error) error {
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
