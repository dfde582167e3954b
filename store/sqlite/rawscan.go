package sqlite

import (
	"context"
	"errors"
	"fmt"
	"unsafe"

	"modernc.org/libc"
	sqlite3 "modernc.org/sqlite/lib"
)

// The full scans (ScanEntries, ScanHashes: verification, migration, alert catch-up) read
// through SQLite's C API, on a connection of their own, instead of through database/sql.
//
// Why: stepping the events table through database/sql costs ~4.5 µs a row on these machines, and
// SQLite's own step is a quarter of it. The rest is the driver converting every column to a Go
// value (an allocation per text or blob, a mutex taken per column call since the driver opens
// every connection with SQLITE_OPEN_FULLMUTEX) and database/sql's conversions on top. Here the
// connection is opened read-only with SQLITE_OPEN_NOMUTEX (one goroutine uses it), and a text
// or blob column is a view of SQLite's own buffer, valid until the next step, which is what
// ScanEntries promises its callers anyway.
//
// The connection reads the same file with the same settings as the store's readers (read-only,
// query_only, the file mapped, the same busy timeout), and each scan is one statement, so one
// read transaction: a consistent snapshot, as a database/sql query gives.

// rawConn is a read-only SQLite connection used by one goroutine.
type rawConn struct {
	tls *libc.TLS
	db  uintptr
}

// rawError is an error SQLite returned to a raw call; Code is SQLite's (extended) result code,
// as *sqlite.Error's, so mapErr treats both alike.
type rawError struct {
	code int
	msg  string
}

func (e *rawError) Error() string { return fmt.Sprintf("%s (%d)", e.msg, e.code) }
func (e *rawError) Code() int     { return e.code }

// openRaw opens path read-only for one goroutine's scans.
func openRaw(path string) (*rawConn, error) {
	c := &rawConn{tls: libc.NewTLS()}
	name, err := libc.CString("file:" + path + "?mode=ro")
	if err != nil {
		c.tls.Close()
		return nil, err
	}
	defer libc.Xfree(c.tls, name)
	pdb := c.tls.Alloc(int(unsafe.Sizeof(uintptr(0))))
	defer c.tls.Free(int(unsafe.Sizeof(uintptr(0))))
	rc := sqlite3.Xsqlite3_open_v2(c.tls, name, pdb, sqlite3.SQLITE_OPEN_READONLY|sqlite3.SQLITE_OPEN_NOMUTEX|sqlite3.SQLITE_OPEN_URI, 0)
	c.db = *(*uintptr)(ptr(pdb))
	if rc != sqlite3.SQLITE_OK {
		err := c.err(rc)
		c.close()
		return nil, err
	}
	sqlite3.Xsqlite3_extended_result_codes(c.tls, c.db, 1)
	sqlite3.Xsqlite3_busy_timeout(c.tls, c.db, busyTimeoutMS)
	for _, p := range []string{"PRAGMA query_only = 1", "PRAGMA mmap_size = 1099511627776"} {
		if err := c.exec(p); err != nil {
			c.close()
			return nil, err
		}
	}
	return c, nil
}

func (c *rawConn) close() {
	if c.db != 0 {
		sqlite3.Xsqlite3_close_v2(c.tls, c.db)
		c.db = 0
	}
	c.tls.Close()
}

// err describes the connection's last error, rc being the call's result code.
func (c *rawConn) err(rc int32) error {
	msg := libc.GoString(sqlite3.Xsqlite3_errstr(c.tls, rc))
	if c.db != 0 {
		if code := sqlite3.Xsqlite3_extended_errcode(c.tls, c.db); code == rc || code&0xff == rc&0xff {
			msg += ": " + libc.GoString(sqlite3.Xsqlite3_errmsg(c.tls, c.db))
			rc = code
		}
	}
	return &rawError{code: int(rc), msg: msg}
}

// exec runs a statement that returns no rows the caller needs.
func (c *rawConn) exec(query string) error {
	return c.query(context.Background(), query, nil, func(*rawStmt) error { return nil })
}

// query prepares query, binds args (integers), and calls fn for each row; the row's views die
// with the next step. ctx is checked every few thousand rows. An error of fn is returned as it
// is (callers stop scans with their own sentinels); SQLite's errors are *rawError.
func (c *rawConn) query(ctx context.Context, query string, args []int64, fn func(*rawStmt) error) error {
	zsql, err := libc.CString(query)
	if err != nil {
		return err
	}
	defer libc.Xfree(c.tls, zsql)
	pstmt := c.tls.Alloc(int(unsafe.Sizeof(uintptr(0))))
	defer c.tls.Free(int(unsafe.Sizeof(uintptr(0))))
	if rc := sqlite3.Xsqlite3_prepare_v2(c.tls, c.db, zsql, -1, pstmt, 0); rc != sqlite3.SQLITE_OK {
		return c.err(rc)
	}
	st := &rawStmt{tls: c.tls, p: *(*uintptr)(ptr(pstmt))}
	defer sqlite3.Xsqlite3_finalize(c.tls, st.p)
	for i, a := range args {
		if rc := sqlite3.Xsqlite3_bind_int64(c.tls, st.p, int32(i+1), a); rc != sqlite3.SQLITE_OK {
			return c.err(rc)
		}
	}
	for n := 0; ; n++ {
		if n&4095 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		switch rc := sqlite3.Xsqlite3_step(c.tls, st.p); rc {
		case sqlite3.SQLITE_ROW:
			if err := fn(st); err != nil {
				return err
			}
		case sqlite3.SQLITE_DONE:
			return nil
		default:
			return c.err(rc)
		}
	}
}

// rawStmt is the current row of a raw query.
type rawStmt struct {
	tls *libc.TLS
	p   uintptr
}

func (s *rawStmt) null(i int) bool {
	return sqlite3.Xsqlite3_column_type(s.tls, s.p, int32(i)) == sqlite3.SQLITE_NULL
}

func (s *rawStmt) int64(i int) int64 { return sqlite3.Xsqlite3_column_int64(s.tls, s.p, int32(i)) }

func (s *rawStmt) float64(i int) float64 {
	return sqlite3.Xsqlite3_column_double(s.tls, s.p, int32(i))
}

// bytes is column i's text or blob: a view of SQLite's buffer until the next step; nil for
// NULL, empty (not nil) for an empty value.
func (s *rawStmt) bytes(i int) []byte {
	p := sqlite3.Xsqlite3_column_blob(s.tls, s.p, int32(i))
	n := sqlite3.Xsqlite3_column_bytes(s.tls, s.p, int32(i))
	if p == 0 {
		if s.null(i) {
			return nil
		}
		return []byte{}
	}
	return unsafe.Slice((*byte)(ptr(p)), n)
}

// ptr turns an address SQLite returned into a pointer. The memory is SQLite's (allocated by
// modernc's libc outside the Go heap), so the garbage collector neither moves nor frees it;
// going through the variable's memory keeps go vet's unsafeptr check, meant for Go heap
// addresses, quiet.
func ptr(p uintptr) unsafe.Pointer { return *(*unsafe.Pointer)(unsafe.Pointer(&p)) }

// rawScanErr maps a raw scan's error: SQLite's through mapErr, the caller's own (returned by its
// fn, or the context's) as they are, as the database/sql scans returned them.
func rawScanErr(op string, err error) error {
	var re *rawError
	if errors.As(err, &re) {
		return mapErr(op, err)
	}
	return err
}
