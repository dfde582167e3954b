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
//   - body is text, not jsonb: the leaf hash is over its exact bytes, which jsonb normalizes.
//   - Schema 1 computed the query columns in the database, as one STORED generated column of a
//     composite type from a PL/pgSQL parse of the body (PostgreSQL has no virtual generated
//     columns); schema 2 stores them as plain columns written by the ledger, as store/sqlite's
//     schema 4 does (migration 2 says why). The view event_fields shows them beside seq and id.
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

	// 2: the query columns are plain columns written with the row (store/sqlite's schema 4),
	// not one generated column computed by PL/pgSQL: parsing every body as jsonb and converting
	// its two times took half of what the backend spent on a row, and COPY into the table ran at
	// half the rate it runs without. The ledger computes them from the canonical body it commits
	// (store.ColumnsOf, off the commit path), and verification recomputes them from every body
	// it hashes and reports a column that disagrees as an index problem, so a query still cannot
	// silently disagree with the hashed log. A stub has every column NULL. events_tool now
	// covers the tool statistics (INCLUDE), as SQLite's does.
	//
	// The table is rebuilt rather than altered: adding fourteen columns and filling them would
	// rewrite every row in place (a table twice its size until vacuumed) and leave the dropped
	// composite's slot in the row. The rebuilt table has a fresh database's exact shape. Its
	// values are copied from the stored composite, which schema 1 computed from each body. The
	// privileges granted on events and event_fields (the README's grants) are carried over, so
	// the server's role keeps working after its owner migrates the database.
	`CREATE TEMP TABLE agentaudit_acl ON COMMIT DROP AS
		SELECT c.relname::text AS rel, a.privilege_type AS priv, a.grantee
		FROM pg_class c, aclexplode(c.relacl) a
		WHERE c.relnamespace = current_schema()::regnamespace AND c.relname IN ('events', 'event_fields') AND a.grantee <> c.relowner;
	DROP VIEW event_fields;
	ALTER TABLE events RENAME TO events_v1;
	ALTER TABLE events_v1 RENAME CONSTRAINT events_pkey TO events_v1_pkey;
	ALTER TABLE events_v1 RENAME CONSTRAINT events_id_key TO events_v1_id_key;
	DROP INDEX events_session, events_user, events_tool, events_subject, events_time, events_retention, events_system;
	CREATE TABLE events (
		seq             bigint PRIMARY KEY,
		id              text NOT NULL UNIQUE,
		salt            bytea NOT NULL CHECK (length(salt) >= 16),
		body            text NOT NULL,
		purged_by       bigint,
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
		retain_until_ms bigint,
		-- Every event has a kind (event.Validate); only a purged stub's body '{}' has none. A
		-- writer that does not give the columns (a schema 1 server still running beside an
		-- upgraded one) is refused instead of storing events that queries never find.
		CONSTRAINT events_columns_given CHECK (kind IS NOT NULL OR body = '{}')
	);
	INSERT INTO events SELECT seq, id, salt, body, purged_by, (fields).session_id, (fields).kind, (fields).time_ms,
		(fields).user_id, (fields).agent_id, (fields).model, (fields).tool_name, (fields).subject_type, (fields).subject_id,
		(fields).outcome, (fields).success, (fields).duration_ms, (fields).retention_class, (fields).retain_until_ms
		FROM events_v1 ORDER BY seq;
	DROP TABLE events_v1;
	DROP FUNCTION agentaudit_fields(text);
	DROP TYPE agentaudit_fields;
	DROP FUNCTION agentaudit_unix_ms(text);
	CREATE INDEX events_session ON events(session_id, seq) WHERE session_id IS NOT NULL;
	CREATE INDEX events_user ON events(user_id, time_ms) WHERE user_id IS NOT NULL;
	CREATE INDEX events_tool ON events(tool_name, kind, time_ms) INCLUDE (duration_ms, success, user_id) WHERE tool_name IS NOT NULL;
	CREATE INDEX events_subject ON events(subject_id, time_ms) WHERE subject_id IS NOT NULL;
	CREATE INDEX events_time ON events(time_ms);
	CREATE INDEX events_retention ON events(retain_until_ms, retention_class) WHERE retain_until_ms IS NOT NULL;
	CREATE INDEX events_system ON events(kind, seq) WHERE kind IN ('purge', 'legal_hold', 'hold_release', 'alert', 'review');
	CREATE VIEW event_fields AS SELECT seq, id, purged_by, session_id, kind, time_ms, user_id, agent_id, model, tool_name,
		subject_type, subject_id, outcome, success, duration_ms, retention_class, retain_until_ms FROM events;
	CREATE TRIGGER events_no_update BEFORE UPDATE ON events FOR EACH ROW EXECUTE FUNCTION agentaudit_append_only();
	CREATE TRIGGER events_no_delete BEFORE DELETE ON events FOR EACH ROW EXECUTE FUNCTION agentaudit_events_delete();
	CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON events FOR EACH STATEMENT EXECUTE FUNCTION agentaudit_append_only();
	CREATE OR REPLACE FUNCTION agentaudit_purging_needs_purge() RETURNS trigger LANGUAGE plpgsql AS $$
	BEGIN
		IF NOT (NEW.from_seq <= NEW.to_seq AND NEW.to_seq < NEW.purge_seq
			AND EXISTS (SELECT 1 FROM events p WHERE p.seq = NEW.purge_seq AND p.kind = 'purge')) THEN
			RAISE EXCEPTION 'agentaudit: only a recorded purge erases bodies' USING ERRCODE = 'AA002';
		END IF;
		RETURN NEW;
	END $$;
	DO $$
	DECLARE g record;
	BEGIN
		FOR g IN SELECT rel, priv, grantee FROM agentaudit_acl LOOP
			EXECUTE format('GRANT %s ON %I TO %s', g.priv, g.rel,
				CASE g.grantee WHEN 0 THEN 'PUBLIC' ELSE g.grantee::regrole::text END);
		END LOOP;
	END $$;`,
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
