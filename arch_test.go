package agentaudit_test

import (
	"os/exec"
	"strings"
	"testing"
)

// TestSDKCompilesNoDatabase keeps the root package thin: an agent that records to a server must
// not compile the ledger, the store, SQLite, the sanitizer or its rule sets. Only the event
// model (with its JSON reader) and the standard library (and uuid, for event ids) come along.
func TestSDKCompilesNoDatabase(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	allowed := map[string]bool{
		"github.com/agentaudit/agentaudit":                    true,
		"github.com/agentaudit/agentaudit/event":              true,
		"github.com/agentaudit/agentaudit/internal/jsontok":   true, // event's JSON reader
		"github.com/agentaudit/agentaudit/internal/proxyhttp": true, // the LLM transport's body that records after it is read (net/http only)
		"github.com/google/uuid":                              true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("the SDK package depends on %s", p)
		}
	}
}
