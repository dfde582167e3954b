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

// ColumnsOf reads the query columns from a body: the canonical JSON object of an event (or the
// "{}" of a purged entry). It reads only the top-level members it needs and skips the rest, so it
// costs a fraction of decoding the event.
func ColumnsOf(body []byte) (Columns, error) {
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
		dst := c.str(name)
		switch {
		case dst != nil:
			v, err := s.String(&valBuf)
			if err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			*dst = string(v)
		case bytes.Equal(name, []byte("time")), bytes.Equal(name, []byte("retain_until")):
			v, err := s.String(&valBuf)
			if err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			t, err := time.Parse(time.RFC3339Nano, string(v))
			if err != nil {
				return c, fmt.Errorf("%s: %w", name, err)
			}
			if name[0] == 't' {
				c.TimeMS, c.HasTime = t.UnixMilli(), true
			} else {
				c.RetainUntilMS, c.HasRetain = t.UnixMilli(), true
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

// str returns the string column the member name fills, or nil.
func (c *Columns) str(name []byte) *string {
	switch string(name) { // the conversion is not an allocation in a switch
	case "session_id":
		return &c.SessionID
	case "kind":
		return &c.Kind
	case "user_id":
		return &c.UserID
	case "agent_id":
		return &c.AgentID
	case "model":
		return &c.Model
	case "tool_name":
		return &c.ToolName
	case "subject_type":
		return &c.SubjectType
	case "subject_id":
		return &c.SubjectID
	case "outcome":
		return &c.Outcome
	case "retention_class":
		return &c.RetentionClass
	}
	return nil
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
