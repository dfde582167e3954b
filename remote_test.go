package agentaudit_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/server"
)

// TestRemoteRecordsThroughServer: a recorder on Dial batches into a real server on loopback;
// refusals come back per event, a wrong key fails the batch, a bad URL is refused at Dial.
func TestRemoteRecordsThroughServer(t *testing.T) {
	hs, w, writerKey := loopbackServer(t)
	remote, err := agentaudit.Dial(hs.URL, writerKey)
	if err != nil {
		t.Fatal(err)
	}
	rec, _ := agentaudit.New(remote, agentaudit.WithMode(agentaudit.Sync))
	ctx, sess, err := rec.StartSession(context.Background(), agentaudit.SessionInfo{ID: "remote-1", UserID: "u", AgentID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	if err := sess.Reasoning(ctx, "d", "r"); err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	n, _ := w.Store.Size(context.Background())
	if n < 2 {
		t.Fatalf("stored %d events", n)
	}

	// Per-event refusal (the server's conflict) and a batch-level failure (bad key).
	res, err := remote.Send(context.Background(), []*event.Event{{ID: "r1", Kind: event.KindCustom}, {ID: "r1", Kind: event.KindError}})
	if err != nil || res[0].Err != nil || res[0].Seq == 0 || res[1].Err == nil {
		t.Errorf("send: %v %+v", err, res)
	}
	bad, _ := agentaudit.Dial(hs.URL, "aak_wrong")
	if _, err := bad.Send(context.Background(), []*event.Event{{Kind: event.KindCustom}}); !errors.Is(err, agentaudit.ErrRemote) {
		t.Errorf("wrong key: %v", err)
	}
	for _, u := range []string{"", "ftp://x", "127.0.0.1:8433", "http://"} {
		if _, err := agentaudit.Dial(u, "k"); err == nil {
			t.Errorf("Dial(%q) accepted", u)
		}
	}
}

// loopbackServer is a real server on loopback over a new data directory, with a writer key.
func loopbackServer(t testing.TB) (*httptest.Server, *datadir.Writer, string) {
	t.Helper()
	d := datadir.Dir{Path: filepath.Join(t.TempDir(), "data")}
	if _, err := d.Init(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	w, err := d.OpenWriter(context.Background(), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	keys, _ := apikey.Open(d.APIKeys())
	writerKey, _, _ := keys.Create("agent", apikey.Writer)
	v, _ := d.Verifier()
	srv, err := server.New(server.Config{Ledger: w.Ledger, Store: w.Store, Keys: keys, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	return hs, w, writerKey
}
