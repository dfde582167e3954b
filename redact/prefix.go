package redact

import (
	"math"
	"math/bits"
	"strings"
)

// Lenient detectors for the prefixes that vendors put on their secrets (sk-, AKIA, ghp_, ...).
// gitleaks' rules match a vendor's exact format; a value that starts like a key but is off that
// format (no T3BlbkFJ marker, a character outside AWS's base32, a length or a trailing
// character the rule does not expect) passes them, yet it is still a secret to the person who
// pasted it. These run ahead of the exact rules, on the same keyword prefilter (scan.go); when an
// exact rule matches the same value, its id names the kind (find), otherwise the kind is
// secret_prefix.
//
// A prefix is taken only where a token starts (not inside task-list, mask-image, disk-usage),
// case as issued (SK- is not sk-), followed by a body of the vendor's alphabet within a length
// range, ending where the token ends, with the mix of characters a random key has (sk-learn,
// CSS classes, kebab-case words, UUIDs and placeholders fail it) and entropy above 3 bits.
type prefixRule struct {
	prefix   string // as the vendor issues it, case-sensitive
	extra    string // bytes the body may hold besides ASCII letters and digits
	min, max int    // body length in bytes
	mix      mix
	// relaxes are the gitleaks rules of the same format: the prefix runs only with them, so
	// secrets: none and a rule's exclusion turn off its lenient form too.
	relaxes []string
}

// mix is the character mix a body must have.
type mix uint8

const (
	// mixBase62: capitals, small letters and digits (a random base62 key of 20+ characters
	// lacks one of them with a probability below 1e-4).
	mixBase62 mix = iota
	// mixBase62OrHex: mixBase62, or exactly 32 lower-case hex digits (DeepSeek's sk- keys).
	mixBase62OrHex
	// mixUpperDigit: AWS key ids: capitals for at least half, and a digit or a small letter (all
	// capitals is a word, or base32 that the exact rule judges).
	mixUpperDigit
	// mixCase: capitals and small letters (Hugging Face tokens are letters only).
	mixCase
	// mixTwo: two of capitals, small letters, digits.
	mixTwo
	// mixHex: lower-case hex with letters and digits.
	mixHex
)

// prefixRules are the well-known prefixes: LLM providers' keys first (they are what agents
// handle), then cloud, VCS, chat and package registries. At most 64 (keyword.pfx).
var prefixRules = []prefixRule{
	{prefix: "sk-", extra: "-_", min: 20, max: 256, mix: mixBase62OrHex, relaxes: []string{"openai-api-key", "anthropic-api-key", "anthropic-admin-api-key"}}, // OpenAI (sk-proj-, sk-svcacct-), Anthropic (sk-ant-), DeepSeek, ...
	{prefix: "gsk_", min: 40, max: 64, mix: mixBase62},                                             // Groq
	{prefix: "xai-", min: 60, max: 100, mix: mixBase62},                                            // xAI
	{prefix: "pplx-", min: 40, max: 64, mix: mixBase62, relaxes: []string{"perplexity-api-key"}},   // Perplexity
	{prefix: "r8_", min: 30, max: 48, mix: mixBase62},                                              // Replicate
	{prefix: "hf_", min: 30, max: 40, mix: mixCase, relaxes: []string{"huggingface-access-token"}}, // Hugging Face
	{prefix: "AKIA", min: 16, max: 16, mix: mixUpperDigit, relaxes: []string{"aws-access-token"}},  // AWS long-term key id
	{prefix: "ASIA", min: 16, max: 16, mix: mixUpperDigit, relaxes: []string{"aws-access-token"}},  // AWS temporary key id
	{prefix: "AIza", extra: "-_", min: 30, max: 40, mix: mixTwo, relaxes: []string{"gcp-api-key"}}, // Google API key
	{prefix: "ghp_", min: 24, max: 64, mix: mixBase62, relaxes: []string{"github-pat"}},            // GitHub
	{prefix: "gho_", min: 24, max: 64, mix: mixBase62, relaxes: []string{"github-oauth"}},
	{prefix: "ghu_", min: 24, max: 64, mix: mixBase62, relaxes: []string{"github-app-token"}},
	{prefix: "ghs_", min: 24, max: 64, mix: mixBase62, relaxes: []string{"github-app-token"}},
	{prefix: "ghr_", min: 24, max: 64, mix: mixBase62, relaxes: []string{"github-refresh-token"}},
	{prefix: "github_pat_", extra: "_", min: 40, max: 128, mix: mixBase62, relaxes: []string{"github-fine-grained-pat"}},
	{prefix: "glpat-", extra: "-_", min: 16, max: 64, mix: mixTwo, relaxes: []string{"gitlab-pat"}},                  // GitLab
	{prefix: "xoxa-", extra: "-", min: 20, max: 200, mix: mixTwo, relaxes: []string{"slack-legacy-workspace-token"}}, // Slack
	{prefix: "xoxb-", extra: "-", min: 20, max: 200, mix: mixTwo, relaxes: []string{"slack-bot-token"}},
	{prefix: "xoxp-", extra: "-", min: 20, max: 200, mix: mixTwo, relaxes: []string{"slack-user-token"}},
	{prefix: "xoxr-", extra: "-", min: 20, max: 200, mix: mixTwo, relaxes: []string{"slack-legacy-workspace-token"}},
	{prefix: "xapp-", extra: "-", min: 20, max: 200, mix: mixTwo, relaxes: []string{"slack-app-token"}},
	{prefix: "sk_live_", min: 16, max: 128, mix: mixBase62, relaxes: []string{"stripe-access-token"}}, // Stripe
	{prefix: "sk_test_", min: 16, max: 128, mix: mixBase62, relaxes: []string{"stripe-access-token"}},
	{prefix: "rk_live_", min: 16, max: 128, mix: mixBase62, relaxes: []string{"stripe-access-token"}},
	{prefix: "rk_test_", min: 16, max: 128, mix: mixBase62, relaxes: []string{"stripe-access-token"}},
	{prefix: "npm_", min: 30, max: 40, mix: mixBase62, relaxes: []string{"npm-access-token"}},              // npm
	{prefix: "pypi-", extra: "-_", min: 50, max: 300, mix: mixTwo, relaxes: []string{"pypi-upload-token"}}, // PyPI
	{prefix: "dop_v1_", min: 60, max: 70, mix: mixHex, relaxes: []string{"digitalocean-pat"}},              // DigitalOcean
	{prefix: "shpat_", min: 30, max: 40, mix: mixHex, relaxes: []string{"shopify-access-token"}},           // Shopify
	{prefix: "shpss_", min: 30, max: 40, mix: mixHex, relaxes: []string{"shopify-shared-secret"}},
}

// secretPrefixKind is the kind of a near miss that no exact rule names.
const secretPrefixKind = "secret_prefix"

// findPrefixes appends the values that start with a well-known prefix at a keyword hit (hits at
// pos-base in s).
func (r *Redactor) findPrefixes(ms []match, s string, hits []hit, base int) []match {
	act := r.detAct[secretPrefixKind]
	for _, h := range hits {
		if h.bits&tPrefix == 0 {
			continue
		}
		kw := &r.m.kwInfo[h.state]
		a := int(h.pos) + 1 - base - len(kw.text)
		if a < 0 {
			continue
		}
		for set := kw.pfx; set != 0; set &= set - 1 {
			if b, ok := prefixRules[bits.TrailingZeros64(set)].match(s, a); ok {
				ms = append(ms, match{a, b, secretPrefixKind, act})
				break
			}
		}
	}
	return ms
}

// match reports where the value starting at s[a] with this prefix ends, if it is one. It reads
// at most max+1 bytes; a prefix inside a body fails the start test at once, so a text costs
// linear time.
func (p *prefixRule) match(s string, a int) (int, bool) {
	if !strings.HasPrefix(s[a:], p.prefix) || a > 0 && (wordBefore(s, a) || s[a-1] == '-' || s[a-1] == '.') {
		return 0, false
	}
	i := a + len(p.prefix)
	var upper, lower, digit, hexLetters, seps, run, x int
	j := i
	for ; j < len(s) && j-i <= p.max; j++ {
		switch c := s[j]; {
		case c >= 'A' && c <= 'Z':
			upper++
			if c == 'X' {
				x++
			}
		case c >= 'a' && c <= 'z':
			lower++
			if c <= 'f' {
				hexLetters++
			} else if c == 'x' {
				x++
			}
		case c >= '0' && c <= '9':
			digit++
		case strings.IndexByte(p.extra, c) >= 0:
			seps++
		default:
			goto end
		}
		if j > i && s[j] == s[j-1] {
			run++
		} else if run < 4 {
			run = 0
		}
	}
end:
	n := j - i
	if n < p.min || n > p.max || !prefixEnds(s, j) {
		return 0, false
	}
	hex := upper == 0 && lower > 0 && digit > 0 && hexLetters == lower && lower+digit == n
	switch p.mix {
	case mixBase62:
		if upper == 0 || lower == 0 || digit == 0 {
			return 0, false
		}
	case mixBase62OrHex:
		if (upper == 0 || lower == 0 || digit == 0) && !(hex && n == 32) {
			return 0, false
		}
	case mixUpperDigit:
		if digit+lower == 0 || 2*upper < n {
			return 0, false
		}
	case mixCase:
		if upper == 0 || lower == 0 {
			return 0, false
		}
	case mixTwo:
		if b2i(upper > 0)+b2i(lower > 0)+b2i(digit > 0) < 2 {
			return 0, false
		}
	case mixHex:
		if !hex {
			return 0, false
		}
	}
	body := s[i:j]
	// Cheapest first: a run of five equal characters (about 1e-5 in a random 150-character key)
	// is a documentation's stand-in (sk-xxxxx..., 00000), as is "example" (AKIA...EXAMPLE).
	if run >= 4 || x > 0 && hasExample(body) || seps > 0 && wordy(body) || entropy(body) <= 3 {
		return 0, false
	}
	return j, true
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// prefixEnds reports whether a token ends at s[j]: no word character follows, nor a '-', '.',
// '/', '+' or '=' that leads on to one (base64 data runs on over '+' and '/').
func prefixEnds(s string, j int) bool {
	if j >= len(s) {
		return true
	}
	if wordAfter(s, j) {
		return false
	}
	switch s[j] {
	case '-', '.', '/', '+', '=':
		return !wordAfter(s, j+1)
	}
	return true
}

// hasExample reports whether b holds "example" in any case.
func hasExample(b string) bool {
	for i := 1; i+6 <= len(b); i++ {
		if b[i]|0x20 == 'x' && hasFold(b, i-1, "example") {
			return true
		}
	}
	return false
}

// entropy is shannon(b) without a logarithm per character: H = log2 n - Σ c·log2 c / n, with
// c·log2 c from a table (bodies are at most maxPrefixBody bytes).
func entropy(b string) float64 {
	n := len(b)
	if n > maxPrefixBody {
		return shannon(b)
	}
	var counts [128]uint16
	for i := 0; i < n; i++ {
		counts[b[i]&0x7f]++ // bodies are ASCII
	}
	sum := 0.0
	for i := 0; i < n; i++ {
		if c := &counts[b[i]&0x7f]; *c > 0 {
			sum += cLog2c[*c]
			*c = 0
		}
	}
	return (cLog2c[n] - sum) / float64(n)
}

// maxPrefixBody is the longest body a prefix rule allows (pypi-).
const maxPrefixBody = 300

// cLog2c[c] = c·log2(c).
var cLog2c = func() (t [maxPrefixBody + 1]float64) {
	for c := 2; c <= maxPrefixBody; c++ {
		t[c] = float64(c) * math.Log2(float64(c))
	}
	return
}()

// wordy reports whether a body with separators is mostly words: its lower-case letter-only
// segments of three or more letters make half of it (test-token-for-local-dev-2024).
func wordy(b string) bool {
	words, seg, alpha := 0, 0, true
	for i := 0; i <= len(b); i++ {
		if i == len(b) || b[i] == '-' || b[i] == '_' {
			if alpha && seg >= 3 {
				words += seg
			}
			seg, alpha = 0, true
			continue
		}
		seg++
		if c := b[i]; c < 'a' || c > 'z' {
			alpha = false
		}
	}
	return 2*words >= len(b)
}
