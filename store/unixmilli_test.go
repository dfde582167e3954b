package store

import (
	"testing"
	"time"
)

// unixMilliCases: the canonical shapes the fast path reads, and near misses it must leave to
// time.Parse (which then accepts or refuses them itself).
var unixMilliCases = []string{
	"2026-12-03T15:04:05Z", "2026-12-03T15:04:05.1Z", "2026-12-03T15:04:05.12Z", "2026-12-03T15:04:05.123Z",
	"2026-12-03T15:04:05.123456789Z", "2026-12-03T15:04:05.1234567891Z", "1970-01-01T00:00:00Z",
	"1969-12-31T23:59:59.999Z", "0000-01-01T00:00:00Z", "0000-02-29T12:00:00Z", "0001-03-01T00:00:00Z",
	"9999-12-31T23:59:59.999999999Z", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "1900-02-29T00:00:00Z",
	"2000-02-29T00:00:00Z", "2026-04-31T00:00:00Z", "2026-13-01T00:00:00Z", "2026-00-01T00:00:00Z",
	"2026-12-00T00:00:00Z", "2026-12-03T24:00:00Z", "2026-12-03T23:60:00Z", "2026-12-03T23:59:60Z",
	"2026-12-03T15:04:05.Z", "2026-12-03T15:04:05,123Z", "2026-12-03T15:04:05.12aZ", "2026-12-03t15:04:05Z",
	"2026-12-03T15:04:05z", "2026-12-03T15:04:05+00:00", "2026-12-03T15:04:05.5+01:00", "2026-1-03T15:04:05Z",
	"+026-12-03T15:04:05Z", "2026-12-03T15:04:05", "", "Z", "2026-12-03 15:04:05Z",
}

func TestUnixMilliAgreesWithTimeParse(t *testing.T) {
	for _, in := range unixMilliCases {
		checkUnixMilli(t, in)
	}
}

// FuzzUnixMilli: the fast path and time.Parse agree on every input, value and error alike.
func FuzzUnixMilli(f *testing.F) {
	for _, in := range unixMilliCases {
		f.Add(in)
	}
	f.Fuzz(checkUnixMilli)
}

func checkUnixMilli(t *testing.T, in string) {
	got, err := unixMilli([]byte(in))
	tm, werr := time.Parse(time.RFC3339Nano, in)
	switch {
	case (err == nil) != (werr == nil):
		t.Errorf("%q: unixMilli error %v, time.Parse error %v", in, err, werr)
	case err == nil && got != tm.UnixMilli():
		t.Errorf("%q: unixMilli %d, time.Parse %d", in, got, tm.UnixMilli())
	}
}
