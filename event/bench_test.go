package event

import "testing"

func BenchmarkCanonical(b *testing.B) {
	ev := fullEvent()
	c, _ := ev.Canonical()
	b.SetBytes(int64(len(c)))
	for b.Loop() {
		if _, err := ev.Canonical(); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	c, _ := fullEvent().Canonical()
	b.SetBytes(int64(len(c)))
	for b.Loop() {
		if _, err := Parse(c); err != nil {
			b.Fatal(err)
		}
	}
}
