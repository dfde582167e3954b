package ingest_test

import (
	"bytes"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ingest"
)

// linesBodies are the JSON Lines bodies both splitters are held to: the repository's JSON Lines
// fixtures (the export goldens and the redaction corpus) and the edge cases of line ends and
// blank lines.
func linesBodies(t testing.TB) [][]byte {
	bodies := [][]byte{
		nil,
		[]byte("\n"),
		[]byte("\n\n  \t\n"),
		[]byte(`{"kind":"custom"}`),
		[]byte("{\"kind\":\"custom\"}\n"),
		[]byte("{\"kind\":\"custom\"}\r\n\r\n{\"kind\":\"reasoning\",\"decision\":\"d\"}\r\n"),
		[]byte("\n{\"kind\":\"custom\"}\n   \n{\"kind\":\n\u00a0\n\u0085\n{\"id\":\"x\",\"kind\":\"custom\"} \n"),
		[]byte("{\"kind\":\"custom\",\"bad\":\"\xff\"}\n{\"kind\":\"custom\",\"kind\":\"custom\"}\nnot json\n[1,2]\n"),
	}
	for _, pattern := range []string{"../export/testdata/golden/*.jsonl", "../redact/testdata/corpus/*.jsonl"} {
		files, err := filepath.Glob(pattern)
		if err != nil || len(files) == 0 {
			t.Fatalf("fixtures %s: %v (%d files)", pattern, err, len(files))
		}
		for _, f := range files {
			b, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			bodies = append(bodies, b)
		}
	}
	return bodies
}

// ingestMaxBatch is above the number of lines of every fixture (the server's default limit).
const ingestMaxBatch = 10000

// viaLines is the server's old path: Lines over the body, no line limit, one batch.
func viaLines(t testing.TB, data []byte) []ingest.Item {
	var items []ingest.Item
	err := ingest.Lines(bytes.NewReader(data), len(data), len(data)+1, func(batch []ingest.Item, _ []int) error {
		items = append(items, batch...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return items
}

// sameSplit fails unless SplitLines gives the items Lines gives, byte for byte, and they decode
// to the same events and the same errors; with a lower max, it gives the first max of them and
// still counts them all.
func sameSplit(t testing.TB, data []byte) {
	want := viaLines(t, data)
	for _, max := range []int{len(want) / 2, len(want) - 1} {
		if max < 0 {
			continue
		}
		got, n := ingest.SplitLines(data, max)
		if n != len(want) || len(got) != max || cap(got) > max {
			t.Fatalf("SplitLines(max %d): %d items (cap %d), counted %d; Lines: %d items", max, len(got), cap(got), n, len(want))
		}
		for i := range got {
			if !bytes.Equal(got[i].Raw, want[i].Raw) {
				t.Fatalf("SplitLines(max %d) item %d: %q, Lines: %q", max, i, got[i].Raw, want[i].Raw)
			}
		}
	}
	got, n := ingest.SplitLines(data, ingestMaxBatch)
	if len(got) != len(want) || n != len(want) {
		t.Fatalf("SplitLines: %d items, counted %d; Lines: %d, body %q", len(got), n, len(want), data)
	}
	for i := range got {
		if !bytes.Equal(got[i].Raw, want[i].Raw) || got[i].Err != nil || got[i].Event != nil {
			t.Fatalf("item %d: SplitLines %+v, Lines %+v", i, got[i], want[i])
		}
		if cap(got[i].Raw) != len(got[i].Raw) {
			t.Fatalf("item %d: Raw has room past its line (cap %d, len %d)", i, cap(got[i].Raw), len(got[i].Raw))
		}
		ge, gerr := event.Decode(got[i].Raw)
		we, werr := event.Decode(want[i].Raw)
		if !reflect.DeepEqual(ge, we) || (gerr == nil) != (werr == nil) || (gerr != nil && gerr.Error() != werr.Error()) {
			t.Fatalf("item %d decodes differently: %v %v / %v %v", i, ge, gerr, we, werr)
		}
		if gerr == nil {
			gb, _ := ge.Canonical()
			wb, _ := we.Canonical()
			if !bytes.Equal(gb, wb) {
				t.Fatalf("item %d: canonical bytes differ", i)
			}
		}
	}
}

// TestSplitLinesMatchesLines: the server's in-memory splitter gives exactly the items of the
// streaming one on every fixture, so the bodies stored and the errors answered do not change.
func TestSplitLinesMatchesLines(t *testing.T) {
	for _, b := range linesBodies(t) {
		sameSplit(t, b)
	}
}

func FuzzSplitLines(f *testing.F) {
	for _, b := range linesBodies(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, data []byte) { sameSplit(t, data) })
}
