package redact

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/event"
)

// Near misses of well-known secret formats (fake values): the prefix is right, the rest is off
// the exact rule (no T3BlbkFJ marker, a character outside base32, a length the vendor does not
// issue, a separator where the rule wants a quote). The person who pasted one still pasted a
// secret.
var nearMisses = []string{
	"sk-proj-huG8GP38g4o5MNJAYKJ1UXXFWXLCpaNfhs0gCa05RFRunzqw", // no T3BlbkFJ marker
	"sk-7wZyVGOeUvfJIssDj4PTTKtb2TxxDBfz5LJF3hBGZW3M4Fz6",      // legacy 48, no marker
	"sk-ant-api04-H19dCqgn28s9Dp68GZN9Z3zLIbet6-UzH-7_3eLO6m4H5x29iI_Vmy0s5bla5kzFpfITtaO-rC8qLk1urN0XtzWbnX",
	"sk-f8fa81f40fb8e6b8c961d29f2afaab52", // 32 hex (DeepSeek-style)
	"AKIAEDWWB96UT4UH75KJ",                // 9 is outside base32
	"ASIAN3V5OEZCM1CD4M6B",                // 1 is outside base32
	"AKIAINIqLYR32FYTLWLQ",                // a lower-case letter
	"ghp_DFX0AsDluHEChHYHYr0g2noa9f4DPvAIY",
	"gho_122Ql9bw2kwJRKYInhNTrJWKUnKsKrQJigYqg9Bk",
	"github_pat_gRdWwUZlPOgGurL1es7ukq_qeaA355XqA9adgpbthgRJK72wuXDMOPTNc7zuMnM",
	"xoxb-761584645-dVTB4bsSvsU9XZ6htXAuL5bI9vmJdU",
	"glpat-hkNhhciHwMPPtbBLiw",
	"AIza1XWE1CqxdYGsDccJ91HOrlweHROhbF8hC",
	"npm_RG3j7V53zTx8YoJ1rv3mxwDODJZE5YRLtm",
	"pypi-u0t-aT0ewkMVHrmcBNfYWunksXQHNfyuLLKTrXyb92TvdwOsudoaViVMBtFqnP-njWHMpS",
	"hf_EFhJHpwRDLwfeXfZFXtqWQokuBGJvuUQ",
	"rk_live_iBrv1hur13CqjIOrovjJXhrsKDOzzb",
	"gsk_JTvRAvgRX7F6R2O81QWIHnBwPvd7zUlarJSqivLPNA1XZE24Ev",
	"xai-acWoOhQ28rubXnYDGrNOxfJSmIXagjvo8DnMRkTtfKATHRLJigbr8AclJUGo86EQQvvwuM",
}

// TestSecretPrefixNearMisses: each near miss is gone from free text and from a tool's result
// (JSON, as a value and inside a sentence), through Sanitize.
func TestSecretPrefixNearMisses(t *testing.T) {
	r := testRedactor(t)
	for _, secret := range nearMisses {
		t.Run(secret[:8], func(t *testing.T) {
			for _, text := range []string{secret, "here is my key " + secret + ", please debug", "KEY=" + secret + "\nnext"} {
				if out, _ := r.String("error", text); strings.Contains(out, secret) {
					t.Errorf("text kept it: %q", out)
				}
			}
			res, _ := json.Marshal(map[string]any{"stdout": "export KEY=" + secret, "value": secret, "lines": []string{"key: " + secret + "."}})
			ev := &event.Event{ID: "e", Kind: event.KindToolCall, Time: time.Unix(0, 0), ToolName: "read_env", Result: res}
			if err := r.Sanitize(ev); err != nil {
				t.Fatal(err)
			}
			if c, _ := ev.Canonical(); strings.Contains(string(c), secret) {
				t.Errorf("tool result kept it: %s", c)
			}
		})
	}
}

// TestSecretPrefixKinds: a value an exact gitleaks rule matches is recorded under the rule's id;
// a near miss under secret_prefix.
func TestSecretPrefixKinds(t *testing.T) {
	r := testRedactor(t)
	for _, tc := range []struct{ in, kind string }{
		{"token ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5 here", "github-pat"},
		{"id AKIAQYLPMN5HHHFPZAM2 here", "aws-access-token"},
		{"token ghp_DFX0AsDluHEChHYHYr0g2noa9f4DPvAIY here", "secret_prefix"},
		{"key sk-proj-huG8GP38g4o5MNJAYKJ1UXXFWXLCpaNfhs0gCa05RFRunzqw here", "secret_prefix"},
		{"id AKIAEDWWB96UT4UH75KJ here", "secret_prefix"},
	} {
		out, red := r.String("error", tc.in)
		if len(red) != 1 || red[0].Kind != tc.kind || !strings.Contains(out, "[REDACTED:"+tc.kind+"]") {
			t.Errorf("%q -> %q %+v, want one %s", tc.in, out, red, tc.kind)
		}
	}
}

// TestSecretPrefixNegatives: words and ids that share a prefix's letters, and placeholders, stay.
func TestSecretPrefixNegatives(t *testing.T) {
	r := testRedactor(t)
	for _, in := range []string{
		"pip install sk-learn", "see task-list and ask-me-anything", "the mask-image property, disk-usage and risk-free kiosk-mode",
		"AKIAVERYLONGWORD", "AKIAVeryLongWordHere", "ASIA-PACIFIC region", "ASIAPACIFICREGIONS", "AKIAIOSFODNN7EXAMPLE",
		`<div class="sk-fading-circle sk-circle1 sk-cube-grid sk-spinner-wave-rect5">`,
		"sk-learn-tutorial-for-beginners-2024", "sk-3f2504e0-4f89-11d3-9a0c-0305e82c3301",
		"sk-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b", "task-1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b",
		"sk-YOUR_API_KEY_HERE", "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "sk-...", "xoxb-your-token-here",
		"npm_config_cache=/tmp/npm npm_package_version=1.2.3", "hf_hub_download(repo_id) hf_transfer", "ghp_token_placeholder",
		"github_pat_goes_here", "glpat-your-token", "AIzaSy-your-key", "pypi-upload-token",
		"data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkAKIAAWAKIAPy8v+AKIAEDWWB96UT4UH75KJ+AIza1XWE1CqxdYGsDccJ91HOrlweHROhbF8hC/wAAAgIBAACp9Xk8AAAAAElFTkSuQmCC",
		"commit 1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b, uuid 3f2504e0-4f89-11d3-9a0c-0305e82c3301",
	} {
		if out, red := r.String("text", in); out != in {
			t.Errorf("%q -> %q %+v", in, out, red)
		}
	}
}

// TestSecretPrefixPolicy: the lenient prefixes follow the policy: their own detector switch, and
// the gitleaks rules they relax (secrets: none, exclude).
func TestSecretPrefixPolicy(t *testing.T) {
	const near = "ghp_DFX0AsDluHEChHYHYr0g2noa9f4DPvAIY"
	const aws = "AKIAEDWWB96UT4UH75KJ"
	for _, tc := range []struct {
		policy     string
		kept, gone []string
	}{
		{"version: 1\n", nil, []string{near, aws}},
		{"version: 1\ndetectors: {secret_prefix: \"off\"}\n", []string{near, aws}, nil},
		{"version: 1\nsecrets: none\n", []string{near, aws}, nil},
		{"version: 1\nsecrets: {rules: gitleaks, exclude: [github-pat]}\n", []string{near}, []string{aws}},
		{"version: 1\ndetectors: {secret_prefix: pseudonymize}\n", []string{"pii:secret_prefix:"}, []string{near, aws}},
	} {
		out, _ := policyRedactor(t, tc.policy).String("text", near+" "+aws)
		for _, k := range tc.kept {
			if !strings.Contains(out, k) {
				t.Errorf("%q: %q lost: %q", tc.policy, k, out)
			}
		}
		for _, g := range tc.gone {
			if strings.Contains(out, g) {
				t.Errorf("%q: %q kept: %q", tc.policy, g, out)
			}
		}
	}
}

// TestSecretPrefixRules: every gitleaks rule a prefix relaxes is loaded (a renamed rule would turn
// its prefix's exclusion into a no-op), and the rules fit keyword.pfx.
func TestSecretPrefixRules(t *testing.T) {
	sr, err := loadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	if len(prefixRules) > 64 {
		t.Fatalf("%d prefix rules, keyword.pfx holds 64", len(prefixRules))
	}
	for _, p := range prefixRules {
		for _, id := range p.relaxes {
			found := false
			for _, r := range sr.rules {
				found = found || r.id == id
			}
			if !found {
				t.Errorf("%s relaxes %q, which gitleaks does not have", p.prefix, id)
			}
		}
	}
}

// TestPrefixEntropy: the table-driven entropy is gitleaks' Shannon entropy, and every rule's
// body fits the table.
func TestPrefixEntropy(t *testing.T) {
	for _, b := range append(nearMisses, "", "a", "aaaa", "ab", "VERYLONGWORDHERE", strings.Repeat("aB3-_", 60)) {
		if got, want := entropy(b), shannon(b); math.Abs(got-want) > 1e-9 && !(len(b) == 0 && got != got) {
			t.Errorf("entropy(%q) = %v, shannon %v", b, got, want)
		}
	}
	for _, p := range prefixRules {
		if p.max > maxPrefixBody {
			t.Errorf("%s: body up to %d bytes, the table holds %d", p.prefix, p.max, maxPrefixBody)
		}
	}
}
