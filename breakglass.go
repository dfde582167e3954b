package agentaudit

import (
	"context"
	"fmt"
	"strings"

	"github.com/agentaudit/agentaudit/event"
)

// BreakGlass records an emergency access to a subject's data outside the user's usual rights
// (break-the-glass): reason is required and says why. The log raises a critical alert at once and
// opens a review (`agentaudit review list`, `agentaudit review close ID --note TEXT`); an access
// left unreviewed for 24 hours raises another.
func (s *Session) BreakGlass(ctx context.Context, subjectType, subjectID, purpose, reason string) error {
	if strings.TrimSpace(reason) == "" {
		return fmt.Errorf("%w: break-glass needs a reason", event.ErrInvalid)
	}
	return s.Access(ctx, Access{SubjectType: subjectType, SubjectID: subjectID, Purpose: purpose, BreakGlassReason: reason})
}
