package sqlite

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/store"
)

// The intake is where Append makes a batch durable: one write and one fdatasync of a record
// holding the whole batch (its entries and tree hashes), in one of two files beside the
// database (IntakePaths). The applier then inserts the acknowledged batches into the database
// in large transactions, off the caller's path; a record is needed only until its batch is in
// the database. Records go end to end into one file until it passes intakeSwitch; then, once
// every record of the other file is applied, into the other from its start, overwriting it: an
// fdatasync that does not change a file's size is about twice as fast as one that grows it. On
// open, the records the database does not have yet are applied before the store is used.
//
// A record is a 12-byte header (magic, payload length, CRC-32C of the payload) and a payload:
//
//	first seq u64 | entries u32 | first hash index u64 | hashes u32 | hashes (32 bytes each)
//	then per entry: id length u32, id, salt length u32, salt, body length u32, body
//
// little-endian. In each file, records lie end to end from offset 0 with increasing seqs; past
// the last one lie zeros, a record cut short by a crash (never acknowledged: the acknowledgement
// follows the fdatasync), or older records, applied already (see readIntake).
//
// The files keep bodies only while they are needed: both are emptied when the store closes,
// when the log has been idle for intakeIdle, and before an erasure (a purge), so an erased body
// is not left in them.
const (
	intakeMagic  = 0x00494141 // "AAI\x00": no canonical JSON body holds a zero byte
	intakeHeader = 12
	// intakeSwitch is the size past which Append moves to the other file once it is applied.
	intakeSwitch = 8 << 20
	// intakeCap is the size past which Append waits for the applier to catch up rather than
	// write further: it bounds the files, and the memory that holds unapplied batches.
	intakeCap = 64 << 20
	// applyMax caps the entries one apply transaction inserts; maxBacklog the entries
	// acknowledged and not yet applied, past which Append waits: together they bound how long
	// a read waits for the applier (two transactions' worth), and the memory the backlog takes.
	applyMax   = 4096
	maxBacklog = 2 * applyMax
)

// IntakePaths are the intake files of the database at path.
func IntakePaths(path string) [2]string { return [2]string{path + "-intake-0", path + "-intake-1"} }

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// encodeRecord appends the record of b to buf.
func encodeRecord(buf []byte, b store.Batch) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, intakeHeader)...)
	buf = binary.LittleEndian.AppendUint64(buf, uint64(b.Entries[0].Seq))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(b.Entries)))
	buf = binary.LittleEndian.AppendUint64(buf, uint64(b.FirstHash))
	buf = binary.LittleEndian.AppendUint32(buf, uint32(len(b.Hashes)))
	for _, h := range b.Hashes {
		buf = append(buf, h[:]...)
	}
	for _, e := range b.Entries {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(e.ID)))
		buf = append(buf, e.ID...)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(e.Salt)))
		buf = append(buf, e.Salt...)
		buf = binary.LittleEndian.AppendUint32(buf, uint32(len(e.Body)))
		buf = append(buf, e.Body...)
	}
	payload := buf[start+intakeHeader:]
	binary.LittleEndian.PutUint32(buf[start:], intakeMagic)
	binary.LittleEndian.PutUint32(buf[start+4:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+8:], crc32.Checksum(payload, crcTable))
	return buf
}

// errBadRecord: the bytes at an offset are not a whole record.
var errBadRecord = errors.New("not a whole intake record")

// decodeRecord decodes the payload of a record whose checksum matched. Entries' slices are views
// of p; their Cols are nil (the driver computes them from the body).
func decodeRecord(p []byte) (store.Batch, error) {
	var b store.Batch
	r := reader{p: p}
	first, n := int64(r.u64()), int(r.u32())
	b.FirstHash = int64(r.u64())
	nh := int(r.u32())
	if r.err != nil || n == 0 || n > len(p) || nh > len(p)/tlog.HashSize {
		return b, errBadRecord
	}
	b.Hashes = make([]tlog.Hash, nh)
	for i := range b.Hashes {
		copy(b.Hashes[i][:], r.bytes(tlog.HashSize))
	}
	b.Entries = make([]store.Entry, n)
	for i := range b.Entries {
		e := &b.Entries[i]
		e.Seq = first + int64(i)
		e.ID = string(r.bytes(int(r.u32())))
		e.Salt = r.bytes(int(r.u32()))
		e.Body = r.bytes(int(r.u32()))
	}
	if r.err != nil || len(r.p) != 0 {
		return b, errBadRecord
	}
	return b, nil
}

type reader struct {
	p   []byte
	err error
}

func (r *reader) bytes(n int) []byte {
	if r.err != nil || n < 0 || n > len(r.p) {
		r.err = errBadRecord
		return nil
	}
	b := r.p[:n:n]
	r.p = r.p[n:]
	return b
}

func (r *reader) u32() uint32 {
	if b := r.bytes(4); b != nil {
		return binary.LittleEndian.Uint32(b)
	}
	return 0
}

func (r *reader) u64() uint64 {
	if b := r.bytes(8); b != nil {
		return binary.LittleEndian.Uint64(b)
	}
	return 0
}

// recordAt parses the record at off in data: its payload and its length with the header.
func recordAt(data []byte, off int) (payload []byte, n int, ok bool) {
	if len(data)-off < intakeHeader || binary.LittleEndian.Uint32(data[off:]) != intakeMagic {
		return nil, 0, false
	}
	size := int(binary.LittleEndian.Uint32(data[off+4:]))
	if size > len(data)-off-intakeHeader {
		return nil, 0, false
	}
	payload = data[off+intakeHeader : off+intakeHeader+size]
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(data[off+8:]) {
		return nil, 0, false
	}
	return payload, intakeHeader + size, true
}

// readIntake returns the batches of the intake files of path that continue a log of size
// entries, in order: every whole record in the files is read (older ones, applied already, lie
// past the newer ones and are skipped), and those the database does not have must continue it
// one after the other. A whole record past a gap fails the read, naming the file and offset:
// acknowledged events would be lost to a damaged, edited or missing record before them.
// Missing files hold nothing. Read beside a live writer (live), the files change under the
// reader: a gap then ends the batches instead of failing.
func readIntake(path string, size int64, live bool) ([]store.Batch, error) {
	all, err := scanIntake(path)
	if err != nil {
		return nil, err
	}
	return chainIntake(path, all, size, live)
}

// intakeRecord is a whole record found in an intake file.
type intakeRecord struct {
	b         store.Batch
	file, off int
}

// scanIntake returns every whole record in the intake files of path.
func scanIntake(path string) ([]intakeRecord, error) {
	var all []intakeRecord
	for i, name := range IntakePaths(path) {
		data, err := os.ReadFile(name)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("sqlite: read intake: %w", err)
		}
		for off := 0; off+intakeHeader <= len(data); {
			p, n, ok := recordAt(data, off)
			if !ok {
				off++
				continue
			}
			if b, err := decodeRecord(p); err == nil {
				all = append(all, intakeRecord{b, i, off})
			}
			off += n
		}
	}
	return all, nil
}

// chainIntake returns the batches of all that continue a log of size entries (see readIntake).
func chainIntake(path string, all []intakeRecord, size int64, live bool) ([]store.Batch, error) {
	slices.SortFunc(all, func(a, b intakeRecord) int { return cmp.Compare(a.b.Entries[0].Seq, b.b.Entries[0].Seq) })
	var out []store.Batch
	next := size
	for _, f := range all {
		first, last := f.b.Entries[0].Seq, f.b.Entries[0].Seq+int64(len(f.b.Entries))
		switch {
		case last <= next: // applied already
		case first == next:
			out = append(out, f.b)
			next = last
		case live:
			return out, nil
		default:
			return nil, fmt.Errorf("sqlite: intake %s: acknowledged events from seq %d (the record at offset %d) do not continue the log, which the database and intake take to seq %d: a record before them is damaged, edited or missing",
				IntakePaths(path)[f.file], first, f.off, next)
		}
	}
	return out, nil
}

// intakeFile is the open intake: the appender's end of it.
type intakeFile struct {
	f   [2]*os.File
	cur int   // the file records go to
	off int64 // where the next record goes in it
	// torn: the last write failed, and may have left a whole record at off that was never
	// acknowledged; the end stays in this file until a record overwrites it (see makeRoom).
	torn bool
	sync func(*os.File) error // fdatasync; tests make it fail
}

func openIntake(path string) (*intakeFile, error) {
	in := &intakeFile{sync: fdatasync}
	for i, name := range IntakePaths(path) {
		f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			in.close()
			return nil, fileErr("sqlite: open intake", err)
		}
		in.f[i] = f
	}
	// A file created here exists after a power loss only once its directory entry is durable;
	// records fdatasynced into a file that is then missing would be lost, acknowledged.
	if err := syncDir(filepath.Dir(path)); err != nil {
		in.close()
		return nil, fileErr("sqlite: open intake", err)
	}
	return in, nil
}

// write makes the record of b durable at the intake's end and returns it. On failure the end
// does not move, so what was written is overwritten by the next record: a partial record, or a
// whole one whose fdatasync failed, which was never acknowledged and whose seqs the next batch
// reuses.
func (in *intakeFile) write(b store.Batch) ([]byte, error) {
	size := intakeHeader + 24 + len(b.Hashes)*tlog.HashSize
	for _, e := range b.Entries {
		size += 12 + len(e.ID) + len(e.Salt) + len(e.Body)
	}
	rec := encodeRecord(make([]byte, 0, size), b)
	f := in.f[in.cur]
	in.torn = true
	if _, err := f.WriteAt(rec, in.off); err != nil {
		return nil, err
	}
	if err := in.sync(f); err != nil {
		return nil, err
	}
	in.off += int64(len(rec))
	in.torn = false
	return rec, nil
}

// empty truncates both files, durably, once everything in them is in the database.
func (in *intakeFile) empty() error {
	// The end goes back first: a record written after a failure here must not land past a
	// truncated file's end, where reading would never reach it.
	in.cur, in.off, in.torn = 0, 0, false
	for _, f := range in.f {
		if err := f.Truncate(0); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
	}
	return nil
}

func (in *intakeFile) close() error {
	var errs []error
	for _, f := range in.f {
		if f != nil {
			errs = append(errs, f.Close())
		}
	}
	return errors.Join(errs...)
}
