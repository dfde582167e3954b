package benchlat

import (
	"math/rand/v2"
	"testing"
	"time"
)

func TestStats(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	// noisy: the machine's noise, shared by both halves of a pair.
	noisy := func(i int) time.Duration {
		d := 200*time.Microsecond + time.Duration(rng.IntN(100))*time.Microsecond
		if i%200 == 0 {
			d += 5 * time.Millisecond // a burst of someone else's work, in 0.5% of pairs
		}
		return d
	}
	for _, tc := range []struct {
		name           string
		proxied        func(i int, direct time.Duration) time.Duration
		added, lo, hi  float64 // µs; lo and hi bound the interval from outside
		exactInterval  bool
		wantPairMedian float64
	}{
		{name: "same", proxied: func(_ int, d time.Duration) time.Duration { return d }, exactInterval: true},
		{name: "constant 100µs", proxied: func(_ int, d time.Duration) time.Duration { return d + 100*time.Microsecond },
			added: 100, lo: 100, hi: 100, exactInterval: true, wantPairMedian: 100},
		{name: "a 2 ms tail in 3% of calls", proxied: func(i int, d time.Duration) time.Duration {
			if i%33 == 1 {
				return d + 2*time.Millisecond
			}
			return d
		}, lo: 1500, hi: 2500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p Pairs
			for i := range 3000 {
				d := noisy(i)
				p.Add(d, tc.proxied(i, d))
			}
			s := p.Stats()
			if tc.exactInterval {
				if s.AddedP99 != tc.added || s.AddedP99Lo != tc.lo || s.AddedP99Hi != tc.hi || s.PairP50 != tc.wantPairMedian {
					t.Errorf("added p99 %v in [%v, %v], pair median %v; want %v in [%v, %v], %v", s.AddedP99, s.AddedP99Lo, s.AddedP99Hi,
						s.PairP50, tc.added, tc.lo, tc.hi, tc.wantPairMedian)
				}
				return
			}
			if s.AddedP99Lo < tc.lo || s.AddedP99Hi > tc.hi || s.AddedP99 < s.AddedP99Lo || s.AddedP99 > s.AddedP99Hi {
				t.Errorf("added p99 %v in [%v, %v]; want within [%v, %v], the interval holding the estimate", s.AddedP99, s.AddedP99Lo,
					s.AddedP99Hi, tc.lo, tc.hi)
			}
			if s.PairP50 != 0 {
				t.Errorf("pair median %v; want 0 (97%% of pairs are equal)", s.PairP50)
			}
		})
	}
}

func TestStatsEmpty(t *testing.T) {
	if s := (&Pairs{}).Stats(); s != (Stats{}) {
		t.Errorf("Stats of no pairs = %+v; want zero", s)
	}
}
