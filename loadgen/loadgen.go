// Package loadgen drives a running agentaudit server over HTTP and reports throughput and
// latency: batches of events from many connections, or single events at a steady rate. It is
// the load command's engine (cmd/agentaudit-load); it only ever targets the URL it is given, and
// stops by itself after the given duration.
package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
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
	// P99Scheduled, at a steady rate, counts each request from when the schedule said it should
	// go out rather than from when it went: a generator (or machine) that falls behind shows here
	// instead of hiding the wait (coordinated omission).
	P99Scheduled time.Duration
}

func (r Result) String() string {
	s := fmt.Sprintf("%d requests, %d events in %.1fs: %.0f events/s, %.0f req/s; latency p50 %v p99 %v max %v",
		r.Requests, r.Events, r.Elapsed.Seconds(), float64(r.Events)/r.Elapsed.Seconds(), float64(r.Requests)/r.Elapsed.Seconds(),
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond))
	if r.P99Scheduled > 0 {
		s += fmt.Sprintf(" (p99 from the schedule %v)", r.P99Scheduled.Round(time.Microsecond))
	}
	return s + fmt.Sprintf("; %d errors", r.Errors)
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
	var targets []*target
	for _, u := range strings.Split(cfg.URL, ",") {
		t, err := newTarget(u, cfg)
		if err != nil {
			return Result{}, err
		}
		targets = append(targets, t)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	end, _ := ctx.Deadline()
	var seq atomic.Int64
	var res Result
	var mu sync.Mutex
	var lats, late []time.Duration
	// A steady rate is paced by schedule, not a ticker (which drops ticks at high rates): request
	// n goes out at start + n/rate.
	var slot atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for c := 0; c < cfg.Connections; c++ {
		wg.Add(1)
		conn := &conn{target: targets[c%len(targets)]} // several instances behind no balancer: each connection keeps to one
		go func() {
			defer wg.Done()
			defer conn.close()
			var local, localLate []time.Duration
			var reqs, evs, errs int64
			defer func() {
				mu.Lock()
				lats, late = append(lats, local...), append(late, localLate...)
				res.Requests, res.Events, res.Errors = res.Requests+reqs, res.Events+evs, res.Errors+errs
				mu.Unlock()
			}()
			timer := time.NewTimer(time.Hour)
			defer timer.Stop()
			var body []byte
			for ctx.Err() == nil {
				var at time.Time
				if cfg.Rate > 0 {
					at = start.Add(time.Duration(slot.Add(1)-1) * time.Second / time.Duration(cfg.Rate))
					if d := time.Until(at); d > 0 {
						timer.Reset(d)
						select {
						case <-timer.C:
						case <-ctx.Done():
							return
						}
					}
				}
				body = body[:0]
				for i := 0; i < cfg.Batch; i++ {
					body = appendEvent(body, start.UnixNano(), seq.Add(1))
					body = append(body, '\n')
				}
				t0 := time.Now()
				status, err := conn.post(ctx, body)
				done := time.Now()
				if err != nil {
					if !cutOff(ctx, err, done, end) {
						errs++
					}
					continue
				}
				local = append(local, done.Sub(t0))
				if cfg.Rate > 0 {
					localLate = append(localLate, done.Sub(at))
				}
				reqs++
				if status == http.StatusOK {
					evs += int64(cfg.Batch)
				} else {
					errs++
				}
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.P50, res.P99, res.Max = quantiles(lats)
	_, res.P99Scheduled, _ = quantiles(late)
	return res, nil
}

// quantiles sorts lats and gives its median, 99th percentile and maximum.
func quantiles(lats []time.Duration) (p50, p99, max time.Duration) {
	n := len(lats)
	if n == 0 {
		return 0, 0, 0
	}
	slices.Sort(lats)
	return lats[n/2], lats[min(n-1, n*99/100)], lats[n-1]
}

// A target is one server the connections post to: where to dial, and the request head every
// post shares up to its Content-Length.
type target struct {
	addr string      // host:port
	tls  *tls.Config // nil for http
	head []byte
}

// cutOff reports whether err only says that the run ended during the request: such a request
// was neither answered nor refused, so it counts as neither. Any other error counts, even one that
// came after the end (a certificate refused in a handshake that outlasted the run is a failure).
func cutOff(ctx context.Context, err error, done, end time.Time) bool {
	if ctx.Err() == nil && done.Before(end) {
		return false
	}
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, net.ErrClosed)
}

func newTarget(raw string, cfg Config) (*target, error) {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("loadgen: url %q: want http://host:port or https://host:port", raw)
	}
	if strings.ContainsAny(cfg.Key, "\r\n") { // it goes into the request head as it is
		return nil, fmt.Errorf("loadgen: the API key holds a line break")
	}
	t := &target{addr: u.Host}
	if u.Port() == "" {
		t.addr = net.JoinHostPort(u.Hostname(), map[string]string{"http": "80", "https": "443"}[u.Scheme])
	}
	if u.Scheme == "https" {
		t.tls = &tls.Config{ServerName: u.Hostname()}
	}
	ctype := "application/json"
	if cfg.Batch > 1 {
		ctype = "application/x-ndjson"
	}
	t.head = fmt.Appendf(nil, "POST %s/v1/events HTTP/1.1\r\nHost: %s\r\nUser-Agent: agentaudit-load\r\nAuthorization: Bearer %s\r\nContent-Type: %s\r\nContent-Length: ",
		strings.TrimSuffix(u.Path, "/"), u.Host, cfg.Key, ctype)
	return t, nil
}

// A conn is one keep-alive HTTP/1.1 connection. The generator writes each request itself, head
// and body in one write, and reads the answer with net/http's own parser. net/http's Transport
// spent about 110 µs of the generator's CPU per single post (two goroutines per connection and
// their hand-offs), half as much again as the server under test on the cores the two share.
type conn struct {
	*target
	c   net.Conn
	br  *bufio.Reader
	buf []byte
}

// post sends body and reads the answer to the end, giving its status. After an error the
// connection is closed, and the next post dials again.
func (c *conn) post(ctx context.Context, body []byte) (int, error) {
	if c.c == nil {
		d := net.Dialer{Timeout: requestTimeout}
		nc, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return 0, err
		}
		if c.tls != nil {
			tc := tls.Client(nc, c.tls)
			if err := tc.HandshakeContext(ctx); err != nil {
				nc.Close()
				return 0, err
			}
			nc = tc
		}
		c.c, c.br = nc, bufio.NewReader(nc)
	}
	deadline := time.Now().Add(requestTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	c.c.SetDeadline(deadline)
	c.buf = append(c.buf[:0], c.head...)
	c.buf = strconv.AppendInt(c.buf, int64(len(body)), 10)
	c.buf = append(c.buf, "\r\n\r\n"...)
	c.buf = append(c.buf, body...)
	if _, err := c.c.Write(c.buf); err != nil {
		c.close()
		return 0, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	if err != nil || resp.Close {
		c.close()
	}
	if err != nil {
		return 0, err
	}
	return resp.StatusCode, nil
}

func (c *conn) close() {
	if c.c != nil {
		c.c.Close()
		c.c = nil
	}
}

// requestTimeout bounds one request, as the http.Client's Timeout did.
const requestTimeout = 30 * time.Second
