package query

import (
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/agentaudit/agentaudit/event"
)

// MaxPayloadChars is how much of arguments and results a text timeline line shows.
const MaxPayloadChars = 240

// WriteTimeline writes a session's events as the human-readable timeline, one line per event and
// the attribution chain under each LLM and tool call, e.g.
//
//	[Turn 3] ❌ update_order_status({"order_id": "ORD-456", "status": "cancelled"}) → {"error": "Cannot cancel shipped order", "success": false} [38ms]
//	         usr_98765 (support_agent) → support-v1/claude-opus-4-6 → update_order_status [user_request]
func WriteTimeline(w io.Writer, recs []Record) error {
	for _, r := range recs {
		line, chain := timelineLine(r.Event)
		if _, err := fmt.Fprintf(w, "%s%s\n", turnLabel(r.Event), line); err != nil {
			return err
		}
		if chain {
			if _, err := fmt.Fprintf(w, "%s%s\n", strings.Repeat(" ", len(turnLabel(r.Event))), r.Event.Attribution()); err != nil {
				return err
			}
		}
	}
	return nil
}

func turnLabel(e *event.Event) string {
	if e.Turn > 0 {
		return fmt.Sprintf("[Turn %d] ", e.Turn)
	}
	return "[Session] "
}

func mark(e *event.Event) string {
	switch {
	case e.Outcome == event.OutcomeError || e.Outcome == event.OutcomeDenied || (e.Success != nil && !*e.Success):
		return "❌"
	case e.Outcome == "" && e.Success == nil:
		return "▶" // started, outcome recorded by a later event (a fail-closed call)
	}
	return "✅"
}

// timelineLine renders one event and says whether the attribution chain belongs under it.
func timelineLine(e *event.Event) (string, bool) {
	dur := ""
	if e.DurationMS > 0 {
		dur = " [" + ms(e.DurationMS) + "]"
	} else if e.LatencyMS > 0 {
		dur = " [" + ms(e.LatencyMS) + "]"
	}
	switch e.Kind {
	case event.KindSessionStart:
		return fmt.Sprintf("▶ session %s started: %s", e.SessionID, e.Attribution()), false
	case event.KindLLMCall:
		s := fmt.Sprintf("🧠 %s: %d in / %d out tokens", orDash(e.Model), e.InputTokens, e.OutputTokens)
		if e.StopReason != "" {
			s += ", stop " + e.StopReason
		}
		if names := requestedTools(e.ToolCallsRequested); names != "" {
			s += " → requests " + names
		} else if e.OutputText != "" {
			s += ": " + clip(strconv.Quote(e.OutputText))
		}
		return s + dur, true
	case event.KindToolCall, event.KindToolResult:
		s := fmt.Sprintf("%s %s(%s)", mark(e), e.ToolName, pyJSON(e.Arguments))
		if e.Kind == event.KindToolResult {
			s = fmt.Sprintf("%s ↳ %s", mark(e), e.ToolName)
		}
		switch {
		case len(e.Result) > 0:
			s += " → " + pyJSON(e.Result)
		case len(e.ResultSummary) > 0:
			s += " → " + pyJSON(e.ResultSummary)
		case e.Error != "":
			s += " → error: " + clip(e.Error)
		}
		if e.RequiresApproval {
			s += " (approval: " + orDash(string(e.ApprovalStatus)) + ")"
		}
		return s + dur, true
	case event.KindReasoning:
		return fmt.Sprintf("💭 %s: %s", orDash(e.Decision), clip(e.Rationale)), false
	case event.KindApprovalRequest:
		return fmt.Sprintf("✋ approval requested for %s(%s)", orDash(e.ToolName), pyJSON(e.Arguments)), false
	case event.KindApprovalDecision:
		icon := "👍"
		if e.ApprovalStatus == event.ApprovalRejected {
			icon = "👎"
		}
		s := fmt.Sprintf("%s %s %s by %s", icon, orDash(e.ToolName), e.ApprovalStatus, orDash(e.ApproverID))
		if e.Rationale != "" {
			s += ": " + clip(e.Rationale)
		}
		return s, false
	case event.KindHumanIntervention:
		return fmt.Sprintf("🙋 %s intervened: %s", orDash(e.ApproverID+e.UserID), clip(e.Decision+" "+e.Rationale)), false
	case event.KindError:
		return fmt.Sprintf("❌ error %s: %s", e.ErrorType, clip(e.Error)), false
	case event.KindFinalOutput:
		return "💬 " + clip(strconv.Quote(e.OutputText)), false
	case event.KindSessionEnd:
		return "■ session ended (" + orDash(string(e.Outcome)) + ")", false
	case event.KindSessionTimeout:
		return "⏱ session timed out", false
	case event.KindAccess:
		s := fmt.Sprintf("%s 🔍 %s accessed %s %s", mark(e), e.Attribution(), orDash(e.SubjectType), e.SubjectID)
		if e.Purpose != "" {
			s += " for " + e.Purpose
		}
		if e.BreakGlass {
			s += " [BREAK-GLASS: " + e.BreakGlassReason + "]"
		}
		return s + dur, false
	}
	return fmt.Sprintf("• %s %s", e.Kind, clip(pyJSON(e.Metadata))), false
}

// ms renders a duration as the seed does ([38ms]), with decimals only where they matter.
func ms(v float64) string {
	switch {
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 0, 64) + "ms"
	case v >= 0.01:
		return strconv.FormatFloat(v, 'f', 2, 64) + "ms"
	}
	return "<0.01ms"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clip(s string) string {
	if r := []rune(s); len(r) > MaxPayloadChars {
		return string(r[:MaxPayloadChars]) + "…"
	}
	return s
}

func requestedTools(raw json.RawMessage) string {
	var calls []struct {
		Name     string `json:"name"`
		Function struct {
			Name string `json:"name"`
		} `json:"function"`
	}
	if json.Unmarshal(raw, &calls) != nil {
		return ""
	}
	var names []string
	for _, c := range calls {
		if c.Name != "" {
			names = append(names, c.Name)
		} else if c.Function.Name != "" {
			names = append(names, c.Function.Name)
		}
	}
	return strings.Join(names, ", ")
}

// pyJSON renders JSON with a space after ':' and ',' as the seed's timeline does, clipped.
func pyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var b strings.Builder
	inStr, esc := false, false
	for _, c := range string(raw) {
		b.WriteRune(c)
		switch {
		case esc:
			esc = false
		case inStr && c == '\\':
			esc = true
		case c == '"':
			inStr = !inStr
		case !inStr && (c == ':' || c == ','):
			b.WriteByte(' ')
		}
	}
	return clip(b.String())
}

// Node is one event of a timeline tree with the events it caused (parent_id links): an LLM call
// with the tool calls it requested, a tool call with its result.
type Node struct {
	Record
	Children []*Node `json:"children,omitempty"`
}

// Tree arranges a session's events by parent_id. Events whose parent is not in the session are
// roots, in seq order.
func Tree(recs []Record) []*Node {
	byID := make(map[string]*Node, len(recs))
	nodes := make([]*Node, len(recs))
	for i, r := range recs {
		nodes[i] = &Node{Record: r}
		byID[r.Event.ID] = nodes[i]
	}
	var roots []*Node
	for _, n := range nodes {
		if p, ok := byID[n.Event.ParentID]; ok && p != n && p.Seq < n.Seq {
			p.Children = append(p.Children, n)
		} else {
			roots = append(roots, n)
		}
	}
	return roots
}
