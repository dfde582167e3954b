package agentaudit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

// ServerApprover is an Approver that waits on an agentaudit server: the request is submitted
// with POST /v1/approvals (a writer key, as Dial's), listed with the MCP proxy's by GET
// /v1/approvals and `agentaudit approvals list` on the server's host, decided by an auditor or
// admin (POST /v1/approvals/ID/approve|reject), and polled with GET /v1/approvals/ID. Once
// answered, or when the wait ends, it is withdrawn (DELETE /v1/approvals/ID).
type ServerApprover struct {
	URL    string        // the server's base URL, e.g. http://127.0.0.1:8433
	Key    string        // a writer or admin key
	Poll   time.Duration // between checks; 1s when 0
	Client *http.Client  // http.DefaultClient when nil
}

var _ Approver = (*ServerApprover)(nil)

// Approve implements Approver.
func (a *ServerApprover) Approve(ctx context.Context, req ApprovalRequest) (ApprovalDecision, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return ApprovalDecision{}, fmt.Errorf("agentaudit: approval request: %w", err)
	}
	base := strings.TrimRight(a.URL, "/") + "/v1/approvals"
	if _, err := a.do(ctx, http.MethodPost, base, body, http.StatusCreated); err != nil {
		return ApprovalDecision{}, err
	}
	item := base + "/" + url.PathEscape(req.ID)
	defer func() {
		// Withdrawn even when the wait ended: nobody may decide a call that is no longer waiting.
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		a.do(wctx, http.MethodDelete, item, nil, http.StatusNoContent)
	}()
	poll := a.Poll
	if poll <= 0 {
		poll = time.Second
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		b, err := a.do(ctx, http.MethodGet, item, nil, http.StatusOK)
		if err != nil {
			return ApprovalDecision{}, err
		}
		var d ApprovalDecision
		if err := json.Unmarshal(b, &d); err != nil {
			return ApprovalDecision{}, fmt.Errorf("agentaudit: approval %s: the server answered %q: %w", req.ID, b, err)
		}
		if d.Status != event.ApprovalPending {
			return d, nil
		}
		select {
		case <-ctx.Done():
			return ApprovalDecision{}, ctx.Err()
		case <-t.C:
		}
	}
}

// do sends one request and returns the body of the wanted answer; any other status is an error
// quoting the server's problem detail.
func (a *ServerApprover) do(ctx context.Context, method, u string, body []byte, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("agentaudit: approvals: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(a.Key))
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c := a.Client
	if c == nil {
		c = http.DefaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agentaudit: approvals: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("agentaudit: approvals: %s %s: %w", method, u, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("agentaudit: approvals: %s %s: %s: %s", method, u, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}
