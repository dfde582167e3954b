package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/mcpproxy"
	"github.com/agentaudit/agentaudit/server"
)

// pendingIDs lists the pending requests through the API, as role.
func pendingIDs(t *testing.T, e *env, role apikey.Role) []mcpproxy.Request {
	t.Helper()
	code, _, b := e.do(t, role, "GET", "/v1/approvals", "", nil)
	if code != 200 {
		t.Fatalf("GET /v1/approvals as %s: %d %s", role, code, b)
	}
	var out struct {
		Approvals []mcpproxy.Request `json:"approvals"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Approvals == nil {
		t.Fatalf("GET /v1/approvals: %v %s", err, b)
	}
	return out.Approvals
}

// awaitListed waits until the API lists a pending request for tool.
func awaitListed(t *testing.T, e *env, tool string) mcpproxy.Request {
	t.Helper()
	for range 250 {
		for _, r := range pendingIDs(t, e, apikey.Auditor) {
			if r.Tool == tool {
				return r
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no request for %s was listed", tool)
	return mcpproxy.Request{}
}

// TestApprovalsAPI: a request held by the same code the MCP proxy's gate uses
// (mcpproxy.DirDecider.Await) is listed through the API and decided through it; the waiting gate
// gets the decision with the key as the approver. Readers list but do not decide; a bad body is
// 400, an unknown id 404, a second decision 409; the reads are audited.
func TestApprovalsAPI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "approvals")
	e := start(t, server.Config{ApprovalsDir: dir})
	if got := pendingIDs(t, e, apikey.Reader); len(got) != 0 {
		t.Fatalf("pending before any request: %+v", got)
	}

	gate := &mcpproxy.DirDecider{Dir: dir, Poll: 10 * time.Millisecond}
	type answer struct {
		d   mcpproxy.Decision
		err error
	}
	hold := func(id, tool string) chan answer {
		ch := make(chan answer, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			d, err := gate.Await(ctx, mcpproxy.Request{ID: id, SessionID: "s1", Tool: tool, CallID: "7", UserID: "usr_1", Time: time.Now().UTC()})
			ch <- answer{d, err}
		}()
		return ch
	}

	approved := hold("req-approve", "delete_file")
	r := awaitListed(t, e, "delete_file")
	if r.ID != "req-approve" || r.SessionID != "s1" || r.CallID != "7" || r.UserID != "usr_1" {
		t.Errorf("listed %+v", r)
	}
	if got := pendingIDs(t, e, apikey.Reader); len(got) != 1 {
		t.Errorf("the reader lists %+v", got)
	}
	for _, c := range []struct {
		role apikey.Role
		path string
		body string
		code int
	}{
		{apikey.Reader, "/v1/approvals/req-approve/approve", `{}`, 403},
		{apikey.Writer, "/v1/approvals/req-approve/approve", `{}`, 403},
		{apikey.Auditor, "/v1/approvals/req-approve/approve", `{"note": 3}`, 400},
		{apikey.Auditor, "/v1/approvals/req-approve/approve", `{"nope": "x"}`, 400},
		{apikey.Auditor, "/v1/approvals/req-approve/approve", `not json`, 400},
		{apikey.Auditor, "/v1/approvals/no-such-request/approve", `{}`, 404},
		{apikey.Auditor, "/v1/approvals/..%2Fetc/reject", `{}`, 404},
	} {
		code, hdr, b := e.do(t, c.role, "POST", c.path, "application/json", []byte(c.body))
		if code != c.code || hdr.Get("Content-Type") != "application/problem+json" {
			t.Errorf("POST %s %s as %s: %d %s, want a %d problem", c.path, c.body, c.role, code, b, c.code)
		}
	}
	select {
	case a := <-approved:
		t.Fatalf("decided by a refused request: %+v", a)
	default:
	}
	code, _, b := e.do(t, apikey.Auditor, "POST", "/v1/approvals/req-approve/approve", "application/json", []byte(`{"note": "ticket OPS-12"}`))
	if code != 200 || !strings.Contains(string(b), `"approver":"apikey:auditor1"`) {
		t.Fatalf("approve: %d %s", code, b)
	}
	if a := <-approved; a.err != nil || a.d != (mcpproxy.Decision{Status: event.ApprovalApproved, Approver: "apikey:auditor1", Note: "ticket OPS-12"}) {
		t.Errorf("the gate got %+v", a)
	}

	rejected := hold("req-reject", "send_email")
	awaitListed(t, e, "send_email")
	if code, _, b := e.do(t, apikey.Admin, "POST", "/v1/approvals/req-reject/reject", "", nil); code != 200 {
		t.Fatalf("reject without a body: %d %s", code, b)
	}
	if a := <-rejected; a.err != nil || a.d.Status != event.ApprovalRejected || a.d.Approver != "apikey:admin1" || a.d.Note != "" {
		t.Errorf("the gate got %+v", a)
	}
	// Decided and read by the gate: the request is gone.
	if code, _, b := e.do(t, apikey.Admin, "POST", "/v1/approvals/req-reject/approve", "application/json", []byte(`{}`)); code != 404 {
		t.Errorf("deciding a request already read: %d %s, want 404", code, b)
	}

	// A gate that does not read its decision yet (a long poll): the second decision is 409 and
	// the first stands.
	slow := &mcpproxy.DirDecider{Dir: dir, Poll: time.Hour}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := slow.Await(ctx, mcpproxy.Request{ID: "req-twice", Tool: "wipe", Time: time.Now()})
		done <- err
	}()
	awaitListed(t, e, "wipe")
	if code, _, b := e.do(t, apikey.Auditor, "POST", "/v1/approvals/req-twice/reject", "application/json", []byte(`{"note": "no"}`)); code != 200 {
		t.Fatalf("first decision: %d %s", code, b)
	}
	code, _, b = e.do(t, apikey.Admin, "POST", "/v1/approvals/req-twice/approve", "application/json", []byte(`{}`))
	if code != 409 || !strings.Contains(string(b), "already decided") {
		t.Errorf("second decision: %d %s, want 409", code, b)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("the slow gate: %v", err)
	}
	if got := pendingIDs(t, e, apikey.Reader); len(got) != 0 {
		t.Errorf("left pending: %+v", got)
	}

	// Every list and decision through the API is on record as the key's access.
	_, _, b = e.do(t, apikey.Auditor, "GET", "/v1/events?subject_type=audit_log&limit=1000", "", nil)
	for _, want := range []string{`"subject_id":"approvals"`, `"subject_id":"approval:req-approve"`, `"subject_id":"approval:req-reject"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the audit log lacks %s", want)
		}
	}
}

// TestApprovalsWithoutDirectory: a server without an approvals directory has nothing pending.
func TestApprovalsWithoutDirectory(t *testing.T) {
	e := start(t, server.Config{})
	if got := pendingIDs(t, e, apikey.Auditor); len(got) != 0 {
		t.Errorf("pending: %+v", got)
	}
	if code, _, b := e.do(t, apikey.Auditor, "POST", "/v1/approvals/x/approve", "application/json", []byte(`{}`)); code != 404 {
		t.Errorf("decide: %d %s, want 404", code, b)
	}
}

// TestApprovalsHoldGoTool: a Go agent that records to the server (Dial) holds its risky tool
// with RequireApproval, on the server's approvals directory (DirDecider, an agent on the
// server's host) or through the API (ServerApprover); a person approves one call and rejects
// another through the API. The approved tool runs, the rejected one does not and says
// why, and the server's log has each request and decision, with the key as the approver.
func TestApprovalsHoldGoTool(t *testing.T) {
	t.Run("DirDecider", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "approvals")
		e := start(t, server.Config{ApprovalsDir: dir})
		holdGoTool(t, e, &mcpproxy.DirDecider{Dir: dir, Poll: 10 * time.Millisecond})
	})
	t.Run("ServerApprover", func(t *testing.T) {
		e := start(t, server.Config{ApprovalsDir: filepath.Join(t.TempDir(), "approvals")})
		holdGoTool(t, e, &agentaudit.ServerApprover{URL: e.url, Key: e.keys[apikey.Writer], Poll: 10 * time.Millisecond})
	})
}

func holdGoTool(t *testing.T, e *env, approver agentaudit.Approver) {
	remote, err := agentaudit.Dial(e.url, e.keys[apikey.Writer])
	if err != nil {
		t.Fatal(err)
	}
	rec, err := agentaudit.New(remote, agentaudit.WithMode(agentaudit.Sync))
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ctx, sess, err := rec.StartSession(context.Background(), agentaudit.SessionInfo{UserID: "usr_1", AgentID: "ops-v1"})
	if err != nil {
		t.Fatal(err)
	}
	ran := map[string]bool{}
	type result struct {
		out string
		err error
	}
	drop := agentaudit.WrapTool(rec, "drop_table", func(ctx context.Context, table string) (string, error) {
		ran[table] = true
		return "dropped " + table, nil
	}, agentaudit.RequireApproval(approver, 10*time.Second))
	call := func(table, callID string) chan result {
		ch := make(chan result, 1)
		go func() {
			out, err := drop(agentaudit.WithToolCallID(ctx, callID), table)
			ch <- result{out, err}
		}()
		return ch
	}

	first := call("staging_orders", "toolu_1")
	r := awaitListed(t, e, "drop_table")
	if r.CallID != "toolu_1" || r.SessionID != sess.ID() || r.UserID != "usr_1" || r.AgentID != "ops-v1" {
		t.Errorf("listed %+v", r)
	}
	if code, _, b := e.do(t, apikey.Auditor, "POST", "/v1/approvals/"+r.ID+"/approve", "application/json", []byte(`{"note": "staging only"}`)); code != 200 {
		t.Fatalf("approve: %d %s", code, b)
	}
	if res := <-first; res.err != nil || res.out != "dropped staging_orders" {
		t.Errorf("approved call: %+v", res)
	}

	second := call("orders", "toolu_2")
	r = awaitListed(t, e, "drop_table")
	if code, _, b := e.do(t, apikey.Admin, "POST", "/v1/approvals/"+r.ID+"/reject", "application/json", []byte(`{"note": "not on prod"}`)); code != 200 {
		t.Fatalf("reject: %d %s", code, b)
	}
	res := <-second
	if !errors.Is(res.err, agentaudit.ErrNotApproved) || !strings.Contains(res.err.Error(), "rejected by apikey:admin1: not on prod") {
		t.Errorf("rejected call: %+v", res)
	}
	if ran["orders"] || !ran["staging_orders"] {
		t.Errorf("the tool ran for %v", ran)
	}

	if err := rec.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	code, _, b := e.do(t, apikey.Auditor, "GET", "/v1/events?session_id="+sess.ID()+"&limit=100", "", nil)
	if code != 200 {
		t.Fatalf("events: %d %s", code, b)
	}
	var page struct {
		Records []struct{ Event *event.Event } `json:"records"`
	}
	if err := json.Unmarshal(b, &page); err != nil {
		t.Fatal(err)
	}
	requests := map[string]*event.Event{}
	var got []string
	for _, rec := range page.Records {
		ev := rec.Event
		switch ev.Kind {
		case event.KindApprovalRequest:
			requests[ev.ID] = ev
		case event.KindApprovalDecision:
			if req := requests[ev.ParentID]; req == nil || req.ToolCallID != ev.ToolCallID {
				t.Errorf("decision not linked to its request: %+v", ev)
			}
			got = append(got, ev.ToolCallID+" "+string(ev.ApprovalStatus)+" "+ev.ApproverID+" "+ev.Rationale)
		case event.KindToolCall:
			got = append(got, ev.ToolCallID+" "+string(ev.Outcome))
		}
	}
	want := "toolu_1 approved apikey:auditor1 staging only, toolu_1 success, toolu_2 rejected apikey:admin1 not on prod, toolu_2 denied"
	if s := strings.Join(got, ", "); s != want {
		t.Errorf("recorded:\n%s\nwant\n%s", s, want)
	}
}

// TestApprovalsAgentSide: the endpoints a ServerApprover uses. Writers submit, check and
// withdraw but do not decide; bad and duplicate requests are refused; a call that times out is
// withdrawn, so it is no longer listed and cannot be decided.
func TestApprovalsAgentSide(t *testing.T) {
	e := start(t, server.Config{ApprovalsDir: filepath.Join(t.TempDir(), "approvals")})
	for _, c := range []struct {
		role apikey.Role
		body string
		code int
	}{
		{apikey.Reader, `{"id": "a1", "tool": "wipe"}`, 403},
		{apikey.Auditor, `{"id": "a1", "tool": "wipe"}`, 403},
		{apikey.Writer, `{"id": "../a1", "tool": "wipe"}`, 400},
		{apikey.Writer, `{"id": "a1"}`, 400},
		{apikey.Writer, `{"id": "a1", "tool": "wipe", "arguments": {}}`, 400},
		{apikey.Writer, `{"id": "a1", "tool": "wipe"}`, 201},
		{apikey.Admin, `{"id": "a1", "tool": "wipe"}`, 409},
	} {
		if code, _, b := e.do(t, c.role, "POST", "/v1/approvals", "application/json", []byte(c.body)); code != c.code {
			t.Errorf("POST /v1/approvals %s as %s: %d %s, want %d", c.body, c.role, code, b, c.code)
		}
	}
	if code, _, b := e.do(t, apikey.Writer, "GET", "/v1/approvals/a1", "", nil); code != 200 || !strings.Contains(string(b), `"status":"pending"`) {
		t.Errorf("check: %d %s", code, b)
	}
	if code, _, _ := e.do(t, apikey.Writer, "POST", "/v1/approvals/a1/approve", "application/json", []byte(`{}`)); code != 403 {
		t.Errorf("a writer decided: %d", code)
	}
	if code, _, b := e.do(t, apikey.Auditor, "POST", "/v1/approvals/a1/reject", "application/json", []byte(`{"note": "no"}`)); code != 200 {
		t.Fatalf("reject: %d %s", code, b)
	}
	if code, _, b := e.do(t, apikey.Writer, "GET", "/v1/approvals/a1", "", nil); code != 200 || !strings.Contains(string(b), `"status":"rejected","approver":"apikey:auditor1","note":"no"`) {
		t.Errorf("check after the decision: %d %s", code, b)
	}
	if code, _, _ := e.do(t, apikey.Writer, "DELETE", "/v1/approvals/a1", "", nil); code != 204 {
		t.Errorf("withdraw: %d", code)
	}
	if code, _, _ := e.do(t, apikey.Writer, "GET", "/v1/approvals/a1", "", nil); code != 404 {
		t.Errorf("check after withdrawal: %d", code)
	}

	// Nobody decides: the ServerApprover's wait ends, the call is denied and withdrawn.
	rec, err := agentaudit.New(&discardSink{})
	if err != nil {
		t.Fatal(err)
	}
	defer rec.Close()
	ctx, _, _ := rec.StartSession(context.Background(), agentaudit.SessionInfo{UserID: "usr_1"})
	wipe := agentaudit.WrapTool(rec, "wipe", func(ctx context.Context, _ string) (string, error) { return "wiped", nil },
		agentaudit.RequireApproval(&agentaudit.ServerApprover{URL: e.url, Key: e.keys[apikey.Writer], Poll: 10 * time.Millisecond}, 300*time.Millisecond))
	listed := make(chan bool, 1)
	go func() {
		for range 100 {
			if len(pendingIDs(t, e, apikey.Reader)) > 0 {
				listed <- true
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		listed <- false
	}()
	_, err = wipe(ctx, "everything")
	if !errors.Is(err, agentaudit.ErrNotApproved) || !strings.Contains(err.Error(), "no decision within 300ms") {
		t.Errorf("undecided call: %v", err)
	}
	if !<-listed {
		t.Error("the waiting call was never listed")
	}
	if got := pendingIDs(t, e, apikey.Reader); len(got) != 0 {
		t.Errorf("still pending after the timeout: %+v", got)
	}

	// A ServerApprover with a key that may not submit: denied, saying why.
	bad := agentaudit.WrapTool(rec, "wipe", func(ctx context.Context, _ string) (string, error) { return "wiped", nil },
		agentaudit.RequireApproval(&agentaudit.ServerApprover{URL: e.url, Key: e.keys[apikey.Reader]}, time.Second))
	if _, err := bad(ctx, "x"); !errors.Is(err, agentaudit.ErrNotApproved) || !strings.Contains(err.Error(), "403") {
		t.Errorf("reader key: %v", err)
	}
}

// discardSink stores nothing and fails nothing.
type discardSink struct{}

func (discardSink) AppendBatch(ctx context.Context, evs []*event.Event) ([]error, error) {
	return make([]error, len(evs)), nil
}
func (discardSink) Close() error { return nil }
