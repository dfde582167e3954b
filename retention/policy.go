// Package retention owns how long each event is kept and how it is let go: retention classes
// decided at ingest (the ledger commits an event's class and retain_until with it), plans and
// purges that erase due bodies while every proof keeps verifying, legal holds that stop purges,
// and erasure on a data subject's request. Every purge, hold and release is itself an event in
// the log, recorded before it takes effect, so verification can account for every erased body.
package retention

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/redact"
)

// Keep is how long a class keeps an event after it is recorded, in calendar units (a law's
// "seven years" is seven calendar years, leap days included).
type Keep struct {
	Years, Months, Days int
	Forever             bool
}

// Forever is the retain_until of a class that is never purged: the latest time an event may
// carry, so such events still sit in the retention index and a plan counts them.
var Forever = time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC)

// Until returns when an event recorded at t may be purged.
func (k Keep) Until(t time.Time) time.Time {
	if k.Forever {
		return Forever
	}
	return t.AddDate(k.Years, k.Months, k.Days).UTC()
}

func (k Keep) String() string {
	switch {
	case k.Forever:
		return "forever"
	case k.Months == 0 && k.Days == 0:
		return strconv.Itoa(k.Years) + "y"
	case k.Years == 0 && k.Days == 0:
		return strconv.Itoa(k.Months) + "m"
	case k.Years == 0 && k.Months == 0:
		return strconv.Itoa(k.Days) + "d"
	}
	return fmt.Sprintf("%dy%dm%dd", k.Years, k.Months, k.Days)
}

// MarshalText writes the Keep as ParseKeep reads it.
func (k Keep) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// ParseKeep reads a duration: a positive whole number of years, months or days (7y, 18m,
// 365d), or forever.
func ParseKeep(s string) (Keep, error) {
	if s == "forever" {
		return Keep{Forever: true}, nil
	}
	if len(s) < 2 {
		return Keep{}, fmt.Errorf("duration %q: want a number of years, months or days (7y, 18m, 365d) or forever", s)
	}
	n, err := strconv.Atoi(s[:len(s)-1])
	if err != nil || n <= 0 || n > 1000 || strings.HasPrefix(s, "+") {
		return Keep{}, fmt.Errorf("duration %q: want a positive whole number before the unit (7y, 18m, 365d), or forever", s)
	}
	switch s[len(s)-1] {
	case 'y':
		return Keep{Years: n}, nil
	case 'm':
		return Keep{Months: n}, nil
	case 'd':
		return Keep{Days: n}, nil
	}
	return Keep{}, fmt.Errorf("duration %q: unknown unit %q (want y, m or d)", s, s[len(s)-1:])
}

// Match selects events for a class: every condition given must hold (a list holds when any of
// its values does). Tools are globs (path.Match: charge_*); agent compares with agent_id and
// agent_name.
type Match struct {
	Tools        []string `json:"tool,omitempty"`
	Kinds        []string `json:"kind,omitempty"`
	SubjectTypes []string `json:"subject_type,omitempty"`
	Purposes     []string `json:"purpose,omitempty"`
	Agents       []string `json:"agent,omitempty"`
}

func (m *Match) matches(ev *event.Event) bool {
	any := func(vs []string, got ...string) bool {
		if len(vs) == 0 {
			return true
		}
		for _, v := range vs {
			if slices.Contains(got, v) {
				return true
			}
		}
		return false
	}
	if len(m.Tools) > 0 && !slices.ContainsFunc(m.Tools, func(g string) bool { ok, _ := path.Match(g, ev.ToolName); return ok && ev.ToolName != "" }) {
		return false
	}
	return any(m.Kinds, string(ev.Kind)) && any(m.SubjectTypes, ev.SubjectType) && any(m.Purposes, ev.Purpose) &&
		any(m.Agents, ev.AgentID, ev.AgentName)
}

// Class is a named retention class.
type Class struct {
	Name string `json:"name"`
	Keep Keep   `json:"keep"`
	// Mandatory: the law requires keeping the events this long, so an erasure request does not
	// erase them early unless overridden with a reason.
	Mandatory bool    `json:"mandatory,omitempty"`
	Match     []Match `json:"match,omitempty"` // any of them; none: the class is only the default or asked for
}

// SystemClass keeps the log's own events (purges, holds, releases, alerts, reviews) forever: they
// are the evidence that the log was governed. Every policy has it; a policy may not redefine it.
const SystemClass = "system"

// Policy is the retention table: the first class whose match selects an event is its class,
// else Default.
type Policy struct {
	Classes []Class `json:"classes"`
	Default string  `json:"default"`
}

// Default is the built-in table: financial actions 7 years, healthcare 6 years (mandatory:
// HIPAA's documentation rule), everything else 1 year.
func Default() *Policy {
	return withSystem(&Policy{
		Classes: []Class{
			{Name: "financial", Keep: Keep{Years: 7}, Match: []Match{{Tools: []string{"charge_payment", "issue_refund", "apply_credit"}}}},
			{Name: "healthcare", Keep: Keep{Years: 6}, Mandatory: true, Match: []Match{
				{Tools: []string{"access_patient_record", "update_treatment"}}, {SubjectTypes: []string{"patient"}}}},
			{Name: "general", Keep: Keep{Years: 1}},
		},
		Default: "general",
	})
}

func withSystem(p *Policy) *Policy {
	p.Classes = append(p.Classes, Class{Name: SystemClass, Keep: Keep{Forever: true}, Mandatory: true})
	return p
}

// Class returns the class of that name, or nil.
func (p *Policy) Class(name string) *Class {
	for i := range p.Classes {
		if p.Classes[i].Name == name {
			return &p.Classes[i]
		}
	}
	return nil
}

// Digest is the SHA-256 of the policy's JSON, in hex: purge events name the policy they
// applied.
func (p *Policy) Digest() string {
	data, _ := json.Marshal(p)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// Classify implements ledger.Classifier: the class the table gives ev, or the one the client
// asked for in retention_class when that keeps the event longer (a client may lengthen a
// retention, never shorten one), and retain_until from recorded_at.
func (p *Policy) Classify(ev *event.Event) (string, time.Time, error) {
	c := p.match(ev)
	if ev.RetentionClass != "" && ev.RetentionClass != c.Name {
		asked := p.Class(ev.RetentionClass)
		if asked == nil {
			return "", time.Time{}, &event.FieldError{Field: "retention_class", Rule: fmt.Sprintf("unknown retention class %q; one of %s", ev.RetentionClass, strings.Join(p.names(), ", "))}
		}
		if asked.Keep.Until(ev.RecordedAt).After(c.Keep.Until(ev.RecordedAt)) {
			c = asked
		}
	}
	return c.Name, c.Keep.Until(ev.RecordedAt), nil
}

func (p *Policy) match(ev *event.Event) *Class {
	if ev.Kind.System() {
		return p.Class(SystemClass)
	}
	for i := range p.Classes {
		for j := range p.Classes[i].Match {
			if p.Classes[i].Match[j].matches(ev) {
				return &p.Classes[i]
			}
		}
	}
	return p.Class(p.Default)
}

func (p *Policy) names() []string {
	out := make([]string, len(p.Classes))
	for i, c := range p.Classes {
		out[i] = c.Name
	}
	return out
}

// Load reads the retention section of a policy file; a file without one, or no file (""),
// gives the built-in table.
func Load(file string) (*Policy, error) {
	if file == "" {
		return Default(), nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(file, data)
}

// Parse reads the retention section of a policy file (name is used in errors):
//
//	retention:
//	  default: general               # the class of events no class matches (required)
//	  classes:                       # tried in order; the first that matches wins
//	    - name: financial
//	      keep: 7y                   # Ny, Nm, Nd or forever
//	      match:                     # any of these; within one, every condition must hold
//	        - tool: [charge_payment, issue_refund, "refund_*"]
//	    - name: healthcare
//	      keep: 6y
//	      mandatory: true            # erasure requests do not erase it early
//	      match:
//	        - tool: [access_patient_record, update_treatment]
//	        - subject_type: patient
//	    - name: general
//	      keep: 1y
//
// Conditions: tool (globs), kind, subject_type, purpose, agent (id or name); each a value or a
// list. The section replaces the built-in table as a whole (it is short enough to restate).
// The system class (the log's own events, forever) is always there and cannot be redefined.
func Parse(name string, data []byte) (*Policy, error) {
	sec, err := redact.PolicySection(name, data, "retention")
	if err != nil {
		return nil, err
	}
	if sec == nil {
		return Default(), nil
	}
	perr := func(n *yaml.Node, format string, args ...any) error {
		return &redact.PolicyError{File: name, Line: n.Line, Msg: "retention: " + fmt.Sprintf(format, args...)}
	}
	if sec.Kind != yaml.MappingNode {
		return nil, perr(sec, "want a mapping of default and classes")
	}
	p := &Policy{}
	var defNode, classesNode *yaml.Node
	for i := 0; i+1 < len(sec.Content); i += 2 {
		k, v := sec.Content[i], sec.Content[i+1]
		switch k.Value {
		case "default":
			if v.Kind != yaml.ScalarNode || v.Value == "" {
				return nil, perr(v, "default names a class")
			}
			p.Default, defNode = v.Value, v
		case "classes":
			classesNode = v
		default:
			return nil, perr(k, "unknown key %q (want default, classes)", k.Value)
		}
	}
	if classesNode == nil {
		return nil, perr(sec, "classes is required: the list of retention classes")
	}
	if classesNode.Kind != yaml.SequenceNode || len(classesNode.Content) == 0 {
		return nil, perr(classesNode, "classes is a list of {name, keep, mandatory, match}")
	}
	for _, cn := range classesNode.Content {
		c, err := parseClass(cn, perr)
		if err != nil {
			return nil, err
		}
		if c.Name == SystemClass {
			return nil, perr(cn, "class %q is built in (the log's own events, kept forever)", SystemClass)
		}
		if p.Class(c.Name) != nil {
			return nil, perr(cn, "class %q defined twice", c.Name)
		}
		p.Classes = append(p.Classes, c)
	}
	if defNode == nil {
		return nil, perr(sec, "default is required: the class of events no class matches")
	}
	if p.Class(p.Default) == nil {
		return nil, perr(defNode, "default class %q is not defined; one of %s", p.Default, strings.Join(p.names(), ", "))
	}
	return withSystem(p), nil
}

func parseClass(n *yaml.Node, perr func(*yaml.Node, string, ...any) error) (Class, error) {
	var c Class
	if n.Kind != yaml.MappingNode {
		return c, perr(n, "a class is a mapping {name, keep, mandatory, match}")
	}
	var keepSet bool
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		switch k.Value {
		case "name":
			if v.Kind != yaml.ScalarNode || !validName(v.Value) {
				return c, perr(v, "a class name is letters, digits, _ and -, not %q", v.Value)
			}
			c.Name = v.Value
		case "keep":
			if v.Kind != yaml.ScalarNode {
				return c, perr(v, "keep is a duration such as 7y, 18m, 365d or forever")
			}
			keep, err := ParseKeep(v.Value)
			if err != nil {
				return c, perr(v, "keep: %v", err)
			}
			c.Keep, keepSet = keep, true
		case "mandatory":
			if v.Kind != yaml.ScalarNode || v.Tag != "!!bool" {
				return c, perr(v, "mandatory is true or false")
			}
			c.Mandatory = v.Value == "true"
		case "match":
			if v.Kind != yaml.SequenceNode {
				return c, perr(v, "match is a list of conditions, e.g. - tool: [charge_payment]")
			}
			for _, mn := range v.Content {
				m, err := parseMatch(mn, perr)
				if err != nil {
					return c, err
				}
				c.Match = append(c.Match, m)
			}
		default:
			return c, perr(k, "unknown key %q in a class (want name, keep, mandatory, match)", k.Value)
		}
	}
	if c.Name == "" {
		return c, perr(n, "a class needs a name")
	}
	if !keepSet {
		return c, perr(n, "class %q needs keep (7y, 18m, 365d or forever)", c.Name)
	}
	return c, nil
}

func parseMatch(n *yaml.Node, perr func(*yaml.Node, string, ...any) error) (Match, error) {
	var m Match
	if n.Kind != yaml.MappingNode || len(n.Content) == 0 {
		return m, perr(n, "a condition is a mapping of tool, kind, subject_type, purpose or agent")
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		var vals []string
		switch v.Kind {
		case yaml.ScalarNode:
			vals = []string{v.Value}
		case yaml.SequenceNode:
			for _, x := range v.Content {
				if x.Kind != yaml.ScalarNode {
					return m, perr(x, "%s: want a value or a list of values", k.Value)
				}
				vals = append(vals, x.Value)
			}
		default:
			return m, perr(v, "%s: want a value or a list of values", k.Value)
		}
		if len(vals) == 0 || slices.Contains(vals, "") {
			return m, perr(v, "%s: empty value", k.Value)
		}
		switch k.Value {
		case "tool":
			for _, g := range vals {
				if _, err := path.Match(g, ""); err != nil {
					return m, perr(v, "tool: bad glob %q", g)
				}
			}
			m.Tools = vals
		case "kind":
			for _, kv := range vals {
				if !slices.Contains(event.Kinds, event.Kind(kv)) || event.Kind(kv).System() {
					return m, perr(v, "kind: unknown kind %q", kv)
				}
			}
			m.Kinds = vals
		case "subject_type":
			m.SubjectTypes = vals
		case "purpose":
			m.Purposes = vals
		case "agent":
			m.Agents = vals
		default:
			return m, perr(k, "unknown condition %q (want tool, kind, subject_type, purpose, agent)", k.Value)
		}
	}
	return m, nil
}

func validName(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}
