package cli

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/agentaudit/agentaudit/internal/pgtest"
)

// The read commands work against a hot standby of the database (streaming replication,
// read-only): verify, query, timeline, stats, report, export, get, prove, hold list, retention
// plan; an event appended on the primary shows there once replayed; writing is refused.
func TestReadReplica(t *testing.T) {
	primary := pgtest.NewDB(t)
	dir := filepath.Join(t.TempDir(), "data")
	for _, args := range [][]string{{"init"}, {"append", "sample-session.jsonl"}} {
		if code, out, errs := run(t, dir, "", append([]string{"--store", primary}, args...)...); code != 0 {
			t.Fatalf("%v: %d %s %s", args, code, out, errs)
		}
	}
	u, _ := url.Parse(primary)
	replica := pgtest.Shared(t).Standby(t).URL(strings.TrimPrefix(u.Path, "/"))
	rep := func(args ...string) (int, string, string) {
		t.Helper()
		return run(t, dir, "", append([]string{"--store", replica}, args...)...)
	}
	// appeared polls the replica until it has the event id: replication is asynchronous.
	appeared := func(id string) bool {
		for i := 0; i < 300; i++ {
			if code, _, _ := rep("get", id); code == 0 {
				return true
			}
			time.Sleep(100 * time.Millisecond)
		}
		return false
	}
	if !appeared("0192f5a0-0000-7000-8000-000000000005") {
		t.Fatal("the sample session did not reach the standby within 30 s")
	}
	_, vkey, _ := run(t, dir, "", "key")
	key := strings.TrimSpace(vkey)
	code, bundle, errs := rep("prove", "0192f5a0-0000-7000-8000-000000000005")
	if code != 0 {
		t.Fatalf("prove on the standby: %d %s", code, errs)
	}
	bf := filepath.Join(t.TempDir(), "bundle.json")
	os.WriteFile(bf, []byte(bundle), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"verify", "--key", key}, "OK: nothing was changed"},
		{[]string{"query", "--tool", "update_order_status"}, "ORD-456"},
		{[]string{"timeline", "sess-demo-001"}, "update_order_status"},
		{[]string{"stats", "tools"}, "update_order_status"},
		{[]string{"export", "--format", "ocsf"}, `"class_uid":6003`},
		{[]string{"report", "access", "--subject", "customer:cust_42", "--from", "2020-01-01", "--to", "2030-01-01", "--key", key}, `"integrity_verified": true`},
		{[]string{"hold", "list"}, ""},
		{[]string{"retention", "plan"}, ""},
		{[]string{"checkpoint"}, "agentaudit.local/log"},
	} {
		if code, out, errs := rep(c.args...); code != 0 || !strings.Contains(out, c.want) {
			t.Errorf("%v on the standby: exit %d, want output with %q:\n%s\n%s", c.args, code, c.want, out, errs)
		}
	}
	if code, out, errs := run(t, dir, "", "verify-bundle", "--key", key, bf); code != 0 || !strings.Contains(out, "OK") {
		t.Errorf("verify-bundle of the standby's proof: %d %s %s", code, out, errs)
	}
	// Appended on the primary, visible on the standby once replayed.
	if code, _, errs := run(t, dir, `{"id":"after-standby","kind":"custom"}`+"\n", "--store", primary, "append", "-"); code != 0 {
		t.Fatalf("append on the primary: %d %s", code, errs)
	}
	if !appeared("after-standby") {
		t.Error("an event appended on the primary did not reach the standby within 30 s")
	}
	// Writing to the standby is refused at start, whatever the command; so is serve.
	if code, _, errs := rep("serve", "--listen", "127.0.0.1:0"); code != 1 || !strings.Contains(errs, "is a read-only standby") {
		t.Errorf("serve on the standby: %d %s", code, errs)
	}
	if code, _, errs := run(t, dir, `{"id":"on-standby","kind":"custom"}`+"\n", "--store", replica, "append", "-"); code != 1 || !strings.Contains(errs, "is a read-only standby (in recovery): connect writers to the primary") {
		t.Errorf("append on the standby: %d %s", code, errs)
	} else {
		t.Logf("append on the standby: %s", errs)
	}
}
