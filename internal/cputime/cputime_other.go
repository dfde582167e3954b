//go:build !unix

package cputime

import "time"

// Process is not measured here: 0, and the benchmarks then report no CPU per event.
func Process() time.Duration { return 0 }
