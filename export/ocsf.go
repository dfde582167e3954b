package export

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/agentaudit/agentaudit/event"
)

// OCSFVersion is the OCSF schema version the records follow: 1.8.0 is the first release whose
// API Activity class lists the ai_operation profile (events/application/api_activity.json).
const OCSFVersion = "1.8.0"

// OCSF API Activity: category 6 Application Activity, class 6003.
const (
	OCSFCategoryUID = 6
	OCSFClassUID    = 6003
)

// OCSFEvent is an OCSF API Activity record with the ai_operation profile's attributes. Field
// names and types follow the OCSF 1.8.0 dictionary and objects.
type OCSFEvent struct {
	ActivityID     int                 `json:"activity_id"`
	ActivityName   string              `json:"activity_name"`
	CategoryUID    int                 `json:"category_uid"`
	CategoryName   string              `json:"category_name"`
	ClassUID       int                 `json:"class_uid"`
	ClassName      string              `json:"class_name"`
	TypeUID        int                 `json:"type_uid"`
	TypeName       string              `json:"type_name"`
	SeverityID     int                 `json:"severity_id"`
	Severity       string              `json:"severity"`
	Time           int64               `json:"time"`
	StartTime      int64               `json:"start_time,omitempty"`
	EndTime        int64               `json:"end_time,omitempty"`
	Duration       int64               `json:"duration,omitempty"`
	StatusID       int                 `json:"status_id"`
	Status         string              `json:"status"`
	StatusDetail   string              `json:"status_detail,omitempty"`
	Message        string              `json:"message,omitempty"`
	Actor          OCSFActor           `json:"actor"`
	API            OCSFAPI             `json:"api"`
	SrcEndpoint    OCSFEndpoint        `json:"src_endpoint"`
	HTTPRequest    *OCSFHTTPRequest    `json:"http_request,omitempty"`
	Metadata       OCSFMetadata        `json:"metadata"`
	AIModel        *OCSFAIModel        `json:"ai_model,omitempty"`
	MessageContext *OCSFMessageContext `json:"message_context,omitempty"`
	Unmapped       OCSFUnmapped        `json:"unmapped"`
}

// OCSFActor is the actor object: the human user, the AI agent as the application, the session.
type OCSFActor struct {
	User    *OCSFUser    `json:"user,omitempty"`
	AppName string       `json:"app_name,omitempty"`
	Session *OCSFSession `json:"session,omitempty"`
}

// OCSFUser is the user object. OCSF has no role attribute; the role is a group.
type OCSFUser struct {
	UID    string      `json:"uid"`
	TypeID int         `json:"type_id"`
	Type   string      `json:"type"`
	Groups []OCSFGroup `json:"groups,omitempty"`
}

// OCSFGroup is the group object.
type OCSFGroup struct {
	Name string `json:"name"`
	Type string `json:"type,omitempty"`
}

// OCSFSession is the session object.
type OCSFSession struct {
	UID string `json:"uid"`
}

// OCSFAPI is the api object.
type OCSFAPI struct {
	Operation string       `json:"operation"`
	Request   *OCSFRequest `json:"request,omitempty"`
	Service   *OCSFService `json:"service,omitempty"`
}

// OCSFRequest is the request object (uid required).
type OCSFRequest struct {
	UID string `json:"uid"`
}

// OCSFService is the service object.
type OCSFService struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// OCSFEndpoint is the network_endpoint object (at least one of ip, name, ...).
type OCSFEndpoint struct {
	IP   string `json:"ip,omitempty"`
	Name string `json:"name,omitempty"`
}

// OCSFHTTPRequest is the http_request object.
type OCSFHTTPRequest struct {
	UserAgent string `json:"user_agent"`
}

// OCSFMetadata is the metadata object.
type OCSFMetadata struct {
	Product    OCSFProduct `json:"product"`
	Version    string      `json:"version"`
	UID        string      `json:"uid"`
	Sequence   int64       `json:"sequence"`
	LogName    string      `json:"log_name,omitempty"`
	LoggedTime int64       `json:"logged_time,omitempty"`
	Profiles   []string    `json:"profiles,omitempty"`
}

// OCSFProduct is the product object.
type OCSFProduct struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
	Version    string `json:"version"`
}

// OCSFAIModel is the ai_model object (name and ai_provider required).
type OCSFAIModel struct {
	Name       string `json:"name"`
	AIProvider string `json:"ai_provider"`
}

// OCSFMessageContext is the message_context object (application or service required).
type OCSFMessageContext struct {
	AIRoleID         int          `json:"ai_role_id"`
	AIRole           string       `json:"ai_role"`
	UID              string       `json:"uid,omitempty"`
	Application      *OCSFApp     `json:"application,omitempty"`
	Service          *OCSFService `json:"service,omitempty"`
	PromptTokens     int64        `json:"prompt_tokens,omitempty"`
	CompletionTokens int64        `json:"completion_tokens,omitempty"`
	TotalTokens      int64        `json:"total_tokens,omitempty"`
}

// OCSFApp is the application object.
type OCSFApp struct {
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
}

// OCSFUnmapped holds what OCSF has no attribute for, under agentaudit's field names.
type OCSFUnmapped struct {
	Seq              int64  `json:"seq"`
	Kind             string `json:"kind"`
	SessionID        string `json:"session_id,omitempty"`
	ParentID         string `json:"parent_id,omitempty"`
	Turn             int64  `json:"turn,omitempty"`
	Step             int64  `json:"step,omitempty"`
	Trigger          string `json:"trigger,omitempty"`
	UserRole         string `json:"user_role,omitempty"`
	AgentVersion     string `json:"agent_version,omitempty"`
	SubjectType      string `json:"subject_type,omitempty"`
	SubjectID        string `json:"subject_id,omitempty"`
	Purpose          string `json:"purpose,omitempty"`
	BreakGlass       bool   `json:"break_glass,omitempty"`
	BreakGlassReason string `json:"break_glass_reason,omitempty"`
	ApprovalStatus   string `json:"approval_status,omitempty"`
	ApproverID       string `json:"approver_id,omitempty"`
	ErrorType        string `json:"error_type,omitempty"`
	StopReason       string `json:"stop_reason,omitempty"`
}

// ocsfActivities are activity_id and activity_name by what the event did.
var ocsfActivities = [...]struct {
	id   int
	name string
}{
	crudExecute: {99, "Other"}, crudCreate: {1, "Create"}, crudRead: {2, "Read"},
	crudUpdate: {3, "Update"}, crudDelete: {4, "Delete"},
}

// The OCSF severity_id values used.
const (
	sevInformational = 1
	sevLow           = 2
	sevMedium        = 3
	sevHigh          = 4
)

var severityNames = map[int]string{sevInformational: "Informational", sevLow: "Low", sevMedium: "Medium", sevHigh: "High"}

// OCSFAPIActivity maps one event to an OCSF API Activity record. activity_id is Read for an
// access, Create/Read/Update/Delete for a tool whose name says so, Other for the rest;
// severity is Informational for success, Low for an error, Medium for a denial, High for a
// break-glass access (an override that policy requires reviewing); the model, provider, token
// counts and the AI's role fill the ai_operation profile. No payload is exported.
func OCSFAPIActivity(r Record, opts Options) *OCSFEvent {
	e := r.Event
	opts.defaults()
	act := ocsfActivities[classify(e)]
	o := &OCSFEvent{
		ActivityID: act.id, ActivityName: act.name,
		CategoryUID: OCSFCategoryUID, CategoryName: "Application Activity",
		ClassUID: OCSFClassUID, ClassName: "API Activity",
		TypeUID: OCSFClassUID*100 + act.id, TypeName: "API Activity: " + act.name,
		Time:         e.Time.UnixMilli(),
		StatusDetail: e.Error,
		Message:      e.Attribution(),
		Metadata: OCSFMetadata{
			Product:  OCSFProduct{Name: opts.Product, VendorName: opts.Vendor, Version: opts.Version},
			Version:  OCSFVersion,
			UID:      e.ID,
			Sequence: r.Seq,
			LogName:  opts.LogOrigin,
		},
		Unmapped: OCSFUnmapped{
			Seq: r.Seq, Kind: string(e.Kind), SessionID: e.SessionID, ParentID: e.ParentID,
			Turn: e.Turn, Step: e.Step, Trigger: string(e.Trigger), UserRole: e.UserRole,
			AgentVersion: e.AgentVersion, SubjectType: e.SubjectType, SubjectID: e.SubjectID,
			Purpose: e.Purpose, BreakGlass: e.BreakGlass, BreakGlassReason: e.BreakGlassReason,
			ApprovalStatus: string(e.ApprovalStatus), ApproverID: e.ApproverID,
			ErrorType: errorType(e), StopReason: e.StopReason,
		},
	}
	if !e.RecordedAt.IsZero() {
		o.Metadata.LoggedTime = e.RecordedAt.UnixMilli()
	}
	if d := duration(e); d > 0 {
		o.StartTime, o.EndTime, o.Duration = o.Time, e.Time.Add(d).UnixMilli(), d.Milliseconds()
	}

	o.StatusID, o.Status, o.SeverityID = 1, "Success", sevInformational
	switch fhirOutcome(e) {
	case "4": // denied
		o.StatusID, o.Status, o.SeverityID = 2, "Failure", sevMedium
		if o.StatusDetail == "" {
			o.StatusDetail = "denied"
		}
	case "8":
		o.StatusID, o.Status, o.SeverityID = 2, "Failure", sevLow
	}
	if e.BreakGlass {
		o.SeverityID = sevHigh
	}
	o.Severity = severityNames[o.SeverityID]

	if e.UserID != "" {
		o.Actor.User = &OCSFUser{UID: e.UserID, TypeID: 1, Type: "User"}
		if e.UserRole != "" {
			o.Actor.User.Groups = []OCSFGroup{{Name: e.UserRole, Type: "role"}}
		}
	}
	o.Actor.AppName = e.AgentID
	if e.SessionID != "" {
		o.Actor.Session = &OCSFSession{UID: e.SessionID}
	}
	if o.Actor.User == nil && o.Actor.AppName == "" && o.Actor.Session == nil {
		o.Actor.AppName = "unidentified client" // actor needs one of user, app_name, session, ...
	}

	o.API.Operation = e.ToolName
	if o.API.Operation == "" {
		o.API.Operation = string(e.Kind)
	}
	if e.ToolCallID != "" {
		o.API.Request = &OCSFRequest{UID: e.ToolCallID}
	}

	o.SrcEndpoint = OCSFEndpoint{IP: e.ClientIP}
	if e.ClientIP == "" { // src_endpoint is required and needs one of ip, name, ...
		o.SrcEndpoint.Name = o.Actor.AppName
		if o.SrcEndpoint.Name == "" {
			o.SrcEndpoint.Name = "unknown"
		}
	}
	if e.UserAgent != "" {
		o.HTTPRequest = &OCSFHTTPRequest{UserAgent: e.UserAgent}
	}

	if e.Model != "" || e.Kind == event.KindLLMCall {
		o.Metadata.Profiles = []string{"ai_operation"}
		model := e.Model
		if model == "" {
			model = "unknown"
		}
		provider := aiProvider(e)
		o.AIModel = &OCSFAIModel{Name: model, AIProvider: provider}
		mc := &OCSFMessageContext{UID: e.SessionID, Service: &OCSFService{Name: provider},
			PromptTokens: e.InputTokens, CompletionTokens: e.OutputTokens, TotalTokens: e.InputTokens + e.OutputTokens}
		switch e.Kind {
		case event.KindLLMCall:
			mc.AIRoleID, mc.AIRole = 2, "Assistant"
			o.API.Service = &OCSFService{Name: provider}
		case event.KindToolCall, event.KindToolResult:
			mc.AIRoleID, mc.AIRole = 3, "Tool"
		default:
			mc.AIRoleID, mc.AIRole = 4, "Agent"
		}
		if e.AgentID != "" {
			mc.Application = &OCSFApp{Name: e.AgentID, Version: e.AgentVersion}
		}
		o.MessageContext = mc
	}
	return o
}

// aiProvider is the model's provider: gen_ai.provider.name from the event's metadata (the OTLP
// receiver keeps it there), else the part before a "/" in the model name (openai/gpt-4o), else
// known by the model family's name, else "unknown". Names follow the OpenTelemetry GenAI
// gen_ai.provider.name values.
func aiProvider(e *event.Event) string {
	if len(e.Metadata) > 0 && bytes.Contains(e.Metadata, []byte(`"gen_ai.provider.name"`)) {
		var md struct {
			Provider string `json:"gen_ai.provider.name"`
		}
		if json.Unmarshal(e.Metadata, &md) == nil && md.Provider != "" {
			return md.Provider
		}
	}
	m := strings.ToLower(e.Model)
	if p, _, ok := strings.Cut(m, "/"); ok && p != "" {
		return p
	}
	for _, f := range modelFamilies {
		if strings.HasPrefix(m, f.prefix) {
			return f.provider
		}
	}
	return "unknown"
}

var modelFamilies = []struct{ prefix, provider string }{
	{"claude", "anthropic"}, {"gpt", "openai"}, {"chatgpt", "openai"}, {"o1", "openai"},
	{"o3", "openai"}, {"o4", "openai"}, {"text-embedding", "openai"}, {"gemini", "gcp.gemini"},
	{"mistral", "mistral_ai"}, {"mixtral", "mistral_ai"}, {"codestral", "mistral_ai"},
	{"command", "cohere"}, {"grok", "x_ai"}, {"deepseek", "deepseek"},
}
