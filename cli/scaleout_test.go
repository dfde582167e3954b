package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/internal/pgtest"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/store"
	"github.com/agentaudit/agentaudit/store/postgres"
)

// instance is one `agentaudit serve` process on the shared database, in a data directory of its
// own holding the same keys (a machine of its own), restarted on the same address.
type instance struct {
	t    *testing.T
	dir  string
	url  string // the database
	addr string
	args string
	cmd  *exec.Cmd
	log  *syncBuffer
}

func (in *instance) start() {
	in.t.Helper()
	in.cmd = exec.Command(os.Args[0], "-test.run=^$")
	in.cmd.Env = append(os.Environ(), "AGENTAUDIT_TEST_CLI=--data "+in.dir+" --store "+in.url+" serve --listen "+in.addr+" "+in.args)
	in.log = &syncBuffer{}
	in.cmd.Stderr = in.log
	if err := in.cmd.Start(); err != nil {
		in.t.Fatal(err)
	}
	for i := 0; i < 600; i++ {
		if resp, err := http.Get("http://" + in.addr + "/readyz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	in.t.Fatalf("serve on %s did not get ready:\n%s", in.addr, in.log.String())
}

func (in *instance) kill() {
	in.cmd.Process.Signal(syscall.SIGKILL)
	in.cmd.Wait()
}

// copyDir copies the regular files of src to dst: what an operator copies to each machine.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// postBatch posts events as JSON Lines and returns the seq of each acknowledged id (all of them,
// or none when the answer is not 200).
func postBatch(client *http.Client, addr, key string, lines []string) (map[string]int64, int, error) {
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/events", strings.NewReader(strings.Join(lines, "\n")+"\n"))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return nil, resp.StatusCode, fmt.Errorf("%d: %s", resp.StatusCode, body)
	}
	var out struct {
		Results []struct {
			ID  string `json:"id"`
			Seq *int64 `json:"seq"`
		} `json:"results"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, 200, err
	}
	acked := map[string]int64{}
	for _, r := range out.Results {
		if r.Seq == nil {
			return nil, 200, fmt.Errorf("result without a seq: %s", body)
		}
		acked[r.ID] = *r.Seq
	}
	return acked, 200, nil
}

// Three serve instances on one PostgreSQL database take load at once; one of them is killed
// with SIGKILL mid-ingest ten times and restarted each time. Clients retry a batch that got no
// answer, with the same ids, at the next instance. Afterwards every acknowledged event is in
// the log exactly once, at the seq it was acknowledged with; verify passes; and every
// checkpoint, whichever instance signed it, is of the final tree.
func TestServeThreeInstancesKilled(t *testing.T) {
	db := pgtest.NewDB(t)
	base := t.TempDir()
	dir0 := filepath.Join(base, "i0")
	if code, _, errs := run(t, dir0, "", "--store", db, "init"); code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	code, out, errs := run(t, dir0, "", "keys", "create", "--role", "writer", "--name", "load")
	if code != 0 {
		t.Fatalf("keys create: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	key := lines[len(lines)-1]
	var ins []*instance
	for i := range 3 {
		dir := filepath.Join(base, fmt.Sprint("i", i))
		if i > 0 {
			copyDir(t, dir0, dir)
		}
		args := "--purge-every 0" // one scheduled purge for the log is enough: instance 0's
		if i == 0 {
			args = ""
		}
		in := &instance{t: t, dir: dir, url: db, addr: freeAddr(t), args: args}
		in.start()
		ins = append(ins, in)
	}
	defer func() {
		for _, in := range ins {
			in.kill()
		}
	}()

	var mu sync.Mutex
	acked := map[string]int64{}
	var ackCount, retries atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	client := &http.Client{Timeout: 20 * time.Second}
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				target := w % 3 // each batch first to the writer's own instance: all three take load
				var batch []string
				for j := range 1 + (i+w)%8 {
					batch = append(batch, fmt.Sprintf(`{"id":"w%d-%d-%d","kind":"tool_call","tool_name":"get_order","session_id":"s%d","time":"2026-01-01T00:00:00Z","arguments":{"n":%d}}`, w, i, j, w, i))
				}
				for attempt := 0; ; attempt++ { // until acknowledged, at the next instance on failure
					got, status, err := postBatch(client, ins[target].addr, key, batch)
					if err == nil {
						mu.Lock()
						for id, seq := range got {
							if prev, ok := acked[id]; ok && prev != seq {
								t.Errorf("%s acknowledged at seq %d and at %d", id, prev, seq)
							}
							acked[id] = seq
						}
						mu.Unlock()
						ackCount.Add(int64(len(got)))
						break
					}
					if status != 0 && status != http.StatusServiceUnavailable && status != http.StatusTooManyRequests {
						t.Errorf("instance %d answered %v", target, err)
						return
					}
					if attempt == 200 {
						t.Errorf("batch %d of writer %d never acknowledged: %v", i, w, err)
						return
					}
					retries.Add(1)
					target = (target + 1) % 3
					time.Sleep(10 * time.Millisecond)
				}
			}
		}()
	}
	for round := range 10 {
		// Kill mid-ingest: after events were acknowledged since the last restart, at a random
		// moment while the load goes on.
		before, waited := ackCount.Load(), time.Now()
		for ackCount.Load() == before && time.Since(waited) < 30*time.Second {
			time.Sleep(5 * time.Millisecond)
		}
		if ackCount.Load() == before {
			t.Errorf("round %d: no event acknowledged for 30s", round)
			break
		}
		if d := time.Since(waited); d > time.Second {
			t.Logf("round %d: %v until the next acknowledgement", round, d.Round(time.Millisecond))
		}
		time.Sleep(time.Duration(50+rand.IntN(250)) * time.Millisecond)
		in := ins[round%3]
		in.kill()
		time.Sleep(time.Duration(rand.IntN(100)) * time.Millisecond)
		in.start()
	}
	ctx := context.Background()
	st, err := postgres.Open(ctx, postgres.Config{URL: db, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	// The load goes on until the instances have signed minCheckpoints between them (they sign
	// every second while the log grows; the ten rounds may take less on a quiet machine).
	const minCheckpoints = 5
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if cps, err := st.Checkpoints(ctx); err == nil && len(cps) >= minCheckpoints {
			break
		}
	}
	stop.Store(true)
	wg.Wait()
	for _, in := range ins {
		in.kill()
	}
	t.Logf("%d events acknowledged, %d retried batches", len(acked), retries.Load())

	// Every batch was retried until acknowledged, so the clients' events in the log are exactly
	// the acknowledged ones (the servers may add their own: alerts, purges).
	stored := 0
	err = st.ScanEntries(ctx, 0, func(e store.Entry) error {
		seq, ok := acked[e.ID]
		switch {
		case ok && seq == e.Seq:
			stored++
		case ok:
			t.Errorf("%s acknowledged at seq %d, stored at %d", e.ID, seq, e.Seq)
		case strings.HasPrefix(e.ID, "w"):
			t.Errorf("%s stored at seq %d, never acknowledged", e.ID, e.Seq)
		}
		return nil
	})
	if err != nil || stored != len(acked) {
		t.Errorf("%d of %d acknowledged events stored at their seq (%v)", stored, len(acked), err)
	}
	if code, out, errs := run(t, dir0, "", "--store", db, "verify"); code != 0 {
		t.Errorf("verify: %d %s %s", code, out, errs)
	}
	v, err := datadir.Dir{Path: dir0}.Verifier()
	if err != nil {
		t.Fatal(err)
	}
	cps, err := st.Checkpoints(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hashes := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return st.ReadHashes(ctx, idx) })
	for _, cp := range cps {
		c, err := ledger.OpenCheckpoint(cp.Note, v)
		if err != nil {
			t.Fatal(err)
		}
		if root, err := tlog.TreeHash(c.N, hashes); err != nil || root != c.Hash {
			t.Errorf("checkpoint of %d events is not of the final tree (%v)", c.N, err)
		}
	}
	if len(cps) < minCheckpoints {
		t.Errorf("%d checkpoints signed, want at least %d", len(cps), minCheckpoints)
	}
}

// The database is lost while serve runs: ingest answers 503 with Retry-After and stores nothing
// of the refused batch; once the database is back, the same server ingests again (no restart),
// the refused batch retried with the same ids is stored once, and the log verifies.
func TestServeDatabaseLost(t *testing.T) {
	srv := pgtest.Private(t)
	db, err := srv.CreateDB("lost")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, errs := run(t, dir, "", "--store", db, "init"); code != 0 {
		t.Fatalf("init: %d %s", code, errs)
	}
	code, out, errs := run(t, dir, "", "keys", "create", "--role", "writer", "--name", "load")
	if code != 0 {
		t.Fatalf("keys create: %d %s", code, errs)
	}
	key := strings.TrimSpace(out[strings.LastIndex(strings.TrimSpace(out), "\n")+1:])
	in := &instance{t: t, dir: dir, url: db, addr: freeAddr(t), args: "--purge-every 0"}
	in.start()
	defer in.kill()
	client := &http.Client{Timeout: 30 * time.Second}
	batch := func(name string) []string {
		return []string{fmt.Sprintf(`{"id":"%s-1","kind":"custom","time":"2026-01-01T00:00:00Z"}`, name),
			fmt.Sprintf(`{"id":"%s-2","kind":"custom","time":"2026-01-01T00:00:00Z"}`, name)}
	}
	if _, status, err := postBatch(client, in.addr, key, batch("before")); err != nil {
		t.Fatalf("before: %d %v", status, err)
	}
	if err := srv.Crash(); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://"+in.addr+"/v1/events", strings.NewReader(strings.Join(batch("during"), "\n")))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/x-ndjson")
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), "Database unavailable") {
		t.Errorf("ingest with the database down: %d Retry-After %q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	var got map[string]int64
	for i := 0; ; i++ {
		var status int
		if got, status, err = postBatch(client, in.addr, key, batch("during")); err == nil {
			break
		}
		if status != http.StatusServiceUnavailable || i == 100 {
			t.Fatalf("after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if got["during-1"] != 2 || got["during-2"] != 3 {
		t.Errorf("the retried batch stored at %v, want seqs 2 and 3 (nothing of the refused attempt stored)", got)
	}
	if _, status, err := postBatch(client, in.addr, key, batch("after")); err != nil {
		t.Fatalf("after: %d %v", status, err)
	}
	// The server signs every second: wait for the checkpoint of all six.
	st, err := postgres.Open(context.Background(), postgres.Config{URL: db, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := 0; i < 100; i++ {
		if cp, err := st.LatestCheckpoint(context.Background()); err == nil && cp.Size == 6 {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.kill()
	if code, out, errs := run(t, dir, "", "--store", db, "verify"); code != 0 || !strings.Contains(out, "6 events") {
		t.Errorf("verify: %d %s %s", code, out, errs)
	}
}
