package alert

import (
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"

	"github.com/agentaudit/agentaudit/event"
)

// The CEL environment: one variable, `event`, of the event's own type, whose fields are the JSON
// names of the event model (event.kind, event.subject_type, event.break_glass, ...). The checker
// refuses a field the event does not have, so a misspelt rule fails at start-up, not silently.
var celEnv = sync.OnceValues(func() (*cel.Env, error) {
	return cel.NewEnv(
		ext.NativeTypes(reflect.TypeOf(&event.Event{}), ext.ParseStructTag("json")),
		cel.Variable("event", cel.ObjectType("event.Event")),
		ext.Strings(),
	)
})

// condition is a compiled boolean expression, with the kinds it can hold for when its source
// says so (a top-level `event.kind == "x"` or `event.kind in [...]` in a chain of &&): the
// evaluator skips it at once for other kinds.
type condition struct {
	src   string
	prg   cel.Program
	kinds map[event.Kind]bool // nil: any kind
	// The top-level conjuncts simple enough to test in Go (a string field compared with a
	// literal, a flag); when they are all there is, CEL is not run at all.
	fast     []func(*event.Event) bool
	complete bool
}

var errNotBool = errors.New("the expression must be true or false")

// compileBool compiles a CEL condition over event.
func compileBool(src string) (*condition, error) {
	env, err := celEnv()
	if err != nil {
		return nil, err
	}
	ast, iss := env.Compile(src)
	if iss.Err() != nil {
		// The issue text starts with ERROR: <input>:line:col; keep it on one line.
		return nil, fmt.Errorf("%s", strings.Join(strings.Fields(iss.Err().Error()), " "))
	}
	if ast.OutputType() != cel.BoolType {
		return nil, fmt.Errorf("%w; %q is %s", errNotBool, src, ast.OutputType())
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptOptimize))
	if err != nil {
		return nil, err
	}
	c := &condition{src: src, prg: prg}
	c.kinds = kindsOf(ast.NativeRep().Expr())
	c.fast, c.complete = fastPreds(ast.NativeRep().Expr())
	return c, nil
}

// eval reports whether the condition holds for ev; a runtime error (a missing map key, a
// division by zero) counts as false.
func (c *condition) eval(act *eventActivation) bool {
	if c == nil {
		return true
	}
	if c.kinds != nil && !c.kinds[act.ev.Kind] {
		return false
	}
	for _, p := range c.fast {
		if !p(act.ev) {
			return false
		}
	}
	if c.complete {
		return true
	}
	out, _, err := c.prg.Eval(act)
	if err != nil {
		return false
	}
	return out == types.True
}

// kindsOf finds the kinds a condition requires, or nil.
func kindsOf(e celast.Expr) map[event.Kind]bool {
	if e.Kind() != celast.CallKind {
		return nil
	}
	call := e.AsCall()
	args := call.Args()
	switch call.FunctionName() {
	case "_&&_":
		for _, a := range args {
			if k := kindsOf(a); k != nil {
				return k
			}
		}
	case "_==_":
		if len(args) == 2 && isEventKind(args[0]) && args[1].Kind() == celast.LiteralKind {
			if s, ok := args[1].AsLiteral().Value().(string); ok {
				return map[event.Kind]bool{event.Kind(s): true}
			}
		}
	case "@in":
		if len(args) == 2 && isEventKind(args[0]) && args[1].Kind() == celast.ListKind {
			out := map[event.Kind]bool{}
			for _, x := range args[1].AsList().Elements() {
				if x.Kind() != celast.LiteralKind {
					return nil
				}
				s, ok := x.AsLiteral().Value().(string)
				if !ok {
					return nil
				}
				out[event.Kind(s)] = true
			}
			return out
		}
	}
	return nil
}

// fastPreds turns the simple top-level conjuncts of e into Go tests; complete reports whether
// they are the whole of it. A conjunct that is not simple is left to CEL, which evaluates the
// whole expression once the Go tests pass, so the result is always CEL's.
func fastPreds(e celast.Expr) ([]func(*event.Event) bool, bool) {
	if e.Kind() == celast.CallKind && e.AsCall().FunctionName() == "_&&_" {
		var out []func(*event.Event) bool
		complete := true
		for _, a := range e.AsCall().Args() {
			ps, c := fastPreds(a)
			out = append(out, ps...)
			complete = complete && c
		}
		return out, complete
	}
	if p := simplePred(e); p != nil {
		return []func(*event.Event) bool{p}, true
	}
	return nil, false
}

// simplePred handles event.F == "lit", event.F != "lit", event.F in ["a", ...] for a string
// field, and event.F for a flag.
func simplePred(e celast.Expr) func(*event.Event) bool {
	if f := eventSelect(e); f != nil {
		if f.Type != event.TypeBool {
			return nil
		}
		p := f.Ptr
		return func(ev *event.Event) bool { return *p(ev).(*bool) }
	}
	if e.Kind() != celast.CallKind {
		return nil
	}
	call := e.AsCall()
	args := call.Args()
	if len(args) != 2 {
		return nil
	}
	f := eventSelect(args[0])
	if f == nil || f.Type != event.TypeString {
		return nil
	}
	switch call.FunctionName() {
	case "_==_", "_!=_":
		lit, ok := stringLit(args[1])
		if !ok {
			return nil
		}
		if call.FunctionName() == "_==_" {
			return func(ev *event.Event) bool { return *f.Str(ev) == lit }
		}
		return func(ev *event.Event) bool { return *f.Str(ev) != lit }
	case "@in":
		if args[1].Kind() != celast.ListKind {
			return nil
		}
		var set []string
		for _, x := range args[1].AsList().Elements() {
			s, ok := stringLit(x)
			if !ok {
				return nil
			}
			set = append(set, s)
		}
		return func(ev *event.Event) bool { return slices.Contains(set, *f.Str(ev)) }
	}
	return nil
}

func stringLit(e celast.Expr) (string, bool) {
	if e.Kind() != celast.LiteralKind {
		return "", false
	}
	s, ok := e.AsLiteral().Value().(string)
	return s, ok
}

// eventSelect returns the field of `event.F`, or nil.
func eventSelect(e celast.Expr) *event.Field {
	if e.Kind() != celast.SelectKind {
		return nil
	}
	s := e.AsSelect()
	if s.IsTestOnly() || s.Operand().Kind() != celast.IdentKind || s.Operand().AsIdent() != "event" {
		return nil
	}
	return event.FieldByName(s.FieldName())
}

func isEventKind(e celast.Expr) bool {
	if e.Kind() != celast.SelectKind {
		return false
	}
	s := e.AsSelect()
	return s.FieldName() == "kind" && !s.IsTestOnly() && s.Operand().Kind() == celast.IdentKind && s.Operand().AsIdent() == "event"
}

// eventActivation binds `event` without a map per evaluation.
type eventActivation struct{ ev *event.Event }

func (a *eventActivation) ResolveName(name string) (any, bool) {
	if name == "event" {
		return a.ev, true
	}
	return nil, false
}

func (a *eventActivation) Parent() cel.Activation { return nil }
