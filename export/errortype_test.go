package export_test

import (
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/export"
)

// TestExportsKeepGoInternalsOut: an error_type that is a Go pointer type name, as SDKs before the
// fix recorded for plain errors, does not reach FHIR's outcomeDesc or OCSF; a meaningful one does.
func TestExportsKeepGoInternalsOut(t *testing.T) {
	for errType, want := range map[string]string{
		"*errors.errorString":   "Cannot cancel shipped order",
		"order_not_cancellable": "order_not_cancellable: Cannot cancel shipped order",
	} {
		ev := &event.Event{ID: "0192f5a0-0000-7000-8000-000000000009", Kind: event.KindToolCall, ToolName: "update_order_status",
			Time: time.Now(), UserID: "u", Error: "Cannot cancel shipped order", ErrorType: errType, Outcome: event.OutcomeError}
		ae := export.FHIRAuditEvent(export.Record{Seq: 1, Event: ev}, export.Options{})
		if ae.OutcomeDesc != want {
			t.Errorf("%s: outcomeDesc %q, want %q", errType, ae.OutcomeDesc, want)
		}
		var b strings.Builder
		w, _ := export.NewWriter(&b, export.OCSF, export.Options{})
		w.Write(export.Record{Seq: 1, Event: ev})
		w.Close()
		if strings.Contains(b.String(), "errorString") {
			t.Errorf("OCSF carries the Go type: %s", b.String())
		}
	}
}
