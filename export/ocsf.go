package export

import (
	"strings"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/query"
)

// OCSFVersion is the OCSF schema version the API Activity records follow.
const OCSFVersion = "1.5.0"

// OCSF API Activity (class 6003) records. Field names follow the OCSF schema; the ai_operation
// profile adds ai_model and message_context.
type (
	OCSFEvent struct {
		ClassUID       int             `json:"class_uid"`
		ClassName      string          `json:"class_name"`
		CategoryUID    int             `json:"category_uid"`
		CategoryName   string          `json:"category_name"`
		ActivityID     int             `json:"activity_id"`
		ActivityName   string          `json:"activity_name"`
		TypeUID        int             `json:"type_uid"`
		TypeName       string          `json:"type_name"`
		SeverityID     int             `json:"severity_id"`
		Severity       string          `json:"severity"`
		Time           int64           `json:"time"`
		StatusID       int             `json:"status_id"`
		Status         string          `json:"status"`
		StatusDetail   string          `json:"status_detail,omitempty"`
		Message        string          `json:"message,omitempty"`
		Actor          OCSFActor       `json:"actor"`
		API            OCSFAPI         `json:"api"`
		SrcEndpoint    *OCSFEndpoint   `json:"src_endpoint,omitempty"`
		HTTPRequest    *OCSFHTTP       `json:"http_request,omitempty"`
		Metadata       OCSFMetadata    `json:"metadata"`
		AIModel        *OCSFAIModel    `json:"ai_model,omitempty"`
		MessageContext *OCSFMessageCtx `json:"message_context,omitempty"`
		Unmapped       map[string]any  `json:"unmapped,omitempty"`
	}
	OCSFActor struct {
		User    *OCSFUser    `json:"user,omitempty"`
		AppName string       `json:"app_name,omitempty"`
		Session *OCSFSession `json:"session,omitempty"`
	}
	OCSFUser struct {
		UID    string          `json:"uid"`
		Groups []OCSFGroupName `json:"groups,omitempty"`
	}
	OCSFGroupName struct {
		Name string `json:"name"`
	}
	OCSFSession struct {
		UID string `json:"uid"`
	}
	OCSFAPI struct {
		Operation string       `json:"operation"`
		Request   *OCSFRequest `json:"request,omitempty"`
		Service   *OCSFService `json:"service,omitempty"`
	}
	OCSFRequest struct {
		UID string `json:"uid"`
	}
	OCSFService struct {
		Name    string `json:"name"`
		Version string `json:"version,omitempty"`
	}
	OCSFEndpoint struct {
		IP string `json:"ip"`
	}
	OCSFHTTP struct {
		UserAgent string `json:"user_agent"`
	}
	OCSFMetadata struct {
		Product  OCSFProduct `json:"product"`
		Version  string      `json:"version"`
		UID      string      `json:"uid"`
		Profiles []string    `json:"profiles,omitempty"`
		LoggedAt int64       `json:"logged_time,omitempty"`
	}
	OCSFProduct struct {
		Name       string `json:"name"`
		VendorName string `json:"vendor_name"`
		Version    string `json:"version"`
	}
	OCSFAIModel struct {
		Name string `json:"name"`
	}
	OCSFMessageCtx struct {
		PromptTokens     int64 `json:"prompt_tokens,omitempty"`
		CompletionTokens int64 `json:"completion_tokens,omitempty"`
		TotalTokens      int64 `json:"total_tokens,omitempty"`
	}
)

// OCSFAPIActivity maps one event to an OCSF API Activity record: activity Read for data access,
// Other for agent actions; severity Informational for success, Low for an error, Medium for a
// denial or a break-glass access; the model and token counts in the ai_operation profile.
func OCSFAPIActivity(r query.Record, opts Options) *OCSFEvent {
	e := r.Event
	opts.defaults()
	o := &OCSFEvent{
		ClassUID: 6003, ClassName: "API Activity", CategoryUID: 6, CategoryName: "Application Activity",
		ActivityID: 99, ActivityName: "Other",
		Time: e.Time.UnixMilli(),
		Metadata: OCSFMetadata{Product: OCSFProduct{Name: opts.Product, VendorName: opts.Vendor, Version: opts.Version},
			Version: OCSFVersion, UID: e.ID},
		Unmapped: map[string]any{"seq": r.Seq, "kind": string(e.Kind)},
	}
	if !e.RecordedAt.IsZero() {
		o.Metadata.LoggedAt = e.RecordedAt.UnixMilli()
	}
	if e.Kind == event.KindAccess || (e.SubjectID != "" && e.Kind == event.KindToolCall) {
		o.ActivityID, o.ActivityName = 2, "Read"
	}
	o.TypeUID = o.ClassUID*100 + o.ActivityID
	o.TypeName = "API Activity: " + o.ActivityName
	failed := e.Outcome == event.OutcomeError || (e.Success != nil && !*e.Success)
	switch {
	case e.Outcome == event.OutcomeDenied:
		o.StatusID, o.Status, o.SeverityID, o.Severity = 2, "Failure", 3, "Medium"
	case failed:
		o.StatusID, o.Status, o.SeverityID, o.Severity = 2, "Failure", 2, "Low"
	case e.Outcome == event.OutcomeSuccess || (e.Success != nil && *e.Success):
		o.StatusID, o.Status, o.SeverityID, o.Severity = 1, "Success", 1, "Informational"
	default:
		o.StatusID, o.Status, o.SeverityID, o.Severity = 0, "Unknown", 1, "Informational"
	}
	if e.BreakGlass && o.SeverityID < 3 {
		o.SeverityID, o.Severity = 3, "Medium"
	}
	o.StatusDetail = e.Error
	if e.UserID != "" {
		o.Actor.User = &OCSFUser{UID: e.UserID}
		if e.UserRole != "" {
			o.Actor.User.Groups = []OCSFGroupName{{Name: e.UserRole}}
		}
	}
	o.Actor.AppName = e.AgentID
	if e.SessionID != "" {
		o.Actor.Session = &OCSFSession{UID: e.SessionID}
	}
	o.API.Operation = e.ToolName
	if o.API.Operation == "" {
		o.API.Operation = string(e.Kind)
	}
	if e.ToolCallID != "" {
		o.API.Request = &OCSFRequest{UID: e.ToolCallID}
	}
	if e.AgentID != "" {
		o.API.Service = &OCSFService{Name: e.AgentID, Version: e.AgentVersion}
	}
	if e.ClientIP != "" {
		o.SrcEndpoint = &OCSFEndpoint{IP: e.ClientIP}
	}
	if e.UserAgent != "" {
		o.HTTPRequest = &OCSFHTTP{UserAgent: e.UserAgent}
	}
	if e.Model != "" {
		o.Metadata.Profiles = []string{"ai_operation"}
		o.AIModel = &OCSFAIModel{Name: e.Model}
		if e.InputTokens > 0 || e.OutputTokens > 0 {
			o.MessageContext = &OCSFMessageCtx{PromptTokens: e.InputTokens, CompletionTokens: e.OutputTokens, TotalTokens: e.InputTokens + e.OutputTokens}
		}
	}
	for k, v := range map[string]string{"session_id": e.SessionID, "subject_type": e.SubjectType, "subject_id": e.SubjectID,
		"purpose": e.Purpose, "trigger": string(e.Trigger), "parent_id": e.ParentID, "break_glass_reason": e.BreakGlassReason} {
		if v != "" {
			o.Unmapped[k] = v
		}
	}
	if e.BreakGlass {
		o.Unmapped["break_glass"] = true
	}
	o.Message = strings.TrimSpace(e.Attribution())
	return o
}
