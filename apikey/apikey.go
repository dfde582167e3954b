// Package apikey owns the server's API keys: creation (the key is shown once), roles, revocation,
// and lookup by constant-time comparison. Keys are stored only as SHA-256 hashes, in one JSON file
// (mode 0600) replaced atomically on every change.
package apikey

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"
)

// Role is what a key may do.
type Role string

// The roles, least to most privileged.
const (
	Writer  Role = "writer"  // ingest only
	Reader  Role = "reader"  // queries, with payloads masked
	Auditor Role = "auditor" // full events, proofs, verification, reports, exports
	Admin   Role = "admin"   // keys and settings, and everything an auditor may do
)

// Roles lists the valid roles.
var Roles = []Role{Writer, Reader, Auditor, Admin}

// Key is a stored key: never the secret itself.
type Key struct {
	ID        string    `json:"id"`
	Name      string    `json:"name"`
	Role      Role      `json:"role"`
	Hash      string    `json:"hash"` // hex SHA-256 of the secret
	CreatedAt time.Time `json:"created_at"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
}

// Errors.
var (
	ErrUnknownKey = errors.New("unknown or revoked API key")
	ErrNotFound   = errors.New("no such key")
	ErrBadRole    = errors.New("unknown role")
)

// Store is the key file. A server and the keys command share it: Lookup notices, within a
// second, keys created or revoked by another process.
type Store struct {
	path    string
	mu      sync.Mutex
	keys    []Key
	seen    os.FileInfo // the version of the file keys came from
	checked time.Time
}

// Open reads (or starts) the key file at path.
func Open(path string) (*Store, error) {
	s := &Store{path: path}
	if err := s.load(); err != nil {
		return nil, err
	}
	return s, nil
}

// load reads the file (a missing file changes nothing). Create and Revoke call it before a
// change, so a key another process created or revoked since this Store last read the file is
// kept, not overwritten; s.mu is held.
func (s *Store) load() error {
	keys, fi, err := read(s.path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	s.keys, s.seen = keys, fi
	return nil
}

// lockFile takes an exclusive lock on path+".lock" for a read-modify-write of the key file, so
// two processes (a running server and the keys command, or two keys commands) cannot both read
// the old file and each write back a copy missing the other's change. The lock file holds
// nothing; the key file itself cannot carry the lock, since every save replaces it.
func (s *Store) lockFile() (func(), error) {
	f, err := os.OpenFile(s.path+".lock", os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("api keys: lock %s: %w", f.Name(), err)
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// read reads the keys and the file's identity from one open file, so the two always match.
func read(path string) ([]Key, os.FileInfo, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("api keys: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("api keys: %w", err)
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return nil, nil, fmt.Errorf("api keys: %w", err)
	}
	var keys []Key
	if err := json.Unmarshal(data, &keys); err != nil {
		return nil, nil, fmt.Errorf("api keys: %s: %w", path, err)
	}
	return keys, fi, nil
}

// refresh reloads the file when another process changed it; s.mu is held. Every save replaces
// the file, so a change shows as another file, size or time: the time alone would miss a change
// made within one tick of the file system's clock.
func (s *Store) refresh() {
	if time.Since(s.checked) < time.Second {
		return
	}
	s.checked = time.Now()
	fi, err := os.Stat(s.path)
	if err == nil && s.seen != nil && os.SameFile(fi, s.seen) && fi.Size() == s.seen.Size() && fi.ModTime().Equal(s.seen.ModTime()) {
		return
	}
	if errors.Is(err, os.ErrNotExist) && s.seen == nil {
		return // never written: no keys yet
	}
	keys, fi, err := read(s.path)
	if err != nil {
		// Fail closed: a deleted, unreadable or malformed key file revokes every key until it is
		// readable again, rather than leaving the last copy in force.
		keys, fi = nil, nil
	}
	s.keys, s.seen = keys, fi
}

// Create makes a key for name with role and returns the secret, shown this once.
func (s *Store) Create(name string, role Role) (string, Key, error) {
	if !slices.Contains(Roles, role) {
		return "", Key{}, fmt.Errorf("%w %q (want writer, reader, auditor or admin)", ErrBadRole, role)
	}
	if name == "" {
		return "", Key{}, errors.New("a key needs a name")
	}
	raw := make([]byte, 32)
	rand.Read(raw)
	secret := "aak_" + base64.RawURLEncoding.EncodeToString(raw)
	id := make([]byte, 6)
	rand.Read(id)
	k := Key{ID: hex.EncodeToString(id), Name: name, Role: role, Hash: hashOf(secret), CreatedAt: time.Now().UTC()}
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := s.lockFile()
	if err != nil {
		return "", Key{}, err
	}
	defer unlock()
	if err := s.load(); err != nil {
		return "", Key{}, err
	}
	s.keys = append(s.keys, k)
	if err := s.save(); err != nil {
		s.keys = s.keys[:len(s.keys)-1]
		return "", Key{}, err
	}
	return secret, k, nil
}

func hashOf(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Lookup returns the live key whose secret is presented. Every stored hash is compared in
// constant time, so the time taken does not depend on which key, if any, matched.
func (s *Store) Lookup(secret string) (Key, error) {
	h := []byte(hashOf(secret))
	s.mu.Lock()
	defer s.mu.Unlock()
	s.refresh()
	var found Key
	ok := 0
	for _, k := range s.keys {
		if subtle.ConstantTimeCompare(h, []byte(k.Hash)) == 1 && k.RevokedAt.IsZero() {
			found, ok = k, 1
		}
	}
	if ok == 0 {
		return Key{}, ErrUnknownKey
	}
	return found, nil
}

// List returns every key, revoked ones included.
func (s *Store) List() []Key {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.keys)
}

// Revoke revokes the key with the given id or name.
func (s *Store) Revoke(idOrName string) (Key, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	unlock, err := s.lockFile()
	if err != nil {
		return Key{}, err
	}
	defer unlock()
	if err := s.load(); err != nil {
		return Key{}, err
	}
	for i, k := range s.keys {
		if (k.ID == idOrName || k.Name == idOrName) && k.RevokedAt.IsZero() {
			s.keys[i].RevokedAt = time.Now().UTC()
			if err := s.save(); err != nil {
				s.keys[i].RevokedAt = time.Time{}
				return Key{}, err
			}
			return s.keys[i], nil
		}
	}
	return Key{}, fmt.Errorf("%w: %q", ErrNotFound, idOrName)
}

// save writes the file atomically (temporary file, fsync, rename), mode 0600.
func (s *Store) save() error {
	data, err := json.MarshalIndent(s.keys, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(s.path), ".apikeys-*")
	if err != nil {
		return fmt.Errorf("api keys: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("api keys: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("api keys: %w", err)
	}
	fi, err := tmp.Stat() // the renamed file keeps its identity and time
	if err != nil {
		tmp.Close()
		return fmt.Errorf("api keys: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return err
	}
	s.seen = fi
	return nil
}
