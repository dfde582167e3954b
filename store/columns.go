package store

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/agentaudit/agentaudit/internal/jsontok"
)

// Columns are an entry's query columns: the members of its body that the drivers index. They are
// a function of the body alone (ColumnsOf), which is what keeps a query from disagreeing with the
// hashed log: a driver that stores them beside the body, written at append rather than computed
// by the database from the body (store/sqlite, for speed), hands them back from ScanEntries, and
// verification recomputes them from every body it hashes and reports any difference.
//
// A string is "" and a number is absent (Has*) when the body has no such member; a purged
// entry's columns are all absent.
type Columns struct {
	SessionID, Kind, UserID, AgentID, Model, ToolName string
	SubjectType, SubjectID, Outcome, RetentionClass   string

	TimeMS        int64 // the event time in Unix milliseconds, truncated as time.Time.UnixMilli does
	HasTime       bool
	RetainUntilMS int64 // retain_until in Unix milliseconds
	HasRetain     bool
	DurationMS    float64
	HasDuration   bool
	Success       int8 // 1 true, 0 false, -1 absent
}

// ColumnNames are the query columns' names in the drivers' tables, in AppendValues' order.
var ColumnNames = []string{"session_id", "kind", "time_ms", "user_id", "agent_id", "model", "tool_name",
	"subject_type", "subject_id", "outcome", "success", "duration_ms", "retention_class", "retain_until_ms"}

// AppendValues appends c's values for the columns of ColumnNames, in order, for a driver to
// store: an absent value is nil (NULL), success 1 or 0, times in Unix milliseconds.
func (c *Columns) AppendValues(dst []any) []any {
	str := func(v string) any {
		if v == "" {
			return nil
		}
		return v
	}
	var tm, dur, ok, until any
	if c.HasTime {
		tm = c.TimeMS
	}
	if c.HasDuration {
		dur = c.DurationMS
	}
	if c.Success >= 0 {
		ok = int64(c.Success)
	}
	if c.HasRetain {
		until = c.RetainUntilMS
	}
	return append(dst, str(c.SessionID), str(c.Kind), tm, str(c.UserID), str(c.AgentID), str(c.Model), str(c.ToolName),
		str(c.SubjectType), str(c.SubjectID), str(c.Outcome), ok, dur, str(c.RetentionClass), until)
}

// ColumnsOf reads the query columns from a body: the canonical JSON object of an event (or the
// "{}" of a purged entry). It reads only the top-level members it needs and skips the rest, so it
// costs a fraction of decoding the event.
func ColumnsOf(body []byte) (Columns, error) { return columnsOf(body, nil) }

// A ColumnReader reads the query columns of many bodies, as ColumnsOf does, returning equal
// strings as one string: a scan over a log meets the same kinds, sessions, users and tools again
// and again, and then allocates nothing per body. The zero value is ready to use; one goroutine
// uses it.
type ColumnReader struct {
	in   Interner
	last [10]string // each string column's value in the body before: often the same
}

// Of returns the columns of body, as ColumnsOf.
func (r *ColumnReader) Of(body []byte) (Columns, error) { return columnsOf(body, r) }

func columnsOf(body []byte, r *ColumnReader) (Columns, error) {
	c := Columns{Success: -1}
	s := jsontok.Scanner{In: body}
	s.SkipSpace()
	if s.Pos >= len(body) || body[s.Pos] != '{' {
		return c, s.Errorf("the body is not a JSON object")
	}
	var nameBuf, valBuf []byte
	for more := s.Open(); more; more = s.Comma() {
		name, err := s.Name(&nameBuf)
		if err != nil {
			return c, err
		}
		if err := s.Colon(); err != nil {
			return c, err
		}
		if s.Pos >= len(body) {
			return c, s.Errorf("unexpected end of JSON after %q", name)
		}
		dst, col := c.str(name)
		switch {
		case dst != nil:
			v, err := s.String(&valBuf)
			if err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			switch {
			case r == nil:
				*dst = string(v)
			case r.last[col] == string(v):
				*dst = r.last[col]
			default:
				*dst = r.in.Str(v)
				r.last[col] = *dst
			}
		case bytes.Equal(name, []byte("time")), bytes.Equal(name, []byte("retain_until")):
			v, err := s.String(&valBuf)
			if err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			ms, err := unixMilli(v)
			if err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			if name[0] == 't' {
				c.TimeMS, c.HasTime = ms, true
			} else {
				c.RetainUntilMS, c.HasRetain = ms, true
			}
		case bytes.Equal(name, []byte("duration_ms")):
			v, err := s.Number()
			if err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			if c.DurationMS, err = strconv.ParseFloat(string(v), 64); err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			c.HasDuration = true
		case bytes.Equal(name, []byte("success")):
			lit, err := s.Literal()
			if err != nil || lit == "null" {
				return c, fmt.Errorf("success: not a boolean")
			}
			c.Success = 0
			if lit == "true" {
				c.Success = 1
			}
		default:
			end, err := skipValue(body, s.Pos)
			if err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			s.Pos = end
		}
	}
	if err := s.Close('}'); err != nil {
		return c, err
	}
	return c, s.End()
}

// str returns the string column the member name fills and its number (0 to 9), or nil.
func (c *Columns) str(name []byte) (*string, int) {
	switch string(name) { // the conversion is not an allocation in a switch
	case "session_id":
		return &c.SessionID, 0
	case "kind":
		return &c.Kind, 1
	case "user_id":
		return &c.UserID, 2
	case "agent_id":
		return &c.AgentID, 3
	case "model":
		return &c.Model, 4
	case "tool_name":
		return &c.ToolName, 5
	case "subject_type":
		return &c.SubjectType, 6
	case "subject_id":
		return &c.SubjectID, 7
	case "outcome":
		return &c.Outcome, 8
	case "retention_class":
		return &c.RetentionClass, 9
	}
	return nil, 0
}

// Diff names the first column in which c and stored differ, with both values, or returns "".
func (c Columns) Diff(stored Columns) string {
	strs := [...]struct {
		name string
		a, b string
	}{
		{"session_id", c.SessionID, stored.SessionID}, {"kind", c.Kind, stored.Kind},
		{"user_id", c.UserID, stored.UserID}, {"agent_id", c.AgentID, stored.AgentID},
		{"model", c.Model, stored.Model}, {"tool_name", c.ToolName, stored.ToolName},
		{"subject_type", c.SubjectType, stored.SubjectType}, {"subject_id", c.SubjectID, stored.SubjectID},
		{"outcome", c.Outcome, stored.Outcome}, {"retention_class", c.RetentionClass, stored.RetentionClass},
	}
	quote := func(v string) string {
		if v == "" {
			return "absent"
		}
		return strconv.Quote(v)
	}
	for _, s := range strs {
		if s.a != s.b {
			return fmt.Sprintf("%s is %s in the body, %s in the index", s.name, quote(s.a), quote(s.b))
		}
	}
	num := func(has bool, v string) string {
		if !has {
			return "absent"
		}
		return v
	}
	i64 := func(v int64) string { return strconv.FormatInt(v, 10) }
	switch {
	case c.HasTime != stored.HasTime || c.TimeMS != stored.TimeMS:
		return fmt.Sprintf("time_ms is %s in the body, %s in the index", num(c.HasTime, i64(c.TimeMS)), num(stored.HasTime, i64(stored.TimeMS)))
	case c.HasRetain != stored.HasRetain || c.RetainUntilMS != stored.RetainUntilMS:
		return fmt.Sprintf("retain_until_ms is %s in the body, %s in the index", num(c.HasRetain, i64(c.RetainUntilMS)), num(stored.HasRetain, i64(stored.RetainUntilMS)))
	case c.HasDuration != stored.HasDuration || c.DurationMS != stored.DurationMS:
		f := func(v float64) string { return strconv.FormatFloat(v, 'g', -1, 64) }
		return fmt.Sprintf("duration_ms is %s in the body, %s in the index", num(c.HasDuration, f(c.DurationMS)), num(stored.HasDuration, f(stored.DurationMS)))
	case c.Success != stored.Success:
		return fmt.Sprintf("success is %d in the body, %d in the index (1 true, 0 false, -1 absent)", c.Success, stored.Success)
	}
	return ""
}

// skipValue returns where the JSON value at i ends. It is jsontok's Skip without its checks of
// every byte: the members it skips are most of a body (payloads), ColumnsOf reads bodies the
// ledger canonicalized, and any other byte of a stored body is the leaf hash's to vouch for, so
// it only finds the end, strings by a vectorized search for their closing quote.
func skipValue(b []byte, i int) (int, error) {
	depth, start := 0, i
	for i < len(b) {
		switch b[i] {
		case '"':
			end, err := skipString(b, i)
			if err != nil {
				return 0, err
			}
			i = end
			if depth == 0 {
				return i, nil
			}
			continue
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 { // the end of the enclosing object, after a number or literal
				if i == start {
					return 0, errors.New("expected a value")
				}
				return i, nil
			}
			depth--
			if depth == 0 {
				return i + 1, nil
			}
		case ',':
			if depth == 0 {
				if i == start {
					return 0, errors.New("expected a value")
				}
				return i, nil
			}
		}
		i++
	}
	if depth > 0 || i == start {
		return 0, errors.New("unexpected end of JSON in a value")
	}
	return i, nil
}

// skipString returns the index after the string that opens at i.
func skipString(b []byte, i int) (int, error) {
	for j := i + 1; ; {
		k := bytes.IndexByte(b[j:], '"')
		if k < 0 {
			return 0, errors.New("unterminated string")
		}
		q := j + k
		bs := 0 // backslashes right before the quote: an odd count escapes it
		for p := q - 1; p > i && b[p] == '\\'; p-- {
			bs++
		}
		if bs%2 == 0 {
			return q + 1, nil
		}
		j = q + 1
	}
}

// unixMilli is time.Parse(time.RFC3339Nano, v).UnixMilli(), and its error. Canonical bodies
// hold times as "YYYY-MM-DDTHH:MM:SS[.fraction]Z", which it reads directly (time.Parse was a
// tenth of reading a body's columns); any other text, or a field out of range, goes to
// time.Parse, so both agree on every input (FuzzUnixMilli).
func unixMilli(v []byte) (int64, error) {
	if ms, ok := utcMilli(v); ok {
		return ms, nil
	}
	t, err := time.Parse(time.RFC3339Nano, string(v))
	if err != nil {
		return 0, err
	}
	return t.UnixMilli(), nil
}

// utcMilli reads "YYYY-MM-DDTHH:MM:SS[.d{1,9}]Z" with every field in range; ok is false for
// anything else.
func utcMilli(v []byte) (ms int64, ok bool) {
	if len(v) < 20 || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' || v[16] != ':' || v[len(v)-1] != 'Z' {
		return 0, false
	}
	num := func(i, n int) int64 {
		x := int64(0)
		for _, d := range v[i : i+n] {
			if d < '0' || d > '9' {
				return -1
			}
			x = x*10 + int64(d-'0')
		}
		return x
	}
	y, mo, d, h, mi, sec := num(0, 4), num(5, 2), num(8, 2), num(11, 2), num(14, 2), num(17, 2)
	if y < 0 || mo < 1 || mo > 12 || d < 1 || h < 0 || h > 23 || mi < 0 || mi > 59 || sec < 0 || sec > 59 {
		return 0, false
	}
	days := [...]int64{31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31}[mo-1]
	if mo == 2 && y%4 == 0 && (y%100 != 0 || y%400 == 0) {
		days = 29
	}
	if d > days {
		return 0, false
	}
	var frac int64 // milliseconds, truncated
	switch f := v[19 : len(v)-1]; {
	case len(f) == 0:
	case f[0] != '.' || len(f) < 2 || len(f) > 10:
		return 0, false
	default:
		for i, c := range f[1:] {
			if c < '0' || c > '9' {
				return 0, false
			}
			if i < 3 {
				frac = frac*10 + int64(c-'0')
			}
		}
		for i := len(f) - 1; i < 3; i++ {
			frac *= 10
		}
	}
	// Days from 1970-01-01 to the civil date (Howard Hinnant's days_from_civil).
	if mo <= 2 {
		y--
	}
	era := y / 400 // y >= -1: floor division only differs below -1
	if y < 0 {
		era = -1
	}
	yoe := y - era*400
	mp := (mo + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	days1970 := era*146097 + doe - 719468
	return ((days1970*24+h)*60+mi)*60*1000 + sec*1000 + frac, true
}

// Interner returns equal strings read in one scan as one string: a scan over millions of rows
// meets the same few session ids, users and tools again and again, and a lookup by the bytes
// does not allocate. It forgets everything past maxInterned strings to bound its memory. The
// zero value is ready to use; one goroutine uses it.
type Interner map[string]string

const maxInterned = 1 << 16

// Str returns b as a string, the same string for equal bytes.
func (in *Interner) Str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if v, ok := (*in)[string(b)]; ok {
		return v
	}
	if *in == nil || len(*in) >= maxInterned {
		*in = make(Interner, 1024)
	}
	v := string(b)
	(*in)[v] = v
	return v
}
