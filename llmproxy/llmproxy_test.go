package llmproxy_test

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/llmproxy"
)

// TestUpstreamConnectionsReused: 8 calls at once through the proxy, three times over. The upstream
// holds each round until all 8 have arrived, so every round needs 8 connections; the proxy keeps
// them between rounds, where http.DefaultTransport would keep 2 and dial 6 anew each round.
func TestUpstreamConnectionsReused(t *testing.T) {
	const inFlight, rounds = 8, 3
	var dialed atomic.Int64
	arrived := make(chan struct{}, inFlight)
	var mu sync.Mutex
	gate := make(chan struct{})
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		mu.Lock()
		g := gate
		mu.Unlock()
		arrived <- struct{}{}
		<-g
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, message)
	}))
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dialed.Add(1)
		}
	}
	up.Start()
	defer up.Close()
	rec, err := agentaudit.New(discard{})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	p, err := llmproxy.New(llmproxy.Config{Recorder: rec, Upstream: up.URL})
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(p)
	defer proxy.Close()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: inFlight}}
	for range rounds {
		var wg sync.WaitGroup
		errs := make(chan error, inFlight)
		for range inFlight {
			wg.Go(func() {
				resp, err := client.Post(proxy.URL+"/v1/messages", "application/json", strings.NewReader(`{"model":"claude-opus-4-6","messages":[]}`))
				if err != nil {
					errs <- err
					return
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			})
		}
		for range inFlight {
			<-arrived
		}
		mu.Lock()
		close(gate)
		gate = make(chan struct{})
		mu.Unlock()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
	if n := dialed.Load(); n != inFlight {
		t.Errorf("the proxy opened %d connections to the upstream for %d rounds of %d calls at once; want %d, kept between rounds", n, rounds, inFlight, inFlight)
	}
}
