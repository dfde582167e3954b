package retention_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/redact"
	"github.com/agentaudit/agentaudit/retention"
)

func TestParseKeep(t *testing.T) {
	for in, want := range map[string]string{"7y": "7y", "18m": "18m", "365d": "365d", "forever": "forever"} {
		k, err := retention.ParseKeep(in)
		if err != nil || k.String() != want {
			t.Errorf("ParseKeep(%q) = %v, %v", in, k, err)
		}
	}
	for _, in := range []string{"", "7", "y", "-1y", "0y", "+3y", "1.5y", "7w", "7 y", "1001y", "never"} {
		if _, err := retention.ParseKeep(in); err == nil {
			t.Errorf("ParseKeep(%q) accepted", in)
		}
	}
	// Calendar years: a 2024-02-29 event kept one year may go on 2025-03-01.
	k, _ := retention.ParseKeep("1y")
	if got := k.Until(time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)); !got.Equal(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)) {
		t.Errorf("1y after 2024-02-29 = %s", got)
	}
}

func TestParsePolicy(t *testing.T) {
	const good = `version: 1
retention:
  default: standard
  classes:
    - name: payments
      keep: 10y
      match:
        - tool: ["charge_*", refund]
    - name: clinical
      keep: 8y
      mandatory: true
      match:
        - subject_type: [patient, member]
          purpose: treatment
        - agent: triage-bot
    - name: standard
      keep: 90d
`
	p, err := retention.Parse("p.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	rec := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		ev    event.Event
		class string
	}{
		{event.Event{Kind: event.KindToolCall, ToolName: "charge_card"}, "payments"},
		{event.Event{Kind: event.KindToolCall, ToolName: "refund"}, "payments"},
		{event.Event{Kind: event.KindToolCall, ToolName: "refunds"}, "standard"},
		{event.Event{Kind: event.KindAccess, SubjectType: "member", Purpose: "treatment"}, "clinical"},
		{event.Event{Kind: event.KindAccess, SubjectType: "member", Purpose: "billing"}, "standard"},
		{event.Event{Kind: event.KindLLMCall, AgentName: "triage-bot"}, "clinical"},
		{event.Event{Kind: event.KindAlert, Record: []byte(`{}`)}, "system"},
	} {
		ev := c.ev
		ev.RecordedAt = rec
		if class, _, err := p.Classify(&ev); err != nil || class != c.class {
			t.Errorf("%+v: %s, %v; want %s", c.ev, class, err, c.class)
		}
	}
	// A file without a retention section has the built-in table.
	if p, err := retention.Parse("p.yaml", []byte("version: 1\n")); err != nil || p.Class("healthcare") == nil || !p.Class("healthcare").Mandatory {
		t.Errorf("no section: %+v, %v", p, err)
	}
}

// TestPolicyErrorsNameFileAndLine: a broken retention section is refused with file:line: reason.
func TestPolicyErrorsNameFileAndLine(t *testing.T) {
	head := "version: 1\nretention:\n"
	for _, c := range []struct {
		body string
		want string
	}{
		{"  default: general\n  classes:\n    - name: general\n      keep: -1y\n", "p.yaml:6: retention: keep: duration \"-1y\""},
		{"  default: general\n  classes:\n    - name: general\n      keep: seven years\n", "p.yaml:6: retention: keep: duration \"seven years\""},
		{"  default: general\n  classes:\n    - name: general\n", "p.yaml:5: retention: class \"general\" needs keep"},
		{"  default: gold\n  classes:\n    - name: general\n      keep: 1y\n", "p.yaml:3: retention: default class \"gold\" is not defined"},
		{"  classes:\n    - name: general\n      keep: 1y\n", "p.yaml:3: retention: default is required"},
		{"  default: general\n  classes:\n    - name: general\n      keep: 1y\n    - name: general\n      keep: 2y\n", "p.yaml:7: retention: class \"general\" defined twice"},
		{"  default: general\n  classes:\n    - name: system\n      keep: 1y\n", "p.yaml:5: retention: class \"system\" is built in"},
		{"  default: general\n  classes:\n    - name: general\n      keep: 1y\n      match:\n        - colour: red\n", "p.yaml:8: retention: unknown condition \"colour\""},
		{"  default: general\n  classes:\n    - name: general\n      keep: 1y\n      match:\n        - kind: purge\n", "p.yaml:8: retention: kind: unknown kind \"purge\""},
		{"  default: general\n  classes:\n    - name: general\n      keep: 1y\n      match:\n        - tool: \"[\"\n", "p.yaml:8: retention: tool: bad glob"},
		{"  default: general\n  classes:\n    - name: general\n      keep: 1y\n      mandatory: yes please\n", "p.yaml:7: retention: mandatory is true or false"},
		{"  default: general\n  clases: []\n", "p.yaml:4: retention: unknown key \"clases\""},
		{"  - general\n", "p.yaml:3: retention: want a mapping"},
	} {
		_, err := retention.Parse("p.yaml", []byte(head+c.body))
		var pe *redact.PolicyError
		if !errors.As(err, &pe) || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%q:\n got  %v\n want %s...", c.body, err, c.want)
		}
	}
}

func TestLoad(t *testing.T) {
	if p, err := retention.Load(""); err != nil || p.Default != "general" {
		t.Errorf("Load(\"\") = %+v, %v", p, err)
	}
	if _, err := retention.Load(filepath.Join(t.TempDir(), "missing.yaml")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
