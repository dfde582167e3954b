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
	"os"
	"path/filepath"
	"slices"
	"sync"
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
	mtime   time.Time
	checked time.Time
}

// Open reads (or starts) the key file at path.
func Open(path string) (*Store, error) {
	s := &Store{path: path}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return s, nil
	}
	if err != nil {
		return nil, fmt.Errorf("api keys: %w", err)
	}
	if err := json.Unmarshal(data, &s.keys); err != nil {
		return nil, fmt.Errorf("api keys: %s: %w", path, err)
	}
	if fi, err := os.Stat(path); err == nil {
		s.mtime = fi.ModTime()
	}
	return s, nil
}

// refresh reloads the file when another process changed it; s.mu is held.
func (s *Store) refresh() {
	if time.Since(s.checked) < time.Second {
		return
	}
	s.checked = time.Now()
	fi, err := os.Stat(s.path)
	if err != nil || fi.ModTime().Equal(s.mtime) {
		return
	}
	data, err := os.ReadFile(s.path)
	var keys []Key
	if err == nil && json.Unmarshal(data, &keys) == nil {
		s.keys, s.mtime = keys, fi.ModTime()
	}
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
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), s.path); err != nil {
		return err
	}
	if fi, err := os.Stat(s.path); err == nil {
		s.mtime = fi.ModTime()
	}
	return nil
}
