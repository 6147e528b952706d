package oidc

import (
	"context"
	"net/http"
	"strings"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/web"
)

// maxProofsAtOnce bounds the proofs the audit endpoints compute at the same
// time on one instance (each costs a few queries); more wait briefly, then
// get 503.
const maxProofsAtOnce = 8

// auditDefaults fills the audit settings a provider was not given.
func (p *Provider) auditDefaults() {
	if p.cfg.AuditLog == nil {
		p.cfg.AuditLog = audit.NewLog(p.st, nil)
	}
	p.auditSlots = make(chan struct{}, maxProofsAtOnce)
}

// citizenEvent is an event of the request in ctx made by the citizen's
// account accountID, about that account (both pseudonymised; an anonymous
// citizen actor and no subject when accountID is empty), with the client
// and its public body when c is known, and success as outcome. Call it
// only when p.auditing().
func (p *Provider) citizenEvent(ctx context.Context, action string, c *sqin.Client, accountID string) audit.Event {
	e := audit.Event{RequestID: web.RequestID(ctx), Actor: audit.Actor{Kind: audit.ActorCitizen}, Action: action,
		Outcome: audit.Success}
	if accountID != "" {
		e.Actor = p.cfg.Audit.Pseudonyms.Citizen(accountID)
		e.Subject = e.Actor.ID
	}
	if c != nil {
		e.ClientID, e.PublicBody = c.ID, c.SectorID()
	}
	return e
}

// withAudit returns ctx carrying the event that make builds, for the
// store's next write to commit with its change (audit.With); ctx itself
// when the provider records nothing.
func (p *Provider) withAudit(ctx context.Context, make func() audit.Event) context.Context {
	if !p.auditing() {
		return ctx
	}
	return audit.With(ctx, make())
}

// appendAudit commits events that go with no write of their own, through
// the batcher, before the caller answers (docs/audit.md, rule 4); nil when
// the provider records nothing.
func (p *Provider) appendAudit(ctx context.Context, events ...audit.Event) error {
	if !p.auditing() {
		return nil
	}
	ptrs := make([]*audit.Event, len(events))
	for i := range events {
		ptrs[i] = &events[i]
	}
	return p.cfg.Audit.Batcher.Append(ctx, ptrs...)
}

// signinClient is the client a sign-in is for, when it continues an
// authorization request and the provider records events; nil otherwise.
func (p *Provider) signinClient(r *http.Request, reqID string) *sqin.Client {
	if reqID == "" || !p.auditing() {
		return nil
	}
	req, err := p.st.GetAuthRequest(r.Context(), reqID, p.now())
	if err != nil {
		return nil
	}
	c, err := p.client(r.Context(), req.ClientID)
	if err != nil {
		return nil
	}
	return c
}

// signinFailure is the event of a refused password sign-in (action
// signin.failure or signin.lockout). Whoever typed the password is not
// known: the actor is an anonymous citizen. The subject is the account's
// pseudonym when the identifier typed names an account, and empty when it
// names none: an unknown identifier is never recorded, not even as a
// pseudonym (it may be another person's address mistyped, and a keyed
// hash of a guessable identifier would let anyone holding the pseudonym
// key test guesses against the log). The detail is the same whether the
// password was wrong or the account locked, and both cases write through
// the same store calls, so that the response (content and timing) tells
// no one whether an account exists.
func (p *Provider) signinFailure(ctx context.Context, c *sqin.Client, acct *sqin.Account, action string) audit.Event {
	e := p.citizenEvent(ctx, action, c, "")
	if acct != nil {
		e.Subject = p.cfg.Audit.Pseudonyms.Account(acct.ID)
	}
	e.Outcome, e.Detail = audit.Failure, "password sign-in refused"
	return e
}

// scopeDetail names the scopes of a request in an event's detail, cut to
// what the detail holds (scopes are ASCII, RFC 6749 section 3.3).
func scopeDetail(scopes []string) string {
	d := "scope=" + strings.Join(scopes, " ")
	if len(d) > audit.MaxDetail {
		d = d[:audit.MaxDetail]
	}
	return d
}
