package server_test

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/internal/cputime"
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
	cpu0 := cputime.Process()
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
	reportCPU(b, cpu0, b.N*100)
}

// reportCPU reports the process's CPU time per event since cpu0 (server, clients and the ledger
// together, as they share the cores).
func reportCPU(b *testing.B, cpu0 time.Duration, events int) {
	if cpu := cputime.Process(); cpu > 0 && events > 0 {
		b.ReportMetric(float64((cpu-cpu0).Microseconds())/float64(events), "cpu-µs/event")
	}
}

// BenchmarkIngestSingle: 64 clients each posting one event of about 1 KiB at a time, as fast as
// the server answers (each answer once durable), with the latency percentiles of the posts.
func BenchmarkIngestSingle(b *testing.B) {
	e := start(b, server.Config{})
	key := e.keys[apikey.Writer]
	var n atomic.Int64
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 128}}
	lat := make(chan time.Duration, 1<<20)
	b.SetParallelism(32)
	b.ResetTimer()
	cpu0 := cputime.Process()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			body := fmt.Sprintf(`{"id":"one-%d","session_id":"load","kind":"tool_call","tool_name":"update_order_status","user_id":"usr_1","agent_id":"load","time":"2026-01-01T00:00:00Z","arguments":{"order_id":"ORD-456","note":"%s"},"result":{"detail":"%s"},"duration_ms":38,"success":false}`,
				n.Add(1), strings.Repeat("n", 200), strings.Repeat("d", 500))
			req, _ := http.NewRequest("POST", e.url+"/v1/events", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			req.Header.Set("Content-Type", "application/json")
			t0 := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				b.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			select {
			case lat <- time.Since(t0):
			default:
			}
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
				b.Errorf("status %d", resp.StatusCode)
				return
			}
		}
	})
	b.StopTimer()
	reportCPU(b, cpu0, b.N)
	close(lat)
	var ds []time.Duration
	for d := range lat {
		ds = append(ds, d)
	}
	slices.Sort(ds)
	if len(ds) > 0 {
		b.ReportMetric(float64(ds[len(ds)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(ds[len(ds)*99/100].Microseconds()), "p99-µs")
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
