package redact

import (
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Action is what a rule does to a value.
type Action struct {
	Kind string // "redact", "pseudonymize", "drop", "truncate", "keep"
	N    int    // for truncate: runes kept
}

func (a Action) String() string {
	if a.Kind == "truncate" {
		return "truncate:" + strconv.Itoa(a.N)
	}
	return a.Kind
}

// ParseAction parses redact, pseudonymize, drop, keep or truncate:N.
func ParseAction(s string) (Action, error) {
	switch s {
	case "redact", "pseudonymize", "drop", "keep":
		return Action{Kind: s}, nil
	}
	if n, ok := strings.CutPrefix(s, "truncate:"); ok {
		if v, err := strconv.Atoi(n); err == nil && v >= 0 {
			return Action{Kind: "truncate", N: v}, nil
		}
	}
	return Action{}, fmt.Errorf("unknown action %q (want redact, pseudonymize, drop, keep or truncate:N)", s)
}

// KeyRule applies an action to every value whose field name matches Name (see normalizeKey).
type KeyRule struct {
	Name   string
	Action Action
}

// ResultPolicy says how a tool's result is stored.
type ResultPolicy struct {
	Mode     string   // "full" or "summary"
	MaxBytes int      // summary mode: results up to this size are kept whole
	Keep     []string // summary mode: fields kept in the summary, besides the defaults
}

// Policy is a redaction policy. The zero value redacts nothing; start from Default.
type Policy struct {
	Keys      []KeyRule
	PIIFields []string          // pseudonymized wherever they appear
	Detectors map[string]Action // value detectors by kind; a kind absent here is off
	Secrets   bool              // gitleaks' default rules on every string
	Results   ResultPolicy
	Tools     map[string]ResultPolicy
}

// DefaultSummaryFields are kept in every result summary.
var DefaultSummaryFields = []string{"success", "error", "status", "id", "order_id", "customer_id", "patient_id", "count"}

// Default returns the built-in policy.
func Default() *Policy {
	p := &Policy{
		PIIFields: []string{"patient_name", "ssn", "date_of_birth", "address", "phone"},
		Detectors: map[string]Action{
			"credit_card": {Kind: "redact"}, "ssn": {Kind: "redact"}, "iban": {Kind: "redact"},
			"jwt": {Kind: "redact"}, "bearer_token": {Kind: "redact"}, "pem_private_key": {Kind: "redact"},
			// People link across events by their pseudonym, without the log holding the value.
			"email": {Kind: "pseudonymize"}, "phone": {Kind: "pseudonymize"},
		},
		Secrets: true,
		Results: ResultPolicy{Mode: "summary", MaxBytes: 1000},
		Tools:   map[string]ResultPolicy{},
	}
	for _, k := range []string{"password", "passwd", "token", "access_token", "refresh_token", "api_key", "secret",
		"client_secret", "authorization", "cookie", "set-cookie", "credit_card", "card_number", "cvv", "private_key"} {
		p.Keys = append(p.Keys, KeyRule{Name: k, Action: Action{Kind: "redact"}})
	}
	return p
}

// PolicyError is a mistake in a policy file, with its place.
type PolicyError struct {
	File string
	Line int
	Msg  string
}

func (e *PolicyError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Load reads a YAML policy file (see Parse).
func Load(path string) (*Policy, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	return Parse(path, data)
}

// Parse parses a YAML policy:
//
//	version: 1
//	extends: default          # or none: start from an empty policy
//	keys:                     # key rules, added to (or overriding) the defaults
//	  - {name: session_secret, action: redact}
//	pii_fields: [patient_name, ssn, date_of_birth, address, phone, mrn]
//	detectors: {email: redact, phone: "off"}
//	secrets: gitleaks         # or none
//	results:
//	  default: {mode: summary, max_bytes: 1000, keep: [ticket_id]}
//	  tools:
//	    get_patient_record: {mode: summary, keep: [patient_id]}
//
// Every error names the file and line; unknown keys, unknown actions, bad detector names and
// duplicate rules are errors, so a typo never silently weakens the policy.
func Parse(name string, data []byte) (*Policy, error) {
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return nil, &PolicyError{name, 0, strings.Join(te.Errors, "; ")}
		}
		line := 0
		fmt.Sscanf(strings.TrimPrefix(err.Error(), "yaml: "), "line %d", &line)
		return nil, &PolicyError{name, line, err.Error()}
	}
	if len(root.Content) == 0 {
		return nil, &PolicyError{name, 1, "empty policy"}
	}
	doc := root.Content[0]
	perr := func(n *yaml.Node, format string, args ...any) error {
		return &PolicyError{name, n.Line, fmt.Sprintf(format, args...)}
	}
	if doc.Kind != yaml.MappingNode {
		return nil, perr(doc, "a policy is a mapping")
	}
	fields := map[string]*yaml.Node{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		if _, dup := fields[k.Value]; dup {
			return nil, perr(k, "%q given twice", k.Value)
		}
		switch k.Value {
		case "version", "extends", "keys", "pii_fields", "detectors", "secrets", "results":
		default:
			return nil, perr(k, "unknown key %q", k.Value)
		}
		fields[k.Value] = v
	}
	if v, ok := fields["version"]; ok && v.Value != "1" {
		return nil, perr(v, "unsupported version %q (this program reads version 1)", v.Value)
	}
	p := Default()
	if v, ok := fields["extends"]; ok {
		switch v.Value {
		case "default":
		case "none":
			p = &Policy{Detectors: map[string]Action{}, Tools: map[string]ResultPolicy{}, Results: ResultPolicy{Mode: "full"}}
		default:
			return nil, perr(v, "extends must be default or none, not %q", v.Value)
		}
	}
	if v, ok := fields["keys"]; ok {
		if v.Kind != yaml.SequenceNode {
			return nil, perr(v, "keys is a list of {name, action}")
		}
		seen := map[string]bool{}
		for _, item := range v.Content {
			var r struct{ Name, Action string }
			if item.Kind != yaml.MappingNode || item.Decode(&r) != nil || r.Name == "" || r.Action == "" {
				return nil, perr(item, "a key rule needs name and action")
			}
			for i := 0; i < len(item.Content); i += 2 {
				if k := item.Content[i].Value; k != "name" && k != "action" {
					return nil, perr(item.Content[i], "unknown key %q in a key rule", k)
				}
			}
			norm := normalizeKey(r.Name)
			if seen[norm] {
				return nil, perr(item, "duplicate key rule %q", r.Name)
			}
			seen[norm] = true
			a, err := ParseAction(r.Action)
			if err != nil {
				return nil, perr(item, "key rule %q: %v", r.Name, err)
			}
			p.Keys = slices.DeleteFunc(p.Keys, func(k KeyRule) bool { return normalizeKey(k.Name) == norm })
			p.Keys = append(p.Keys, KeyRule{Name: r.Name, Action: a})
		}
	}
	if v, ok := fields["pii_fields"]; ok {
		var list []string
		if err := v.Decode(&list); err != nil {
			return nil, perr(v, "pii_fields is a list of field names")
		}
		p.PIIFields = list
	}
	if v, ok := fields["detectors"]; ok {
		if v.Kind != yaml.MappingNode {
			return nil, perr(v, "detectors maps a kind to an action")
		}
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, val := v.Content[i], v.Content[i+1]
			if !slices.ContainsFunc(piiDetectors, func(d detector) bool { return d.kind == k.Value }) {
				return nil, perr(k, "unknown detector %q", k.Value)
			}
			if val.Value == "off" {
				delete(p.Detectors, k.Value)
				continue
			}
			a, err := ParseAction(val.Value)
			if err != nil || a.Kind == "drop" {
				return nil, perr(val, "detector %q: want redact, pseudonymize, truncate:N or off, not %q", k.Value, val.Value)
			}
			p.Detectors[k.Value] = a
		}
	}
	if v, ok := fields["secrets"]; ok {
		switch v.Value {
		case "gitleaks":
			p.Secrets = true
		case "none":
			p.Secrets = false
		default:
			return nil, perr(v, "secrets must be gitleaks or none, not %q", v.Value)
		}
	}
	if v, ok := fields["results"]; ok {
		if err := parseResults(v, p, perr); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func parseResults(v *yaml.Node, p *Policy, perr func(*yaml.Node, string, ...any) error) error {
	if v.Kind != yaml.MappingNode {
		return perr(v, "results has default and tools")
	}
	one := func(n *yaml.Node, base ResultPolicy) (ResultPolicy, error) {
		rp := base
		if n.Kind != yaml.MappingNode {
			return rp, perr(n, "a result policy is {mode, max_bytes, keep}")
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			switch k.Value {
			case "mode":
				if val.Value != "full" && val.Value != "summary" {
					return rp, perr(val, "mode must be full or summary, not %q", val.Value)
				}
				rp.Mode = val.Value
			case "max_bytes":
				n, err := strconv.Atoi(val.Value)
				if err != nil || n < 0 {
					return rp, perr(val, "max_bytes must be a whole number of bytes")
				}
				rp.MaxBytes = n
			case "keep":
				if err := val.Decode(&rp.Keep); err != nil {
					return rp, perr(val, "keep is a list of field names")
				}
			default:
				return rp, perr(k, "unknown key %q in a result policy", k.Value)
			}
		}
		return rp, nil
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		switch k.Value {
		case "default":
			rp, err := one(val, p.Results)
			if err != nil {
				return err
			}
			p.Results = rp
		case "tools":
			if val.Kind != yaml.MappingNode {
				return perr(val, "tools maps a tool name to a result policy")
			}
			for j := 0; j+1 < len(val.Content); j += 2 {
				if _, dup := p.Tools[val.Content[j].Value]; dup {
					return perr(val.Content[j], "tool %q given twice", val.Content[j].Value)
				}
				rp, err := one(val.Content[j+1], p.Results)
				if err != nil {
					return err
				}
				p.Tools[val.Content[j].Value] = rp
			}
		default:
			return perr(k, "unknown key %q in results", k.Value)
		}
	}
	return nil
}
