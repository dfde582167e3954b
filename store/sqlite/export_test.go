package sqlite

import (
	"context"
	"os"

	"github.com/agentaudit/agentaudit/store"
)

// MigrateTo builds a file of an older schema version, to test the migrations from it.
var MigrateTo = migrate

// FindQuery is the statement Find runs, for query-plan tests.
var FindQuery = findQuery

// QueryCols are the query columns an INSERT names, in the order columnsSQL computes them.
var QueryCols = queryCols

// HoldApplier stops the applier from inserting, as a crash right after acknowledging would:
// what is appended then stays in the intake only. A read waits until ReleaseApplier.
func HoldApplier(s *Store) {
	s.pmu.Lock()
	s.held = true
	s.pmu.Unlock()
}

// ReleaseApplier lets the applier insert again.
func ReleaseApplier(s *Store) {
	s.pmu.Lock()
	s.held = false
	s.pmu.Unlock()
	s.wakeUp()
}

// IntakeSwitch is the size past which appends move to the other intake file.
const IntakeSwitch = intakeSwitch

// DecodeRecord decodes an intake record's payload, for the fuzz test.
var DecodeRecord = decodeRecord

// PathOf is the database file of s.
func PathOf(s *Store) string { return s.path }

// CheckIDs is Append's duplicate check, for its benchmark.
func CheckIDs(s *Store, entries []store.Entry) error {
	return s.checkIDs(context.Background(), entries)
}

// IntakeEnd is where the next intake record goes: the file and the offset in it.
func IntakeEnd(s *Store) (file int, off int64) {
	s.amu.Lock()
	defer s.amu.Unlock()
	return s.in.cur, s.in.off
}

// FailNextSync makes the intake's next fdatasync fail with err, after its write has gone to the
// file, as a failing disk does; the one after succeeds again.
func FailNextSync(s *Store, err error) {
	s.amu.Lock()
	defer s.amu.Unlock()
	s.in.sync = func(*os.File) error {
		s.in.sync = fdatasync
		return err
	}
}

// WaitIDFilter waits until Append's id filter has loaded, or failed to, and reports which.
func WaitIDFilter(s *Store) bool {
	<-s.filterDone
	return s.filter.ready.Load()
}

// Lookups counts the ids Append has asked the id index about.
func Lookups(s *Store) int64 { return s.lookups.Load() }

// PauseIDScan makes every id filter's load call pause while reading the database, its snapshot
// open, until the test ends.
func PauseIDScan(t interface{ Cleanup(func()) }, pause func()) {
	idScanPause = pause
	t.Cleanup(func() { idScanPause = nil })
}

// NewIDFilter and the methods below are the filter alone, for its own test.
func NewIDFilter(ids int64) *idFilter      { return newIDFilter(ids) }
func (f *idFilter) Add(id string)          { f.add(id) }
func (f *idFilter) MayHold(id string) bool { return f.mayHold(id) }
func (f *idFilter) Parts() int             { return len(f.parts) }
