package llmproxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/embedded"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/benchlat"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/llmproxy"
)

const message = `{"id":"msg_2","type":"message","role":"assistant","model":"claude-opus-4-6","content":[{"type":"text","text":"Looking it up."}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":100,"output_tokens":20}}`

// upstream answers /v1/messages like the Anthropic API: JSON, or (stream) a first SSE event at
// once and the rest after 20 ms.
func upstream() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if !bytes.Contains(body, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, message)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-opus-4-6\",\"content\":[],\"usage\":{\"input_tokens\":8,\"output_tokens\":1}}}\n\n")
		w.(http.Flusher).Flush()
		time.Sleep(20 * time.Millisecond)
		fmt.Fprint(w, "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\"},\"usage\":{\"output_tokens\":3}}\n\nevent: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
	}))
}

// discard stores nothing: the proxy's own cost, without the ledger's commit on the same cores.
type discard struct{}

func (discard) AppendBatch(ctx context.Context, evs []*event.Event) ([]error, error) {
	return make([]error, len(evs)), nil
}
func (discard) Close() error { return nil }

func proxyFor(b *testing.B, up string, record bool, mode agentaudit.Mode) (*httptest.Server, *agentaudit.Recorder) {
	var sink agentaudit.Sink = discard{}
	if record {
		s, err := embedded.Open(filepath.Join(b.TempDir(), "data"), ledger.Options{})
		if err != nil {
			b.Fatal(err)
		}
		sink = s
	}
	rec, _ := agentaudit.New(sink, agentaudit.WithMode(mode))
	b.Cleanup(func() { rec.Close() })
	p, err := llmproxy.New(llmproxy.Config{Recorder: rec, Upstream: up})
	if err != nil {
		b.Fatal(err)
	}
	srv := httptest.NewServer(p)
	b.Cleanup(srv.Close)
	return srv, rec
}

// BenchmarkMessages: what the proxy adds to a non-streamed Messages call, each call paired with
// the same call made directly (benchlat: alternating order, both percentiles and their
// difference in one run), the proxy recording to an embedded data directory in sync mode
// (llm-proxy's default: committed before the answer is handed back), in async mode, and to a
// sink that stores nothing (the proxy's own cost); and what it adds to a streamed call's time to
// first byte, in both modes. The recorder is flushed between pairs, outside the timing.
//
//	go test -run '^$' -bench Messages -benchtime 2000x -count 3 ./llmproxy
func BenchmarkMessages(b *testing.B) {
	up := upstream()
	defer up.Close()
	// The client's own connection pool: http.DefaultTransport keeps 2 idle connections per host
	// and is what a proxy built without Base would share.
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	defer client.CloseIdleConnections()
	req := `{"model":"claude-opus-4-6","max_tokens":64,"messages":[{"role":"user","content":"where is my order"}]%s}`
	call := func(base string, stream bool) benchlat.Call {
		extra := ""
		if stream {
			extra = `,"stream":true`
		}
		body := fmt.Sprintf(req, extra)
		return func(b *testing.B) time.Duration {
			t := time.Now()
			r, _ := http.NewRequestWithContext(context.Background(), "POST", base+"/v1/messages", strings.NewReader(body))
			r.Header.Set("Content-Type", "application/json")
			r.Header.Set("X-Api-Key", "sk-bench")
			resp, err := client.Do(r)
			if err != nil {
				b.Fatal(err)
			}
			one := make([]byte, 1)
			if _, err := io.ReadFull(resp.Body, one); err != nil {
				b.Fatal(err)
			}
			firstByte := time.Since(t)
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if stream {
				return firstByte
			}
			return time.Since(t)
		}
	}
	sync, async := agentaudit.Sync, agentaudit.Async
	for _, tc := range []struct {
		name   string
		stream bool
		record bool
		mode   agentaudit.Mode
	}{{"sync", false, true, sync}, {"async", false, true, async}, {"discard", false, false, async},
		{"stream-ttfb/sync", true, true, sync}, {"stream-ttfb/async", true, true, async}} {
		b.Run(tc.name, func(b *testing.B) {
			srv, rec := proxyFor(b, up.URL, tc.record, tc.mode)
			direct, proxied := call(up.URL, tc.stream), call(srv.URL, tc.stream)
			for range 50 { // warm both paths' connections and the recorder
				direct(b)
				proxied(b)
			}
			flush := func() {
				if err := rec.Flush(context.Background()); err != nil {
					b.Fatal(err)
				}
			}
			flush()
			benchlat.Measure(b, direct, proxied, flush).Report(b)
		})
	}
}
