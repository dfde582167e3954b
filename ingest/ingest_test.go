package ingest_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/agentaudit/agentaudit/datadir"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ingest"
	"github.com/agentaudit/agentaudit/ledger"
)

func openLedger(t *testing.T) *datadir.Writer {
	t.Helper()
	d := datadir.Dir{Path: filepath.Join(t.TempDir(), "data")}
	if _, err := d.Init(context.Background(), ""); err != nil {
		t.Fatal(err)
	}
	w, err := d.OpenWriter(context.Background(), ledger.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// TestAppendAnswersInInputOrder: decoding errors stay at their item, events a door decoded
// itself pass through, the rest is committed as one batch with consecutive seqs, and defaults
// (id, time) are filled the same for every item.
func TestAppendAnswersInInputOrder(t *testing.T) {
	w := openLedger(t)
	doorErr := errors.New("span without a name")
	items := []ingest.Item{
		{Raw: []byte(`{"kind":"custom"}`)},
		{Raw: []byte(`{"kind":`)},
		{Err: doorErr},
		{Event: &event.Event{Kind: event.KindReasoning, Decision: "d"}},
		{Raw: []byte(`{"kind":"tool_call"}`)}, // decodes, then fails validation in the ledger
		{Raw: []byte(`{"id":"x","kind":"custom"}`)},
	}
	res, err := ingest.Append(context.Background(), w.AppendBatch, items)
	if err != nil {
		t.Fatal(err)
	}
	var fe *event.FieldError
	switch {
	case res[0].Err != nil || res[3].Err != nil || res[5].Err != nil:
		t.Fatalf("stored items failed: %v %v %v", res[0].Err, res[3].Err, res[5].Err)
	case !errors.Is(res[1].Err, event.ErrInvalid):
		t.Errorf("malformed: %v", res[1].Err)
	case res[2].Err != doorErr:
		t.Errorf("door error: %v", res[2].Err)
	case !errors.As(res[4].Err, &fe) || fe.Field != "tool_name":
		t.Errorf("validation: %v", res[4].Err)
	case res[3].Seq != res[0].Seq+1 || res[5].Seq != res[3].Seq+1 || res[5].ID != "x":
		t.Errorf("seqs %d %d %d", res[0].Seq, res[3].Seq, res[5].Seq)
	}
	if items[3].Event.Time.IsZero() || items[3].Event.ID == "" {
		t.Error("defaults not filled")
	}
}

// TestLinesNumbersAndLimits: blank lines are skipped but counted, a long line becomes an item
// with its error and is not kept, batches are cut at the given size.
func TestLinesNumbersAndLimits(t *testing.T) {
	in := "{\"a\":1}\n\n" + strings.Repeat("x", 100) + "\n{\"b\":2}\n{\"c\":3}"
	var got [][]int
	var items []ingest.Item
	err := ingest.Lines(strings.NewReader(in), 50, 2, func(b []ingest.Item, lines []int) error {
		got = append(got, append([]int(nil), lines...))
		items = append(items, b...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got[0]) != 2 || got[0][0] != 1 || got[0][1] != 3 || got[1][0] != 4 || got[1][1] != 5 {
		t.Fatalf("batches and line numbers: %v", got)
	}
	var tl *ingest.LineTooLongError
	if !errors.As(items[1].Err, &tl) || tl.Max != 50 || items[1].Raw != nil || !errors.Is(items[1].Err, event.ErrInvalid) {
		t.Errorf("long line: %+v", items[1])
	}
	if string(items[3].Raw) != `{"c":3}` {
		t.Errorf("last line without newline: %q", items[3].Raw)
	}
}

func TestSplit(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		fail bool
	}{
		{`{"kind":"custom"}`, 1, false}, {` [ {"a":1}, {"b":2} ] `, 2, false}, {``, 0, false},
		{`[{"a":1},`, 0, true}, {`"x"`, 0, true}, {`42`, 0, true},
	} {
		items, err := ingest.Split([]byte(tc.in))
		if (err != nil) != tc.fail || len(items) != tc.n {
			t.Errorf("Split(%q) = %d items, %v", tc.in, len(items), err)
		}
		if err != nil && !errors.Is(err, ingest.ErrMalformed) {
			t.Errorf("Split(%q): %v is not ErrMalformed", tc.in, err)
		}
	}
}
