package agentaudit

import (
	"context"
	"errors"
	"reflect"
)

// ErrorTyper lets an error name its own type in the audit record (error_type), such as
// "order_not_cancellable". ErrorType uses the first error in the chain that has it.
type ErrorTyper interface {
	ErrorType() string
}

// anonymous are the standard library's unnamed error carriers: their Go type says nothing about
// what went wrong, so it never becomes an error_type.
var anonymous = map[string]bool{
	"*errors.errorString": true, "*fmt.wrapError": true, "*fmt.wrapErrors": true, "*errors.joinError": true,
}

// ErrorType is the error_type recorded for err: the name an ErrorTyper in its chain gives;
// "timeout" or "canceled" for the context's errors; otherwise the package-qualified name of the
// first typed error in the chain ("fs.PathError", "url.Error", "json.SyntaxError"); and "" for
// an error made by errors.New or fmt.Errorf alone, whose Go type (*errors.errorString) would only
// leak Go internals into exports.
func ErrorType(err error) string {
	var et ErrorTyper
	switch {
	case err == nil:
		return ""
	case errors.As(err, &et):
		return et.ErrorType()
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	return typedName(err)
}

// typedName is the name of the first error in err's tree, depth first, that is not one of the
// anonymous carriers.
func typedName(err error) string {
	if err == nil {
		return ""
	}
	t := reflect.TypeOf(err)
	if !anonymous[t.String()] {
		for t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		return t.String()
	}
	switch u := err.(type) {
	case interface{ Unwrap() error }:
		return typedName(u.Unwrap())
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if name := typedName(e); name != "" {
				return name
			}
		}
	}
	return ""
}
