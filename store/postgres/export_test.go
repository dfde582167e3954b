package postgres

import (
	"context"

	"github.com/jackc/pgx/v5/pgxpool"
)

// FindQuery is the statement Find runs, for query-plan tests.
var FindQuery = findQuery

// MigrateTo builds a database of an older schema version at url, to test the migrations from it.
func MigrateTo(ctx context.Context, url string, version int) error {
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	return (&Store{pool: pool}).migrate(ctx, version)
}
