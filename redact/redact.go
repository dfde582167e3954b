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
	"maps"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"
	"unsafe"

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

	cacheMu  sync.Mutex                          // serializes writers of keyCache
	keyCache atomic.Pointer[map[string]keyMatch] // field name -> keyAction's answer; read without a lock, replaced on write
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
	r := &Redactor{p: p, key: slices.Clone(key), keys: map[string]Action{}, pii: map[string]bool{}}
	r.keyCache.Store(&map[string]keyMatch{})
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
	m, hit := (*r.keyCache.Load())[name]
	if !hit {
		m.a, m.kind, m.ok = r.matchKey(name)
		r.cacheMu.Lock()
		old := *r.keyCache.Load()
		if len(old) < maxKeyCache { // names repeat, so copying on a new one is rare
			next := make(map[string]keyMatch, len(old)+1)
			maps.Copy(next, old)
			next[strings.Clone(name)] = m // name may be a view of the input
			r.keyCache.Store(&next)
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

var lowerPool = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// minBearerLen is the shortest string a bearer token or a secret keyword check needs.
const minBearerLen = 15

func appendASCIILower(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		dst = append(dst, c)
	}
	return dst
}

// Below minScanLen only an email fits; below minSecretLen no gitleaks rule's secret fits (their
// shortest tokens are 16 characters and more), so short ids and statuses cost a length test.
const (
	minScanLen   = 10
	minSecretLen = 16
)

func (r *Redactor) findEmail(s string) []match {
	for _, d := range r.dets {
		if d.kind == "email" {
			return d.find(s)
		}
	}
	return nil
}

// String sanitizes free text found at path with the value detectors.
func (r *Redactor) String(path, s string) (string, []event.Redaction) {
	var red []event.Redaction
	out := r.scan([]byte(path), s, &red)
	return out, red
}

// scan replaces every detected value in s.
func (r *Redactor) scan(path []byte, s string, red *[]event.Redaction) string {
	if len(s) < 6 {
		return s
	}
	var ms []match
	if len(s) < minScanLen {
		// Too short for any format but an email.
		if strings.IndexByte(s, '@') < 0 {
			return s
		}
		ms = r.findEmail(s)
	} else {
		// Lower case is needed only where a keyword or "bearer" can fit: a pooled buffer, viewed
		// as a string for the scan's length, instead of an allocation per string.
		lower := ""
		if len(s) >= minBearerLen {
			bp := lowerPool.Get().(*[]byte)
			*bp = appendASCIILower((*bp)[:0], s)
			lower = unsafe.String(unsafe.SliceData(*bp), len(*bp))
			defer lowerPool.Put(bp)
		}
		f := featuresOf(s, lower)
		for _, d := range r.dets {
			if d.pre(&f) {
				ms = append(ms, d.find(s)...)
			}
		}
		if r.secrets != nil && len(s) >= minSecretLen {
			ms = append(ms, r.secrets.find(s, lower)...)
		}
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
		*red = append(*red, event.Redaction{Path: string(path), Kind: m.kind, Action: a.String()})
	}
	b.WriteString(s[last:])
	return b.String()
}

// Value sanitizes one JSON value found at path. The result is valid JSON of the same shape but
// for what rules replaced or dropped (white space is not kept). It streams over the input, never
// building a tree: untouched tokens are copied as they are.
func (r *Redactor) Value(path string, v json.RawMessage) (json.RawMessage, []event.Redaction, error) {
	if len(bytes.TrimSpace(v)) == 0 {
		return v, nil, nil
	}
	w := walker{r: r, in: v, path: append(make([]byte, 0, 64), path...), out: make([]byte, 0, len(v)+64)}
	w.skipSpace()
	if err := w.value(0); err != nil {
		return nil, nil, fmt.Errorf("redact %s: %w", path, err)
	}
	w.skipSpace()
	if w.pos != len(w.in) {
		return nil, nil, fmt.Errorf("redact %s: data after the JSON value at byte %d", path, w.pos)
	}
	if len(w.red) == 0 {
		return v, nil, nil
	}
	return w.out, w.red, nil
}

const maxDepth = 128

var errSyntax = errors.New("malformed JSON")

// walker rewrites one JSON value into out.
type walker struct {
	r    *Redactor
	in   []byte
	pos  int
	out  []byte
	path []byte // the dotted path of the value being written, grown and cut as the walk descends
	red  []event.Redaction
}

func (w *walker) skipSpace() {
	for w.pos < len(w.in) {
		switch w.in[w.pos] {
		case ' ', '\t', '\n', '\r':
			w.pos++
		default:
			return
		}
	}
}

func (w *walker) note(kind, action string) {
	w.red = append(w.red, event.Redaction{Path: string(w.path), Kind: kind, Action: action})
}

// value copies or rewrites the value at w.pos.
func (w *walker) value(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nesting deeper than %d", maxDepth)
	}
	if w.pos >= len(w.in) {
		return errSyntax
	}
	switch c := w.in[w.pos]; {
	case c == '{':
		return w.object(depth)
	case c == '[':
		return w.array(depth)
	case c == '"':
		raw, s, err := w.str()
		if err != nil {
			return err
		}
		w.stringValue(raw, s, depth)
		return nil
	default:
		start := w.pos
		for w.pos < len(w.in) && !strings.ContainsRune(",]} \t\n\r", rune(w.in[w.pos])) {
			w.pos++
		}
		tok := w.in[start:w.pos]
		if len(tok) == 0 || !json.Valid(tok) {
			return errSyntax
		}
		// Card and phone numbers also arrive as JSON numbers.
		if c == '-' || c >= '0' && c <= '9' {
			if out := w.r.scanRecord(string(tok), w); out != string(tok) {
				w.out = appendJSONString(w.out, out)
				return nil
			}
		}
		w.out = append(w.out, tok...)
		return nil
	}
}

// str reads the string at w.pos and returns its raw JSON bytes and its decoded text.
func (w *walker) str() ([]byte, string, error) {
	start := w.pos
	w.pos++
	// Fast path: the closing quote with no backslash before it (most strings).
	if q := bytes.IndexByte(w.in[w.pos:], '"'); q >= 0 && bytes.IndexByte(w.in[w.pos:w.pos+q], '\\') < 0 {
		body := w.in[w.pos : w.pos+q]
		w.pos += q + 1
		for _, c := range body {
			if c < 0x20 {
				return nil, "", errSyntax
			}
		}
		raw := w.in[start:w.pos]
		if len(body) == 0 {
			return raw, "", nil
		}
		return raw, unsafe.String(&body[0], len(body)), nil
	}
	escaped := false
	for w.pos < len(w.in) {
		switch w.in[w.pos] {
		case '\\':
			escaped = true
			w.pos += 2
			continue
		case '"':
			w.pos++
			raw := w.in[start:w.pos]
			if !escaped {
				// A view, not a copy: the walker's input is not modified while the walk runs,
				// and the view is only read (scan returns a new string when it replaces).
				body := raw[1 : len(raw)-1]
				if len(body) == 0 {
					return raw, "", nil
				}
				return raw, unsafe.String(&body[0], len(body)), nil
			}
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return nil, "", errSyntax
			}
			return raw, s, nil
		}
		w.pos++
	}
	return nil, "", errSyntax
}

// stringValue writes a string value: JSON inside it sanitized, detected values replaced.
func (w *walker) stringValue(raw []byte, s string, depth int) {
	if t := strings.TrimSpace(s); len(t) > 1 && (t[0] == '{' || t[0] == '[') && json.Valid([]byte(t)) {
		inner := walker{r: w.r, in: []byte(t), path: w.path}
		if inner.value(depth+1) == nil && len(inner.red) > 0 {
			w.red = append(w.red, inner.red...)
			w.out = appendJSONString(w.out, string(inner.out))
			return
		}
	}
	if out := w.r.scanRecord(s, w); out != s {
		w.out = appendJSONString(w.out, out)
		return
	}
	w.out = append(w.out, raw...)
}

func (w *walker) object(depth int) error {
	w.pos++ // '{'
	w.out = append(w.out, '{')
	base := len(w.path)
	first := true // no member written yet (dropped ones are not written)
	w.skipSpace()
	if w.pos < len(w.in) && w.in[w.pos] == '}' {
		w.pos++
		w.out = append(w.out, '}')
		return nil
	}
	for {
		w.skipSpace()
		if w.pos >= len(w.in) || w.in[w.pos] != '"' {
			return errSyntax
		}
		rawKey, key, err := w.str()
		if err != nil {
			return err
		}
		w.skipSpace()
		if w.pos >= len(w.in) || w.in[w.pos] != ':' {
			return errSyntax
		}
		w.pos++
		w.skipSpace()
		if len(w.path) > 0 {
			w.path = append(w.path, '.')
		}
		w.path = append(w.path, key...)
		a, kind, ok := w.r.keyAction(key)
		switch {
		case ok && a.Kind == "drop": // the member is left out; no comma is written for it
			if err := w.skipValue(depth); err != nil {
				return err
			}
			w.note(kind, "drop")
		case ok && a.Kind != "keep" && w.in[w.pos] != 'n': // null stays null
			start := w.pos
			if err := w.skipValue(depth); err != nil {
				return err
			}
			text := scalarText(w.in[start:w.pos])
			if !first {
				w.out = append(w.out, ',')
			}
			w.out = append(append(w.out, rawKey...), ':')
			w.out = appendJSONString(w.out, w.r.apply(a, kind, text))
			w.note(kind, a.String())
			first = false
		default:
			if !first {
				w.out = append(w.out, ',')
			}
			w.out = append(append(w.out, rawKey...), ':')
			if err := w.value(depth + 1); err != nil {
				return err
			}
			first = false
		}
		w.path = w.path[:base]
		w.skipSpace()
		if w.pos >= len(w.in) {
			return errSyntax
		}
		switch w.in[w.pos] {
		case ',':
			w.pos++
		case '}':
			w.pos++
			w.out = append(w.out, '}')
			return nil
		default:
			return errSyntax
		}
	}
}

func (w *walker) array(depth int) error {
	w.pos++ // '['
	w.out = append(w.out, '[')
	base := len(w.path)
	for i := 0; ; i++ {
		w.skipSpace()
		if i == 0 && w.pos < len(w.in) && w.in[w.pos] == ']' {
			w.pos++
			w.out = append(w.out, ']')
			return nil
		}
		if i > 0 {
			w.out = append(w.out, ',')
		}
		w.path = strconv.AppendInt(append(w.path, '['), int64(i), 10)
		w.path = append(w.path, ']')
		if err := w.value(depth + 1); err != nil {
			return err
		}
		w.path = w.path[:base]
		w.skipSpace()
		if w.pos >= len(w.in) {
			return errSyntax
		}
		switch w.in[w.pos] {
		case ',':
			w.pos++
		case ']':
			w.pos++
			w.out = append(w.out, ']')
			return nil
		default:
			return errSyntax
		}
	}
}

// skipValue moves past the value at w.pos without writing it, checking its syntax.
func (w *walker) skipValue(depth int) error {
	saved := w.out
	savedRed := len(w.red)
	w.out = nil
	err := w.value(depth + 1)
	w.out, w.red = saved, w.red[:savedRed]
	return err
}

// scalarText is the text a key rule acts on: a string's content, anything else as JSON.
func scalarText(raw []byte) string {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// appendJSONString appends s as a JSON string (without HTML escaping).
func appendJSONString(dst []byte, s string) []byte {
	b, _ := json.Marshal(s)
	b = bytes.ReplaceAll(b, []byte(`\u003c`), []byte("<"))
	b = bytes.ReplaceAll(b, []byte(`\u003e`), []byte(">"))
	b = bytes.ReplaceAll(b, []byte(`\u0026`), []byte("&"))
	return append(dst, b...)
}

// scanRecord is scan for the walker: it records redactions at the walker's current path.
func (r *Redactor) scanRecord(s string, w *walker) string {
	return r.scan(w.path, s, &w.red)
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
	out, err := json.Marshal(sum)
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
