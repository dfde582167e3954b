package apikey_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/apikey"
)

func keysPath(t *testing.T) string { return filepath.Join(t.TempDir(), "apikeys.json") }

func open(t *testing.T, path string) *apikey.Store {
	t.Helper()
	s, err := apikey.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func create(t *testing.T, s *apikey.Store, name string, role apikey.Role) (string, apikey.Key) {
	t.Helper()
	secret, k, err := s.Create(name, role)
	if err != nil {
		t.Fatal(err)
	}
	return secret, k
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// The roles, least to most privileged, under the names the keys command and the key file use.
func TestRoles(t *testing.T) {
	want := []apikey.Role{"writer", "reader", "auditor", "admin"}
	if !slices.Equal(apikey.Roles, want) {
		t.Errorf("Roles = %v, want %v", apikey.Roles, want)
	}
	for _, r := range []apikey.Role{apikey.Writer, apikey.Reader, apikey.Auditor, apikey.Admin} {
		if !slices.Contains(want, r) {
			t.Errorf("role constant %q is not a valid role", r)
		}
	}
}

// Create returns the secret once; the key holds only its SHA-256 and works at once.
func TestCreate(t *testing.T) {
	path := keysPath(t)
	s := open(t, path)
	secretShape := regexp.MustCompile(`^aak_[A-Za-z0-9_-]{43}$`) // 32 random bytes, base64url
	secrets := map[string]bool{}
	ids := map[string]bool{}
	for _, role := range apikey.Roles {
		t.Run(string(role), func(t *testing.T) {
			before := time.Now().UTC()
			secret, k, err := s.Create("key-"+string(role), role)
			if err != nil {
				t.Fatal(err)
			}
			if !secretShape.MatchString(secret) {
				t.Errorf("secret %q is not aak_ and 43 base64url characters", secret)
			}
			if secrets[secret] || ids[k.ID] {
				t.Errorf("secret or id %s repeated", k.ID)
			}
			secrets[secret], ids[k.ID] = true, true
			if !regexp.MustCompile(`^[0-9a-f]{12}$`).MatchString(k.ID) {
				t.Errorf("id %q is not 12 hex digits", k.ID)
			}
			if k.Name != "key-"+string(role) || k.Role != role || k.Hash != sha256Hex(secret) || !k.RevokedAt.IsZero() {
				t.Errorf("key %+v", k)
			}
			if k.CreatedAt.Location() != time.UTC || k.CreatedAt.Before(before.Add(-time.Second)) || k.CreatedAt.After(time.Now().Add(time.Second)) {
				t.Errorf("created_at %v", k.CreatedAt)
			}
			got, err := s.Lookup(secret)
			if err != nil || got.ID != k.ID || got.Role != role {
				t.Errorf("Lookup of the new secret: %+v, %v", got, err)
			}
		})
	}
	// The secret itself is nowhere on disk.
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for secret := range secrets {
		if strings.Contains(string(data), secret) || strings.Contains(string(data), strings.TrimPrefix(secret, "aak_")) {
			t.Errorf("the key file holds a secret")
		}
	}
}

func TestCreateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name    string
		keyName string
		role    apikey.Role
		badRole bool   // errors.Is ErrBadRole
		want    string // in the message
	}{
		{"unknown role", "ci", "root", true, `unknown role "root" (want writer, reader, auditor or admin)`},
		{"role in other case", "ci", "Admin", true, `unknown role "Admin"`},
		{"no role", "ci", "", true, `unknown role ""`},
		{"no name", "", apikey.Writer, false, "a key needs a name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := keysPath(t)
			s := open(t, path)
			secret, k, err := s.Create(tc.keyName, tc.role)
			if err == nil || errors.Is(err, apikey.ErrBadRole) != tc.badRole || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Create(%q, %q) = %v; want an error containing %q (ErrBadRole %v)", tc.keyName, tc.role, err, tc.want, tc.badRole)
			}
			if secret != "" || k != (apikey.Key{}) || len(s.List()) != 0 {
				t.Errorf("a refused key left %q %+v %v", secret, k, s.List())
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("a refused key wrote the key file: %v", err)
			}
		})
	}
}

// The key file is a JSON array of keys, hashes only, mode 0600 whatever it was before, replaced
// whole (no temporary file left beside it).
func TestKeyFile(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before func(t *testing.T, path string) // the state of the file before the first Create
	}{
		{"new file", func(t *testing.T, path string) {}},
		{"existing empty list, mode 0644", func(t *testing.T, path string) {
			if err := os.WriteFile(path, []byte("[]\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, 0o644); err != nil { // whatever the umask
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := keysPath(t)
			tc.before(t, path)
			s := open(t, path)
			wSecret, w := create(t, s, "ingest", apikey.Writer)
			_, a := create(t, s, "ops", apikey.Admin)
			if _, err := s.Revoke(w.ID); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("key file mode %04o, want 0600", fi.Mode().Perm())
			}
			// No temporary file is left; beside the key file only its (empty, private) lock file.
			entries, _ := os.ReadDir(filepath.Dir(path))
			if len(entries) != 2 || entries[0].Name() != filepath.Base(path) || entries[1].Name() != filepath.Base(path)+".lock" {
				t.Errorf("directory holds %v, want the key file and its lock file", entries)
			}
			if fi, err := os.Stat(path + ".lock"); err != nil || fi.Size() != 0 || fi.Mode().Perm() != 0o600 {
				t.Errorf("lock file: %v %v", fi, err)
			}
			data, _ := os.ReadFile(path)
			var raw []map[string]any
			if err := json.Unmarshal(data, &raw); err != nil || len(raw) != 2 {
				t.Fatalf("key file %s: %v", data, err)
			}
			// Every member, and only these: the revoked key has revoked_at, the live one none.
			for i, wantKeys := range [][]string{
				{"created_at", "hash", "id", "name", "revoked_at", "role"},
				{"created_at", "hash", "id", "name", "role"},
			} {
				var got []string
				for k := range raw[i] {
					got = append(got, k)
				}
				slices.Sort(got)
				if !slices.Equal(got, wantKeys) {
					t.Errorf("entry %d has %v, want %v", i, got, wantKeys)
				}
			}
			if raw[0]["hash"] != sha256Hex(wSecret) || raw[0]["role"] != "writer" || raw[1]["id"] != a.ID || raw[1]["role"] != "admin" {
				t.Errorf("key file %s", data)
			}
			// Another Store reads the same keys back.
			again := open(t, path).List()
			if len(again) != 2 || again[0].ID != w.ID || again[0].RevokedAt.IsZero() || again[1].ID != a.ID || !again[1].RevokedAt.IsZero() ||
				!again[1].CreatedAt.Equal(a.CreatedAt) || again[1].Hash != a.Hash {
				t.Errorf("reopened: %+v", again)
			}
		})
	}
}

func TestLookup(t *testing.T) {
	s := open(t, keysPath(t))
	secret, k := create(t, s, "reader-1", apikey.Reader)
	otherSecret, _ := create(t, open(t, keysPath(t)), "elsewhere", apikey.Admin) // another key file's key
	flipped := []byte(secret)
	flipped[len(flipped)-1] ^= 1
	for _, tc := range []struct {
		name, presented string
		ok              bool
	}{
		{"the secret", secret, true},
		{"one bit changed", string(flipped), false},
		{"a prefix", secret[:len(secret)-1], false},
		{"with trailing space", secret + " ", false}, // the server trims; the store does not guess
		{"the stored hash", k.Hash, false},           // the key file is no credential
		{"without the prefix", strings.TrimPrefix(secret, "aak_"), false},
		{"empty", "", false},
		{"another store's key", otherSecret, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Lookup(tc.presented)
			if tc.ok {
				if err != nil || got != k {
					t.Errorf("Lookup = %+v, %v; want %+v", got, err, k)
				}
				return
			}
			if !errors.Is(err, apikey.ErrUnknownKey) || got != (apikey.Key{}) {
				t.Errorf("Lookup = %+v, %v; want ErrUnknownKey", got, err)
			}
		})
	}
}

// Lookup compares every stored hash, so a live key is found even when a revoked entry with the
// same hash comes before or after it in the file.
func TestLookupSkipsRevokedEntries(t *testing.T) {
	secret := "aak_presented-secret"
	live := apikey.Key{ID: "000000000001", Name: "live", Role: apikey.Auditor, Hash: sha256Hex(secret), CreatedAt: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	revoked := live
	revoked.ID, revoked.Name, revoked.Role, revoked.RevokedAt = "000000000002", "old", apikey.Admin, time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		keys []apikey.Key
		want string // the id found, or "" for ErrUnknownKey
	}{
		{"revoked first", []apikey.Key{revoked, live}, live.ID},
		{"revoked last", []apikey.Key{live, revoked}, live.ID},
		{"revoked only", []apikey.Key{revoked}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := keysPath(t)
			data, _ := json.Marshal(tc.keys)
			if err := os.WriteFile(path, data, 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := open(t, path).Lookup(secret)
			if tc.want == "" {
				if !errors.Is(err, apikey.ErrUnknownKey) {
					t.Errorf("Lookup = %+v, %v; want ErrUnknownKey", got, err)
				}
			} else if err != nil || got.ID != tc.want {
				t.Errorf("Lookup = %+v, %v; want %s", got, err, tc.want)
			}
		})
	}
}

func TestRevoke(t *testing.T) {
	path := keysPath(t)
	s := open(t, path)
	s1, k1 := create(t, s, "ci", apikey.Writer)
	s2, k2 := create(t, s, "ci", apikey.Writer) // names need not be unique
	s3, k3 := create(t, s, "ops", apikey.Admin)
	for _, tc := range []struct {
		name, arg string
		revokes   string // the id revoked; "" for ErrNotFound
	}{
		{"by name: the first live key of that name", "ci", k1.ID},
		{"by name again: the next one", "ci", k2.ID},
		{"by name, none left live", "ci", ""},
		{"by id", k3.ID, k3.ID},
		{"by id, already revoked", k3.ID, ""},
		{"unknown", "nobody", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Revoke(tc.arg)
			if tc.revokes == "" {
				if !errors.Is(err, apikey.ErrNotFound) || !strings.Contains(err.Error(), `"`+tc.arg+`"`) {
					t.Errorf("Revoke(%q) = %+v, %v; want ErrNotFound naming it", tc.arg, got, err)
				}
				return
			}
			if err != nil || got.ID != tc.revokes || got.RevokedAt.IsZero() || got.RevokedAt.Location() != time.UTC {
				t.Errorf("Revoke(%q) = %+v, %v; want %s revoked", tc.arg, got, err, tc.revokes)
			}
		})
	}
	// Revoked keys are refused at once, and by any Store opened later; List keeps them.
	for _, st := range []*apikey.Store{s, open(t, path)} {
		for _, secret := range []string{s1, s2, s3} {
			if _, err := st.Lookup(secret); !errors.Is(err, apikey.ErrUnknownKey) {
				t.Errorf("a revoked key still authenticates: %v", err)
			}
		}
		list := st.List()
		if len(list) != 3 {
			t.Fatalf("List: %+v", list)
		}
		for _, k := range list {
			if k.RevokedAt.IsZero() {
				t.Errorf("List: %s is not marked revoked", k.ID)
			}
		}
	}
	// A key made after a revocation by the same name is live.
	s4, k4 := create(t, s, "ci", apikey.Writer)
	if got, err := s.Lookup(s4); err != nil || got.ID != k4.ID {
		t.Errorf("new key: %+v, %v", got, err)
	}
}

// List is a copy: changing it changes nothing in the store.
func TestListIsACopy(t *testing.T) {
	s := open(t, keysPath(t))
	secret, _ := create(t, s, "w", apikey.Writer)
	l := s.List()
	l[0].Role, l[0].Hash = apikey.Admin, ""
	if got, err := s.Lookup(secret); err != nil || got.Role != apikey.Writer {
		t.Errorf("after changing List's copy: %+v, %v", got, err)
	}
}

func TestOpen(t *testing.T) {
	t.Run("missing file is no keys, and is not created", func(t *testing.T) {
		path := keysPath(t)
		s := open(t, path)
		if len(s.List()) != 0 {
			t.Errorf("List = %v", s.List())
		}
		if _, err := s.Lookup("aak_x"); !errors.Is(err, apikey.ErrUnknownKey) {
			t.Errorf("Lookup: %v", err)
		}
		if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("Open created the file: %v", err)
		}
	})
	// A malformed key file is refused, naming the file and what is wrong with it, rather than
	// read as no keys (which would lock every client out without saying why).
	for _, tc := range []struct {
		name, content, want string
	}{
		{"empty", "", "unexpected end of JSON input"},
		{"truncated", `[{"id":"a1"`, "unexpected end of JSON input"},
		{"not JSON", "id=a1 role=admin\n", "invalid character 'i'"},
		{"an object, not a list", `{"id":"a1","role":"admin"}`, "cannot unmarshal object"},
		{"role not a string", `[{"id":"a1","role":7}]`, "cannot unmarshal number"},
		{"bad time", `[{"id":"a1","created_at":"yesterday"}]`, `"yesterday"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := keysPath(t)
			if err := os.WriteFile(path, []byte(tc.content), 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := apikey.Open(path)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Open = %v, %v; want an error naming %s and %q", s, err, path, tc.want)
			}
		})
	}
	t.Run("a directory", func(t *testing.T) {
		if s, err := apikey.Open(t.TempDir()); err == nil {
			t.Errorf("Open of a directory = %v, nil", s)
		}
	})
}

// A failed write changes nothing: the key is not kept in memory either.
func TestCreateWriteFails(t *testing.T) {
	path := filepath.Join(t.TempDir(), "no-such-dir", "apikeys.json")
	s := open(t, path)
	secret, _, err := s.Create("w", apikey.Writer)
	if err == nil || !strings.Contains(err.Error(), "api keys") {
		t.Errorf("Create into a missing directory: %v", err)
	}
	if len(s.List()) != 0 {
		t.Errorf("List after a failed Create: %v", s.List())
	}
	if secret != "" {
		if _, err := s.Lookup(secret); err == nil {
			t.Errorf("an unsaved key authenticates")
		}
	}
}

// A server and the keys command share the file: a Store that is already open sees, within a
// second, keys another process created or revoked, even when the new version of the file has
// the old one's modification time (file times are coarse: writes a few milliseconds apart often
// share one).
func TestLookupSeesOtherProcessesChanges(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		sameTime bool // give each new version of the file its predecessor's modification time
	}{{"as written", false}, {"same modification time", true}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := keysPath(t)
			keepTime := func(prev time.Time) {
				if tc.sameTime && !prev.IsZero() {
					if err := os.Chtimes(path, prev, prev); err != nil {
						t.Fatal(err)
					}
				}
			}
			mtime := func() time.Time { fi, _ := os.Stat(path); return fi.ModTime() }
			server := open(t, path) // before the file exists
			cli := open(t, path)
			create(t, cli, "first", apikey.Admin)
			server.Lookup("aak_warm-up") // the server reads the first version
			prev := mtime()
			secret, k := create(t, open(t, path), "late", apikey.Reader)
			keepTime(prev)
			if !within(t, func() bool { got, err := server.Lookup(secret); return err == nil && got.ID == k.ID }) {
				t.Fatal("the open Store never saw a key created by another")
			}
			prev = mtime()
			if _, err := open(t, path).Revoke("late"); err != nil {
				t.Fatal(err)
			}
			keepTime(prev)
			if !within(t, func() bool { _, err := server.Lookup(secret); return errors.Is(err, apikey.ErrUnknownKey) }) {
				t.Fatal("the open Store still accepts a key revoked by another")
			}
		})
	}
}

// Two Stores open on one file (a running server and the keys command) keep each other's changes:
// a Create or Revoke through one does not write back a stale copy of the file.
func TestStoresSharingAFileKeepEachOthersKeys(t *testing.T) {
	path := keysPath(t)
	a, b := open(t, path), open(t, path)
	secretA, kA := create(t, a, "from-a", apikey.Writer)
	secretB, kB := create(t, b, "from-b", apikey.Reader) // b has not looked at the file since a wrote it
	fresh := open(t, path)
	for _, tc := range []struct {
		secret string
		id     string
	}{{secretA, kA.ID}, {secretB, kB.ID}} {
		if got, err := fresh.Lookup(tc.secret); err != nil || got.ID != tc.id {
			t.Errorf("key %s lost: %+v, %v", tc.id, got, err)
		}
	}
	// b revokes a's key, which b has never listed.
	if _, err := b.Revoke("from-a"); err != nil {
		t.Fatalf("revoking another Store's key: %v", err)
	}
	if _, err := open(t, path).Lookup(secretA); !errors.Is(err, apikey.ErrUnknownKey) {
		t.Errorf("revoked key still authenticates: %v", err)
	}
	// a creates again: b's revocation stands.
	create(t, a, "from-a-2", apikey.Writer)
	list := open(t, path).List()
	if len(list) != 3 || list[0].ID != kA.ID || list[0].RevokedAt.IsZero() {
		t.Errorf("after a's second key: %+v", list)
	}
}

// Lookups run concurrently with changes (run with -race).
func TestConcurrentUse(t *testing.T) {
	s := open(t, keysPath(t))
	secret, _ := create(t, s, "steady", apikey.Writer)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 50 {
				if _, err := s.Lookup(secret); err != nil {
					t.Errorf("Lookup: %v", err)
					return
				}
				s.List()
			}
		})
	}
	wg.Go(func() {
		for i := range 10 {
			if _, _, err := s.Create("churn", apikey.Reader); err != nil {
				t.Errorf("Create %d: %v", i, err)
			}
			if _, err := s.Revoke("churn"); err != nil {
				t.Errorf("Revoke %d: %v", i, err)
			}
		}
	})
	wg.Wait()
	if n := len(s.List()); n != 11 {
		t.Errorf("%d keys, want 11", n)
	}
}

// A running server fails closed: when the key file is deleted or no longer parses, no key is
// accepted until a good file is back.
func TestKeyFileGoneOrBrokenRevokesAll(t *testing.T) {
	t.Parallel()
	path := keysPath(t)
	server := open(t, path)
	secret, _ := create(t, server, "admin", apikey.Admin)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	accepted := func() bool { _, err := server.Lookup(secret); return err == nil }
	refused := func() bool { _, err := server.Lookup(secret); return errors.Is(err, apikey.ErrUnknownKey) }
	for _, tc := range []struct {
		name   string
		break_ func() error
	}{
		{"deleted", func() error { return os.Remove(path) }},
		{"malformed", func() error { return os.WriteFile(path, []byte(`[{"id":`), 0o600) }},
	} {
		if !accepted() {
			t.Fatalf("%s: the key is refused before the file was touched", tc.name)
		}
		if err := tc.break_(); err != nil {
			t.Fatal(err)
		}
		if !within(t, refused) {
			t.Fatalf("%s: the key is still accepted", tc.name)
		}
		if err := os.WriteFile(path+".tmp", good, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			t.Fatal(err)
		}
		if !within(t, accepted) {
			t.Fatalf("%s: the key is not accepted once the file is back", tc.name)
		}
	}
}

// Two Stores changing one file at the same moment (a server revoking while the keys command
// creates; flock makes two opens in one process contend as two processes would) lose nothing.
func TestConcurrentWritersLoseNothing(t *testing.T) {
	path := keysPath(t)
	a, b := open(t, path), open(t, path)
	const n = 20
	var wg sync.WaitGroup
	for _, s := range []*apikey.Store{a, b} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < n; i++ {
				if _, _, err := s.Create(fmt.Sprintf("k%d", i), apikey.Reader); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if got := len(open(t, path).List()); got != 2*n {
		t.Errorf("%d keys in the file, want %d", got, 2*n)
	}
}

// within reports whether check holds at some point in the next 2.5 s: a Store looks at the file
// at most once a second.
func within(t *testing.T, check func() bool) bool {
	t.Helper()
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if check() {
			return true
		}
	}
	return false
}
