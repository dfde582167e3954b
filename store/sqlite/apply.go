package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/agentaudit/agentaudit/store"
)

// Append makes the batch durable and returns: all of it or, on any error, none of it. The batch
// is checked (it continues the log, no id of it is stored) and written to the intake with one
// fdatasync (see intake.go); the applier inserts it into the database behind. Every read of this
// Store first waits for the applier to have inserted what was acknowledged when the read began,
// so a caller reads its own writes; another process sees what was acknowledged before it
// opened the file, and later events once applied (the package doc gives the bound).
func (s *Store) Append(ctx context.Context, b store.Batch) error {
	if s.w == nil {
		return fmt.Errorf("sqlite: append: %w", store.ErrReadOnly)
	}
	if len(b.Entries) == 0 {
		return nil
	}
	s.amu.Lock()
	defer s.amu.Unlock()
	s.pmu.Lock()
	closed, applyErr, acked := s.closed, s.applyErr, s.acked
	s.pmu.Unlock()
	switch {
	case closed:
		return errors.New("sqlite: append: the store is closed")
	case applyErr != nil:
		return fmt.Errorf("sqlite: append: acknowledged events wait to be inserted: %w", applyErr)
	case b.Entries[0].Seq != acked.entries || b.FirstHash != acked.hashes:
		return fmt.Errorf("sqlite: append at seq %d, hash %d; log ends at %d, %d: %w",
			b.Entries[0].Seq, b.FirstHash, acked.entries, acked.hashes, store.ErrOutOfOrder)
	}
	for i, e := range b.Entries {
		if e.Seq != acked.entries+int64(i) {
			return fmt.Errorf("sqlite: entry seq %d is not consecutive: %w", e.Seq, store.ErrOutOfOrder)
		}
	}
	if err := s.checkIDs(ctx, b.Entries); err != nil {
		return err
	}
	if err := s.waitBacklog(ctx); err != nil {
		return err
	}
	if err := s.makeRoom(ctx); err != nil {
		return err
	}
	rec, err := s.in.write(b)
	if err != nil {
		s.wakeUp() // its idle timer then empties what the write left
		return fileErr("sqlite: append", err)
	}
	// What the applier inserts: views of the record (the caller's slices are its own again once
	// Append returns) with copies of the query columns.
	p, err := decodeRecord(rec[intakeHeader:])
	if err != nil {
		return fmt.Errorf("sqlite: append: %w", err)
	}
	cols := make([]store.Columns, len(b.Entries))
	for i, e := range b.Entries {
		if e.Cols != nil {
			cols[i] = *e.Cols
			p.Entries[i].Cols = &cols[i]
		}
	}
	s.pmu.Lock()
	s.pending = append(s.pending, pending{p, s.in.cur})
	s.unapplied[s.in.cur]++
	for _, e := range p.Entries {
		s.ids[e.ID] = true
		s.filter.add(e.ID)
	}
	s.acked.entries += int64(len(b.Entries))
	s.acked.hashes += int64(len(b.Hashes))
	s.pmu.Unlock()
	s.wakeUp()
	return nil
}

func (s *Store) wakeUp() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Backlog is the number of acknowledged entries not yet in the database (0 read-only).
func (s *Store) Backlog() int64 {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return s.acked.entries - s.applied
}

// fileErr maps a failed intake file operation to the store's errors.
func fileErr(op string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%s: %w", op, errors.Join(store.ErrNoSpace, err))
	case errors.Is(err, syscall.EROFS), errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%s: %w", op, errors.Join(store.ErrReadOnly, err))
	}
	return fmt.Errorf("%s: %w", op, err)
}

// checkIDs fails with store.ErrDuplicateID when an id of entries is repeated in them, waits to
// be applied, or is in the database. The pending ids are looked at first: an id leaves them
// only once the database has it.
func (s *Store) checkIDs(ctx context.Context, entries []store.Entry) error {
	dup := func() error {
		return fmt.Errorf("sqlite: append: an id of the batch is stored already: %w", store.ErrDuplicateID)
	}
	var seen map[string]bool
	if len(entries) > 1 {
		seen = make(map[string]bool, len(entries))
	}
	s.pmu.Lock()
	for _, e := range entries {
		if s.ids[e.ID] || seen[e.ID] {
			s.pmu.Unlock()
			return dup()
		}
		if seen != nil {
			seen[e.ID] = true
		}
	}
	s.pmu.Unlock()
	var ask []string // the ids the id index must answer for
	loaded := s.filter.ready.Load()
	for _, e := range entries {
		if !loaded || s.filter.mayHold(e.ID) {
			ask = append(ask, e.ID)
		}
	}
	s.lookups.Add(int64(len(ask)))
	args := make([]any, 0, chunk)
	for i := 0; i < len(ask); i += chunk {
		part := ask[i:min(i+chunk, len(ask))]
		st, err := s.stmt(ctx, s.r, "SELECT EXISTS (SELECT 1 FROM events WHERE id IN ("+strings.TrimSuffix(strings.Repeat("?,", len(part)), ",")+"))")
		if err != nil {
			return mapErr("sqlite: prepare", err)
		}
		args = args[:0]
		for _, id := range part {
			args = append(args, id)
		}
		var found bool
		if err := st.QueryRowContext(ctx, args...).Scan(&found); err != nil {
			return mapErr("sqlite: append: look up ids", err)
		}
		if found {
			return dup()
		}
	}
	return nil
}

// makeRoom moves the intake's end to the other file's start once the current file has passed
// intakeSwitch and every record of the other is applied; past intakeCap it waits for that.
// It never moves after a failed write: the next record must overwrite what that write left,
// a record the next open would otherwise apply in place of the acknowledged one with its seqs.
func (s *Store) makeRoom(ctx context.Context) error {
	if s.in.off < intakeSwitch || s.in.torn {
		return nil
	}
	if s.in.off >= intakeCap {
		if err := s.caughtUp(ctx); err != nil {
			return err
		}
	}
	s.pmu.Lock()
	free := s.unapplied[1-s.in.cur] == 0
	s.pmu.Unlock()
	if free {
		s.in.cur, s.in.off = 1-s.in.cur, 0
	}
	return nil
}

// emptyIntake truncates the intake once everything acknowledged is in the database: before an
// erasure, so that no erased body stays in it.
func (s *Store) emptyIntake(ctx context.Context) error {
	s.amu.Lock()
	defer s.amu.Unlock()
	if err := s.caughtUp(ctx); err != nil {
		return err
	}
	if err := s.in.empty(); err != nil {
		return fileErr("sqlite: empty the intake", err)
	}
	return nil
}

// waitBacklog holds an Append while maxBacklog acknowledged entries wait for the applier:
// ingest cannot outrun the database for long, and a read never waits behind more than that.
func (s *Store) waitBacklog(ctx context.Context) error {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for s.acked.entries-s.applied >= maxBacklog {
		if s.applyErr != nil {
			return fmt.Errorf("sqlite: append: acknowledged events wait to be inserted: %w", s.applyErr)
		}
		if err := s.waitProgress(ctx); err != nil {
			return err
		}
	}
	return nil
}

// waitProgress, called and returning with pmu held, hurries the applier and waits for it to
// move (or fail).
func (s *Store) waitProgress(ctx context.Context) error {
	select {
	case s.hurry <- struct{}{}:
	default:
	}
	ch := s.progress
	s.pmu.Unlock()
	defer s.pmu.Lock()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// caughtUp waits until the database holds every entry acknowledged before the call. It fails
// while the applier cannot insert them (a full disk, say), rather than let a read miss them.
func (s *Store) caughtUp(ctx context.Context) error {
	if s.applier == nil {
		return nil // read-only: nothing is appended here
	}
	s.pmu.Lock()
	defer s.pmu.Unlock()
	for target := s.acked.entries; s.applied < target; {
		if s.applyErr != nil {
			return fmt.Errorf("sqlite: %d acknowledged events are not in the database yet: %w", target-s.applied, s.applyErr)
		}
		if err := s.waitProgress(ctx); err != nil {
			return err
		}
	}
	return nil
}

// recoverIntake, at a read-only open, applies the events a writer acknowledged and left in the
// intake when it stopped without closing (a crash), as SQLite's readers roll back a hot
// journal: a read-only open then sees every acknowledged event. A writer that is still running
// holds the intake's lock and applies them itself; the reader sees what it has applied. On a
// volume that cannot be written, the open fails when the intake holds events.
func (s *Store) recoverIntake(ctx context.Context) error {
	var held int64 // bytes in the intake files: none after a clean close
	for _, p := range IntakePaths(s.path) {
		if fi, err := os.Stat(p); err == nil {
			held += fi.Size()
		}
	}
	if held == 0 {
		return nil
	}
	// A running writer holds the lock (and its intake changes under a reader): leave it be.
	f, err := os.Open(IntakePaths(s.path)[0])
	if err != nil {
		return fmt.Errorf("sqlite: intake: %w", err)
	}
	free, err := tryLock(f)
	defer f.Close()
	if err != nil {
		return err
	}
	if !free {
		// The writer may die while we wait for it: then we hold its lock, and recover as
		// after any crash.
		if free, err = s.waitForWriter(ctx, f); err != nil || !free {
			return err
		}
	}
	size, _, err := tail(ctx, s.r, "sqlite: open")
	if err != nil {
		return err
	}
	batches, err := readIntake(s.path, size, false)
	if err != nil || len(batches) == 0 {
		return err
	}
	f.Close() // the writer below takes the lock
	w, err := Open(ctx, Config{Path: s.path})
	if errors.Is(err, ErrWriting) {
		// A writer started meanwhile: it applies the intake first; wait for that as for any
		// running writer rather than read without those events.
		_, err := s.waitForWriter(ctx, nil)
		return err
	}
	if errors.Is(err, store.ErrReadOnly) {
		return fmt.Errorf("sqlite: the intake of %s holds acknowledged events from seq %d not yet in the database, and the volume cannot be written to apply them: open it once for writing where it can be: %w",
			s.path, size, err)
	}
	if err != nil {
		return err
	}
	return w.Close()
}

// waitForWriter, at a read-only open beside a running writer, waits until the database holds
// what the writer had acknowledged when the open began (its applier inserts it within
// applyLinger and one transaction), so that a process reads what another wrote before it
// started: `agentaudit append` then `agentaudit timeline`, say. It gives up after
// writerWait (a writer that cannot insert, on a full disk), leaving the reader what the
// database has. While it waits it tries the intake's lock on lock: it reports free, holding
// the lock, when the writer stopped without inserting everything (killed), for the caller to
// apply the intake as after any crash.
func (s *Store) waitForWriter(ctx context.Context, lock *os.File) (free bool, err error) {
	size := func() (int64, error) {
		n, _, err := tail(ctx, s.r, "sqlite: open")
		return n, err
	}
	// The files first, then the size: a record the writer overwrites after the files are read
	// is applied by then, so no gap opens between the size and the records.
	all, err := scanIntake(s.path)
	if err != nil {
		return false, err
	}
	n, err := size()
	if err != nil {
		return false, err
	}
	batches, err := chainIntake(s.path, all, n, true)
	if err != nil || len(batches) == 0 {
		return false, err
	}
	last := batches[len(batches)-1]
	target := last.Entries[0].Seq + int64(len(last.Entries))
	for deadline := time.Now().Add(writerWait); n < target && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
		if n, err = size(); err != nil || n >= target {
			return false, err
		}
		if lock != nil {
			if free, err := tryLock(lock); err != nil || free {
				return free, err
			}
		}
	}
	return false, nil
}

// ErrWriting: another Store, in this process or another, has the file open for writing.
var ErrWriting = errors.New("the database is open for writing elsewhere")

const (
	// applyRetry is how long the applier waits before trying a failed insert again.
	applyRetry = 200 * time.Millisecond
	// applyLinger is how long the applier waits for more Appends before inserting, when no
	// read waits (see apply).
	applyLinger = 50 * time.Millisecond
	// intakeIdle is how long the log stays idle, everything applied, before the intake files
	// are emptied.
	intakeIdle = time.Second
	// lockWait is how long an open for writing waits for the intake's lock before it reports
	// another writer.
	lockWait = 5 * time.Second
	// writerWait is how long a read-only open waits for a running writer to insert what it
	// acknowledged (see waitForWriter).
	writerWait = 5 * time.Second
)

// startApplier inserts what the intake holds beyond the database (acknowledged before a crash),
// empties it, and starts the applier. It holds the intake's lock until Close: one writer per file.
func (s *Store) startApplier(ctx context.Context) error {
	var err error
	if s.in, err = openIntake(s.path); err != nil {
		return err
	}
	// A reader recovering after a crash holds the lock for a moment (recoverIntake); a writer
	// holds it until it closes.
	for wait := time.Now().Add(lockWait); ; time.Sleep(10 * time.Millisecond) {
		ok, err := tryLock(s.in.f[0])
		if err != nil {
			return fmt.Errorf("sqlite: lock the intake: %w", err)
		}
		if ok {
			break
		}
		if time.Now().After(wait) {
			return fmt.Errorf("sqlite: %s: %w", s.path, ErrWriting)
		}
	}
	next, _, err := tail(ctx, s.w, "sqlite: open")
	if err != nil {
		return err
	}
	batches, err := readIntake(s.path, next, false)
	if err != nil {
		return err
	}
	// Many records per transaction, as the applier does: recovery after a crash is quick.
	for len(batches) > 0 {
		var b store.Batch
		for len(batches) > 0 && (len(b.Entries) == 0 || len(b.Entries)+len(batches[0].Entries) <= applyMax) {
			joinBatch(&b, batches[0])
			batches = batches[1:]
		}
		if err := s.insert(ctx, b); err != nil {
			return fmt.Errorf("sqlite: apply the intake's events from seq %d: %w", b.Entries[0].Seq, err)
		}
	}
	if err := s.in.empty(); err != nil {
		return fileErr("sqlite: empty the intake", err)
	}
	next, nextHash, err := tail(ctx, s.w, "sqlite: open")
	if err != nil {
		return err
	}
	s.acked.entries, s.acked.hashes, s.applied = next, nextHash, next
	s.ids = map[string]bool{}
	s.progress = make(chan struct{})
	s.wake, s.hurry = make(chan struct{}, 1), make(chan struct{}, 1)
	s.stop, s.applier = make(chan struct{}), make(chan struct{})
	go s.apply()
	return nil
}

// apply is the applier: it inserts pending batches, many in one transaction, until stopped.
// Woken by an Append, it lingers up to applyLinger for more, unless a read waits or applyMax
// entries are pending: one transaction of many events touches each index page once, where one
// per Append writes and fsyncs every page its few events touch.
func (s *Store) apply() {
	defer close(s.applier)
	linger, idle := time.NewTimer(applyLinger), time.NewTimer(intakeIdle)
	for {
		select {
		case <-s.wake:
		case <-s.hurry:
		case <-idle.C:
			s.emptyIfIdle()
			continue
		case <-s.stop:
			s.applyPending() // what was acknowledged before Close
			return
		}
		linger.Reset(applyLinger)
	wait:
		for {
			s.pmu.Lock()
			full := s.acked.entries-s.applied >= applyMax
			s.pmu.Unlock()
			if full {
				break
			}
			select {
			case <-s.wake:
			case <-s.hurry:
				break wait
			case <-linger.C:
				break wait
			case <-s.stop:
				s.applyPending()
				return
			}
		}
		linger.Stop()
		for !s.applyPending() {
			select {
			case <-time.After(applyRetry):
			case <-s.stop:
				s.applyPending()
				return
			}
		}
		idle.Reset(intakeIdle)
	}
}

// emptyIfIdle empties the intake when no Append is under way and everything is applied,
// including what a failed write left (a batch never acknowledged, its bodies on disk).
func (s *Store) emptyIfIdle() {
	if !s.amu.TryLock() {
		return
	}
	defer s.amu.Unlock()
	s.pmu.Lock()
	drained := s.applied == s.acked.entries && s.applyErr == nil
	s.pmu.Unlock()
	if drained && (s.in.off > 0 || s.in.cur != 0 || s.in.torn) {
		s.in.empty() // a failure leaves only applied records, emptied next time
	}
}

// joinBatch appends next, which continues b, to b.
func joinBatch(b *store.Batch, next store.Batch) {
	if len(b.Entries) == 0 {
		b.FirstHash = next.FirstHash
	}
	b.Entries = append(b.Entries, next.Entries...)
	b.Hashes = append(b.Hashes, next.Hashes...)
}

// applyPending inserts the pending batches, applyMax entries at a time, and reports whether all
// went in.
func (s *Store) applyPending() bool {
	for {
		s.pmu.Lock()
		if s.held {
			s.pmu.Unlock()
			return true
		}
		var b store.Batch
		n := 0
		for _, p := range s.pending {
			if len(b.Entries) > 0 && len(b.Entries)+len(p.Entries) > applyMax {
				break
			}
			joinBatch(&b, p.Batch)
			n++
		}
		s.pmu.Unlock()
		if n == 0 {
			return true
		}
		err := s.insert(context.Background(), b)
		s.pmu.Lock()
		if err == nil {
			for _, p := range s.pending[:n] {
				for _, e := range p.Entries {
					delete(s.ids, e.ID)
				}
				s.unapplied[p.file]--
			}
			s.pending = append(s.pending[:0:0], s.pending[n:]...)
			s.applied += int64(len(b.Entries))
		}
		s.applyErr = err
		close(s.progress)
		s.progress = make(chan struct{})
		s.pmu.Unlock()
		if err != nil {
			return false
		}
	}
}

// stopApplier stops the applier once it has inserted what was acknowledged, and empties the
// intake. When the database could not take everything (a full disk), the intake keeps it for
// the next open, and the error says so.
func (s *Store) stopApplier() error {
	s.pmu.Lock()
	already := s.closed
	s.closed = true
	s.pmu.Unlock()
	if already {
		return nil
	}
	s.amu.Lock() // no Append is half-way
	defer s.amu.Unlock()
	close(s.stop)
	<-s.applier
	s.pmu.Lock()
	err, left := s.applyErr, s.acked.entries-s.applied
	s.pmu.Unlock()
	if left > 0 {
		return errors.Join(fmt.Errorf("sqlite: close: %d acknowledged events stay in the intake for the next open: %w", left, err), s.in.close())
	}
	if err := s.in.empty(); err != nil {
		return errors.Join(fileErr("sqlite: close: empty the intake", err), s.in.close())
	}
	return s.in.close()
}
