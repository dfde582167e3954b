// Package datadir owns the on-disk layout of an agentaudit data directory: where the store, the
// signing key and the verifier key live, how a directory is initialized, and the lock that keeps
// a second writer out.
//
//	DIR/ledger.db       the SQLite store, mode 0600 (with -wal and -shm beside it while open),
//	                    unless Dir.Store names a PostgreSQL database that keeps the log instead
//	DIR/ledger.db-intake-0, -1  where the store makes appends durable before they are in
//	                    ledger.db (store/sqlite); empty once the store is closed
//	DIR/signing.key     the Ed25519 note signing key, mode 0600
//	DIR/verifier.key    its public verifier key, to copy to auditors
//	DIR/pseudonym.key   the HMAC key of the PII pseudonyms, mode 0600
//	DIR/apikeys.json    the server's API keys, as hashes, mode 0600
//	DIR/apikeys.json.lock  held (flock) while a process changes apikeys.json
//	DIR/admin.key       the first admin API key, written once by the server, mode 0600
//	DIR/writer.lock     held (flock) by the one process that appends
//
// A writer sanitizes every event (package redact) with the directory's pseudonym key and the
// built-in policy unless given another: nothing reaches the log unsanitized by default.
package datadir

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/redact"
	"github.com/agentaudit/agentaudit/retention"
)

// DefaultOrigin names the log in its checkpoints unless init is given another.
const DefaultOrigin = "agentaudit.local/log"

// Dir is a data directory.
type Dir struct {
	Path string
	// Store, when set, is the URL of the log's database (postgres://...) in place of the SQLite
	// file; the directory still holds the keys and the policy.
	Store string
	// StoreWait is how long opening Store retries while its database is unreachable (0: the
	// driver's default, postgres.DefaultConnectTimeout); StoreLog, when set, gets a line for
	// each failed attempt. Neither applies to the SQLite file.
	StoreWait time.Duration
	StoreLog  *slog.Logger
}

// Files in a data directory.
func (d Dir) DB() string           { return filepath.Join(d.Path, "ledger.db") }
func (d Dir) SigningKey() string   { return filepath.Join(d.Path, "signing.key") }
func (d Dir) VerifierKey() string  { return filepath.Join(d.Path, "verifier.key") }
func (d Dir) PseudonymKey() string { return filepath.Join(d.Path, "pseudonym.key") }
func (d Dir) APIKeys() string      { return filepath.Join(d.Path, "apikeys.json") }
func (d Dir) AdminKey() string     { return filepath.Join(d.Path, "admin.key") }
func (d Dir) lockFile() string     { return filepath.Join(d.Path, "writer.lock") }

// ErrNotInitialized: the directory has no signing key; run init.
var ErrNotInitialized = errors.New("data directory is not initialized (run: agentaudit init)")

// ErrInitialized: init found an existing key and changed nothing.
var ErrInitialized = errors.New("data directory is already initialized")

// ErrLocked: another process is appending to this directory.
var ErrLocked = errors.New("another agentaudit process is writing to this data directory")

// Init creates the directory (mode 0700), a new key pair and an empty store, and returns the
// verifier key. It never overwrites a key.
func (d Dir) Init(ctx context.Context, origin string) (string, error) {
	if origin == "" {
		origin = DefaultOrigin
	}
	if err := os.MkdirAll(d.Path, 0o700); err != nil {
		return "", fmt.Errorf("create data directory: %w", err)
	}
	if _, err := os.Stat(d.SigningKey()); err == nil {
		return "", fmt.Errorf("%s: %w", d.SigningKey(), ErrInitialized)
	}
	vkey, err := ledger.WriteKeyFiles(origin, d.SigningKey(), d.VerifierKey())
	if err != nil {
		return "", err
	}
	if _, err := redact.LoadOrCreateKey(d.PseudonymKey()); err != nil {
		return "", err
	}
	st, err := d.openStore(ctx, false)
	if err != nil {
		return "", err
	}
	return vkey, st.Close()
}

// Verifier returns the verifier key kept in the directory.
func (d Dir) Verifier() (note.Verifier, error) {
	if _, err := os.Stat(d.VerifierKey()); errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotInitialized
	}
	return ledger.ParseVerifier(d.VerifierKey())
}

// OpenStore opens the store for reading and verification, without the signing key.
func (d Dir) OpenStore(ctx context.Context) (Store, error) {
	if d.storeMissing() {
		return nil, ErrNotInitialized
	}
	return d.openStore(ctx, true)
}

// Writer is an open ledger with its store and the directory lock.
type Writer struct {
	*ledger.Ledger
	Store Store
	lock  *os.File
}

// Redactor returns the sanitizer for this directory: the policy file's (the built-in policy when
// policyFile is empty) with the directory's pseudonym key, created on first use.
func (d Dir) Redactor(policyFile string) (*redact.Redactor, error) {
	p := redact.Default()
	if policyFile != "" {
		var err error
		if p, err = redact.Load(policyFile); err != nil {
			return nil, err
		}
	}
	key, err := redact.LoadOrCreateKey(d.PseudonymKey())
	if err != nil {
		return nil, err
	}
	return redact.New(p, key)
}

// OpenWriter takes the directory's writer lock and opens the ledger for appending. Without
// opts.Sanitizer, events are sanitized with the built-in policy; without opts.Retention, they are
// classified by the built-in retention table.
func (d Dir) OpenWriter(ctx context.Context, opts ledger.Options) (*Writer, error) {
	if _, err := os.Stat(d.SigningKey()); errors.Is(err, os.ErrNotExist) {
		return nil, ErrNotInitialized
	}
	if opts.Sanitizer == nil {
		r, err := d.Redactor("")
		if err != nil {
			return nil, err
		}
		opts.Sanitizer = r
	}
	if opts.Retention == nil {
		opts.Retention = retention.Default()
	}
	signer, verifier, err := ledger.LoadSigner(d.SigningKey())
	if err != nil {
		return nil, err
	}
	lock, err := d.lock()
	if err != nil {
		return nil, err
	}
	st, err := d.openStore(ctx, false)
	if err != nil {
		lock.Close()
		return nil, err
	}
	l, err := ledger.Open(ctx, st, signer, verifier, opts)
	if err != nil {
		st.Close()
		lock.Close()
		return nil, err
	}
	return &Writer{Ledger: l, Store: st, lock: lock}, nil
}

// lock takes the directory's writer lock, held until the file is closed, or fails at once with
// ErrLocked.
func (d Dir) lock() (*os.File, error) {
	lock, err := os.OpenFile(d.lockFile(), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open lock: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("%s: %w", d.lockFile(), ErrLocked)
	}
	return lock, nil
}

// Close closes the ledger (signing a final checkpoint), the store and the lock.
func (w *Writer) Close() error {
	err := errors.Join(w.Ledger.Close(), w.Store.Close())
	w.lock.Close()
	return err
}
