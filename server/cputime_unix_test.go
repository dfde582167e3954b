//go:build unix

package server_test

import (
	"syscall"
	"time"
)

// processCPU is the CPU time (user and system) this process has used: benchmarks report it per
// event, a figure that a machine shared with other work disturbs far less than a rate.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
