package server_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/server"
)

// TestIngestDefaultsTime: an event without time is stored with the server's clock, as on every
// other door (the README says "now when absent"); so is one without an id.
func TestIngestDefaultsTime(t *testing.T) {
	e := start(t, server.Config{})
	for _, body := range []string{
		`{"id":"no-time","kind":"custom"}`,
		`[{"kind":"custom"},{"id":"no-time-2","kind":"reasoning","decision":"d"}]`,
	} {
		code, _, b := e.do(t, apikey.Writer, "POST", "/v1/events", "application/json", []byte(body))
		if code != 200 {
			t.Fatalf("%s: %d %s", body, code, b)
		}
	}
	entry, err := e.w.Store.EntryByID(context.Background(), "no-time")
	if err != nil {
		t.Fatal(err)
	}
	ev, err := event.ParseStored(entry.Body)
	if err != nil || ev.Time.IsZero() {
		t.Fatalf("stored without time: %v %s", err, entry.Body)
	}
}

// TestIngestAllRefusedIsNot2xx: a batch in which every event is refused gets a 4xx with the
// per-event results, so a client that trusts any 2xx never takes it for stored; 207 only when
// some were stored.
func TestIngestAllRefusedIsNot2xx(t *testing.T) {
	e := start(t, server.Config{})
	for _, tc := range []struct {
		ctype, body string
		want        int
	}{
		{"application/json", `[{"kind":"nope"},{"kind":"tool_call"}]`, 422},
		{"application/x-ndjson", "{\"kind\":\"nope\"}\n{\"turn\":\"x\",\"kind\":\"custom\"}\n", 422},
		{"application/json", `[{"kind":"nope"},{"kind":"custom"}]`, 207},
		{"application/json", `{"kind":"nope"}`, 400},
	} {
		code, hdr, b := e.do(t, apikey.Writer, "POST", "/v1/events", tc.ctype, []byte(tc.body))
		if code != tc.want {
			t.Errorf("%s: %d %s, want %d", tc.body, code, b, tc.want)
			continue
		}
		if code == 422 {
			var p struct {
				Status  int
				Results []server.IngestResult
			}
			if err := json.Unmarshal(b, &p); err != nil || len(p.Results) != 2 || p.Results[0].Error == "" || p.Results[1].Error == "" {
				t.Errorf("422 body: %s", b)
			}
			if ct := hdr.Get("Content-Type"); ct != "application/problem+json" {
				t.Errorf("422 content type %q", ct)
			}
		}
	}
}

// TestEmptyResultIsArray: no match is "records": [], never null.
func TestEmptyResultIsArray(t *testing.T) {
	e := start(t, server.Config{})
	code, _, b := e.do(t, apikey.Reader, "GET", "/v1/events?user_id=nobody", "", nil)
	if code != 200 || !strings.Contains(string(b), `"records":[]`) {
		t.Errorf("%d %s", code, b)
	}
}

// TestDeniedAccessRecorded: a 403 (a valid key, a role not allowed) is recorded as a denied
// access like a 401, and the reasons the server records read as written, with no secret.
func TestDeniedAccessRecorded(t *testing.T) {
	e := start(t, server.Config{})
	if code, _, b := e.do(t, apikey.Reader, "POST", "/v1/verify", "", nil); code != 403 {
		t.Fatalf("reader verify: %d %s", code, b)
	}
	if code, _, b := e.do(t, "", "GET", "/v1/events", "", nil); code != 401 {
		t.Fatalf("no key: %d %s", code, b)
	}
	_, _, b := e.do(t, apikey.Auditor, "GET", "/v1/events?kind=access&outcome=denied", "", nil)
	var page struct {
		Records []struct{ Event event.Event }
	}
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatal(err)
	}
	var forbidden, unauthenticated bool
	for _, r := range page.Records {
		md := string(r.Event.Metadata)
		if strings.Contains(md, "REDACTED") {
			t.Errorf("the server's own reason was redacted: %s", md)
		}
		switch {
		case r.Event.UserID == "apikey:reader1" && strings.Contains(md, "POST /v1/verify") && strings.Contains(md, "role not allowed"):
			forbidden = true
		case r.Event.UserID == "unauthenticated" && strings.Contains(md, "no bearer token was sent"):
			unauthenticated = true
		}
	}
	if !forbidden || !unauthenticated {
		t.Errorf("denied accesses recorded: 403 %v, 401 %v\n%s", forbidden, unauthenticated, b)
	}
}

// TestNewRefusesBadConfig: a negative limit is an error naming it, not a silent default.
func TestNewRefusesBadConfig(t *testing.T) {
	e := start(t, server.Config{})
	for name, cfg := range map[string]server.Config{
		"MaxBodyBytes": {MaxBodyBytes: -1},
		"MaxBatch":     {MaxBatch: -10},
		"Ledger":       {},
	} {
		if name != "Ledger" {
			cfg.Ledger, cfg.Store, cfg.Keys, cfg.Verifier = e.w.Ledger, e.w.Store, e.keyStore, e.verifier
		}
		if _, err := server.New(cfg); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
