package store_test

import (
	"testing"

	"github.com/agentaudit/agentaudit/store"
)

var kib = []byte(`{"agent_id":"support-v1","arguments":{"note":"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn","order_id":"ORD-456","status":"cancelled"},"duration_ms":38,"error":"Cannot cancel shipped order","id":"bench-000000000001","kind":"tool_call","model":"claude-opus-4-6","outcome":"error","recorded_at":"2026-12-03T13:15:06.123456789Z","result":{"detail":"ddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd","error":"Cannot cancel shipped order","success":false},"retain_until":"2027-12-03T13:15:06.123456789Z","retention_class":"general","session_id":"sess-0","step":2,"success":false,"time":"2026-01-01T00:00:00.000000001Z","tool_call_id":"toolu_1","tool_name":"update_order_status","trigger":"user_request","turn":3,"user_id":"usr_98765","user_role":"support_agent"}`)

func BenchmarkColumnsOf(b *testing.B) {
	for b.Loop() {
		if _, err := store.ColumnsOf(kib); err != nil {
			b.Fatal(err)
		}
	}
}
