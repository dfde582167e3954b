package export

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"strconv"
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

func str(name string, f func(*event.Event) string) csvColumn {
	return csvColumn{name, func(dst []byte, r *Record) []byte { return append(dst, f(r.Event)...) }}
}

func integer(name string, f func(*event.Event) int64) csvColumn {
	return csvColumn{name, func(dst []byte, r *Record) []byte {
		if v := f(r.Event); v != 0 {
			return strconv.AppendInt(dst, v, 10)
		}
		return dst
	}}
}

func float(name string, f func(*event.Event) float64) csvColumn {
	return csvColumn{name, func(dst []byte, r *Record) []byte {
		if v := f(r.Event); v != 0 {
			return strconv.AppendFloat(dst, v, 'f', -1, 64)
		}
		return dst
	}}
}

func timestamp(name string, f func(*event.Event) time.Time) csvColumn {
	return csvColumn{name, func(dst []byte, r *Record) []byte {
		if t := f(r.Event); !t.IsZero() {
			return t.UTC().AppendFormat(dst, time.RFC3339Nano)
		}
		return dst
	}}
}

func boolean(name string, f func(*event.Event) bool) csvColumn {
	return csvColumn{name, func(dst []byte, r *Record) []byte {
		if f(r.Event) {
			return append(dst, "true"...)
		}
		return dst // false is the Event's absent value, as in its canonical form
	}}
}

func rawJSON(name string, f func(*event.Event) json.RawMessage) csvColumn {
	return csvColumn{name, func(dst []byte, r *Record) []byte {
		v := f(r.Event)
		if len(v) == 0 {
			return dst
		}
		var b bytes.Buffer
		if json.Compact(&b, v) != nil {
			return append(dst, v...) // Validate rejects such events; keep what is there
		}
		return append(dst, b.Bytes()...)
	}}
}

// csvColumns are seq and every Event field, in the Event type's order. A test checks that every
// field of event.Event has a column, so a new field cannot be silently left out.
var csvColumns = []csvColumn{
	{"seq", func(dst []byte, r *Record) []byte { return strconv.AppendInt(dst, r.Seq, 10) }},
	str("id", func(e *event.Event) string { return e.ID }),
	str("session_id", func(e *event.Event) string { return e.SessionID }),
	str("agent_id", func(e *event.Event) string { return e.AgentID }),
	str("agent_version", func(e *event.Event) string { return e.AgentVersion }),
	str("user_id", func(e *event.Event) string { return e.UserID }),
	str("user_role", func(e *event.Event) string { return e.UserRole }),
	str("client_ip", func(e *event.Event) string { return e.ClientIP }),
	str("user_agent", func(e *event.Event) string { return e.UserAgent }),
	rawJSON("metadata", func(e *event.Event) json.RawMessage { return e.Metadata }),
	timestamp("time", func(e *event.Event) time.Time { return e.Time }),
	timestamp("recorded_at", func(e *event.Event) time.Time { return e.RecordedAt }),
	str("kind", func(e *event.Event) string { return string(e.Kind) }),
	integer("turn", func(e *event.Event) int64 { return e.Turn }),
	integer("step", func(e *event.Event) int64 { return e.Step }),
	str("parent_id", func(e *event.Event) string { return e.ParentID }),
	str("trigger", func(e *event.Event) string { return string(e.Trigger) }),
	str("model", func(e *event.Event) string { return e.Model }),
	str("system_prompt_hash", func(e *event.Event) string { return e.SystemPromptHash }),
	rawJSON("input_messages", func(e *event.Event) json.RawMessage { return e.InputMessages }),
	str("output_text", func(e *event.Event) string { return e.OutputText }),
	rawJSON("tool_calls_requested", func(e *event.Event) json.RawMessage { return e.ToolCallsRequested }),
	integer("input_tokens", func(e *event.Event) int64 { return e.InputTokens }),
	integer("output_tokens", func(e *event.Event) int64 { return e.OutputTokens }),
	float("latency_ms", func(e *event.Event) float64 { return e.LatencyMS }),
	str("stop_reason", func(e *event.Event) string { return e.StopReason }),
	str("tool_name", func(e *event.Event) string { return e.ToolName }),
	str("tool_call_id", func(e *event.Event) string { return e.ToolCallID }),
	rawJSON("arguments", func(e *event.Event) json.RawMessage { return e.Arguments }),
	rawJSON("result", func(e *event.Event) json.RawMessage { return e.Result }),
	rawJSON("result_summary", func(e *event.Event) json.RawMessage { return e.ResultSummary }),
	str("error", func(e *event.Event) string { return e.Error }),
	str("error_type", func(e *event.Event) string { return e.ErrorType }),
	float("duration_ms", func(e *event.Event) float64 { return e.DurationMS }),
	{"success", func(dst []byte, r *Record) []byte {
		if s := r.Event.Success; s != nil {
			return strconv.AppendBool(dst, *s)
		}
		return dst
	}},
	boolean("requires_approval", func(e *event.Event) bool { return e.RequiresApproval }),
	str("approval_status", func(e *event.Event) string { return string(e.ApprovalStatus) }),
	str("approver_id", func(e *event.Event) string { return e.ApproverID }),
	str("decision", func(e *event.Event) string { return e.Decision }),
	str("rationale", func(e *event.Event) string { return e.Rationale }),
	str("subject_type", func(e *event.Event) string { return e.SubjectType }),
	str("subject_id", func(e *event.Event) string { return e.SubjectID }),
	str("purpose", func(e *event.Event) string { return e.Purpose }),
	boolean("break_glass", func(e *event.Event) bool { return e.BreakGlass }),
	str("break_glass_reason", func(e *event.Event) string { return e.BreakGlassReason }),
	str("outcome", func(e *event.Event) string { return string(e.Outcome) }),
	{"redactions", func(dst []byte, r *Record) []byte {
		if len(r.Event.Redactions) == 0 {
			return dst
		}
		b, _ := json.Marshal(r.Event.Redactions) // strings only: cannot fail
		return append(dst, b...)
	}},
}

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
