// Package export writes logged events in the formats auditors use, streaming in constant memory:
//
//   - FHIR R4 AuditEvent resources in a Bundle of type collection, following the IHE Basic Audit
//     Log Patterns (BALP) profiles;
//   - OCSF 1.8.0 API Activity records (class 6003) with the ai_operation profile, one per line;
//   - JSON Lines of the canonical event with its seq;
//   - CSV with one column per Event field, safe to open in a spreadsheet.
//
// FHIR and OCSF carry who, what, when, why and how it ended, never payloads (arguments,
// results, messages, output text): an audit event is metadata, and a payload needs the ledger's
// access control, not a SIEM's. JSON Lines and CSV carry every field as stored (already
// sanitized). README.md in this directory holds the mapping tables and the reasons for each
// code; TestFHIRSchema validates every exported resource against the official FHIR R4 JSON schema.
package export

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/query"
)

// Record is one logged event with its position (seq) in the log. It is the query package's
// record, so query.Each feeds a Writer's Write directly.
type Record = query.Record

// Format names an export format.
type Format string

// The formats.
const (
	FHIR  Format = "fhir"
	OCSF  Format = "ocsf"
	JSONL Format = "jsonl"
	CSV   Format = "csv"
)

// Formats lists the formats NewWriter accepts.
func Formats() []Format { return []Format{FHIR, OCSF, JSONL, CSV} }

// Defaults for Options.
const (
	DefaultProduct   = "agentaudit"
	DefaultVendor    = "agentaudit"
	DefaultVersion   = "0.1.0"
	DefaultLogOrigin = "agentaudit.local/log"
)

// Options name the system in the exported records. Empty fields take the defaults above.
type Options struct {
	// Product, Vendor and Version name the software: OCSF metadata.product, FHIR source.site.
	Product, Vendor, Version string
	// LogOrigin is the log's checkpoint origin line: the FHIR source.observer and OCSF
	// metadata.log_name, so a record names the log whose proofs cover it.
	LogOrigin string
	// BundleTime is the FHIR Bundle's timestamp; the time NewWriter is called when zero.
	BundleTime time.Time
	// Reviewed, when set, holds the ids of the break-glass accesses that have a review event;
	// the FHIR export marks the others "break-glass not reviewed" in outcomeDesc.
	Reviewed map[string]bool
}

func (o *Options) defaults() {
	if o.Product == "" {
		o.Product = DefaultProduct
	}
	if o.Vendor == "" {
		o.Vendor = DefaultVendor
	}
	if o.Version == "" {
		o.Version = DefaultVersion
	}
	if o.LogOrigin == "" {
		o.LogOrigin = DefaultLogOrigin
	}
}

// Writer writes records one at a time, in constant memory; Close writes any trailer (the FHIR
// Bundle's closing brackets) and flushes, and must be called even when no record was written.
// A Writer is not safe for concurrent use.
type Writer interface {
	Write(Record) error
	Close() error
}

// NewWriter returns a streaming writer of format f to w. An unknown format is an error that
// names it and lists the valid ones.
func NewWriter(w io.Writer, f Format, opts Options) (Writer, error) {
	opts.defaults()
	if opts.BundleTime.IsZero() {
		opts.BundleTime = time.Now()
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	switch f {
	case FHIR:
		return &fhirWriter{w: bw, enc: newEncoder(bw), opts: opts}, nil
	case OCSF:
		return &ocsfWriter{w: bw, enc: newEncoder(bw), opts: opts}, nil
	case JSONL:
		return &jsonlWriter{w: bw}, nil
	case CSV:
		return newCSVWriter(bw), nil
	}
	var names []string
	for _, f := range Formats() {
		names = append(names, string(f))
	}
	return nil, fmt.Errorf("unknown export format %q (valid: %s)", f, strings.Join(names, ", "))
}

// jsonlWriter writes {"seq":N,"event":{canonical event}} per line.
type jsonlWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (j *jsonlWriter) Write(r Record) error {
	var err error
	j.buf = strconv.AppendInt(append(j.buf[:0], `{"seq":`...), r.Seq, 10)
	j.buf = append(j.buf, `,"event":`...)
	if j.buf, err = r.Event.AppendCanonical(j.buf); err != nil {
		return fmt.Errorf("export: seq %d: %w", r.Seq, err)
	}
	j.buf = append(j.buf, '}', '\n')
	_, err = j.w.Write(j.buf)
	return err
}

func (j *jsonlWriter) Close() error { return j.w.Flush() }

// ocsfWriter writes one OCSF record per line.
type ocsfWriter struct {
	w    *bufio.Writer
	enc  *json.Encoder
	opts Options
}

func (o *ocsfWriter) Write(r Record) error {
	if err := o.enc.Encode(OCSFAPIActivity(r, o.opts)); err != nil {
		return fmt.Errorf("export: seq %d: %w", r.Seq, err)
	}
	return nil
}

func (o *ocsfWriter) Close() error { return o.w.Flush() }

// newEncoder returns a JSON encoder that leaves <, > and & as they are: no consumer of these
// formats is an HTML page. Encode marshals the whole value before it writes, and ends it with a
// newline.
func newEncoder(w io.Writer) *json.Encoder {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	return enc
}

// fhirWriter streams a Bundle: the header, `"entry":[` before the first entry, one entry per
// line, the trailer at Close. A Bundle with no record has no entry element at all (FHIR JSON
// allows no empty arrays).
type fhirWriter struct {
	w       *bufio.Writer
	enc     *json.Encoder
	opts    Options
	n       int
	started bool
}

func (f *fhirWriter) header() error {
	if f.started {
		return nil
	}
	f.started = true
	_, err := fmt.Fprintf(f.w, `{"resourceType":"Bundle","type":"collection","timestamp":%q`, fhirTime(f.opts.BundleTime))
	return err
}

func (f *fhirWriter) Write(r Record) error {
	if err := f.header(); err != nil {
		return err
	}
	// bufio's errors are sticky: a failed separator write shows in Encode's write.
	if f.n == 0 {
		f.w.WriteString(`,"entry":[` + "\n")
	} else {
		f.w.WriteByte(',')
	}
	f.n++
	ae := FHIRAuditEvent(r, f.opts)
	if err := f.enc.Encode(bundleEntry{FullURL: "urn:uuid:" + ae.ID, Resource: ae}); err != nil {
		return fmt.Errorf("export: seq %d: %w", r.Seq, err)
	}
	return nil
}

func (f *fhirWriter) Close() error {
	if err := f.header(); err != nil {
		return err
	}
	end := "}\n"
	if f.n > 0 {
		end = "]}\n"
	}
	if _, err := f.w.WriteString(end); err != nil {
		return err
	}
	return f.w.Flush()
}

type bundleEntry struct {
	FullURL  string      `json:"fullUrl"`
	Resource *AuditEvent `json:"resource"`
}
