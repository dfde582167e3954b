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
	// The agent's side (agentaudit.ServerApprover): submit a request, wait for its decision,
	// withdraw it once answered or given up. Writers may not decide.
	s.handle("POST /v1/approvals", s.submitApproval, apikey.Writer, apikey.Admin)
	s.handle("GET /v1/approvals/{id}", s.checkApproval, apikey.Writer, apikey.Auditor, apikey.Admin)
	s.handle("DELETE /v1/approvals/{id}", s.withdrawApproval, apikey.Writer, apikey.Admin)
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

// submitApproval answers POST /v1/approvals with a request (id, tool, session_id, tool_call_id,
// user_id, agent_id, time): it is pending from now on, listed and decided like the MCP proxy's.
func (s *Server) submitApproval(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	d := s.approvals()
	if d == nil {
		return &Problem{Status: http.StatusServiceUnavailable, Title: "Approvals not configured", Detail: "this server has no approvals directory"}
	}
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	var req mcpproxy.Request
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: "want an approval request {\"id\", \"tool\", ...}: " + err.Error()}
	}
	err = d.Submit(req)
	switch {
	case errors.Is(err, mcpproxy.ErrDuplicateRequest):
		return &Problem{Status: http.StatusConflict, Title: "Conflict", Detail: err.Error()}
	case errors.Is(err, mcpproxy.ErrBadRequest):
		return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: err.Error()}
	case err != nil:
		return fmt.Errorf("approvals: %w", err)
	}
	return writeJSON(w, http.StatusCreated, map[string]any{"id": req.ID, "status": event.ApprovalPending})
}

// checkApproval answers GET /v1/approvals/{id}: {"status": "pending"} or the decision. Not
// recorded as an access: the waiting agent polls it, and the request and decision are events of
// its own.
func (s *Server) checkApproval(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	d := s.approvals()
	if d == nil {
		return &Problem{Status: http.StatusNotFound, Title: "Not found", Detail: mcpproxy.ErrNoRequest.Error()}
	}
	dec, ok, err := d.Check(r.PathValue("id"))
	switch {
	case errors.Is(err, mcpproxy.ErrNoRequest):
		return &Problem{Status: http.StatusNotFound, Title: "Not found", Detail: err.Error()}
	case err != nil:
		return fmt.Errorf("approvals: %w", err)
	case !ok:
		dec = mcpproxy.Decision{Status: event.ApprovalPending}
	}
	return writeJSON(w, http.StatusOK, dec)
}

// withdrawApproval answers DELETE /v1/approvals/{id}: the agent has its answer or gave up.
func (s *Server) withdrawApproval(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	if d := s.approvals(); d != nil {
		d.Withdraw(r.PathValue("id"))
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}
