package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/jackc/pgx/v5"
)

// migrations[i] moves the schema from version i to i+1. Append only: a released migration never
// changes, so every database reaches the same schema.
//
// The tables, columns, indexes and triggers are store/sqlite's (its schema.go explains each one),
// with these differences:
//
//   - The query columns are one STORED generated column, fields, of the composite type
//     agentaudit_fields (session_id, kind, time_ms, ...: sqlite's columns by the same names),
//     computed from body at insert, so they can never disagree with what was hashed. PostgreSQL
//     has no virtual generated columns, and fourteen separate ones would parse the body fourteen
//     times (about 5 µs for each 1 KiB body): agentaudit_fields parses it once. The indexes are
//     on (fields).column expressions; the view event_fields shows the columns side by side.
//     body is text, not jsonb: the leaf hash is over its exact bytes, which jsonb normalizes.
//   - Times become Unix milliseconds through agentaudit_unix_ms, an IMMUTABLE function of the
//     canonical text "YYYY-MM-DDTHH:MM:SS[.fraction]Z" (casts to timestamptz are only STABLE and
//     cannot appear in a generated column). It truncates as time.Time.UnixMilli does, with
//     integer calendar arithmetic (days from the civil date), and is NULL for any other text
//     (checked with LIKE and translate: a regular expression cost more than the parse).
//   - events_tool is not covering: PostgreSQL reads expression indexes' rows from the table.
//   - log_tail is one row holding the next seq and the next tree-hash index. Append locks it
//     (SELECT ... FOR UPDATE) for its transaction, so appends from several processes are
//     serialized and each batch is checked to continue the log exactly where it ends.
//   - Triggers refuse TRUNCATE too, which skips row triggers. Errors raised by the triggers carry
//     SQLSTATE AA001 (append-only) and AA002 (an erasure not backed by a stored purge event).
//   - The erasure path is SQLite's: a range is deleted only while the same transaction has it in
//     purging, which takes only a stored purge event after it; the entries go back as stubs
//     (salt sixteen zero bytes, body '{}', purged_by). Rows of purging are inserted and deleted
//     inside the erasing transaction, so no other session ever sees one.
var migrations = []string{
	`CREATE TABLE meta (key text PRIMARY KEY, value text NOT NULL);

	CREATE FUNCTION agentaudit_unix_ms(t text) RETURNS bigint
	LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
	DECLARE
		y bigint; m bigint; d bigint; era bigint; yoe bigint; doy bigint;
	BEGIN
		IF NOT (t LIKE '____-__-__T__:__:__%Z' AND translate(substr(t, 1, 19), '0123456789', '') = '--T::'
			AND (length(t) = 20 OR (length(t) > 21 AND substr(t, 20, 1) = '.'
				AND translate(substr(t, 21, length(t) - 21), '0123456789', '') = ''))) THEN
			RETURN NULL;
		END IF;
		y := substr(t, 1, 4)::bigint;
		m := substr(t, 6, 2)::bigint;
		d := substr(t, 9, 2)::bigint;
		IF m <= 2 THEN y := y - 1; END IF;
		era := floor(y / 400.0)::bigint;
		yoe := y - era * 400;
		doy := (153 * (m + CASE WHEN m > 2 THEN -3 ELSE 9 END) + 2) / 5 + d - 1;
		RETURN ((era * 146097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719468) * 86400
			+ substr(t, 12, 2)::bigint * 3600 + substr(t, 15, 2)::bigint * 60 + substr(t, 18, 2)::bigint) * 1000
			+ rpad(substr(rtrim(substr(t, 21), 'Z'), 1, 3), 3, '0')::bigint;
	END $$;

	CREATE TYPE agentaudit_fields AS (
		session_id      text,
		kind            text,
		time_ms         bigint,
		user_id         text,
		agent_id        text,
		model           text,
		tool_name       text,
		subject_type    text,
		subject_id      text,
		outcome         text,
		success         smallint,
		duration_ms     double precision,
		retention_class text,
		retain_until_ms bigint
	);
	CREATE FUNCTION agentaudit_fields(body text) RETURNS agentaudit_fields
	LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
	DECLARE
		j jsonb := body::jsonb;
	BEGIN
		RETURN ROW(j ->> 'session_id', j ->> 'kind', agentaudit_unix_ms(j ->> 'time'), j ->> 'user_id',
			j ->> 'agent_id', j ->> 'model', j ->> 'tool_name', j ->> 'subject_type', j ->> 'subject_id',
			j ->> 'outcome', CASE j -> 'success' WHEN 'true'::jsonb THEN 1 WHEN 'false'::jsonb THEN 0 END,
			CASE WHEN jsonb_typeof(j -> 'duration_ms') = 'number' THEN (j ->> 'duration_ms')::double precision END,
			j ->> 'retention_class', agentaudit_unix_ms(j ->> 'retain_until'))::agentaudit_fields;
	END $$;

	CREATE TABLE events (
		seq       bigint PRIMARY KEY,
		id        text NOT NULL UNIQUE,
		salt      bytea NOT NULL CHECK (length(salt) >= 16),
		body      text NOT NULL,
		purged_by bigint,
		fields    agentaudit_fields GENERATED ALWAYS AS (agentaudit_fields(body)) STORED
	);
	CREATE INDEX events_session ON events(((fields).session_id), seq) WHERE (fields).session_id IS NOT NULL;
	CREATE INDEX events_user ON events(((fields).user_id), ((fields).time_ms)) WHERE (fields).user_id IS NOT NULL;
	CREATE INDEX events_tool ON events(((fields).tool_name), ((fields).kind), ((fields).time_ms)) WHERE (fields).tool_name IS NOT NULL;
	CREATE INDEX events_subject ON events(((fields).subject_id), ((fields).time_ms)) WHERE (fields).subject_id IS NOT NULL;
	CREATE INDEX events_time ON events(((fields).time_ms));
	CREATE INDEX events_retention ON events(((fields).retain_until_ms), ((fields).retention_class)) WHERE (fields).retain_until_ms IS NOT NULL;
	CREATE INDEX events_system ON events(((fields).kind), seq) WHERE (fields).kind IN ('purge', 'legal_hold', 'hold_release', 'alert', 'review');
	-- The query columns side by side, for operators and auditors reading the database.
	CREATE VIEW event_fields AS SELECT seq, id, purged_by, (fields).* FROM events;

	CREATE TABLE tree_hashes (idx bigint PRIMARY KEY, hash bytea NOT NULL CHECK (length(hash) = 32));
	CREATE TABLE checkpoints (size bigint PRIMARY KEY, note text NOT NULL);
	CREATE TABLE log_tail (
		one       boolean PRIMARY KEY DEFAULT true CHECK (one),
		next_seq  bigint NOT NULL,
		next_hash bigint NOT NULL
	);
	INSERT INTO log_tail(next_seq, next_hash) VALUES (0, 0);
	CREATE TABLE purging (from_seq bigint NOT NULL, to_seq bigint NOT NULL, purge_seq bigint NOT NULL);

	CREATE FUNCTION agentaudit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		RAISE EXCEPTION 'agentaudit: % are append-only', replace(TG_TABLE_NAME, '_', ' ') USING ERRCODE = 'AA001';
	END $$;
	CREATE FUNCTION agentaudit_events_delete() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF OLD.purged_by IS NULL AND EXISTS (SELECT 1 FROM purging WHERE OLD.seq BETWEEN from_seq AND to_seq) THEN
			RETURN OLD;
		END IF;
		RAISE EXCEPTION 'agentaudit: events are append-only; only a recorded purge erases a body' USING ERRCODE = 'AA001';
	END $$;
	CREATE FUNCTION agentaudit_purging_needs_purge() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NOT (NEW.from_seq <= NEW.to_seq AND NEW.to_seq < NEW.purge_seq
			AND EXISTS (SELECT 1 FROM events p WHERE p.seq = NEW.purge_seq AND (p.fields).kind = 'purge')) THEN
			RAISE EXCEPTION 'agentaudit: only a recorded purge erases bodies' USING ERRCODE = 'AA002';
		END IF;
		RETURN NEW;
	END $$;
	CREATE TRIGGER events_no_update BEFORE UPDATE ON events FOR EACH ROW EXECUTE FUNCTION agentaudit_append_only();
	CREATE TRIGGER events_no_delete BEFORE DELETE ON events FOR EACH ROW EXECUTE FUNCTION agentaudit_events_delete();
	CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events FOR EACH STATEMENT EXECUTE FUNCTION agentaudit_append_only();
	CREATE TRIGGER tree_hashes_no_update BEFORE UPDATE ON tree_hashes FOR EACH ROW EXECUTE FUNCTION agentaudit_append_only();
	CREATE TRIGGER tree_hashes_no_delete BEFORE DELETE ON tree_hashes FOR EACH ROW EXECUTE FUNCTION agentaudit_append_only();
	CREATE TRIGGER tree_hashes_no_truncate BEFORE TRUNCATE ON tree_hashes FOR EACH STATEMENT EXECUTE FUNCTION agentaudit_append_only();
	CREATE TRIGGER checkpoints_no_update BEFORE UPDATE ON checkpoints FOR EACH ROW EXECUTE FUNCTION agentaudit_append_only();
	CREATE TRIGGER checkpoints_no_delete BEFORE DELETE ON checkpoints FOR EACH ROW EXECUTE FUNCTION agentaudit_append_only();
	CREATE TRIGGER checkpoints_no_truncate BEFORE TRUNCATE ON checkpoints FOR EACH STATEMENT EXECUTE FUNCTION agentaudit_append_only();
	CREATE TRIGGER purging_needs_purge BEFORE INSERT ON purging FOR EACH ROW EXECUTE FUNCTION agentaudit_purging_needs_purge();`,
}

// SchemaVersion is the version Open migrates a database to.
var SchemaVersion = len(migrations)

// ErrNewerSchema: the database was written by a newer agentaudit; this one will not touch it.
var ErrNewerSchema = errors.New("store schema is newer than this program")

// migrationLock is the advisory lock key that serializes migrations of one database, so that
// several servers starting at once migrate it once.
const migrationLock = 0x61676175 // "agau"

// migrate moves the schema forward to version target (SchemaVersion in Open; tests build older
// databases with a smaller one), in one transaction.
func (s *Store) migrate(ctx context.Context, target int) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return mapErr("postgres: migrate", err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLock); err != nil {
		return mapErr("postgres: migrate", err)
	}
	v, err := version(ctx, tx)
	if err != nil {
		return err
	}
	if v > SchemaVersion {
		return fmt.Errorf("postgres: schema version %d, this program knows up to %d: %w", v, SchemaVersion, ErrNewerSchema)
	}
	if v >= target {
		return nil
	}
	for i := v; i < target; i++ {
		if _, err := tx.Exec(ctx, migrations[i]); err != nil {
			return mapErr(fmt.Sprintf("postgres: migrate to schema %d", i+1), err)
		}
	}
	if _, err := tx.Exec(ctx, "INSERT INTO meta(key, value) VALUES ('schema_version', $1) ON CONFLICT(key) DO UPDATE SET value = excluded.value", strconv.Itoa(target)); err != nil {
		return mapErr("postgres: migrate", err)
	}
	return mapErr("postgres: migrate", tx.Commit(ctx))
}

type queryer interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// version reads the schema version: 0 for a database without agentaudit's tables.
func version(ctx context.Context, q queryer) (int, error) {
	var exists bool
	if err := q.QueryRow(ctx, "SELECT to_regclass('meta') IS NOT NULL").Scan(&exists); err != nil {
		return 0, mapErr("postgres: schema version", err)
	}
	if !exists {
		return 0, nil
	}
	var s string
	err := q.QueryRow(ctx, "SELECT value FROM meta WHERE key = 'schema_version'").Scan(&s)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, mapErr("postgres: schema version", err)
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("postgres: schema version %q is not a number", s)
	}
	return v, nil
}

// checkVersion is a read-only open's check: the database has this program's schema.
func (s *Store) checkVersion(ctx context.Context) error {
	v, err := version(ctx, s.pool)
	if err != nil {
		return err
	}
	switch {
	case v > SchemaVersion:
		return fmt.Errorf("postgres: schema version %d, this program knows up to %d: %w", v, SchemaVersion, ErrNewerSchema)
	case v < SchemaVersion:
		return fmt.Errorf("postgres: schema version %d, this program reads %d: open it for writing once to migrate it", v, SchemaVersion)
	}
	return nil
}
