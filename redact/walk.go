package redact

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unsafe"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/internal/jsontok"
)

const maxDepth = 128

// walker rewrites one JSON value by splicing: the output is the input with replaced spans, so an
// untouched value costs no copy and keeps its bytes. Its scanner is not Strict: payloads are
// whatever the agent sent, so a lone surrogate reads as U+FFFD, as encoding/json has it, and
// invalid UTF-8 is left as it is (a string the walker replaces is written valid).
type walker struct {
	jsontok.Scanner
	r      *Redactor
	out    []byte // nil until the first change
	copied int    // In[:copied] is accounted for in out
	path   []byte // the path of the value being walked, grown and cut as the walk descends
	red    []Redaction
	hits   []hit // scratch
	skip   int   // > 0 while walking a dropped value: nothing is written or recorded
	// forced: a key rule matched a container's name; its action applies to every leaf inside.
	forced bool
	fact   Action
	fkind  string
	ms     []match // scratch
	// pemOpen: the string just walked opened a private key block it did not close (a key given
	// as an array of lines); the array walking it treats the next lines as the key.
	pemOpen bool
	// For the person-name rule (names.go): key is the member the value being walked is under
	// (elem: as an element of its array), subj that an object there is a person subject's
	// record, nameRule that the forced action is that rule's (a value shaped like an
	// identifier is left to the detectors).
	key            string
	elem           bool
	subj, nameRule bool
}

var walkerPool = sync.Pool{New: func() any { return &walker{path: make([]byte, 0, 64), hits: make([]hit, 0, 16)} }}

func getWalker(r *Redactor, in []byte, path []byte) *walker {
	w := walkerPool.Get().(*walker)
	*w = walker{Scanner: jsontok.Scanner{In: in}, r: r, path: append(w.path[:0], path...), hits: w.hits[:0], ms: w.ms[:0]}
	return w
}

func putWalker(w *walker) {
	if cap(w.hits) > 1<<12 || cap(w.path) > 1<<10 {
		return
	}
	w.r, w.In, w.out, w.red = nil, nil, nil, nil
	walkerPool.Put(w)
}

// run walks the whole input: one value, surrounded by white space only.
func (w *walker) run(depth int) error {
	w.SkipSpace()
	if err := w.value(depth); err != nil {
		return err
	}
	return w.End()
}

// result returns the rewritten input, or the input itself when nothing changed.
func (w *walker) result() []byte {
	if w.out == nil {
		return w.In
	}
	return append(w.out, w.In[w.copied:]...)
}

// cut copies the input up to start into out; the caller appends a replacement and calls resume.
func (w *walker) cut(start int) {
	if w.out == nil {
		w.out = make([]byte, 0, len(w.In)+64)
	}
	w.out = append(w.out, w.In[w.copied:start]...)
}

func (w *walker) resume(end int) { w.copied = end }

// splice replaces in[start:end] with s as a JSON string.
func (w *walker) splice(start, end int, s string) {
	w.cut(start)
	w.out = event.AppendString(w.out, s)
	w.resume(end)
}

func (w *walker) note(kind, action string) {
	if w.skip == 0 {
		w.red = append(w.red, Redaction{Path: string(w.path), Kind: kind, Action: action})
	}
}

func (w *walker) value(depth int) error {
	if depth > maxDepth {
		return fmt.Errorf("nesting deeper than %d", maxDepth)
	}
	start, k := w.Pos, w.Kind()
	var s string
	var err error
	switch k {
	case jsontok.Object:
		return w.object(depth)
	case jsontok.Array:
		return w.array(depth)
	case jsontok.Bool, jsontok.Null:
		_, err := w.Literal() // true, false and null carry no value to hide
		return err
	case jsontok.String:
		s, err = text(w.String(nil))
	case jsontok.Number:
		s, err = text(w.Number())
	default:
		return w.Unexpected()
	}
	// A string or a number: nothing is done inside a dropped value, under a key rule its action
	// applies, else the detectors run.
	if err != nil || w.skip > 0 {
		return err
	}
	switch end := w.Pos; {
	// A number is no person's name, and a value shaped like an identifier is left to the
	// detectors by the name rule.
	case w.forced && !(w.nameRule && (k == jsontok.Number || !nameLike(s))):
		w.replaceForced(start, end, s)
	case k == jsontok.String:
		w.stringValue(start, end, s, depth)
	default:
		w.number(start, end, s)
	}
	return nil
}

func (w *walker) number(start, end int, tok string) {
	// Card and phone numbers also arrive as JSON numbers, cards also as floats (4111111111111111.0
	// from Python, 4.111111111111111e15): those are judged by their integer digits.
	if end-start >= phoneDigits || w.r.always != 0 {
		if !w.scanSpan(start, end, tok) && end-start >= cardDigits {
			if d, ok := integerDigits(tok); ok {
				w.scanSpan(start, end, d)
			}
		}
	}
}

// integerDigits returns the digits of a JSON number with a fraction or an exponent whose value is
// a whole number of cardDigits to 19 digits: 4.111111111111111e15 -> 4111111111111111.
func integerDigits(tok string) (string, bool) {
	i := 0
	for i < len(tok) && isDigit(tok[i]) {
		i++
	}
	intPart := tok[:i]
	if i == len(tok) || i == 0 {
		return "", false // an integer (already judged) or negative
	}
	frac := ""
	if tok[i] == '.' {
		j := i + 1
		for j < len(tok) && isDigit(tok[j]) {
			j++
		}
		frac, i = tok[i+1:j], j
	}
	exp := 0
	if i < len(tok) { // e or E
		e, err := strconv.Atoi(strings.TrimPrefix(tok[i+1:], "+"))
		if err != nil || e < -19 || e > 19 {
			return "", false
		}
		exp = e
	}
	digits := strings.TrimLeft(intPart+frac, "0")
	point := len(digits) - len(frac) + exp // the digits before the decimal point
	switch {
	case point < cardDigits || point > 19:
		return "", false
	case point >= len(digits):
		return digits + strings.Repeat("0", point-len(digits)), true
	case strings.Trim(digits[point:], "0") == "":
		return digits[:point], true
	}
	return "", false
}

// scanSpan runs the detectors on s, the decoded text of in[start:end], and replaces the span with
// the sanitized text as a JSON string when they find something, which it reports.
func (w *walker) scanSpan(start, end int, s string) bool {
	w.hits = w.r.m.scan(s, w.hits[:0])
	if len(w.hits) == 0 && w.r.always == 0 {
		return false
	}
	w.ms = w.r.find(s, w.hits, 0, w.ms[:0])
	if len(w.ms) == 0 {
		return false
	}
	out := w.r.replace(s, w.ms, w.path, &w.red)
	w.splice(start, end, out)
	return true
}

func (w *walker) replaceForced(start, end int, text string) {
	if w.fact.Kind == "truncate" {
		// What truncation keeps is still text: detectors run on the whole value first, so
		// no value survives in the kept part, nor half of one at its end.
		w.hits = w.r.m.scan(text, w.hits[:0])
		if len(w.hits) > 0 || w.r.always != 0 {
			text = w.r.replace(text, w.r.find(text, w.hits, 0, w.ms[:0]), w.path, &w.red)
		}
	}
	w.splice(start, end, w.r.apply(w.fact, w.fkind, text))
	w.note(w.fkind, w.fact.String())
}

// text views a token's bytes as a string, without a copy: the walker never writes to its input.
// Strings are scanned with a nil buffer, so that a text with escapes is a copy of its own: texts
// outlive the next string (replacements, JSON inside a string).
func text(b []byte, err error) (string, error) {
	return unsafe.String(unsafe.SliceData(b), len(b)), err
}

func (w *walker) stringValue(start, end int, s string, depth int) {
	// JSON carried in a string: sanitized inside, re-encoded as a string.
	if len(s) > 1 && (s[0] == '{' || s[0] == '[' || s[0] <= ' ' && firstNonSpaceIsContainer(s)) {
		if w.innerJSON(start, end, s, depth) {
			return
		}
	}
	if len(s) >= w.r.minScan && w.scanSpan(start, end, s) {
		for _, m := range w.ms {
			if m.kind == "pem_private_key" && m.end == len(s) && !strings.Contains(s[m.start:], "-----END") {
				w.pemOpen = true
			}
		}
	}
}

// pemLine replaces a string that follows the BEGIN line of a private key in an array of lines,
// and reports whether the key goes on after it (no END line in it).
func (w *walker) pemLine() (bool, error) {
	start := w.Pos
	s, err := text(w.String(nil))
	if err != nil {
		return false, err
	}
	act := w.r.detAct["pem_private_key"]
	w.splice(start, w.Pos, w.r.apply(act, "pem_private_key", s))
	w.note("pem_private_key", act.String())
	return !strings.Contains(s, "-----END"), nil
}

func firstNonSpaceIsContainer(s string) bool {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case ' ', '\t', '\n', '\r':
			continue
		case '{', '[':
			return true
		}
		return false
	}
	return false
}

// innerJSON sanitizes s as JSON; it reports false when s is not JSON, leaving it to the
// detectors as text.
func (w *walker) innerJSON(start, end int, s string, depth int) bool {
	iw := getWalker(w.r, unsafe.Slice(unsafe.StringData(s), len(s)), w.path)
	defer putWalker(iw)
	iw.key, iw.elem, iw.subj = w.key, w.elem, w.subj // the carried JSON stands where the string does
	if iw.run(depth+1) != nil {
		return false
	}
	if iw.out != nil {
		w.red = append(w.red, iw.red...)
		res := iw.result()
		w.splice(start, end, unsafe.String(unsafe.SliceData(res), len(res)))
	}
	return true
}

func (w *walker) object(depth int) error {
	base := len(w.path)
	cutFrom := -1             // where a dropped member's cut starts: the end of the member before it
	pending, pendEnd := -1, 0 // dropped members at the start of the object, cut once the next kept one is seen
	var renamed []string      // member names replaced in this object, kept unique
	// What the person-name rule knows of this object; the rest is judged when a member asks.
	rec := record{start: w.Pos, parentKey: w.key, subject: w.subj && !w.elem,
		inName: len(w.key) == 4 && hasFold(w.key, 0, "name")}
	w.subj, w.elem = false, false // members are no elements; only a subject's envelopes set subj
	for more := w.Open(); more; more = w.Comma() {
		keyStart := w.Pos
		key, err := text(w.Name(nil))
		if err != nil {
			return err
		}
		keyEnd := w.Pos
		if err := w.Colon(); err != nil {
			return err
		}
		var rule *keyRule
		nameKind := ""
		// Inside a name the person-name rule forced, key rules still apply: a value it leaves to
		// the detectors (an identifier's shape) may be a password.
		if w.skip == 0 && (!w.forced || w.nameRule) {
			rule = w.r.keys.lookup(key)
			// The two-byte ending first: most members fail it, and no other test is made.
			if (nameEnding(key) || rec.inName) && rule == nil && !w.forced && w.r.names && (rec.inName || maybeNameTail(key)) {
				nameKind = w.personName(&rec, key)
			}
		}
		drop := rule != nil && rule.act.Kind == "drop"
		if !drop && pending >= 0 {
			w.cut(pending)
			w.resume(keyStart)
			pending = -1
		}
		// A value detected in the name itself (a map keyed by e-mail) is replaced, in the name
		// and in the path, which never carries a value.
		pathKey := key
		if w.skip == 0 && len(key) >= w.r.minScan {
			pathKey = w.sanitizeKey(keyStart, keyEnd, key, !drop, &renamed)
		}
		if len(w.path) > 0 {
			w.path = append(w.path, '.')
		}
		w.path = append(w.path, pathKey...)
		w.key = key
		if rec.subject {
			w.subj = envelopeKeys[normalizeKey(key)]
		}
		switch {
		case drop:
			w.skip++
			err := w.value(depth + 1)
			w.skip--
			if err != nil {
				return err
			}
			if cutFrom >= 0 {
				w.cut(cutFrom)
				w.resume(w.Pos)
				cutFrom = w.Pos
			} else {
				if pending < 0 {
					pending = keyStart
				}
				pendEnd = w.Pos
			}
			w.note(rule.name, "drop")
		case rule != nil && rule.act.Kind != "keep":
			saved, sa, sk, sn := w.forced, w.fact, w.fkind, w.nameRule
			w.forced, w.fact, w.fkind, w.nameRule = true, rule.act, rule.name, false
			err = w.value(depth + 1)
			w.forced, w.fact, w.fkind, w.nameRule = saved, sa, sk, sn
			if err != nil {
				return err
			}
			cutFrom = w.Pos
		case nameKind != "":
			w.forced, w.fact, w.fkind, w.nameRule = true, w.r.nameAct, nameKind, true
			err = w.value(depth + 1)
			w.forced, w.nameRule = false, false // the rule applies only outside forced values
			if err != nil {
				return err
			}
			cutFrom = w.Pos
		default:
			if err := w.value(depth + 1); err != nil {
				return err
			}
			cutFrom = w.Pos
		}
		w.path = w.path[:base]
	}
	if err := w.Close('}'); err != nil {
		return err
	}
	if pending >= 0 && w.skip == 0 {
		w.cut(pending)
		w.resume(pendEnd)
	}
	return nil
}

// sanitizeKey runs the detectors on a member name and returns the name to use in the path; when
// splice is set it also replaces the name in the output and records what it did. Replaced names
// are kept unique within their object (renamed lists those given so far): two SSNs, or one
// address spelled twice, would otherwise give one name twice, which I-JSON (and so the ledger's
// canonical form) refuses.
func (w *walker) sanitizeKey(start, end int, key string, splice bool, renamed *[]string) string {
	w.hits = w.r.m.scan(key, w.hits[:0])
	if len(w.hits) == 0 && w.r.always == 0 {
		return key
	}
	ms := w.r.find(key, w.hits, 0, nil)
	if len(ms) == 0 {
		return key
	}
	var red []Redaction
	out := w.r.replace(key, ms, w.path, &red)
	if splice {
		if slices.Contains(*renamed, out) {
			for n := 2; ; n++ {
				if u := out + "#" + strconv.Itoa(n); !slices.Contains(*renamed, u) {
					out = u
					break
				}
			}
		}
		*renamed = append(*renamed, out)
		w.red = append(w.red, red...) // at the parent's path: the member's own path would hold the name
		w.splice(start, end, out)
	}
	return out
}

func (w *walker) array(depth int) error {
	base := len(w.path)
	pem := false // the lines of a private key: after a BEGIN line, up to and with the END line
	key := w.key // the elements stand under the array's member (a person record's list is not it)
	w.subj = false
	for more, i := w.Open(), 0; more; more, i = w.Comma(), i+1 {
		w.key, w.elem = key, true
		w.path = append(strconv.AppendInt(append(w.path, '['), int64(i), 10), ']')
		var err error
		if pem && w.Kind() == jsontok.String {
			if pem, err = w.pemLine(); err != nil {
				return err
			}
		} else {
			w.pemOpen = false
			if err = w.value(depth + 1); err != nil {
				return err
			}
			pem, w.pemOpen = w.pemOpen && w.skip == 0 && !w.forced, false
		}
		w.path = w.path[:base]
	}
	w.elem = false // back among the members of an object
	return w.Close(']')
}
