package server_test

import (
	"math"
	"os"
	"regexp"
	"strconv"
	"testing"
)

// TestConsoleContrast keeps the console's text colors at WCAG AA (4.5:1) against the backgrounds
// they are drawn on, reading the colors from style.css.
func TestConsoleContrast(t *testing.T) {
	css, err := os.ReadFile("console/style.css")
	if err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{}
	for _, m := range regexp.MustCompile(`--([a-z]+): (#[0-9a-f]{6})`).FindAllStringSubmatch(string(css), -1) {
		vars[m[1]] = m[2]
	}
	color := func(s string) string {
		if c, ok := vars[s]; ok {
			return c
		}
		return s
	}
	pairs := [][2]string{{"fg", "bg"}, {"muted", "bg"}, {"muted", "soft"}, {"accent", "bg"}, {"accent", "soft"}, {"#ffffff", "accent"},
		{"bad", "bg"}, {"good", "bg"}, {"bad", "#fbe1df"}, {"warn", "#fff2cc"}, {"warn", "#fde8d0"}, {"fg", "#dbe7fd"}, {"fg", "#e8eaed"}}
	for _, p := range pairs {
		if r := contrast(color(p[0]), color(p[1])); r < 4.5 {
			t.Errorf("%s on %s: contrast %.1f:1, want at least 4.5:1", p[0], p[1], r)
		}
	}
}

func contrast(a, b string) float64 {
	lum := func(h string) float64 {
		var c [3]float64
		for i := range c {
			v, _ := strconv.ParseUint(h[1+2*i:3+2*i], 16, 8)
			x := float64(v) / 255
			if x <= 0.03928 {
				c[i] = x / 12.92
			} else {
				c[i] = math.Pow((x+0.055)/1.055, 2.4)
			}
		}
		return 0.2126*c[0] + 0.7152*c[1] + 0.0722*c[2]
	}
	l1, l2 := lum(a), lum(b)
	return (math.Max(l1, l2) + 0.05) / (math.Min(l1, l2) + 0.05)
}
