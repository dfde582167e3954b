package server

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/agentaudit/agentaudit/apikey"
	"github.com/agentaudit/agentaudit/ledger"
	"github.com/agentaudit/agentaudit/query"
	"github.com/agentaudit/agentaudit/retention"
)

// The governance routes, served when Config.Retention is set: plans and holds for auditors and
// admins, purges and erasures for admins. Each write is an event in the log (purge, legal_hold,
// hold_release) attributed to the key; each read is audited like every other.
func (s *Server) retentionRoutes() {
	if s.cfg.Retention == nil {
		return
	}
	s.handle("GET /v1/retention/plan", s.retentionPlan, apikey.Auditor, apikey.Admin)
	s.handle("POST /v1/retention/apply", s.retentionApply, apikey.Admin)
	s.handle("GET /v1/holds", s.listHolds, apikey.Auditor, apikey.Admin)
	s.handle("POST /v1/holds", s.placeHold, apikey.Auditor, apikey.Admin)
	s.handle("POST /v1/holds/{id}/release", s.releaseHold, apikey.Auditor, apikey.Admin)
	s.handle("POST /v1/erasures", s.erase, apikey.Admin)
}

func actor(k apikey.Key) string { return "apikey:" + k.Name }

// decodeStrict reads a JSON request body into v, refusing unknown members and trailing data.
func (s *Server) decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: "body: " + err.Error()}
	}
	if dec.More() {
		return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: "body: one JSON object expected"}
	}
	return nil
}

func (s *Server) retentionPlan(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	at := time.Now()
	if v := r.URL.Query().Get("at"); v != "" {
		var err error
		if at, err = time.Parse(time.RFC3339Nano, v); err != nil {
			return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: "at: want an RFC 3339 time"}
		}
	}
	p, err := s.cfg.Retention.Plan(r.Context(), at)
	if err != nil {
		return err
	}
	if err := s.audit(r, k, "retention_plan", len(p.Classes)); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, p)
}

func (s *Server) retentionApply(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	res, err := s.cfg.Retention.Apply(r.Context(), actor(k))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}

func (s *Server) listHolds(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	hs, err := retention.Holds(r.Context(), s.cfg.Retention.Store)
	if err != nil {
		return err
	}
	if hs == nil {
		hs = []*ledger.Hold{}
	}
	if err := s.audit(r, k, "holds", len(hs)); err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, map[string]any{"holds": hs})
}

// HoldRequest is the body of POST /v1/holds: the scope (subject as TYPE:ID) and the reason.
type HoldRequest struct {
	Subject   string    `json:"subject,omitempty"`
	SessionID string    `json:"session_id,omitempty"`
	UserID    string    `json:"user_id,omitempty"`
	AgentID   string    `json:"agent_id,omitempty"`
	ToolName  string    `json:"tool_name,omitempty"`
	Kind      string    `json:"kind,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Until     time.Time `json:"until,omitzero"`
	Reason    string    `json:"reason"`
}

func (s *Server) placeHold(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	var req HoldRequest
	if err := s.decodeStrict(w, r, &req); err != nil {
		return err
	}
	scope := ledger.HoldScope{SessionID: req.SessionID, UserID: req.UserID, AgentID: req.AgentID, ToolName: req.ToolName,
		Kind: req.Kind, Since: req.Since, Until: req.Until}
	if req.Subject != "" {
		var err error
		if scope.SubjectType, scope.SubjectID, err = query.ParseSubject(req.Subject); err != nil {
			return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: "subject: " + err.Error()}
		}
	}
	h, err := s.cfg.Retention.PlaceHold(r.Context(), scope, req.Reason, actor(k))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusCreated, h)
}

func (s *Server) releaseHold(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := s.decodeStrict(w, r, &req); err != nil {
		return err
	}
	h, err := s.cfg.Retention.ReleaseHold(r.Context(), r.PathValue("id"), req.Reason, actor(k))
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, h)
}

// ErasureRequest is the body of POST /v1/erasures.
type ErasureRequest struct {
	Subject           string `json:"subject"` // TYPE:ID
	Reason            string `json:"reason"`
	OverrideMandatory string `json:"override_mandatory,omitempty"`
}

func (s *Server) erase(w http.ResponseWriter, r *http.Request, k apikey.Key) error {
	var req ErasureRequest
	if err := s.decodeStrict(w, r, &req); err != nil {
		return err
	}
	typ, id, err := query.ParseSubject(req.Subject)
	if err != nil || typ == "" {
		return &Problem{Status: http.StatusBadRequest, Title: "Bad request", Detail: fmt.Sprintf("subject: want TYPE:ID (patient:P-123), not %q", req.Subject)}
	}
	res, err := s.cfg.Retention.Erase(r.Context(), retention.Erasure{SubjectType: typ, SubjectID: id, Reason: req.Reason,
		OverrideMandatory: req.OverrideMandatory, By: actor(k)})
	if err != nil {
		return err
	}
	return writeJSON(w, http.StatusOK, res)
}
