package event

import "strings"

// Attribution renders the chain of accountability in one line: the user and role, the agent and
// model, the tool, and the trigger, e.g.
//
//	usr_98765 (support_agent) → support-v1/claude-opus-4-6 → update_order_status [user_request]
//
// Missing links are left out; an unknown user is shown as "?" so the gap stays visible.
func (e *Event) Attribution() string {
	var b strings.Builder
	if e.UserID != "" {
		b.WriteString(e.UserID)
	} else {
		b.WriteString("?")
	}
	if e.UserRole != "" {
		b.WriteString(" (" + e.UserRole + ")")
	}
	agent := e.AgentID
	if agent != "" && e.AgentVersion != "" {
		agent += "@" + e.AgentVersion
	}
	switch {
	case agent != "" && e.Model != "":
		b.WriteString(" → " + agent + "/" + e.Model)
	case agent != "":
		b.WriteString(" → " + agent)
	case e.Model != "":
		b.WriteString(" → " + e.Model)
	}
	if e.ToolName != "" {
		b.WriteString(" → " + e.ToolName)
	}
	if e.Trigger != "" {
		b.WriteString(" [" + string(e.Trigger) + "]")
	}
	return b.String()
}
