//go:build race

package export_test

// The race detector slows the streaming test about tenfold; it runs fewer records under it.
const raceEnabled = true
