package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/agentaudit/agentaudit/store/sqlite"
	"github.com/agentaudit/agentaudit/store/storetest"
)

// BenchmarkCheckIDs is the duplicate check on Append's path (pending ids, then the id index of a
// log of 100,000 events) for batches of 1, 4 and 64 new ids.
func BenchmarkCheckIDs(b *testing.B) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(b.TempDir(), "ledger.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	for i := int64(0); i < 100000; i += 1000 {
		bt := storetest.Batch(i, 1000)
		for j := range bt.Entries {
			bt.Entries[j].ID = fmt.Sprintf("0190c1a2-%04x-7%03x-8000-%012x", i%65536, j, i*7919+int64(j))
		}
		if err := st.Append(ctx, bt); err != nil {
			b.Fatal(err)
		}
	}
	st.Size(ctx)
	for _, n := range []int{1, 4, 64} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			bt := storetest.Batch(100000, int64(n))
			for i := 0; i < b.N; i++ {
				for j := range bt.Entries {
					bt.Entries[j].ID = fmt.Sprintf("new-%d-%d", i, j)
				}
				if err := sqlite.CheckIDs(st, bt.Entries); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
