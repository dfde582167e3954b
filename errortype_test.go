package agentaudit_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"testing"

	"github.com/agentaudit/agentaudit"
)

type notCancellable struct{ order string }

func (e *notCancellable) Error() string     { return "order " + e.order + " has shipped" }
func (e *notCancellable) ErrorType() string { return "order_not_cancellable" }

func TestErrorType(t *testing.T) {
	_, pathErr := os.Open("/does/not/exist")
	var syntaxErr error = json.Unmarshal([]byte("{"), new(any))
	for _, tc := range []struct {
		name string
		err  error
		want string
	}{
		{"plain errors.New", errors.New("Cannot cancel shipped order"), ""},
		{"fmt.Errorf without a typed cause", fmt.Errorf("step 2: %w", errors.New("x")), ""},
		{"typed error names itself", fmt.Errorf("cancel: %w", &notCancellable{"ORD-456"}), "order_not_cancellable"},
		{"typed error from the standard library", pathErr, "fs.PathError"},
		{"typed cause behind wrappers", fmt.Errorf("a: %w", fmt.Errorf("b: %w", syntaxErr)), "json.SyntaxError"},
		{"joined", errors.Join(errors.New("x"), &fs.PathError{Op: "open", Path: "p", Err: fs.ErrNotExist}), "fs.PathError"},
		{"deadline", fmt.Errorf("call: %w", context.DeadlineExceeded), "timeout"},
		{"canceled", context.Canceled, "canceled"},
		{"nil", nil, ""},
	} {
		if got := agentaudit.ErrorType(tc.err); got != tc.want {
			t.Errorf("%s: ErrorType = %q, want %q", tc.name, got, tc.want)
		}
	}
}
