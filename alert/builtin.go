package alert

import (
	"time"
)

// The timed built-ins watch time passing rather than one event.
const (
	timedUnreviewed = "unreviewed_break_glass"
	timedCheckpoint = "checkpoint_age"
)

// Builtins returns the built-in rules, which are on unless the rules file turns them off
// (`- {name: NAME, off: true}`) and which it can retune by naming them with other values.
func Builtins() []*Rule {
	return []*Rule{
		{Name: "same_subject_access", Severity: High, MinEvents: 1,
			When:   `event.kind == "access" && event.subject_type != "audit_log"`,
			Window: time.Hour, Aggregate: Count, GroupBy: []string{"user_id", "subject_type", "subject_id"}, Op: ">=", Threshold: 10},
		{Name: "many_subjects", Severity: High, MinEvents: 1,
			When:   `event.kind == "access" && event.subject_type != "audit_log"`,
			Window: time.Hour, Aggregate: Distinct, Field: "subject_id", GroupBy: []string{"user_id"}, Op: ">", Threshold: 50},
		{Name: "break_glass", Severity: Critical, MinEvents: 1,
			When: `event.kind == "access" && event.break_glass`},
		{Name: "tool_failure_ratio", Severity: Medium,
			When:   `event.kind == "tool_call"`,
			Window: 5 * time.Minute, Aggregate: Ratio, Of: `event.outcome == "error" || event.success == false`,
			GroupBy: []string{"tool_name"}, Op: ">", Threshold: 0.2, MinEvents: 20},
		{Name: "auth_failures", Severity: High, MinEvents: 1,
			When:   `event.kind == "access" && event.outcome == "denied" && event.purpose == "authentication"`,
			Window: 5 * time.Minute, Aggregate: Count, GroupBy: []string{"client_ip"}, Op: ">=", Threshold: 10},
		{Name: "approval_rejected", Severity: Medium, MinEvents: 1,
			When: `event.kind == "approval_decision" && event.approval_status == "rejected"`},
		{Name: "verification_failed", Severity: Critical, MinEvents: 1,
			When: `event.kind == "access" && event.subject_type == "audit_log" && event.subject_id == "verify" && event.outcome == "error"`},
		{Name: "checkpoint_stale", Severity: High, MinEvents: 1, timed: timedCheckpoint, After: 5 * time.Minute},
		{Name: "break_glass_unreviewed", Severity: High, MinEvents: 1, timed: timedUnreviewed, After: 24 * time.Hour},
	}
}
