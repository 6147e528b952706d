package oidc

import (
	"context"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/web"
)

// Auditor is what the provider records audit events with (docs/audit.md):
// the pseudonymizer that names citizens in events and the batcher that
// commits events recording no change of their own (a userinfo disclosure,
// a client_credentials token). A provider without one records nothing.
type Auditor struct {
	Pseudonyms *audit.Pseudonymizer
	Batcher    *audit.Batcher
}

// auditing reports whether the provider records events.
func (p *Provider) auditing() bool {
	a := p.cfg.Audit
	return a != nil && a.Pseudonyms != nil && a.Batcher != nil
}

// clientEvent is an event of client c acting at a protocol endpoint, about
// the account accountID when not empty (pseudonymised, under the consent
// the grant comes from: every citizen's grant follows a consent to c).
// Call it only when p.auditing().
func (p *Provider) clientEvent(ctx context.Context, action string, c *sqin.Client, accountID string) audit.Event {
	e := audit.Event{RequestID: web.RequestID(ctx), Actor: audit.Actor{Kind: audit.ActorClient, ID: c.ID},
		Action: action, ClientID: c.ID, PublicBody: c.SectorID(), Outcome: audit.Success}
	if accountID != "" {
		e.Subject = p.cfg.Audit.Pseudonyms.Account(accountID)
		e.LegalBasis = "consent:" + c.ID
	}
	return e
}

// commitEvent commits e, which goes with no write of its own, through the
// batcher (with other callers' events) and returns once it is durable:
// answer only after it returns nil (docs/audit.md, rule 4).
func (p *Provider) commitEvent(ctx context.Context, e audit.Event) error {
	return p.cfg.Audit.Batcher.Append(ctx, &e)
}

// issuedDetail says how a token was issued: grant type and scopes, cut to
// what an event's detail holds (scopes are ASCII, RFC 6749 3.3).
func issuedDetail(grantType string, scopes []string) string {
	n := len("grant_type= scope=") + len(grantType)
	for _, s := range scopes {
		n += len(s) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, "grant_type="...)
	b = append(b, grantType...)
	for i, s := range scopes {
		if i == 0 {
			b = append(b, " scope="...)
		} else {
			b = append(b, ' ')
		}
		b = append(b, s...)
	}
	if len(b) > audit.MaxDetail {
		b = b[:audit.MaxDetail]
	}
	return string(b)
}
