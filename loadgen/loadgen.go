// Package loadgen drives a running agentaudit server over HTTP and reports throughput and
// latency: batches of events from many connections, or single events at a steady rate. It is
// the load command's engine (cmd/agentaudit-load); it only ever targets the URL it is given, and
// stops by itself after the given duration.
package loadgen

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config is one load run.
type Config struct {
	URL         string        // the server, e.g. http://127.0.0.1:8433; several, comma-separated, share the connections round-robin
	Key         string        // a writer API key
	Connections int           // concurrent clients
	Batch       int           // events per request (1: single posts)
	Rate        int           // single posts: requests per second in total; 0: as fast as possible
	Duration    time.Duration // how long to run
}

// Result summarizes a run.
type Result struct {
	Requests, Events, Errors int64
	Elapsed                  time.Duration
	P50, P99, Max            time.Duration
}

func (r Result) String() string {
	return fmt.Sprintf("%d requests, %d events in %.1fs: %.0f events/s, %.0f req/s; latency p50 %v p99 %v max %v; %d errors",
		r.Requests, r.Events, r.Elapsed.Seconds(), float64(r.Events)/r.Elapsed.Seconds(), float64(r.Requests)/r.Elapsed.Seconds(),
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), r.Errors)
}

// eventHead and eventTail surround the id of the ~1 KiB tool-call event every request carries.
// They are rendered once: the generator shares the cores with the server it measures, so each
// event costs it only its id and a copy.
const eventHead = `{"id":"`

var eventTail = `","session_id":"load","kind":"tool_call","tool_name":"update_order_status","user_id":"usr_1","agent_id":"load",` +
	`"time":"2026-01-01T00:00:00Z","arguments":{"order_id":"ORD-456","note":"` + strings.Repeat("n", 200) + `"},` +
	`"result":{"success":false,"error":"Cannot cancel shipped order","detail":"` + strings.Repeat("d", 500) + `"},"duration_ms":38,"success":false}`

// appendEvent appends the event with id load-<run>-<n>.
func appendEvent(dst []byte, run, n int64) []byte {
	dst = append(dst, eventHead...)
	dst = append(dst, "load-"...)
	dst = strconv.AppendInt(dst, run, 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, n, 10)
	return append(dst, eventTail...)
}

// Run runs the load until cfg.Duration has passed or ctx ends.
func Run(ctx context.Context, cfg Config) (Result, error) {
	if cfg.Connections < 1 || cfg.Batch < 1 || cfg.Duration <= 0 {
		return Result{}, fmt.Errorf("loadgen: connections, batch and duration must be positive")
	}
	urls := strings.Split(cfg.URL, ",")
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	tr := &http.Transport{MaxIdleConnsPerHost: cfg.Connections, MaxConnsPerHost: cfg.Connections}
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()
	var seq atomic.Int64
	var res Result
	var mu sync.Mutex
	var lats []time.Duration
	// A steady rate is paced by schedule, not a ticker (which drops ticks at high rates): request
	// n goes out at start + n/rate.
	var slot atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < cfg.Connections; c++ {
		wg.Add(1)
		url := urls[c%len(urls)] // several instances behind no balancer: each connection keeps to one
		go func() {
			defer wg.Done()
			var local []time.Duration
			size := 0
			var reqs, evs, errs int64
			defer func() {
				mu.Lock()
				lats = append(lats, local...)
				res.Requests, res.Events, res.Errors = res.Requests+reqs, res.Events+evs, res.Errors+errs
				mu.Unlock()
			}()
			for ctx.Err() == nil {
				if cfg.Rate > 0 {
					at := start.Add(time.Duration(slot.Add(1)-1) * time.Second / time.Duration(cfg.Rate))
					if d := time.Until(at); d > 0 {
						select {
						case <-time.After(d):
						case <-ctx.Done():
							return
						}
					}
				}
				ctype := "application/json"
				if cfg.Batch > 1 {
					ctype = "application/x-ndjson"
				}
				// A fresh buffer each time, sized by the last: the transport may still read a
				// request's body after Do returns (when the server answers early).
				body := make([]byte, 0, size)
				for i := 0; i < cfg.Batch; i++ {
					body = appendEvent(body, start.UnixNano(), seq.Add(1))
					body = append(body, '\n')
				}
				size = len(body)
				req, _ := http.NewRequestWithContext(ctx, "POST", url+"/v1/events", bytes.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+cfg.Key)
				req.Header.Set("Content-Type", ctype)
				t0 := time.Now()
				resp, err := client.Do(req)
				if err != nil {
					if ctx.Err() == nil {
						errs++
					}
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				local = append(local, time.Since(t0))
				reqs++
				if resp.StatusCode == http.StatusOK {
					evs += int64(cfg.Batch)
				} else {
					errs++
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	if n := len(lats); n > 0 {
		res.P50, res.P99, res.Max = lats[n/2], lats[min(n-1, n*99/100)], lats[n-1]
	}
	return res, nil
}
