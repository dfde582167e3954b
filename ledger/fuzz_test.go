package ledger_test

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
)

// FuzzVerifyBundle checks that no input panics VerifyBundle and that whatever verifies is exactly
// an event of the log at its seq (soundness: a forged bundle never verifies).
func FuzzVerifyBundle(f *testing.F) {
	fx := newFixture(f, ledger.Options{Sanitizer: ledger.Unsanitized})
	appendN(f, fx.l, 0, 9)
	bodies := map[int64]string{}
	for i := int64(0); i < 9; i++ {
		e, err := fx.st.Entry(context.Background(), i)
		if err != nil {
			f.Fatal(err)
		}
		bodies[i] = string(e.Body)
	}
	for _, id := range []string{"ev-00000", "ev-00004", "ev-00008"} {
		b, err := fx.l.Prove(context.Background(), id)
		if err != nil {
			f.Fatal(err)
		}
		data, _ := json.Marshal(b)
		f.Add(data)
		ind, _ := json.MarshalIndent(b, "", " ")
		f.Add(ind)
	}
	f.Add([]byte(`{"format":"agentaudit-bundle/v1","seq":-1,"event":{},"salt":"","proof":[],"checkpoint":""}`))
	f.Add([]byte(`{}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		vb, err := ledger.VerifyBundle(data, fx.v)
		if err != nil {
			return
		}
		var b ledger.Bundle
		json.Unmarshal(data, &b)
		c, err := event.Canonicalize(b.Event)
		if err != nil {
			t.Fatalf("verified an uncanonicalizable event: %v", err)
		}
		if bodies[vb.Seq] != string(c) {
			t.Fatalf("verified a bundle for seq %d whose event is not the logged one:\n%s\n%s", vb.Seq, c, bodies[vb.Seq])
		}
	})
}
