// Package gcfloor lets a server's heap grow to a floor before the garbage collector runs. With
// GOGC's default of 100 a collection starts whenever the heap has doubled its live part; a server
// whose live heap is a few MiB and that allocates tens of KiB per request (parsing, encoding,
// database rows) then collects ten or more times a second under load, and each cycle costs the
// same fixed work however little it frees. Start raises GOGC while the live heap is small, so a
// cycle starts near the floor instead, and gives it back as the live heap grows past it: memory
// use is the floor at least, and never more than GOGC alone would allow once the live heap is
// larger. It is the "heap floor" that GOGC and GOMEMLIMIT cannot express (a memory limit only
// ever makes collections more frequent).
package gcfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"sync/atomic"
)

// MaxPercent bounds the GOGC that Start sets, so an almost empty heap does not wait for a
// thousand times itself.
const MaxPercent = 2000

// Tuner adjusts GOGC after each collection; Stop restores the GOGC it found.
type Tuner struct {
	floor, base uint64
	stopped     atomic.Bool
	mu          sync.Mutex
	percent     int // the GOGC last set
	samples     []metrics.Sample
}

// active is set while a Tuner runs: GOGC is the process's, so one tuner at a time (several
// servers in one test process would otherwise take each other's settings for the base).
var active atomic.Bool

// Start raises GOGC so that the heap may grow to floor bytes between collections while its live
// part is small, never setting it below the GOGC in force at the start (100 by default, or the
// GOGC environment variable), and returns at once; the first adjustment follows the next
// collection. While another Tuner runs, or under GOGC=off, the Tuner it returns does nothing.
func Start(floor uint64) *Tuner {
	base := debug.SetGCPercent(100)
	debug.SetGCPercent(base)
	t := &Tuner{floor: floor, base: uint64(max(base, 0)), percent: base,
		samples: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	if base < 0 || !active.CompareAndSwap(false, true) {
		t.stopped.Store(true) // never adjusts, and Stop restores nothing
		return t
	}
	t.arm()
	return t
}

// Percent returns the GOGC the tuner set last.
func (t *Tuner) Percent() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.percent
}

// Stop ends the adjustments and restores the GOGC in force at Start.
func (t *Tuner) Stop() {
	if t.stopped.Swap(true) {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	debug.SetGCPercent(int(t.base))
	t.percent = int(t.base)
	active.Store(false)
}

// sentinel is garbage from the moment it is made: its finalizer runs after the next collection.
// The pointer keeps it out of the tiny allocator, whose blocks are freed together.
type sentinel struct{ t *Tuner }

func (t *Tuner) arm() {
	runtime.SetFinalizer(&sentinel{t}, func(s *sentinel) {
		if !s.t.stopped.Load() {
			s.t.adjust()
			s.t.arm()
		}
	})
}

// adjust sets GOGC for the live heap the last collection left: the goal (live × (1+GOGC/100)) at
// the floor, within [base, MaxPercent].
func (t *Tuner) adjust() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped.Load() {
		return
	}
	metrics.Read(t.samples)
	live := t.samples[0].Value.Uint64()
	p := t.base
	if live > 0 && t.floor*100/live > 100+t.base {
		p = min(t.floor*100/live-100, MaxPercent)
	}
	if int(p) != t.percent {
		debug.SetGCPercent(int(p))
		t.percent = int(p)
	}
}
