package agentaudit_test

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/embedded"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
)

func ExampleSession_BreakGlass() {
	dir, _ := os.MkdirTemp("", "agentaudit-example-")
	defer os.RemoveAll(dir)
	sink, err := embedded.Open(dir, ledger.Options{})
	if err != nil {
		panic(err)
	}
	rec, err := agentaudit.New(sink)
	if err != nil {
		panic(err)
	}
	ctx, sess, err := rec.StartSession(context.Background(), agentaudit.SessionInfo{UserID: "dr_jones", UserRole: "er_physician", AgentID: "med-records"})
	if err != nil {
		panic(err)
	}
	err = sess.BreakGlass(ctx, "patient", "P-123", "emergency_treatment", "")
	fmt.Println(errors.Is(err, event.ErrInvalid))
	err = sess.BreakGlass(ctx, "patient", "P-123", "emergency_treatment", "unconscious patient in the ER, allergy check")
	fmt.Println(err)
	rec.Close()
	// Output:
	// true
	// <nil>
}
