package export

import (
	"strconv"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/query"
)

// Code systems used in FHIR R4 AuditEvents.
const (
	SystemDICOM         = "http://dicom.nema.org/resources/ontology/DCM"
	SystemAuditType     = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	SystemRestful       = "http://hl7.org/fhir/restful-interaction"
	SystemActReason     = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	SystemParticipation = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	SystemSourceType    = "http://terminology.hl7.org/CodeSystem/security-source-type"
	SystemEntityType    = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	SystemObjectRole    = "http://terminology.hl7.org/CodeSystem/object-role"
	// SystemOperation is agentaudit's own code system for the operation: the event kind, and the
	// tool name for tool calls.
	SystemOperation = "https://agentaudit.dev/fhir/CodeSystem/operation"
	// SystemEventID identifies the ledger event an AuditEvent was made from.
	SystemEventID = "urn:agentaudit:event"
)

// Coding is a FHIR Coding.
type Coding struct {
	System  string `json:"system,omitempty"`
	Code    string `json:"code"`
	Display string `json:"display,omitempty"`
}

// CodeableConcept is a FHIR CodeableConcept.
type CodeableConcept struct {
	Coding []Coding `json:"coding,omitempty"`
	Text   string   `json:"text,omitempty"`
}

// Identifier is a FHIR Identifier.
type Identifier struct {
	System string `json:"system,omitempty"`
	Value  string `json:"value"`
}

// Reference is a FHIR Reference by identifier.
type Reference struct {
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// AuditEvent is a FHIR R4 AuditEvent.
type AuditEvent struct {
	ResourceType   string            `json:"resourceType"`
	ID             string            `json:"id,omitempty"`
	Type           Coding            `json:"type"`
	Subtype        []Coding          `json:"subtype,omitempty"`
	Action         string            `json:"action,omitempty"`
	Period         *Period           `json:"period,omitempty"`
	Recorded       string            `json:"recorded"`
	Outcome        string            `json:"outcome,omitempty"`
	OutcomeDesc    string            `json:"outcomeDesc,omitempty"`
	PurposeOfEvent []CodeableConcept `json:"purposeOfEvent,omitempty"`
	Agent          []Agent           `json:"agent"`
	Source         Source            `json:"source"`
	Entity         []Entity          `json:"entity,omitempty"`
}

// Period is a FHIR Period.
type Period struct {
	Start string `json:"start,omitempty"`
	End   string `json:"end,omitempty"`
}

// Agent is an AuditEvent.agent.
type Agent struct {
	Type      *CodeableConcept  `json:"type,omitempty"`
	Role      []CodeableConcept `json:"role,omitempty"`
	Who       *Reference        `json:"who,omitempty"`
	Requestor bool              `json:"requestor"`
	Network   *Network          `json:"network,omitempty"`
}

// Network is an AuditEvent.agent.network.
type Network struct {
	Address string `json:"address"`
	Type    string `json:"type"` // "2": IP address
}

// Source is an AuditEvent.source.
type Source struct {
	Site     string     `json:"site,omitempty"`
	Observer *Reference `json:"observer"`
	Type     []Coding   `json:"type,omitempty"`
}

// Entity is an AuditEvent.entity.
type Entity struct {
	What   *Reference `json:"what,omitempty"`
	Type   *Coding    `json:"type,omitempty"`
	Role   *Coding    `json:"role,omitempty"`
	Detail []Detail   `json:"detail,omitempty"`
}

// Detail is an AuditEvent.entity.detail.
type Detail struct {
	Type        string `json:"type"`
	ValueString string `json:"valueString"`
}

// purposeCodes maps purposes of use to v3-ActReason codes.
var purposeCodes = map[string]Coding{
	"treatment":           {SystemActReason, "TREAT", "treatment"},
	"emergency_treatment": {SystemActReason, "ETREAT", "Emergency Treatment"},
	"payment":             {SystemActReason, "HPAYMT", "healthcare payment"},
	"billing":             {SystemActReason, "HPAYMT", "healthcare payment"},
	"research":            {SystemActReason, "HRESCH", "healthcare research"},
	"operations":          {SystemActReason, "HOPERAT", "healthcare operations"},
	"public_health":       {SystemActReason, "PUBHLTH", "public health"},
	"legal":               {SystemActReason, "HLEGAL", "legal"},
}

func fhirTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// FHIRAuditEvent maps one event to a FHIR R4 AuditEvent, following the IHE BALP patterns: the
// human user is the requestor agent (v3-ParticipationType IRCP), the AI agent a second agent of
// type DICOM 110150 "Application", the subject a Patient entity, the ledger event an entity with
// the model, tool and position in its details.
func FHIRAuditEvent(r query.Record, opts Options) *AuditEvent {
	e := r.Event
	opts.defaults()
	ae := &AuditEvent{
		ResourceType: "AuditEvent", ID: e.ID,
		Type:     Coding{SystemDICOM, "110100", "Application Activity"},
		Subtype:  []Coding{{System: SystemOperation, Code: string(e.Kind)}},
		Action:   "E",
		Recorded: fhirTime(e.RecordedAt),
		Source: Source{Site: opts.Product, Observer: &Reference{Display: opts.LogOrigin},
			Type: []Coding{{SystemSourceType, "4", "Application Server"}}},
	}
	if e.RecordedAt.IsZero() {
		ae.Recorded = fhirTime(e.Time)
	}
	if e.ToolName != "" {
		ae.Subtype = append(ae.Subtype, Coding{System: SystemOperation, Code: e.ToolName})
	}
	if e.Kind == event.KindAccess || e.SubjectID != "" {
		// BALP's Read pattern: a RESTful read of a patient's data.
		ae.Type = Coding{SystemAuditType, "rest", "Restful Operation"}
		ae.Subtype = append([]Coding{{SystemRestful, "read", "read"}}, ae.Subtype...)
		ae.Action = "R"
	}
	if e.BreakGlass {
		ae.Type = Coding{SystemDICOM, "110113", "Security Alert"}
		ae.Subtype = append([]Coding{{SystemDICOM, "110127", "Emergency Override Started"}}, ae.Subtype...)
	}
	if !e.Time.IsZero() {
		ae.Period = &Period{Start: fhirTime(e.Time)}
		if d := e.DurationMS; d > 0 {
			ae.Period.End = fhirTime(e.Time.Add(time.Duration(d * float64(time.Millisecond))))
		}
	}
	switch {
	case e.Outcome == event.OutcomeError:
		ae.Outcome = "8" // serious failure
	case e.Outcome == event.OutcomeDenied:
		ae.Outcome = "4" // minor failure: refused, nothing done
	case e.Success != nil && !*e.Success:
		ae.Outcome = "8"
	default:
		ae.Outcome = "0"
	}
	ae.OutcomeDesc = e.Error
	if e.BreakGlass && e.BreakGlassReason != "" {
		ae.OutcomeDesc = strings.TrimSpace("break-glass: " + e.BreakGlassReason + "; " + e.Error)
		ae.OutcomeDesc = strings.TrimSuffix(ae.OutcomeDesc, ";")
	}
	var purposes []Coding
	if c, ok := purposeCodes[strings.ToLower(e.Purpose)]; ok {
		purposes = append(purposes, c)
	}
	if e.BreakGlass && (len(purposes) == 0 || purposes[0].Code != "ETREAT") {
		purposes = append(purposes, purposeCodes["emergency_treatment"])
	}
	if len(purposes) > 0 || e.Purpose != "" {
		ae.PurposeOfEvent = []CodeableConcept{{Coding: purposes, Text: e.Purpose}}
	}
	user := Agent{Requestor: true, Type: &CodeableConcept{Coding: []Coding{{SystemParticipation, "IRCP", "information recipient"}}}}
	if e.UserID != "" {
		user.Who = &Reference{Identifier: &Identifier{Value: e.UserID}}
	} else {
		user.Who = &Reference{Display: "unknown user"}
	}
	if e.UserRole != "" {
		user.Role = []CodeableConcept{{Text: e.UserRole}}
	}
	if e.ClientIP != "" {
		user.Network = &Network{Address: e.ClientIP, Type: "2"}
	}
	ae.Agent = []Agent{user}
	if e.AgentID != "" || e.Model != "" {
		name := e.AgentID
		if e.AgentVersion != "" {
			name += "@" + e.AgentVersion
		}
		app := Agent{Type: &CodeableConcept{Coding: []Coding{{SystemDICOM, "110150", "Application"}}}}
		app.Who = &Reference{Display: name}
		if e.AgentID != "" {
			app.Who.Identifier = &Identifier{Value: e.AgentID}
		}
		ae.Agent = append(ae.Agent, app)
	}
	if e.SubjectID != "" {
		ent := Entity{What: &Reference{Identifier: &Identifier{Value: e.SubjectID}}, Type: &Coding{SystemEntityType, "1", "Person"}}
		if strings.EqualFold(e.SubjectType, "patient") {
			ent.Role = &Coding{SystemObjectRole, "1", "Patient"}
		}
		ae.Entity = append(ae.Entity, ent)
	}
	rec := Entity{What: &Reference{Identifier: &Identifier{System: SystemEventID, Value: e.ID}}, Type: &Coding{SystemEntityType, "2", "System Object"}}
	add := func(k, v string) {
		if v != "" {
			rec.Detail = append(rec.Detail, Detail{Type: k, ValueString: v})
		}
	}
	add("seq", strconv.FormatInt(r.Seq, 10))
	add("kind", string(e.Kind))
	add("session_id", e.SessionID)
	add("model", e.Model)
	add("tool_name", e.ToolName)
	add("tool_call_id", e.ToolCallID)
	add("trigger", string(e.Trigger))
	add("subject_type", e.SubjectType)
	ae.Entity = append(ae.Entity, rec)
	return ae
}
