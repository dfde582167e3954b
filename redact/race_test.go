//go:build race

package redact

// raceEnabled: the race detector slows code unevenly, so timing tests skip.
const raceEnabled = true
