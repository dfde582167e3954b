package agentaudit_test

import (
	"context"
	"fmt"
	"os"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/embedded"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/ledger"
)

func Example() {
	dir, _ := os.MkdirTemp("", "agentaudit-example-")
	defer os.RemoveAll(dir)

	sink, err := embedded.Open(dir, ledger.Options{}) // initializes the data directory on first use
	if err != nil {
		panic(err)
	}
	rec, err := agentaudit.New(sink)
	if err != nil {
		panic(err)
	}
	ctx, sess, err := rec.StartSession(context.Background(), agentaudit.SessionInfo{
		UserID: "usr_98765", UserRole: "support_agent", AgentID: "support-v1", Model: "claude-opus-4-6",
	})
	if err != nil {
		panic(err)
	}
	sess.NextTurn()
	sess.Reasoning(ctx, "look up the order", "the customer gave an order id")
	sess.End(ctx, event.OutcomeSuccess)
	if err := rec.Close(); err != nil { // drains the queue, signs a final checkpoint
		panic(err)
	}
	fmt.Println("recorded")
	// Output: recorded
}

func ExampleWrapTool() {
	dir, _ := os.MkdirTemp("", "agentaudit-example-")
	defer os.RemoveAll(dir)
	sink, _ := embedded.Open(dir, ledger.Options{})
	rec, _ := agentaudit.New(sink)
	defer rec.Close()

	type args struct {
		OrderID string `json:"order_id"`
	}
	getOrder := agentaudit.WrapTool(rec, "get_order", func(ctx context.Context, a args) (map[string]string, error) {
		return map[string]string{"order_id": a.OrderID, "status": "shipped"}, nil
	})
	ctx, _, _ := rec.StartSession(context.Background(), agentaudit.SessionInfo{UserID: "usr_1", AgentID: "support-v1"})
	// The LLM's tool_use id links this call to the LLM call that requested it.
	order, err := getOrder(agentaudit.WithToolCallID(ctx, "toolu_01"), args{OrderID: "ORD-456"})
	fmt.Println(order["status"], err)
	// Output: shipped <nil>
}

func ExampleToolMode() {
	dir, _ := os.MkdirTemp("", "agentaudit-example-")
	defer os.RemoveAll(dir)
	sink, _ := embedded.Open(dir, ledger.Options{})
	rec, _ := agentaudit.New(sink)
	defer rec.Close()

	// A sensitive tool runs only after its audit record is durably written.
	deleteRecord := agentaudit.WrapTool(rec, "delete_record", func(ctx context.Context, id string) (bool, error) {
		return true, nil
	}, agentaudit.ToolMode(agentaudit.FailClosed))
	ok, err := deleteRecord(context.Background(), "P-123")
	fmt.Println(ok, err)
	// Output: true <nil>
}
