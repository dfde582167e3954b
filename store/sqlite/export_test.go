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
