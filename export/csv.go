package export

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/query"
)

// csvColumn is one CSV column: its header (the Event field's JSON name) and how to write the
// field as text. Strings are as stored, times RFC 3339 UTC, booleans true/false, JSON-valued
// fields compact JSON, absent values empty.
type csvColumn struct {
	name string
	cell func(dst []byte, r *Record) []byte
}

// cellOf writes field f of the record's event as text.
func cellOf(f *event.Field) func(dst []byte, r *Record) []byte {
	return func(dst []byte, r *Record) []byte {
		switch v := f.Ptr(r.Event).(type) {
		case *string:
			return append(dst, *v...)
		case *int64:
			if *v != 0 {
				return strconv.AppendInt(dst, *v, 10)
			}
		case *float64:
			if *v != 0 {
				return strconv.AppendFloat(dst, *v, 'f', -1, 64)
			}
		case *time.Time:
			if !v.IsZero() {
				return v.UTC().AppendFormat(dst, time.RFC3339Nano)
			}
		case *bool:
			if *v {
				return append(dst, "true"...)
			} // false is the Event's absent value, as in its canonical form
		case **bool:
			if *v != nil {
				return strconv.AppendBool(dst, **v)
			}
		case *json.RawMessage:
			if len(*v) == 0 {
				return dst
			}
			var b bytes.Buffer
			if json.Compact(&b, *v) != nil {
				return append(dst, *v...) // Validate rejects such events; keep what is there
			}
			return append(dst, b.Bytes()...)
		case *[]event.Redaction:
			if len(*v) > 0 {
				b, _ := json.Marshal(*v) // strings only: cannot fail
				return append(dst, b...)
			}
		}
		return dst
	}
}

// csvColumns are seq and every Event field (from the event's field table), in the Event type's
// declaration order, which groups them for a reader (who, when, what, outcome).
var csvColumns = func() []csvColumn {
	cols := []csvColumn{{"seq", func(dst []byte, r *Record) []byte { return strconv.AppendInt(dst, r.Seq, 10) }}}
	t := reflect.TypeFor[event.Event]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		cols = append(cols, csvColumn{name, cellOf(event.FieldByName(name))})
	}
	return cols
}()

// CSVHeader is the CSV export's header row: seq, then every Event field by its JSON name.
func CSVHeader() []string {
	h := make([]string, len(csvColumns))
	for i, c := range csvColumns {
		h[i] = c.name
	}
	return h
}

type csvWriter struct {
	w      *bufio.Writer
	cw     *csv.Writer
	header bool
	buf    []byte
	row    []string
}

func newCSVWriter(w *bufio.Writer) *csvWriter {
	return &csvWriter{w: w, cw: csv.NewWriter(w), row: make([]string, len(csvColumns))}
}

func (c *csvWriter) writeHeader() error {
	if c.header {
		return nil
	}
	c.header = true
	return c.cw.Write(CSVHeader())
}

// Write writes one row. Every cell goes through query.SafeCell, so a value starting with = + -
// @ (or a tab or carriage return) cannot run as a spreadsheet formula.
func (c *csvWriter) Write(r Record) error {
	if err := c.writeHeader(); err != nil {
		return err
	}
	// All cells are appended to one buffer and sliced out as strings: one allocation per row.
	c.buf = c.buf[:0]
	ends := make([]int, 0, 64)
	for _, col := range csvColumns {
		start := len(c.buf)
		c.buf = col.cell(c.buf, &r)
		if start < len(c.buf) && needsQuote(c.buf[start]) {
			c.buf = append(c.buf[:start+1], c.buf[start:]...)
			c.buf[start] = '\''
		}
		ends = append(ends, len(c.buf))
	}
	all := string(c.buf)
	start := 0
	for i, end := range ends {
		c.row[i] = all[start:end]
		start = end
	}
	if err := c.cw.Write(c.row); err != nil {
		return fmt.Errorf("export: seq %d: %w", r.Seq, err)
	}
	return nil
}

// needsQuote reports whether a cell starting with b must be neutralized; query.SafeCell is the
// rule, asked about the first byte.
func needsQuote(b byte) bool { return query.SafeCell(string(b)) != string(b) }

func (c *csvWriter) Close() error {
	if err := c.writeHeader(); err != nil {
		return err
	}
	c.cw.Flush()
	if err := c.cw.Error(); err != nil {
		return err
	}
	return c.w.Flush()
}
