package postgres

import (
	"context"
	"regexp"
	"strings"

	"github.com/jackc/pgx/v5"
)

// Grants is the SQL an operator runs, as the owner of the schema and after the first Open has
// created it, to let role append and read and nothing else. The erasure path (retention purges,
// erasure of a data subject) needs DELETE on events, which the events_no_delete trigger lets
// through only for rows a recorded purge event names, and purging's rows; log_tail's row is
// moved by every append. The README shows it for the role agentaudit_app.
func Grants(role string) string {
	r := role
	if !plainIdent.MatchString(role) {
		r = pgx.Identifier{role}.Sanitize()
	}
	return strings.ReplaceAll(`GRANT USAGE ON SCHEMA public TO ROLE;
GRANT SELECT, INSERT ON events, tree_hashes, checkpoints TO ROLE;
GRANT SELECT ON meta, event_fields TO ROLE;
GRANT SELECT, UPDATE ON log_tail TO ROLE;
GRANT DELETE ON events TO ROLE;
GRANT SELECT, INSERT, DELETE ON purging TO ROLE;
`, "ROLE", r)
}

// plainIdent is an identifier that needs no quotes.
var plainIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ExcessPrivileges lists what the connecting role may do beyond Grants, each with what to do
// about it: UPDATE or TRUNCATE on the append-only tables, or owning them (or being a superuser),
// which allows dropping the triggers. The triggers refuse changes either way; these are what
// an operator revokes so that the database refuses them twice. Empty when the role has exactly
// what it needs.
func (s *Store) ExcessPrivileges(ctx context.Context) ([]string, error) {
	rows, err := s.pool.Query(ctx, `
		WITH su AS (SELECT rolsuper FROM pg_roles WHERE rolname = current_user),
		owned AS (SELECT t, pg_has_role((SELECT tableowner FROM pg_tables WHERE schemaname = current_schema() AND tablename = t), 'USAGE') AS own
			FROM unnest(ARRAY['events', 'tree_hashes', 'checkpoints']) t)
		SELECT 'the role ' || quote_ident(current_user) || ' is a superuser: it can drop the append-only triggers; connect as a role granted only what the README lists'
		FROM su WHERE rolsuper
		UNION ALL
		SELECT 'the role ' || quote_ident(current_user) || ' owns ' || t || ': it can drop the append-only triggers; connect as a role granted only what the README lists'
		FROM owned, su WHERE own AND NOT rolsuper
		UNION ALL
		SELECT 'the role ' || quote_ident(current_user) || ' may ' || p || ' ' || t || ': REVOKE ' || p || ' ON ' || t || ' FROM ' || quote_ident(current_user)
		FROM owned, su, unnest(ARRAY['UPDATE', 'TRUNCATE']) p
		WHERE NOT own AND NOT rolsuper AND has_table_privilege(t, p)`)
	if err != nil {
		return nil, mapErr("postgres: privileges", err)
	}
	out, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, mapErr("postgres: privileges", err)
	}
	return out, nil
}
