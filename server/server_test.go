package server_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/retention"
	"github.com/agentaudit/agentaudit/server"
)

type env struct {
	url      string
	keys     map[apikey.Role]string
	w        *datadir.Writer
	keyStore *apikey.Store
	verifier note.Verifier
}

func start(t testing.TB, cfg server.Config) *env {
	t.Helper()
	dir := datadir.Dir{Path: filepath.Join(t.TempDir(), "data")}
	if _, err := dir.Init(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	w, err := dir.OpenWriter(context.Background(), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ks, err := apikey.Open(dir.APIKeys())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{keys: map[apikey.Role]string{}, w: w, keyStore: ks}
	for _, r := range apikey.Roles {
		secret, _, err := ks.Create(string(r)+"1", r)
		if err != nil {
			t.Fatal(err)
		}
		e.keys[r] = secret
	}
	v, _ := dir.Verifier()
	cfg.Ledger, cfg.Store, cfg.Keys, cfg.Verifier = w.Ledger, w.Store, ks, v
	if cfg.Retention == nil {
		cfg.Retention = &retention.Manager{Store: w.Store, Ledger: w.Ledger, Policy: retention.Default()}
	}
	srv, err := server.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(func() { hs.Close(); w.Close() })
	e.url, e.verifier = hs.URL, v
	return e
}

func (e *env) do(t *testing.T, role apikey.Role, method, path, ctype string, body []byte, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+e.keys[role])
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

const ev1 = `{"id":"e1","session_id":"s1","kind":"tool_call","tool_name":"get_order","user_id":"u1","time":"2026-01-01T00:00:00Z","arguments":{"order_id":"ORD-1"},"result":{"status":"shipped"}}`

func TestRolesAndEndpoints(t *testing.T) {
	e := start(t, server.Config{})
	if code, _, b := e.do(t, apikey.Writer, "POST", "/v1/events", "application/json", []byte(ev1)); code != 200 {
		t.Fatalf("ingest: %d %s", code, b)
	}
	e.w.SignCheckpoint(context.Background())
	type call struct{ method, path string }
	allowed := map[call][]apikey.Role{
		{"POST", "/v1/events"}:                  {apikey.Writer, apikey.Admin},
		{"GET", "/v1/events/e1"}:                {apikey.Reader, apikey.Auditor, apikey.Admin},
		{"GET", "/v1/events?user_id=u1"}:        {apikey.Reader, apikey.Auditor, apikey.Admin},
		{"GET", "/v1/sessions/s1"}:              {apikey.Reader, apikey.Auditor, apikey.Admin},
		{"GET", "/v1/checkpoint"}:               {apikey.Reader, apikey.Auditor, apikey.Admin},
		{"GET", "/v1/proofs/inclusion?id=e1"}:   {apikey.Auditor, apikey.Admin},
		{"GET", "/v1/proofs/consistency?old=1"}: {apikey.Auditor, apikey.Admin},
		{"POST", "/v1/verify"}:                  {apikey.Auditor, apikey.Admin},
	}
	for c, roles := range allowed {
		for _, r := range apikey.Roles {
			ok := false
			for _, x := range roles {
				ok = ok || x == r
			}
			var body []byte
			if c.path == "/v1/events" {
				body = []byte(ev1)
			}
			code, hdr, b := e.do(t, r, c.method, c.path, "application/json", body)
			if ok && code != 200 {
				t.Errorf("%s %s as %s: %d %s, want 200", c.method, c.path, r, code, b)
			}
			if !ok && (code != 403 || hdr.Get("Content-Type") != "application/problem+json") {
				t.Errorf("%s %s as %s: %d %s, want a 403 problem", c.method, c.path, r, code, b)
			}
		}
		if code, _, _ := e.do(t, "", c.method, c.path, "application/json", nil); code != 401 {
			t.Errorf("%s %s without a key: %d, want 401", c.method, c.path, code)
		}
	}
	// A revoked key stops working.
	e.keyStore.Revoke("reader1")
	if code, _, _ := e.do(t, apikey.Reader, "GET", "/v1/events/e1", "", nil); code != 401 {
		t.Errorf("revoked key: %d, want 401", code)
	}
}

func TestIngestFormsAndRetries(t *testing.T) {
	e := start(t, server.Config{MaxBodyBytes: 1 << 20, MaxBatch: 100})
	ev := func(i int) string {
		return fmt.Sprintf(`{"id":"x%d","kind":"custom","time":"2026-01-01T00:00:00Z","metadata":{"i":%d}}`, i, i)
	}
	type results struct {
		Results []struct {
			Seq       *int64 `json:"seq"`
			Duplicate bool   `json:"duplicate"`
			Field     string `json:"field"`
			Error     string `json:"error"`
		} `json:"results"`
	}
	post := func(ctype string, body []byte, hdr ...string) (int, results, []byte) {
		code, _, b := e.do(t, apikey.Writer, "POST", "/v1/events", ctype, body, hdr...)
		var r results
		json.Unmarshal(b, &r)
		return code, r, b
	}
	if code, r, b := post("application/json", []byte("["+ev(1)+","+ev(2)+"]")); code != 200 || len(r.Results) != 2 || *r.Results[1].Seq != 1 {
		t.Fatalf("array: %d %s", code, b)
	}
	if code, r, b := post("application/x-ndjson", []byte(ev(3)+"\n\n"+ev(4)+"\n")); code != 200 || len(r.Results) != 2 {
		t.Fatalf("ndjson: %d %s", code, b)
	}
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(ev(5)))
	zw.Close()
	if code, _, b := post("application/json", gz.Bytes(), "Content-Encoding", "gzip"); code != 200 {
		t.Fatalf("gzip: %d %s", code, b)
	}
	// A retry of the same events answers with the same seqs.
	if code, r, b := post("application/json", []byte("["+ev(1)+","+ev(2)+"]")); code != 200 || !r.Results[0].Duplicate || *r.Results[0].Seq != 0 {
		t.Fatalf("retry: %d %s", code, b)
	}
	// One bad event of three: 207, the others stored, the bad one named.
	code, r, b := post("application/json", []byte("["+ev(6)+`,{"kind":"custom","time":"2026-01-01T00:00:00Z","turn":"x"},`+ev(7)+"]"))
	if code != 207 || r.Results[1].Field != "turn" || r.Results[0].Seq == nil || r.Results[2].Seq == nil || r.Results[1].Seq != nil {
		t.Fatalf("partial batch: %d %s", code, b)
	}
	// Bad bodies.
	var bomb bytes.Buffer
	zw = gzip.NewWriter(&bomb)
	zw.Write(bytes.Repeat([]byte(" "), 8<<20))
	zw.Close()
	many := make([]string, 101)
	for i := range many {
		many[i] = ev(100 + i)
	}
	for _, tc := range []struct {
		name, ctype string
		body        []byte
		hdr         []string
		want        int
	}{
		{"malformed", "application/json", []byte(`{"kind":`), nil, 400},
		{"not an object", "application/json", []byte(`42`), nil, 400},
		{"empty", "application/json", nil, nil, 400},
		{"wrong content type", "text/plain", []byte(ev(8)), nil, 415},
		{"oversized", "application/json", []byte(`{"kind":"custom","output_text":"` + strings.Repeat("a", 2<<20) + `"}`), nil, 413},
		{"gzip bomb", "application/json", bomb.Bytes(), []string{"Content-Encoding", "gzip"}, 413},
		{"bad gzip", "application/json", []byte("not gzip"), []string{"Content-Encoding", "gzip"}, 400},
		{"unknown encoding", "application/json", []byte(ev(9)), []string{"Content-Encoding", "br"}, 415},
		{"batch too large", "application/json", []byte("[" + strings.Join(many, ",") + "]"), nil, 413},
		{"NDJSON batch too large", "application/x-ndjson", []byte(strings.Join(many, "\n\n")), nil, 413},
	} {
		code, hdr, b := e.do(t, apikey.Writer, "POST", "/v1/events", tc.ctype, tc.body, tc.hdr...)
		if code != tc.want || hdr.Get("Content-Type") != "application/problem+json" {
			t.Errorf("%s: %d %s, want a %d problem", tc.name, code, b, tc.want)
		}
		if strings.Contains(tc.name, "batch too large") && !strings.Contains(string(b), "101 events; the limit is 100") {
			t.Errorf("%s: %s, want the count of events and the limit", tc.name, b)
		}
	}
}

func TestConflict(t *testing.T) {
	e := start(t, server.Config{})
	e.do(t, apikey.Writer, "POST", "/v1/events", "application/json", []byte(ev1))
	changed := strings.Replace(ev1, `"u1"`, `"u2"`, 1)
	if code, _, b := e.do(t, apikey.Writer, "POST", "/v1/events", "application/json", []byte(changed)); code != 409 {
		t.Errorf("same id, other content: %d %s, want 409", code, b)
	}
}

func TestReadersMaskedAndReadsAudited(t *testing.T) {
	e := start(t, server.Config{})
	e.do(t, apikey.Writer, "POST", "/v1/events", "application/json", []byte(ev1))
	_, _, asReader := e.do(t, apikey.Reader, "GET", "/v1/events/e1", "", nil)
	_, _, asAuditor := e.do(t, apikey.Auditor, "GET", "/v1/events/e1", "", nil)
	if strings.Contains(string(asReader), "ORD-1") || !strings.Contains(string(asReader), "[masked]") {
		t.Errorf("reader sees payloads: %s", asReader)
	}
	if !strings.Contains(string(asAuditor), "ORD-1") {
		t.Errorf("auditor does not see payloads: %s", asAuditor)
	}
	code, _, b := e.do(t, apikey.Auditor, "GET", "/v1/events?kind=access&subject_type=audit_log", "", nil)
	var page struct {
		Records []struct {
			Event struct {
				UserID    string `json:"user_id"`
				SubjectID string `json:"subject_id"`
			} `json:"event"`
		} `json:"records"`
	}
	json.Unmarshal(b, &page)
	if code != 200 || len(page.Records) < 2 || page.Records[0].Event.UserID != "apikey:reader1" || page.Records[0].Event.SubjectID != "event:e1" {
		t.Errorf("audited reads: %d %s", code, b)
	}
}

func TestProofsOverHTTP(t *testing.T) {
	e := start(t, server.Config{})
	for i := 0; i < 10; i++ {
		e.do(t, apikey.Writer, "POST", "/v1/events", "application/json", []byte(fmt.Sprintf(`{"id":"p%d","kind":"custom","time":"2026-01-01T00:00:00Z"}`, i)))
	}
	code, _, b := e.do(t, apikey.Auditor, "GET", "/v1/proofs/inclusion?id=p3", "", nil)
	if code != 200 {
		t.Fatalf("inclusion: %d %s", code, b)
	}
	if vb, err := ledger.VerifyBundle(b, e.verifier); err != nil || vb.Seq != 3 {
		t.Errorf("the served bundle does not verify: %v", err)
	}
	code, _, b = e.do(t, apikey.Auditor, "GET", "/v1/proofs/consistency?old=4", "", nil)
	var cons struct {
		Old, New int64
		Proof    []string
	}
	json.Unmarshal(b, &cons)
	if code != 200 || cons.Old != 4 || cons.New < 10 {
		t.Fatalf("consistency: %d %s", code, b)
	}
	// Check the proof against roots computed from the store.
	hr := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) { return e.w.Store.ReadHashes(context.Background(), idx) })
	oldRoot, _ := tlog.TreeHash(4, hr)
	newRoot, _ := tlog.TreeHash(cons.New, hr)
	proof := make(tlog.TreeProof, len(cons.Proof))
	for i, s := range cons.Proof {
		h, _ := base64.StdEncoding.DecodeString(s)
		copy(proof[i][:], h)
	}
	if err := tlog.CheckTree(proof, cons.New, newRoot, 4, oldRoot); err != nil {
		t.Errorf("consistency proof does not check: %v", err)
	}
	code, _, b = e.do(t, apikey.Auditor, "POST", "/v1/verify", "", nil)
	if code != 200 || !strings.Contains(string(b), `"problems":null`) && !strings.Contains(string(b), `"problems":[]`) {
		t.Errorf("verify: %d %s", code, b)
	}
	if code, _, b := e.do(t, apikey.Auditor, "GET", "/v1/proofs/inclusion?id=nope", "", nil); code != 404 {
		t.Errorf("unknown id: %d %s", code, b)
	}
}
