package benchevent

import (
	"testing"
	"time"
)

func TestKiBSize(t *testing.T) {
	for _, i := range []int64{0, 1, 999_999, 10_000_000} {
		ev := KiB(i)
		ev.RecordedAt = time.Now()
		if err := ev.Validate(); err != nil {
			t.Fatalf("event %d does not validate: %v", i, err)
		}
		c, err := ev.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		if len(c) < 1000 || len(c) > 1100 {
			t.Fatalf("event %d is %d bytes, want about 1 KiB", i, len(c))
		}
	}
}
