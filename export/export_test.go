package export_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/export"
	"github.com/agentaudit/agentaudit/internal/testenv"
	"github.com/agentaudit/agentaudit/query"
)

var update = flag.Bool("update", false, "rewrite golden files")

// records are the sample session (a support session and two medical accesses) plus a denied
// call, as stored: recorded_at fixed.
func records(t testing.TB) []query.Record {
	f, err := os.Open("../cli/sample-session.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []query.Record
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		ev, err := event.Parse(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, query.Record{Seq: int64(len(out)), Event: ev})
	}
	out = append(out, query.Record{Seq: int64(len(out)), Event: &event.Event{ID: "denied-1", Kind: event.KindToolCall, ToolName: "delete_records",
		Time: time.Date(2026, 3, 3, 8, 0, 0, 0, time.UTC), UserID: "intern_7", UserRole: "intern", Outcome: event.OutcomeDenied,
		Error: "=cmd|' /C calc'!A0", SubjectType: "patient", SubjectID: "P-123", Purpose: "research"}})
	for _, r := range out {
		r.Event.RecordedAt = time.Date(2026, 3, 4, 0, 0, 0, 0, time.UTC)
	}
	return out
}

func exportAll(t testing.TB, f export.Format, recs []query.Record) []byte {
	var buf bytes.Buffer
	w, err := export.NewWriter(&buf, f, export.Options{Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestGolden(t *testing.T) {
	recs := records(t)
	for _, f := range export.Formats {
		t.Run(string(f), func(t *testing.T) {
			got := exportAll(t, f, recs)
			if f == export.FHIR { // the bundle's timestamp is the export time
				got = []byte(strings.Replace(string(got), string(got[strings.Index(string(got), `"timestamp":`):strings.Index(string(got), `,"entry"`)]), `"timestamp":"T"`, 1))
			}
			path := filepath.Join("testdata", "sample."+string(f))
			if *update {
				os.WriteFile(path, got, 0o644)
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("differs from %s (go test -update to accept)", path)
			}
		})
	}
}

func TestFHIRCodes(t *testing.T) {
	recs := records(t)
	breakGlass := export.FHIRAuditEvent(recs[11], export.Options{})
	if breakGlass.Type.Code != "110113" || breakGlass.Subtype[0].Code != "110127" || breakGlass.Action != "R" {
		t.Errorf("break-glass type/subtype/action: %+v %+v %s", breakGlass.Type, breakGlass.Subtype, breakGlass.Action)
	}
	codes := []string{}
	for _, c := range breakGlass.PurposeOfEvent[0].Coding {
		codes = append(codes, c.Code)
	}
	if strings.Join(codes, ",") != "ETREAT" {
		t.Errorf("break-glass purpose %v", codes)
	}
	treat := export.FHIRAuditEvent(recs[10], export.Options{})
	if treat.PurposeOfEvent[0].Coding[0].Code != "TREAT" || treat.Entity[0].Role.Code != "1" || treat.Entity[0].What.Identifier.Value != "P-123" {
		t.Errorf("treatment access: %+v", treat)
	}
	if treat.Agent[0].Type.Coding[0].Code != "IRCP" || !treat.Agent[0].Requestor || treat.Agent[1].Type.Coding[0].Code != "110150" || treat.Agent[1].Requestor {
		t.Errorf("agents: %+v", treat.Agent)
	}
	for i, want := range map[int]string{2: "0", 4: "8", 12: "4"} {
		if got := export.FHIRAuditEvent(recs[i], export.Options{}).Outcome; got != want {
			t.Errorf("record %d outcome %s, want %s", i, got, want)
		}
	}
	if b, _ := json.Marshal(export.FHIRAuditEvent(recs[4], export.Options{})); strings.Contains(string(b), "ORD-456") {
		t.Error("a payload reached the FHIR export")
	}
}

func TestOCSFFields(t *testing.T) {
	recs := records(t)
	llm := export.OCSFAPIActivity(recs[1], export.Options{})
	if llm.ClassUID != 6003 || llm.TypeUID != 600399 || llm.AIModel.Name != "claude-opus-4-6" || llm.MessageContext.PromptTokens != 812 || llm.Metadata.Profiles[0] != "ai_operation" {
		t.Errorf("llm call: %+v", llm)
	}
	access := export.OCSFAPIActivity(recs[11], export.Options{})
	if access.ActivityID != 2 || access.TypeUID != 600302 || access.SeverityID != 3 || access.StatusID != 1 {
		t.Errorf("break-glass read: %+v", access)
	}
	failed := export.OCSFAPIActivity(recs[4], export.Options{})
	if failed.StatusID != 2 || failed.StatusDetail != "Cannot cancel shipped order" || failed.API.Operation != "update_order_status" || failed.Actor.User.UID != "usr_98765" {
		t.Errorf("failed call: %+v", failed)
	}
}

func TestCSVInjectionNeutralized(t *testing.T) {
	out := exportAll(t, export.CSV, records(t))
	rows, err := csv.NewReader(bytes.NewReader(out)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 14 || rows[0][0] != "seq" {
		t.Fatalf("%d rows, header %v", len(rows), rows[0])
	}
	for _, row := range rows {
		for _, cell := range row {
			if cell != "" && strings.ContainsRune("=+@", rune(cell[0])) {
				t.Errorf("cell %q could run as a formula", cell)
			}
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	if _, err := export.NewWriter(&bytes.Buffer{}, "xml", export.Options{}); err == nil || !strings.Contains(err.Error(), "fhir, ocsf, jsonl, csv") {
		t.Errorf("unknown format: %v", err)
	}
}

// TestFHIRSchema validates the exported Bundle and every AuditEvent against the FHIR R4 JSON
// schema, with the validator .ci/run installs from npm.
func TestFHIRSchema(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		testenv.Missing(t, "node is not installed")
	}
	if _, err := os.Stat("testdata/node_modules/@asymmetrik/fhir-json-schema-validator"); err != nil {
		testenv.Missing(t, "the FHIR validator is not installed (cd export/testdata && npm ci)")
	}
	path := filepath.Join(t.TempDir(), "bundle.json")
	os.WriteFile(path, exportAll(t, export.FHIR, records(t)), 0o644)
	out, err := exec.Command("node", "testdata/validate-fhir.js", path).CombinedOutput()
	if err != nil {
		t.Fatalf("FHIR R4 schema validation failed: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "13 resources checked, 0 invalid") {
		t.Errorf("validator said: %s", out)
	}
	// The validator itself must catch a broken resource.
	os.WriteFile(path, []byte(`{"resourceType":"Bundle","type":"collection","entry":[{"resource":{"resourceType":"AuditEvent","recorded":"yesterday","agent":[],"source":{}}}]}`), 0o644)
	if out, err := exec.Command("node", "testdata/validate-fhir.js", path).CombinedOutput(); err == nil {
		t.Errorf("an invalid AuditEvent passed validation: %s", out)
	}
}

func BenchmarkExport(b *testing.B) {
	recs := records(b)
	for _, f := range export.Formats {
		b.Run(string(f), func(b *testing.B) {
			w, _ := export.NewWriter(discard{}, f, export.Options{})
			i := 0
			for b.Loop() {
				if err := w.Write(recs[i%len(recs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			w.Close()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
