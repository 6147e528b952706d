package oidc

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/keys"
)

// Hooks for the pages that authenticate a citizen outside the sign-in
// form (internal/signup: account creation, identity proofing, a password
// reset). They share the provider's session cookie and rules, so that the
// browser lands on /authorize/resume like after the sign-in form.

// SignIn starts an SSO session for the account, at the level the account
// has now, as the sign-in form does after a password: the browser's
// previous session ends (with its logout notifications), a new session
// identifier is set (no fixation), and the sign-in is audited.
//
// The session says truthfully how and when the citizen authenticated
// (amr, auth_time in tokens, which max_age and prompt=login rely on):
// when the browser's session is the same account's (a level raised by
// proofing), the new session keeps that session's amr and auth_time; else
// amr and authTime say it (e.g. "otp" and when the email code was
// entered), and an empty amr or a zero authTime is an error: no session
// is made without an authentication to name. When authRequest names a
// pending authorization request, it is bound to the new session and the
// returned path resumes it; otherwise the path is "/". A request that has
// expired meanwhile is not an error: the path is then "/".
func (p *Provider) SignIn(w http.ResponseWriter, r *http.Request, accountID string, amr []string, authTime time.Time,
	authRequest string) (string, error) {
	ctx := r.Context()
	now := p.now()
	acct, err := p.st.GetAccount(ctx, accountID)
	if err != nil {
		return "", fmt.Errorf("oidc: sign in: read account: %w", err)
	}
	if acct.Locked {
		return "", fmt.Errorf("oidc: sign in: account %w", sqin.ErrRevoked)
	}
	if old := p.cookies.Get(r, sessionCookie); old != "" && len(old) <= 100 {
		endCtx := ctx
		if prev, err := p.st.GetSession(ctx, keys.Hash(old), now); err == nil {
			if prev.AccountID == acct.ID {
				amr, authTime = prev.AMR, prev.AuthTime
			}
			endCtx = p.withAudit(ctx, func() audit.Event {
				e := p.citizenEvent(ctx, audit.SessionEnded, nil, prev.AccountID)
				e.Detail = "replaced by a new sign-in"
				return e
			})
		}
		if _, err := p.EndSession(endCtx, keys.Hash(old)); err != nil {
			return "", fmt.Errorf("oidc: sign in: end previous session: %w", err)
		}
	}
	if len(amr) == 0 || authTime.IsZero() {
		return "", &sqin.Error{Code: sqin.EInvalid, Op: "oidc.SignIn", Message: "no authentication method and time to sign in with"}
	}
	client := p.signinClient(r, authRequest)
	token := keys.Random(32)
	sess := &sqin.Session{ID: keys.Hash(token), AccountID: acct.ID, LoA: acct.LoA, AMR: amr,
		AuthTime: authTime.UTC().Truncate(time.Second), CreatedAt: now.UTC(), ExpiresAt: now.UTC().Add(p.cfg.SessionTTL)}
	signedIn := p.withAudit(ctx, func() audit.Event {
		e := p.citizenEvent(ctx, audit.SigninSuccess, client, acct.ID)
		e.Detail = "amr=" + strings.Join(amr, " ") + " loa=" + strconv.Itoa(int(acct.LoA)) + " after account creation or recovery"
		return e
	})
	if err := p.st.CreateSession(signedIn, sess); err != nil {
		return "", fmt.Errorf("oidc: sign in: create session: %w", err)
	}
	p.cookies.Set(w, sessionCookie, token, 0)
	if authRequest == "" {
		return "/", nil
	}
	switch err := p.st.SetAuthRequestSession(ctx, authRequest, sess.ID); {
	case errors.Is(err, sqin.ErrNotFound):
		return "/", nil
	case err != nil:
		return "", fmt.Errorf("oidc: sign in: bind the authorization request: %w", err)
	}
	if _, err := p.st.GetAuthRequest(ctx, authRequest, now); err != nil {
		return "/", nil // expired meanwhile: nothing to resume
	}
	return "/authorize/resume?req=" + url.QueryEscape(authRequest), nil
}

// SessionAccount returns the account of the browser's valid SSO session
// and the session's identifier, or "" when it has none.
func (p *Provider) SessionAccount(r *http.Request) (accountID, sessionID string) {
	s := p.currentSession(r)
	if s == nil {
		return "", ""
	}
	return s.AccountID, s.ID
}
