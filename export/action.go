package export

import (
	"strings"
	"unicode"

	"github.com/agentaudit/agentaudit/event"
)

// crud is what an event did to data: FHIR AuditEvent.action and OCSF activity_id.
type crud byte

const (
	crudExecute crud = iota // FHIR E, OCSF 99 Other
	crudCreate              // C, 1
	crudRead                // R, 2
	crudUpdate              // U, 3
	crudDelete              // D, 4
)

// toolVerbs are the leading words that make a tool's effect clear from its name. Anything else
// (send_email, run_query, transfer_funds) is an execution: E in FHIR, Other in OCSF.
var toolVerbs = map[string]crud{
	"get": crudRead, "read": crudRead, "list": crudRead, "search": crudRead, "find": crudRead,
	"fetch": crudRead, "query": crudRead, "lookup": crudRead, "view": crudRead, "show": crudRead,
	"describe": crudRead, "retrieve": crudRead, "count": crudRead,
	"create": crudCreate, "add": crudCreate, "insert": crudCreate, "new": crudCreate,
	"register": crudCreate, "upload": crudCreate,
	"update": crudUpdate, "set": crudUpdate, "edit": crudUpdate, "modify": crudUpdate,
	"patch": crudUpdate, "change": crudUpdate, "rename": crudUpdate, "replace": crudUpdate,
	"cancel": crudUpdate, "assign": crudUpdate,
	"delete": crudDelete, "remove": crudDelete, "drop": crudDelete, "purge": crudDelete,
	"destroy": crudDelete, "erase": crudDelete,
}

// classify says what e did: an access is a read; a tool call is what its name's first word says
// (get_order reads, update_order_status updates, mcp__github__create_issue creates); everything
// else an agent does is an execution.
func classify(e *event.Event) crud {
	switch e.Kind {
	case event.KindAccess:
		return crudRead
	case event.KindToolCall, event.KindToolResult:
		return toolVerbs[toolVerb(e.ToolName)]
	}
	return crudExecute
}

// toolVerb is the first word of the last segment of a tool name, lower case: namespaces such as
// "mcp__server__" or "github." are dropped, words end at _ - space or a lower-to-upper change
// (getOrder → get).
func toolVerb(name string) string {
	for _, sep := range []string{"__", ".", "/", ":"} {
		if i := strings.LastIndex(name, sep); i >= 0 {
			name = name[i+len(sep):]
		}
	}
	end := len(name)
	for i, r := range name {
		if r == '_' || r == '-' || r == ' ' || (i > 0 && unicode.IsUpper(r) && !unicode.IsUpper(rune(name[i-1]))) {
			end = i
			break
		}
	}
	return strings.ToLower(name[:end])
}
