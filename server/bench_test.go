package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/server"
)

// BenchmarkIngestBatched: 32 clients posting NDJSON batches of 100 events of about 1 KiB to a
// server on loopback, each answered once durable: the load command's batched figure, in one
// process so that -cpuprofile shows where the server's time goes (parsing, sanitizing, the
// ledger) next to the clients'.
func BenchmarkIngestBatched(b *testing.B) {
	e := start(b, server.Config{})
	key := e.keys[apikey.Writer]
	var n atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetParallelism(16)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		var body bytes.Buffer
		for pb.Next() {
			body.Reset()
			for range 100 {
				fmt.Fprintf(&body, `{"id":"bench-%d","session_id":"load","kind":"tool_call","tool_name":"update_order_status","user_id":"usr_1","agent_id":"load","time":"2026-01-01T00:00:00Z","arguments":{"order_id":"ORD-456","note":"%s"},"result":{"success":false,"error":"Cannot cancel shipped order","detail":"%s"},"duration_ms":38,"success":false}`+"\n",
					n.Add(1), strings.Repeat("n", 200), strings.Repeat("d", 500))
			}
			req, _ := http.NewRequest("POST", e.url+"/v1/events", bytes.NewReader(body.Bytes()))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/x-ndjson")
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
