// Package redact strips secrets and PII from events before they are hashed or written: key rules
// on field names (anywhere in nested objects, arrays, and JSON carried inside strings), value
// detectors (payment cards with Luhn, SSNs, emails, phones, IBANs, JWTs, bearer tokens, PEM
// private keys, and gitleaks' rule set for cloud, LLM and VCS API keys), keyed pseudonyms
// (HMAC-SHA256, never a bare hash), and per-tool result summaries. Every change is listed on the
// event as {path, kind, action}, never with the value.
//
// The Redactor implements ledger.Sanitizer, so it runs on the one path every event takes.
package redact

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/agentaudit/agentaudit/event"
)

// KeySize is the size of the pseudonym key.
const KeySize = 32

// PseudonymHexChars is how much of the HMAC a pseudonym shows: 64 bits, enough that two people
// do not collide in any one log, short enough to read.
const PseudonymHexChars = 16

// Redactor applies a policy. It is safe for concurrent use.
type Redactor struct {
	p       *Policy
	key     []byte
	keys    map[string]Action // normalized key rule name -> action
	pii     map[string]bool   // normalized PII field names
	secrets *secretRules
	dets    []detector

	cacheMu  sync.RWMutex
	keyCache map[string]keyMatch // field name -> keyAction's answer; names repeat across events
}

type keyMatch struct {
	a    Action
	kind string
	ok   bool
}

// maxKeyCache bounds the cache of field names: agents use few names, an attacker could send many.
const maxKeyCache = 4096

// New returns a Redactor for the policy with the pseudonym key.
func New(p *Policy, key []byte) (*Redactor, error) {
	if len(key) < KeySize {
		return nil, fmt.Errorf("redact: pseudonym key has %d bytes, want at least %d", len(key), KeySize)
	}
	r := &Redactor{p: p, key: slices.Clone(key), keys: map[string]Action{}, pii: map[string]bool{}, keyCache: map[string]keyMatch{}}
	for _, k := range p.Keys {
		r.keys[normalizeKey(k.Name)] = k.Action
	}
	for _, f := range p.PIIFields {
		r.pii[normalizeKey(f)] = true
	}
	for _, d := range piiDetectors {
		if _, on := p.Detectors[d.kind]; on {
			r.dets = append(r.dets, d)
		}
	}
	if p.Secrets {
		sr, err := loadSecrets()
		if err != nil {
			return nil, err
		}
		r.secrets = sr
	}
	return r, nil
}

// ErrKeyFile: the pseudonym key file is unreadable, malformed or readable by others.
var ErrKeyFile = errors.New("bad pseudonym key file")

// LoadOrCreateKey reads the pseudonym key file, creating it (mode 0600, 32 random bytes as hex)
// when absent. A key file that group or others can read is refused.
func LoadOrCreateKey(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		key := make([]byte, KeySize)
		rand.Read(key)
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
		}
		defer f.Close()
		if _, err := f.WriteString(hex.EncodeToString(key) + "\n"); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
		}
		return key, f.Sync()
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrKeyFile, err)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o; it must be private (chmod 600)", ErrKeyFile, path, fi.Mode().Perm())
	}
	key, err := hex.DecodeString(strings.TrimSpace(string(data)))
	if err != nil || len(key) < KeySize {
		return nil, fmt.Errorf("%w: %s does not hold %d hex-encoded bytes", ErrKeyFile, path, KeySize)
	}
	return key, nil
}

// normalizeKey folds a field name for matching: lower case, without _ - . and spaces, and
// without an "x-" header prefix, so api_key, apiKey, API-KEY and x-api-key are one name.
func normalizeKey(s string) string {
	l := strings.ToLower(s)
	if len(l) > 2 && (l[:2] == "x-" || l[:2] == "x_") {
		l = l[2:]
	}
	var b strings.Builder
	for i := 0; i < len(l); i++ {
		switch l[i] {
		case '_', '-', '.', ' ':
		default:
			b.WriteByte(l[i])
		}
	}
	return b.String()
}

// keyAction returns the action for a field name: a key rule or PII field whose normalized name
// equals the field's or ends it (db_password, openai_api_key). Ending, not containing: so
// max_tokens and token_count are not "token", and the count of tokens stays visible.
func (r *Redactor) keyAction(name string) (Action, string, bool) {
	r.cacheMu.RLock()
	m, hit := r.keyCache[name]
	r.cacheMu.RUnlock()
	if !hit {
		m.a, m.kind, m.ok = r.matchKey(name)
		r.cacheMu.Lock()
		if len(r.keyCache) < maxKeyCache {
			r.keyCache[name] = m
		}
		r.cacheMu.Unlock()
	}
	return m.a, m.kind, m.ok
}

func (r *Redactor) matchKey(name string) (Action, string, bool) {
	n := normalizeKey(name)
	if n == "" {
		return Action{}, "", false
	}
	best, bestLen := "", 0
	for rule := range r.keys {
		if strings.HasSuffix(n, rule) && len(rule) > bestLen {
			best, bestLen = rule, len(rule)
		}
	}
	for f := range r.pii {
		if strings.HasSuffix(n, f) && len(f) > bestLen {
			return Action{Kind: "pseudonymize"}, f, true
		}
	}
	if best != "" {
		return r.keys[best], best, true
	}
	return Action{}, "", false
}

// Pseudonym returns the keyed token of a value of a field: pii:<field>:<16 hex of HMAC-SHA256>.
// The same value of the same field gives the same token under one key, so a person links across
// events without the log holding the value.
func (r *Redactor) Pseudonym(field, value string) string {
	f := normalizeKey(field)
	m := hmac.New(sha256.New, r.key)
	m.Write([]byte(f))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return "pii:" + f + ":" + hex.EncodeToString(m.Sum(nil))[:PseudonymHexChars]
}

func marker(kind string) string { return "[REDACTED:" + kind + "]" }

// apply returns the replacement of a string value under an action.
func (r *Redactor) apply(a Action, kind, value string) string {
	switch a.Kind {
	case "pseudonymize":
		return r.Pseudonym(kind, value)
	case "truncate":
		if utf8.RuneCountInString(value) <= a.N {
			return value
		}
		return string([]rune(value)[:a.N]) + "…"
	case "keep":
		return value
	}
	return marker(kind)
}

// String sanitizes free text found at path with the value detectors.
func (r *Redactor) String(path, s string) (string, []event.Redaction) {
	var red []event.Redaction
	out := r.scan(path, s, &red)
	return out, red
}

// scan replaces every detected value in s.
func (r *Redactor) scan(path, s string, red *[]event.Redaction) string {
	if len(s) < 6 {
		return s
	}
	lower := strings.ToLower(s)
	var ms []match
	for _, d := range r.dets {
		if d.pre(s, lower) {
			ms = append(ms, d.find(s)...)
		}
	}
	if r.secrets != nil {
		ms = append(ms, r.secrets.find(s, lower)...)
	}
	if len(ms) == 0 {
		return s
	}
	// Longest first at each start; drop overlaps.
	sort.Slice(ms, func(i, j int) bool {
		if ms[i].start != ms[j].start {
			return ms[i].start < ms[j].start
		}
		return ms[i].end > ms[j].end
	})
	var b strings.Builder
	last := 0
	for _, m := range ms {
		if m.start < last {
			continue
		}
		a, ok := r.p.Detectors[m.kind]
		if !ok {
			a = Action{Kind: "redact"} // a secret rule
		}
		b.WriteString(s[last:m.start])
		b.WriteString(r.apply(a, m.kind, s[m.start:m.end]))
		last = m.end
		*red = append(*red, event.Redaction{Path: path, Kind: m.kind, Action: a.String()})
	}
	b.WriteString(s[last:])
	return b.String()
}

// Value sanitizes one JSON value found at path. The result is valid JSON of the same shape but
// for what rules replaced or dropped.
func (r *Redactor) Value(path string, v json.RawMessage) (json.RawMessage, []event.Redaction, error) {
	if len(bytes.TrimSpace(v)) == 0 {
		return v, nil, nil
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil {
		return nil, nil, fmt.Errorf("redact %s: %w", path, err)
	}
	var red []event.Redaction
	x, changed := r.walk(path, "", x, &red, 0)
	if !changed {
		return v, nil, nil
	}
	out, err := marshal(x)
	if err != nil {
		return nil, nil, fmt.Errorf("redact %s: %w", path, err)
	}
	return out, red, nil
}

func marshal(x any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(x); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

const maxDepth = 64

// walk sanitizes x found at path under the field name key ("" in arrays), and reports whether it
// changed anything.
func (r *Redactor) walk(path, key string, x any, red *[]event.Redaction, depth int) (any, bool) {
	if depth > maxDepth {
		return x, false
	}
	switch v := x.(type) {
	case map[string]any:
		changed := false
		for _, k := range sortedKeys(v) {
			p := join(path, k)
			if a, kind, ok := r.keyAction(k); ok && a.Kind != "keep" {
				if a.Kind == "drop" {
					delete(v, k)
					*red = append(*red, event.Redaction{Path: p, Kind: kind, Action: "drop"})
					changed = true
					continue
				}
				if v[k] == nil {
					continue
				}
				v[k] = r.apply(a, kind, scalarText(v[k]))
				*red = append(*red, event.Redaction{Path: p, Kind: kind, Action: a.String()})
				changed = true
				continue
			}
			nv, c := r.walk(p, k, v[k], red, depth+1)
			if c {
				v[k], changed = nv, true
			}
		}
		return v, changed
	case []any:
		changed := false
		for i := range v {
			nv, c := r.walk(path+"["+strconv.Itoa(i)+"]", key, v[i], red, depth+1)
			if c {
				v[i], changed = nv, true
			}
		}
		return v, changed
	case string:
		// JSON carried in a string (tool arguments often are): sanitize inside it.
		if t := strings.TrimSpace(v); len(t) > 1 && (t[0] == '{' || t[0] == '[') {
			dec := json.NewDecoder(strings.NewReader(t))
			dec.UseNumber()
			var inner any
			if dec.Decode(&inner) == nil && !dec.More() {
				if nv, c := r.walk(path, key, inner, red, depth+1); c {
					if out, err := marshal(nv); err == nil {
						return string(out), true
					}
				}
				return v, false
			}
		}
		if s := r.scan(path, v, red); s != v {
			return s, true
		}
	case json.Number:
		// Card numbers and phone numbers also arrive as JSON numbers.
		if s := r.scan(path, v.String(), red); s != v.String() {
			return s, true
		}
	}
	return x, false
}

// scalarText is the text a key rule acts on: a string as is, anything else as compact JSON.
func scalarText(x any) string {
	if s, ok := x.(string); ok {
		return s
	}
	b, _ := marshal(x)
	return string(b)
}

func sortedKeys(m map[string]any) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func join(path, k string) string {
	if path == "" {
		return k
	}
	return path + "." + k
}

// Summary returns the stored form of a tool's result under the policy for that tool: the result
// itself when the mode is full or it is small; otherwise an object keeping the outcome fields,
// the key identifiers, the error text, `_size` and `_truncated: true`.
func (r *Redactor) Summary(tool string, result json.RawMessage) (json.RawMessage, bool, error) {
	rp, ok := r.p.Tools[tool]
	if !ok {
		rp = r.p.Results
	}
	if rp.Mode != "summary" || len(result) <= rp.MaxBytes {
		return result, false, nil
	}
	sum := map[string]any{"_size": len(result), "_truncated": true}
	var obj map[string]any
	dec := json.NewDecoder(bytes.NewReader(result))
	dec.UseNumber()
	if dec.Decode(&obj) == nil {
		keep := append(slices.Clone(DefaultSummaryFields), rp.Keep...)
		for _, k := range keep {
			if v, ok := obj[k]; ok {
				if s, isStr := v.(string); isStr && len(s) > 500 {
					v = string([]rune(s)[:min(500, utf8.RuneCountInString(s))]) + "…"
				}
				sum[k] = v
			}
		}
	}
	out, err := marshal(sum)
	return out, true, err
}

// Sanitize implements ledger.Sanitizer: it sanitizes every payload and free-text field of the
// event in place, applies the tool's result policy, and appends what it did to ev.Redactions.
func (r *Redactor) Sanitize(ev *event.Event) error {
	var all []event.Redaction
	for _, f := range []struct {
		name string
		v    *json.RawMessage
	}{
		{"metadata", &ev.Metadata}, {"input_messages", &ev.InputMessages}, {"tool_calls_requested", &ev.ToolCallsRequested},
		{"arguments", &ev.Arguments}, {"result", &ev.Result}, {"result_summary", &ev.ResultSummary},
	} {
		if len(*f.v) == 0 {
			continue
		}
		out, red, err := r.Value(f.name, *f.v)
		if err != nil {
			return &event.FieldError{Field: f.name, Rule: err.Error()}
		}
		*f.v = out
		all = append(all, red...)
	}
	for _, f := range []struct {
		name string
		v    *string
	}{
		{"output_text", &ev.OutputText}, {"error", &ev.Error}, {"rationale", &ev.Rationale}, {"decision", &ev.Decision},
		{"break_glass_reason", &ev.BreakGlassReason}, {"user_agent", &ev.UserAgent},
	} {
		if *f.v == "" {
			continue
		}
		out, red := r.String(f.name, *f.v)
		*f.v = out
		all = append(all, red...)
	}
	if len(ev.Result) > 0 {
		sum, summarized, err := r.Summary(ev.ToolName, ev.Result)
		if err != nil {
			return err
		}
		if summarized {
			ev.ResultSummary, ev.Result = sum, nil
			all = append(all, event.Redaction{Path: "result", Kind: "result", Action: "summarize"})
		}
	}
	ev.Redactions = append(ev.Redactions, all...)
	return nil
}
