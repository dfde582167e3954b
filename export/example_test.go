package export_test

import (
	"fmt"
	"os"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/export"
)

func ExampleNewWriter() {
	w, err := export.NewWriter(os.Stdout, export.CSV, export.Options{})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer w.Close()
	w.Write(export.Record{Seq: 7, Event: &event.Event{
		ID: "evt-1", Kind: event.KindToolCall, ToolName: "get_order", UserID: "usr_1",
		Time: time.Date(2026, 3, 2, 9, 14, 0, 0, time.UTC), Error: "=1+1", Success: event.Bool(false),
	}})
	// Output:
	// seq,id,session_id,agent_id,agent_name,agent_version,user_id,user_role,client_ip,user_agent,metadata,time,recorded_at,kind,turn,step,parent_id,trigger,model,provider,response_model,response_id,system_prompt_hash,input_messages,output_text,tool_calls_requested,input_tokens,output_tokens,latency_ms,stop_reason,tool_name,tool_call_id,tool_type,arguments,result,result_summary,error,error_type,duration_ms,success,requires_approval,approval_status,approver_id,decision,rationale,subject_type,subject_id,purpose,break_glass,break_glass_reason,outcome,retention_class,retain_until,record,redactions
	// 7,evt-1,,,,,usr_1,,,,,2026-03-02T09:14:00Z,,tool_call,,,,,,,,,,,,,,,,,get_order,,,,,,'=1+1,,,false,,,,,,,,,,,,,,,
}

func ExampleFHIRAuditEvent() {
	ae := export.FHIRAuditEvent(export.Record{Seq: 3, Event: &event.Event{
		ID: "0192f5a0-0000-7000-8000-000000000004", Kind: event.KindAccess, Time: time.Now(),
		UserID: "dr_chen", AgentID: "med-records", SubjectType: "patient", SubjectID: "P-123", Purpose: "treatment",
	}}, export.Options{})
	fmt.Println(ae.Type.Code, ae.Action, ae.Outcome, ae.PurposeOfEvent[0].Coding[0].Code, ae.Entity[0].Role.Display)
	// Output: rest R 0 TREAT Patient
}
