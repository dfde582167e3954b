package postgres_test

import (
	"context"
	"os"
	"testing"

	"github.com/agentaudit/agentaudit/internal/pgtest"
	"github.com/agentaudit/agentaudit/store/postgres"
	"github.com/agentaudit/agentaudit/store/storetest"
)

var _ storetest.Driver = (*postgres.Store)(nil)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func open(t *testing.T) storetest.Driver {
	s, err := postgres.Open(context.Background(), postgres.Config{URL: pgtest.NewDB(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestConformance(t *testing.T) { storetest.Run(t, open) }
