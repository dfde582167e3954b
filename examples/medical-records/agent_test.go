package medicalrecords_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/embedded"
	"github.com/agentaudit/agentaudit/event"
	medicalrecords "github.com/agentaudit/agentaudit/examples/medical-records"
	"github.com/agentaudit/agentaudit/examples/scriptedmodel"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/query"
	"github.com/agentaudit/agentaudit/store/sqlite"
)

func TestAccessTrail(t *testing.T) {
	model, err := scriptedmodel.Start(medicalrecords.Script())
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
	ctx := context.Background()
	routine, err := medicalrecords.Run(ctx, rec, model.URL, "k", medicalrecords.Clinician{UserID: "dr_smith", Role: "physician"}, medicalrecords.RoutineRequest)
	if err != nil {
		t.Fatal(err)
	}
	emergency, err := medicalrecords.Run(ctx, rec, model.URL, "k", medicalrecords.Clinician{UserID: "dr_jones", Role: "er_physician", BreakGlassReason: "unconscious patient, allergy check"}, medicalrecords.EmergencyRequest)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "ledger.db"), ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	wantKinds := map[string]string{
		routine:   "session_start llm_call tool_call tool_result llm_call final_output session_end",
		emergency: "session_start llm_call access tool_call tool_result llm_call final_output session_end",
	}
	for _, id := range []string{routine, emergency} {
		recs, err := query.Session(ctx, st, id)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, r := range recs {
			kinds = append(kinds, string(r.Event.Kind))
			if r.Event.Kind == event.KindToolResult {
				res := string(r.Event.Result)
				if !strings.Contains(res, "pii:patient_name:") || strings.Contains(res, "Maria Garcia") || strings.Contains(res, "123-45-6789") {
					t.Errorf("the record's PII is not pseudonymized: %s", res)
				}
			}
		}
		if got := strings.Join(kinds, " "); got != wantKinds[id] {
			t.Errorf("session %s: %s, want %s", id, got, wantKinds[id])
		}
		var reads int
		for _, r := range recs {
			if r.Event.ToolName == "get_patient_record" && r.Event.Kind == event.KindToolCall {
				reads++
				if r.Event.SubjectID != "P-123" || r.Event.SubjectType != "patient" || r.Event.Purpose == "" {
					t.Errorf("record read without subject and purpose: %+v", r.Event)
				}
			}
		}
		if reads != 1 {
			t.Errorf("session %s: %d record reads, want 1", id, reads)
		}
	}
	v, _ := ledger.ParseVerifier(filepath.Join(dir, "verifier.key"))
	now := time.Now()
	rep, err := query.AccessReportFor(ctx, st, st, v, "patient", "P-123", now.Add(-time.Hour), now.Add(time.Hour), now)
	if err != nil {
		t.Fatal(err)
	}
	// The routine read, the override, the emergency read (each read listed once, not as call and result).
	if rep.UniqueUsers != 2 || rep.BreakGlass != 1 || !rep.IntegrityVerified || rep.Total != 3 {
		t.Errorf("access report: total %d users %d break-glass %d verified %v", rep.Total, rep.UniqueUsers, rep.BreakGlass, rep.IntegrityVerified)
	}
}
