package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/server"
)

func TestOpenAPIDescribesEveryRoute(t *testing.T) {
	var doc struct {
		OpenAPI string                    `yaml:"openapi"`
		Paths   map[string]map[string]any `yaml:"paths"`
	}
	if err := yaml.Unmarshal(server.OpenAPI, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Errorf("openapi %q", doc.OpenAPI)
	}
	routes := []string{"POST /v1/events", "GET /v1/events", "GET /v1/events/{id}", "GET /v1/sessions/{id}", "GET /v1/checkpoint",
		"GET /v1/proofs/inclusion", "GET /v1/proofs/consistency", "POST /v1/verify", "POST /v1/traces", "GET /healthz", "GET /readyz",
		"GET /metrics", "GET /openapi.yaml", "GET /v1/retention/plan", "POST /v1/retention/apply", "GET /v1/holds", "POST /v1/holds",
		"POST /v1/holds/{id}/release", "POST /v1/erasures",
		"GET /v1/approvals", "POST /v1/approvals", "GET /v1/approvals/{id}", "DELETE /v1/approvals/{id}", "POST /v1/approvals/{id}/approve", "POST /v1/approvals/{id}/reject",
		"GET /", "GET /v1/sessions", "GET /v1/stats/tools", "GET /v1/reports/access", "GET /v1/stream"}
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		if _, ok := doc.Paths[path][strings.ToLower(method)]; !ok {
			t.Errorf("the OpenAPI document lacks %s", r)
		}
	}
	e := start(t, server.Config{})
	for _, r := range routes {
		method, path, _ := strings.Cut(r, " ")
		req, _ := http.NewRequest(method, e.url+strings.ReplaceAll(path, "{id}", "x"), nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusMethodNotAllowed {
			t.Errorf("%s is documented but not served: %d", r, resp.StatusCode)
		}
	}
}

func TestMetricsAndFailedAuth(t *testing.T) {
	e := start(t, server.Config{})
	e.do(t, apikey.Writer, "POST", "/v1/events", "application/json", []byte(ev1))
	// Failed authentication: recorded, counted, then refused per address.
	codes := map[int]int{}
	for i := 0; i < 25; i++ {
		req, _ := http.NewRequest("GET", e.url+"/v1/checkpoint", nil)
		req.Header.Set("Authorization", "Bearer not-a-key")
		resp, _ := http.DefaultClient.Do(req)
		resp.Body.Close()
		codes[resp.StatusCode]++
	}
	if codes[401] != 20 || codes[429] != 5 {
		t.Errorf("failed authentications: %v, want 20 401s then 429s", codes)
	}
	_, _, b := e.do(t, apikey.Auditor, "GET", "/v1/events?subject_type=audit_log&user_id=unauthenticated", "", nil)
	if n := strings.Count(string(b), `"outcome":"denied"`); n != 20 {
		t.Errorf("%d failed authentications recorded, want 20 (the refused ones are not)", n)
	}
	code, _, body := e.do(t, "", "GET", "/metrics", "", nil)
	for _, want := range []string{`agentaudit_events_ingested_total{door="api"} 1`, "agentaudit_auth_failures_total 25",
		"agentaudit_commit_seconds_bucket", "agentaudit_queue_depth", "agentaudit_checkpoint_age_seconds", "agentaudit_store_backlog_events", `agentaudit_http_requests_total{code="200",route="POST /v1/events"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if code != 200 {
		t.Errorf("metrics: %d", code)
	}
	_ = fmt.Sprint
}
