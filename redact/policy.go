package redact

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

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

// Pattern is a value detector the policy defines: a regular expression (Go RE2 syntax) whose
// match, or first capture group when it has one, gets the action. Keywords, when given, are a
// prefilter: the regex runs only on strings holding one of them (case-insensitive, at least
// two bytes), which keeps a pattern cheap.
type Pattern struct {
	Name     string
	Regex    *regexp.Regexp
	Action   Action
	Keywords []string
}

// maxPatterns is how many patterns a policy may define.
const maxPatterns = 64

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
	// SecretAction applies to gitleaks findings (redact unless set); SecretsExclude lists
	// gitleaks rule ids turned off.
	SecretAction   Action
	SecretsExclude []string
	// Patterns are the policy's own value detectors.
	Patterns []Pattern
	Results  ResultPolicy
	Tools    map[string]ResultPolicy
}

// DefaultKeyRules are the field names the default policy redacts.
var DefaultKeyRules = []string{"password", "passwd", "token", "access_token", "refresh_token", "api_key", "secret",
	"client_secret", "authorization", "cookie", "set-cookie", "credit_card", "card_number", "cvv", "private_key"}

// DefaultPIIFields are the field names the default policy pseudonymizes. ssn is here rather than
// among the key rules: an auditor can still find every event about one SSN by its pseudonym.
var DefaultPIIFields = []string{"patient_name", "ssn", "date_of_birth", "dob", "address", "phone", "phone_number"}

// Default returns the built-in policy: DefaultKeyRules redacted, DefaultPIIFields pseudonymized,
// every detector on (secrets, cards, SSNs, IBANs redacted; e-mail addresses and phone numbers
// pseudonymized, so one person links across events without the log holding the value),
// gitleaks' rules on, results summarized above 1000 bytes.
func Default() *Policy {
	p := &Policy{
		PIIFields: slices.Clone(DefaultPIIFields),
		Detectors: map[string]Action{
			"credit_card": {Kind: "redact"}, "ssn": {Kind: "redact"}, "iban": {Kind: "redact"},
			"jwt": {Kind: "redact"}, "bearer_token": {Kind: "redact"}, "pem_private_key": {Kind: "redact"},
			"url_credentials": {Kind: "redact"}, "key_value": {Kind: "redact"},
			"email": {Kind: "pseudonymize"}, "phone": {Kind: "pseudonymize"},
			secretPrefixKind: {Kind: "redact"}, personNameKind: {Kind: "pseudonymize"},
		},
		Secrets:      true,
		SecretAction: Action{Kind: "redact"},
		Results:      ResultPolicy{Mode: "summary", MaxBytes: 1000},
		Tools:        map[string]ResultPolicy{},
	}
	for _, k := range DefaultKeyRules {
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

// Parse parses a YAML policy (name is the file name used in errors):
//
//	version: 1                # required
//	extends: default          # default (the default) or none: start from an empty policy
//	keys:                     # key rules, added to the defaults; a rule of the same name replaces one
//	  - {name: session_secret, action: redact}
//	  - {name: notes, action: "truncate:200"}
//	  - {name: internal_trace, action: drop}
//	  - {name: ssn, action: redact}   # a key rule beats a PII field of the same name; keep exempts one
//	pii_fields: [mrn, insurance_id]   # pseudonymized; added to the defaults
//	detectors: {email: redact, phone: "off"}
//	secrets: gitleaks         # or none, or {rules: gitleaks, exclude: [twilio-api-key], action: redact}
//	results:
//	  default: {mode: summary, max_bytes: 1000, keep: [ticket_id]}
//	  tools:
//	    get_patient_record: {mode: summary, keep: [patient_id]}
//	    search_kb: {mode: full}
//
// With extends: default, a user policy can only add to the defaults or change an action, never
// silently lose a rule; turning something off is explicit (action keep, a detector "off",
// secrets none). Every error names the file and line: unknown keys, wrong types, unknown
// actions, detectors or gitleaks rules, bad numbers and duplicate rules are all refused.
func Parse(name string, data []byte) (*Policy, error) {
	doc, err := parseDoc(name, data)
	if err != nil {
		return nil, err
	}
	perr := func(n *yaml.Node, format string, args ...any) error {
		return &PolicyError{name, n.Line, fmt.Sprintf(format, args...)}
	}
	fields := map[string]*yaml.Node{}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		k, v := doc.Content[i], doc.Content[i+1]
		switch k.Value {
		case "version", "extends", "keys", "pii_fields", "detectors", "patterns", "secrets", "results":
		case "retention", "alerts", "require_approval":
			continue // sections of the same file that the retention, alert and mcpproxy packages parse
		default:
			return nil, perr(k, "unknown key %q (want version, extends, keys, pii_fields, detectors, patterns, secrets, results, retention, alerts, require_approval)", k.Value)
		}
		fields[k.Value] = v
	}
	v, ok := fields["version"]
	if !ok {
		return nil, perr(doc, "version: 1 is required")
	}
	if v.Kind != yaml.ScalarNode || v.Value != "1" {
		return nil, perr(v, "unsupported version %q (this program reads version 1)", v.Value)
	}
	p := Default()
	if v, ok := fields["extends"]; ok {
		switch {
		case v.Kind == yaml.ScalarNode && v.Value == "default":
		case v.Kind == yaml.ScalarNode && v.Value == "none":
			p = &Policy{Detectors: map[string]Action{}, Tools: map[string]ResultPolicy{}, Results: ResultPolicy{Mode: "full"},
				SecretAction: Action{Kind: "redact"}}
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
			if item.Kind != yaml.MappingNode {
				return nil, perr(item, "a key rule is a mapping {name, action}")
			}
			var rname, raction *yaml.Node
			for i := 0; i+1 < len(item.Content); i += 2 {
				k, val := item.Content[i], item.Content[i+1]
				if val.Kind != yaml.ScalarNode {
					return nil, perr(val, "%s of a key rule must be a string", k.Value)
				}
				switch k.Value {
				case "name":
					rname = val
				case "action":
					raction = val
				default:
					return nil, perr(k, "unknown key %q in a key rule (want name, action)", k.Value)
				}
			}
			if rname == nil || raction == nil || rname.Value == "" {
				return nil, perr(item, "a key rule needs a name and an action")
			}
			norm := normalizeKey(rname.Value)
			if seen[norm] {
				return nil, perr(rname, "duplicate key rule %q (names match without case and separators)", rname.Value)
			}
			seen[norm] = true
			a, err := ParseAction(raction.Value)
			if err != nil {
				return nil, perr(item, "key rule %q: %v", rname.Value, err)
			}
			if utf8.RuneCountInString(norm) < 2 {
				return nil, perr(rname, "key rule name %q is too short to match safely", rname.Value)
			}
			p.Keys = slices.DeleteFunc(p.Keys, func(k KeyRule) bool { return normalizeKey(k.Name) == norm })
			p.Keys = append(p.Keys, KeyRule{Name: rname.Value, Action: a})
		}
	}
	if v, ok := fields["pii_fields"]; ok {
		list, err := stringList(v)
		if err != nil {
			return nil, perr(v, "pii_fields is a list of field names")
		}
		seen := map[string]bool{}
		for i, f := range list {
			norm := normalizeKey(f)
			if utf8.RuneCountInString(norm) < 2 {
				return nil, perr(v.Content[i], "PII field name %q is too short to match safely", f)
			}
			if seen[norm] {
				return nil, perr(v.Content[i], "duplicate PII field %q", f)
			}
			seen[norm] = true
			if !slices.ContainsFunc(p.PIIFields, func(x string) bool { return normalizeKey(x) == norm }) {
				p.PIIFields = append(p.PIIFields, f)
			}
		}
	}
	if v, ok := fields["detectors"]; ok {
		if v.Kind != yaml.MappingNode {
			return nil, perr(v, "detectors maps a detector kind to an action or off")
		}
		for i := 0; i+1 < len(v.Content); i += 2 {
			k, val := v.Content[i], v.Content[i+1]
			if _, known := detectorKinds[k.Value]; !known {
				return nil, perr(k, "unknown detector %q (want one of %s)", k.Value, strings.Join(slices.Sorted(maps.Keys(detectorKinds)), ", "))
			}
			if val.Kind == yaml.ScalarNode && (val.Value == "off" || val.Tag == "!!bool" && val.Value == "false") {
				delete(p.Detectors, k.Value)
				continue
			}
			a, err := ParseAction(val.Value)
			if err != nil || a.Kind == "drop" || val.Kind != yaml.ScalarNode {
				return nil, perr(val, "detector %q: want redact, pseudonymize, truncate:N, keep or off, not %q", k.Value, val.Value)
			}
			p.Detectors[k.Value] = a
		}
	}
	if v, ok := fields["patterns"]; ok {
		if err := parsePatterns(v, p, perr); err != nil {
			return nil, err
		}
	}
	if v, ok := fields["secrets"]; ok {
		if err := parseSecrets(v, p, perr); err != nil {
			return nil, err
		}
	}
	if v, ok := fields["results"]; ok {
		if err := parseResults(v, p, perr); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// parseDoc reads the policy file's one YAML document, a mapping with no name given twice.
func parseDoc(name string, data []byte) (*yaml.Node, error) {
	var root, next yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	err := dec.Decode(&root)
	if err == nil {
		// One document: the rules of a second one would be silently ignored.
		if err = dec.Decode(&next); err == io.EOF {
			err = nil
		} else if err == nil && len(next.Content) > 0 && next.Content[0].Tag != "!!null" {
			return nil, &PolicyError{name, next.Content[0].Line, "a policy is one YAML document; a second one starts here"}
		}
	}
	if err != nil && err != io.EOF {
		return nil, &PolicyError{name, yamlErrorLine(err.Error(), data), err.Error()}
	}
	if len(root.Content) == 0 {
		return nil, &PolicyError{name, 1, "empty policy (want at least version: 1)"}
	}
	doc := root.Content[0]
	// A name given twice in any mapping: YAML leaves it to the reader, which would keep one
	// silently ({name: a, name: b} would be a rule for b).
	if k := duplicateKey(doc); k != nil {
		return nil, &PolicyError{name, k.Line, fmt.Sprintf("%q given twice", k.Value)}
	}
	if doc.Kind != yaml.MappingNode {
		return nil, &PolicyError{name, doc.Line, "a policy is a mapping of version, extends, keys, pii_fields, detectors, secrets, results, retention, alerts"}
	}
	return doc, nil
}

// PolicySection returns the node of one top-level section of a policy file (nil when the file
// has none), for the packages that own the other sections (retention, alerts): they parse it
// with the same file:line errors (*PolicyError). The file must be a valid policy as a whole.
func PolicySection(name string, data []byte, section string) (*yaml.Node, error) {
	if _, err := Parse(name, data); err != nil {
		return nil, err
	}
	doc, err := parseDoc(name, data)
	if err != nil {
		return nil, err
	}
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == section {
			return doc.Content[i+1], nil
		}
	}
	return nil, nil
}

// duplicateKey returns the first key given twice in a mapping anywhere under n, or nil.
func duplicateKey(n *yaml.Node) *yaml.Node {
	if n.Kind == yaml.MappingNode {
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if seen[k.Value] {
				return k
			}
			seen[k.Value] = true
		}
	}
	if n.Kind == yaml.MappingNode || n.Kind == yaml.SequenceNode || n.Kind == yaml.DocumentNode {
		for _, c := range n.Content {
			if k := duplicateKey(c); k != nil {
				return k
			}
		}
	}
	return nil
}

// yamlErrorLine returns the line a YAML error is on: the one it names, or for the errors that
// name none, the line of the first byte at fault (invalid UTF-8, a control character, an
// undefined alias), or 1.
func yamlErrorLine(msg string, data []byte) int {
	lineOf := func(off int) int { return 1 + bytes.Count(data[:off], []byte{'\n'}) }
	var line int
	if _, err := fmt.Sscanf(strings.TrimPrefix(msg, "yaml: "), "line %d", &line); err == nil && line > 0 {
		return line
	}
	switch {
	case strings.Contains(msg, "UTF-8"):
		for off := 0; off < len(data); {
			r, size := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && size == 1 {
				return lineOf(off)
			}
			off += size
		}
	case strings.Contains(msg, "control characters"):
		for off, c := range data {
			if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
				return lineOf(off)
			}
		}
	case strings.Contains(msg, "unknown anchor"):
		if _, a, ok := strings.Cut(msg, "unknown anchor '"); ok {
			a, _, _ = strings.Cut(a, "'")
			if off := bytes.Index(data, []byte("*"+a)); off >= 0 {
				return lineOf(off)
			}
		}
	}
	return 1
}

func stringList(v *yaml.Node) ([]string, error) {
	if v.Kind != yaml.SequenceNode {
		return nil, errors.New("not a list")
	}
	out := make([]string, 0, len(v.Content))
	for _, n := range v.Content {
		if n.Kind != yaml.ScalarNode || n.Value == "" {
			return nil, errors.New("not a string")
		}
		out = append(out, n.Value)
	}
	return out, nil
}

func parsePatterns(v *yaml.Node, p *Policy, perr func(*yaml.Node, string, ...any) error) error {
	if v.Kind != yaml.SequenceNode {
		return perr(v, "patterns is a list of {name, regex, action, keywords}")
	}
	seen := map[string]bool{}
	for _, d := range p.Patterns {
		seen[d.Name] = true
	}
	for _, item := range v.Content {
		if item.Kind != yaml.MappingNode {
			return perr(item, "a pattern is a mapping {name, regex, action, keywords}")
		}
		var pat Pattern
		var rx *yaml.Node
		for i := 0; i+1 < len(item.Content); i += 2 {
			k, val := item.Content[i], item.Content[i+1]
			if k.Value != "keywords" && val.Kind != yaml.ScalarNode {
				return perr(val, "%s of a pattern must be a string", k.Value)
			}
			switch k.Value {
			case "name":
				pat.Name = val.Value
			case "regex":
				rx = val
			case "action":
				a, err := ParseAction(val.Value)
				if err != nil || a.Kind == "drop" || a.Kind == "keep" {
					return perr(val, "pattern action: want redact, pseudonymize or truncate:N, not %q", val.Value)
				}
				pat.Action = a
			case "keywords":
				kws, err := stringList(val)
				if err != nil {
					return perr(val, "keywords is a list of strings")
				}
				for j, kw := range kws {
					if len(kw) < 2 {
						return perr(val.Content[j], "keyword %q is shorter than two bytes", kw)
					}
					pat.Keywords = append(pat.Keywords, strings.ToLower(kw))
				}
			default:
				return perr(k, "unknown key %q in a pattern (want name, regex, action, keywords)", k.Value)
			}
		}
		if pat.Name == "" || rx == nil {
			return perr(item, "a pattern needs a name and a regex")
		}
		if _, clash := detectorKinds[pat.Name]; clash || seen[pat.Name] {
			return perr(item, "duplicate pattern %q", pat.Name)
		}
		seen[pat.Name] = true
		re, err := regexp.Compile(rx.Value)
		if err != nil {
			return perr(rx, "pattern %q: bad regex: %v", pat.Name, err)
		}
		if re.MatchString("") {
			return perr(rx, "pattern %q: regex matches the empty string", pat.Name)
		}
		pat.Regex = re
		if pat.Action.Kind == "" {
			pat.Action = Action{Kind: "redact"}
		}
		if len(p.Patterns) == maxPatterns {
			return perr(item, "more than %d patterns", maxPatterns)
		}
		p.Patterns = append(p.Patterns, pat)
	}
	return nil
}

func parseSecrets(v *yaml.Node, p *Policy, perr func(*yaml.Node, string, ...any) error) error {
	set := func(n *yaml.Node) error {
		switch n.Value {
		case "gitleaks":
			p.Secrets = true
		case "none":
			p.Secrets = false
		default:
			return perr(n, "secrets must be gitleaks or none, not %q", n.Value)
		}
		return nil
	}
	if v.Kind == yaml.ScalarNode {
		return set(v)
	}
	if v.Kind != yaml.MappingNode {
		return perr(v, "secrets is gitleaks, none, or {rules, exclude, action}")
	}
	for i := 0; i+1 < len(v.Content); i += 2 {
		k, val := v.Content[i], v.Content[i+1]
		switch k.Value {
		case "rules":
			if err := set(val); err != nil {
				return err
			}
		case "exclude":
			ids, err := stringList(val)
			if err != nil {
				return perr(val, "exclude is a list of gitleaks rule ids")
			}
			sr, err := loadSecrets()
			if err != nil {
				return perr(val, "%v", err)
			}
			for j, id := range ids {
				if !slices.ContainsFunc(sr.rules, func(r secretRule) bool { return r.id == id }) {
					return perr(val.Content[j], "unknown gitleaks rule %q", id)
				}
				if slices.Contains(ids[:j], id) {
					return perr(val.Content[j], "gitleaks rule %q excluded twice", id)
				}
			}
			p.SecretsExclude = append(p.SecretsExclude, ids...)
		case "action":
			a, err := ParseAction(val.Value)
			if err != nil || a.Kind == "drop" || a.Kind == "keep" {
				return perr(val, "secrets action: want redact, pseudonymize or truncate:N, not %q", val.Value)
			}
			p.SecretAction = a
		default:
			return perr(k, "unknown key %q in secrets (want rules, exclude, action)", k.Value)
		}
	}
	return nil
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
				if err != nil || n < 0 || val.Kind != yaml.ScalarNode {
					return rp, perr(val, "max_bytes must be a whole number of bytes")
				}
				rp.MaxBytes = n
			case "keep":
				keep, err := stringList(val)
				if err != nil {
					return rp, perr(val, "keep is a list of field names")
				}
				rp.Keep = append(slices.Clone(rp.Keep), keep...)
			default:
				return rp, perr(k, "unknown key %q in a result policy", k.Value)
			}
		}
		return rp, nil
	}
	var tools *yaml.Node
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
			tools = val // read after default, which tools inherit wherever it is written
		default:
			return perr(k, "unknown key %q in results", k.Value)
		}
	}
	for j := 0; tools != nil && j+1 < len(tools.Content); j += 2 {
		rp, err := one(tools.Content[j+1], p.Results)
		if err != nil {
			return err
		}
		p.Tools[tools.Content[j].Value] = rp
	}
	return nil
}
