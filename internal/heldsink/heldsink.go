// Package heldsink is a test sink for the doors: a QueueSink (as the root package's recorder
// takes) that holds the events Hold picks in Enqueue until Release is called, so a test can tell
// whether an answer reached its client while its recording was still pending.
package heldsink

import (
	"context"
	"sync"

	"github.com/agentaudit/agentaudit/event"
)

// Sink holds each event Hold picks (every event when Hold is nil) until Release, and keeps
// every event it was handed.
type Sink struct {
	Hold func(*event.Event) bool

	release chan struct{}
	once    sync.Once
	mu      sync.Mutex
	got     []*event.Event
}

// New returns a sink holding the events hold picks (nil: all of them).
func New(hold func(*event.Event) bool) *Sink {
	return &Sink{Hold: hold, release: make(chan struct{})}
}

// Release lets every held and later event through; calling it again does nothing.
func (s *Sink) Release() { s.once.Do(func() { close(s.release) }) }

// Events returns the events recorded so far, in the order they were let through.
func (s *Sink) Events() []*event.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*event.Event(nil), s.got...)
}

func (s *Sink) Enqueue(ctx context.Context, ev *event.Event, committed func(error)) error {
	if s.Hold == nil || s.Hold(ev) {
		<-s.release
	}
	s.mu.Lock()
	s.got = append(s.got, ev)
	s.mu.Unlock()
	committed(nil)
	return nil
}

func (s *Sink) AppendBatch(ctx context.Context, evs []*event.Event) ([]error, error) {
	panic("heldsink: a QueueSink is handed each event by Enqueue")
}

func (s *Sink) Flush(context.Context) error { return nil }
func (s *Sink) Close() error                { return nil }
