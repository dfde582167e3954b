package loadgen

import (
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/event"
)

// TestAppendEvent: the pre-rendered event is the one the generator always sent (the ~1 KiB tool
// call, built field by field before), with the id in place, and decodes strictly.
func TestAppendEvent(t *testing.T) {
	want := `{"id":"load-17-42","session_id":"load","kind":"tool_call","tool_name":"update_order_status","user_id":"usr_1","agent_id":"load",` +
		`"time":"2026-01-01T00:00:00Z","arguments":{"order_id":"ORD-456","note":"` + strings.Repeat("n", 200) + `"},` +
		`"result":{"success":false,"error":"Cannot cancel shipped order","detail":"` + strings.Repeat("d", 500) + `"},"duration_ms":38,"success":false}`
	got := appendEvent([]byte("prefix"), 17, 42)
	if string(got) != "prefix"+want {
		t.Fatalf("appendEvent:\n got %s\nwant prefix%s", got, want)
	}
	ev, err := event.Decode(got[len("prefix"):])
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "load-17-42" || ev.ToolName != "update_order_status" {
		t.Errorf("decoded id %q tool %q", ev.ID, ev.ToolName)
	}
}
