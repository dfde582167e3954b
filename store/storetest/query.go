package storetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/store"
)

// The Find and ToolCalls tests compare the driver with a reference written from the contracts in
// package store, over events whose attributes vary independently and whose times neither follow
// seq order nor sit on whole milliseconds.

var queryBase = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// subMillis are the fractions the events' times carry beyond whole seconds: a rounding driver gets
// the last three wrong.
var subMillis = []time.Duration{0, 999_999, 500_000_001, 999_999_999}

const queryEventCount = 48

func queryEvents() []*event.Event {
	kinds := []event.Kind{event.KindToolCall, event.KindToolResult, event.KindLLMCall, event.KindError, event.KindCustom, event.KindAccess}
	outcomes := []event.Outcome{"", event.OutcomeSuccess, event.OutcomeError, event.OutcomeDenied}
	var evs []*event.Event
	for i := range queryEventCount {
		ev := &event.Event{
			ID:         fmt.Sprintf("q-%02d", i),
			Kind:       kinds[i%6],
			Time:       queryBase.Add(time.Duration((i*29)%queryEventCount)*time.Second + subMillis[(i+i/6)%4]), // 29 is prime to 48: a permutation
			RecordedAt: queryBase,
			AgentID:    fmt.Sprintf("a-%d", i%2),
			Outcome:    outcomes[(i/3)%4],
		}
		if i%7 != 0 {
			ev.SessionID = fmt.Sprintf("s-%d", i%3)
		}
		if i%5 != 0 {
			ev.UserID = fmt.Sprintf("u-%d", i%4)
		}
		if i%3 != 2 {
			ev.Model = fmt.Sprintf("m-%d", (i/2)%2)
		}
		if ev.Kind == event.KindToolCall || ev.Kind == event.KindToolResult {
			ev.ToolName = fmt.Sprintf("t-%d", (i/6)%3)
		}
		switch i % 5 {
		case 1, 3:
			ev.SubjectType, ev.SubjectID = "patient", fmt.Sprintf("P-%d", (i/5)%2)
		case 2:
			ev.SubjectType, ev.SubjectID = "customer", "P-1"
		}
		switch (i / 6) % 3 {
		case 1:
			ev.Success = event.Bool(true)
		case 2:
			ev.Success = event.Bool(false)
		}
		ev.DurationMS = []float64{0, 1.25, 7, 0.5}[(i/6+i/24)%4] // 0 is absent; 7 is stored as an integer
		evs = append(evs, ev)
	}
	return evs
}

// appendEvents appends evs as one batch (with arbitrary tree hashes: the store keeps what it is
// given) and returns the entries stored.
func appendEvents(t *testing.T, d Driver, evs []*event.Event) []store.Entry {
	t.Helper()
	b := store.Batch{FirstHash: 0}
	for i, ev := range evs {
		body, err := ev.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		b.Entries = append(b.Entries, store.Entry{Seq: int64(i), ID: ev.ID, Salt: bytes.Repeat([]byte{byte(i + 1)}, 16), Body: body})
	}
	for i := range tlog.StoredHashCount(int64(len(evs))) {
		b.Hashes = append(b.Hashes, hash(i))
	}
	if err := d.Append(context.Background(), b); err != nil {
		t.Fatal(err)
	}
	return b.Entries
}

// inRange is the contract of Filter.Since/Until and of ToolCalls' since/until: whole
// milliseconds, truncated.
func inRange(tm, since, until time.Time) bool {
	return (since.IsZero() || tm.UnixMilli() >= since.UnixMilli()) && (until.IsZero() || tm.UnixMilli() < until.UnixMilli())
}

func failed(ev *event.Event) bool {
	return ev.Outcome == event.OutcomeError || ev.Outcome == event.OutcomeDenied || (ev.Success != nil && !*ev.Success) || ev.Kind == event.KindError
}

// wantFind is the reference Find: the seqs matching f, in seq order.
func wantFind(evs []*event.Event, f store.Filter) []int64 {
	eq := func(want, got string) bool { return want == "" || want == got }
	var out []int64
	for i, ev := range evs {
		if int64(i) < f.FromSeq || (f.Limit > 0 && len(out) == f.Limit) {
			continue
		}
		if eq(f.SessionID, ev.SessionID) && eq(f.UserID, ev.UserID) && eq(f.AgentID, ev.AgentID) && eq(f.Model, ev.Model) &&
			eq(f.ToolName, ev.ToolName) && eq(f.SubjectType, ev.SubjectType) && eq(f.SubjectID, ev.SubjectID) &&
			eq(f.Kind, string(ev.Kind)) && eq(f.Outcome, string(ev.Outcome)) &&
			inRange(ev.Time, f.Since, f.Until) && (!f.Failures || failed(ev)) {
			out = append(out, int64(i))
		}
	}
	return out
}

// findCases are filters on one field at a time, on time, failures, position and count, and all
// of them at once.
func findCases(evs []*event.Event) []struct {
	name string
	f    store.Filter
} {
	type c = struct {
		name string
		f    store.Filter
	}
	ms := time.Millisecond
	cases := []c{
		{"everything", store.Filter{}},
		{"session", store.Filter{SessionID: "s-1"}},
		{"user", store.Filter{UserID: "u-2"}},
		{"agent", store.Filter{AgentID: "a-1"}},
		{"model", store.Filter{Model: "m-0"}},
		{"tool", store.Filter{ToolName: "t-1"}},
		{"subject type", store.Filter{SubjectType: "customer"}},
		{"subject id", store.Filter{SubjectID: "P-1"}},
		{"kind", store.Filter{Kind: string(event.KindToolResult)}},
		{"outcome", store.Filter{Outcome: string(event.OutcomeDenied)}},
		{"failures", store.Filter{Failures: true}},
	}
	// Bounds at, around and inside the millisecond of an event, for each fraction it can carry.
	for _, tm := range timesBySubMillis(evs) {
		frac := tm.Format(".000000000")
		floor := tm.Truncate(ms)
		for _, b := range []struct {
			name string
			at   time.Time
		}{{"its exact time", tm}, {"its millisecond", floor}, {"the next millisecond", floor.Add(ms)}, {"half a millisecond in", floor.Add(ms / 2)}} {
			cases = append(cases,
				c{"since " + b.name + " of an event at " + frac, store.Filter{Since: b.at}},
				c{"until " + b.name + " of an event at " + frac, store.Filter{Until: b.at}})
		}
		cases = append(cases, c{"one millisecond around an event at " + frac, store.Filter{Since: floor, Until: floor.Add(ms)}})
	}
	cases = append(cases, []c{
		{"since and until", store.Filter{Since: queryBase.Add(8 * time.Second), Until: queryBase.Add(13 * time.Second)}},
		{"from seq", store.Filter{FromSeq: 20}},
		{"from seq 1", store.Filter{FromSeq: 1}},
		{"limit", store.Filter{Limit: 5}},
		{"from seq and limit", store.Filter{FromSeq: 31, Limit: 4}},
		{"user and failures", store.Filter{UserID: "u-3", Failures: true}},
		{"subject in a time range", store.Filter{SubjectType: "patient", SubjectID: "P-0", Since: queryBase.Add(10 * time.Second), Until: queryBase.Add(40 * time.Second)}},
		{"tool, kind and limit", store.Filter{ToolName: "t-0", Kind: string(event.KindToolCall), Limit: 2}},
		{"session, user and from seq", store.Filter{SessionID: "s-2", UserID: "u-1", FromSeq: 10}},
	}...)
	for i, ev := range evs {
		if ev.SessionID != "" && ev.UserID != "" && ev.Model != "" && ev.ToolName != "" && ev.SubjectID != "" && ev.Outcome != "" && failed(ev) {
			cases = append(cases, c{fmt.Sprintf("every field of seq %d", i), store.Filter{
				SessionID: ev.SessionID, UserID: ev.UserID, AgentID: ev.AgentID, Model: ev.Model, ToolName: ev.ToolName,
				SubjectType: ev.SubjectType, SubjectID: ev.SubjectID, Kind: string(ev.Kind), Outcome: string(ev.Outcome),
				Since: ev.Time, Until: ev.Time.Add(ms), Failures: true, FromSeq: int64(i), Limit: 1}})
			break
		}
	}
	for _, f := range []func(*store.Filter){
		func(f *store.Filter) { f.SessionID = "nope" }, func(f *store.Filter) { f.UserID = "nope" },
		func(f *store.Filter) { f.AgentID = "nope" }, func(f *store.Filter) { f.Model = "nope" },
		func(f *store.Filter) { f.ToolName = "nope" }, func(f *store.Filter) { f.SubjectType = "nope" },
		func(f *store.Filter) { f.SubjectID = "nope" }, func(f *store.Filter) { f.Kind = "nope" },
		func(f *store.Filter) { f.Outcome = "nope" },
	} {
		var x store.Filter
		f(&x)
		cases = append(cases, c{fmt.Sprintf("no match %+v", x), x})
	}
	return cases
}

// timesBySubMillis returns the time of the last event of evs with each of subMillis (the first
// is at queryBase, which every event follows: no bound there tells a filter from none).
func timesBySubMillis(evs []*event.Event) []time.Time {
	var out []time.Time
	for _, sub := range subMillis {
		for _, ev := range slices.Backward(evs) {
			if time.Duration(ev.Time.Nanosecond())%time.Second == sub {
				out = append(out, ev.Time)
				break
			}
		}
	}
	return out
}

func testFind(t *testing.T, open func(t *testing.T) Driver) {
	ctx := context.Background()
	d := open(t)
	evs := queryEvents()
	stored := appendEvents(t, d, evs)
	find := func(t *testing.T, f store.Filter) []int64 {
		t.Helper()
		var seqs []int64
		err := d.Find(ctx, f, func(e store.Entry) error {
			if e.Seq < 0 || e.Seq >= int64(len(stored)) {
				return fmt.Errorf("seq %d was never appended", e.Seq)
			}
			if w := stored[e.Seq]; e.ID != w.ID || !bytes.Equal(e.Salt, w.Salt) || !bytes.Equal(e.Body, w.Body) {
				return fmt.Errorf("entry %d = %s %x %s, stored %s %x %s", e.Seq, e.ID, e.Salt, e.Body, w.ID, w.Salt, w.Body)
			}
			seqs = append(seqs, e.Seq)
			return nil
		})
		if err != nil {
			t.Fatalf("Find(%+v): %v", f, err)
		}
		return seqs
	}
	for _, tc := range findCases(evs) {
		t.Run(tc.name, func(t *testing.T) {
			want := wantFind(evs, tc.f)
			// The cases must tell a driver that ignores a filter from one that applies it.
			if tc.f != (store.Filter{}) && len(want) == len(evs) {
				t.Fatalf("fixture: %+v matches every event", tc.f)
			}
			if got := find(t, tc.f); !slices.Equal(got, want) {
				t.Errorf("Find(%+v) = seqs %v, want %v", tc.f, got, want)
			}
		})
	}
	t.Run("pages", func(t *testing.T) {
		f := store.Filter{AgentID: "a-0", Limit: 4}
		var all []int64
		for {
			page := find(t, f)
			all = append(all, page...)
			if len(page) < f.Limit {
				break
			}
			f.FromSeq = page[len(page)-1] + 1
		}
		if want := wantFind(evs, store.Filter{AgentID: "a-0"}); !slices.Equal(all, want) {
			t.Errorf("pages of 4 = %v, want %v", all, want)
		}
	})
	t.Run("callback error stops", func(t *testing.T) {
		stop := errors.New("stop")
		calls := 0
		err := d.Find(ctx, store.Filter{}, func(store.Entry) error { calls++; return stop })
		if !errors.Is(err, stop) || calls != 1 {
			t.Errorf("Find = %v after %d calls, want the callback's error after 1", err, calls)
		}
	})
}

func wantToolCalls(evs []*event.Event, since, until time.Time) []store.ToolCall {
	var out []store.ToolCall
	for _, ev := range evs {
		if ev.Kind != event.KindToolCall || !inRange(ev.Time, since, until) {
			continue
		}
		c := store.ToolCall{Tool: ev.ToolName, UserID: ev.UserID, DurationMS: ev.DurationMS, HasDuration: ev.DurationMS != 0, Success: -1}
		if ev.Success != nil {
			c.Success = 0
			if *ev.Success {
				c.Success = 1
			}
		}
		out = append(out, c)
	}
	return out
}

// sortCalls orders calls for comparison: ToolCalls promises no order.
func sortCalls(cs []store.ToolCall) []store.ToolCall {
	slices.SortFunc(cs, func(a, b store.ToolCall) int { return strings.Compare(fmt.Sprint(a), fmt.Sprint(b)) })
	return cs
}

func testToolCalls(t *testing.T, open func(t *testing.T) Driver) {
	ctx := context.Background()
	d := open(t)
	evs := queryEvents()
	appendEvents(t, d, evs)
	ms := time.Millisecond
	var calls []*event.Event
	for _, ev := range evs {
		if ev.Kind == event.KindToolCall {
			calls = append(calls, ev)
		}
	}
	tests := []struct {
		name         string
		since, until time.Time
	}{
		{"unbounded", time.Time{}, time.Time{}},
		{"a range", queryBase.Add(5 * time.Second), queryBase.Add(30 * time.Second)},
		{"nothing", queryBase.Add(time.Hour), time.Time{}},
	}
	for _, tm := range timesBySubMillis(calls) {
		frac, floor := tm.Format(".000000000"), tm.Truncate(ms)
		tests = append(tests, []struct {
			name         string
			since, until time.Time
		}{
			{"since the exact time of a call at " + frac, tm, time.Time{}},
			{"since the next millisecond of a call at " + frac, floor.Add(ms), time.Time{}},
			{"until the exact time of a call at " + frac, time.Time{}, tm},
			{"until the next millisecond of a call at " + frac, time.Time{}, floor.Add(ms)},
			{"the millisecond of a call at " + frac, floor, floor.Add(ms)},
		}...)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []store.ToolCall
			if err := d.ToolCalls(ctx, tt.since, tt.until, func(c store.ToolCall) error { got = append(got, c); return nil }); err != nil {
				t.Fatal(err)
			}
			want := wantToolCalls(evs, tt.since, tt.until)
			if tt.name == "unbounded" {
				// The fixture must hold every value kind the contract names.
				kinds := map[string]bool{}
				for _, c := range want {
					kinds[fmt.Sprint("success ", c.Success)] = true
					kinds[fmt.Sprint("duration ", c.HasDuration, " ", c.DurationMS == float64(int64(c.DurationMS)))] = true
					kinds[fmt.Sprint("user ", c.UserID != "")] = true
				}
				if len(kinds) != 3+3+2 {
					t.Fatalf("fixture: tool calls %+v lack a kind of value: %v", want, kinds)
				}
			}
			if g, w := sortCalls(got), sortCalls(want); !slices.Equal(g, w) {
				t.Errorf("ToolCalls(%v, %v) =\n%+v\nwant (in any order)\n%+v", tt.since, tt.until, g, w)
			}
		})
	}
	t.Run("strings interned", func(t *testing.T) {
		seen := map[string]*byte{}
		shared := 0
		err := d.ToolCalls(ctx, time.Time{}, time.Time{}, func(c store.ToolCall) error {
			for _, s := range []string{c.Tool, c.UserID} {
				if s == "" {
					continue
				}
				p := unsafe.StringData(s)
				if q, ok := seen[s]; !ok {
					seen[s] = p
				} else if q != p {
					return fmt.Errorf("%q comes in two copies: each row costs an allocation", s)
				} else {
					shared++
				}
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
		if shared == 0 {
			t.Fatal("fixture: no string repeats")
		}
	})
	t.Run("callback error stops", func(t *testing.T) {
		stop := errors.New("stop")
		n := 0
		err := d.ToolCalls(ctx, time.Time{}, time.Time{}, func(store.ToolCall) error { n++; return stop })
		if !errors.Is(err, stop) || n != 1 {
			t.Errorf("ToolCalls = %v after %d calls, want the callback's error after 1", err, n)
		}
	})
}
