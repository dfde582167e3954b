package llmproxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/embedded"
	"github.com/agentaudit/agentaudit/event"
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

func proxyFor(b *testing.B, up string, record bool, mode agentaudit.Mode) *httptest.Server {
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
	return srv
}

func percentiles(b *testing.B, lat []time.Duration, unit string) {
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-"+unit)
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-"+unit)
}

// BenchmarkMessages: a non-streamed Messages call, directly and through the proxy recording to
// an embedded data directory in sync mode (llm-proxy's default: committed before the answer is
// handed back), in async mode, and to a sink that stores nothing (the proxy's own cost); and a
// streamed call's time to first byte, directly and through the proxy in both modes.
//
//	go test -run '^$' -bench Messages -benchtime 2000x -count 3 ./llmproxy
func BenchmarkMessages(b *testing.B) {
	up := upstream()
	defer up.Close()
	req := `{"model":"claude-opus-4-6","max_tokens":64,"messages":[{"role":"user","content":"where is my order"}]%s}`
	call := func(b *testing.B, base string, stream bool) (total, firstByte time.Duration) {
		extra := ""
		if stream {
			extra = `,"stream":true`
		}
		t := time.Now()
		r, _ := http.NewRequestWithContext(context.Background(), "POST", base+"/v1/messages", strings.NewReader(fmt.Sprintf(req, extra)))
		r.Header.Set("Content-Type", "application/json")
		r.Header.Set("X-Api-Key", "sk-bench")
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			b.Fatal(err)
		}
		one := make([]byte, 1)
		if _, err := io.ReadFull(resp.Body, one); err != nil {
			b.Fatal(err)
		}
		firstByte = time.Since(t)
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(t), firstByte
	}
	sync, async := agentaudit.Sync, agentaudit.Async
	for _, tc := range []struct {
		name   string
		proxy  bool
		stream bool
		record bool
		mode   agentaudit.Mode
	}{{"direct", false, false, false, sync}, {"proxied-sync", true, false, true, sync}, {"proxied-async", true, false, true, async},
		{"proxied-discard", true, false, false, sync},
		{"stream-ttfb/direct", false, true, false, sync}, {"stream-ttfb/proxied-sync", true, true, true, sync},
		{"stream-ttfb/proxied-async", true, true, true, async}} {
		b.Run(tc.name, func(b *testing.B) {
			base := up.URL
			if tc.proxy {
				base = proxyFor(b, up.URL, tc.record, tc.mode).URL
			}
			var lat []time.Duration
			for b.Loop() {
				total, first := call(b, base, tc.stream)
				if tc.stream {
					lat = append(lat, first)
				} else {
					lat = append(lat, total)
				}
			}
			percentiles(b, lat, "µs")
		})
	}
}
