package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/internal/pgtest"
	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/postgres"
	"github.com/agentaudit/agentaudit/store/storetest"
)

var _ storetest.Driver = (*postgres.Store)(nil)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t *testing.T) storetest.Driver {
	s, err := postgres.Open(context.Background(), postgres.Config{URL: pgtest.NewDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }

// conn is a separate connection to the store's database, as an insider with the database's
// credentials would have.
func conn(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// agentaudit_unix_ms agrees with time.Time.UnixMilli on canonical times: whole seconds, every
// fraction length, before 1970, leap days, the ends of the four-digit years; and is NULL for text
// that is not a canonical time.
// The function is schema 1's (migration 2 drops it after copying the columns it computed), so
// this runs on a database of schema 1.
func TestUnixMillis(t *testing.T) {
	url := pgtest.NewDB(t)
	if err := postgres.MigrateTo(context.Background(), url, 1); err != nil {
		t.Fatal(err)
	}
	c := conn(t, url)
	times := []time.Time{
		time.Unix(0, 0), time.Unix(-1, 0), time.Unix(0, -1), time.Unix(-1, 999_999_999),
		time.Date(1, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(9999, 12, 31, 23, 59, 59, 999_999_999, time.UTC),
		time.Date(2000, 2, 29, 12, 0, 0, 1, time.UTC), time.Date(1900, 3, 1, 0, 0, 0, 500_000_000, time.UTC),
		time.Date(2026, 3, 1, 12, 0, 0, 999_999, time.UTC), time.Date(1600, 2, 29, 23, 59, 59, 100_000_000, time.UTC),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		times = append(times, time.Unix(rng.Int64N(253402300799+62135596800)-62135596800, rng.Int64N(1e9)).UTC())
	}
	var texts []string
	var want []int64
	for i, tm := range times {
		texts = append(texts, tm.UTC().Format(time.RFC3339Nano)) // the canonical form trims the fraction
		want = append(want, tm.UnixMilli())
		if i%3 == 0 { // every fraction length
			texts = append(texts, tm.UTC().Format("2006-01-02T15:04:05.000000000Z"))
			want = append(want, tm.UnixMilli())
		}
	}
	var got []*int64
	if err := c.QueryRow(context.Background(), "SELECT array_agg(agentaudit_unix_ms(t) ORDER BY n) FROM unnest($1::text[]) WITH ORDINALITY AS x(t, n)", texts).Scan(&got); err != nil {
		t.Fatal(err)
	}
	for i := range texts {
		if got[i] == nil || *got[i] != want[i] {
			t.Errorf("agentaudit_unix_ms(%s) = %v, want %d", texts[i], got[i], want[i])
		}
	}
	for _, bad := range []string{"", "2026-01-01", "2026-01-01T00:00:00", "2026-01-01T00:00:00+01:00", "2026-01-01 00:00:00Z", "2026-01-01T00:00:00.Z", "x2026-01-01T00:00:00Z"} {
		var ms *int64
		if err := c.QueryRow(context.Background(), "SELECT agentaudit_unix_ms($1)", bad).Scan(&ms); err != nil || ms != nil {
			t.Errorf("agentaudit_unix_ms(%q) = %v, %v; want NULL", bad, ms, err)
		}
	}
}

// The triggers refuse every change to events, tree hashes and checkpoints made through another
// connection, even by the tables' owner, and an erasure that no stored purge event explains.
func TestTriggersRefuseChanges(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	s, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b := store.Batch{}
	for i := range int64(4) {
		b.Entries = append(b.Entries, store.Entry{Seq: i, ID: fmt.Sprint("e", i), Salt: make([]byte, 16), Body: []byte(`{"kind":"custom"}`)})
	}
	for range tlog.StoredHashCount(4) {
		b.Hashes = append(b.Hashes, tlog.Hash{})
	}
	if err := s.Append(ctx, b); err != nil {
		t.Fatal(err)
	}
	if err := s.AddCheckpoint(ctx, store.Checkpoint{Size: 4, Note: []byte("n\n")}); err != nil {
		t.Fatal(err)
	}
	c := conn(t, url)
	for _, q := range []string{
		"UPDATE events SET body = '{}' WHERE seq = 1", "DELETE FROM events WHERE seq = 1", "TRUNCATE events CASCADE",
		"UPDATE events SET seq = seq + 100", "UPDATE events SET purged_by = 3 WHERE seq = 0",
		"UPDATE tree_hashes SET hash = '\\x00' WHERE idx = 1", "DELETE FROM tree_hashes", "TRUNCATE tree_hashes",
		"UPDATE checkpoints SET note = ''", "DELETE FROM checkpoints", "TRUNCATE checkpoints",
		// A purging row needs a stored purge event after the range: seq 3 is a custom event.
		"INSERT INTO purging VALUES (0, 1, 3)",
	} {
		_, err := c.Exec(ctx, q)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || (pe.Code != "AA001" && pe.Code != "AA002") || !strings.Contains(pe.Message, "agentaudit:") {
			t.Errorf("%s: %v, want a refusal by agentaudit's triggers", q, err)
		}
	}
	if n, _ := s.Size(ctx); n != 4 {
		t.Errorf("Size = %d after refused changes, want 4", n)
	}
}

// TestOldWriterRefused: a row appended without its query columns, as a server of schema 1 still
// running beside an upgraded one would append it, is refused (SQLSTATE 23514), so no event is
// stored where queries cannot find it; a purged stub ('{}') carries none and is taken.
func TestOldWriterRefused(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	s, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c := conn(t, url)
	_, err = c.Exec(ctx, `INSERT INTO events(seq, id, salt, body) VALUES (0, 'old', '\x00000000000000000000000000000000', '{"id":"old","kind":"tool_call"}')`)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23514" || pe.ConstraintName != "events_columns_given" {
		t.Fatalf("an event without its columns: %v, want the events_columns_given check to refuse it", err)
	}
	if _, err := c.Exec(ctx, `INSERT INTO events(seq, id, salt, body) VALUES (0, 'stub', '\x00000000000000000000000000000000', '{}')`); err != nil {
		t.Errorf("a stub without columns: %v", err)
	}
}

// A database written by a newer agentaudit is refused, for writing and for reading.
func TestNewerSchemaRefused(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	s, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := conn(t, url).Exec(ctx, "UPDATE meta SET value = '99' WHERE key = 'schema_version'"); err != nil {
		t.Fatal(err)
	}
	for _, ro := range []bool{false, true} {
		_, err := postgres.Open(ctx, postgres.Config{URL: url, ReadOnly: ro})
		if !errors.Is(err, postgres.ErrNewerSchema) || !strings.Contains(err.Error(), "schema version 99") {
			t.Errorf("read-only %v: %v, want ErrNewerSchema naming version 99", ro, err)
		}
	}
}

// Open fails at once, naming the database and ErrUnreachable, when nothing listens; the
// password is never in the message.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	_, err = postgres.Open(context.Background(), postgres.Config{URL: "postgres://u:s3cret@" + addr + "/audit", ConnectTimeout: 2 * time.Second})
	if !errors.Is(err, postgres.ErrUnreachable) || !errors.Is(err, store.ErrUnavailable) || !strings.Contains(err.Error(), addr+"/audit") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open = %v, want ErrUnreachable naming %s/audit and no password", err, addr)
	}
	if _, err := postgres.Open(context.Background(), postgres.Config{URL: "postgres://u:s3cret@[::1/x"}); err == nil || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("Open of a bad URL = %v", err)
	}
}

// A read-only store reads and refuses every write with ErrReadOnly, before and inside PostgreSQL.
func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	w, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	s, err := postgres.Open(ctx, postgres.Config{URL: url, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if n, err := s.Size(ctx); err != nil || n != 0 {
		t.Errorf("Size = %d, %v", n, err)
	}
	b := store.Batch{Entries: []store.Entry{{ID: "a", Salt: make([]byte, 16), Body: []byte("{}")}}, Hashes: []tlog.Hash{{}}}
	if err := s.Append(ctx, b); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("Append = %v, want ErrReadOnly", err)
	}
	if err := s.AddCheckpoint(ctx, store.Checkpoint{Size: 1, Note: []byte("x")}); !errors.Is(err, store.ErrReadOnly) {
		t.Errorf("AddCheckpoint = %v, want ErrReadOnly", err)
	}
	// A database opened read-only before it has a schema is refused with a clear message.
	if _, err := postgres.Open(ctx, postgres.Config{URL: pgtest.NewDB(t), ReadOnly: true}); err == nil || !strings.Contains(err.Error(), "schema version 0") {
		t.Errorf("read-only open of an empty database = %v", err)
	}
}

// appRole creates the schema in a new database as its owner, then a role with exactly
// postgres.Grants, and returns the role's URL.
func appRole(t *testing.T) (ownerURL, appURL string) {
	t.Helper()
	ctx := context.Background()
	ownerURL = pgtest.NewDB(t)
	s, err := postgres.Open(ctx, postgres.Config{URL: ownerURL})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	u, err := url.Parse(ownerURL)
	if err != nil {
		t.Fatal(err)
	}
	role := "app_" + strings.TrimPrefix(u.Path, "/")
	c := conn(t, ownerURL)
	if _, err := c.Exec(ctx, "CREATE ROLE "+role+" LOGIN PASSWORD 'app-secret'"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(ctx, ownerURL)
		if err == nil {
			c.Exec(ctx, "DROP OWNED BY "+role)
			c.Close(ctx)
		}
		// The role is dropped with the server; DROP ROLE would wait for the database to go.
	})
	if _, err := c.Exec(ctx, postgres.Grants(role)); err != nil {
		t.Fatal(err)
	}
	u.User = url.UserPassword(role, "app-secret")
	return ownerURL, u.String()
}

// The role of the README's grants runs everything a driver does (the whole conformance suite,
// erasure included), is refused UPDATE, TRUNCATE and dropping the triggers by PostgreSQL itself,
// and has no excess privileges; the owner is told it has.
func TestLeastPrivilegeRole(t *testing.T) {
	storetest.Run(t, func(t *testing.T) storetest.Driver {
		_, app := appRole(t)
		s, err := postgres.Open(context.Background(), postgres.Config{URL: app})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	})
	ctx := context.Background()
	owner, app := appRole(t)
	s, err := postgres.Open(ctx, postgres.Config{URL: app})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if ex, err := s.ExcessPrivileges(ctx); err != nil || len(ex) != 0 {
		t.Errorf("app role: excess privileges %q, %v", ex, err)
	}
	c := conn(t, app)
	for _, q := range []string{"UPDATE events SET body = '{}'", "UPDATE tree_hashes SET hash = NULL", "TRUNCATE checkpoints",
		"DROP TRIGGER events_no_update ON events", "ALTER TABLE events DISABLE TRIGGER USER", "DELETE FROM tree_hashes", "CREATE TABLE x (a int)"} {
		_, err := c.Exec(ctx, q)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Errorf("%s as the app role: %v, want permission denied", q, err)
		}
	}
	o, err := postgres.Open(ctx, postgres.Config{URL: owner})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	ex, err := o.ExcessPrivileges(ctx)
	if err != nil || len(ex) == 0 || !strings.Contains(strings.Join(ex, "\n"), "superuser") {
		t.Errorf("superuser: excess privileges %q, %v; want them named", ex, err)
	}
	if _, err := conn(t, owner).Exec(ctx, "GRANT UPDATE ON checkpoints TO "+strings.Split(strings.TrimPrefix(app, "postgres://"), ":")[0]); err != nil {
		t.Fatal(err)
	}
	if ex, err := s.ExcessPrivileges(ctx); err != nil || len(ex) != 1 || !strings.Contains(ex[0], "REVOKE UPDATE ON checkpoints FROM app_") {
		t.Errorf("app role granted UPDATE on checkpoints: %q, %v; want the REVOKE named", ex, err)
	}
}

// The README gives operators the grants that TestLeastPrivilegeRole runs with.
func TestREADMEGrants(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if want := "```sql\n" + postgres.Grants("agentaudit_app") + "```"; !strings.Contains(string(readme), want) {
		t.Errorf("README.md lacks the grants, as postgres.Grants gives them:\n%s", want)
	}
}

// Open waits, retrying, for a database that starts listening after it was called; a wrong
// password fails at once.
func TestConnectRetries(t *testing.T) {
	ctx := context.Background()
	real, err := url.Parse(pgtest.NewDB(t))
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	late := l.Addr().String()
	l.Close()
	up := make(chan net.Listener, 1)
	t.Cleanup(func() {
		if l := <-up; l != nil {
			l.Close()
		}
	})
	go func() { // the database comes up 1.5 s later, on the address Open was given
		time.Sleep(1500 * time.Millisecond)
		l, err := net.Listen("tcp", late)
		up <- l
		if err != nil {
			return
		}
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				d, err := net.Dial("tcp", real.Host)
				if err != nil {
					return
				}
				defer d.Close()
				go io.Copy(d, c)
				io.Copy(c, d)
			}()
		}
	}()
	u := *real
	u.Host = late
	start := time.Now()
	s, err := postgres.Open(ctx, postgres.Config{URL: u.String(), ConnectTimeout: 30 * time.Second})
	if err != nil {
		t.Fatalf("Open while the database comes up: %v", err)
	}
	s.Close()
	if d := time.Since(start); d < time.Second {
		t.Errorf("Open returned after %v, before the database listened", d)
	}
	u = *real
	u.User = url.UserPassword("agentaudit", "wrong")
	start = time.Now()
	_, err = postgres.Open(ctx, postgres.Config{URL: u.String(), ConnectTimeout: 30 * time.Second})
	if err == nil || errors.Is(err, postgres.ErrUnreachable) || !strings.Contains(err.Error(), "refused the connection") || time.Since(start) > 5*time.Second {
		t.Errorf("Open with a wrong password: %v after %v; want a refusal at once", err, time.Since(start))
	}
}

// Appends racing from several stores (several processes) on one database keep the log linear
// and gap-free: each batch either continues the log exactly or is refused whole with
// ErrOutOfOrder, and nothing of a refused batch is stored.
func TestConcurrentWritersStayLinear(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	const writers, attempts = 4, 15
	var stores []*postgres.Store
	for range writers {
		s, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	var mu sync.Mutex
	var committed, refused int64
	var wg sync.WaitGroup
	for w, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range attempts {
				next, err := s.Size(ctx)
				if err != nil {
					t.Error(err)
					return
				}
				n := int64(1 + (w+a)%5)
				b := store.Batch{FirstHash: tlog.StoredHashIndex(0, next)}
				for i := range n {
					b.Entries = append(b.Entries, store.Entry{Seq: next + i, ID: fmt.Sprintf("w%d-a%d-%d", w, a, i), Salt: make([]byte, 16), Body: []byte("{}")})
				}
				b.Hashes = make([]tlog.Hash, tlog.StoredHashCount(next+n)-b.FirstHash)
				switch err := s.Append(ctx, b); {
				case err == nil:
					mu.Lock()
					committed += n
					mu.Unlock()
				case errors.Is(err, store.ErrOutOfOrder):
					mu.Lock()
					refused++
					mu.Unlock()
				default:
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s := stores[0]
	size, _ := s.Size(ctx)
	hashes, _ := s.HashCount(ctx)
	if size != committed || hashes != tlog.StoredHashCount(size) {
		t.Errorf("log has %d entries and %d hashes; %d entries were committed (%d hashes)", size, hashes, committed, tlog.StoredHashCount(committed))
	}
	seq := int64(0)
	if err := s.ScanEntries(ctx, 0, func(e store.Entry) error {
		if e.Seq != seq {
			return fmt.Errorf("seq %d where %d belongs", e.Seq, seq)
		}
		seq++
		return nil
	}); err != nil {
		t.Error(err)
	}
	t.Logf("%d entries committed, %d batches refused", committed, refused)
	if refused == 0 {
		t.Log("no race happened this time: the writers never collided")
	}
}

// AppendAt hands build the log's size and stored hashes as its locked transaction sees them,
// while other stores append to the same database; what build returns is committed, a batch not
// at that size is refused (store.ErrOutOfOrder) and a build error writes nothing.
func TestAppendAt(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	var stores []*postgres.Store
	for range 3 {
		s, err := postgres.Open(ctx, postgres.Config{URL: url, MaxConns: 2})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		stores = append(stores, s)
	}
	var wg sync.WaitGroup
	for w, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for a := range 10 {
				err := s.AppendAt(ctx, func(size int64, hashes tlog.HashReader) (store.Batch, error) {
					if size > 0 { // the hash of the last entry is readable in the transaction
						if _, err := hashes.ReadHashes([]int64{tlog.StoredHashIndex(0, size-1)}); err != nil {
							return store.Batch{}, err
						}
					}
					b := store.Batch{FirstHash: tlog.StoredHashIndex(0, size)}
					b.Entries = []store.Entry{{Seq: size, ID: fmt.Sprintf("w%d-%d", w, a), Salt: make([]byte, 16), Body: []byte("{}")}}
					b.Hashes = make([]tlog.Hash, tlog.StoredHashCount(size+1)-b.FirstHash)
					return b, nil
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	s := stores[0]
	if size, _ := s.Size(ctx); size != 30 {
		t.Errorf("size %d after 30 appends at once", size)
	}
	if hc, _ := s.HashCount(ctx); hc != tlog.StoredHashCount(30) {
		t.Errorf("%d tree hashes for 30 entries", hc)
	}
	errBuild := errors.New("build failed")
	if err := s.AppendAt(ctx, func(int64, tlog.HashReader) (store.Batch, error) { return store.Batch{}, errBuild }); !errors.Is(err, errBuild) {
		t.Errorf("AppendAt with a failing build = %v", err)
	}
	err := s.AppendAt(ctx, func(size int64, _ tlog.HashReader) (store.Batch, error) {
		return store.Batch{Entries: []store.Entry{{Seq: size - 1, ID: "stale", Salt: make([]byte, 16), Body: []byte("{}")}}, FirstHash: tlog.StoredHashIndex(0, size-1)}, nil
	})
	if !errors.Is(err, store.ErrOutOfOrder) {
		t.Errorf("AppendAt of a batch behind the log = %v, want ErrOutOfOrder", err)
	}
	if size, _ := s.Size(ctx); size != 30 {
		t.Errorf("size %d after refused appends", size)
	}
	// A writer paused inside its transaction loses the tail lock after HoldTimeout, and the
	// others go on.
	p, err := postgres.Open(ctx, postgres.Config{URL: url, HoldTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	paused := make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- p.AppendAt(ctx, func(size int64, _ tlog.HashReader) (store.Batch, error) {
			close(paused)
			time.Sleep(2 * time.Second)
			return store.Batch{}, nil
		})
	}()
	<-paused
	err = s.AppendAt(ctx, func(size int64, _ tlog.HashReader) (store.Batch, error) {
		b := store.Batch{FirstHash: tlog.StoredHashIndex(0, size), Entries: []store.Entry{{Seq: size, ID: "after-pause", Salt: make([]byte, 16), Body: []byte("{}")}}}
		b.Hashes = make([]tlog.Hash, tlog.StoredHashCount(size+1)-b.FirstHash)
		return b, nil
	})
	if err != nil {
		t.Errorf("append beside a paused writer: %v", err)
	}
	if err := <-errc; !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("the paused writer: %v, want store.ErrUnavailable", err)
	}
}

// One store at a time holds the checkpoint lease; a nil note stores nothing; a holder silent for
// longer than its lease loses it (its session ends: store.ErrUnavailable) and stores nothing.
func TestCheckpointLease(t *testing.T) {
	ctx := context.Background()
	url := pgtest.NewDB(t)
	a, err := postgres.Open(ctx, postgres.Config{URL: url, HoldTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := postgres.Open(ctx, postgres.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	held, err := a.CheckpointLease(ctx, func(size, signed int64, _ tlog.HashReader) ([]byte, error) {
		if size != 0 || signed != -1 {
			t.Errorf("sign(%d, %d), want the empty log and no checkpoint (0, -1)", size, signed)
		}
		bHeld, err := b.CheckpointLease(ctx, func(int64, int64, tlog.HashReader) ([]byte, error) {
			t.Error("b signed while a held the lease")
			return nil, nil
		})
		if bHeld || err != nil {
			t.Errorf("b's lease while a holds it: %v %v", bHeld, err)
		}
		return []byte("note 0\n"), nil
	})
	if !held || err != nil {
		t.Fatalf("a's lease: %v %v", held, err)
	}
	held, err = b.CheckpointLease(ctx, func(size, signed int64, _ tlog.HashReader) ([]byte, error) {
		if signed != 0 {
			t.Errorf("signed = %d, want 0 (a's checkpoint)", signed)
		}
		return nil, nil
	})
	if !held || err != nil {
		t.Fatalf("b's lease after a's: %v %v", held, err)
	}
	_, err = a.CheckpointLease(ctx, func(int64, int64, tlog.HashReader) ([]byte, error) {
		time.Sleep(time.Second) // paused past the lease
		return []byte("late\n"), nil
	})
	if !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("a paused past its lease: %v, want store.ErrUnavailable", err)
	}
	if cps, _ := b.Checkpoints(ctx); len(cps) != 1 || string(cps[0].Note) != "note 0\n" {
		t.Errorf("checkpoints %+v, want a's first only", cps)
	}
}
