package alert

import (
	"errors"
	"fmt"
	"reflect"
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
