package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/store"
)

// killModel is a local Anthropic Messages upstream: a JSON answer, or an SSE stream when asked.
func killModel() *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		if bytes.Contains(raw, []byte(`"stream":true`)) {
			w.Header().Set("Content-Type", "text/event-stream")
			for _, e := range []string{
				"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-opus-4-6\",\"content\":[],\"stop_reason\":null,\"usage\":{\"input_tokens\":8,\"output_tokens\":1}}}\n\n",
				"event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
				"event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"done\"}}\n\n",
				"event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
				"event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\",\"stop_sequence\":null},\"usage\":{\"output_tokens\":2}}\n\n",
				"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
			} {
				io.WriteString(w, e)
				w.(http.Flusher).Flush()
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"id":"msg_2","type":"message","role":"assistant","model":"claude-opus-4-6","content":[{"type":"text","text":"done"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":8,"output_tokens":2}}`)
	}))
}

// TestLLMProxyKilled: `llm-proxy` (default mode) between clients and a local upstream is
// SIGKILLed at a random instant, twelve times, while four clients drive Messages calls through
// it, streamed and not. A call counts as acknowledged when its client read the whole answer
// (200 and the body to its end). Afterwards every acknowledged call is in the log exactly once;
// calls cut by the kill may be there (once) or not.
func TestLLMProxyKilled(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if code, _, stderr := run(t, dir, "", "init"); code != 0 {
		t.Fatal(stderr)
	}
	model := killModel()
	defer model.Close()
	const rounds, clients = 12, 4
	var acked []string
	for round := range rounds {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "AGENTAUDIT_TEST_CLI=--data "+dir+" llm-proxy --listen 127.0.0.1:0 --upstream "+model.URL)
		errPipe, _ := cmd.StderrPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// "llm-proxy: http://ADDR -> upstream" says where it listens.
		base := ""
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "llm-proxy:" {
				base = f[1]
				break
			}
		}
		if base == "" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: llm-proxy did not say where it listens", round)
		}
		go io.Copy(io.Discard, errPipe)

		var mu sync.Mutex
		var wg sync.WaitGroup
		stop := make(chan struct{})
		for c := range clients {
			wg.Go(func() {
				hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: c%2 == 0}}
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					marker := fmt.Sprintf("call %d/%d/%d end", round, c, i)
					body := fmt.Sprintf(`{"model":"claude-opus-4-6","max_tokens":16,"stream":%v,"messages":[{"role":"user","content":%q}]}`, i%2 == 1, marker)
					req, _ := http.NewRequestWithContext(context.Background(), http.MethodPost, base+"/v1/messages", strings.NewReader(body))
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("X-Api-Key", "sk-ant-test")
					resp, err := hc.Do(req)
					if err != nil {
						return // killed
					}
					_, rerr := io.ReadAll(resp.Body)
					resp.Body.Close()
					if rerr != nil || resp.StatusCode != http.StatusOK {
						return
					}
					mu.Lock()
					acked = append(acked, marker)
					mu.Unlock()
				}
			})
		}
		time.Sleep(time.Duration(100+rand.IntN(300)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		close(stop)
		wg.Wait()
	}
	if len(acked) < rounds*clients {
		t.Fatalf("only %d calls were answered in %d rounds: the test did not exercise the proxy", len(acked), rounds)
	}

	s, err := datadir.Dir{Path: dir}.OpenStore(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	re := regexp.MustCompile(`call \d+/\d+/\d+ end`)
	recorded := map[string]int{}
	err = s.ScanEntries(context.Background(), 0, func(e store.Entry) error {
		ev, err := event.ParseStored(e.Body)
		if err != nil {
			return err
		}
		if ev.Kind == event.KindLLMCall {
			for _, m := range re.FindAllString(string(ev.InputMessages), -1) {
				recorded[m]++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	lost := 0
	for _, m := range acked {
		if recorded[m] != 1 {
			lost++
			if lost <= 5 {
				t.Errorf("%q was answered and is in the log %d times", m, recorded[m])
			}
		}
	}
	for m, n := range recorded {
		if n > 1 {
			t.Errorf("%q is in the log %d times", m, n)
		}
	}
	t.Logf("%d rounds, %d calls answered, %d in the log, %d answered but not recorded", rounds, len(acked), len(recorded), lost)
}

// TestLLMProxySpoolWhileServerDown: `llm-proxy --server URL --spool FILE` (sync, the default)
// with the server down answers the agent at once, and by then the call is in the spool (fsynced:
// it survives the SIGKILL that follows), sanitized: the secret and the e-mail address planted in
// the prompt are not in the spool file's bytes.
func TestLLMProxySpoolWhileServerDown(t *testing.T) {
	const token = "ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5"
	const email = "jane.doe@example.com"
	tmp := t.TempDir()
	keyFile, spool := filepath.Join(tmp, "key"), filepath.Join(tmp, "spool")
	os.WriteFile(keyFile, []byte("aak_writer_test_key\n"), 0o600)
	model := killModel()
	defer model.Close()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "AGENTAUDIT_TEST_CLI=--data "+filepath.Join(tmp, "data")+" llm-proxy --listen 127.0.0.1:0 --upstream "+model.URL+
		" --server http://127.0.0.1:1 --key-file "+keyFile+" --spool "+spool)
	errPipe, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Signal(syscall.SIGKILL); cmd.Wait() }()
	base := ""
	sc := bufio.NewScanner(errPipe)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) >= 2 && f[0] == "llm-proxy:" {
			base = f[1]
			break
		}
	}
	if base == "" {
		t.Fatal("llm-proxy did not say where it listens")
	}
	go io.Copy(io.Discard, errPipe)
	body := fmt.Sprintf(`{"model":"claude-opus-4-6","max_tokens":16,"messages":[{"role":"user","content":"mail %s the token %s"}]}`, email, token)
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Post(base+"/v1/messages", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatalf("the call waited for the server that is down: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %s", resp.Status)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	b, err := os.ReadFile(spool)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"kind":"llm_call"`)) {
		t.Fatalf("the answered call is not in the spool:\n%.500s", b)
	}
	for _, planted := range []string{token, email} {
		if bytes.Contains(b, []byte(planted)) {
			t.Errorf("the spool holds %q", planted)
		}
	}
}
