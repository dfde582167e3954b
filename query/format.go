package query

import (
	"encoding/csv"
	"html/template"
	"io"
	"strconv"
	"time"
)

// WriteAccessCSV writes the report's accesses as CSV with a header row. Cells that a spreadsheet
// would run as a formula are prefixed with a quote.
func WriteAccessCSV(w io.Writer, r *AccessReport) error {
	cw := csv.NewWriter(w)
	cw.Write([]string{"seq", "id", "time", "user_id", "user_role", "agent_id", "model", "tool", "kind", "purpose", "success", "outcome", "break_glass", "break_glass_reason", "verified"})
	for _, a := range r.Accesses {
		success := ""
		if a.Success != nil {
			success = strconv.FormatBool(*a.Success)
		}
		row := []string{strconv.FormatInt(a.Seq, 10), a.ID, a.Time.Format(time.RFC3339Nano), a.UserID, a.UserRole, a.AgentID, a.Model,
			a.Tool, a.Kind, a.Purpose, success, a.Outcome, strconv.FormatBool(a.BreakGlass), a.BreakGlassReason, strconv.FormatBool(a.Verified)}
		for i := range row {
			row[i] = SafeCell(row[i])
		}
		if err := cw.Write(row); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// SafeCell neutralizes CSV formula injection: a cell starting with = + - @ (or a tab or carriage
// return) is prefixed with a single quote.
func SafeCell(s string) string {
	if s != "" {
		switch s[0] {
		case '=', '+', '-', '@', '\t', '\r':
			return "'" + s
		}
	}
	return s
}

var accessHTML = template.Must(template.New("report").Funcs(template.FuncMap{
	"ts":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
	"failed": func(a Access) bool { return a.failed() },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Access report: {{.SubjectType}} {{.SubjectID}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#111}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border:1px solid #bbb;padding:4px 6px;text-align:left;vertical-align:top}
th{background:#eee}.bg{background:#fde2e2}.ok{color:#166534}.bad{color:#b91c1c;font-weight:bold}
@media print{body{margin:0}}
</style></head><body>
<h1>Access report: {{if .SubjectType}}{{.SubjectType}} {{end}}{{.SubjectID}}</h1>
<p>Period {{ts .From}} to {{ts .To}}. Generated {{ts .GeneratedAt}}.</p>
<p><b>{{.Total}}</b> accesses by <b>{{.UniqueUsers}}</b> users; <b>{{.BreakGlass}}</b> break-glass ({{.Unreviewed}} not reviewed); <b>{{.Failed}}</b> failed.</p>
<p>Integrity: {{if .IntegrityVerified}}<span class="ok">verified</span> — every listed event's inclusion proof checks against the signed checkpoint{{with .Checkpoint}} of size {{.N}}{{end}}.{{else}}<span class="bad">NOT verified</span> — {{.IntegrityNote}}{{end}}</p>
<table><tr><th>seq</th><th>time</th><th>user</th><th>role</th><th>agent / model</th><th>tool</th><th>purpose</th><th>outcome</th><th>break-glass</th><th>proof</th></tr>
{{range .Accesses}}<tr{{if .BreakGlass}} class="bg"{{end}}><td>{{.Seq}}</td><td>{{ts .Time}}</td><td>{{.UserID}}</td><td>{{.UserRole}}</td><td>{{.AgentID}}{{if .Model}} / {{.Model}}{{end}}</td><td>{{.Tool}}</td><td>{{.Purpose}}</td><td>{{.Outcome}}{{if failed .}} (failed){{end}}</td><td>{{if .BreakGlass}}yes: {{.BreakGlassReason}}{{if .Unreviewed}} <b>(not reviewed)</b>{{end}}{{end}}</td><td>{{if .Verified}}✔{{else}}✘{{end}}</td></tr>
{{end}}</table></body></html>
`))

// WriteAccessHTML writes the report as a printable HTML page.
func WriteAccessHTML(w io.Writer, r *AccessReport) error { return accessHTML.Execute(w, r) }
