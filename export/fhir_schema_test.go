package export_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/export"
	"github.com/agentaudit/agentaudit/internal/testenv"
)

// validatorDir is where `npm ci` in export/testdata installs the FHIR validator.
const validatorDir = "testdata/node_modules/@asymmetrik/fhir-json-schema-validator"

// validateFHIR runs testdata/validate-fhir.js on the files; it skips (or fails under
// AGENTAUDIT_STRICT=1) when node or the validator is not installed.
func validateFHIR(t *testing.T, files ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Missing(t, "node is not installed (the FHIR R4 schema validator runs on it)")
	}
	if _, err := os.Stat(filepath.Join(validatorDir, "fhir.schema.json")); err != nil {
		testenv.Missing(t, "the FHIR R4 schema validator is not installed: cd export/testdata && npm ci")
	}
	out, err := exec.Command("node", append([]string{"testdata/validate-fhir.js"}, files...)...).CombinedOutput()
	return string(out), err
}

// TestFHIRSchema validates the exported Bundle and every AuditEvent in it against the official
// FHIR R4 JSON schema (fhir.schema.json 4.0): the sample events, the edge cases (no user, a
// non-UUID id, a tool name with odd spacing, only a model) and an empty Bundle.
func TestFHIRSchema(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, recs []export.Record) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, exportAll(t, export.FHIR, recs), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	recs := records(t)
	at := recs[0].Event.Time
	edge := []export.Record{
		{Seq: 1, Event: &event.Event{ID: "x y/z", Kind: event.KindToolCall, Time: at, ToolName: " odd  tool\tname ", Outcome: event.OutcomeDenied}},
		{Seq: 2, Event: &event.Event{ID: "m", Kind: event.KindLLMCall, Time: at, Model: "gpt-4o", LatencyMS: 0.5}},
		{Seq: 3, Event: &event.Event{ID: "s", Kind: event.KindAccess, Time: at, SubjectType: "ward", SubjectID: "W-1", BreakGlass: true, Purpose: "unlisted purpose"}},
	}
	files := []string{write("sample.json", recs), write("edge.json", edge), write("empty.json", nil)}
	out, err := validateFHIR(t, files...)
	if err != nil {
		t.Fatalf("FHIR R4 schema validation failed: %v\n%s", err, out)
	}
	if want := "16 resources checked, 0 invalid"; !strings.Contains(out, want) {
		t.Errorf("validator said %q, want %q", out, want)
	}
}

// TestFHIRSchemaCatchesErrors: the validator must reject each defect the schema forbids, or a
// passing TestFHIRSchema proves nothing. Each file is a Bundle of one AuditEvent with one defect
// (so two invalid resources: the Bundle and its entry). The schema does not check every
// cardinality (a missing agent.requestor passes it) nor any terminology: TestFHIRCodes does.
func TestFHIRSchemaCatchesErrors(t *testing.T) {
	const valid = `"type":{"code":"x"},"action":"E","recorded":"2026-01-01T00:00:00Z","outcome":"0",` +
		`"agent":[{"requestor":true}],"source":{"observer":{"display":"log"}}`
	defects := map[string]string{
		"id":       `"id":"has space",` + valid,
		"recorded": strings.Replace(valid, "2026-01-01T00:00:00Z", "yesterday", 1),
		"outcome":  strings.Replace(valid, `"outcome":"0"`, `"outcome":"3"`, 1),
		"action":   strings.Replace(valid, `"action":"E"`, `"action":"X"`, 1),
		"unknown":  `"severity":"Informational",` + valid, // an R5 element, not R4's
	}
	dir := t.TempDir()
	var files []string
	for name, body := range defects {
		path := filepath.Join(dir, name+".json")
		bundle := `{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"AuditEvent",` + body + `}}]}`
		if err := os.WriteFile(path, []byte(bundle), 0o644); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	out, err := validateFHIR(t, files...)
	if want := "10 resources checked, 10 invalid"; err == nil || !strings.Contains(out, want) {
		t.Errorf("validator said %q (%v), want %q", out, err, want)
	}
}
