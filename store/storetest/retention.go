package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/store"
)

// testRetention: the retention index answers due entries and per-class counts, system events
// are listed by kind, Erase blanks exactly the intact entries of its ranges and only for a stored
// purge event after them, and erased entries read back as purged and leave every filter.
func testRetention(t *testing.T, open func(t *testing.T) Driver) {
	ctx := context.Background()
	d := open(t)
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	b := Batch(0, 12)
	for i := range b.Entries {
		class, until := "general", base.AddDate(0, 0, i)
		if i%3 == 0 {
			class = "financial"
		}
		b.Entries[i].Body = fmt.Appendf(nil, `{"id":"id-%d","kind":"tool_call","retain_until":"%s","retention_class":"%s","session_id":"s-%d","time":"2026-01-01T00:00:00Z","tool_name":"t"}`,
			i, until.Format(time.RFC3339Nano), class, i%2)
	}
	b.Entries[10].Body = []byte(`{"id":"id-10","kind":"purge","record":{"reason":"retention"},"retain_until":"9999-12-31T23:59:59Z","retention_class":"system","time":"2026-01-01T00:00:00Z"}`)
	b.Entries[11].Body = []byte(`{"id":"id-11","kind":"legal_hold","record":{"scope":{}},"retain_until":"9999-12-31T23:59:59Z","retention_class":"system","time":"2026-01-01T00:00:00Z"}`)
	if err := d.Append(ctx, b); err != nil {
		t.Fatal(err)
	}
	at := base.AddDate(0, 0, 4) // due: seq 0..4
	var due []string
	if err := d.DueEntries(ctx, at, func(x store.Due) error {
		due = append(due, fmt.Sprintf("%d:%s:%s", x.Seq, x.Class, x.Until.Format("01-02")))
		return nil
	}); err != nil || strings.Join(due, " ") != "0:financial:01-01 1:general:01-02 2:general:01-03 3:financial:01-04 4:general:01-05" {
		t.Errorf("DueEntries = %v, %v", due, err)
	}
	counts, err := d.RetentionCounts(ctx, at)
	if err != nil || fmt.Sprint(counts) != fmt.Sprint([]store.ClassCount{
		{Class: "financial", Events: 4, NextUntil: base, Due: 2},
		{Class: "general", Events: 6, NextUntil: base.AddDate(0, 0, 1), Due: 3},
		{Class: "system", Events: 2, NextUntil: time.Date(9999, 12, 31, 23, 59, 59, 0, time.UTC), Due: 0},
	}) {
		t.Errorf("RetentionCounts = %+v, %v", counts, err)
	}
	var sys []int64
	if err := d.SystemEntries(ctx, "purge", func(e store.Entry) error { sys = append(sys, e.Seq); return nil }); err != nil || fmt.Sprint(sys) != "[10]" {
		t.Errorf("SystemEntries(purge) = %v, %v", sys, err)
	}
	// Erase is refused for an event that is not a purge, or not after what it erases.
	for _, by := range []int64{11, 9, 42} {
		if _, err := d.Erase(ctx, by, [][2]int64{{0, 1}}); !errors.Is(err, store.ErrNotPurgeable) {
			t.Errorf("Erase by seq %d: %v, want ErrNotPurgeable", by, err)
		}
	}
	if n, err := d.Erase(ctx, 10, [][2]int64{{0, 2}, {4, 4}}); err != nil || n != 4 {
		t.Fatalf("Erase = %d, %v", n, err)
	}
	if n, err := d.Erase(ctx, 10, [][2]int64{{0, 4}}); err != nil || n != 1 {
		t.Errorf("Erase again = %d, %v; want only seq 3 erased", n, err)
	}
	e, err := d.Entry(ctx, 2)
	if err != nil || !e.Purged() || e.PurgedBy != 10 || e.Body != nil || e.Salt != nil || e.ID != "id-2" {
		t.Errorf("erased entry = %+v, %v", e, err)
	}
	if e, err := d.EntryByID(ctx, "id-2"); err != nil || e.PurgedBy != 10 {
		t.Errorf("erased entry by id = %+v, %v", e, err)
	}
	var scanned, purged int
	if err := d.ScanEntries(ctx, 0, func(e store.Entry) error {
		scanned++
		if e.Purged() {
			purged++
		}
		return nil
	}); err != nil || scanned != 12 || purged != 5 {
		t.Errorf("ScanEntries: %d entries, %d purged, %v", scanned, purged, err)
	}
	for _, f := range []store.Filter{{}, {SessionID: "s-0"}, {ToolName: "t"}} {
		if err := d.Find(ctx, f, func(e store.Entry) error {
			if e.Purged() {
				return fmt.Errorf("Find(%+v) returned purged seq %d", f, e.Seq)
			}
			return nil
		}); err != nil {
			t.Error(err)
		}
	}
	if counts, _ := d.RetentionCounts(ctx, at); counts[0].Events != 2 || counts[1].Events != 3 {
		t.Errorf("RetentionCounts after erasing = %+v: purged entries still counted", counts)
	}
	if _, err := d.Reclaim(ctx); err != nil {
		t.Errorf("Reclaim: %v", err)
	}
}
