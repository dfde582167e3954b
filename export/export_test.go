package export_test

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/export"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// opts fixes everything that would otherwise vary between runs.
var opts = export.Options{Version: "test", LogOrigin: "example.org/agentaudit/log",
	BundleTime: time.Date(2026, 3, 5, 0, 0, 0, 0, time.UTC)}

// records are testdata/events.jsonl: an LLM call with tokens, a successful and a failed tool
// call, an access for treatment, a break-glass access, an approval decision, a denied call, a
// custom event with a non-UUID id and no user, an audit-log read, an error event.
func records(t testing.TB) []export.Record {
	t.Helper()
	f, err := os.Open("testdata/events.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []export.Record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		ev, err := event.Parse(sc.Bytes())
		if err != nil {
			t.Fatalf("events.jsonl:%d: %v", len(out)+1, err)
		}
		if err := ev.Validate(); err != nil {
			t.Fatalf("events.jsonl:%d: %v", len(out)+1, err)
		}
		out = append(out, export.Record{Seq: int64(100 + len(out)), Event: ev})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func exportAll(t testing.TB, f export.Format, recs []export.Record) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := export.NewWriter(&buf, f, opts)
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

var goldenName = map[export.Format]string{
	export.FHIR: "events.fhir.json", export.OCSF: "events.ocsf.jsonl",
	export.JSONL: "events.jsonl", export.CSV: "events.csv",
}

// TestGolden compares each format's export of testdata/events.jsonl with testdata/golden.
// go test ./export -update rewrites them; review the diff before committing it.
func TestGolden(t *testing.T) {
	recs := records(t)
	for _, f := range export.Formats() {
		t.Run(string(f), func(t *testing.T) {
			got := exportAll(t, f, recs)
			path := filepath.Join("testdata", "golden", goldenName[f])
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("export differs from %s (go test ./export -update, then review the diff):\n%s", path, firstDiff(got, want))
			}
		})
	}
}

func firstDiff(got, want []byte) string {
	g, w := strings.Split(string(got), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + itoa(i+1) + ":\n got: " + gl + "\nwant: " + wl
		}
	}
	return ""
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }

func codes(cs []export.Coding) string {
	var s []string
	for _, c := range cs {
		s = append(s, c.Code)
	}
	return strings.Join(s, ",")
}

// TestFHIRCodes pins the terminology, which a JSON schema cannot check: one row per event of
// testdata/events.jsonl.
func TestFHIRCodes(t *testing.T) {
	recs := records(t)
	tests := []struct {
		name                      string
		typ, subtype, action, out string
		purpose                   string // codes per purposeOfEvent concept, "-" for text only
		agents                    string // agent type codes; * marks the requestor
		subject                   string // type/role of the subject entity, "" for none
		desc                      string
	}{
		{"llm call", "110100", "llm_call", "E", "0", "", "IRCP*,110150", "", ""},
		{"tool call read", "110100", "tool_call,get_order", "R", "0", "", "IRCP*,110150", "", ""},
		{"tool call error", "110100", "tool_call,update_order_status", "U", "8", "", "IRCP*,110150", "",
			"InvalidStateError: Cannot cancel shipped order"},
		{"access for treatment", "rest", "read,access,get_patient_record", "R", "0", "TREAT", "IRCP*,110150", "1/1", ""},
		{"break-glass access", "110113", "110127,read,access,get_patient_record", "R", "0", "ETREAT", "IRCP*,110150", "1/1",
			"break-glass: unconscious patient in ER, allergies needed"},
		{"approval decision", "110100", "approval_decision,issue_refund", "E", "0", "", "IRCP*,110150,VRF", "", ""},
		{"denied delete", "110100", "tool_call,delete_records", "D", "4", "HRESCH", "IRCP*,110150", "1/1", "=cmd|' /C calc'!A0"},
		{"custom, no user", "110100", "custom", "E", "0", "", "110150*", "", ""},
		{"audit log read", "rest", "read,access", "R", "0", "-", "IRCP*,110150", "2/13", ""},
		{"error event", "110100", "error", "E", "8", "", "110150*", "", "RateLimitError: rate limited"},
	}
	if len(tests) != len(recs) {
		t.Fatalf("%d cases for %d records", len(tests), len(recs))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ae := export.FHIRAuditEvent(recs[i], opts)
			check := func(what, got, want string) {
				t.Helper()
				if got != want {
					t.Errorf("%s = %q, want %q", what, got, want)
				}
			}
			check("type", ae.Type.Code, tt.typ)
			check("subtype", codes(ae.Subtype), tt.subtype)
			check("action", ae.Action, tt.action)
			check("outcome", ae.Outcome, tt.out)
			check("outcomeDesc", ae.OutcomeDesc, tt.desc)
			var purposes []string
			for _, p := range ae.PurposeOfEvent {
				if c := codes(p.Coding); c != "" {
					purposes = append(purposes, c)
				} else {
					purposes = append(purposes, "-")
				}
			}
			check("purposeOfEvent", strings.Join(purposes, ","), tt.purpose)
			var agents []string
			for _, a := range ae.Agent {
				c := codes(a.Type.Coding)
				if a.Requestor {
					c += "*"
				}
				agents = append(agents, c)
			}
			check("agents", strings.Join(agents, ","), tt.agents)
			subject := ""
			if len(ae.Entity) == 2 {
				subject = ae.Entity[0].Type.Code + "/" + ae.Entity[0].Role.Code
				check("subject id", ae.Entity[0].What.Identifier.Value, recs[i].Event.SubjectID)
			}
			check("subject entity", subject, tt.subject)
			ledger := ae.Entity[len(ae.Entity)-1]
			check("ledger entity", ledger.What.Identifier.System+"|"+ledger.What.Identifier.Value, export.SystemEventID+"|"+recs[i].Event.ID)
			check("ledger seq", ledger.Detail[0].Type+"="+ledger.Detail[0].ValueString, "seq="+itoa(int(recs[i].Seq)))
			check("source type", codes(ae.Source.Type), "4")
			check("source observer", ae.Source.Observer.Identifier.Value, opts.LogOrigin)
		})
	}
}

func TestFHIRAgents(t *testing.T) {
	recs := records(t)
	ae := export.FHIRAuditEvent(recs[0], opts)
	user, app := ae.Agent[0], ae.Agent[1]
	if user.Who.Identifier.Value != "usr_98765" || user.Role[0].Text != "support_agent" || user.Network != nil {
		t.Errorf("user agent (BALP: no network on the user): %+v", user)
	}
	if app.Who.Identifier.Value != "support-v1" || app.Who.Display != "support-v1 1.4.2" || app.Requestor ||
		app.Network == nil || app.Network.Address != "203.0.113.7" || app.Network.Type != "2" {
		t.Errorf("application agent: %+v", app)
	}
	if ae.Recorded != "2026-03-02T09:14:02.5Z" || ae.Period.Start != "2026-03-02T09:14:01.25Z" || ae.Period.End != "2026-03-02T09:14:02.4304Z" {
		t.Errorf("recorded %s, period %+v", ae.Recorded, ae.Period)
	}
}

// TestFHIRID: a resource id must match [A-Za-z0-9.-]{1,64} and fullUrl urn:uuid needs a UUID.
func TestFHIRID(t *testing.T) {
	idRE := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	for _, id := range []string{"0192f5a0-0000-7000-8000-000000000001", "ext:batch-42/evt 9", "0192F5A0-0000-7000-8000-000000000001", strings.Repeat("x", 200)} {
		ae := export.FHIRAuditEvent(export.Record{Event: &event.Event{ID: id, Kind: event.KindCustom, Time: time.Now()}}, opts)
		if !idRE.MatchString(ae.ID) {
			t.Errorf("id %q → resource id %q", id, ae.ID)
		}
		again := export.FHIRAuditEvent(export.Record{Event: &event.Event{ID: id, Kind: event.KindCustom, Time: time.Now()}}, opts)
		if again.ID != ae.ID {
			t.Errorf("id %q maps to %q then %q", id, ae.ID, again.ID)
		}
		if got := ae.Entity[len(ae.Entity)-1].What.Identifier.Value; got != id {
			t.Errorf("ledger entity keeps %q, want %q", got, id)
		}
	}
}

// TestNoPayloads: FHIR and OCSF carry metadata, never arguments, results, messages or text.
func TestNoPayloads(t *testing.T) {
	recs := records(t)
	for _, f := range []export.Format{export.FHIR, export.OCSF} {
		out := string(exportAll(t, f, recs))
		for _, payload := range []string{"Please cancel", "Let me look up", "ORD-456", "cancelled", "within policy", "refund approved", "SUM(A1", "stale sessions"} {
			if strings.Contains(out, payload) {
				t.Errorf("%s export contains payload %q", f, payload)
			}
		}
	}
}

func TestOCSFFields(t *testing.T) {
	recs := records(t)
	tests := []struct {
		name                                 string
		activity, severity, status           int
		operation, model, provider, profiles string
		roleID                               int
		prompt, completion                   int64
	}{
		{"llm call", 99, 1, 1, "llm_call", "claude-opus-4-6", "anthropic", "ai_operation", 2, 812, 64},
		{"tool call read", 2, 1, 1, "get_order", "claude-opus-4-6", "anthropic", "ai_operation", 3, 0, 0},
		{"tool call error", 3, 2, 2, "update_order_status", "claude-opus-4-6", "anthropic", "ai_operation", 3, 0, 0},
		{"access for treatment", 2, 1, 1, "get_patient_record", "claude-sonnet-4-5", "anthropic", "ai_operation", 4, 0, 0},
		{"break-glass access", 2, 4, 1, "get_patient_record", "", "", "", 0, 0, 0},
		{"approval decision", 99, 1, 1, "issue_refund", "", "", "", 0, 0, 0},
		{"denied delete", 4, 3, 2, "delete_records", "", "", "", 0, 0, 0},
		{"custom, no user", 99, 1, 1, "custom", "anthropic.claude-3-haiku", "aws.bedrock", "ai_operation", 4, 0, 0},
		{"audit log read", 2, 1, 1, "access", "", "", "", 0, 0, 0},
		{"error event", 99, 2, 2, "error", "gpt-4o", "openai", "ai_operation", 4, 0, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := export.OCSFAPIActivity(recs[i], opts)
			if o.ClassUID != 6003 || o.CategoryUID != 6 || o.TypeUID != 600300+tt.activity || o.ActivityID != tt.activity {
				t.Errorf("class %d category %d type %d activity %d", o.ClassUID, o.CategoryUID, o.TypeUID, o.ActivityID)
			}
			if o.SeverityID != tt.severity || o.StatusID != tt.status {
				t.Errorf("severity %d status %d, want %d %d", o.SeverityID, o.StatusID, tt.severity, tt.status)
			}
			if o.API.Operation != tt.operation {
				t.Errorf("operation %q", o.API.Operation)
			}
			if got := strings.Join(o.Metadata.Profiles, ","); got != tt.profiles {
				t.Errorf("profiles %q", got)
			}
			if o.Time != recs[i].Event.Time.UnixMilli() || o.Metadata.UID != recs[i].Event.ID || o.Metadata.Sequence != recs[i].Seq || o.Metadata.Version != "1.8.0" {
				t.Errorf("time %d metadata %+v", o.Time, o.Metadata)
			}
			if tt.model == "" {
				if o.AIModel != nil || o.MessageContext != nil {
					t.Errorf("ai_operation fields without a model: %+v %+v", o.AIModel, o.MessageContext)
				}
				return
			}
			if o.AIModel.Name != tt.model || o.AIModel.AIProvider != tt.provider {
				t.Errorf("ai_model %+v", o.AIModel)
			}
			mc := o.MessageContext
			if mc.AIRoleID != tt.roleID || mc.PromptTokens != tt.prompt || mc.CompletionTokens != tt.completion || mc.TotalTokens != tt.prompt+tt.completion {
				t.Errorf("message_context %+v", mc)
			}
		})
	}
	o := export.OCSFAPIActivity(recs[2], opts)
	if o.StatusDetail != "Cannot cancel shipped order" || o.API.Request.UID != "toolu_02" || o.Actor.User.UID != "usr_98765" ||
		o.Actor.User.Groups[0].Name != "support_agent" || o.Actor.AppName != "support-v1" || o.SrcEndpoint.IP != "203.0.113.7" ||
		o.Duration != 38 || o.Unmapped.SessionID != "sess-support-1" || o.Unmapped.Seq != 102 {
		t.Errorf("failed tool call: %+v", o)
	}
	if o := export.OCSFAPIActivity(recs[0], opts); o.HTTPRequest == nil || o.HTTPRequest.UserAgent != "support-console/3.1" {
		t.Errorf("http_request: %+v", o.HTTPRequest)
	}
}

// ocsfRequired are the attributes OCSF 1.8.0 requires of an API Activity record, by path, from
// events/base_event.json, events/application/api_activity.json and the objects they use.
var ocsfRequired = []string{
	"activity_id", "category_uid", "class_uid", "severity_id", "time", "type_uid",
	"metadata.product", "metadata.version", "actor", "api.operation", "src_endpoint",
}

// TestOCSFRequired checks every record against the schema's required attributes and its
// at-least-one constraints (actor, src_endpoint, message_context), which Go's types alone do
// not guarantee.
func TestOCSFRequired(t *testing.T) {
	sc := bufio.NewScanner(bytes.NewReader(exportAll(t, export.OCSF, records(t))))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %d: %v", n, err)
		}
		get := func(path string) any {
			var v any = m
			for _, k := range strings.Split(path, ".") {
				o, ok := v.(map[string]any)
				if !ok {
					return nil
				}
				v = o[k]
			}
			return v
		}
		for _, p := range ocsfRequired {
			if get(p) == nil {
				t.Errorf("line %d: required %s missing", n, p)
			}
		}
		oneOf := func(obj string, keys ...string) {
			if get(obj) == nil {
				return
			}
			for _, k := range keys {
				if get(obj+"."+k) != nil {
					return
				}
			}
			t.Errorf("line %d: %s needs one of %v", n, obj, keys)
		}
		oneOf("actor", "process", "user", "invoked_by", "session", "app_name", "app_uid")
		oneOf("src_endpoint", "ip", "uid", "name", "hostname", "svc_name", "instance_uid", "interface_uid", "interface_name", "domain")
		oneOf("message_context", "application", "service")
		if get("ai_model") != nil && (get("ai_model.name") == nil || get("ai_model.ai_provider") == nil) {
			t.Errorf("line %d: ai_model needs name and ai_provider", n)
		}
		if get("api.request") != nil && get("api.request.uid") == nil {
			t.Errorf("line %d: api.request needs uid", n)
		}
		if tu, _ := get("type_uid").(float64); tu != 600300+get("activity_id").(float64) {
			t.Errorf("line %d: type_uid %v", n, tu)
		}
	}
}

// TestCSVColumns: the header is seq and every Event field, by JSON name, in declaration order.
func TestCSVColumns(t *testing.T) {
	want := []string{"seq"}
	typ := reflect.TypeFor[event.Event]()
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		want = append(want, name)
	}
	if got := export.CSVHeader(); !reflect.DeepEqual(got, want) {
		t.Errorf("CSV header\n got %v\nwant %v", got, want)
	}
}

func TestCSVValues(t *testing.T) {
	recs := records(t)
	rows, err := csv.NewReader(bytes.NewReader(exportAll(t, export.CSV, recs))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(recs)+1 {
		t.Fatalf("%d rows for %d records", len(rows), len(recs))
	}
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	cell := func(row int, name string) string { return rows[row][col[name]] }
	for _, c := range []struct {
		row        int
		name, want string
	}{
		{1, "seq", "100"},
		{1, "time", "2026-03-02T09:14:01.25Z"},
		{1, "input_messages", `[{"content":"Please cancel order ORD-456","role":"user"}]`},
		{1, "latency_ms", "1180.4"},
		{1, "input_tokens", "812"},
		{2, "success", "true"},
		{3, "success", "false"},
		{3, "duration_ms", "38.5"},
		{5, "break_glass", "true"},
		{6, "requires_approval", "true"},
		{7, "error", `'=cmd|' /C calc'!A0`}, // formula neutralized
		{8, "decision", "'-1 stale sessions closed"},
		{8, "metadata", `{"gen_ai.provider.name":"aws.bedrock","job":"+SUM(A1:A9)"}`},
		{9, "user_agent", "'@curl/8.5"},
		{9, "session_id", ""},
	} {
		if got := cell(c.row, c.name); got != c.want {
			t.Errorf("row %d %s = %q, want %q", c.row, c.name, got, c.want)
		}
	}
}

// TestCSVInjection: no cell of any row can start a formula, whatever field carries it.
func TestCSVInjection(t *testing.T) {
	var recs []export.Record
	for i, bad := range []string{"=1+1", "+1", "-1", "@SUM(A1)", "\t=1", "\r=1", "=HYPERLINK(\"http://x\")"} {
		recs = append(recs, export.Record{Seq: int64(i), Event: &event.Event{
			ID: bad, Kind: event.KindToolCall, ToolName: bad, UserID: bad, Error: bad, Decision: bad,
			Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Metadata: json.RawMessage(`{"a":"` + strings.NewReplacer("\t", `\t`, "\r", `\r`, `"`, `\"`).Replace(bad) + `"}`),
		}})
	}
	recs = append(recs, export.Record{Seq: -5, Event: &event.Event{ID: "neg", Kind: event.KindCustom, Turn: -3, Time: time.Now()}})
	rows, err := csv.NewReader(bytes.NewReader(exportAll(t, export.CSV, recs))).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	for i, row := range rows {
		for j, c := range row {
			if c != "" && strings.ContainsRune("=+-@\t\r", rune(c[0])) {
				t.Errorf("row %d column %s: %q can run as a formula", i, rows[0][j], c)
			}
		}
	}
	if got := rows[len(rows)-1][0]; got != "'-5" {
		t.Errorf("a negative seq is %q, want '-5", got)
	}
}

func TestJSONLRoundTrip(t *testing.T) {
	recs := records(t)
	sc := bufio.NewScanner(bytes.NewReader(exportAll(t, export.JSONL, recs)))
	sc.Buffer(nil, 1<<20)
	for i := 0; sc.Scan(); i++ {
		var line struct {
			Seq   int64           `json:"seq"`
			Event json.RawMessage `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatal(err)
		}
		want, _ := recs[i].Event.Canonical()
		if line.Seq != recs[i].Seq || !bytes.Equal(line.Event, want) {
			t.Errorf("line %d: seq %d, event %s", i, line.Seq, line.Event)
		}
	}
}

func TestEmpty(t *testing.T) {
	for f, want := range map[export.Format]string{
		export.FHIR:  `{"resourceType":"Bundle","type":"collection","timestamp":"2026-03-05T00:00:00Z"}` + "\n",
		export.OCSF:  "",
		export.JSONL: "",
		export.CSV:   strings.Join(export.CSVHeader(), ",") + "\n",
	} {
		if got := string(exportAll(t, f, nil)); got != want {
			t.Errorf("%s with no records: %q, want %q", f, got, want)
		}
	}
}

func TestUnknownFormat(t *testing.T) {
	_, err := export.NewWriter(io.Discard, "xml", export.Options{})
	if err == nil || !strings.Contains(err.Error(), `"xml"`) || !strings.Contains(err.Error(), "fhir, ocsf, jsonl, csv") {
		t.Errorf("unknown format: %v", err)
	}
}

type failWriter struct{ left int }

var errDisk = errors.New("disk full")

func (w *failWriter) Write(p []byte) (int, error) {
	if len(p) > w.left {
		n := w.left
		w.left = 0
		return n, errDisk
	}
	w.left -= len(p)
	return len(p), nil
}

// TestWriteErrors: a failing destination surfaces from Write or, at the latest, Close.
func TestWriteErrors(t *testing.T) {
	recs := records(t)
	for _, f := range export.Formats() {
		w, err := export.NewWriter(&failWriter{left: 100_000}, f, opts)
		if err != nil {
			t.Fatal(err)
		}
		var got error
		for i := 0; i < 1000 && got == nil; i++ {
			got = w.Write(recs[i%len(recs)])
		}
		if got == nil {
			got = w.Close()
		}
		if !errors.Is(got, errDisk) {
			t.Errorf("%s: %v, want %v", f, got, errDisk)
		}
	}
}

// TestConstantMemory streams 200,000 records through each writer and checks the live heap
// does not grow with them.
func TestConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 200,000 records per format")
	}
	n := 200_000
	if raceEnabled {
		n = 20_000
	}
	recs := records(t)
	for _, f := range export.Formats() {
		t.Run(string(f), func(t *testing.T) {
			w, err := export.NewWriter(io.Discard, f, opts)
			if err != nil {
				t.Fatal(err)
			}
			heap := func() uint64 {
				var m runtime.MemStats
				runtime.GC() // what is still live, not garbage not yet collected
				runtime.ReadMemStats(&m)
				return m.HeapInuse
			}
			for i := range 1000 { // warm up buffers
				w.Write(recs[i%len(recs)])
			}
			before := heap()
			for i := range n {
				r := recs[i%len(recs)]
				r.Seq = int64(i)
				if err := w.Write(r); err != nil {
					t.Fatal(err)
				}
			}
			after := heap()
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d records: heap in use %d KiB before, %d KiB after", n, before>>10, after>>10)
			if after > before+2<<20 {
				t.Errorf("heap grew by %d KiB over %d records", (after-before)>>10, n)
			}
		})
	}
}

// BenchmarkExport reports events/s per format: go test ./export -run '^$' -bench Export
func BenchmarkExport(b *testing.B) {
	recs := records(b)
	for _, f := range export.Formats() {
		b.Run(string(f), func(b *testing.B) {
			w, err := export.NewWriter(io.Discard, f, opts)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if err := w.Write(recs[i%len(recs)]); err != nil {
					b.Fatal(err)
				}
				i++
			}
			w.Close()
			b.ReportMetric(float64(i)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
