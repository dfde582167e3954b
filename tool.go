package agentaudit

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/agentaudit/agentaudit/event"
)

type toolConfig struct {
	mode    Mode
	hasMode bool
	subject func(args any) (typ, id, purpose string)
	// approver, when set, holds every call until it decides (RequireApproval).
	approver        Approver
	approvalTimeout time.Duration
}

// ToolOption configures one wrapped tool.
type ToolOption func(*toolConfig)

// ToolMode overrides the recorder's mode for this tool, e.g. FailClosed for a tool that changes
// patient records.
func ToolMode(m Mode) ToolOption { return func(c *toolConfig) { c.mode, c.hasMode = m, true } }

// ToolSubject names the data subject a call touches, from its arguments, so access reports find
// it (subject type and id, purpose of use).
func ToolSubject(f func(args any) (typ, id, purpose string)) ToolOption {
	return func(c *toolConfig) { c.subject = f }
}

type toolCallIDKey struct{}

// WithToolCallID returns ctx carrying the id the LLM gave this tool call (Anthropic tool_use id,
// OpenAI tool_call id), so the recorded call points to the LLM call that requested it.
func WithToolCallID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, toolCallIDKey{}, id)
}

// WrapTool returns fn wrapped so that every call is recorded: arguments, result or error,
// duration, success, the session's attribution (from ctx) and a parent link to the LLM call that
// requested it. A panic is recorded as an error event and re-raised.
//
// In Async and Sync mode one tool_call event is recorded after the call. In FailClosed mode a
// tool_call event is committed before fn runs (if it cannot be, fn does not run and the error is
// returned) and a tool_result event after it; an error writing the result is returned too.
//
// With RequireApproval, each call first waits for a person's decision, and runs only if approved.
func WrapTool[In, Out any](r *Recorder, name string, fn func(context.Context, In) (Out, error), opts ...ToolOption) func(context.Context, In) (Out, error) {
	var cfg toolConfig
	for _, o := range opts {
		o(&cfg)
	}
	return func(ctx context.Context, in In) (out Out, err error) {
		mode := r.cfg.mode
		if cfg.hasMode {
			mode = cfg.mode
		}
		ev := toolEvent(ctx, name)
		if ev.Arguments, err = marshalPayload(in); err != nil {
			return out, fmt.Errorf("agentaudit: %s arguments: %w", name, err)
		}
		if cfg.subject != nil {
			ev.SubjectType, ev.SubjectID, ev.Purpose = cfg.subject(in)
		}
		if cfg.approver != nil {
			if err := r.awaitApproval(ctx, &cfg, ev, mode); err != nil {
				// Denied: the tool does not run; the call is recorded as failed, saying why.
				ev.Error, ev.ErrorType, ev.Success, ev.Outcome = err.Error(), ErrorType(err), event.Bool(false), event.OutcomeDenied
				if rerr := r.record(context.WithoutCancel(ctx), ev, mode); rerr != nil {
					r.cfg.onError(fmt.Errorf("agentaudit: denied call to %s not recorded: %w", name, rerr))
				}
				return out, err
			}
			// The call starts now, after its approval: its id and time follow the decision's.
			ev.ID, ev.Time = newID(), time.Now().UTC()
		}
		if mode == FailClosed {
			intent := *ev
			if err := r.record(ctx, &intent, Sync); err != nil {
				return out, fmt.Errorf("agentaudit: %s was not run: its audit record could not be written: %w", name, err)
			}
			id, _ := uuid.NewV7()
			ev.ID, ev.Kind, ev.ParentID, ev.Arguments = id.String(), event.KindToolResult, intent.ID, nil
		}
		start := time.Now()
		defer func() {
			if p := recover(); p != nil {
				ev.Kind, ev.Error, ev.ErrorType = event.KindError, fmt.Sprint("panic: ", p), "panic"
				ev.DurationMS, ev.Success, ev.Outcome = ms(time.Since(start)), event.Bool(false), event.OutcomeError
				if rerr := r.record(context.WithoutCancel(ctx), ev, mode); rerr != nil {
					r.cfg.onError(fmt.Errorf("agentaudit: panic in %s not recorded: %w", name, rerr))
				}
				panic(p)
			}
		}()
		out, err = fn(ctx, in)
		ev.DurationMS = ms(time.Since(start))
		if err != nil {
			ev.Error, ev.ErrorType, ev.Success, ev.Outcome = err.Error(), ErrorType(err), event.Bool(false), event.OutcomeError
		} else {
			ev.Success, ev.Outcome = event.Bool(true), event.OutcomeSuccess
			if ev.Result, err = marshalPayload(out); err != nil {
				return out, fmt.Errorf("agentaudit: %s result: %w", name, err)
			}
		}
		// The tool has run: a caller hanging up must not drop its record.
		if rerr := r.record(context.WithoutCancel(ctx), ev, mode); rerr != nil {
			if mode == Async {
				r.cfg.onError(fmt.Errorf("agentaudit: %s not recorded: %w", name, rerr))
			} else if err == nil {
				err = fmt.Errorf("agentaudit: %s ran but its audit record could not be written: %w", name, rerr)
			}
		}
		return out, err
	}
}

// toolEvent starts a tool_call event with the session's attribution and the parent link.
func toolEvent(ctx context.Context, name string) *event.Event {
	callID, _ := ctx.Value(toolCallIDKey{}).(string)
	var ev *event.Event
	if s := SessionFrom(ctx); s != nil {
		ev = s.base(event.KindToolCall)
		ev.ParentID, ev.Trigger = s.parentFor(callID), s.info.Trigger
	} else {
		id, _ := uuid.NewV7()
		ev = &event.Event{ID: id.String(), Kind: event.KindToolCall, Time: time.Now().UTC()}
	}
	ev.ToolName, ev.ToolCallID = name, callID
	return ev
}

// marshalPayload encodes a tool's arguments or result; json.RawMessage passes through.
func marshalPayload(v any) (json.RawMessage, error) {
	switch x := v.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return x, nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if string(b) == "null" {
		return nil, nil
	}
	return b, nil
}
