package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/loadgen"
	"github.com/agentaudit/agentaudit/server"
)

// TestLoadgen runs the load engine briefly against a real server on loopback: every event it
// reports as acknowledged is in the log (and at most the requests cut off at the deadline more:
// the server commits what it accepted even when the client has gone).
func TestLoadgen(t *testing.T) {
	for _, cfg := range []loadgen.Config{
		{Connections: 4, Batch: 20, Duration: 300 * time.Millisecond},
		{Connections: 4, Batch: 1, Rate: 200, Duration: 300 * time.Millisecond},
	} {
		e := start(t, server.Config{}) // a fresh log: no late commits of an earlier run
		cfg.URL, cfg.Key = e.url, e.keys[apikey.Writer]
		before, _ := e.w.Store.Size(context.Background())
		res, err := loadgen.Run(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(200 * time.Millisecond) // requests cut off at the deadline may still commit
		after, _ := e.w.Store.Size(context.Background())
		grew := after - before
		if res.Errors != 0 || res.Events == 0 || grew < res.Events || grew > res.Events+int64(cfg.Connections*cfg.Batch) || res.P99 <= 0 {
			t.Errorf("%+v: %s; log grew by %d", cfg, res, grew)
		}
		if cfg.Rate > 0 && res.Requests > int64(cfg.Rate) {
			t.Errorf("paced at %d/s but sent %d requests in 0.3s", cfg.Rate, res.Requests)
		}
	}
}
