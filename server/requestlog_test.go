package server_test

import (
	"bytes"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/server"
)

// lockedBuffer is a log destination the server's goroutines share.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestRequestLogAndMetrics pins what every request leaves behind, whichever way the handler
// writes it: one JSON log line with the same members, in the same order, as
// Logger.Info("request", ...) wrote, and the request counted under its route and code (the route
// "unmatched" for what the mux did not route), each count a series of its own.
func TestRequestLogAndMetrics(t *testing.T) {
	var logs lockedBuffer
	e := start(t, server.Config{Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	for _, tc := range []struct {
		name, method, path, ctype, body string
		role                            apikey.Role
		want                            int
		line                            string // the log line, a regexp
	}{
		{"ingest", "POST", "/v1/events", "application/json", ev1, apikey.Writer, 200,
			`^\{"time":"[^"]+","level":"INFO","msg":"request","method":"POST","path":"/v1/events","status":200,"duration_ms":[0-9.e+-]+,"remote":"127.0.0.1"\}$`},
		{"content type with a parameter", "POST", "/v1/events", "Application/JSON; charset=utf-8", ev1, apikey.Writer, 200,
			`"method":"POST","path":"/v1/events","status":200,`},
		{"unsupported content type", "POST", "/v1/events", "text/plain", ev1, apikey.Writer, 415,
			`"method":"POST","path":"/v1/events","status":415,`},
		{"not found", "GET", "/v1/nothing-here", "", "", apikey.Writer, 404,
			`"method":"GET","path":"/v1/nothing-here","status":404,`},
		{"method not allowed", "DELETE", "/v1/checkpoint", "", "", apikey.Writer, 405,
			`"method":"DELETE","path":"/v1/checkpoint","status":405,`},
		{"wildcard route", "GET", "/v1/events/e1", "", "", apikey.Auditor, 200,
			`"method":"GET","path":"/v1/events/e1","status":200,`},
	} {
		code, _, b := e.do(t, tc.role, tc.method, tc.path, tc.ctype, []byte(tc.body))
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.name, code, b, tc.want)
		}
		if code == 200 && tc.method == "POST" && !regexp.MustCompile(`^\{"results":\[\{"index":0,"id":"e1","seq":0,"leaf":"[0-9a-f]{64}"(,"duplicate":true)?\}\]\}\n$`).Match(b) {
			t.Errorf("%s: answered %q", tc.name, b)
		}
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if last := lines[len(lines)-1]; !regexp.MustCompile(tc.line).MatchString(last) {
			t.Errorf("%s: logged %s, want %s", tc.name, last, tc.line)
		}
	}
	_, _, body := e.do(t, "", "GET", "/metrics", "", nil)
	for _, tc := range []string{
		`agentaudit_http_requests_total{code="200",route="POST /v1/events"} 2`,
		`agentaudit_http_requests_total{code="415",route="POST /v1/events"} 1`,
		`agentaudit_http_requests_total{code="404",route="unmatched"} 1`,
		`agentaudit_http_requests_total{code="405",route="unmatched"} 1`,
		`agentaudit_http_requests_total{code="200",route="GET /v1/events/{id}"} 1`,
		`agentaudit_events_ingested_total{door="api"} 1`, // the second post was a duplicate
	} {
		if !strings.Contains(string(body), tc) {
			t.Errorf("metrics lack %s", tc)
		}
	}
}
