package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/agentaudit/agentaudit/store"
)

// Erase erases the salt and body of the intact entries in ranges (inclusive, ascending) and
// marks them purged by the purge event at purgeSeq, in one transaction: all of them or, on any
// error, none. The entries are deleted and put back as stubs (seq, id, purged_by; salt sixteen
// zero bytes, body '{}'), as store/sqlite does. The triggers refuse it unless purgeSeq is a
// stored purge event after every range (store.ErrNotPurgeable). Entries already purged are left
// alone; n counts those erased now. The space of the deleted rows is reused by later inserts
// once autovacuum has passed (Reclaim does not shrink the tables).
func (s *Store) Erase(ctx context.Context, purgeSeq int64, ranges [][2]int64) (n int64, err error) {
	if err := s.writable("erase"); err != nil {
		return 0, err
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, mapErr("postgres: begin", err)
	}
	defer func() {
		if err != nil {
			tx.Rollback(context.WithoutCancel(ctx))
		}
	}()
	for _, r := range ranges {
		if _, err := tx.Exec(ctx, "INSERT INTO purging(from_seq, to_seq, purge_seq) VALUES ($1, $2, $3)", r[0], r[1], purgeSeq); err != nil {
			return 0, mapErr(fmt.Sprintf("postgres: erase seq %d..%d by purge event %d", r[0], r[1], purgeSeq), err)
		}
		// The delete returns what goes back as stubs: one statement, no read before it.
		tag, err := tx.Exec(ctx, `WITH gone AS (DELETE FROM events WHERE seq BETWEEN $1 AND $2 AND purged_by IS NULL RETURNING seq, id)
			INSERT INTO events(seq, id, salt, body, purged_by) SELECT seq, id, '\x00000000000000000000000000000000'::bytea, '{}', $3 FROM gone`, r[0], r[1], purgeSeq)
		if err != nil {
			return 0, mapErr(fmt.Sprintf("postgres: erase seq %d..%d by purge event %d", r[0], r[1], purgeSeq), err)
		}
		n += tag.RowsAffected()
	}
	if _, err := tx.Exec(ctx, "DELETE FROM purging"); err != nil {
		return 0, mapErr("postgres: erase", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, mapErr("postgres: commit", err)
	}
	return n, nil
}

// DueEntries calls fn for every intact entry whose retain_until is at or before at, in the
// order of their retain_until, from the retention index.
func (s *Store) DueEntries(ctx context.Context, at time.Time, fn func(store.Due) error) error {
	rows, err := s.pool.Query(ctx, "SELECT seq, retention_class, retain_until_ms FROM events WHERE retain_until_ms IS NOT NULL AND retain_until_ms <= $1 ORDER BY retain_until_ms, seq", at.UnixMilli())
	if err != nil {
		return mapErr("postgres: due entries", err)
	}
	defer rows.Close()
	in := interner{}
	for rows.Next() {
		var d store.Due
		var ms int64
		if err := rows.Scan(&d.Seq, nil, &ms); err != nil {
			return mapErr("postgres: due entries", err)
		}
		d.Class, d.Until = in.str(rows.RawValues()[1]), time.UnixMilli(ms).UTC()
		if err := fn(d); err != nil {
			return err
		}
	}
	return mapErr("postgres: due entries", rows.Err())
}

// RetentionCounts counts the intact entries of each retention class and those due at at, from
// the retention index.
func (s *Store) RetentionCounts(ctx context.Context, at time.Time) ([]store.ClassCount, error) {
	rows, err := s.pool.Query(ctx, `SELECT retention_class, count(*), min(retain_until_ms), count(*) FILTER (WHERE retain_until_ms <= $1)
		FROM events WHERE retain_until_ms IS NOT NULL GROUP BY 1 ORDER BY 1`, at.UnixMilli())
	if err != nil {
		return nil, mapErr("postgres: retention counts", err)
	}
	defer rows.Close()
	var out []store.ClassCount
	for rows.Next() {
		var c store.ClassCount
		var class pgtype.Text
		var next int64
		if err := rows.Scan(&class, &c.Events, &next, &c.Due); err != nil {
			return nil, mapErr("postgres: retention counts", err)
		}
		c.Class, c.NextUntil = class.String, time.UnixMilli(next).UTC()
		out = append(out, c)
	}
	return out, mapErr("postgres: retention counts", rows.Err())
}

// systemKinds is the condition of the events_system index, which a query repeats to use it.
const systemKinds = "kind IN ('purge', 'legal_hold', 'hold_release', 'alert', 'review')"

// SystemEntries calls fn for every intact entry of a system kind (purge, legal_hold,
// hold_release, alert, review), in seq order, from the index that lists them.
func (s *Store) SystemEntries(ctx context.Context, kind string, fn func(store.Entry) error) error {
	return s.entries(ctx, "postgres: system entries", "SELECT "+entryCols+" FROM events WHERE kind = $1 AND "+systemKinds+" ORDER BY seq", []any{kind}, false, fn)
}

// Bytes is the database's size on disk (pg_database_size).
func (s *Store) Bytes(ctx context.Context) (int64, error) {
	var n int64
	err := s.pool.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&n)
	return n, mapErr("postgres: size in bytes", err)
}

// Reclaim runs VACUUM on the events table, which makes the space of erased rows reusable and
// gives back the empty pages at the table's end; it reports how many bytes the database shrank
// by (often 0: PostgreSQL keeps freed space for the rows that come next).
func (s *Store) Reclaim(ctx context.Context) (int64, error) {
	if err := s.writable("reclaim"); err != nil {
		return 0, err
	}
	before, err := s.Bytes(ctx)
	if err != nil {
		return 0, err
	}
	// VACUUM needs the table's owner; the INSERT-and-SELECT role leaves it to autovacuum.
	if _, err := s.pool.Exec(ctx, "VACUUM events", pgx.QueryExecModeSimpleProtocol); err != nil {
		return 0, mapErr("postgres: vacuum", err)
	}
	after, err := s.Bytes(ctx)
	if err != nil {
		return 0, err
	}
	return max(before-after, 0), nil
}
