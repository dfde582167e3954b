package redact

import (
	"encoding/json"
	"testing"
	"unicode/utf8"

	"github.com/agentaudit/agentaudit/internal/jsontok"
)

// unquote decodes the body of a JSON string as the walker reads strings.
func unquote(body []byte) (string, bool) {
	w := walker{Scanner: jsontok.Scanner{In: append(append([]byte{'"'}, body...), '"')}}
	s, err := text(w.String(nil))
	return s, err == nil && w.Pos == len(w.In)
}

// FuzzUnquote checks the walker's string decoding against encoding/json.
func FuzzUnquote(f *testing.F) {
	for _, s := range []string{`a\"b`, `\u00e9\n\t\/`, `\ud83d\ude00`, `\ud83d`, `\ud83dx`, `\udc00\ud83d\ude00`, `\u12`, `\x`, "a\x01", `\\\\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		if !utf8.ValidString(body) {
			return // invalid UTF-8 is kept as it is (as on the fast path); encoding/json replaces it
		}
		var want string
		werr := json.Unmarshal([]byte(`"`+body+`"`), &want)
		got, ok := unquote([]byte(body))
		if werr != nil {
			return // encoding/json refuses more (a bare quote); unquote sees bodies the walker cut at the quote
		}
		if !ok || got != want {
			t.Fatalf("unquote(%q) = %q, %v; encoding/json: %q", body, got, ok, want)
		}
	})
}
