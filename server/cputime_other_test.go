//go:build !unix

package server_test

import "time"

// processCPU is not measured here: the benchmarks then report no CPU per event.
func processCPU() time.Duration { return 0 }
