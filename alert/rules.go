package alert

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/redact"
)

// Severity ranks an alert.
type Severity int

// The severities, lowest first.
const (
	Info Severity = iota + 1
	Low
	Medium
	High
	Critical
)

var severityNames = []string{"", "info", "low", "medium", "high", "critical"}

func (s Severity) String() string {
	if s < Info || s > Critical {
		return "unknown"
	}
	return severityNames[s]
}

// ParseSeverity reads a severity's name.
func ParseSeverity(s string) (Severity, bool) {
	i := slices.Index(severityNames, s)
	return Severity(i), i > 0
}

// Aggregate is what a windowed rule computes over its window.
type Aggregate uint8

// The aggregates.
const (
	Count    Aggregate = iota + 1 // events in the window
	Distinct                      // distinct values of Field in the window
	Sum                           // sum of the numeric Field over the window
	Ratio                         // share of the window's events for which Of holds
)

// Rule is one alert rule. A rule fires on an event when When holds and, for a windowed rule, when
// the aggregate over the group's window passes the threshold with at least MinEvents events in
// it; for a first_seen rule, when the combination of FirstSeen's values is new. Time is the log's
// clock (recorded_at), which no client sets.
type Rule struct {
	Name     string
	Severity Severity
	When     string // CEL over `event`; "" is true

	Window    time.Duration // 0: no window, each matching event is a firing
	Aggregate Aggregate
	Field     string // distinct(field), sum(field)
	Of        string // ratio(condition), CEL
	GroupBy   []string
	Op        string  // >=, >, <=, <, ==
	Threshold float64 // compared with Op
	MinEvents int

	FirstSeen []string

	// Quiet re-arms a group that fired once this much time has passed, even if its condition has
	// not cleared; 0 re-arms only when it clears (a plain rule without a window fires on every
	// matching event unless grouped).
	Quiet time.Duration

	// After, for the built-in time rules (unreviewed break-glass, stale checkpoint).
	After time.Duration

	timed string // for the timed built-ins: what they watch (timedUnreviewed, timedCheckpoint)
	line  int
}

// Webhook is where alerts are delivered.
type Webhook struct {
	Name        string
	URL         string
	SecretFile  string
	Format      string // json (default) or slack
	MinSeverity Severity
	Timeout     time.Duration
	secret      []byte
}

// Config is the parsed alerts section: the rules in force (built-ins included, as tuned) and the
// webhooks.
type Config struct {
	Rules    []*Rule
	Webhooks []*Webhook
}

// Rule returns the rule named name, or nil.
func (c *Config) Rule(name string) *Rule {
	for _, r := range c.Rules {
		if r.Name == name {
			return r
		}
	}
	return nil
}

// Defaults.
const (
	DefaultWebhookTimeout = 10 * time.Second
	maxWindow             = 31 * 24 * time.Hour
)

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// Load reads the alerts section of a policy file (or of a file of its own: a top-level `alerts:`
// key, or the section's content at the top). A file without an alerts section gives the built-in
// rules. Errors are *redact.PolicyError, `file:line: reason`.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("alerts: %w", err)
	}
	return Parse(path, data)
}

// Parse parses the alerts section from data (see Load); name is the file name for errors. CEL
// expressions are compiled and checked against the event's fields, group and aggregate fields
// must exist, windows need thresholds, webhook URLs must be http(s) and their secret files must
// exist with mode 0600.
//
//	alerts:
//	  rules:
//	    - name: patient_burst
//	      severity: high
//	      when: event.kind == "access" && event.subject_type == "patient"
//	      window: 1h
//	      aggregate: count            # count | distinct(field) | sum(field) | ratio(condition)
//	      group_by: [user_id, subject_id]
//	      threshold: ">= 10"
//	    - name: same_subject_access   # a built-in: retune it, or turn it off
//	      off: true
//	  webhooks:
//	    - name: soc
//	      url: https://hooks.example.org/agentaudit
//	      secret_file: /etc/agentaudit/soc.secret
func Parse(name string, data []byte) (*Config, error) {
	perr := func(n *yaml.Node, format string, args ...any) error {
		return &redact.PolicyError{File: name, Line: n.Line, Msg: fmt.Sprintf(format, args...)}
	}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, &redact.PolicyError{File: name, Line: 1, Msg: err.Error()}
	}
	cfg := &Config{}
	var sec *yaml.Node
	if len(root.Content) > 0 {
		doc := root.Content[0]
		if doc.Kind != yaml.MappingNode {
			return nil, perr(doc, "want a mapping with an alerts section")
		}
		if v := mapGet(doc, "alerts"); v != nil {
			sec = v
		} else if mapGet(doc, "rules") != nil || mapGet(doc, "webhooks") != nil {
			sec = doc
		}
	}
	user := map[string]*yaml.Node{}
	if sec != nil {
		if sec.Kind != yaml.MappingNode {
			return nil, perr(sec, "alerts: want a mapping of rules and webhooks")
		}
		for i := 0; i+1 < len(sec.Content); i += 2 {
			k, v := sec.Content[i], sec.Content[i+1]
			switch k.Value {
			case "rules":
				if v.Kind != yaml.SequenceNode {
					return nil, perr(v, "rules: want a list of rules")
				}
				for _, rn := range v.Content {
					if rn.Kind != yaml.MappingNode {
						return nil, perr(rn, "a rule is a mapping (name, severity, when, ...)")
					}
					nn := mapGet(rn, "name")
					if nn == nil {
						return nil, perr(rn, "a rule needs a name")
					}
					if _, dup := user[nn.Value]; dup {
						return nil, perr(nn, "rule %q given twice", nn.Value)
					}
					user[nn.Value] = rn
				}
			case "webhooks":
				if v.Kind != yaml.SequenceNode {
					return nil, perr(v, "webhooks: want a list")
				}
				for _, wn := range v.Content {
					w, err := parseWebhook(wn, perr)
					if err != nil {
						return nil, err
					}
					for _, o := range cfg.Webhooks {
						if o.Name == w.Name {
							return nil, perr(wn, "webhook %q given twice", w.Name)
						}
					}
					cfg.Webhooks = append(cfg.Webhooks, w)
				}
			default:
				return nil, perr(k, "unknown key %q in alerts (want rules, webhooks)", k.Value)
			}
		}
	}
	// Built-ins first, each as tuned by a user rule of the same name; then the user's own.
	for _, b := range Builtins() {
		rn, ok := user[b.Name]
		if !ok {
			cfg.Rules = append(cfg.Rules, b)
			continue
		}
		delete(user, b.Name)
		r, off, err := parseRule(rn, b, perr)
		if err != nil {
			return nil, err
		}
		if !off {
			cfg.Rules = append(cfg.Rules, r)
		}
	}
	if sec != nil {
		if rs := mapGet(sec, "rules"); rs != nil {
			for _, rn := range rs.Content {
				nn := mapGet(rn, "name")
				if _, ok := user[nn.Value]; !ok {
					continue // a built-in, done above
				}
				r, off, err := parseRule(rn, nil, perr)
				if err != nil {
					return nil, err
				}
				if !off {
					cfg.Rules = append(cfg.Rules, r)
				}
			}
		}
	}
	return cfg, nil
}

func mapGet(n *yaml.Node, key string) *yaml.Node {
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

var aggRE = regexp.MustCompile(`^(count|distinct|sum|ratio)\s*(?:\((.*)\))?$`)

// parseRule reads a rule mapping; base, when set, is the built-in it tunes.
func parseRule(n *yaml.Node, base *Rule, perr func(*yaml.Node, string, ...any) error) (*Rule, bool, error) {
	r := &Rule{line: n.Line, Severity: Medium, MinEvents: 1, Op: ">="}
	if base != nil {
		c := *base
		c.GroupBy, c.FirstSeen = slices.Clone(base.GroupBy), slices.Clone(base.FirstSeen)
		r = &c
		r.line = n.Line
	}
	off := false
	var thresholdNode, windowNode, aggNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		scalar := func() error {
			if v.Kind != yaml.ScalarNode {
				return perr(v, "%s: want a single value", k.Value)
			}
			return nil
		}
		list := func() ([]string, error) {
			var out []string
			switch v.Kind {
			case yaml.ScalarNode:
				out = []string{v.Value}
			case yaml.SequenceNode:
				for _, x := range v.Content {
					out = append(out, x.Value)
				}
			default:
				return nil, perr(v, "%s: want a field name or a list of them", k.Value)
			}
			for _, f := range out {
				if !eventField(f) {
					return nil, perr(v, "%s: %q is not a field of the event", k.Value, f)
				}
			}
			return out, nil
		}
		var err error
		switch k.Value {
		case "name":
			if err = scalar(); err == nil && !nameRE.MatchString(v.Value) {
				err = perr(v, "rule name %q: want lowercase letters, digits and _ (at most 64)", v.Value)
			}
			r.Name = v.Value
		case "off":
			if err = scalar(); err == nil {
				off, err = strconv.ParseBool(v.Value)
				if err != nil {
					err = perr(v, "off: want true or false")
				}
			}
		case "severity":
			if err = scalar(); err == nil {
				var ok bool
				if r.Severity, ok = ParseSeverity(v.Value); !ok {
					err = perr(v, "unknown severity %q (want info, low, medium, high, critical)", v.Value)
				}
			}
		case "when":
			if err = scalar(); err == nil {
				if base != nil && base.timed != "" {
					err = perr(k, "rule %s is timed; it has no condition to change (tune after, severity, or off)", r.Name)
				}
				r.When = v.Value
				if _, cerr := compileBool(v.Value); cerr != nil {
					err = perr(v, "when: %v", cerr)
				}
			}
		case "window", "quiet", "after":
			if err = scalar(); err == nil {
				d, derr := time.ParseDuration(v.Value)
				switch {
				case derr != nil:
					err = perr(v, "%s: want a duration such as 5m or 1h (%v)", k.Value, derr)
				case d <= 0 || d > maxWindow:
					err = perr(v, "%s: want a duration above 0 and at most %s", k.Value, maxWindow)
				}
				switch k.Value {
				case "window":
					r.Window, windowNode = d, v
				case "quiet":
					r.Quiet = d
				case "after":
					if base == nil || base.timed == "" {
						err = perr(k, "after applies to the timed built-in rules only")
					}
					r.After = d
				}
			}
		case "aggregate":
			if err = scalar(); err == nil {
				aggNode = v
				err = parseAggregate(r, v, perr)
			}
		case "group_by":
			r.GroupBy, err = list()
		case "first_seen":
			r.FirstSeen, err = list()
		case "threshold":
			if err = scalar(); err == nil {
				thresholdNode = v
				if r.Op, r.Threshold, err = parseThreshold(v.Value); err != nil {
					err = perr(v, "threshold: %v", err)
				}
			}
		case "min_events":
			if err = scalar(); err == nil {
				r.MinEvents, err = strconv.Atoi(v.Value)
				if err != nil || r.MinEvents < 1 {
					err = perr(v, "min_events: want a whole number of at least 1")
				}
			}
		default:
			err = perr(k, "unknown key %q in rule (want name, severity, when, window, aggregate, group_by, threshold, min_events, first_seen, quiet, off)", k.Value)
		}
		if err != nil {
			return nil, false, err
		}
	}
	if off {
		return nil, true, nil
	}
	switch {
	case base == nil && r.When == "" && len(r.FirstSeen) == 0 && r.Window == 0:
		return nil, false, perr(n, "rule %s: needs when, a window or first_seen", r.Name)
	case r.Window > 0 && r.Aggregate == 0:
		return nil, false, perr(windowNode, "rule %s: a window needs an aggregate (count, distinct(field), sum(field), ratio(condition))", r.Name)
	case r.Window > 0 && thresholdNode == nil && (base == nil || base.Window == 0):
		return nil, false, perr(windowNode, "rule %s: a window needs a threshold", r.Name)
	case r.Window == 0 && aggNode != nil:
		return nil, false, perr(aggNode, "rule %s: an aggregate needs a window", r.Name)
	case r.Window == 0 && thresholdNode != nil:
		return nil, false, perr(thresholdNode, "rule %s: a threshold needs a window and an aggregate", r.Name)
	case len(r.FirstSeen) > 0 && r.Window > 0:
		return nil, false, perr(windowNode, "rule %s: first_seen and window do not go together", r.Name)
	}
	return r, false, nil
}

func parseAggregate(r *Rule, v *yaml.Node, perr func(*yaml.Node, string, ...any) error) error {
	m := aggRE.FindStringSubmatch(strings.TrimSpace(v.Value))
	if m == nil {
		return perr(v, "aggregate %q: want count, distinct(field), sum(field) or ratio(condition)", v.Value)
	}
	arg := strings.TrimSpace(m[2])
	r.Field, r.Of = "", ""
	switch m[1] {
	case "count":
		if arg != "" {
			return perr(v, "aggregate: count takes no argument")
		}
		r.Aggregate = Count
	case "distinct", "sum":
		r.Aggregate = Distinct
		if m[1] == "sum" {
			r.Aggregate = Sum
		}
		if !eventField(arg) {
			return perr(v, "aggregate %s: %q is not a field of the event", m[1], arg)
		}
		if f := event.FieldByName(arg); m[1] == "sum" && f.Type != event.TypeInt && f.Type != event.TypeFloat {
			return perr(v, "aggregate sum: %q is not a number field", arg)
		}
		r.Field = arg
	case "ratio":
		if arg == "" {
			return perr(v, "aggregate ratio needs a condition: ratio(event.outcome == \"error\")")
		}
		if _, err := compileBool(arg); err != nil {
			return perr(v, "aggregate ratio: %v", err)
		}
		r.Aggregate, r.Of = Ratio, arg
	}
	return nil
}

var thresholdRE = regexp.MustCompile(`^\s*(>=|<=|==|>|<)?\s*([0-9.eE+-]+)\s*(%)?\s*$`)

func parseThreshold(s string) (string, float64, error) {
	m := thresholdRE.FindStringSubmatch(s)
	if m == nil {
		return "", 0, fmt.Errorf("%q: want a number with an optional comparison, such as \">= 10\" or \"> 20%%\"", s)
	}
	v, err := strconv.ParseFloat(m[2], 64)
	if err != nil {
		return "", 0, fmt.Errorf("%q: %v", s, err)
	}
	if m[3] == "%" {
		v /= 100
	}
	op := m[1]
	if op == "" {
		op = ">="
	}
	return op, v, nil
}

func parseWebhook(n *yaml.Node, perr func(*yaml.Node, string, ...any) error) (*Webhook, error) {
	if n.Kind != yaml.MappingNode {
		return nil, perr(n, "a webhook is a mapping (name, url, secret_file)")
	}
	w := &Webhook{Format: "json", MinSeverity: Info, Timeout: DefaultWebhookTimeout}
	var urlNode, secretNode *yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if v.Kind != yaml.ScalarNode {
			return nil, perr(v, "%s: want a single value", k.Value)
		}
		switch k.Value {
		case "name":
			if !nameRE.MatchString(v.Value) {
				return nil, perr(v, "webhook name %q: want lowercase letters, digits and _", v.Value)
			}
			w.Name = v.Value
		case "url":
			u, err := url.Parse(v.Value)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return nil, perr(v, "url: want an http:// or https:// URL with a host")
			}
			if u.User != nil {
				return nil, perr(v, "url: no credentials in the URL; the signature authenticates the sender")
			}
			w.URL, urlNode = v.Value, v
		case "secret_file":
			w.SecretFile, secretNode = v.Value, v
		case "format":
			if v.Value != "json" && v.Value != "slack" {
				return nil, perr(v, "format %q: want json or slack", v.Value)
			}
			w.Format = v.Value
		case "min_severity":
			var ok bool
			if w.MinSeverity, ok = ParseSeverity(v.Value); !ok {
				return nil, perr(v, "unknown severity %q", v.Value)
			}
		case "timeout":
			d, err := time.ParseDuration(v.Value)
			if err != nil || d <= 0 || d > 5*time.Minute {
				return nil, perr(v, "timeout: want a duration above 0 and at most 5m")
			}
			w.Timeout = d
		default:
			return nil, perr(k, "unknown key %q in webhook (want name, url, secret_file, format, min_severity, timeout)", k.Value)
		}
	}
	switch {
	case w.Name == "":
		return nil, perr(n, "a webhook needs a name")
	case urlNode == nil:
		return nil, perr(n, "webhook %s needs a url", w.Name)
	case secretNode == nil:
		return nil, perr(n, "webhook %s needs a secret_file (mode 0600) to sign its deliveries", w.Name)
	}
	secret, err := readSecret(w.SecretFile)
	if err != nil {
		return nil, perr(secretNode, "webhook %s: %v", w.Name, err)
	}
	w.secret = secret
	return w, nil
}

// readSecret reads a webhook secret, refusing a file others may read. Its content never appears
// in an error.
func readSecret(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("secret_file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secret_file %s has mode %04o; want 0600 (chmod 600 %s)", path, fi.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secret_file: %w", err)
	}
	b = bytes.TrimSpace(b)
	if len(b) < 16 {
		return nil, fmt.Errorf("secret_file %s holds fewer than 16 bytes; use a long random secret", path)
	}
	return b, nil
}

// eventField reports whether name is a field of the event that can group or be counted: a
// string, a number or a flag (not a JSON payload, a time or the redaction list).
func eventField(name string) bool {
	f := event.FieldByName(name)
	if f == nil {
		return false
	}
	switch f.Type {
	case event.TypeString, event.TypeInt, event.TypeFloat, event.TypeBool, event.TypeOptBool:
		return true
	}
	return false
}
