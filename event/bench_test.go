package event

import (
	"strings"
	"testing"
)

func BenchmarkCanonical(b *testing.B) {
	ev := fullEvent()
	c, _ := ev.Canonical()
	b.SetBytes(int64(len(c)))
	for b.Loop() {
		if _, err := ev.Canonical(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	c, _ := fullEvent().Canonical()
	b.SetBytes(int64(len(c)))
	for b.Loop() {
		if _, err := Parse(c); err != nil {
			b.Fatal(err)
		}
	}
}

// loadEvent is the ~1 KiB event the load command posts (cmd/agentaudit-load), as it arrives.
var loadEvent = []byte(`{"id":"load-1764771234567890123-4242","session_id":"load","kind":"tool_call","tool_name":"update_order_status","user_id":"usr_1","agent_id":"load","time":"2026-01-01T00:00:00Z","arguments":{"order_id":"ORD-456","note":"` +
	strings.Repeat("n", 200) + `"},"result":{"success":false,"error":"Cannot cancel shipped order","detail":"` + strings.Repeat("d", 500) + `"},"duration_ms":38,"success":false}`)

// BenchmarkDecodeLoadEvent and BenchmarkCanonicalLoadEvent are the two passes of the server's
// ingest over each posted event: decoding it, and its canonical bytes for the hash.
func BenchmarkDecodeLoadEvent(b *testing.B) {
	b.SetBytes(int64(len(loadEvent)))
	for b.Loop() {
		if _, err := Decode(loadEvent); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCanonicalLoadEvent(b *testing.B) {
	ev, err := Decode(loadEvent)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(loadEvent)))
	for b.Loop() {
		if _, err := ev.Canonical(); err != nil {
			b.Fatal(err)
		}
	}
}
