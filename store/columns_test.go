package store_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/store"
)

// columnsOfEvent is what the query columns of ev must be, from the decoded event: the reference
// ColumnsOf, which reads the bytes, is held to.
func columnsOfEvent(ev *event.Event) store.Columns {
	c := store.Columns{
		SessionID: ev.SessionID, Kind: string(ev.Kind), UserID: ev.UserID, AgentID: ev.AgentID, Model: ev.Model,
		ToolName: ev.ToolName, SubjectType: ev.SubjectType, SubjectID: ev.SubjectID, Outcome: string(ev.Outcome),
		RetentionClass: ev.RetentionClass, Success: -1,
	}
	if !ev.Time.IsZero() {
		c.TimeMS, c.HasTime = ev.Time.UnixMilli(), true
	}
	if !ev.RetainUntil.IsZero() {
		c.RetainUntilMS, c.HasRetain = ev.RetainUntil.UnixMilli(), true
	}
	if ev.DurationMS != 0 {
		c.DurationMS, c.HasDuration = ev.DurationMS, true
	}
	if ev.Success != nil {
		c.Success = 0
		if *ev.Success {
			c.Success = 1
		}
	}
	return c
}

var columnEvents = []*event.Event{
	{ID: "a", Kind: event.KindToolCall, Time: time.Date(2026, 3, 4, 5, 6, 7, 999_999_999, time.UTC), SessionID: "s-1",
		UserID: "usr_\u00e9\u2028", AgentID: `agent "quoted" \ back`, Model: "m", ToolName: "lookup",
		Arguments: json.RawMessage(`{"x":"a \"kind\":\"purge\" b","n":[1,2,{"k":"}"}],"e":"\\\\"}`),
		Result:    json.RawMessage(`[true,null,-1.5e3]`), DurationMS: 0.125, Success: event.Bool(false),
		SubjectType: "patient", SubjectID: "P-1", Outcome: event.OutcomeError, RetentionClass: "healthcare",
		RetainUntil: time.Date(2032, 3, 4, 5, 6, 7, 0, time.UTC)},
	{ID: "b", Kind: event.KindSessionStart, Time: time.Date(1969, 12, 31, 23, 59, 59, 500_000_000, time.UTC), Turn: 3},
	{ID: "c", Kind: event.KindLLMCall, Time: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Success: event.Bool(true), DurationMS: 38},
}

func TestColumnsOfAgreesWithTheEvent(t *testing.T) {
	for _, ev := range columnEvents {
		ev.RecordedAt = ev.Time
		body, err := ev.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		got, err := store.ColumnsOf(body)
		if err != nil {
			t.Fatalf("%s: %v", body, err)
		}
		if d := columnsOfEvent(ev).Diff(got); d != "" {
			t.Errorf("event %s: %s", ev.ID, d)
		}
	}
	if c, err := store.ColumnsOf([]byte("{}")); err != nil || (store.Columns{Success: -1}).Diff(c) != "" {
		t.Errorf("a stub's columns: %+v, %v", c, err)
	}
}

func TestColumnsOfRefuses(t *testing.T) {
	for _, in := range []string{``, `[]`, `"x"`, `{"session_id":1}`, `{"time":"yesterday"}`, `{"success":null}`,
		`{"duration_ms":"5"}`, `{"arguments":{"a":"b"}`, `{"arguments":"unterminated}`, `{"kind":"x",}`, `{"a":}`, `{"kind":"x"} x`} {
		if _, err := store.ColumnsOf([]byte(in)); err == nil {
			t.Errorf("ColumnsOf(%q) took it", in)
		}
	}
}

// FuzzColumnsOf: on any input ColumnsOf returns without panicking, and on a body that decodes as a
// stored event its columns are the event's: the ledger computes them from the bytes at ingest,
// and verification holds the stored columns to them.
func FuzzColumnsOf(f *testing.F) {
	for _, ev := range columnEvents {
		body, _ := ev.Canonical()
		f.Add(body)
	}
	f.Add([]byte(`{"kind":"tool_call","arguments":{"s":"\\\"}"},"time":"2026-01-01T00:00:00Z"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		got, err := store.ColumnsOf(body)
		if err != nil {
			return
		}
		ev, perr := event.ParseStored(body)
		if perr != nil || strings.ContainsRune(string(body), '\ufffd') {
			return
		}
		// Only canonical bodies are held to agreement: ColumnsOf reads the ledger's bytes.
		if canon, _ := ev.Canonical(); string(canon) != string(body) {
			return
		}
		if d := columnsOfEvent(ev).Diff(got); d != "" {
			t.Errorf("%s: %s", body, d)
		}
		var r store.ColumnReader
		for range 2 { // the second time from the reader's interned strings
			if c, err := r.Of(body); err != nil || got.Diff(c) != "" {
				t.Errorf("%s: ColumnReader.Of gives %+v, %v; ColumnsOf %+v", body, c, err, got)
			}
		}
	})
}
