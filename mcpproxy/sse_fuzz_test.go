package mcpproxy

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"testing"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/event"
)

type discardSink struct{}

func (discardSink) AppendBatch(ctx context.Context, evs []*event.Event) ([]error, error) {
	return make([]error, len(evs)), nil
}
func (discardSink) Close() error { return nil }

// FuzzSSEObserver: whatever an MCP server streams as SSE, the client reads the same bytes, and
// reading the events to record them never panics.
func FuzzSSEObserver(f *testing.F) {
	for _, s := range []string{
		"event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[],\"isError\":true}}\n\n",
		"data: {\"jsonrpc\":\"2.0\",\ndata: \"id\":2}\n\n", "data:\r\n\r\n", ": comment\n\ndata: [1,2]\n\n", "data: \xff\n\n",
	} {
		f.Add([]byte(s))
	}
	rec, _ := agentaudit.New(discardSink{})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, err := New(Config{Recorder: rec, MaxMessageBytes: 64})
		if err != nil {
			t.Fatal(err)
		}
		rc := io.NopCloser(bytes.NewReader(in))
		// A small buffer, so that long lines take the pass-through path too.
		s := &sseObserver{rc: rc, p: p, br: bufio.NewReaderSize(rc, 16)}
		out, err := io.ReadAll(s)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("changed the stream: %q -> %q", in, out)
		}
	})
}
