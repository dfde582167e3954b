package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/server"
)

const consoleEvents = `[
{"session_id":"sa","kind":"llm_call","model":"m1","user_id":"alice","agent_id":"bot","time":"2026-01-01T00:00:00Z","input_tokens":10,"output_tokens":5,"latency_ms":100},
{"session_id":"sa","kind":"tool_call","tool_name":"lookup","user_id":"alice","agent_id":"bot","time":"2026-01-01T00:00:01Z","duration_ms":50,"success":true,"subject_type":"patient","subject_id":"P-1","arguments":{"q":"x"}},
{"session_id":"sb","kind":"tool_call","tool_name":"pay","user_id":"bob","agent_id":"bot","time":"2026-01-02T00:00:00Z","success":false,"arguments":{"amount":5}},
{"session_id":"sc","kind":"llm_call","model":"m2","user_id":"carol","agent_id":"other","time":"2026-01-03T00:00:00Z","input_tokens":7,"output_tokens":3}
]`

type sessionsPage struct {
	Sessions []struct {
		SessionID    string   `json:"session_id"`
		UserIDs      []string `json:"user_ids"`
		Tools        []string `json:"tools"`
		Subjects     []string `json:"subjects"`
		Events       int      `json:"events"`
		Failures     int      `json:"failures"`
		InputTokens  int64    `json:"input_tokens"`
		OutputTokens int64    `json:"output_tokens"`
		DurationMS   float64  `json:"duration_ms"`
	} `json:"sessions"`
	Next string `json:"next"`
}

func (p sessionsPage) ids() string {
	var ids []string
	for _, s := range p.Sessions {
		ids = append(ids, s.SessionID)
	}
	return strings.Join(ids, ",")
}

func TestConsoleAssets(t *testing.T) {
	e := start(t, server.Config{})
	code, h, body := e.do(t, "", "GET", "/", "", nil)
	if code != 200 || !strings.Contains(string(body), `src="/console/app.js"`) {
		t.Fatalf("GET /: %d %.200s", code, body)
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	for _, p := range []string{"/console/app.js", "/console/verify.js", "/console/style.css"} {
		if code, h, _ := e.do(t, "", "GET", p, "", nil); code != 200 || h.Get("Content-Security-Policy") == "" || h.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: %d %v", p, code, h)
		}
	}
	// No inline handler or script anywhere in the page (a strict CSP would block them).
	for _, bad := range []string{" onclick=", " onload=", " onsubmit=", "<script>", "innerHTML"} {
		if strings.Contains(string(body), bad) {
			t.Errorf("index.html holds %q", bad)
		}
	}
	_, _, js := e.do(t, "", "GET", "/console/app.js", "", nil)
	if strings.Contains(string(js), "innerHTML") || strings.Contains(string(js), "insertAdjacentHTML") {
		t.Error("app.js parses HTML; event content must only ever be text")
	}
}

func TestSessionsEndpoint(t *testing.T) {
	e := start(t, server.Config{})
	if code, _, b := e.do(t, apikey.Writer, "POST", "/v1/events", "application/json", []byte(consoleEvents)); code != 200 {
		t.Fatalf("ingest: %d %s", code, b)
	}
	get := func(role apikey.Role, q string) (int, sessionsPage) {
		t.Helper()
		code, _, b := e.do(t, role, "GET", "/v1/sessions"+q, "", nil)
		var p sessionsPage
		if code == 200 {
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatal(err)
			}
		}
		return code, p
	}
	_, all := get(apikey.Reader, "")
	if all.ids() != "sc,sb,sa" {
		t.Fatalf("sessions %s, want newest first sc,sb,sa", all.ids())
	}
	a := all.Sessions[2]
	if a.Events != 2 || a.InputTokens != 10 || a.OutputTokens != 5 || a.DurationMS != 1050 || a.Tools[0] != "lookup" || a.Subjects[0] != "patient:P-1" {
		t.Errorf("session sa: %+v", a)
	}
	if all.Sessions[1].Failures != 1 {
		t.Errorf("session sb: %+v", all.Sessions[1])
	}
	// Cursor paging: pages do not overlap and end.
	_, p1 := get(apikey.Reader, "?limit=2")
	_, p2 := get(apikey.Reader, "?limit=2&cursor="+p1.Next)
	if p1.ids() != "sc,sb" || p1.Next == "" || p2.ids() != "sa" || p2.Next != "" {
		t.Errorf("pages %s (%q) then %s (%q)", p1.ids(), p1.Next, p2.ids(), p2.Next)
	}
	// A new session does not shift the pages after a cursor.
	e.do(t, apikey.Writer, "POST", "/v1/events", "application/json", []byte(`{"session_id":"sd","kind":"custom","time":"2026-01-04T00:00:00Z"}`))
	if _, p := get(apikey.Reader, "?limit=2&cursor="+p1.Next); p.ids() != "sa" {
		t.Errorf("after a new session the second page is %s", p.ids())
	}
	for q, want := range map[string]string{
		"?user_id=bob": "sb", "?failures=true": "sb", "?tool_name=lookup": "sa", "?subject=patient:P-1": "sa", "?agent_id=other": "sc",
		"?since=2026-01-02T12:00:00Z": "sd,sc", "?until=2026-01-02T00:00:00Z": "sa", "?model=m2": "sc",
	} {
		if _, p := get(apikey.Auditor, q); p.ids() != want {
			t.Errorf("%s: %s, want %s", q, p.ids(), want)
		}
	}
	for q, want := range map[string]int{"?cursor=nope": 400, "?limit=0x": 400, "?limit=100000": 400, "?since=yesterday": 400} {
		if code, _ := get(apikey.Reader, q); code != want {
			t.Errorf("%s: %d, want %d", q, code, want)
		}
	}
	if code, _ := get(apikey.Writer, ""); code != 403 {
		t.Errorf("a writer listed sessions: %d", code)
	}
	// Every listing is an audited read.
	_, _, b := e.do(t, apikey.Auditor, "GET", "/v1/events?subject_type=audit_log&subject_id=sessions&limit=1000", "", nil)
	if n := strings.Count(string(b), `"purpose":"audit_log_read"`); n < 10 {
		t.Errorf("%d audited session listings", n)
	}
}

func TestToolStatsAndAccessReportEndpoints(t *testing.T) {
	e := start(t, server.Config{})
	e.do(t, apikey.Writer, "POST", "/v1/events", "application/json", []byte(consoleEvents))
	code, _, b := e.do(t, apikey.Reader, "GET", "/v1/stats/tools", "", nil)
	if code != 200 || !strings.Contains(string(b), `"tool":"lookup"`) || !strings.Contains(string(b), `"tool":"pay"`) {
		t.Errorf("tool stats: %d %s", code, b)
	}
	if code, _, _ := e.do(t, apikey.Reader, "GET", "/v1/stats/tools?since=x", "", nil); code != 400 {
		t.Errorf("bad since: %d", code)
	}
	q := "/v1/reports/access?subject=patient:P-1&from=2025-01-01T00:00:00Z&to=2027-01-01T00:00:00Z"
	code, _, b = e.do(t, apikey.Auditor, "GET", q, "", nil)
	if code != 200 || !strings.Contains(string(b), `"total":1`) || !strings.Contains(string(b), `"user_id":"alice"`) {
		t.Errorf("access report: %d %s", code, b)
	}
	code, h, b := e.do(t, apikey.Auditor, "GET", q+"&format=csv", "", nil)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/csv") || !strings.Contains(string(b), "alice") {
		t.Errorf("CSV: %d %v %s", code, h, b)
	}
	for q, want := range map[string]int{"/v1/reports/access": 400, "/v1/reports/access?subject=p:1&format=xml": 400,
		"/v1/reports/access?subject=p:1&from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z": 400} {
		if code, _, _ := e.do(t, apikey.Auditor, "GET", q, "", nil); code != want {
			t.Errorf("%s: %d, want %d", q, code, want)
		}
	}
	if code, _, _ := e.do(t, apikey.Reader, "GET", q, "", nil); code != 403 {
		t.Errorf("a reader got the access report: %d", code)
	}
}

func TestStreamEndpoint(t *testing.T) {
	e := start(t, server.Config{})
	e.do(t, apikey.Writer, "POST", "/v1/events", "application/json", []byte(consoleEvents))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", e.url+"/v1/stream?from=0", nil)
	req.Header.Set("Authorization", "Bearer "+e.keys[apikey.Reader])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("stream: %d %v", resp.StatusCode, resp.Header)
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	var data []string
	posted := false
	for sc.Scan() && len(data) < 6 {
		line := sc.Text()
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			data = append(data, d)
		}
		if len(data) == 4 && !posted { // the first four came from the log; the next are live
			posted = true
			e.do(t, apikey.Writer, "POST", "/v1/events", "application/json", []byte(`{"session_id":"live","kind":"custom","output_text":"secret output"}`))
		}
	}
	if len(data) < 6 {
		t.Fatalf("stream ended after %d events: %v", len(data), sc.Err())
	}
	all := strings.Join(data, "\n")
	if !strings.Contains(data[1], `"arguments":"[masked]"`) || strings.Contains(all, "secret output") || !strings.Contains(all, `"session_id":"live"`) {
		t.Errorf("a reader's stream is not masked, or misses the live event:\n%s", all)
	}
	if code, _, _ := e.do(t, apikey.Reader, "GET", "/v1/stream?from=-1", "", nil); code != 400 {
		t.Errorf("from=-1: %d", code)
	}
}
