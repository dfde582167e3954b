// Package supportagent is the customer-service agent of the seed design, in Go: a tool-use loop
// over the Anthropic Messages API (the official client) with four tools — get_customer, get_order,
// update_order_status (which refuses to cancel a shipped order) and initiate_return (which needs a
// manager's approval) — recorded end to end by agentaudit: the session, every LLM call through
// the recording transport, every tool call wrapped once, the approval, the answer.
//
// Script returns the scripted model's answers, so the agent runs offline with
// examples/scriptedmodel; pointed at the real API it runs unchanged.
package supportagent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/anthropics/anthropic-sdk-go"
	"github.com/anthropics/anthropic-sdk-go/option"

	"github.com/agentaudit/agentaudit"
	"github.com/agentaudit/agentaudit/event"
	"github.com/agentaudit/agentaudit/examples/scriptedmodel"
)

// Model is the model the agent asks for.
const Model = "claude-opus-4-6"

// SystemPrompt is hashed into every event (not stored).
const SystemPrompt = "You are a customer support agent for an online shop. Use the tools to look up customers and orders. Never cancel a shipped order; offer a return instead."

// Request is the customer's message the scripted model answers.
const Request = "Please cancel my order ORD-456, I don't need it anymore."

// Script is what the scripted model answers to Request, step by step.
func Script() map[string][]scriptedmodel.Turn {
	return map[string][]scriptedmodel.Turn{"cancel my order ORD-456": {
		{Blocks: []scriptedmodel.Block{{Text: "Let me look up your order."}, {ToolID: "toolu_01", ToolName: "get_order", Input: map[string]any{"order_id": "ORD-456"}}}, InputTokens: 812, OutputTokens: 64},
		{Blocks: []scriptedmodel.Block{{ToolID: "toolu_02", ToolName: "get_customer", Input: map[string]any{"customer_id": "C-1001"}}}, InputTokens: 951, OutputTokens: 40},
		{Blocks: []scriptedmodel.Block{{ToolID: "toolu_03", ToolName: "update_order_status", Input: map[string]any{"order_id": "ORD-456", "status": "cancelled"}}}, InputTokens: 1040, OutputTokens: 52},
		{Blocks: []scriptedmodel.Block{{Text: "The order has shipped, so I'll start a return."}, {ToolID: "toolu_04", ToolName: "initiate_return", Input: map[string]any{"order_id": "ORD-456", "reason": "customer request"}}}, InputTokens: 1122, OutputTokens: 71},
		{Blocks: []scriptedmodel.Block{{Text: "Your order ORD-456 had already shipped, so it can't be cancelled. I started return RET-789 instead; you'll get a label by email."}}, InputTokens: 1230, OutputTokens: 48},
	}}
}

var tools = []anthropic.ToolUnionParam{
	tool("get_customer", "Look up a customer by id.", "customer_id"),
	tool("get_order", "Look up an order by id.", "order_id"),
	tool("update_order_status", "Set an order's status.", "order_id", "status"),
	tool("initiate_return", "Start a return for an order (needs a manager's approval).", "order_id", "reason"),
}

func tool(name, desc string, fields ...string) anthropic.ToolUnionParam {
	props := map[string]any{}
	for _, f := range fields {
		props[f] = map[string]any{"type": "string"}
	}
	return anthropic.ToolUnionParam{OfTool: &anthropic.ToolParam{Name: name, Description: anthropic.String(desc),
		InputSchema: anthropic.ToolInputSchemaParam{Properties: props, Required: fields}}}
}

// shop is the agent's back end.
type shop struct {
	orders    map[string]map[string]any
	customers map[string]map[string]any
}

func newShop() *shop {
	return &shop{
		orders:    map[string]map[string]any{"ORD-456": {"order_id": "ORD-456", "customer_id": "C-1001", "status": "shipped", "total": 129.9}},
		customers: map[string]map[string]any{"C-1001": {"customer_id": "C-1001", "name": "Alex Doe", "email": "alex.doe@example.com", "tier": "gold"}},
	}
}

// ErrShipped is update_order_status refusing to cancel a shipped order.
var ErrShipped = errors.New("Cannot cancel shipped order")

type args map[string]string

// Session is what Run did.
type Session struct {
	ID     string
	Answer string
}

// Run answers one customer request: the tool loop until the model ends its turn. Requests go to
// baseURL (the scripted model, or https://api.anthropic.com with a real key).
func Run(ctx context.Context, rec *agentaudit.Recorder, baseURL, apiKey, request string) (*Session, error) {
	client := anthropic.NewClient(option.WithBaseURL(baseURL), option.WithAPIKey(apiKey),
		option.WithHTTPClient(rec.HTTPClient()), option.WithMaxRetries(0))
	ctx, sess, err := rec.StartSession(ctx, agentaudit.SessionInfo{
		UserID: "usr_98765", UserRole: "support_agent", ClientIP: "203.0.113.7", UserAgent: "support-console/3.1",
		AgentID: "support-v1", AgentVersion: "1.4.2", Model: Model, SystemPrompt: SystemPrompt,
	})
	if err != nil {
		return nil, err
	}
	s := newShop()
	run := map[string]func(context.Context, args) (map[string]any, error){
		"get_customer": agentaudit.WrapTool(rec, "get_customer", func(ctx context.Context, a args) (map[string]any, error) {
			if c, ok := s.customers[a["customer_id"]]; ok {
				return c, nil
			}
			return nil, fmt.Errorf("no customer %q", a["customer_id"])
		}),
		"get_order": agentaudit.WrapTool(rec, "get_order", func(ctx context.Context, a args) (map[string]any, error) {
			if o, ok := s.orders[a["order_id"]]; ok {
				return o, nil
			}
			return nil, fmt.Errorf("no order %q", a["order_id"])
		}),
		"update_order_status": agentaudit.WrapTool(rec, "update_order_status", func(ctx context.Context, a args) (map[string]any, error) {
			o, ok := s.orders[a["order_id"]]
			if !ok {
				return nil, fmt.Errorf("no order %q", a["order_id"])
			}
			if o["status"] == "shipped" && a["status"] == "cancelled" {
				return nil, ErrShipped
			}
			o["status"] = a["status"]
			return map[string]any{"success": true, "order_id": a["order_id"], "status": a["status"]}, nil
		}),
		// Returns move money: the call runs only once its audit record is durable.
		"initiate_return": agentaudit.WrapTool(rec, "initiate_return", func(ctx context.Context, a args) (map[string]any, error) {
			return map[string]any{"return_id": "RET-789", "order_id": a["order_id"], "status": "created"}, nil
		}, agentaudit.ToolMode(agentaudit.FailClosed)),
	}

	sess.NextTurn()
	messages := []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(request))}
	for range 10 {
		msg, err := client.Messages.New(ctx, anthropic.MessageNewParams{
			Model: Model, MaxTokens: 1024, System: []anthropic.TextBlockParam{{Text: SystemPrompt}}, Messages: messages, Tools: tools,
		})
		if err != nil {
			sess.Error(ctx, err)
			sess.End(ctx, event.OutcomeError)
			return nil, err
		}
		messages = append(messages, msg.ToParam())
		if msg.StopReason != anthropic.StopReasonToolUse {
			var answer string
			for _, b := range msg.Content {
				answer += b.Text
			}
			if err := sess.FinalOutput(ctx, answer); err != nil {
				return nil, err
			}
			return &Session{ID: sess.ID(), Answer: answer}, sess.End(ctx, event.OutcomeSuccess)
		}
		var results []anthropic.ContentBlockParamUnion
		for _, b := range msg.Content {
			if b.Type != "tool_use" {
				continue
			}
			var a args
			if err := json.Unmarshal(b.Input, &a); err != nil {
				results = append(results, anthropic.NewToolResultBlock(b.ID, "invalid input: "+err.Error(), true))
				continue
			}
			tctx := agentaudit.WithToolCallID(ctx, b.ID)
			if b.Name == "initiate_return" {
				// A manager approves returns; the demo's manager always says yes.
				req, err := sess.ApprovalRequest(tctx, b.Name, a)
				if err != nil {
					return nil, err
				}
				if err := sess.ApprovalDecision(tctx, req, b.Name, event.ApprovalApproved, "mgr_2002", "return within 30 days"); err != nil {
					return nil, err
				}
			}
			fn, ok := run[b.Name]
			if !ok {
				results = append(results, anthropic.NewToolResultBlock(b.ID, "unknown tool "+b.Name, true))
				continue
			}
			out, err := fn(tctx, a)
			if err != nil {
				results = append(results, anthropic.NewToolResultBlock(b.ID, err.Error(), true))
				continue
			}
			data, _ := json.Marshal(out)
			results = append(results, anthropic.NewToolResultBlock(b.ID, string(data), false))
		}
		messages = append(messages, anthropic.NewUserMessage(results...))
	}
	err = errors.New("supportagent: no answer after 10 model calls")
	sess.Error(ctx, err)
	sess.End(ctx, event.OutcomeError)
	return nil, err
}
