// Package store defines what the ledger keeps on disk, independent of the database that keeps it:
// the Entry and Checkpoint records and the errors every driver returns. Drivers live below it
// (store/sqlite is the embedded default) and all pass the conformance suite in store/storetest.
//
// The interfaces a driver satisfies are defined by their consumers (ledger.Store), as
// golang.org/x/mod/sumdb/tlog asks only for a HashReader.
package store

import (
	"time"

	"errors"

	"golang.org/x/mod/sumdb/tlog"
)

// Entry is one committed event: its position, id, salt and canonical bytes.
// Leaf is the RFC 6962 leaf hash of Salt ‖ Body; drivers store it only as tree hash level 0.
//
// A purged entry (retention or erasure) keeps its Seq and ID and its leaf in the tree hashes;
// its Salt and Body are gone (nil) and PurgedBy is the seq of the purge event that explains it.
type Entry struct {
	Seq      int64
	ID       string
	Salt     []byte
	Body     []byte // RFC 8785 canonical JSON of the event
	PurgedBy int64  // 0: intact
	// Cols are the entry's query columns. The ledger sets them at append (computed from Body
	// off the commit path); a driver computes them when they are nil. ScanEntries returns them
	// from a driver that stores them beside the body, nil from one that derives them inside
	// the database; there they are valid only during the call.
	Cols *Columns
}

// Purged reports whether the entry's body and salt were erased.
func (e Entry) Purged() bool { return e.PurgedBy > 0 }

// Checkpoint is a signed tree head: the C2SP tlog-checkpoint note text with its signatures.
type Checkpoint struct {
	Size int64
	Note []byte
}

// Batch is what one ledger transaction commits: entries numbered from Entries[0].Seq, and the
// tree hashes they complete, numbered from FirstHash (tlog stored-hash indexes, consecutive).
type Batch struct {
	Entries   []Entry
	FirstHash int64
	Hashes    []tlog.Hash
}

// Errors every driver returns, wrapped with detail.
var (
	// ErrNotFound: no entry or checkpoint matches.
	ErrNotFound = errors.New("not found")
	// ErrDuplicateID: an entry of the batch has an id that is already stored; nothing was written.
	ErrDuplicateID = errors.New("duplicate event id")
	// ErrOutOfOrder: a batch does not continue the log exactly where it ends; nothing was written.
	ErrOutOfOrder = errors.New("batch does not continue the log")
	// ErrReadOnly: the store was opened read-only or its files cannot be written.
	ErrReadOnly = errors.New("store is read-only")
	// ErrNoSpace: the disk is full; nothing of the batch was written.
	ErrNoSpace = errors.New("no space left on the data volume")
	// ErrNotPurgeable: an erasure names a purge event that is not stored, or that does not
	// come after an entry it would erase; nothing was erased.
	ErrNotPurgeable = errors.New("not purgeable")
	// ErrUnavailable: the database could not be reached or lost the connection (a restart, a
	// network failure). Whether a write that failed so was committed is unknown until the store
	// answers again; a caller retries later (servers answer 503 with Retry-After).
	ErrUnavailable = errors.New("database unavailable")
)

// Filter selects events; empty fields do not filter. Results come in seq order.
type Filter struct {
	SessionID, UserID, AgentID, Model, ToolName, SubjectType, SubjectID, Kind, Outcome string
	// Since and Until bound the event time: Since <= time < Until. Zero means unbounded. Drivers
	// compare in whole milliseconds, the time and both bounds truncated as time.Time.UnixMilli
	// does, so that an index can hold the time as an integer.
	Since, Until time.Time
	// Failures keeps only failed actions: outcome error or denied, success false, or kind error.
	Failures bool
	// FromSeq keeps only seq >= FromSeq (the pagination cursor).
	FromSeq int64
	// Limit caps the number of results; 0 means no limit.
	Limit int
}

// Due is an intact entry whose retention has run out: what a purge plan weighs.
type Due struct {
	Seq   int64
	Class string
	Until time.Time
}

// ClassCount is how many intact entries of one retention class there are, the earliest
// retain_until among them, and how many are due at a given time.
type ClassCount struct {
	Class     string
	Events    int64
	NextUntil time.Time
	Due       int64
}

// ToolCall is the slice of a tool_call event that tool statistics need. It is passed by value
// and its strings are interned by the driver: statistics scan every call, so no field may cost an
// allocation per row (within one scan, equal strings share their bytes).
type ToolCall struct {
	Tool        string
	UserID      string  // "" when the event has none
	DurationMS  float64 // the event's duration_ms, when HasDuration
	HasDuration bool
	Success     int8 // 1 true, 0 false, -1 absent
}
