package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
)

// migrations[i] moves the schema from version i to i+1. Append only: a released migration never
// changes, so every file on disk reaches the same schema.
var migrations = []string{
	// 1: the log. events.body is the canonical JSON the leaf commits to; the query columns are
	// generated from it, so they can never disagree with what was hashed.
	`CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT;
	CREATE TABLE events (
		seq        INTEGER PRIMARY KEY,
		id         TEXT NOT NULL UNIQUE,
		salt       BLOB NOT NULL CHECK (length(salt) >= 16),
		body       TEXT NOT NULL,
		session_id TEXT GENERATED ALWAYS AS (body ->> '$.session_id') VIRTUAL
	);
	CREATE INDEX events_session ON events(session_id, seq) WHERE session_id IS NOT NULL;
	CREATE TABLE tree_hashes (idx INTEGER PRIMARY KEY, hash BLOB NOT NULL CHECK (length(hash) = 32)) STRICT;
	CREATE TABLE checkpoints (size INTEGER PRIMARY KEY, note TEXT NOT NULL) STRICT;
	CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT RAISE(ABORT, 'agentaudit: events are append-only'); END;
	CREATE TRIGGER events_no_delete BEFORE DELETE ON events BEGIN SELECT RAISE(ABORT, 'agentaudit: events are append-only'); END;
	CREATE TRIGGER tree_hashes_no_update BEFORE UPDATE ON tree_hashes BEGIN SELECT RAISE(ABORT, 'agentaudit: tree hashes are append-only'); END;
	CREATE TRIGGER tree_hashes_no_delete BEFORE DELETE ON tree_hashes BEGIN SELECT RAISE(ABORT, 'agentaudit: tree hashes are append-only'); END;
	CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints BEGIN SELECT RAISE(ABORT, 'agentaudit: checkpoints are append-only'); END;
	CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints BEGIN SELECT RAISE(ABORT, 'agentaudit: checkpoints are append-only'); END;`,
}

// SchemaVersion is the version Open migrates a store to.
var SchemaVersion = len(migrations)

// ErrNewerSchema: the file was written by a newer agentaudit; this one will not touch it.
var ErrNewerSchema = errors.New("store schema is newer than this program")

func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return mapErr("sqlite: migrate", err)
	}
	defer tx.Rollback()
	v, err := version(ctx, tx)
	if err != nil {
		return err
	}
	if v > SchemaVersion {
		return fmt.Errorf("sqlite: schema version %d, this program knows up to %d: %w", v, SchemaVersion, ErrNewerSchema)
	}
	if v == SchemaVersion {
		return nil
	}
	for i := v; i < SchemaVersion; i++ {
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			return mapErr(fmt.Sprintf("sqlite: migrate to schema %d", i+1), err)
		}
	}
	if _, err := tx.ExecContext(ctx, "INSERT INTO meta(key, value) VALUES ('schema_version', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", strconv.Itoa(SchemaVersion)); err != nil {
		return mapErr("sqlite: migrate", err)
	}
	return mapErr("sqlite: migrate", tx.Commit())
}

type queryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func version(ctx context.Context, q queryer) (int, error) {
	var n int
	if err := q.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'meta'").Scan(&n); err != nil {
		return 0, mapErr("sqlite: schema version", err)
	}
	if n == 0 {
		return 0, nil
	}
	var s string
	err := q.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'schema_version'").Scan(&s)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, mapErr("sqlite: schema version", err)
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("sqlite: schema version %q is not a number", s)
	}
	return v, nil
}

func checkVersion(ctx context.Context, db *sql.DB) error {
	v, err := version(ctx, db)
	if err != nil {
		return err
	}
	switch {
	case v > SchemaVersion:
		return fmt.Errorf("sqlite: schema version %d, this program knows up to %d: %w", v, SchemaVersion, ErrNewerSchema)
	case v < SchemaVersion:
		return fmt.Errorf("sqlite: schema version %d, this program needs %d: open it for writing once to migrate it", v, SchemaVersion)
	}
	return nil
}
