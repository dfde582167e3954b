package cli

import (
	"testing"
	"time"
)

func TestParseTime(t *testing.T) {
	now := time.Date(2026, 3, 31, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		in        string
		endOfDay  bool
		want      time.Time
		wantError bool
	}{
		{"", false, time.Time{}, false},
		{"2026-01-02T15:04:05Z", false, time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC), false},
		{"2026-03-01", false, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), false},
		{"2026-03-01", true, time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC), false},
		{"24h", false, now.Add(-24 * time.Hour), false},
		{"30d", false, now.AddDate(0, 0, -30), false},
		{"0d", false, time.Time{}, true},
		{"-3d", false, time.Time{}, true},
		{"-1h", false, time.Time{}, true},
		{"soon", false, time.Time{}, true},
	} {
		got, err := parseTime(c.in, now, c.endOfDay)
		if (err != nil) != c.wantError || !got.Equal(c.want) {
			t.Errorf("parseTime(%q, %v) = %v, %v", c.in, c.endOfDay, got, err)
		}
	}
}
