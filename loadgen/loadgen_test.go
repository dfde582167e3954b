package loadgen

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

// TestAppendEvent: the pre-rendered event is the one the generator always sent (the ~1 KiB tool
// call, built field by field before), with the id in place, and decodes strictly.
func TestAppendEvent(t *testing.T) {
	want := `{"id":"load-17-42","session_id":"load","kind":"tool_call","tool_name":"update_order_status","user_id":"usr_1","agent_id":"load",` +
		`"time":"2026-01-01T00:00:00Z","arguments":{"order_id":"ORD-456","note":"` + strings.Repeat("n", 200) + `"},` +
		`"result":{"success":false,"error":"Cannot cancel shipped order","detail":"` + strings.Repeat("d", 500) + `"},"duration_ms":38,"success":false}`
	got := appendEvent([]byte("prefix"), 17, 42)
	if string(got) != "prefix"+want {
		t.Fatalf("appendEvent:\n got %s\nwant prefix%s", got, want)
	}
	ev, err := event.Decode(got[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "load-17-42" || ev.ToolName != "update_order_status" {
		t.Errorf("decoded id %q tool %q", ev.ID, ev.ToolName)
	}
}

// TestRun drives real HTTP servers on loopback with the generator's own HTTP/1.1 client: what it
// sends is a POST the server parses, and what it counts follows the answers, whatever their
// framing or connection handling.
func TestRun(t *testing.T) {
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		ok      bool // every request counts as acknowledged
	}{
		{"content-length", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"results":[]}`) }, true},
		{"chunked", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"results":`)
			w.(http.Flusher).Flush() // the rest goes chunked
			io.WriteString(w, `[]}`)
		}, true},
		{"closes every connection", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Connection", "close")
			io.WriteString(w, `{"results":[]}`)
		}, true},
		{"refuses", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", http.StatusServiceUnavailable) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, _ := io.ReadAll(r.Body)
				ev, err := event.Decode(bytes.TrimSpace(body))
				if r.Method != "POST" || r.URL.Path != "/base/v1/events" || r.Header.Get("Authorization") != "Bearer k" ||
					r.Header.Get("Content-Type") != "application/json" || err != nil || ev.ToolName != "update_order_status" {
					t.Errorf("%s %s %q %q: %v", r.Method, r.URL.Path, r.Header.Get("Authorization"), r.Header.Get("Content-Type"), err)
				}
				got.Add(1)
				tc.handler(w, r)
			}))
			defer srv.Close()
			res, err := Run(context.Background(), Config{URL: srv.URL + "/base/", Key: "k", Connections: 4, Batch: 1, Rate: 400, Duration: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			// The server may have answered requests cut off at the end, one per connection at most.
			if cut := got.Load() - res.Requests; res.Requests == 0 || cut < 0 || cut > 4 || res.P99 <= 0 || res.P99Scheduled < res.P50 {
				t.Errorf("%s; the server answered %d", res, got.Load())
			}
			if tc.ok && (res.Errors != 0 || res.Events != res.Requests) || !tc.ok && (res.Events != 0 || res.Errors != res.Requests) {
				t.Errorf("%s", res)
			}
		})
	}
}

// A server whose certificate is not trusted gets no acknowledged events: the generator does not
// fall back to plain HTTP or skip verification.
func TestRunUntrustedTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "{}") }))
	defer srv.Close()
	// Long enough for a handshake to end inside the run on a loaded machine under the race
	// detector; a refused certificate counts as an error even when it comes after the end.
	res, err := Run(context.Background(), Config{URL: srv.URL, Key: "k", Connections: 2, Batch: 1, Rate: 20, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 0 || res.Errors == 0 {
		t.Errorf("%s", res)
	}
}

func TestRunBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{URL: "127.0.0.1:8433", Connections: 1, Batch: 1, Duration: time.Second},
		{URL: "ftp://127.0.0.1", Connections: 1, Batch: 1, Duration: time.Second},
		{URL: "http://127.0.0.1:1", Connections: 0, Batch: 1, Duration: time.Second},
		{URL: "http://127.0.0.1:1", Key: "k\r\nX-Injected: 1", Connections: 1, Batch: 1, Duration: time.Second},
	} {
		if _, err := Run(context.Background(), cfg); err == nil {
			t.Errorf("%+v: no error", cfg)
		}
	}
}

// Only the errors the run's own end causes go uncounted, and only once the run has ended.
func TestCutOff(t *testing.T) {
	end := time.Now()
	ended, cancel := context.WithCancel(context.Background())
	cancel()
	timeout := &net.OpError{Op: "read", Net: "tcp", Err: os.ErrDeadlineExceeded}
	refused := errors.New("tls: failed to verify certificate: x509: certificate signed by unknown authority")
	for _, tc := range []struct {
		name string
		ctx  context.Context
		err  error
		done time.Time
		want bool
	}{
		{"deadline at the end", ended, timeout, end, true},
		{"canceled handshake at the end", ended, context.Canceled, end, true},
		{"certificate refused after the end", ended, refused, end, false},
		{"request timeout inside the run", context.Background(), timeout, end.Add(-time.Second), false},
		{"deadline after the end, context not yet done", context.Background(), timeout, end.Add(time.Millisecond), true},
	} {
		if got := cutOff(tc.ctx, tc.err, tc.done, end); got != tc.want {
			t.Errorf("%s: cutOff = %v, want %v", tc.name, got, tc.want)
		}
	}
}
