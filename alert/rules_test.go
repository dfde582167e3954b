package alert

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/redact"
)

func writeSecret(t testing.TB, dir string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(dir, "hook.secret")
	if err := os.WriteFile(p, []byte("0123456789abcdef0123456789abcdef\n"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestParseRefuses: every bad rules file is refused with its file and line, and says why.
func TestParseRefuses(t *testing.T) {
	dir := t.TempDir()
	good := writeSecret(t, dir, 0o600)
	open := filepath.Join(dir, "open.secret")
	os.WriteFile(open, []byte("0123456789abcdef0123456789abcdef"), 0o644)
	os.Chmod(open, 0o644)
	for _, c := range []struct {
		name, yaml string
		line       int
		want       string
	}{
		{"cel does not compile", "alerts:\n  rules:\n    - name: a\n      when: event.kind == \n", 4, "when:"},
		{"unknown field in cel", "alerts:\n  rules:\n    - name: a\n      when: event.patient == \"x\"\n", 4, "undefined field 'patient'"},
		{"not a boolean", "alerts:\n  rules:\n    - name: a\n      when: event.subject_id\n", 4, "true or false"},
		{"unknown group field", "alerts:\n  rules:\n    - name: a\n      when: event.kind == \"access\"\n      window: 1h\n      aggregate: count\n      group_by: [user, subject_id]\n      threshold: 10\n", 7, `"user" is not a field`},
		{"window without threshold", "alerts:\n  rules:\n    - name: a\n      when: event.kind == \"access\"\n      window: 1h\n      aggregate: count\n", 5, "needs a threshold"},
		{"window without aggregate", "alerts:\n  rules:\n    - name: a\n      window: 1h\n      threshold: 3\n", 4, "needs an aggregate"},
		{"distinct of unknown field", "alerts:\n  rules:\n    - name: a\n      window: 1h\n      aggregate: distinct(patient)\n      threshold: 3\n", 5, `"patient" is not a field`},
		{"sum of a string", "alerts:\n  rules:\n    - name: a\n      window: 1h\n      aggregate: sum(user_id)\n      threshold: 3\n", 5, "not a number"},
		{"bad severity", "alerts:\n  rules:\n    - name: a\n      severity: urgent\n      when: \"true\"\n", 4, "unknown severity"},
		{"bad duration", "alerts:\n  rules:\n    - name: a\n      window: an hour\n", 4, "duration"},
		{"unknown key", "alerts:\n  rules:\n    - name: a\n      when: \"true\"\n      treshold: 3\n", 5, `unknown key "treshold"`},
		{"webhook not http", "alerts:\n  webhooks:\n    - name: soc\n      url: ftp://example.org/x\n      secret_file: " + good + "\n", 4, "http:// or https://"},
		{"webhook secret readable by others", "alerts:\n  webhooks:\n    - name: soc\n      url: https://example.org/x\n      secret_file: " + open + "\n", 5, "want 0600"},
		{"webhook without secret", "alerts:\n  webhooks:\n    - name: soc\n      url: https://example.org/x\n", 3, "needs a secret_file"},
		{"rule twice", "alerts:\n  rules:\n    - name: a\n      when: \"true\"\n    - name: a\n      when: \"true\"\n", 5, "given twice"},
		{"after on a user rule", "alerts:\n  rules:\n    - name: a\n      when: \"true\"\n      after: 1h\n", 5, "timed built-in"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse("rules.yaml", []byte(c.yaml))
			var pe *redact.PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("err = %v, want a *redact.PolicyError", err)
			}
			if pe.File != "rules.yaml" || pe.Line != c.line || !strings.Contains(pe.Msg, c.want) {
				t.Errorf("got %q, want rules.yaml:%d: ...%s...", err, c.line, c.want)
			}
			if strings.Contains(err.Error(), "0123456789abcdef") {
				t.Errorf("the error shows the secret: %v", err)
			}
		})
	}
}

func TestParseTunesBuiltins(t *testing.T) {
	cfg, err := Parse("p.yaml", []byte(`
version: 1
alerts:
  rules:
    - name: same_subject_access
      threshold: 5
    - name: many_subjects
      off: true
    - name: break_glass_unreviewed
      after: 12h
    - name: new_tool
      severity: low
      when: event.kind == "tool_call"
      first_seen: [agent_version, tool_name]
`))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Rule("same_subject_access"); r == nil || r.Threshold != 5 || r.Window.Hours() != 1 || len(r.GroupBy) != 3 {
		t.Errorf("same_subject_access = %+v", r)
	}
	if cfg.Rule("many_subjects") != nil {
		t.Error("many_subjects is still on")
	}
	if r := cfg.Rule("break_glass_unreviewed"); r == nil || r.After.Hours() != 12 {
		t.Errorf("break_glass_unreviewed = %+v", r)
	}
	if r := cfg.Rule("new_tool"); r == nil || r.Severity != Low {
		t.Errorf("new_tool = %+v", r)
	}
	if n := len(cfg.Rules); n != len(Builtins())-1+1 {
		t.Errorf("%d rules", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte("alerts:\n  rules:\n    - name: a\n      when: event.kind == \"access\"\n      window: 1h\n      aggregate: count\n      threshold: 10\n"))
	f.Add([]byte("alerts:\n  rules:\n    - name: b\n      aggregate: ratio(event.outcome == \"error\")\n      window: 5m\n      threshold: \"> 20%\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse("f.yaml", data)
		if err != nil {
			var pe *redact.PolicyError
			if !errors.As(err, &pe) || pe.Line < 1 {
				t.Fatalf("error without a line: %v", err)
			}
			return
		}
		if _, err := NewEvaluator(cfg); err != nil {
			t.Fatalf("parsed but does not compile: %v", err)
		}
	})
}

func TestSlackBody(t *testing.T) {
	d := &deliverer{w: &Webhook{Name: "chat", Format: "slack"}}
	a := Alert{Seq: 7, Event: &event.Event{ID: "al-1", Kind: event.KindAlert}, Record: Record{Severity: "critical", Message: "break_glass: access by dr_jones"}}
	b, err := d.body(a)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || len(m) != 1 || m["text"] != "[CRITICAL] break_glass: access by dr_jones (agentaudit alert al-1, seq 7)" {
		t.Fatalf("slack body %s", b)
	}
}
