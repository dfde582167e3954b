// Package export writes logged events in the formats auditors use, streaming in constant memory:
// FHIR R4 AuditEvent (a Bundle of type collection, following IHE BALP), OCSF API Activity (class
// 6003, with the ai_operation profile), JSON Lines and CSV. Payloads (arguments, results,
// messages) stay out of FHIR and OCSF, which carry who, what, when, why and how it ended; JSON
// Lines and CSV carry every field as stored (already sanitized).
package export

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/query"
)

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
var Formats = []Format{FHIR, OCSF, JSONL, CSV}

// Defaults for Options.
const (
	DefaultProduct = "agentaudit"
	DefaultVendor  = "agentaudit"
	DefaultVersion = "0.1.0"
)

// Options name the system in the exported records.
type Options struct {
	Product, Vendor, Version string
	LogOrigin                string // the log's checkpoint origin: the FHIR source observer
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
		o.LogOrigin = "agentaudit.local/log"
	}
}

// Writer writes records one at a time; Close writes any trailer and flushes.
type Writer interface {
	Write(query.Record) error
	Close() error
}

// NewWriter returns a streaming writer of format f to w.
func NewWriter(w io.Writer, f Format, opts Options) (Writer, error) {
	opts.defaults()
	bw := bufio.NewWriterSize(w, 64<<10)
	switch f {
	case FHIR:
		return &fhirWriter{w: bw, opts: opts}, nil
	case OCSF:
		return &lineWriter{w: bw, enc: func(r query.Record) any { return OCSFAPIActivity(r, opts) }}, nil
	case JSONL:
		return &jsonlWriter{w: bw}, nil
	case CSV:
		return newCSVWriter(bw), nil
	}
	var names []string
	for _, f := range Formats {
		names = append(names, string(f))
	}
	return nil, fmt.Errorf("unknown export format %q (want %s)", f, strings.Join(names, ", "))
}

// jsonlWriter writes {"seq":N,"event":{canonical event}} per line.
type jsonlWriter struct {
	w   *bufio.Writer
	buf []byte
}

func (j *jsonlWriter) Write(r query.Record) error {
	var err error
	j.buf = strconv.AppendInt(append(j.buf[:0], `{"seq":`...), r.Seq, 10)
	j.buf = append(j.buf, `,"event":`...)
	if j.buf, err = r.Event.AppendCanonical(j.buf); err != nil {
		return err
	}
	_, err = j.w.Write(append(j.buf, '}', '\n'))
	return err
}

func (j *jsonlWriter) Close() error { return j.w.Flush() }

// lineWriter writes one JSON object per line.
type lineWriter struct {
	w   *bufio.Writer
	enc func(query.Record) any
}

func (l *lineWriter) Write(r query.Record) error {
	b, err := json.Marshal(l.enc(r))
	if err != nil {
		return err
	}
	b = append(b, '\n')
	_, err = l.w.Write(b)
	return err
}

func (l *lineWriter) Close() error { return l.w.Flush() }

// fhirWriter streams a Bundle: the header, one entry per record, the trailer at Close.
type fhirWriter struct {
	w     *bufio.Writer
	opts  Options
	n     int
	start bool
}

func (f *fhirWriter) header() error {
	if f.start {
		return nil
	}
	f.start = true
	_, err := fmt.Fprintf(f.w, `{"resourceType":"Bundle","type":"collection","timestamp":%q,"entry":[`, time.Now().UTC().Format(time.RFC3339))
	return err
}

func (f *fhirWriter) Write(r query.Record) error {
	if err := f.header(); err != nil {
		return err
	}
	b, err := json.Marshal(bundleEntry{FullURL: "urn:uuid:" + r.Event.ID, Resource: FHIRAuditEvent(r, f.opts)})
	if err != nil {
		return err
	}
	if f.n > 0 {
		f.w.WriteByte(',')
	}
	f.n++
	_, err = f.w.Write(b)
	return err
}

func (f *fhirWriter) Close() error {
	if err := f.header(); err != nil {
		return err
	}
	if _, err := f.w.WriteString("]}\n"); err != nil {
		return err
	}
	return f.w.Flush()
}

type bundleEntry struct {
	FullURL  string      `json:"fullUrl"`
	Resource *AuditEvent `json:"resource"`
}

// csvColumns are seq and every Event field, by JSON name, in declaration order.
var csvColumns = func() []string {
	cols := []string{"seq"}
	t := reflect.TypeFor[event.Event]()
	for i := 0; i < t.NumField(); i++ {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		cols = append(cols, name)
	}
	return cols
}()

type csvWriter struct {
	w   *bufio.Writer
	cw  *csv.Writer
	hdr bool
	row []string
}

func newCSVWriter(w *bufio.Writer) *csvWriter { return &csvWriter{w: w, cw: csv.NewWriter(w)} }

func (c *csvWriter) Write(r query.Record) error {
	if !c.hdr {
		c.hdr = true
		if err := c.cw.Write(csvColumns); err != nil {
			return err
		}
	}
	// The canonical JSON of the event, as a map, gives each column's value without a per-field
	// switch that could drift from the Event type.
	body, err := r.Event.Canonical()
	if err != nil {
		return err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(body, &m); err != nil {
		return err
	}
	c.row = append(c.row[:0], strconv.FormatInt(r.Seq, 10))
	for _, col := range csvColumns[1:] {
		c.row = append(c.row, query.SafeCell(cellText(m[col])))
	}
	return c.cw.Write(c.row)
}

// cellText is a JSON value as a CSV cell: strings bare, everything else as compact JSON.
func cellText(v json.RawMessage) string {
	if len(v) == 0 {
		return ""
	}
	if v[0] == '"' {
		var s string
		if json.Unmarshal(v, &s) == nil {
			return s
		}
	}
	return string(v)
}

func (c *csvWriter) Close() error {
	if !c.hdr {
		c.hdr = true
		c.cw.Write(csvColumns)
	}
	c.cw.Flush()
	if err := c.cw.Error(); err != nil {
		return err
	}
	return c.w.Flush()
}
