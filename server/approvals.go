package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/mcpproxy"
)

// approvalRoutes serves the approval gate's pending requests (Config.ApprovalsDir, the
// directory the MCP proxy and mcpproxy.DirDecider share with `agentaudit approvals`). Readers,
// auditors and admins may list them: a request names the tool, the session and the user, never
// the arguments. Only auditors and admins decide; the decider on record is the key
// (apikey:NAME).
func (s *Server) approvalRoutes() {
	s.handle("GET /v1/approvals", s.listApprovals, apikey.Reader, apikey.Auditor, apikey.Admin)
	s.handle("POST /v1/approvals/{id}/approve", s.decideApproval(event.ApprovalApproved), apikey.Auditor, apikey.Admin)
	s.handle("POST /v1/approvals/{id}/reject", s.decideApproval(event.ApprovalRejected), apikey.Auditor, apikey.Admin)
}

// approvals is the directory of pending requests, or nil when the server has none configured
// (then nothing is pending).
func (s *Server) approvals() *mcpproxy.DirDecider {
	if s.cfg.ApprovalsDir == "" {
		return nil
	}
	return &mcpproxy.DirDecider{Dir: s.cfg.ApprovalsDir}
}

// listApprovals answers GET /v1/approvals: the requests waiting for a decision, oldest first.
func (s *Server) listApprovals(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	reqs := []mcpproxy.Request{}
	if d := s.approvals(); d != nil {
		pending, err := d.Pending()
		if err != nil {
			return fmt.Errorf("approvals: %w", err)
		}
		reqs = append(reqs, pending...)
	}
	if err := s.audit(r, k, "approvals", len(reqs)); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"approvals": reqs})
}

// decideApproval answers POST /v1/approvals/{id}/approve and .../reject with an optional
// {"note": "..."}: the held call goes on (approved) or is answered with an error (rejected).
// The waiting gate records the decision as an approval_decision event; the decision through the
// API is recorded here as well, as the key's access to the request.
func (s *Server) decideApproval(status event.ApprovalStatus) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
		body, err := s.readBody(w, r)
		if err != nil {
			return err
		}
		var req struct {
			Note string `json:"note"`
		}
		if len(bytes.TrimSpace(body)) > 0 {
			dec := json.NewDecoder(bytes.NewReader(body))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&req); err != nil {
				return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: `want {"note": "why"} (the note is optional): ` + err.Error()}
			}
		}
		id := r.PathValue("id")
		d := s.approvals()
		if d == nil {
			return &Problem{Status: http.StatusNotFound, Title: "Not found", Detail: fmt.Sprintf("%s: this server has no approvals directory", mcpproxy.ErrNoRequest)}
		}
		approver := "apikey:" + k.Name
		err = d.Decide(id, mcpproxy.Decision{Status: status, Approver: approver, Note: req.Note})
		switch {
		case errors.Is(err, mcpproxy.ErrNoRequest):
			return &Problem{Status: http.StatusNotFound, Title: "Not found", Detail: err.Error()}
		case errors.Is(err, mcpproxy.ErrAlreadyDecided):
			return &Problem{Status: http.StatusConflict, Title: "Already decided", Detail: err.Error()}
		case err != nil:
			return fmt.Errorf("approvals: %w", err)
		}
		if err := s.audit(r, k, "approval:"+id, 1); err != nil {
			return err
		}
		return writeJSON(w, http.StatusOK, map[string]any{"id": id, "status": status, "approver": approver, "note": req.Note})
	}
}
