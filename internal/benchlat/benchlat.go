// Package benchlat measures the latency a proxy adds the way issue 14 states its targets:
// "against the same server without the proxy, in one run". Calls are taken in pairs, one direct
// and one through the proxy, back to back, the order alternating from pair to pair, so both
// halves of a pair see the same moment of a shared machine: a burst of another process's work
// moves both, where two sequential runs would each catch different bursts (server-everything's
// own p99 moves by 3 ms between runs on a quiet machine).
//
// Report prints both sides' p50 and p99, their differences (the added latency), the median of the
// per-pair differences, and a bootstrap interval of the added p99: the pairs are resampled with
// replacement, so the interval carries what the shared noise does to both sides together.
package benchlat

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// Call makes one call and returns the latency it measured (the whole call, or its time to first
// byte).
type Call func(b *testing.B) time.Duration

// Resamples is the number of bootstrap resamples behind the interval of the added p99.
const Resamples = 1000

// Pairs holds the latencies of paired calls: direct[i] and proxied[i] were taken back to back.
type Pairs struct {
	Direct, Proxied []time.Duration
}

// Measure runs b.Loop, one direct and one proxied call per iteration, the proxied one first on
// odd iterations. settle, when not nil, runs between pairs with the timer stopped: the proxies'
// benchmarks flush the recorder there, so that each pair starts with no recording of the pair
// before still in flight (an agent's calls are spaced by the model's own time; back-to-back load
// is what cmd/agentaudit-load measures).
func Measure(b *testing.B, direct, proxied Call, settle func()) *Pairs {
	p := &Pairs{}
	i := 0
	for b.Loop() {
		if i%2 == 0 {
			d := direct(b)
			p.Add(d, proxied(b))
		} else {
			x := proxied(b)
			p.Add(direct(b), x)
		}
		i++
		if settle != nil {
			b.StopTimer()
			settle()
			b.StartTimer()
		}
	}
	return p
}

// Add records one pair.
func (p *Pairs) Add(direct, proxied time.Duration) {
	p.Direct = append(p.Direct, direct)
	p.Proxied = append(p.Proxied, proxied)
}

// Stats are the figures Report prints, in microseconds.
type Stats struct {
	DirectP50, DirectP99, P50, P99 float64
	AddedP50, AddedP99             float64
	// PairP50 is the median of proxied[i]-direct[i].
	PairP50 float64
	// AddedP99Lo and AddedP99Hi bound 90% of the bootstrap's added p99s (the 5th and 95th
	// percentiles over Resamples resamples of the pairs).
	AddedP99Lo, AddedP99Hi float64
}

// Stats computes the figures; the bootstrap uses a fixed seed, so the same pairs give the same
// interval.
func (p *Pairs) Stats() Stats {
	n := len(p.Direct)
	if n == 0 {
		return Stats{}
	}
	d, x := sorted(p.Direct), sorted(p.Proxied)
	s := Stats{DirectP50: us(pct(d, 50)), DirectP99: us(pct(d, 99)), P50: us(pct(x, 50)), P99: us(pct(x, 99))}
	s.AddedP50, s.AddedP99 = s.P50-s.DirectP50, s.P99-s.DirectP99
	diff := make([]time.Duration, n)
	for i := range diff {
		diff[i] = p.Proxied[i] - p.Direct[i]
	}
	s.PairP50 = us(pct(sorted(diff), 50))
	rng := rand.New(rand.NewPCG(14, 99))
	added := make([]float64, Resamples)
	rd, rx := make([]time.Duration, n), make([]time.Duration, n)
	for r := range added {
		for i := range n {
			k := rng.IntN(n)
			rd[i], rx[i] = p.Direct[k], p.Proxied[k]
		}
		slices.Sort(rd)
		slices.Sort(rx)
		added[r] = us(pct(rx, 99) - pct(rd, 99))
	}
	slices.Sort(added)
	s.AddedP99Lo, s.AddedP99Hi = added[Resamples*5/100], added[Resamples*95/100]
	return s
}

// Report prints the Stats as custom metrics of b (µs): direct-p50, direct-p99, p50, p99 (through
// the proxy), added-p50, added-p99, pair-p50 and added-p99-lo/-hi.
func (p *Pairs) Report(b *testing.B) {
	if len(p.Direct) == 0 {
		return
	}
	s := p.Stats()
	for _, m := range []struct {
		v    float64
		name string
	}{{s.DirectP50, "direct-p50-µs"}, {s.DirectP99, "direct-p99-µs"}, {s.P50, "p50-µs"}, {s.P99, "p99-µs"},
		{s.AddedP50, "added-p50-µs"}, {s.AddedP99, "added-p99-µs"}, {s.PairP50, "pair-p50-µs"},
		{s.AddedP99Lo, "added-p99-lo-µs"}, {s.AddedP99Hi, "added-p99-hi-µs"}} {
		b.ReportMetric(m.v, m.name)
	}
}

func sorted(ds []time.Duration) []time.Duration {
	c := slices.Clone(ds)
	slices.Sort(c)
	return c
}

// pct is the q-th percentile of sorted ds, indexed as the repository's other latency benchmarks
// index it (len*q/100).
func pct(ds []time.Duration, q int) time.Duration { return ds[len(ds)*q/100] }

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
