package gcfloor

import (
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

var sink []byte

// churn allocates garbage until the tuner has seen collections after the live heap changed, or
// a deadline passes.
func churn(t *testing.T, tu *Tuner, done func(percent int) bool) int {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		for range 1000 {
			sink = make([]byte, 4<<10)
		}
		runtime.GC()
		time.Sleep(time.Millisecond) // the finalizer goroutine runs the adjustment
		if p := tu.Percent(); done(p) {
			return p
		}
	}
	t.Fatalf("GOGC stayed at %d", tu.Percent())
	return 0
}

// TestFloor: with a small live heap GOGC rises so a cycle starts near the floor; with a live heap
// past the floor it is back at its base; Stop restores it; GOGC=off is left alone.
func TestFloor(t *testing.T) {
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	const floor = 64 << 20
	live := make([]byte, 8<<20) // a live heap of about 8 MiB: GOGC about 700
	tu := Start(floor)
	defer tu.Stop()
	second := Start(floor) // one at a time: this one does nothing
	defer second.Stop()
	p := churn(t, tu, func(p int) bool { return p > 100 })
	if p < 500 || p > 800 {
		t.Errorf("GOGC %d with a live heap of about 8 MiB and a floor of 64 MiB, want about 700", p)
	}
	if got := debug.SetGCPercent(p); got != p {
		t.Errorf("the runtime's GOGC is %d, the tuner says %d", got, p)
	}
	runtime.KeepAlive(live)

	big := make([]byte, floor+floor/2) // live heap past the floor: the base applies
	for i := range big {
		big[i] = byte(i)
	}
	churn(t, tu, func(p int) bool { return p == 100 })
	runtime.KeepAlive(big)

	second.Stop() // does not restore anything: it never ran
	if got := debug.SetGCPercent(tu.Percent()); got != tu.Percent() {
		t.Errorf("stopping an idle tuner set GOGC %d", got)
	}
	tu.Stop()
	if got := debug.SetGCPercent(100); got != 100 || tu.Percent() != 100 {
		t.Errorf("after Stop GOGC is %d (tuner %d), want 100", got, tu.Percent())
	}

	debug.SetGCPercent(-1)
	off := Start(floor)
	defer off.Stop()
	runtime.GC()
	if got := debug.SetGCPercent(-1); got != -1 || off.Percent() != -1 {
		t.Errorf("GOGC=off became %d", got)
	}
}
