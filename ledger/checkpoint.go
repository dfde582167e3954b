package ledger

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// Checkpoint is a parsed C2SP tlog-checkpoint: the origin, the tree size and the root hash.
type Checkpoint struct {
	Origin string
	tlog.Tree
}

// ErrMalformedCheckpoint: the text is not a C2SP tlog-checkpoint body.
var ErrMalformedCheckpoint = errors.New("malformed checkpoint")

// FormatCheckpoint returns the checkpoint body (before signatures): origin, decimal size and
// base64 root, one per line, as https://c2sp.org/tlog-checkpoint specifies.
func FormatCheckpoint(origin string, t tlog.Tree) string {
	return fmt.Sprintf("%s\n%d\n%s\n", origin, t.N, base64.StdEncoding.EncodeToString(t.Hash[:]))
}

// ParseCheckpoint parses a checkpoint body. Extension lines after the root are allowed and ignored.
func ParseCheckpoint(text string) (Checkpoint, error) {
	lines := strings.SplitAfter(text, "\n")
	if len(lines) < 4 || !strings.HasSuffix(text, "\n") {
		return Checkpoint{}, fmt.Errorf("%w: want origin, size and root lines", ErrMalformedCheckpoint)
	}
	origin := strings.TrimSuffix(lines[0], "\n")
	if origin == "" {
		return Checkpoint{}, fmt.Errorf("%w: empty origin", ErrMalformedCheckpoint)
	}
	sz := strings.TrimSuffix(lines[1], "\n")
	n, err := strconv.ParseInt(sz, 10, 64)
	if err != nil || n < 0 || strconv.FormatInt(n, 10) != sz {
		return Checkpoint{}, fmt.Errorf("%w: size %q is not a decimal number", ErrMalformedCheckpoint, sz)
	}
	h, err := base64.StdEncoding.DecodeString(strings.TrimSuffix(lines[2], "\n"))
	if err != nil || len(h) != tlog.HashSize {
		return Checkpoint{}, fmt.Errorf("%w: root hash is not 32 bytes of base64", ErrMalformedCheckpoint)
	}
	c := Checkpoint{Origin: origin, Tree: tlog.Tree{N: n}}
	copy(c.Hash[:], h)
	return c, nil
}

// OpenCheckpoint verifies a signed checkpoint note with v and parses it. A note not signed by v
// gives an error wrapping *note.UnverifiedNoteError; a bad signature one wrapping
// note.ErrInvalidSignature.
func OpenCheckpoint(msg []byte, v note.Verifier) (Checkpoint, error) {
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		return Checkpoint{}, fmt.Errorf("checkpoint signature: %w", err)
	}
	c, err := ParseCheckpoint(n.Text)
	if err != nil {
		return Checkpoint{}, err
	}
	if c.Origin != v.Name() {
		return Checkpoint{}, fmt.Errorf("%w: origin %q is not the key's name %q", ErrMalformedCheckpoint, c.Origin, v.Name())
	}
	return c, nil
}

// GenerateKey returns a new Ed25519 note signing key and its verifier key, named origin.
func GenerateKey(origin string) (skey, vkey string, err error) {
	if origin == "" || strings.ContainsAny(origin, "+ \t\n") {
		return "", "", fmt.Errorf("origin %q: must be non-empty, without '+' or white space", origin)
	}
	return note.GenerateKey(rand.Reader, origin)
}

// WriteKeyFiles creates a new key pair at skeyPath (mode 0600) and vkeyPath (mode 0644) and
// returns the verifier key. Existing files are never overwritten.
func WriteKeyFiles(origin, skeyPath, vkeyPath string) (string, error) {
	skey, vkey, err := GenerateKey(origin)
	if err != nil {
		return "", err
	}
	if err := writeNew(skeyPath, skey+"\n", 0o600); err != nil {
		return "", err
	}
	if err := writeNew(vkeyPath, vkey+"\n", 0o644); err != nil {
		os.Remove(skeyPath)
		return "", err
	}
	return vkey, nil
}

func writeNew(path, data string, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return fmt.Errorf("create key file: %w", err)
	}
	if _, err := f.WriteString(data); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(path)
		return fmt.Errorf("write key file %s: %w", path, err)
	}
	return f.Close()
}

// ErrKeyFile: a key file is unreadable, malformed or too open.
var ErrKeyFile = errors.New("bad key file")

// LoadSigner reads a signing key file and its verifier. It refuses a signing key that group or
// others may read, and never puts key material in an error.
func LoadSigner(skeyPath string) (note.Signer, note.Verifier, error) {
	fi, err := os.Stat(skeyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, nil, fmt.Errorf("%w: %s has mode %04o; a signing key must be private (chmod 600)", ErrKeyFile, skeyPath, fi.Mode().Perm())
	}
	data, err := os.ReadFile(skeyPath)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	s, err := note.NewSigner(string(bytes.TrimSpace(data)))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s is not a note signing key", ErrKeyFile, skeyPath)
	}
	// The verifier derives from the same key; build it from the public half encoded in the file.
	v, err := verifierFromSigner(string(bytes.TrimSpace(data)))
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrKeyFile, skeyPath, err)
	}
	return s, v, nil
}

// ParseVerifier parses a verifier key given as text or as the path of a file holding it.
func ParseVerifier(keyOrPath string) (note.Verifier, error) {
	text := strings.TrimSpace(keyOrPath)
	if data, err := os.ReadFile(keyOrPath); err == nil {
		text = string(bytes.TrimSpace(data))
	}
	v, err := note.NewVerifier(text)
	if err != nil {
		return nil, fmt.Errorf("%w: not a verifier key (name+hash+base64) or a file holding one", ErrKeyFile)
	}
	return v, nil
}

// verifierFromSigner derives the verifier of a note signing key (PRIVATE+KEY+name+hash+base64 of
// the algorithm byte and the Ed25519 seed).
func verifierFromSigner(skey string) (note.Verifier, error) {
	parts := strings.SplitN(skey, "+", 5)
	if len(parts) != 5 || parts[0] != "PRIVATE" || parts[1] != "KEY" {
		return nil, errors.New("not a note signing key")
	}
	raw, err := base64.StdEncoding.DecodeString(parts[4])
	if err != nil || len(raw) != 1+ed25519.SeedSize || raw[0] != 1 {
		return nil, errors.New("not an Ed25519 note signing key")
	}
	pub := ed25519.NewKeyFromSeed(raw[1:]).Public().(ed25519.PublicKey)
	vkey, err := note.NewEd25519VerifierKey(parts[2], pub)
	if err != nil {
		return nil, err
	}
	return note.NewVerifier(vkey)
}
