package ledger_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/ledger"
)

func TestCheckpointFormatRoundTrip(t *testing.T) {
	tree := tlog.Tree{N: 42, Hash: tlog.RecordHash([]byte("x"))}
	text := ledger.FormatCheckpoint("example.com/log", tree)
	c, err := ledger.ParseCheckpoint(text)
	if err != nil || c.Origin != "example.com/log" || c.Tree != tree {
		t.Fatalf("round trip: %+v %v", c, err)
	}
	// Extension lines are allowed (C2SP tlog-checkpoint).
	if _, err := ledger.ParseCheckpoint(text + "ext line\n"); err != nil {
		t.Errorf("extension line: %v", err)
	}
	for name, bad := range map[string]string{
		"empty":        "",
		"no newline":   strings.TrimSuffix(text, "\n"),
		"size":         "o\n-1\n" + strings.Split(text, "\n")[2] + "\n",
		"size padding": "o\n042\n" + strings.Split(text, "\n")[2] + "\n",
		"hash":         "o\n1\nnot-base64\n",
		"short hash":   "o\n1\nAAAA\n",
		"no origin":    "\n1\n" + strings.Split(text, "\n")[2] + "\n",
	} {
		if _, err := ledger.ParseCheckpoint(bad); !errors.Is(err, ledger.ErrMalformedCheckpoint) {
			t.Errorf("%s: %v, want ErrMalformedCheckpoint", name, err)
		}
	}
}

func TestKeyFiles(t *testing.T) {
	dir := t.TempDir()
	skey, vkey := filepath.Join(dir, "signing.key"), filepath.Join(dir, "verifier.key")
	pub, err := ledger.WriteKeyFiles("example.com/log", skey, vkey)
	if err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(skey); fi.Mode().Perm() != 0o600 {
		t.Errorf("signing key mode %v", fi.Mode().Perm())
	}
	if _, err := ledger.WriteKeyFiles("example.com/log", skey, vkey); err == nil {
		t.Error("an existing key was overwritten")
	}
	s, v, err := ledger.LoadSigner(skey)
	if err != nil || s.Name() != "example.com/log" || v.KeyHash() != s.KeyHash() {
		t.Fatalf("LoadSigner: %v", err)
	}
	fromFile, err := ledger.ParseVerifier(vkey)
	if err != nil || fromFile.KeyHash() != v.KeyHash() {
		t.Fatalf("ParseVerifier(file): %v", err)
	}
	if fromText, err := ledger.ParseVerifier(pub); err != nil || fromText.KeyHash() != v.KeyHash() {
		t.Fatalf("ParseVerifier(text): %v", err)
	}
	os.WriteFile(filepath.Join(dir, "garbage.key"), []byte("PRIVATE+KEY+x+zzzz+!!!!\n"), 0o600)
	for name, path := range map[string]string{"garbage": filepath.Join(dir, "garbage.key"), "missing": filepath.Join(dir, "none.key")} {
		_, _, err := ledger.LoadSigner(path)
		if !errors.Is(err, ledger.ErrKeyFile) || strings.Contains(err.Error(), "PRIVATE+KEY") {
			t.Errorf("%s signing key: %v", name, err)
		}
	}
	if _, err := ledger.ParseVerifier("not a key"); !errors.Is(err, ledger.ErrKeyFile) {
		t.Errorf("garbage verifier: %v", err)
	}
	if _, _, err := ledger.GenerateKey("has space"); err == nil {
		t.Error("an origin with white space was accepted")
	}
}
