package ledger_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/pgtest"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/postgres"
)

// shared is one PostgreSQL database that several ledgers, each with a store (a connection pool)
// of its own, append to at once, as several servers do.
type shared struct {
	url    string
	signer note.Signer
	v      note.Verifier
}

func newShared(t *testing.T, url string) *shared {
	t.Helper()
	skey, vkey, err := ledger.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	s := &shared{url: url}
	s.signer, _ = note.NewSigner(skey)
	s.v, _ = note.NewVerifier(vkey)
	return s
}

func (s *shared) store(t *testing.T, cfg postgres.Config) *postgres.Store {
	t.Helper()
	cfg.URL = s.url
	st, err := postgres.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func (s *shared) ledger(t *testing.T, st ledger.Store, every time.Duration) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(context.Background(), st, s.signer, s.v, ledger.Options{Sanitizer: ledger.Unsanitized, CheckpointInterval: every})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// check asserts that the log holds exactly the acknowledged events, each once at its receipt's
// seq and nothing else, that it verifies, and that every stored checkpoint is of the final
// tree (its root is the stored tree's root at its size).
func (s *shared) check(t *testing.T, st *postgres.Store, acked map[string]int64) {
	t.Helper()
	ctx := context.Background()
	size, err := st.Size(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if size != int64(len(acked)) {
		t.Errorf("the log holds %d events, %d were acknowledged", size, len(acked))
	}
	seen := map[int64]string{}
	for id, seq := range acked {
		if prev, ok := seen[seq]; ok {
			t.Errorf("%s and %s both acknowledged at seq %d", prev, id, seq)
		}
		seen[seq] = id
		e, err := st.EntryByID(ctx, id)
		if err != nil || e.Seq != seq {
			t.Errorf("acknowledged %s at seq %d; stored at %d (%v)", id, seq, e.Seq, err)
		}
	}
	rep, err := ledger.Verify(ctx, st, s.v, ledger.VerifyOptions{})
	if err != nil || !rep.OK() {
		t.Errorf("verify: %v %v", rep, err)
	}
	cps, err := st.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hashes := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return st.ReadHashes(ctx, idx) })
	for _, cp := range cps {
		c, err := ledger.OpenCheckpoint(cp.Note, s.v)
		if err != nil {
			t.Fatalf("checkpoint %d: %v", cp.Size, err)
		}
		root, err := tlog.TreeHash(c.N, hashes)
		if err != nil || root != c.Hash || c.N != cp.Size {
			t.Errorf("checkpoint of %d events is not of the final tree (%v)", c.N, err)
		}
	}
	if len(cps) < 2 {
		t.Errorf("%d checkpoints stored; the ledgers signed as they went", len(cps))
	}
}

// Three ledgers on one database append at once, from several goroutines each, and race to sign
// a checkpoint every few milliseconds: the log stays linear and gap-free, each acknowledged
// event is stored once at its seq, and every checkpoint, whoever signed it, is of one tree.
func TestSharedLedgersAppendAtOnce(t *testing.T) {
	s := newShared(t, pgtest.NewDB(t))
	var mu sync.Mutex
	acked := map[string]int64{}
	var wg sync.WaitGroup
	var stores []*postgres.Store
	var ledgers []*ledger.Ledger
	for n := range 3 {
		st := s.store(t, postgres.Config{})
		stores = append(stores, st)
		l := s.ledger(t, st, 3*time.Millisecond)
		ledgers = append(ledgers, l)
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 60; i++ {
					evs := make([]*event.Event, 1+i%3)
					for j := range evs {
						evs[j] = toolEvent(i)
						evs[j].ID = fmt.Sprintf("l%d-w%d-%d-%d", n, w, i, j)
					}
					res, err := l.AppendBatch(context.Background(), evs)
					if err != nil {
						t.Error(err)
						return
					}
					mu.Lock()
					for _, r := range res {
						if r.Err != nil {
							t.Error(r.Err)
						}
						acked[r.ID] = r.Seq
					}
					mu.Unlock()
				}
			}()
		}
		if n == 0 {
			// A ledger opened after others appended, too, starts from the stored tree.
			time.Sleep(20 * time.Millisecond)
		}
	}
	wg.Wait()
	if _, err := ledgers[2].SignCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	s.check(t, stores[0], acked)
}

// pausingStore pauses, once, for pause right after signing under the checkpoint lease and
// before the checkpoint is stored: a process stopped (SIGSTOP, a long GC, a frozen VM) while it
// holds the lease.
type pausingStore struct {
	*postgres.Store
	pause  time.Duration
	paused atomic.Bool
	signed atomic.Int64 // the size signed before the pause
}

func (p *pausingStore) CheckpointLease(ctx context.Context, sign func(size, signed int64, hashes tlog.HashReader) ([]byte, error)) (bool, error) {
	return p.Store.CheckpointLease(ctx, func(size, signed int64, hashes tlog.HashReader) ([]byte, error) {
		msg, err := sign(size, signed, hashes)
		if msg != nil && p.paused.CompareAndSwap(false, true) {
			p.signed.Store(size)
			time.Sleep(p.pause)
		}
		return msg, err
	})
}

// A ledger paused while it holds the checkpoint lease loses it after the lease time
// (PostgreSQL ends its session); another ledger signs meanwhile, and the paused one's
// checkpoint, of a smaller tree by the time it wakes, is not stored. It signs again afterwards,
// and every stored checkpoint is of the one tree.
func TestSharedLedgerPausedHoldingLease(t *testing.T) {
	s := newShared(t, pgtest.NewDB(t))
	const lease = 500 * time.Millisecond
	a := &pausingStore{Store: s.store(t, postgres.Config{HoldTimeout: lease}), pause: 4 * lease}
	b := s.store(t, postgres.Config{HoldTimeout: lease})
	la := s.ledger(t, a, 1<<40) // signs only when told
	acked := map[string]int64{}
	add := func(l *ledger.Ledger, id string) {
		ev := toolEvent(len(acked))
		ev.ID = id
		r, err := l.Append(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		acked[id] = r.Seq
	}
	for i := range 5 {
		add(la, fmt.Sprint("a-", i))
	}
	errc := make(chan error, 1)
	go func() { _, err := la.SignCheckpoint(context.Background()); errc <- err }()
	for start := time.Now(); !a.paused.Load(); time.Sleep(time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatal("the first ledger did not sign")
		}
	}
	lb := s.ledger(t, b, 20*time.Millisecond) // opened now, so that a signs first
	// While a is paused, b appends and, once the lease passes on, signs.
	deadline := time.Now().Add(a.pause)
	for i := 0; time.Now().Before(deadline); i++ {
		add(lb, fmt.Sprint("b-", i))
		time.Sleep(20 * time.Millisecond)
	}
	if err := <-errc; !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("the paused ledger's checkpoint: %v, want store.ErrUnavailable (its lease ended)", err)
	}
	latest, err := b.LatestCheckpoint(context.Background())
	if err != nil || latest.Size <= a.signed.Load() {
		t.Errorf("no checkpoint past %d signed while the holder was paused: %+v %v", a.signed.Load(), latest, err)
	}
	// The paused ledger carries on: it appends and signs again, through a new connection.
	add(la, "a-after")
	if _, err := la.SignCheckpoint(context.Background()); err != nil {
		t.Fatalf("sign after the pause: %v", err)
	}
	if c, _ := b.LatestCheckpoint(context.Background()); c.Size != int64(len(acked)) {
		t.Errorf("latest checkpoint of %d events, the log has %d", c.Size, len(acked))
	}
	s.check(t, b, acked)
}

// lostAck is a store whose commits succeed but whose answer is lost, once, as when the
// connection drops after COMMIT reached the database: the ledger must find out that its batch
// landed, acknowledge it, and carry on. With land false, the commit is lost too. The fault
// strikes the first AppendAt after arm is set.
type lostAck struct {
	*postgres.Store
	land bool
	arm  atomic.Bool
}

func (s *lostAck) AppendAt(ctx context.Context, build func(size int64, hashes tlog.HashReader) (store.Batch, error)) error {
	if !s.arm.CompareAndSwap(true, false) {
		return s.Store.AppendAt(ctx, build)
	}
	if s.land {
		if err := s.Store.AppendAt(ctx, build); err != nil {
			return err
		}
	}
	return fmt.Errorf("postgres: commit: %w", errors.Join(store.ErrUnavailable, errors.New("unexpected EOF")))
}

// A commit whose outcome the ledger did not learn: when it landed, the callers get its receipts
// (and a retry is a duplicate); when it did not, they get store.ErrUnavailable and a retry
// stores it. Either way the ledger goes on appending without a restart.
func TestSharedLedgerUnknownCommitOutcome(t *testing.T) {
	for _, land := range []bool{true, false} {
		t.Run(fmt.Sprint("landed=", land), func(t *testing.T) {
			s := newShared(t, pgtest.NewDB(t))
			st := &lostAck{Store: s.store(t, postgres.Config{}), land: land}
			l := s.ledger(t, st, 1<<40)
			st.arm.Store(true)
			acked := map[string]int64{}
			appendOne := func(id string) (ledger.Receipt, error) {
				ev := toolEvent(len(id))
				ev.ID = id
				return l.Append(context.Background(), ev)
			}
			r, err := appendOne("first")
			switch {
			case land && err != nil:
				t.Fatalf("a batch that landed: %v", err)
			case !land && !errors.Is(err, store.ErrUnavailable):
				t.Fatalf("a batch that did not land: %v, want store.ErrUnavailable", err)
			case land:
				acked["first"] = r.Seq
			}
			r2, err := appendOne("first") // the client's retry
			if err != nil || r2.Duplicate != land || (land && r2.Seq != r.Seq) {
				t.Fatalf("retry: %+v %v", r2, err)
			}
			acked["first"] = r2.Seq
			if _, err := l.SignCheckpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			for i := range 3 {
				r, err := appendOne(fmt.Sprint("next-", i))
				if err != nil {
					t.Fatal(err)
				}
				acked[r.ID] = r.Seq
			}
			if _, err := l.SignCheckpoint(context.Background()); err != nil {
				t.Fatal(err)
			}
			if h := l.Head(); h.N != int64(len(acked)) {
				t.Errorf("head at %d, the log has %d", h.N, len(acked))
			}
			s.check(t, st.Store, acked)
		})
	}
}

// The database crashes (immediate shutdown) and restarts while two ledgers append: appends
// fail with store.ErrUnavailable meanwhile, never otherwise, and succeed again once it is back,
// without reopening anything. Clients retry failed events with the same ids; afterwards each
// acknowledged event is stored exactly once and the log verifies.
func TestSharedLedgersDatabaseRestart(t *testing.T) {
	srv := pgtest.Private(t)
	url, err := srv.CreateDB("restart")
	if err != nil {
		t.Fatal(err)
	}
	s := newShared(t, url)
	ledgers := []*ledger.Ledger{s.ledger(t, s.store(t, postgres.Config{}), 10*time.Millisecond),
		s.ledger(t, s.store(t, postgres.Config{}), 10*time.Millisecond)}
	var mu sync.Mutex
	acked := map[string]int64{}
	var unavailable, okAfter atomic.Int64
	var restarted atomic.Bool
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l := ledgers[w%2]
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				ev := toolEvent(i)
				ev.ID = fmt.Sprintf("w%d-%d", w, i)
				for { // a client retries the same id until it is acknowledged
					r, err := l.Append(context.Background(), ev)
					if err == nil {
						mu.Lock()
						acked[r.ID] = r.Seq
						mu.Unlock()
						if restarted.Load() {
							okAfter.Add(1)
						}
						break
					}
					if !errors.Is(err, store.ErrUnavailable) {
						t.Errorf("append while the database restarts: %v, want store.ErrUnavailable", err)
						return
					}
					unavailable.Add(1)
					time.Sleep(20 * time.Millisecond)
				}
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := srv.Crash(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	restarted.Store(true)
	deadline := time.Now().Add(30 * time.Second)
	for okAfter.Load() < 100 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if unavailable.Load() == 0 {
		t.Error("no append failed while the database was down")
	}
	if okAfter.Load() < 100 {
		t.Errorf("%d appends acknowledged after the restart", okAfter.Load())
	}
	for _, l := range ledgers {
		if _, err := l.SignCheckpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d acknowledged, %d refused while the database was down", len(acked), unavailable.Load())
	st := s.store(t, postgres.Config{})
	s.check(t, st, acked)
}
