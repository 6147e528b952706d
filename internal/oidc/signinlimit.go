package oidc

import (
	"context"
	"fmt"

	"github.com/sqin/sqin/internal/keys"
)

// signInLimitKey is the rate-limit key under which the sign-in form counts
// the failed sign-ins of an email address (normalised).
func signInLimitKey(email string) string { return "login:acct:" + keys.Hash(email) }

// ForgetFailedSignIns forgets the failed sign-ins counted against an email
// address, as a successful sign-in does. Account recovery calls it once
// the citizen has proved control of the address and set a new password:
// the failures that made them reset it must not keep them out for the
// rest of the window. The per-address (network) count is kept.
func (p *Provider) ForgetFailedSignIns(ctx context.Context, email string) error {
	if err := p.st.Reset(ctx, signInLimitKey(normEmail(email))); err != nil {
		return fmt.Errorf("oidc: forget failed sign-ins: %w", err)
	}
	return nil
}
