package event

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// ErrInvalid is wrapped by every error about a malformed or invalid event, so callers can tell
// bad input (answer 400, skip the line) from a failure of the system.
var ErrInvalid = errors.New("invalid event")

// FieldError names the field that broke a rule.
type FieldError struct {
	Field string // JSON name, dotted for nested fields
	Rule  string
}

func (e *FieldError) Error() string { return fmt.Sprintf("field %q: %s", e.Field, e.Rule) }
func (e *FieldError) Unwrap() error { return ErrInvalid }

// Limits on single fields. The whole event's size is limited by the ledger.
const (
	MaxIDLen     = 256  // ids, names, roles, models
	MaxShortText = 4096 // reasons, user agents, error types
)

// Decode reads one JSON event strictly: the input must be one valid I-JSON object (valid UTF-8, no
// duplicate names: encoding/json would silently keep the last of two user_id members, or replace
// invalid UTF-8, either of which could smuggle content past a reviewer), and every member must be
// a known field of the right type. It checks no rule of the model: a door decodes, and the ledger
// completes (id, time), sanitizes and validates every event alike, whichever door it came by.
// Errors wrap ErrInvalid and name the field or byte offset.
func Decode(data []byte) (*Event, error) { return decode(data) }

// Parse is Decode followed by Validate: for events that must already be complete, such as the
// one inside a proof bundle.
func Parse(data []byte) (*Event, error) {
	ev, err := decode(data)
	if err != nil {
		return nil, err
	}
	if err := ev.Validate(); err != nil {
		return nil, err
	}
	return ev, nil
}

// ParseStored decodes an event's canonical bytes as the ledger stored them. It does not validate:
// what was committed must always read back, even after a rule of the model changes.
func ParseStored(canonical []byte) (*Event, error) { return decode(canonical) }

// Normalize fills what a client may leave out: a UUIDv7 id and the time (now, UTC), and puts
// times in UTC. It is called before Validate on every way in.
func (e *Event) Normalize(now time.Time) error {
	if e.ID == "" {
		id, err := uuid.NewV7()
		if err != nil {
			return fmt.Errorf("event id: %w", err)
		}
		e.ID = id.String()
	}
	if e.Time.IsZero() {
		e.Time = now
	}
	e.Time = e.Time.UTC()
	e.RecordedAt = e.RecordedAt.UTC()
	e.RetainUntil = e.RetainUntil.UTC()
	return nil
}

// Validate checks every rule of the event model and returns the first broken one as a
// *FieldError (which wraps ErrInvalid). Malformed JSON in the JSON-valued fields (arguments,
// result, messages, metadata) is reported by Canonical, also as a *FieldError. The total size is
// the ledger's to check.
func (e *Event) Validate() error {
	if !slices.Contains(Kinds, e.Kind) {
		if e.Kind == "" {
			return &FieldError{"kind", "is required"}
		}
		return &FieldError{"kind", fmt.Sprintf("unknown kind %q", e.Kind)}
	}
	for i := range Fields {
		f := &Fields[i]
		if err := f.check(e); err != nil {
			return err
		}
	}
	if e.Time.IsZero() {
		return &FieldError{"time", "is required"}
	}
	if y := e.Time.Year(); y < 1970 || y > 9999 {
		return &FieldError{"time", "must be between 1970 and 9999"}
	}
	if y := e.RecordedAt.Year(); !e.RecordedAt.IsZero() && (y < 1970 || y > 9999) {
		return &FieldError{"recorded_at", "must be between 1970 and 9999"}
	}
	if y := e.RetainUntil.Year(); !e.RetainUntil.IsZero() && (y < 1970 || y > 9999) {
		return &FieldError{"retain_until", "must be between 1970 and 9999"}
	}
	if e.Kind.System() && len(e.Record) == 0 {
		return &FieldError{"record", "is required for kind " + string(e.Kind)}
	}
	for i, r := range e.Redactions {
		if r.Path == "" || r.Kind == "" || r.Action == "" {
			return &FieldError{fmt.Sprintf("redactions[%d]", i), "needs path, kind and action"}
		}
	}
	switch e.Kind {
	case KindToolCall, KindToolResult:
		if e.ToolName == "" {
			return &FieldError{"tool_name", "is required for kind " + string(e.Kind)}
		}
	case KindApprovalDecision:
		if e.ApprovalStatus == "" {
			return &FieldError{"approval_status", "is required for kind approval_decision"}
		}
	case KindAccess:
		if e.SubjectID == "" {
			return &FieldError{"subject_id", "is required for kind access"}
		}
	}
	if e.BreakGlassReason != "" && !e.BreakGlass {
		return &FieldError{"break_glass_reason", "is only meaningful with break_glass: true"}
	}
	if e.BreakGlass && strings.TrimSpace(e.BreakGlassReason) == "" {
		return &FieldError{"break_glass_reason", "is required with break_glass: true (why the emergency access)"}
	}
	return nil
}

// CheckClient refuses what only agentaudit itself may write: the system kinds (purge, legal_hold,
// hold_release, alert, review) and the record field. Every door calls it (through the ledger's
// Submit), so a client cannot forge a purge that would excuse an erased body, or an alert.
func (e *Event) CheckClient() error {
	if e.Kind.System() {
		return &FieldError{"kind", fmt.Sprintf("kind %q is written by agentaudit itself, not by clients", e.Kind)}
	}
	if len(e.Record) > 0 {
		return &FieldError{"record", "is written by agentaudit itself, not by clients"}
	}
	return nil
}

// check applies the field's rules from the table: string lengths, characters and enum values,
// digests' format, numbers' ranges, objects. Time and cross-field rules are Validate's.
func (f *Field) check(e *Event) error {
	switch f.Type {
	case TypeString:
		switch v := *f.str(e); {
		case v == "":
			return nil
		case f.Class == ClassEnum:
			if !slices.Contains(f.Values, v) {
				noun := f.Name[strings.LastIndexByte(f.Name, '_')+1:]
				return &FieldError{f.Name, fmt.Sprintf("unknown %s %q; one of %s", noun, v, strings.Join(f.Values, ", "))}
			}
		case f.Class == ClassDigest:
			if !isLowerHex(v, 64) {
				return &FieldError{f.Name, "must be a SHA-256 as 64 lowercase hex digits"}
			}
		default:
			return checkText(f.Name, v, f.MaxLen, f.Multiline)
		}
	case TypeInt:
		p := f.ptr(e).(*int64)
		if *p < 0 {
			return &FieldError{f.Name, "must not be negative"}
		}
		if *p > 1<<53 {
			return &FieldError{f.Name, "must be at most 2^53"}
		}
	case TypeFloat:
		p := f.ptr(e).(*float64)
		if *p < 0 || math.IsNaN(*p) || math.IsInf(*p, 0) {
			return &FieldError{f.Name, "must be a finite number of milliseconds, not negative"}
		}
	case TypeJSON:
		// The JSON itself is checked by Canonical (and, for parsed input, by Parse), which must
		// run anyway; parsing it here too would double the ingest cost.
		if m := bytes.TrimSpace(*f.raw(e)); f.Object && len(m) > 0 && m[0] != '{' {
			return &FieldError{f.Name, "must be a JSON object"}
		}
	}
	return nil
}

func checkText(field, v string, max int, multiline bool) error {
	if max > 0 && len(v) > max {
		return &FieldError{field, fmt.Sprintf("longer than %d bytes", max)}
	}
	if !utf8.ValidString(v) {
		return &FieldError{field, "is not valid UTF-8"}
	}
	if !multiline {
		for i := 0; i < len(v); i++ {
			if v[i] < 0x20 || v[i] == 0x7f {
				return &FieldError{field, "must not contain control characters"}
			}
		}
	}
	return nil
}

func isLowerHex(s string, n int) bool {
	if len(s) != n {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
