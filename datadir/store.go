package datadir

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/query"
	"github.com/agentaudit/agentaudit/retention"
	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/postgres"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

// Store is an open ledger store, whichever driver keeps it: everything the ledger, verification,
// proofs, queries, retention and the CLI ask of one (store/storetest's Driver), and Close.
type Store interface {
	ledger.Store
	ledger.VerifyStore
	ledger.ProofStore
	query.Store
	query.TreeReader
	retention.Store
	Tail(ctx context.Context, n int) ([]store.Entry, error)
	Close() error
}

var (
	_ Store = (*sqlite.Store)(nil)
	_ Store = (*postgres.Store)(nil)
)

// ErrStoreURL: Dir.Store names no driver this program has.
var ErrStoreURL = errors.New("unknown store URL")

// External reports whether the log lives outside the directory (Dir.Store is set).
func (d Dir) External() bool { return d.Store != "" }

// openStore opens the directory's store: the PostgreSQL database Dir.Store names, or the SQLite
// file in the directory.
func (d Dir) openStore(ctx context.Context, readOnly bool) (Store, error) {
	switch {
	case d.Store == "":
		return sqlite.Open(ctx, sqlite.Config{Path: d.DB(), ReadOnly: readOnly})
	case postgres.IsURL(d.Store):
		return postgres.Open(ctx, postgres.Config{URL: d.Store, ReadOnly: readOnly, ConnectTimeout: d.StoreWait, Logger: d.StoreLog})
	default:
		return nil, fmt.Errorf("%w: %q: want postgres://... or postgresql://... (or none, for the SQLite file in the data directory)", ErrStoreURL, scheme(d.Store))
	}
}

// scheme is what a store URL names before its colon: what messages may quote (never the rest,
// which can hold a password).
func scheme(url string) string {
	s, _, _ := strings.Cut(url, ":")
	return s
}

// storeMissing reports whether the directory's SQLite file does not exist (never for an
// external store, whose absence Open reports itself).
func (d Dir) storeMissing() bool {
	if d.External() {
		return false
	}
	_, err := os.Stat(d.DB())
	return errors.Is(err, os.ErrNotExist)
}

// StoreWarnings names what the store's connection may do beyond appending and reading, which a
// server logs at start (PostgreSQL: a role allowed to UPDATE or TRUNCATE the log's tables, or
// owning them, with the grant to revoke). SQLite has none to report.
func (w *Writer) StoreWarnings(ctx context.Context) ([]string, error) {
	if p, ok := w.Store.(interface {
		ExcessPrivileges(ctx context.Context) ([]string, error)
	}); ok {
		return p.ExcessPrivileges(ctx)
	}
	return nil, nil
}
