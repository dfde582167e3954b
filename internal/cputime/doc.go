// Package cputime reads the CPU time the process has used, for benchmarks that report it per
// event: a figure that a machine shared with other work disturbs far less than a rate.
package cputime
