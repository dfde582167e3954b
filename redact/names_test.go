package redact

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

// nameCase is an event (a tool call unless input_messages or tool_calls_requested are set) whose
// canonical form must not hold gone and must hold kept.
type nameCase struct {
	name, policy        string
	subjectType         string
	args, result        string
	messages, requested string
	gone, kept          []string
}

func runNameCases(t *testing.T, cases []nameCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := leakRedactor(t, tc.policy)
			ev := &event.Event{ID: "e", Kind: event.KindToolCall, Time: time.Unix(0, 0), ToolName: "lookup", SubjectType: tc.subjectType}
			if tc.subjectType != "" {
				ev.SubjectID = "P-123"
			}
			if tc.messages != "" || tc.requested != "" {
				ev.Kind, ev.ToolName, ev.Model = event.KindLLMCall, "", "claude-opus-4-6"
				ev.InputMessages, ev.ToolCallsRequested = raw(tc.messages), raw(tc.requested)
			}
			ev.Arguments, ev.Result = raw(tc.args), raw(tc.result)
			if err := r.Sanitize(ev); err != nil {
				t.Fatal(err)
			}
			c, err := ev.Canonical()
			if err != nil {
				t.Fatal(err)
			}
			for _, g := range tc.gone {
				if strings.Contains(string(c), g) {
					t.Errorf("%q kept: %s", g, c)
				}
			}
			for _, k := range tc.kept {
				if !strings.Contains(string(c), k) {
					t.Errorf("%q lost: %s", k, c)
				}
			}
		})
	}
}

func raw(s string) json.RawMessage {
	if s == "" {
		return nil
	}
	return json.RawMessage(s)
}

// TestPersonNames: a person's name is pseudonymized where the event is about a person (the top
// of a tool's arguments and result), where its object is a person record (a person-identifying
// sibling, a FHIR or schema.org person type, a parent named for a person, a FHIR HumanName), and
// in fields that only ever hold a person's name (first_name, last_name, ...).
func TestPersonNames(t *testing.T) {
	const demo = `{"customer_id":"C-1001","email":"alex.doe@example.com","name":"Alex Doe","tier":"gold"}`
	runNameCases(t, []nameCase{
		{name: "patient subject, top of the result", subjectType: "patient",
			result: `{"name":"Alex Doe","allergies":[{"name":"penicillin","severity":"high"}]}`,
			gone:   []string{"Alex Doe"}, kept: []string{`"name":"pii:name:`, `"penicillin"`}},
		{name: "patient subject, arguments", subjectType: "patient", args: `{"name":"Alex Doe","sections":"allergies"}`,
			gone: []string{"Alex Doe"}, kept: []string{"pii:name:", "allergies"}},
		{name: "person subject types", subjectType: "Customer", result: `{"data":{"display_name":"Alex Doe"},"name":"Alex"}`,
			gone: []string{"Alex Doe", `"Alex"`}, kept: []string{"pii:display_name:", "pii:name:"}},
		{name: "person subject, JSON in a string", subjectType: "member", result: `"{\"name\":\"Alex Doe\",\"plan\":\"gold\"}"`,
			gone: []string{"Alex Doe"}},
		{name: "the demo's customer record", result: demo, gone: []string{"Alex Doe", "alex.doe@example.com"},
			kept: []string{`"name":"pii:name:`, `"tier":"gold"`, `"customer_id":"C-1001"`}},
		{name: "the demo's record in a tool result the model reads",
			messages: `[{"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_02","content":[{"type":"text","text":` + jsonString(demo) + `}]}]}]`,
			gone:     []string{"Alex Doe"}, kept: []string{"toolu_02", `\"tier\":\"gold\"`}},
		{name: "sibling after the name", result: `{"name":"Alex Doe","dob":"1990-01-02"}`, gone: []string{"Alex Doe", "1990-01-02"}},
		{name: "sibling spelled otherwise", result: `{"Name":"Alex Doe","dateOfBirth":"1990-01-02","mrn":"M-1"}`, gone: []string{"Alex Doe"}},
		{name: "phone, address, ids", result: `[{"name":"Alex Doe","phone_number":"n/a"},{"name":"Bo Li","patientId":"P-9"},{"name":"Cy Ng","home_address":"-"}]`,
			gone: []string{"Alex Doe", "Bo Li", "Cy Ng"}},
		{name: "FHIR Patient", result: `{"resourceType":"Patient","id":"p1","name":[{"use":"official","family":"Doe","given":["Alex","Jamie"]}],"gender":"female"}`,
			gone: []string{"Doe", "Alex", "Jamie"}, kept: []string{`"resourceType":"Patient"`, `"gender":"female"`}},
		{name: "FHIR bundle", result: `{"resourceType":"Bundle","entry":[{"resource":{"resourceType":"Practitioner","name":[{"text":"Dr Alex Doe"}]}}]}`,
			gone: []string{"Alex Doe"}},
		{name: "FHIR HumanName in a contact", result: `{"contact":[{"relationship":[{"text":"mother"}],"name":{"family":"Doe","given":["Jo"],"text":"Jo Doe"}}]}`,
			gone: []string{"Doe", `"Jo"`}, kept: []string{"mother"}},
		{name: "schema.org Person", result: `{"@type":"Person","name":"Alex Doe","jobTitle":"nurse"}`, gone: []string{"Alex Doe"}, kept: []string{"nurse"}},
		{name: "parent named for a person", result: `{"order_id":"O-1","customer":{"name":"Alex Doe","tier":"gold"},"emergency_contact":{"name":"Jo Doe"},"patients":[{"name":"Cy Ng"}]}`,
			gone: []string{"Alex Doe", "Jo Doe", "Cy Ng"}, kept: []string{"O-1", "gold"}},
		{name: "a name object", result: `{"user":{"name":{"first":"Alex","last":"Doe"}}}`, gone: []string{`"Alex"`, `"Doe"`}},
		{name: "fields that only hold names", args: `{"first_name":"Alex","lastName":"Doe","billing":{"cardholder_name":"Alex Doe"},"profile":{"real_name":"Alexandra Doe"}}`,
			gone: []string{`"Alex"`, `"Doe"`, "Alex Doe", "Alexandra Doe"}, kept: []string{"pii:first_name:", "pii:last_name:", "pii:cardholder_name:", "pii:real_name:"}},
		{name: "key rules inside a name", result: `{"email":"a@b.co","name":{"first":"Alex","password":"hunter2_x","token":{"v":"abc_123"}}}`,
			gone: []string{`"Alex"`, "hunter2_x", "abc_123"}, kept: []string{"[REDACTED:password]", "[REDACTED:token]"}},
		{name: "redact instead", policy: "version: 1\ndetectors: {person_name: redact}\n", result: demo,
			gone: []string{"Alex Doe"}, kept: []string{"[REDACTED:name]"}},
	})
}

// TestPersonNamesKept: tool, function, model and file names, and the names of things, stay.
func TestPersonNamesKept(t *testing.T) {
	const tools = `[{"name":"get_order","description":"Look up an order.","input_schema":{"type":"object","properties":{"name":{"type":"string"},"patient_id":{"type":"string"},"email":{"type":"string"}},"required":["name","email"]}}]`
	runNameCases(t, []nameCase{
		{name: "tool calls requested in a patient event", subjectType: "patient",
			requested: `[{"id":"toolu_1","name":"get_order","arguments":{"order_id":"ORD-1","email":"a@b.co"}},{"id":"toolu_2","name":"lookup","arguments":{"patient_id":"P-1","dob":"x"}}]`,
			kept:      []string{`"name":"get_order"`, `"name":"lookup"`}},
		{name: "tool use and tool definitions in the messages", subjectType: "patient",
			messages: `[{"role":"assistant","content":[{"type":"tool_use","id":"toolu_1","name":"search","input":{"name":"Alex Doe","patient_id":"P-1"}}]},{"role":"user","content":[{"type":"text","text":"hi"}]}]`,
			kept:     []string{`"name":"search"`, `"type":"text"`, `"text":"hi"`}, gone: []string{"Alex Doe"}},
		{name: "OpenAI tool calls", messages: `[{"role":"assistant","tool_calls":[{"id":"c1","type":"function","function":{"name":"get_patient","arguments":"{\"patient_id\":\"P-1\"}"}}]},{"role":"tool","name":"get_patient","content":"ok"}]`,
			kept: []string{`"name":"get_patient"`}},
		{name: "a JSON schema's properties", messages: `[{"role":"user","content":"x"}]`, requested: tools,
			kept: []string{`"name":"get_order"`, `"properties":{"email":{"type":"string"},"name":{"type":"string"},"patient_id":{"type":"string"}}`}},
		{name: "model and file names under a patient subject", subjectType: "patient",
			args:   `{"name":"discharge_summary.pdf","model":"gpt-4o"}`,
			result: `{"name":"claude-opus-4-6","files":[{"name":"Discharge Summary.docx","patient_id":"P-1"},{"name":"scan-2024.png","email":"a@b.co"}]}`,
			kept:   []string{"discharge_summary.pdf", "claude-opus-4-6", "Discharge Summary.docx", "scan-2024.png"}},
		{name: "things' names without a person", args: `{"name":"Widget","price":9.99}`,
			result: `{"repo":{"name":"Hello-World","full_name":"octocat/Hello-World","owner":{"login":"octocat"}},"channel":{"id":"C1","name":"general"},"font":{"family":"Roboto","weight":400},"sa":{"kind":"ServiceAccount","name":"default"}}`,
			kept:   []string{`"Widget"`, `"Hello-World"`, "octocat/Hello-World", `"general"`, `"Roboto"`, `"default"`}},
		{name: "a patient's medications", subjectType: "patient", result: `{"patient_id":"P-1","medications":[{"name":"Amoxicillin","dose":"500mg"}]}`,
			kept: []string{"Amoxicillin"}},
		{name: "not a person subject", subjectType: "order", result: `{"name":"Blue Mug","status":"shipped"}`, kept: []string{"Blue Mug"}},
		{name: "turned off", policy: "version: 1\ndetectors: {person_name: \"off\"}\n", subjectType: "patient",
			result: `{"name":"Alex Doe","first_name":"Alex"}`, kept: []string{"Alex Doe", `"Alex"`}},
		{name: "kept by a key rule", policy: "version: 1\nkeys: [{name: first_name, action: keep}]\n",
			result: `{"first_name":"Alex","email":"a@b.co","name":"Alex Doe"}`, kept: []string{`"Alex"`}, gone: []string{"Alex Doe"}},
	})
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// TestPersonNameRecords: the pseudonym's form and the redaction record.
func TestPersonNameRecords(t *testing.T) {
	r := testRedactor(t)
	ev := &event.Event{ID: "e", Kind: event.KindToolCall, Time: time.Unix(0, 0), ToolName: "get_patient", SubjectType: "patient", SubjectID: "P-1",
		Result: json.RawMessage(`{"name":"Alex Doe","first_name":"Alex"}`)}
	if err := r.Sanitize(ev); err != nil {
		t.Fatal(err)
	}
	want := `{"name":"` + r.Pseudonym("name", "Alex Doe") + `","first_name":"` + r.Pseudonym("first_name", "Alex") + `"}`
	if string(ev.Result) != want || !strings.HasPrefix(r.Pseudonym("firstName", "Alex"), "pii:first_name:") {
		t.Errorf("got %s, want %s", ev.Result, want)
	}
	var got []string
	for _, x := range ev.Redactions {
		got = append(got, x.Path+"="+x.Kind+"/"+x.Action)
	}
	if strings.Join(got, " ") != "result.name=name/pseudonymize result.first_name=first_name/pseudonymize" {
		t.Errorf("redactions %q", got)
	}
}

// TestNameFilter: the walker's byte filter never turns away a name field, in any spelling.
func TestNameFilter(t *testing.T) {
	var fields []string
	for norm, f := range exactNames {
		if f.class != namePart {
			fields = append(fields, norm, f.kind)
		}
	}
	for _, s := range nameSuffixes {
		fields = append(fields, s.norm, s.kind, "billing_"+s.kind, strings.ToUpper(s.kind))
	}
	for _, k := range append(fields, "firstName", "Given", "FAMILY", "patientFullName", "x-display-name") {
		if _, ok := lookupName(k); !ok || !maybeName(k) {
			t.Errorf("%q: lookup %v, filter %v", k, ok, maybeName(k))
		}
	}
	for _, k := range []string{"tool_name", "file_name", "model_name", "username", "hostname", "names", "type", "status"} {
		if _, ok := lookupName(k); ok {
			t.Errorf("%q taken for a person's name field", k)
		}
	}
}

// TestNameLike: values shaped like identifiers, files and models are not taken for names.
func TestNameLike(t *testing.T) {
	for v, want := range map[string]bool{
		"Alex Doe": true, "alex": true, "O'Brien": true, "Jean-Luc Picard": true, "J. R. R. Tolkien": true, "María José": true,
		"李雷": true, "Dr. Alex Doe, MD": true, "Doe, Alex (Jr.)": true, "Mary-Kate": true,
		"get_order": false, "getOrder2": false, "gpt-4o": false, "claude-opus": false, "hello-world": false, "report.pdf": false,
		"Discharge Summary.docx": false, "octocat/Hello-World": false, "a@b.co": false, "P-123": false, "": false, "--": false,
		"{\"a\":1}": false, "#1001": false,
	} {
		if got := nameLike(v); got != want {
			t.Errorf("nameLike(%q) = %v, want %v", v, got, want)
		}
	}
}
