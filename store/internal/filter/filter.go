// Package filter writes the SQL of a store.Filter for the SQL drivers (store/sqlite,
// store/postgres), so that both answer a filter with the same conditions; store/storetest checks
// the answers against its reference.
package filter

import (
	"strings"

	"github.com/agentaudit/agentaudit/store"
)

// Dialect is how a driver names its query columns and placeholders.
type Dialect struct {
	// Col is the SQL of a query column: session_id, kind, time_ms, user_id, agent_id, model,
	// tool_name, subject_type, subject_id, outcome, success.
	Col func(name string) string
	// Arg is the placeholder of the nth argument, counted from 1.
	Arg func(n int) string
}

// Query returns "SELECT cols FROM events WHERE ... ORDER BY seq [LIMIT n]" for f, and its
// arguments. Time bounds compare with time_ms in whole milliseconds (store.Filter's contract). A
// filter with no condition selects the intact entries only (purged_by IS NULL): any condition on
// a query column is false on a purged body.
func Query(f store.Filter, cols string, d Dialect) (q string, args []any) {
	var where []string
	arg := func(v any) string {
		args = append(args, v)
		return d.Arg(len(args))
	}
	eq := func(col, v string) {
		if v != "" {
			where = append(where, d.Col(col)+" = "+arg(v))
		}
	}
	eq("session_id", f.SessionID)
	eq("user_id", f.UserID)
	eq("agent_id", f.AgentID)
	eq("model", f.Model)
	eq("tool_name", f.ToolName)
	eq("subject_type", f.SubjectType)
	eq("subject_id", f.SubjectID)
	eq("kind", f.Kind)
	eq("outcome", f.Outcome)
	if !f.Since.IsZero() {
		where = append(where, d.Col("time_ms")+" >= "+arg(f.Since.UnixMilli()))
	}
	if !f.Until.IsZero() {
		where = append(where, d.Col("time_ms")+" < "+arg(f.Until.UnixMilli()))
	}
	if f.Failures {
		where = append(where, "("+d.Col("outcome")+" IN ('error', 'denied') OR "+d.Col("success")+" = 0 OR "+d.Col("kind")+" = 'error')")
	}
	if f.FromSeq > 0 {
		where = append(where, "seq >= "+arg(f.FromSeq))
	}
	if len(where) == 0 {
		where = append(where, "purged_by IS NULL")
	}
	q = "SELECT " + cols + " FROM events WHERE " + strings.Join(where, " AND ") + " ORDER BY seq"
	if f.Limit > 0 {
		q += " LIMIT " + arg(f.Limit)
	}
	return q, args
}
