package server_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/mod/sumdb/note"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/server"
)

// TestVerifyJS runs the console's verify.js in Chromium on bundles the Go ledger produced: real
// ones must verify, each kind of alteration must fail at the step that catches it, and the
// module's RFC 8785 canonicalization must give back exactly the bytes Go hashed.
func TestVerifyJS(t *testing.T) {
	ctx := browser(t)
	dir := datadir.Dir{Path: filepath.Join(t.TempDir(), "data")}
	vkey, err := dir.Init(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	w, err := dir.OpenWriter(context.Background(), ledger.Options{Sanitizer: ledger.Unsanitized})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ks, _ := apikey.Open(dir.APIKeys())
	v, _ := dir.Verifier()
	srv, err := server.New(server.Config{Ledger: w.Ledger, Store: w.Store, Keys: ks, Verifier: v})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	defer hs.Close()

	ok := true
	dur := 12.5
	evs := []*event.Event{
		{Kind: event.KindToolCall, SessionID: "s-js", ToolName: "lookup", Arguments: json.RawMessage(`{"q":"<script>&\"é\u2028😀","n":[1,2.5,-0,1e21,0.000001]}`), Success: &ok, DurationMS: dur},
		{Kind: event.KindLLMCall, SessionID: "s-js", Model: "m", OutputText: "tab\tnewline\n nul\u0000 bell\u0007 \\ \"quoted\"", InputTokens: 12, OutputTokens: 34},
		{Kind: event.KindCustom, SessionID: "s-js", Metadata: json.RawMessage(`{"z":1,"a":{"é":2,"e":3,"E":4,"\u00e9x":5},"10":true,"9":false,"":null}`)},
	}
	for i := 0; i < 20; i++ { // a tree of more than a few leaves, so proofs have several levels
		evs = append(evs, &event.Event{Kind: event.KindCustom, SessionID: "s-js", OutputText: fmt.Sprint("filler ", i)})
	}
	var ids []string
	for _, ev := range evs {
		res, err := w.Ledger.Append(context.Background(), ev)
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	if _, err := w.Ledger.SignCheckpoint(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := do(ctx, chromedp.Navigate(hs.URL+"/")); err != nil {
		t.Fatal(err)
	}
	check := func(bundle any, key string) string {
		t.Helper()
		b, err := json.Marshal(bundle) // as the server writes it (HTML characters escaped)
		if err != nil {
			t.Fatal(err)
		}
		js := fmt.Sprintf(`import("/console/verify.js").then(m => m.verifyBundle(JSON.parse(%q), %q)).then(r => "OK " + r.message, e => "ERR " + e.message)`, b, key)
		out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	canon := func(raw []byte) string {
		js := fmt.Sprintf(`import("/console/verify.js").then(m => m.canonicalize(JSON.parse(%q)))`, raw)
		out, err := chromedp.Run(ctx, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	name := strings.SplitN(vkey, "+", 2)[0]
	for i, id := range []string{ids[0], ids[1], ids[2], ids[len(ids)-1]} {
		b, err := ledger.Prove(context.Background(), w.Store, id)
		if err != nil {
			t.Fatal(err)
		}
		if got := canon(b.Event); got != string(b.Event) {
			t.Errorf("event %d: JS canonical form\n%s\ndiffers from the hashed bytes\n%s", i, got, b.Event)
		}
		want := fmt.Sprintf("OK verified against checkpoint %d signed by %s+", len(ids), name)
		if got := check(b, vkey); !strings.HasPrefix(got, want) {
			t.Errorf("event %d: %s, want %s…", i, got, want)
		}
	}

	b, err := ledger.Prove(context.Background(), w.Store, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	_, otherVerifier, _ := note.GenerateKey(rand.Reader, name)
	flip := func(s string) string { // one bit of a base64 hash
		raw, _ := base64.StdEncoding.DecodeString(s)
		raw[0] ^= 1
		return base64.StdEncoding.EncodeToString(raw)
	}
	tampered := []struct {
		name, key, want string
		edit            func(b *ledger.Bundle)
	}{
		{"event altered", vkey, "ERR inclusion proof: the event at seq 0 does not hash to the signed root", func(b *ledger.Bundle) {
			b.Event = json.RawMessage(strings.Replace(string(b.Event), `"lookup"`, `"lookup2"`, 1))
		}},
		{"salt altered", vkey, "ERR inclusion proof: the event at seq 0", func(b *ledger.Bundle) { b.Salt = flip(b.Salt) }},
		{"proof hash altered", vkey, "ERR inclusion proof: the event at seq 0", func(b *ledger.Bundle) { b.Proof[1] = flip(b.Proof[1]) }},
		{"proof shortened", vkey, "ERR inclusion proof: shorter than the tree needs", func(b *ledger.Bundle) { b.Proof = b.Proof[:len(b.Proof)-1] }},
		{"seq moved", vkey, "ERR inclusion proof: the event at seq 1", func(b *ledger.Bundle) { b.Seq = 1 }},
		{"seq outside the tree", vkey, "ERR inclusion proof: seq 99 is not in a tree of size", func(b *ledger.Bundle) { b.Seq = 99 }},
		{"checkpoint root altered", vkey, "ERR signature: the Ed25519 signature by " + name + " does not verify", func(b *ledger.Bundle) {
			lines := strings.SplitN(b.Checkpoint, "\n", 4)
			lines[2] = flip(lines[2])
			b.Checkpoint = strings.Join(lines, "\n")
		}},
		{"another key of the same name", otherVerifier, "ERR signature: the checkpoint carries no signature by", func(*ledger.Bundle) {}},
		{"key hash wrong", name + "+00000000+" + vkey[len(name)+10:], "ERR verifier key: key hash 00000000 does not match", func(*ledger.Bundle) {}},
		{"not a key", "hello", "ERR verifier key: want name+hash+key", func(*ledger.Bundle) {}},
		{"unsigned note", vkey, "ERR checkpoint: not a signed note", func(b *ledger.Bundle) { b.Checkpoint = strings.SplitN(b.Checkpoint, "\n\n", 2)[0] + "\n" }},
	}
	for _, c := range tampered {
		bb := *b
		bb.Proof = append([]string(nil), b.Proof...)
		c.edit(&bb)
		if got := check(&bb, c.key); !strings.HasPrefix(got, c.want) {
			t.Errorf("%s: %s\nwant %s…", c.name, got, c.want)
		}
	}
}
