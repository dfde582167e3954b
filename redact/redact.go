// Package redact strips secrets and PII from events before they are hashed or written
// (invariant 6 of DESIGN.md: sanitize before hash). It owns the redaction policy (YAML, with
// line-numbered errors), key rules on field names, value detectors, keyed pseudonyms and per-tool
// result summaries.
//
//   - Key rules act on a value by the name of its field, anywhere in nested objects and arrays and
//     inside JSON carried in strings. Names match as keyMatcher documents: normalized (lower
//     case, no '_', '-', '.', spaces, no x- prefix), equal to a rule or ending with it.
//   - Value detectors look inside every string (and number): payment cards (Luhn), US SSNs,
//     e-mail addresses, phone numbers, IBANs (mod 97), JWTs, bearer tokens, PEM private keys,
//     credentials in URLs, "name=value" pairs whose name is a key rule, gitleaks' default
//     rules for cloud, LLM and VCS API keys, and near misses of their well-known prefixes
//     (prefix.go).
//   - People's names are pseudonymized in fields that only hold one and, for name, in person
//     records (names.go).
//   - Pseudonyms are HMAC-SHA256 under a per-deployment key, never bare hashes.
//   - Each change is recorded as a Redaction {path, kind, action}, never with the value.
//
// TestCorpus measures precision and recall per kind over testdata/corpus; FuzzValue checks that
// no matched value survives. The Redactor implements ledger.Sanitizer.
package redact

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/agentaudit/agentaudit/event"
)

// Redaction records one change: where (a path such as arguments.card[2].number), what kind of
// value (a detector, a key rule's name or a gitleaks rule id), and which action. Never the value.
type Redaction = event.Redaction

// KeySize is the size of the pseudonym key.
const KeySize = 32

// PseudonymHexChars is how much of the HMAC a pseudonym shows: 64 bits, enough that two values
// do not collide in any one log, short enough to read.
const PseudonymHexChars = 16

// Redactor applies a policy. It is safe for concurrent use.
type Redactor struct {
	p            *Policy
	key          []byte
	keys         *keyMatcher
	m            *matcher
	secrets      *secretRules
	secretAction Action
	enabled      trigger           // detectors on
	detAct       map[string]Action // detector kind -> action
	disabled     [8]uint64         // gitleaks rules the policy turned off
	always       uint64            // patterns without keywords: run on every string
	minScan      int               // strings shorter than this are not scanned
	names        bool              // the person-name rule is on (names.go), with nameAct
	nameAct      Action
}

// New returns a Redactor for the policy with the pseudonym key (at least KeySize bytes).
func New(p *Policy, key []byte) (*Redactor, error) {
	if len(key) < KeySize {
		return nil, fmt.Errorf("redact: pseudonym key has %d bytes, want at least %d", len(key), KeySize)
	}
	if p == nil {
		return nil, fmt.Errorf("redact: nil policy")
	}
	r := &Redactor{p: p, key: slices.Clone(key), keys: newKeyMatcher(p.Keys, p.PIIFields), detAct: maps.Clone(p.Detectors)}
	kws := map[string]*keyword{}
	add := func(text string, bits trigger, rules ...int32) {
		k := kws[text]
		if k == nil {
			k = &keyword{text: text}
			kws[text] = k
		}
		k.bits |= bits
		k.rules = append(k.rules, rules...)
	}
	for kind, a := range p.Detectors {
		bit, ok := detectorKinds[kind]
		if !ok {
			return nil, fmt.Errorf("redact: unknown detector %q", kind)
		}
		if a.Kind == "drop" {
			return nil, fmt.Errorf("redact: detector %q: a value inside a string cannot be dropped", kind)
		}
		r.enabled |= bit
	}
	if a, ok := p.Detectors[personNameKind]; ok && a.Kind != "keep" {
		r.names, r.nameAct = true, a
	}
	if r.enabled&tBearer != 0 {
		add("bearer", tBearer)
	}
	if r.enabled&tJWT != 0 {
		add("eyj", tJWT)
	}
	if r.enabled&tPEM != 0 {
		add("-----begin", tPEM)
	}
	if r.enabled&tURLCred != 0 {
		add("://", tURLCred)
	}
	if r.enabled&tKeyValue != 0 {
		for _, k := range r.keys.rules {
			if k.act.Kind != "keep" {
				add(lastWord(k.name), tKeyValue)
			}
		}
	}
	r.minScan = minScanLen
	if len(p.Patterns) > maxPatterns {
		return nil, fmt.Errorf("redact: %d patterns, at most %d", len(p.Patterns), maxPatterns)
	}
	for i, pat := range p.Patterns {
		if len(pat.Keywords) == 0 {
			r.always |= 1 << i
			r.minScan = 1
		}
		for _, kw := range pat.Keywords {
			add(strings.ToLower(kw), tPattern)
			kws[strings.ToLower(kw)].pats |= 1 << i
		}
	}
	if len(p.Patterns) > 0 {
		r.enabled |= tPattern
	}
	if p.Secrets {
		sr, err := loadSecrets()
		if err != nil {
			return nil, err
		}
		r.secrets = sr
		r.enabled |= tSecret
		r.secretAction = p.SecretAction
		if r.secretAction.Kind == "" {
			r.secretAction = Action{Kind: "redact"}
		}
		off := map[string]bool{}
		for _, id := range p.SecretsExclude {
			off[id] = true
		}
		for i, rule := range sr.rules {
			if off[rule.id] {
				r.disabled[i/64] |= 1 << (i % 64)
			}
		}
		for kw, rules := range sr.keywords {
			add(kw, tSecret, rules...)
		}
		// The lenient prefixes run with the exact rules they relax (prefix.go).
		for i, pr := range prefixRules {
			if r.enabled&tPrefix != 0 && !slices.ContainsFunc(pr.relaxes, func(id string) bool { return off[id] }) {
				kw := strings.ToLower(pr.prefix)
				add(kw, tPrefix)
				kws[kw].pfx |= 1 << i
			}
		}
	}
	if !p.Secrets {
		r.enabled &^= tPrefix
	}
	list := make([]keyword, 0, len(kws))
	for _, k := range kws {
		list = append(list, *k)
	}
	slices.SortFunc(list, func(a, b keyword) int { return strings.Compare(a.text, b.text) })
	r.m = newMatcher(list)
	return r, nil
}

// lastWord is the last word of a field name, lower case: api_key -> key, refreshToken -> token,
// set-cookie -> cookie. Every spelling of the name contains it, so it is the keyword that finds
// "name=value" in text.
func lastWord(name string) string {
	i := len(name)
	for i > 0 {
		c := rune(name[i-1])
		if c == '_' || c == '-' || c == '.' || c == ' ' {
			if i < len(name) {
				break
			}
			name = name[:i-1]
			i--
			continue
		}
		i--
		if unicode.IsUpper(c) && i > 0 && unicode.IsLower(rune(name[i-1])) {
			break
		}
	}
	return strings.ToLower(name[i:])
}

// Pseudonym returns the keyed token of a value of a field: "pii:<field>:<hex>", hex the first
// PseudonymHexChars of HMAC-SHA256(key, field ‖ 0 ‖ value) with the field normalized as key rules
// match it, so patient_name and patientName give the same token. The token shows the field as
// the policy writes its rule (pii:patient_name:…), or normalized when no rule names it. The same
// value of the same field gives the same token under one key, so a person links across events
// without the log holding the value; without the key, a guessed value cannot be checked.
// E-mail addresses and phone numbers are normalized first (pseudonymValue), here rather than by
// the callers, so `agentaudit hash --field email Jane@Example.com` finds what the log holds.
func (r *Redactor) Pseudonym(field, value string) string {
	f := normalizeKey(field)
	value = pseudonymValue(f, value)
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte(f))
	m.Write([]byte{0})
	m.Write([]byte(value))
	var sum [sha256.Size]byte
	return "pii:" + r.keys.shownName(f) + ":" + hex.EncodeToString(m.Sum(sum[:0]))[:PseudonymHexChars]
}

// pseudonymValue normalizes what detectors pseudonymize, so one person gets one token: e-mail
// addresses in lower case, phone numbers as their digits (a leading NANP 1 dropped).
func pseudonymValue(kind, v string) string {
	switch kind {
	case "email":
		return strings.ToLower(v)
	case "phone":
		d := make([]byte, 0, len(v))
		for i := 0; i < len(v); i++ {
			if isDigit(v[i]) {
				d = append(d, v[i])
			}
		}
		if len(d) == 11 && d[0] == '1' {
			d = d[1:]
		}
		return string(d)
	}
	return v
}

func marker(kind string) string { return "[REDACTED:" + kind + "]" }

// apply returns the replacement of a value under an action.
func (r *Redactor) apply(a Action, kind, value string) string {
	switch a.Kind {
	case "pseudonymize":
		return r.Pseudonym(kind, value)
	case "truncate":
		if utf8.RuneCountInString(value) <= a.N {
			return value
		}
		i, n := 0, 0
		for i < len(value) && n < a.N {
			_, size := utf8.DecodeRuneInString(value[i:])
			i += size
			n++
		}
		return value[:i] + "…"
	case "keep":
		return value
	}
	return marker(kind)
}

// String sanitizes free text found at path with the value detectors. When the field's own name
// (the last element of path) matches a key rule, the rule applies to the whole text instead;
// a drop rule gives "".
func (r *Redactor) String(path, s string) (string, []Redaction) {
	name := path[strings.LastIndexByte(path, '.')+1:]
	if i := strings.IndexByte(name, '['); i >= 0 {
		name = name[:i]
	}
	var red []Redaction
	if a, kind, ok := r.keyAction(name); ok && a.Kind != "keep" {
		if s == "" {
			return s, nil
		}
		if a.Kind == "drop" {
			return "", []Redaction{{Path: path, Kind: kind, Action: a.String()}}
		}
		if a.Kind == "truncate" {
			// What truncation keeps is still text: detectors run on the whole value first, so no
			// value survives in the kept part, nor half of one at its end.
			s = r.detect(s, []byte(path), &red)
		}
		return r.apply(a, kind, s), append(red, Redaction{Path: path, Kind: kind, Action: a.String()})
	}
	return r.detect(s, []byte(path), &red), red
}

// detect applies the value detectors to s, recording what they find at path.
func (r *Redactor) detect(s string, path []byte, red *[]Redaction) string {
	hits := r.m.scan(s, nil)
	if len(hits) == 0 && r.always == 0 {
		return s
	}
	return r.replace(s, r.find(s, hits, 0, nil), path, red)
}

// Value sanitizes one JSON value found at path (for example "arguments" or "metadata"): key rules
// on member names at any depth, detectors in every string and number (and member name), and JSON
// carried inside strings sanitized in place and re-encoded as a string. The result is valid JSON
// of the same shape but for what rules replaced or dropped; untouched parts keep their bytes, and
// when nothing is found the input itself is returned. Malformed JSON is an error.
func (r *Redactor) Value(path string, v json.RawMessage) (json.RawMessage, []Redaction, error) {
	return r.value(path, v, false)
}

// value is Value for a field of an event; person: the event is about a person, so the top of
// its tool arguments and result is that person's record (names.go).
func (r *Redactor) value(path string, v json.RawMessage, person bool) (json.RawMessage, []Redaction, error) {
	if len(bytes.TrimSpace(v)) == 0 {
		return v, nil, nil
	}
	w := getWalker(r, v, []byte(path))
	defer putWalker(w)
	w.subj = person && (path == "arguments" || path == "result" || path == "result_summary")
	if err := w.run(0); err != nil {
		return nil, nil, fmt.Errorf("redact %s: %w", path, err)
	}
	if w.out == nil {
		return v, nil, nil
	}
	return w.result(), w.red, nil
}

// DefaultSummaryFields are kept in every result summary: the outcome (MCP's isError included)
// and the usual identifiers.
var DefaultSummaryFields = []string{"success", "error", "status", "isError", "is_error", "id", "order_id", "customer_id", "patient_id", "count"}

// maxSummaryString is how many runes of a kept string field a summary shows.
const maxSummaryString = 500

// Summary returns the stored form of a tool's result under the policy for that tool: the result
// sanitized, whole when the mode is full or it is at most max_bytes long; otherwise a summary
// object keeping the outcome fields, the identifiers (DefaultSummaryFields and the policy's keep
// list), the error text (cut at 500 runes), "_size" (the result's length in bytes) and
// "_truncated": true. A result that is not an object summarizes to _size, _truncated and, for an
// array, "_count".
func (r *Redactor) Summary(tool string, result json.RawMessage) (json.RawMessage, error) {
	out, _, _, err := r.summarize(tool, result, false)
	return out, err
}

// cutOutsideMarker drops a replacement marker that a cut split in two ("… [REDACTED:cre"), so a
// summary never shows half a marker that reads like a value.
func cutOutsideMarker(s string) string {
	if i := strings.LastIndex(s, "[REDACTED:"); i >= 0 && !strings.Contains(s[i:], "]") {
		return s[:i]
	}
	if i := strings.LastIndex(s, "[RED"); i >= 0 && strings.HasPrefix("[REDACTED:", s[i:]) {
		return s[:i]
	}
	return s
}

func (r *Redactor) resultPolicy(tool string) ResultPolicy {
	if rp, ok := r.p.Tools[tool]; ok {
		return rp
	}
	return r.p.Results
}

func (r *Redactor) summarize(tool string, result json.RawMessage, person bool) (json.RawMessage, []Redaction, bool, error) {
	clean, red, err := r.value("result", result, person)
	if err != nil {
		return nil, nil, false, err
	}
	rp := r.resultPolicy(tool)
	if rp.Mode != "summary" || len(result) <= rp.MaxBytes {
		return clean, red, false, nil
	}
	sum := map[string]any{"_size": len(result), "_truncated": true}
	t := bytes.TrimSpace(clean)
	switch {
	case len(t) > 0 && t[0] == '{':
		var obj map[string]json.RawMessage
		if json.Unmarshal(t, &obj) == nil {
			for _, k := range slices.Concat(DefaultSummaryFields, rp.Keep) {
				v, ok := obj[k]
				if !ok {
					continue
				}
				var s string
				if v[0] == '"' && json.Unmarshal(v, &s) == nil {
					if utf8.RuneCountInString(s) > maxSummaryString {
						s = cutOutsideMarker(string([]rune(s)[:maxSummaryString])) + "…"
					}
					sum[k] = s
				} else if len(v) <= maxSummaryString {
					sum[k] = v
				}
			}
		}
	case len(t) > 0 && t[0] == '[':
		var arr []json.RawMessage
		if json.Unmarshal(t, &arr) == nil {
			sum["_count"] = len(arr)
		}
	}
	out, err := json.Marshal(sum)
	// The summary replaces the result: what was redacted in parts it leaves out is gone with
	// them, but the record of it stays, so a reader knows the result held such values.
	return out, red, true, err
}

// sanitizedFields are the fields of the event's table whose class can carry a secret or PII:
// payloads, free text, content and identifiers, in table order.
var sanitizedFields = func() []*event.Field {
	var fs []*event.Field
	for i := range event.Fields {
		switch f := &event.Fields[i]; f.Class {
		case event.ClassPayload, event.ClassText, event.ClassContent, event.ClassIdentifier:
			fs = append(fs, f)
		}
	}
	return fs
}()

// Sanitize implements ledger.Sanitizer: it sanitizes every payload and free-text field of the
// event in place, applies the tool's result policy, and appends what it did to ev.Redactions.
// Identifiers (user_id, subject_id, tool_call_id, ...) and the redaction records a client sent
// carry no detected value either; in an identifier what a detector finds is pseudonymized, so the
// field still tells one user or subject from another.
func (r *Redactor) Sanitize(ev *event.Event) error {
	person := personSubject(ev.SubjectType) // its arguments and result are a person's record
	all := ev.Redactions
	for i, n := 0, len(all); i < n; i++ { // records a client sent: a path may hold a member name
		x, path := all[i], []byte("redactions["+strconv.Itoa(i)+"]")
		x.Path = r.detect(x.Path, path, &all)
		x.Kind = r.detect(x.Kind, path, &all)
		x.Action = r.detect(x.Action, path, &all)
		if x != all[i] {
			all[i] = x
		}
	}
	// Every field by its class in the event's one field table, the result last: its summary
	// replaces result_summary.
	for _, f := range sanitizedFields {
		switch f.Class {
		case event.ClassPayload:
			v := f.JSON(ev)
			if len(*v) == 0 || f.Name == "result" {
				continue
			}
			out, red, err := r.value(f.Name, *v, person)
			if err != nil {
				return &event.FieldError{Field: f.Name, Rule: err.Error()}
			}
			*v = out
			all = append(all, red...)
		case event.ClassText, event.ClassContent:
			v := f.Str(ev)
			if *v == "" {
				continue
			}
			out, red := r.String(f.Name, *v)
			*v = r.withinLimit(f, out, &red)
			all = append(all, red...)
		case event.ClassIdentifier:
			// Written only when changed: a caller may still read its event (the SDK reads the id).
			v := f.Str(ev)
			if len(*v) >= r.minScan {
				if out := r.withinLimit(f, r.identifier(f.Name, *v, &all), &all); out != *v {
					*v = out
				}
			}
		}
	}
	if len(ev.Result) > 0 {
		out, red, summarized, err := r.summarize(ev.ToolName, ev.Result, person)
		if err != nil {
			return &event.FieldError{Field: "result", Rule: err.Error()}
		}
		all = append(all, red...)
		if summarized {
			ev.ResultSummary, ev.Result = out, nil
			all = append(all, Redaction{Path: "result", Kind: "result", Action: "summarize"})
		} else {
			ev.Result = out
		}
	}
	if len(all) != len(ev.Redactions) { // all grew from ev.Redactions: a new length is a change
		ev.Redactions = all
	}
	return nil
}

// withinLimit keeps a sanitized value within its field's length limit: markers and pseudonyms can
// be longer than what they replace, and the ledger validates an event before sanitizing it. A
// value pushed over the limit becomes one pseudonym of the whole.
func (r *Redactor) withinLimit(f *event.Field, v string, red *[]Redaction) string {
	if f.MaxLen == 0 || len(v) <= f.MaxLen {
		return v
	}
	*red = append(*red, Redaction{Path: f.Name, Kind: "over_length", Action: "pseudonymize"})
	return r.Pseudonym(f.Name, v)
}

// identifier sanitizes an identifier field: what a detector finds is pseudonymized (kept only
// under keep), whatever the detector's action, so one value keeps one token: a marker would
// merge every subject whose id held an SSN. "name:value" is how identifiers are namespaced
// (apikey:reader1, user:alice), not a credential: key_value does not run on them.
func (r *Redactor) identifier(path, s string, red *[]Redaction) string {
	hits := r.m.scan(s, nil)
	if len(hits) == 0 && r.always == 0 {
		return s
	}
	for i := range hits {
		hits[i].bits &^= tKeyValue
	}
	ms := r.find(s, hits, 0, nil)
	for i := range ms {
		if ms[i].act.Kind != "keep" {
			ms[i].act = Action{Kind: "pseudonymize"}
		}
	}
	return r.replace(s, ms, []byte(path), red)
}
