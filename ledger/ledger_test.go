package ledger_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

const origin = "test.agentaudit.local/log"

type fixture struct {
	dir    string
	db     string
	st     *sqlite.Store
	l      *ledger.Ledger
	signer note.Signer
	v      note.Verifier
	skey   string
}

func newFixture(t testing.TB, opts ledger.Options) *fixture {
	t.Helper()
	dir := t.TempDir()
	skey, vkey, err := ledger.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{dir: dir, db: filepath.Join(dir, "ledger.db"), skey: skey}
	if f.signer, err = note.NewSigner(skey); err != nil {
		t.Fatal(err)
	}
	if f.v, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	f.open(t, opts)
	t.Cleanup(f.close)
	return f
}

func (f *fixture) open(t testing.TB, opts ledger.Options) {
	t.Helper()
	var err error
	if f.st, err = sqlite.Open(context.Background(), sqlite.Config{Path: f.db}); err != nil {
		t.Fatal(err)
	}
	if f.l, err = ledger.Open(context.Background(), f.st, f.signer, f.v, opts); err != nil {
		f.st.Close()
		f.st = nil
		t.Fatal(err)
	}
}

func (f *fixture) close() {
	if f.l != nil {
		f.l.Close()
		f.l = nil
	}
	if f.st != nil {
		f.st.Close()
		f.st = nil
	}
}

func toolEvent(i int) *event.Event {
	return &event.Event{
		ID: fmt.Sprintf("ev-%05d", i), SessionID: fmt.Sprintf("s-%d", i%7), Kind: event.KindToolCall,
		Time: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC), UserID: "usr_1", ToolName: "get_order",
		Arguments: json.RawMessage(fmt.Sprintf(`{"order_id":"ORD-%d"}`, i)), DurationMS: 12.5, Success: event.Bool(true),
	}
}

func appendN(t testing.TB, l *ledger.Ledger, from, n int) {
	t.Helper()
	evs := make([]*event.Event, n)
	for i := range evs {
		evs[i] = toolEvent(from + i)
	}
	res, err := l.AppendBatch(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("event %d: %v", i, r.Err)
		}
	}
}

func verify(t testing.TB, f *fixture, opts ledger.VerifyOptions) (*ledger.Report, error) {
	t.Helper()
	if f.l != nil { // sign what is committed, as the ledger does every second
		if _, err := f.l.SignCheckpoint(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	return ledger.Verify(context.Background(), f.st, f.v, opts)
}

func TestAppendVerifyProve(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	ctx := context.Background()
	for i := 0; i < 5; i++ {
		r, err := f.l.Append(ctx, toolEvent(i))
		if err != nil {
			t.Fatal(err)
		}
		if r.Seq != int64(i) || r.ID != toolEvent(i).ID || r.Duplicate {
			t.Fatalf("receipt %+v, want seq %d", r, i)
		}
	}
	appendN(t, f.l, 5, 300)
	if h := f.l.Head(); h.N != 305 {
		t.Fatalf("head size %d, want 305", h.N)
	}
	b, err := f.l.Prove(ctx, "ev-00042")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(b)
	vb, err := ledger.VerifyBundle(data, f.v)
	if err != nil {
		t.Fatal(err)
	}
	if vb.Seq != 42 || vb.Event.ID != "ev-00042" || vb.Checkpoint.N != 305 {
		t.Errorf("verified %+v", vb)
	}
	rep, err := verify(t, f, ledger.VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Events != 305 || !rep.RootVerified || rep.SignedSize != 305 {
		t.Errorf("report %+v", rep)
	}
}

func TestBundleTamperDetected(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	appendN(t, f.l, 0, 20)
	b, err := f.l.Prove(context.Background(), "ev-00007")
	if err != nil {
		t.Fatal(err)
	}
	good, _ := json.Marshal(b)
	other, _, _ := ledger.GenerateKey(origin)
	otherSigner, _ := note.NewSigner(other)
	resigned, _ := note.Sign(&note.Note{Text: ledger.FormatCheckpoint(origin, f.l.Head())}, otherSigner)
	mutate := map[string]func(b *ledger.Bundle){
		"event field": func(b *ledger.Bundle) {
			b.Event = json.RawMessage(strings.Replace(string(b.Event), "ORD-7", "ORD-8", 1))
		},
		"salt":          func(b *ledger.Bundle) { b.Salt = "AAAAAAAAAAAAAAAAAAAAAA==" },
		"seq":           func(b *ledger.Bundle) { b.Seq = 8 },
		"proof hash":    func(b *ledger.Bundle) { b.Proof[0] = b.Proof[1] },
		"short proof":   func(b *ledger.Bundle) { b.Proof = b.Proof[1:] },
		"other key":     func(b *ledger.Bundle) { b.Checkpoint = string(resigned) },
		"checkpoint":    func(b *ledger.Bundle) { b.Checkpoint = strings.Replace(b.Checkpoint, "\n20\n", "\n21\n", 1) },
		"format":        func(b *ledger.Bundle) { b.Format = "agentaudit-bundle/v0" },
		"seq past tree": func(b *ledger.Bundle) { b.Seq = 20 },
	}
	for name, m := range mutate {
		t.Run(name, func(t *testing.T) {
			var c ledger.Bundle
			json.Unmarshal(good, &c)
			m(&c)
			data, _ := json.Marshal(c)
			if _, err := ledger.VerifyBundle(data, f.v); !errors.Is(err, ledger.ErrBadBundle) {
				t.Fatalf("got %v, want ErrBadBundle", err)
			}
		})
	}
	// Reformatting the event (indentation, member order) keeps it valid: it is canonicalized again.
	var c ledger.Bundle
	json.Unmarshal(good, &c)
	var m map[string]any
	json.Unmarshal(c.Event, &m)
	c.Event, _ = json.MarshalIndent(m, "", "  ")
	data, _ := json.Marshal(c)
	if _, err := ledger.VerifyBundle(data, f.v); err != nil {
		t.Errorf("reformatted bundle: %v", err)
	}
}

func TestIdempotentRetries(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	ctx := context.Background()
	first, err := f.l.Append(ctx, toolEvent(1))
	if err != nil {
		t.Fatal(err)
	}
	appendN(t, f.l, 2, 3)
	again, err := f.l.Append(ctx, toolEvent(1))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate || again.Seq != first.Seq || again.Leaf != first.Leaf {
		t.Errorf("retry receipt %+v, want duplicate of %+v", again, first)
	}
	changed := toolEvent(1)
	changed.UserID = "usr_2"
	if _, err := f.l.Append(ctx, changed); !errors.Is(err, ledger.ErrConflict) {
		t.Errorf("changed content: %v, want ErrConflict", err)
	}
	// Repeats inside one batch, mixed with new events and a conflict.
	c := toolEvent(10)
	c.UserID = "someone else"
	res, err := f.l.AppendBatch(ctx, []*event.Event{toolEvent(10), toolEvent(10), toolEvent(3), c, toolEvent(11)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[1].Err != nil || !res[1].Duplicate || res[1].Seq != res[0].Seq {
		t.Errorf("in-batch repeat: %+v / %+v", res[0], res[1])
	}
	if res[2].Err != nil || !res[2].Duplicate || res[2].Seq != 2 {
		t.Errorf("stored repeat: %+v", res[2])
	}
	if !errors.Is(res[3].Err, ledger.ErrConflict) {
		t.Errorf("in-batch conflict: %v", res[3].Err)
	}
	if res[4].Err != nil || res[4].Seq != res[0].Seq+1 {
		t.Errorf("new event after duplicates: %+v (first %d)", res[4], res[0].Seq)
	}
	if h := f.l.Head(); h.N != 6 {
		t.Errorf("head %d, want 6: duplicates must not take a seq", h.N)
	}
	if _, err := verify(t, f, ledger.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestBatchItemsFailAlone(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized, MaxEventBytes: 2048})
	big := toolEvent(2)
	big.OutputText = strings.Repeat("x", 4096)
	bad := toolEvent(3)
	bad.Trigger = "whim"
	res, err := f.l.AppendBatch(context.Background(), []*event.Event{toolEvent(1), big, bad, nil, toolEvent(4)})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[4].Err != nil || res[0].Seq != 0 || res[4].Seq != 1 {
		t.Errorf("good events: %+v %+v", res[0], res[4])
	}
	if !errors.Is(res[1].Err, ledger.ErrTooLarge) || !errors.Is(res[1].Err, event.ErrInvalid) {
		t.Errorf("oversized: %v", res[1].Err)
	}
	var fe *event.FieldError
	if !errors.As(res[2].Err, &fe) || fe.Field != "trigger" {
		t.Errorf("invalid: %v", res[2].Err)
	}
	if !errors.Is(res[3].Err, event.ErrInvalid) {
		t.Errorf("nil: %v", res[3].Err)
	}
}

func TestConcurrentAppends(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	const workers, per = 32, 100
	var wg sync.WaitGroup
	seqs := make([][]int64, workers)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < per; i++ {
				r, err := f.l.Append(context.Background(), toolEvent(w*per+i))
				if err != nil {
					t.Error(err)
					return
				}
				seqs[w] = append(seqs[w], r.Seq)
			}
		}()
	}
	wg.Wait()
	seen := map[int64]bool{}
	for _, s := range seqs {
		for _, q := range s {
			if seen[q] {
				t.Fatalf("seq %d given twice", q)
			}
			seen[q] = true
		}
	}
	if len(seen) != workers*per {
		t.Fatalf("%d seqs, want %d", len(seen), workers*per)
	}
	if err := f.l.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := verify(t, f, ledger.VerifyOptions{})
	if err != nil || rep.Events != workers*per || rep.SignedSize != workers*per {
		t.Fatalf("verify: %v %+v", err, rep)
	}
}

func TestCheckpointsWhileGrowing(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized, CheckpointInterval: 20 * time.Millisecond})
	// Each step waits for the checkpointer to sign its size (polling: a busy machine may take
	// longer than the interval), so the test does not depend on timing.
	for i := 0; i < 5; i++ {
		appendN(t, f.l, i*10, 10)
		want := int64(i+1) * 10
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			if c, err := f.st.LatestCheckpoint(context.Background()); err == nil && c.Size == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint of size %d signed within 10 s of an interval of 20 ms", want)
			}
		}
	}
	cps, err := f.st.Checkpoints(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	stored := len(cps)
	if len(cps) > 0 && cps[0].Size == 0 {
		cps = cps[1:] // the empty tree's, when the first tick came before the first commit
	}
	if len(cps) != 5 {
		t.Fatalf("%d checkpoints while growing in 5 steps, want 5", len(cps))
	}
	for i := 1; i < len(cps); i++ {
		if cps[i].Size <= cps[i-1].Size {
			t.Errorf("checkpoint sizes not increasing: %d then %d", cps[i-1].Size, cps[i].Size)
		}
	}
	// Idle: no new checkpoint.
	time.Sleep(80 * time.Millisecond)
	again, _ := f.st.Checkpoints(context.Background())
	if len(again) != stored {
		t.Errorf("signed %d checkpoints while idle", len(again)-stored)
	}
	if _, err := verify(t, f, ledger.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestReopenContinues(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	appendN(t, f.l, 0, 37)
	f.close()
	f.open(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	appendN(t, f.l, 37, 29)
	if h := f.l.Head(); h.N != 66 {
		t.Fatalf("head %d", h.N)
	}
	f.l.Close()
	if _, err := verify(t, f, ledger.VerifyOptions{}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesWrongKey(t *testing.T) {
	f := newFixture(t, ledger.Options{Sanitizer: ledger.Unsanitized})
	appendN(t, f.l, 0, 3)
	f.close()
	skey, vkey, _ := ledger.GenerateKey(origin)
	s, _ := note.NewSigner(skey)
	v, _ := note.NewVerifier(vkey)
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: f.db})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := ledger.Open(context.Background(), st, s, v, ledger.Options{Sanitizer: ledger.Unsanitized}); !errors.Is(err, ledger.ErrTampered) {
		t.Fatalf("opened with another key: %v", err)
	}
	if _, err := ledger.Open(context.Background(), st, f.signer, v, ledger.Options{Sanitizer: ledger.Unsanitized}); err == nil {
		t.Fatal("opened with a verifier that is not the signer's")
	}
}

func TestLeafHashIsRFC6962(t *testing.T) {
	salt, body := []byte("0123456789abcdef"), []byte(`{"kind":"custom"}`)
	if got, want := ledger.LeafHash(salt, body), tlog.RecordHash(append(append([]byte{}, salt...), body...)); got != want {
		t.Fatalf("LeafHash = %x, tlog.RecordHash = %x", got, want)
	}
}
