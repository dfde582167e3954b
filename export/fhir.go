package export

import (
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/agentaudit/agentaudit/event"
)

// Code systems and naming systems in the FHIR R4 AuditEvents. README.md explains each choice.
const (
	SystemDICOM         = "http://dicom.nema.org/resources/ontology/DCM"
	SystemAuditType     = "http://terminology.hl7.org/CodeSystem/audit-event-type"
	SystemRestful       = "http://hl7.org/fhir/restful-interaction"
	SystemActReason     = "http://terminology.hl7.org/CodeSystem/v3-ActReason"
	SystemParticipation = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
	SystemSourceType    = "http://terminology.hl7.org/CodeSystem/security-source-type"
	SystemEntityType    = "http://terminology.hl7.org/CodeSystem/audit-entity-type"
	SystemObjectRole    = "http://terminology.hl7.org/CodeSystem/object-role"

	// SystemEventKind is agentaudit's code system for the event kind (llm_call, tool_call, ...).
	SystemEventKind = "https://agentaudit.dev/fhir/CodeSystem/event-kind"
	// SystemOperation is agentaudit's code system for the operation an agent invoked: the
	// tool's name, exactly as the agent called it.
	SystemOperation = "https://agentaudit.dev/fhir/CodeSystem/operation"
	// SystemEventID identifies the ledger event an AuditEvent was made from (its "id").
	SystemEventID = "https://agentaudit.dev/fhir/NamingSystem/event-id"
	// SystemLogOrigin identifies the log (its checkpoint origin) that observed the event.
	SystemLogOrigin = "https://agentaudit.dev/fhir/NamingSystem/log-origin"
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

// Reference is a FHIR Reference by identifier (the exported resources point at no server).
type Reference struct {
	Type       string      `json:"type,omitempty"`
	Identifier *Identifier `json:"identifier,omitempty"`
	Display    string      `json:"display,omitempty"`
}

// AuditEvent is a FHIR R4 AuditEvent.
type AuditEvent struct {
	ResourceType   string            `json:"resourceType"`
	ID             string            `json:"id"`
	Type           Coding            `json:"type"`
	Subtype        []Coding          `json:"subtype,omitempty"`
	Action         string            `json:"action"`
	Period         *Period           `json:"period,omitempty"`
	Recorded       string            `json:"recorded"`
	Outcome        string            `json:"outcome"`
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
	Site     string    `json:"site,omitempty"`
	Observer Reference `json:"observer"`
	Type     []Coding  `json:"type,omitempty"`
}

// Entity is an AuditEvent.entity.
type Entity struct {
	What        *Reference `json:"what,omitempty"`
	Type        *Coding    `json:"type,omitempty"`
	Role        *Coding    `json:"role,omitempty"`
	Description string     `json:"description,omitempty"`
	Detail      []Detail   `json:"detail,omitempty"`
}

// Detail is an AuditEvent.entity.detail.
type Detail struct {
	Type        string `json:"type"`
	ValueString string `json:"valueString"`
}

// The codes, by what they mean here.
var (
	typeAppActivity  = Coding{SystemDICOM, "110100", "Application Activity"}
	typeRest         = Coding{SystemAuditType, "rest", "Restful Operation"}
	typeSecAlert     = Coding{SystemDICOM, "110113", "Security Alert"}
	subtypeRead      = Coding{SystemRestful, "read", "read"}
	subtypeOverride  = Coding{SystemDICOM, "110127", "Emergency Override Started"}
	agentUser        = CodeableConcept{Coding: []Coding{{SystemParticipation, "IRCP", "information recipient"}}}
	agentApplication = CodeableConcept{Coding: []Coding{{SystemDICOM, "110150", "Application"}}}
	agentVerifier    = CodeableConcept{Coding: []Coding{{SystemParticipation, "VRF", "verifier"}}}
	sourceAppServer  = Coding{SystemSourceType, "4", "Application Server"}
	entityPerson     = Coding{SystemEntityType, "1", "Person"}
	entitySystem     = Coding{SystemEntityType, "2", "System Object"}
	purposeETREAT    = Coding{SystemActReason, "ETREAT", "Emergency Treatment"}
)

// fhirActions are AuditEvent.action by what the event did.
var fhirActions = [...]string{crudExecute: "E", crudCreate: "C", crudRead: "R", crudUpdate: "U", crudDelete: "D"}

// purposeCodes maps purposes of use (lower case, - and spaces as _) to v3-ActReason codes. A
// purpose not listed is exported as text only.
var purposeCodes = map[string]Coding{
	"treatment":             {SystemActReason, "TREAT", "treatment"},
	"emergency":             purposeETREAT,
	"emergency_treatment":   purposeETREAT,
	"break_glass":           purposeETREAT,
	"payment":               {SystemActReason, "HPAYMT", "healthcare payment"},
	"billing":               {SystemActReason, "HPAYMT", "healthcare payment"},
	"research":              {SystemActReason, "HRESCH", "healthcare research"},
	"operations":            {SystemActReason, "HOPERAT", "healthcare operations"},
	"healthcare_operations": {SystemActReason, "HOPERAT", "healthcare operations"},
	"public_health":         {SystemActReason, "PUBHLTH", "public health"},
	"legal":                 {SystemActReason, "HLEGAL", "legal"},
	"patient_request":       {SystemActReason, "PATRQT", "patient requested"},
	"patient_requested":     {SystemActReason, "PATRQT", "patient requested"},
}

// subjectKind is how an entity for a subject type is coded: audit-entity-type, object-role and
// the FHIR resource type its reference points at.
type subjectKind struct {
	typ, role Coding
	refType   string
}

// subjectKinds maps subject_type (lower case) to entity codes; any other subject is a System
// Object in the Domain Resource role, which is what BALP's data entity uses.
var subjectKinds = map[string]subjectKind{
	"patient":      {entityPerson, Coding{SystemObjectRole, "1", "Patient"}, "Patient"},
	"practitioner": {entityPerson, Coding{SystemObjectRole, "15", "Practitioner"}, "Practitioner"},
	"user":         {entityPerson, Coding{SystemObjectRole, "6", "User"}, ""},
	"customer":     {entityPerson, Coding{SystemObjectRole, "19", "Customer"}, ""},
	"audit_log":    {entitySystem, Coding{SystemObjectRole, "13", "Security Resource"}, ""},
}

var otherSubject = subjectKind{entitySystem, Coding{SystemObjectRole, "4", "Domain Resource"}, ""}

// FHIRAuditEvent maps one event to a FHIR R4 AuditEvent following the IHE BALP patterns: the
// human user is the requestor agent (v3-ParticipationType IRCP), the AI agent the client
// application agent (DICOM 110150) with the network address, an access is BALP's Read (type
// rest, subtype read, action R) with the subject as entity, a break-glass access a DICOM
// Security Alert with subtype Emergency Override Started and purpose ETREAT, and the ledger
// event an entity naming its id, seq, session, model and tool. No payload is exported.
func FHIRAuditEvent(r Record, opts Options) *AuditEvent {
	e := r.Event
	opts.defaults()
	op := classify(e)
	ae := &AuditEvent{
		ResourceType: "AuditEvent",
		ID:           fhirID(e.ID),
		Type:         typeAppActivity,
		Action:       fhirActions[op],
		Recorded:     fhirTime(e.RecordedAt),
		Outcome:      fhirOutcome(e),
		OutcomeDesc:  outcomeDesc(e),
		Source: Source{
			Site:     opts.Product,
			Observer: Reference{Identifier: &Identifier{System: SystemLogOrigin, Value: opts.LogOrigin}, Display: opts.LogOrigin},
			Type:     []Coding{sourceAppServer},
		},
	}
	if e.RecordedAt.IsZero() {
		ae.Recorded = fhirTime(e.Time)
	}
	if e.Kind == event.KindAccess {
		ae.Type = typeRest
		ae.Subtype = append(ae.Subtype, subtypeRead)
	}
	if e.BreakGlass {
		ae.Type = typeSecAlert
		ae.Subtype = append([]Coding{subtypeOverride}, ae.Subtype...)
	}
	ae.Subtype = append(ae.Subtype, Coding{System: SystemEventKind, Code: string(e.Kind)})
	if c := fhirCode(e.ToolName); c != "" {
		ae.Subtype = append(ae.Subtype, Coding{System: SystemOperation, Code: c})
	}
	if !e.Time.IsZero() {
		ae.Period = &Period{Start: fhirTime(e.Time)}
		if d := duration(e); d > 0 {
			ae.Period.End = fhirTime(e.Time.Add(d))
		}
	}
	ae.PurposeOfEvent = purposeOfEvent(e)
	ae.Agent = fhirAgents(e)
	if e.SubjectID != "" {
		k, ok := subjectKinds[strings.ToLower(e.SubjectType)]
		if !ok {
			k = otherSubject
		}
		ae.Entity = append(ae.Entity, Entity{
			What:        &Reference{Type: k.refType, Identifier: &Identifier{Value: e.SubjectID}},
			Type:        &k.typ,
			Role:        &k.role,
			Description: e.SubjectType,
		})
	}
	ae.Entity = append(ae.Entity, ledgerEntity(r))
	if opts.Reviewed != nil && e.BreakGlass && !opts.Reviewed[e.ID] {
		ae.OutcomeDesc = strings.TrimPrefix(ae.OutcomeDesc+"; break-glass not reviewed", "; ")
	}
	return ae
}

// fhirOutcome is the R4 outcome code: 0 success, 4 minor failure (a denial: policy refused and
// nothing was done), 8 serious failure (the action was attempted and failed). 12 (major failure)
// is not used: an event records one action, and its failure does not stop the system.
func fhirOutcome(e *event.Event) string {
	switch {
	case e.Outcome == event.OutcomeDenied:
		return "4"
	case e.Outcome == event.OutcomeError, e.Success != nil && !*e.Success:
		return "8"
	case e.Outcome == event.OutcomeSuccess:
		return "0"
	case e.Kind == event.KindError:
		return "8"
	}
	return "0"
}

// errorType is the event's error type as exports show it: a Go pointer type name ("*errors.
// errorString"), which SDKs before the fix recorded for plain errors, says nothing to an auditor
// and is left out.
func errorType(e *event.Event) string {
	if strings.HasPrefix(e.ErrorType, "*") {
		return ""
	}
	return e.ErrorType
}

// outcomeDesc is the error text (with its type), "denied" for a denial without one, and the
// break-glass reason.
func outcomeDesc(e *event.Event) string {
	var parts []string
	et := errorType(e)
	switch {
	case e.Error != "" && et != "":
		parts = append(parts, et+": "+e.Error)
	case e.Error != "":
		parts = append(parts, e.Error)
	case et != "":
		parts = append(parts, et)
	case e.Outcome == event.OutcomeDenied:
		parts = append(parts, "denied")
	}
	if e.BreakGlass {
		reason := e.BreakGlassReason
		if reason == "" {
			reason = "no reason given"
		}
		parts = append(parts, "break-glass: "+reason)
	}
	return strings.Join(parts, "; ")
}

// purposeOfEvent is the stated purpose (coded from v3-ActReason when known, always with its
// text) and, for a break-glass access, ETREAT as a concept of its own.
func purposeOfEvent(e *event.Event) []CodeableConcept {
	var out []CodeableConcept
	etreat := false
	if e.Purpose != "" {
		cc := CodeableConcept{Text: e.Purpose}
		key := strings.NewReplacer("-", "_", " ", "_").Replace(strings.ToLower(strings.TrimSpace(e.Purpose)))
		if c, ok := purposeCodes[key]; ok {
			cc.Coding = []Coding{c}
			etreat = c.Code == purposeETREAT.Code
		}
		out = append(out, cc)
	}
	if e.BreakGlass && !etreat {
		out = append(out, CodeableConcept{Coding: []Coding{purposeETREAT}})
	}
	return out
}

// fhirAgents are the human user (the requestor), the AI agent as the client application (the
// requestor itself when no user is named) carrying the network address, and the approver of an
// approval decision.
func fhirAgents(e *event.Event) []Agent {
	var agents []Agent
	if e.UserID != "" {
		u := Agent{Type: &agentUser, Who: &Reference{Identifier: &Identifier{Value: e.UserID}}, Requestor: true}
		if e.UserRole != "" {
			u.Role = []CodeableConcept{{Text: e.UserRole}}
		}
		agents = append(agents, u)
	}
	if e.AgentID != "" || e.Model != "" || e.ClientIP != "" || e.UserAgent != "" || len(agents) == 0 {
		app := Agent{Type: &agentApplication, Requestor: e.UserID == ""}
		switch {
		case e.AgentID != "":
			app.Who = &Reference{Identifier: &Identifier{Value: e.AgentID}, Display: strings.TrimSpace(e.AgentID + " " + e.AgentVersion)}
		case e.UserAgent != "":
			app.Who = &Reference{Display: e.UserAgent}
		default:
			app.Who = &Reference{Display: "unidentified client"}
		}
		if e.ClientIP != "" {
			app.Network = &Network{Address: e.ClientIP, Type: "2"}
		}
		agents = append(agents, app)
	}
	if e.ApproverID != "" {
		agents = append(agents, Agent{Type: &agentVerifier, Who: &Reference{Identifier: &Identifier{Value: e.ApproverID}}})
	}
	return agents
}

// ledgerEntity names the ledger event the AuditEvent was made from, so an auditor can fetch its
// inclusion proof, and carries the agent context as details.
func ledgerEntity(r Record) Entity {
	e := r.Event
	ent := Entity{
		What:        &Reference{Identifier: &Identifier{System: SystemEventID, Value: e.ID}},
		Type:        &entitySystem,
		Description: "agentaudit ledger event",
		Detail:      make([]Detail, 0, 12),
	}
	add := func(k, v string) {
		if v != "" {
			ent.Detail = append(ent.Detail, Detail{Type: k, ValueString: v})
		}
	}
	add("seq", strconv.FormatInt(r.Seq, 10))
	add("kind", string(e.Kind))
	add("session_id", e.SessionID)
	add("parent_id", e.ParentID)
	add("model", e.Model)
	add("tool_name", e.ToolName)
	add("tool_call_id", e.ToolCallID)
	add("trigger", string(e.Trigger))
	add("approval_status", string(e.ApprovalStatus))
	add("user_agent", e.UserAgent)
	if e.InputTokens > 0 {
		add("input_tokens", strconv.FormatInt(e.InputTokens, 10))
	}
	if e.OutputTokens > 0 {
		add("output_tokens", strconv.FormatInt(e.OutputTokens, 10))
	}
	return ent
}

// duration is how long the action took: duration_ms, or latency_ms for an LLM call.
func duration(e *event.Event) time.Duration {
	ms := e.DurationMS
	if ms <= 0 {
		ms = e.LatencyMS
	}
	if ms <= 0 {
		return 0
	}
	return time.Duration(ms * float64(time.Millisecond))
}

// fhirTime is an R4 instant: UTC, RFC 3339, fractional seconds only when present.
func fhirTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// eventIDSpace is the UUIDv5 namespace for resource ids made from event ids that are not UUIDs.
var eventIDSpace = uuid.MustParse("3d1c6f3e-52a4-4b8e-9a55-0b7f1e0c2a91")

// fhirID is the resource id (and urn:uuid fullUrl) for an event id: the id itself when it is a
// UUID in canonical form (agentaudit assigns UUIDv7s), else a UUIDv5 of it, because a FHIR id
// allows only [A-Za-z0-9.-]{1,64}. The event id itself is always in the ledger entity.
func fhirID(id string) string {
	if u, err := uuid.Parse(id); err == nil && u.String() == id {
		return id
	}
	return uuid.NewSHA1(eventIDSpace, []byte(id)).String()
}

// fhirCode makes s a valid FHIR code (no leading, trailing or repeated whitespace).
func fhirCode(s string) string {
	if strings.TrimSpace(s) == s && !strings.Contains(s, "  ") && !strings.ContainsAny(s, "\t\r\n") {
		return s
	}
	return strings.Join(strings.Fields(s), " ")
}
