package supportagent_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/embedded"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/examples/scriptedmodel"
	supportagent "github.com/agentaudit/agentaudit/examples/support-agent"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/query"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

func TestTrail(t *testing.T) {
	model, err := scriptedmodel.Start(supportagent.Script())
	if err != nil {
		t.Fatal(err)
	}
	defer model.Close()
	dir := t.TempDir()
	sink, err := embedded.Open(dir, ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rec, err := agentaudit.New(sink)
	if err != nil {
		t.Fatal(err)
	}
	s, err := supportagent.Run(context.Background(), rec, model.URL, "sk-ant-demo-key-000", supportagent.Request)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s.Answer, "RET-789") {
		t.Errorf("answer %q", s.Answer)
	}
	st, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "ledger.db"), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	recs, err := query.Session(context.Background(), st, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	// Event by event: kind, tool, outcome, and the parent each tool call points to.
	want := []struct {
		kind    event.Kind
		tool    string
		failed  bool
		callID  string
		parentN int // index of the expected parent in recs, -1 for none checked
	}{
		{event.KindSessionStart, "", false, "", -1},
		{event.KindLLMCall, "", false, "", -1},
		{event.KindToolCall, "get_order", false, "toolu_01", 1},
		{event.KindLLMCall, "", false, "", -1},
		{event.KindToolCall, "get_customer", false, "toolu_02", 3},
		{event.KindLLMCall, "", false, "", -1},
		{event.KindToolCall, "update_order_status", true, "toolu_03", 5},
		{event.KindLLMCall, "", false, "", -1},
		{event.KindApprovalRequest, "initiate_return", false, "", -1},
		{event.KindApprovalDecision, "initiate_return", false, "", 8},
		{event.KindToolCall, "initiate_return", false, "toolu_04", 7},
		{event.KindToolResult, "initiate_return", false, "toolu_04", 10},
		{event.KindLLMCall, "", false, "", -1},
		{event.KindFinalOutput, "", false, "", -1},
		{event.KindSessionEnd, "", false, "", -1},
	}
	if len(recs) != len(want) {
		for _, r := range recs {
			t.Log(r.Event.Kind, r.Event.ToolName)
		}
		t.Fatalf("%d events, want %d", len(recs), len(want))
	}
	for i, w := range want {
		ev := recs[i].Event
		failed := ev.Success != nil && !*ev.Success
		if ev.Kind != w.kind || ev.ToolName != w.tool || failed != w.failed || ev.ToolCallID != w.callID {
			t.Errorf("event %d: %s %s failed=%v call=%s; want %s %s failed=%v call=%s", i, ev.Kind, ev.ToolName, failed, ev.ToolCallID, w.kind, w.tool, w.failed, w.callID)
		}
		if w.parentN >= 0 && ev.ParentID != recs[w.parentN].Event.ID {
			t.Errorf("event %d (%s %s) points to %s, want event %d", i, ev.Kind, ev.ToolName, ev.ParentID, w.parentN)
		}
		if ev.UserID != "usr_98765" || ev.AgentID != "support-v1" || ev.SystemPromptHash == "" {
			t.Errorf("event %d lacks attribution: %s", i, ev.Attribution())
		}
	}
	if e := recs[6].Event; e.Error != "Cannot cancel shipped order" || !strings.Contains(string(e.Arguments), `"status":"cancelled"`) {
		t.Errorf("the refused cancellation: %+v", e)
	}
	if e := recs[1].Event; e.InputTokens != 812 || e.OutputTokens != 64 || e.StopReason != "tool_use" || !strings.Contains(string(e.ToolCallsRequested), "toolu_01") {
		t.Errorf("first LLM call: %+v", e)
	}
	var text strings.Builder
	query.WriteTimeline(&text, recs)
	if !strings.Contains(text.String(), `❌ update_order_status({"order_id": "ORD-456", "status": "cancelled"}) → error: Cannot cancel shipped order`) {
		t.Errorf("timeline:\n%s", text.String())
	}
}
