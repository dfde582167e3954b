// Package benchevent makes the 1 KiB tool-call event that the append benchmarks write, so the
// ledger's own benchmarks and the Tessera harness (bench/tessera, a nested module) append the
// very same bytes.
package benchevent

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

// KiB returns the i-th benchmark event: a failed tool call whose canonical form is about 1 KiB
// (TestKiBSize pins the size). Events differ in id, session, time and tool call id.
func KiB(i int64) *event.Event {
	return &event.Event{
		ID: fmt.Sprintf("bench-%012d", i), SessionID: fmt.Sprintf("sess-%d", i/50), AgentID: "support-v1",
		UserID: "usr_98765", UserRole: "support_agent", Kind: event.KindToolCall, Turn: 3, Step: 2,
		Time: time.Date(2026, 1, 1, 0, 0, 0, int(i), time.UTC), Trigger: event.TriggerUserRequest,
		Model: "claude-opus-4-6", ToolName: "update_order_status", ToolCallID: fmt.Sprintf("toolu_%d", i),
		Arguments:  json.RawMessage(`{"order_id":"ORD-456","status":"cancelled","note":"` + strings.Repeat("n", 200) + `"}`),
		Result:     json.RawMessage(`{"success":false,"error":"Cannot cancel shipped order","detail":"` + strings.Repeat("d", 235) + `"}`),
		DurationMS: 38, Success: event.Bool(false), Outcome: event.OutcomeError, Error: "Cannot cancel shipped order",
	}
}
