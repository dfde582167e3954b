package sqlite_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/sqlite"
	"github.com/agentaudit/agentaudit/store/storetest"
)

const origin = "intake.test/log"

// TestIntakeChild is the writer the intake tests kill: it appends AGENTAUDIT_INTAKE_FREE events
// through a ledger, then holds the applier (as if the process died right after acknowledging)
// and appends AGENTAUDIT_INTAKE_HELD more, ten per batch, printing each acknowledged seq; then it
// waits to be killed.
func TestIntakeChild(t *testing.T) {
	dir := os.Getenv("AGENTAUDIT_INTAKE_DIR")
	if dir == "" {
		t.Skip("run by the intake tests")
	}
	free, _ := strconv.Atoi(os.Getenv("AGENTAUDIT_INTAKE_FREE"))
	held, _ := strconv.Atoi(os.Getenv("AGENTAUDIT_INTAKE_HELD"))
	skey, _ := os.ReadFile(filepath.Join(dir, "signing.key"))
	vkey, _ := os.ReadFile(filepath.Join(dir, "verifier.key"))
	s, _ := note.NewSigner(string(skey))
	v, _ := note.NewVerifier(string(vkey))
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "ledger.db")})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	l, err := ledger.Open(ctx, st, s, v, ledger.Options{Sanitizer: ledger.Unsanitized, CheckpointInterval: time.Hour})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	for i := 0; i < free+held; i += 10 {
		if i == free {
			// What came before is in the database (a read waits for it) and signed.
			if _, err := l.SignCheckpoint(ctx); err != nil {
				fmt.Println("checkpoint:", err)
				os.Exit(4)
			}
			sqlite.HoldApplier(st)
		}
		evs := make([]*event.Event, 10)
		for j := range evs {
			evs[j] = &event.Event{ID: fmt.Sprintf("ev-%d", i+j), Kind: event.KindToolCall, ToolName: "lookup",
				SessionID: "s", Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
				Result: json.RawMessage(fmt.Sprintf("%q", fmt.Sprintf("payload-%d-%s", i+j, strings.Repeat("x", 900))))}
		}
		res, err := l.AppendBatch(ctx, evs)
		if err != nil {
			fmt.Println("append:", err)
			os.Exit(4)
		}
		for _, r := range res {
			fmt.Fprintf(out, "ack %d\n", r.Seq)
		}
	}
	fmt.Fprintln(out, "done")
	out.Flush()
	select {}
}

// killedWriter runs TestIntakeChild in a new data directory, kills it with SIGKILL once it has
// appended everything, and returns the directory, the verifier and the events acknowledged.
func killedWriter(t *testing.T, free, held int) (dir string, v note.Verifier, acked int64) {
	t.Helper()
	cmd, dir, v, acked := runningWriter(t, free, held)
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	return dir, v, acked
}

// runningWriter runs TestIntakeChild in a new data directory and returns once it has appended
// everything, leaving it running (its applier held) for the caller to kill.
func runningWriter(t *testing.T, free, held int) (cmd *exec.Cmd, dir string, v note.Verifier, acked int64) {
	t.Helper()
	dir = t.TempDir()
	skey, vkey, err := ledger.GenerateKey(origin)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, "signing.key"), []byte(skey), 0o600)
	os.WriteFile(filepath.Join(dir, "verifier.key"), []byte(vkey), 0o644)
	if v, err = note.NewVerifier(vkey); err != nil {
		t.Fatal(err)
	}
	cmd = exec.Command(os.Args[0], "-test.run=^TestIntakeChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), "AGENTAUDIT_INTAKE_DIR="+dir,
		"AGENTAUDIT_INTAKE_FREE="+strconv.Itoa(free), "AGENTAUDIT_INTAKE_HELD="+strconv.Itoa(held))
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	done := false
	for sc.Scan() {
		if sc.Text() == "done" {
			done = true
			break
		}
		var seq int64
		if _, err := fmt.Sscanf(sc.Text(), "ack %d", &seq); err != nil {
			cmd.Process.Kill()
			t.Fatalf("child said %q", sc.Text())
		}
		if seq != acked {
			t.Fatalf("acknowledged seq %d, want %d", seq, acked)
		}
		acked++
	}
	if !done {
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		t.Fatalf("the child stopped after %d events", acked)
	}
	t.Cleanup(func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() })
	return cmd, dir, v, acked
}

// dbEvents counts the events the database file itself holds, read as another program would,
// without the intake.
func dbEvents(t *testing.T, dir string) int64 {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "ledger.db")+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int64
	if err := db.QueryRow("SELECT count(*) FROM events").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func intakeSizes(t *testing.T, dir string) (sizes [2]int64) {
	t.Helper()
	for i, p := range sqlite.IntakePaths(filepath.Join(dir, "ledger.db")) {
		if fi, err := os.Stat(p); err == nil {
			sizes[i] = fi.Size()
		}
	}
	return sizes
}

// verifyAll opens the store as opts say, and checks it holds want events and verifies.
func verifyAll(t *testing.T, dir string, v note.Verifier, readOnly bool, want int64) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "ledger.db"), ReadOnly: readOnly})
	if err != nil {
		t.Fatalf("open after the kill: %v", err)
	}
	defer st.Close()
	rep, err := ledger.Verify(context.Background(), st, v, ledger.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify after the kill: %v", err)
	}
	if rep.Events != want {
		t.Fatalf("after the kill the log has %d events, %d were acknowledged", rep.Events, want)
	}
}

// Events acknowledged from the intake only (the applier held, then the process killed) are all
// there when the data directory is next opened, for reading as for writing, and the log
// verifies; the database file alone did not have them.
func TestIntakeRecoversKilledWriter(t *testing.T) {
	for _, readOnly := range []bool{true, false} {
		t.Run(fmt.Sprintf("read-only=%v", readOnly), func(t *testing.T) {
			dir, v, acked := killedWriter(t, 20, 200)
			if got := dbEvents(t, dir); got != 20 {
				t.Fatalf("the database file has %d events before recovery, want the 20 applied", got)
			}
			if s := intakeSizes(t, dir); s[0] == 0 {
				t.Fatal("the intake is empty: the test did not leave events in it")
			}
			verifyAll(t, dir, v, readOnly, acked)
			if got := dbEvents(t, dir); got != acked {
				t.Errorf("the database file has %d events after recovery, want %d", got, acked)
			}
			if s := intakeSizes(t, dir); s != [2]int64{} {
				t.Errorf("the intake holds %v bytes after recovery, want none", s)
			}
		})
	}
}

// Past intakeSwitch bytes appends move to the second file; a kill with unapplied records in
// both loses none of them.
func TestIntakeAcrossBothFiles(t *testing.T) {
	perEvent := 1100 // about what one event of TestIntakeChild takes in a record
	free := (sqlite.IntakeSwitch/perEvent - 200) / 10 * 10
	dir, v, acked := killedWriter(t, free, 600)
	s := intakeSizes(t, dir)
	if s[0] < sqlite.IntakeSwitch || s[1] == 0 {
		t.Fatalf("intake sizes %v: the appends did not move to the second file", s)
	}
	if got := dbEvents(t, dir); got >= acked-200 {
		t.Fatalf("the database has %d of %d events: the test did not leave unapplied events in both files", got, acked)
	}
	verifyAll(t, dir, v, false, acked)
}

// records returns the offsets and lengths of the whole records at the start of an intake file.
func records(t *testing.T, data []byte) (offs, lens []int) {
	t.Helper()
	for off := 0; off+12 <= len(data) && binary.LittleEndian.Uint32(data[off:]) == 0x00494141; {
		n := 12 + int(binary.LittleEndian.Uint32(data[off+4:]))
		offs, lens = append(offs, off), append(lens, n)
		off += n
	}
	if len(offs) < 3 {
		t.Fatalf("%d records in the intake, want several", len(offs))
	}
	return offs, lens
}

// An intake edited or damaged where records follow is refused, naming the file, rather than
// losing the acknowledged events after the damage; an edit that keeps the record whole is
// applied and then reported by verify at the edited event's seq.
func TestIntakeTamper(t *testing.T) {
	cases := []struct {
		name string
		edit func(t *testing.T, data []byte) []byte
		// refused: the open fails naming the intake; else verify reports problemSeq.
		refused    bool
		problemSeq int64
		events     int64 // the log's size after the open, when it is not refused (0: all)
	}{
		// Records 0 and 1 (seqs 0-19) are in the database; 2 on (seqs 20-219) only in the intake.
		{name: "byte flipped in an unapplied record before others", refused: true, edit: func(t *testing.T, data []byte) []byte {
			offs, lens := records(t, data)
			data[offs[3]+lens[3]/2] ^= 1
			return data
		}},
		{name: "unapplied record removed before others", refused: true, edit: func(t *testing.T, data []byte) []byte {
			offs, lens := records(t, data)
			return append(data[:offs[3]:offs[3]], data[offs[3]+lens[3]:]...)
		}},
		{name: "byte flipped in an applied record", edit: func(t *testing.T, data []byte) []byte {
			offs, lens := records(t, data)
			data[offs[1]+lens[1]/2] ^= 1
			return data
		}},
		{name: "length field edited", refused: true, edit: func(t *testing.T, data []byte) []byte {
			offs, _ := records(t, data)
			binary.LittleEndian.PutUint32(data[offs[2]+4:], 7)
			return data
		}},
		{name: "body edited, checksum recomputed", problemSeq: 33, edit: func(t *testing.T, data []byte) []byte {
			offs, lens := records(t, data)
			at := bytes.Index(data, []byte("payload-33-"))
			for k := range offs {
				if at > offs[k] && at < offs[k]+lens[k] {
					rec := data[offs[k] : offs[k]+lens[k]]
					rec[at-offs[k]+len("payload-33-")] = 'y'
					binary.LittleEndian.PutUint32(rec[8:], crc32.Checksum(rec[12:], crc32.MakeTable(crc32.Castagnoli)))
					return data
				}
			}
			t.Fatal("event 33 is in no record")
			return nil
		}},
		// What a crash in the middle of writing the last record leaves: that record was never
		// acknowledged (the acknowledgement follows its fdatasync), so it is dropped. Cutting
		// the last acknowledged record looks the same and cannot be told apart; it is the
		// unwitnessed tail that a checkpoint signs soon after (see the package doc).
		{name: "cut short inside the last record", events: 20 + 200 - 10, edit: func(t *testing.T, data []byte) []byte {
			offs, lens := records(t, data)
			last := len(offs) - 1
			return data[:offs[last]+lens[last]/2]
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, v, acked := killedWriter(t, 20, 200)
			path := sqlite.IntakePaths(filepath.Join(dir, "ledger.db"))[0]
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tc.edit(t, data), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, readOnly := range []bool{true, false} {
				st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "ledger.db"), ReadOnly: readOnly})
				if tc.refused {
					if err == nil {
						st.Close()
						t.Fatalf("read-only=%v: the damaged intake was accepted", readOnly)
					}
					if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "damaged, edited or missing") {
						t.Fatalf("read-only=%v: %v; want the intake's path and what is wrong", readOnly, err)
					}
					if got := dbEvents(t, dir); got != 20 {
						t.Fatalf("a refused intake was partly applied: %d events", got)
					}
					continue
				}
				if err != nil {
					t.Fatalf("read-only=%v: %v", readOnly, err)
				}
				rep, err := ledger.Verify(context.Background(), st, v, ledger.VerifyOptions{})
				st.Close()
				want := acked
				if tc.events > 0 {
					want = tc.events
				}
				switch {
				case tc.problemSeq > 0:
					var te *ledger.TamperError
					if !errors.As(err, &te) || te.Report.Problems[0].Seq != tc.problemSeq {
						t.Fatalf("verify: %v; want a problem at seq %d", err, tc.problemSeq)
					}
				case err != nil:
					t.Fatalf("verify: %v", err)
				case rep.Events != want:
					t.Fatalf("%d events, want %d", rep.Events, want)
				}
			}
		})
	}
}

// batchWithIDs is storetest.Batch(from, len(ids)) with the entries' ids replaced by ids.
func batchWithIDs(from int64, ids ...string) store.Batch {
	b := storetest.Batch(from, int64(len(ids)))
	for i, id := range ids {
		b.Entries[i].ID = id
	}
	return b
}

// An id is refused as a duplicate whether it waits in the intake, is already in the database or
// repeats within the batch; nothing of a refused batch is written.
func TestDuplicateIDsAcrossTheIntake(t *testing.T) {
	ctx := context.Background()
	st := open(t).(*sqlite.Store)
	if err := st.Append(ctx, batchWithIDs(0, "a", "b")); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Size(ctx); err != nil { // a read waits until they are applied
		t.Fatal(err)
	}
	sqlite.HoldApplier(st)
	if err := st.Append(ctx, batchWithIDs(2, "c")); err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string]store.Batch{
		"in the database":  batchWithIDs(3, "x", "a"),
		"in the intake":    batchWithIDs(3, "c", "y"),
		"within the batch": batchWithIDs(3, "z", "z"),
	} {
		if err := st.Append(ctx, b); !errors.Is(err, store.ErrDuplicateID) {
			t.Errorf("%s: %v, want store.ErrDuplicateID", name, err)
		}
	}
	sqlite.ReleaseApplier(st)
	if err := st.Append(ctx, batchWithIDs(3, "x", "y", "z")); err != nil {
		t.Fatalf("the ids of refused batches were kept: %v", err)
	}
	if n, err := st.Size(ctx); err != nil || n != 6 {
		t.Fatalf("size %d, %v; want 6", n, err)
	}
}

// A read waits for what was acknowledged before it: it never answers without it. Held, the
// applier keeps a read waiting until its context ends; released, the read sees the event.
func TestReadsWaitForTheApplier(t *testing.T) {
	ctx := context.Background()
	st := open(t).(*sqlite.Store)
	sqlite.HoldApplier(st)
	if err := st.Append(ctx, batchWithIDs(0, "a")); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := st.EntryByID(short, "a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a read with the applier held: %v, want the context's deadline", err)
	}
	sqlite.ReleaseApplier(st)
	if e, err := st.EntryByID(ctx, "a"); err != nil || e.Seq != 0 {
		t.Fatalf("after release: %+v, %v", e, err)
	}
}

// Another process (here another Store on the file) that opens while the writer runs sees
// everything acknowledged before it opened: the open waits for the writer's applier.
func TestReadOnlyOpenWaitsForTheWriter(t *testing.T) {
	ctx := context.Background()
	st := open(t).(*sqlite.Store)
	sqlite.HoldApplier(st)
	if err := st.Append(ctx, batchWithIDs(0, "a", "b")); err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(100 * time.Millisecond)
		sqlite.ReleaseApplier(st)
		close(released)
	}()
	ro, err := sqlite.Open(ctx, sqlite.Config{Path: sqlite.PathOf(st), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	select {
	case <-released:
	default:
		t.Fatal("the read-only open returned before the writer had inserted what it acknowledged")
	}
	if n, err := ro.Size(ctx); err != nil || n != 2 {
		t.Fatalf("a reader opened after two acknowledged events: size %d, %v", n, err)
	}
}

// One writer per file: a second read-write open is refused while the first is open.
func TestSecondWriterRefused(t *testing.T) {
	st := open(t).(*sqlite.Store)
	if err := st.Append(context.Background(), batchWithIDs(0, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := sqlite.Open(context.Background(), sqlite.Config{Path: sqlite.PathOf(st)}); !errors.Is(err, sqlite.ErrWriting) {
		t.Fatalf("second writer: %v, want sqlite.ErrWriting", err)
	}
}

// A purge's erasure empties the intake first, so the erased body is not left in it.
func TestEraseEmptiesTheIntake(t *testing.T) {
	ctx := context.Background()
	st := open(t).(*sqlite.Store)
	b := storetest.Batch(0, 2)
	b.Entries[0].Body = []byte(`{"id":"id-0","kind":"custom","output_text":"erase-me-please"}`)
	b.Entries[1].Body = []byte(`{"id":"id-1","kind":"purge"}`)
	if err := st.Append(ctx, b); err != nil {
		t.Fatal(err)
	}
	if n, err := st.Erase(ctx, 1, [][2]int64{{0, 0}}); err != nil || n != 1 {
		t.Fatalf("erase: %d, %v", n, err)
	}
	for _, p := range sqlite.IntakePaths(sqlite.PathOf(st)) {
		if data, _ := os.ReadFile(p); bytes.Contains(data, []byte("erase-me-please")) {
			t.Errorf("the erased body is still in %s", p)
		}
	}
}

// When the database cannot take acknowledged events (a full disk), the store fails closed:
// further appends and reads fail with store.ErrNoSpace instead of acknowledging more or
// answering without them; Close keeps them in the intake, and the next open applies them.
func TestFullDatabaseFailsClosed(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	st, err := sqlite.Open(ctx, sqlite.Config{Path: path, MaxPages: 60})
	if err != nil {
		t.Fatal(err)
	}
	var acked int64
	for ; ; acked += 10 {
		b := storetest.Batch(acked, 10)
		for i := range b.Entries {
			b.Entries[i].Body = fmt.Appendf(nil, `{"id":"id-%d","kind":"custom","output_text":%q}`, acked+int64(i), strings.Repeat("z", 2000))
		}
		err := st.Append(ctx, b)
		if errors.Is(err, store.ErrNoSpace) {
			break
		}
		if err != nil {
			t.Fatalf("append: %v, want store.ErrNoSpace in time", err)
		}
		if acked > 10000 {
			t.Fatal("the cap never filled")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := st.Size(ctx); !errors.Is(err, store.ErrNoSpace) && acked > 0 {
		// The failed apply may have been the very last: then nothing waits, and reads work.
		if n, err2 := st.Size(ctx); err2 != nil || n != acked {
			t.Fatalf("a read after the full disk: %v (size %d, %v); want store.ErrNoSpace or all %d events", err, n, err2, acked)
		}
	}
	st.Close()
	st, err = sqlite.Open(ctx, sqlite.Config{Path: path})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if n, err := st.Size(ctx); err != nil || n != acked {
		t.Fatalf("after the disk was freed: size %d, %v; want the %d acknowledged", n, err, acked)
	}
}

// A read-only volume whose intake holds acknowledged events cannot be opened read-only without
// them: the open fails, saying why.
func TestReadOnlyVolumeWithIntake(t *testing.T) {
	dir, _, _ := killedWriter(t, 20, 100)
	mnt := testenv.MountTmpfs(t, "16m")
	for _, name := range []string{"ledger.db", "ledger.db-wal", "ledger.db-shm", "ledger.db-intake-0", "ledger.db-intake-1"} {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(mnt, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	testenv.RemountReadOnly(t, mnt)
	_, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(mnt, "ledger.db"), ReadOnly: true})
	if !errors.Is(err, store.ErrReadOnly) || !strings.Contains(err.Error(), "acknowledged events from seq 20") {
		t.Fatalf("read-only open of a read-only volume with a full intake: %v", err)
	}
}

func FuzzDecodeRecord(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, 24))
	f.Add(append(binary.LittleEndian.AppendUint64(binary.LittleEndian.AppendUint32(binary.LittleEndian.AppendUint64(nil, 5), 1), 0), 0, 0, 0, 0, 1, 0, 0, 0, 'a', 0, 0, 0, 0, 2, 0, 0, 0, '{', '}'))
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := sqlite.DecodeRecord(p)
		if err != nil {
			return
		}
		if len(b.Entries) == 0 {
			t.Fatal("a record without entries was accepted")
		}
		for i, e := range b.Entries {
			if e.Seq != b.Entries[0].Seq+int64(i) {
				t.Fatalf("entry %d has seq %d", i, e.Seq)
			}
		}
	})
}

// A read-only open that finds a writer running waits for it to insert what it acknowledged;
// when the writer is killed during that wait, the open applies what the writer left in the
// intake, as an open after the crash would, instead of giving up without those events.
func TestReadOnlyOpenOutlivesTheWriter(t *testing.T) {
	cmd, dir, v, acked := runningWriter(t, 20, 200)
	go func() {
		time.Sleep(300 * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
	}()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "ledger.db"), ReadOnly: true})
	if err != nil {
		t.Fatalf("read-only open while the writer was killed: %v", err)
	}
	defer st.Close()
	rep, err := ledger.Verify(ctx, st, v, ledger.VerifyOptions{})
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if rep.Events != acked {
		t.Fatalf("a read-only open that outlived the writer sees %d events, %d were acknowledged", rep.Events, acked)
	}
}

// An open that fails (here on a damaged intake) lets go of the intake: once the damage is
// repaired, the next open in the same process succeeds instead of finding the file held by a
// writer (the failed open's lock) and failing with ErrWriting.
func TestFailedOpenReleasesTheIntake(t *testing.T) {
	dir, v, acked := killedWriter(t, 20, 200)
	path := filepath.Join(dir, "ledger.db")
	intake := sqlite.IntakePaths(path)[0]
	good, err := os.ReadFile(intake)
	if err != nil {
		t.Fatal(err)
	}
	offs, lens := records(t, good)
	bad := bytes.Clone(good)
	bad[offs[3]+lens[3]/2] ^= 1
	if err := os.WriteFile(intake, bad, 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := sqlite.Open(context.Background(), sqlite.Config{Path: path}); err == nil {
		st.Close()
		t.Fatal("the damaged intake was accepted")
	}
	if err := os.WriteFile(intake, good, 0o600); err != nil {
		t.Fatal(err)
	}
	verifyAll(t, dir, v, false, acked)
}

// TestIntakeSyncFailChild is the writer TestFailedSyncThenSwitch kills: its current intake
// file is past the switch size while the other holds unapplied records; an fdatasync fails
// (the record it wrote is whole, never acknowledged); once the other file is applied, a
// smaller batch with the same seqs is appended and acknowledged, and it waits to be killed.
func TestIntakeSyncFailChild(t *testing.T) {
	dir := os.Getenv("AGENTAUDIT_SYNCFAIL_DIR")
	if dir == "" {
		t.Skip("run by TestFailedSyncThenSwitch")
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "ledger.db")})
	if err != nil {
		t.Fatal(err)
	}
	var next int64
	batch := func(prefix string, n int64) store.Batch {
		b := storetest.Batch(next, n)
		for i := range b.Entries {
			id := fmt.Sprintf("%s-%d", prefix, next+int64(i))
			b.Entries[i].ID = id
			b.Entries[i].Body = fmt.Appendf(nil, `{"id":%q,"kind":"custom","output_text":%q}`, id, strings.Repeat("p", 4000))
		}
		return b
	}
	app := func(n int64) {
		if err := st.Append(ctx, batch("ev", n)); err != nil {
			fmt.Println("append:", err)
			os.Exit(3)
		}
		next += n
	}
	for _, off := sqlite.IntakeEnd(st); off < sqlite.IntakeSwitch-(256<<10); _, off = sqlite.IntakeEnd(st) {
		app(16)
	}
	sqlite.HoldApplier(st) // the first file keeps unapplied records
	for file, _ := sqlite.IntakeEnd(st); file == 0; file, _ = sqlite.IntakeEnd(st) {
		app(16)
	}
	for _, off := sqlite.IntakeEnd(st); off < sqlite.IntakeSwitch; _, off = sqlite.IntakeEnd(st) {
		app(16)
	}
	sqlite.FailNextSync(st, syscall.EIO)
	if err := st.Append(ctx, batch("failed", 16)); err == nil {
		fmt.Println("append with a failed fdatasync succeeded")
		os.Exit(3)
	}
	sqlite.ReleaseApplier(st)
	if _, err := st.Size(ctx); err != nil { // everything acknowledged is applied: both files free
		fmt.Println("size:", err)
		os.Exit(3)
	}
	sqlite.HoldApplier(st)
	if err := st.Append(ctx, batch("acked", 4)); err != nil {
		fmt.Println("append:", err)
		os.Exit(3)
	}
	fmt.Printf("acked %d\n", next+4)
	select {}
}

// An fdatasync that fails leaves a whole record that was never acknowledged; the next batch
// reuses its seqs. Written to the other intake file (a switch), that acknowledged batch was
// lost after a crash: the open applied the failed record in its place, or refused the intake.
// The end now stays on the failed record until a record overwrites it.
func TestFailedSyncThenSwitch(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestIntakeSyncFailChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), "AGENTAUDIT_SYNCFAIL_DIR="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }()
	sc := bufio.NewScanner(out)
	var acked int64
	if !sc.Scan() {
		t.Fatal("the child said nothing")
	}
	if _, err := fmt.Sscanf(sc.Text(), "acked %d", &acked); err != nil {
		t.Fatalf("child: %s", sc.Text())
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "ledger.db")})
	if err != nil {
		t.Fatalf("open after the kill: %v", err)
	}
	defer st.Close()
	if n, err := st.Size(ctx); err != nil || n != acked {
		t.Fatalf("after the kill: size %d, %v; want the %d acknowledged", n, err, acked)
	}
	for seq := acked - 4; seq < acked; seq++ {
		if e, err := st.Entry(ctx, seq); err != nil || e.ID != fmt.Sprintf("acked-%d", seq) {
			t.Errorf("seq %d is %q, %v; want the acknowledged acked-%d", seq, e.ID, err, seq)
		}
	}
}

// An append whose fdatasync failed left its record in the intake, whole: the idle emptying
// skipped an intake whose end was still at its start, so the failed batch's bodies stayed on
// disk and a crash would later apply the batch, though it was never acknowledged.
func TestIdleEmptiesAFailedWrite(t *testing.T) {
	ctx := context.Background()
	st := open(t).(*sqlite.Store)
	sqlite.FailNextSync(st, syscall.EIO)
	b := batchWithIDs(0, "failed")
	b.Entries[0].Body = []byte(`{"id":"failed","kind":"custom","output_text":"not-acknowledged"}`)
	if err := st.Append(ctx, b); err == nil {
		t.Fatal("an append whose fdatasync failed succeeded")
	}
	path := sqlite.IntakePaths(sqlite.PathOf(st))[0]
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte("not-acknowledged")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the failed append's record is still in the intake long after the store went idle")
		}
	}
}
