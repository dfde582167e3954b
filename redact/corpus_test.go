package redact

import (
	"bufio"
	"encoding/json"
	"os"
	"sort"
	"strings"
	"testing"
)

type sample struct {
	Kind   string          `json:"kind"`
	Text   string          `json:"text"`
	JSON   json.RawMessage `json:"json"`
	Secret string          `json:"secret"`
}

func readCorpus(t *testing.T, name string) []sample {
	f, err := os.Open("testdata/corpus/" + name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []sample
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var s sample
		if err := json.Unmarshal(sc.Bytes(), &s); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	return out
}

// TestCorpus measures precision and recall per kind over testdata/corpus: every positive's
// secret must be gone from the output (recall), and negatives must come back unchanged.
func TestCorpus(t *testing.T) {
	r := testRedactor(t)
	var pos, neg []sample
	for _, f := range []string{"positive.jsonl", "hard_positive.jsonl", "near_positive.jsonl", "person_positive.jsonl"} {
		pos = append(pos, readCorpus(t, f)...)
	}
	for _, f := range []string{"negative.jsonl", "hard_negative.jsonl", "near_negative.jsonl", "person_negative.jsonl"} {
		neg = append(neg, readCorpus(t, f)...)
	}
	if len(pos) < 150 || len(neg) < 150 {
		t.Fatalf("corpus has %d positives and %d negatives, want at least 150 each", len(pos), len(neg))
	}
	type score struct{ tp, fn, fp, tn int }
	scores := map[string]*score{}
	get := func(k string) *score {
		if scores[k] == nil {
			scores[k] = &score{}
		}
		return scores[k]
	}
	for _, s := range pos {
		var out string
		if s.JSON != nil {
			v, _, err := r.Value("arguments", s.JSON)
			if err != nil {
				t.Fatal(err)
			}
			out = string(v)
		} else {
			out, _ = r.String("text", s.Text)
		}
		if strings.Contains(out, s.Secret) || (s.JSON != nil && strings.Contains(out, jsonEscaped(s.Secret))) {
			get(s.Kind).fn++
			t.Logf("missed %s: %q%s -> %q", s.Kind, s.Text, s.JSON, out)
		} else {
			get(s.Kind).tp++
		}
	}
	for _, s := range neg {
		var out, in string
		var red []Redaction
		if s.JSON != nil {
			v, rd, err := r.Value("arguments", s.JSON)
			if err != nil {
				t.Fatal(err)
			}
			out, in, red = string(v), string(s.JSON), rd
		} else {
			out, red = r.String("text", s.Text)
			in = s.Text
		}
		if out != in {
			for _, x := range red {
				get(x.Kind).fp++
			}
			t.Logf("false positive on %s sample %q -> %q", s.Kind, in, out)
		} else {
			get(s.Kind).tn++
		}
	}
	kinds := make([]string, 0, len(scores))
	for k := range scores {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	for _, k := range kinds {
		s := scores[k]
		recall, precision := 1.0, 1.0
		if s.tp+s.fn > 0 {
			recall = float64(s.tp) / float64(s.tp+s.fn)
		}
		if s.tp+s.fp > 0 {
			precision = float64(s.tp) / float64(s.tp+s.fp)
		}
		t.Logf("%-22s recall %.3f  precision %.3f  (tp %d fn %d fp %d tn %d)", k, recall, precision, s.tp, s.fn, s.fp, s.tn)
		// Secrets must never pass; PII detectors may trade a little precision.
		if recall < 1 {
			t.Errorf("%s: recall %.3f, want 1 on the corpus", k, recall)
		}
		if precision < 0.95 {
			t.Errorf("%s: precision %.3f, want at least 0.95", k, precision)
		}
	}
}

func jsonEscaped(s string) string {
	b, _ := json.Marshal(s)
	return strings.Trim(string(b), `"`)
}
