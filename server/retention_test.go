package server_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/server"
)

// TestGovernanceAPI: holds and erasures through the API, by role, with clear refusals that
// record nothing.
func TestGovernanceAPI(t *testing.T) {
	e := start(t, server.Config{})
	if code, _, _ := e.do(t, apikey.Reader, "GET", "/v1/holds", "", nil); code != 403 {
		t.Errorf("reader lists holds: %d, want 403", code)
	}
	if code, _, _ := e.do(t, apikey.Auditor, "POST", "/v1/erasures", "application/json", []byte(`{"subject":"patient:P-1","reason":"x"}`)); code != 403 {
		t.Errorf("auditor erases: %d, want 403", code)
	}
	for body, want := range map[string]string{
		`{"session_id":"s-1"}`:                             "needs a reason",
		`{"reason":"litigation"}`:                          "needs a scope",
		`{"session_id":"s-1","reason":"x","colour":"red"}`: "colour",
		`{"session_id":"s-1","reason":"x"} {}`:             "one JSON object",
		`{"subject":":","reason":"x"}`:                     "subject",
	} {
		code, _, b := e.do(t, apikey.Auditor, "POST", "/v1/holds", "application/json", []byte(body))
		if code != 400 || !strings.Contains(string(b), want) {
			t.Errorf("POST /v1/holds %s: %d %s; want 400 with %q", body, code, b, want)
		}
	}
	code, _, b := e.do(t, apikey.Auditor, "POST", "/v1/holds", "application/json", []byte(`{"subject":"patient:P-1","reason":"litigation 7"}`))
	var h struct {
		ID       string `json:"id"`
		PlacedBy string `json:"placed_by"`
	}
	if code != 201 || json.Unmarshal(b, &h) != nil || h.ID == "" || h.PlacedBy != "apikey:auditor1" {
		t.Fatalf("place a hold: %d %s", code, b)
	}
	if code, _, b := e.do(t, apikey.Auditor, "POST", "/v1/holds/nope/release", "application/json", []byte(`{"reason":"done"}`)); code != 404 {
		t.Errorf("release of an unknown hold: %d %s", code, b)
	}
	if code, _, b := e.do(t, apikey.Admin, "POST", "/v1/holds/"+h.ID+"/release", "application/json", []byte(`{}`)); code != 400 {
		t.Errorf("release without a reason: %d %s", code, b)
	}
	if code, _, b := e.do(t, apikey.Admin, "POST", "/v1/holds/"+h.ID+"/release", "application/json", []byte(`{"reason":"settled"}`)); code != 200 || !strings.Contains(string(b), `"released_by":"apikey:admin1"`) {
		t.Errorf("release: %d %s", code, b)
	}
	if code, _, b := e.do(t, apikey.Admin, "POST", "/v1/erasures", "application/json", []byte(`{"subject":"P-1","reason":"x"}`)); code != 400 || !strings.Contains(string(b), "TYPE:ID") {
		t.Errorf("erasure without a subject type: %d %s", code, b)
	}
	if code, _, b := e.do(t, apikey.Admin, "POST", "/v1/erasures", "application/json", []byte(`{"subject":"patient:P-1","reason":"GDPR request"}`)); code != 200 || !strings.Contains(string(b), `"erased":0`) {
		t.Errorf("erasure: %d %s", code, b)
	}
	if code, _, b := e.do(t, apikey.Auditor, "GET", "/v1/retention/plan?at=2030-01-01T00:00:00Z", "", nil); code != 200 || !strings.Contains(string(b), `"class":"healthcare"`) {
		t.Errorf("plan: %d %s", code, b)
	}
	if code, _, b := e.do(t, apikey.Auditor, "GET", "/v1/retention/plan?at=soon", "", nil); code != 400 {
		t.Errorf("plan at a bad time: %d %s", code, b)
	}
	if code, _, b := e.do(t, apikey.Admin, "POST", "/v1/retention/apply", "", nil); code != 200 || !strings.Contains(string(b), `"erased":0`) {
		t.Errorf("apply: %d %s", code, b)
	}
}
