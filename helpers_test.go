package agentaudit_test

import (
	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/embedded"
	"github.com/agentaudit/agentaudit/ledger"
)

// openEmbedded opens a recorder on the embedded store in dir, as an agent that records locally
// does.
func openEmbedded(dir string, lopts ledger.Options, opts ...agentaudit.Option) (*agentaudit.Recorder, error) {
	sink, err := embedded.Open(dir, lopts)
	if err != nil {
		return nil, err
	}
	rec, err := agentaudit.New(sink, opts...)
	if err != nil {
		sink.Close()
		return nil, err
	}
	return rec, nil
}
