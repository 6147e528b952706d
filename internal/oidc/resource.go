package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/keys"
)

// verifiedAT is an access token that passed every check.
type verifiedAT struct {
	claims  atClaims
	grant   *sqin.Grant   // nil for client_credentials tokens
	account *sqin.Account // the grant's; nil when missing
	person  *sqin.Person  // the account's; nil when it has none
}

// verifyAccessToken checks signature, type, issuer, expiry, revocation and
// the grant behind a user token, reading revocation, grant, account and
// person in one store call.
func (p *Provider) verifyAccessToken(ctx context.Context, token string) (*verifiedAT, error) {
	if len(token) > 8192 {
		return nil, errBadToken
	}
	var v verifiedAT
	key := tokenKey(token)
	if cl, ok := p.verified.get(key, p.now()); ok {
		v.claims = cl
	} else {
		payload, err := p.keys.Verify(ctx, token, "at+jwt", keys.ES256)
		if err != nil {
			return nil, errBadToken
		}
		if err := json.Unmarshal(payload, &v.claims); err != nil {
			return nil, errBadToken
		}
		// A token's signature is checked once; revocation and the grant
		// are checked at every use, below.
		p.verified.put(key, v.claims, time.Unix(v.claims.Exp, 0), p.now())
	}
	now := p.now().Unix()
	if v.claims.Iss != p.cfg.Issuer || v.claims.Exp <= now || v.claims.Jti == "" {
		return nil, errBadToken
	}
	grantID, _, _ := strings.Cut(v.claims.Jti, ".")
	st, err := p.st.GetTokenState(ctx, v.claims.Jti, grantID)
	if err != nil {
		if errors.Is(err, sqin.ErrNotFound) {
			return nil, errBadToken
		}
		return nil, err
	}
	if st.Revoked {
		return nil, errBadToken
	}
	if grantID == "" {
		return &v, nil
	}
	g := st.Grant
	if !g.RevokedAt.IsZero() || !p.now().Before(g.ExpiresAt) {
		return nil, errBadToken
	}
	v.grant, v.account, v.person = g, st.Account, st.Person
	return &v, nil
}

var errBadToken = oerr(errInvalidToken, "the access token is invalid, expired or revoked")

// tokenKey is the verified-claims cache's key of an access token: its
// SHA-256, a 32-byte key instead of a token of several hundred bytes.
func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return string(sum[:])
}

// bearer extracts the access token and its scheme, Bearer or DPoP (RFC
// 6750 2.1, 2.2 — never the query; RFC 9449 7.1).
func bearer(r *http.Request) (tok string, dpop bool, err error) {
	h := r.Header.Get("Authorization")
	if h != "" {
		scheme, tok, ok := strings.Cut(h, " ")
		tok = strings.TrimSpace(tok)
		switch {
		case !ok || tok == "":
		case strings.EqualFold(scheme, "Bearer"):
			return tok, false, nil
		case strings.EqualFold(scheme, "DPoP"):
			return tok, true, nil
		}
		return "", false, oerr(errInvalidRequest, "Authorization header must be Bearer or DPoP")
	}
	if r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		form, err := formParams(r)
		if err != nil {
			return "", false, err
		}
		if t := form.Get("access_token"); t != "" {
			return t, false, nil
		}
	}
	return "", false, &oauthError{Code: "", status: http.StatusUnauthorized}
}

// checkBinding enforces a token's key binding at a resource: a DPoP-bound
// token needs the DPoP scheme and a proof by its key over this request and
// token; a bearer token cannot be sent as DPoP.
func (p *Provider) checkBinding(r *http.Request, v *verifiedAT, tok string, dpopScheme bool, url string) error {
	if v.claims.Cnf == nil {
		if dpopScheme {
			return errBadToken
		}
		return nil
	}
	if !dpopScheme {
		return oerr(errInvalidToken, "this access token is DPoP-bound: use the DPoP scheme with a proof")
	}
	proof, err := p.checkDPoP(r.Context(), r, url, tok)
	if err != nil {
		return err
	}
	if proof == nil {
		return oerr(errInvalidDPoP, "a DPoP proof is required with this access token")
	}
	if proof.jkt != v.claims.Cnf.JKT {
		return oerr(errInvalidDPoP, "the DPoP proof was made with another key than the token's")
	}
	return nil
}

func (p *Provider) handleUserinfo(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		writeJSON(w, http.StatusMethodNotAllowed, oerr(errInvalidRequest, "use GET or POST"))
		return
	}
	claims, err := p.userinfo(r)
	if err != nil {
		p.bearerError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, claims)
}

// userinfo answers the claims of the token's grant. When the provider
// audits, it answers only once the userinfo.disclosed event naming the
// claims released is committed (through the batcher: no other write).
func (p *Provider) userinfo(r *http.Request) (map[string]any, error) {
	ctx := r.Context()
	tok, dpopScheme, err := bearer(r)
	if err != nil {
		return nil, err
	}
	v, err := p.verifyAccessToken(ctx, tok)
	if err != nil {
		return nil, err
	}
	if err := p.checkBinding(r, v, tok, dpopScheme, p.endpointURL("/userinfo")); err != nil {
		return nil, err
	}
	scopes := strings.Fields(v.claims.Scope)
	if v.grant == nil || !slices.Contains(scopes, "openid") {
		return nil, oerr(errInsufficientScope, "the token was not issued for userinfo (scope openid)")
	}
	c, err := p.client(ctx, v.grant.ClientID)
	if err != nil {
		if errors.Is(err, sqin.ErrNotFound) {
			return nil, errBadToken
		}
		return nil, err
	}
	acct := v.account
	if acct == nil || acct.Locked {
		return nil, errBadToken
	}
	cr, _, _ := parseClaimsRequest(v.grant.Claims)
	out := map[string]any{"sub": v.claims.Sub}
	asked := userinfoClaims(c, scopes, cr)
	rel, err := p.decideRelease(ctx, c, asked)
	if err != nil {
		return nil, err
	}
	filled := rel.resolve(out, asked, acct, v.person)
	if p.auditing() {
		events := p.disclosureEvents(p.clientEvent(ctx, audit.UserinfoDisclosed, c, acct.ID), c, rel, filled)
		ptrs := make([]*audit.Event, len(events))
		for i := range events {
			ptrs[i] = &events[i]
		}
		if err := p.cfg.Audit.Batcher.Append(ctx, ptrs...); err != nil {
			return nil, fmt.Errorf("oidc: audit a userinfo disclosure: %w", err)
		}
	}
	return out, nil
}

// bearerError answers a protected resource error (RFC 6750 3).
func (p *Provider) bearerError(w http.ResponseWriter, r *http.Request, err error) {
	var oe *oauthError
	if !errors.As(err, &oe) {
		p.writeOAuthError(w, r, err)
		return
	}
	challenge := `Bearer realm="sqin"`
	status := oe.status
	if oe.Code == errInvalidDPoP || oe.Code == errUseNonce {
		// RFC 9449 7.1, 9: DPoP errors of a protected resource.
		challenge, status = `DPoP realm="sqin", algs="ES256 PS256 RS256 EdDSA"`, http.StatusUnauthorized
		if oe.Code == errUseNonce {
			p.setNonce(w)
		}
	}
	if oe.Code != "" {
		challenge += `, error="` + oe.Code + `"`
		if oe.Description != "" {
			challenge += `, error_description="` + oe.Description + `"`
		}
	}
	if oe.Code == errInsufficientScope {
		challenge += `, scope="openid"`
	}
	w.Header().Set("WWW-Authenticate", challenge)
	if status == 0 {
		status = statusFor(oe.Code)
	}
	if oe.Code == "" {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(status)
		return
	}
	writeJSON(w, status, oe)
}

func (p *Provider) handleRevoke(w http.ResponseWriter, r *http.Request) {
	if err := p.revoke(r); err != nil {
		p.writeOAuthError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

// revoke implements RFC 7009: revoking a refresh token revokes its whole
// grant (and so the access tokens of the grant); revoking an access token
// revokes that token. Unknown tokens and tokens of other clients are
// answered with success and left alone.
func (p *Provider) revoke(r *http.Request) error {
	ctx := r.Context()
	form, err := requireForm(r)
	if err != nil {
		return err
	}
	c, err := p.authenticateClient(r, form, p.endpointURL("/revoke"))
	if err != nil {
		return err
	}
	tok := form.Get("token")
	if tok == "" {
		return oerr(errInvalidRequest, "token is missing")
	}
	if len(tok) > 8192 {
		return nil
	}
	now := p.now()
	if form.Get("token_type_hint") != "access_token" {
		rt, err := p.st.GetRefreshToken(ctx, keys.Hash(tok))
		if err == nil {
			if rt.ClientID == c.ID {
				ctx, err := p.withRevoked(ctx, c, rt.GrantID, true, "refresh_token: its grant is revoked")
				if err != nil {
					return err
				}
				return p.st.RevokeGrant(ctx, rt.GrantID, now)
			}
			return nil
		}
		if !errors.Is(err, sqin.ErrNotFound) {
			return err
		}
	}
	payload, err := p.keys.Verify(ctx, tok, "at+jwt", keys.ES256)
	if err != nil {
		return nil
	}
	var cl atClaims
	if json.Unmarshal(payload, &cl) != nil || cl.ClientID != c.ID || cl.Jti == "" {
		return nil
	}
	if cl.Exp <= now.Unix() {
		return nil
	}
	grantID, _, _ := strings.Cut(cl.Jti, ".")
	ctx, err = p.withRevoked(ctx, c, grantID, false, "access_token")
	if err != nil {
		return err
	}
	return p.st.RevokeAccessToken(ctx, cl.Jti, time.Unix(cl.Exp, 0))
}

// withRevoked returns ctx carrying the token.revoked event of a revocation
// by client c of a token of grant grantID (none for client_credentials),
// for the revoking write to commit with it. A revocation that changes
// nothing drops it: the store drops it for an access token revoked before,
// and none is made when the grant to revoke (wholeGrant) is revoked already.
func (p *Provider) withRevoked(ctx context.Context, c *sqin.Client, grantID string, wholeGrant bool, detail string) (context.Context, error) {
	if !p.auditing() {
		return ctx, nil
	}
	var accountID string
	if grantID != "" {
		g, err := p.st.GetGrant(ctx, grantID)
		switch {
		case err == nil && wholeGrant && !g.RevokedAt.IsZero():
			return ctx, nil
		case err == nil:
			accountID = g.AccountID
		case !errors.Is(err, sqin.ErrNotFound):
			return ctx, err
		}
	}
	e := p.clientEvent(ctx, audit.TokenRevoked, c, accountID)
	e.Detail = detail
	return audit.With(ctx, e), nil
}

type introspection struct {
	Active    bool     `json:"active"`
	Scope     string   `json:"scope,omitempty"`
	ClientID  string   `json:"client_id,omitempty"`
	Sub       string   `json:"sub,omitempty"`
	Exp       int64    `json:"exp,omitempty"`
	Iat       int64    `json:"iat,omitempty"`
	Iss       string   `json:"iss,omitempty"`
	Aud       string   `json:"aud,omitempty"`
	TokenType string   `json:"token_type,omitempty"`
	ACR       string   `json:"acr,omitempty"`
	AMR       []string `json:"amr,omitempty"`
	AuthTime  int64    `json:"auth_time,omitempty"`
	Cnf       *cnf     `json:"cnf,omitempty"`
}

func (p *Provider) handleIntrospect(w http.ResponseWriter, r *http.Request) {
	res, err := p.introspect(r)
	if err != nil {
		p.writeOAuthError(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// introspect implements RFC 7662 for confidential clients. A client learns
// about tokens of its own public body (sector) only: a pairwise sub must
// not reach another body.
func (p *Provider) introspect(r *http.Request) (*introspection, error) {
	ctx := r.Context()
	form, err := requireForm(r)
	if err != nil {
		return nil, err
	}
	c, err := p.authenticateClient(r, form, p.endpointURL("/introspect"))
	if err != nil {
		return nil, err
	}
	if c.Public() {
		return nil, oerr(errInvalidClient, "public clients cannot introspect tokens")
	}
	tok := form.Get("token")
	if tok == "" {
		return nil, oerr(errInvalidRequest, "token is missing")
	}
	inactive := &introspection{Active: false}
	sameSector := func(clientID string) bool {
		if clientID == c.ID {
			return true
		}
		other, err := p.client(ctx, clientID)
		return err == nil && other.SectorID() == c.SectorID()
	}
	if form.Get("token_type_hint") != "access_token" {
		rt, err := p.st.GetRefreshToken(ctx, keys.Hash(tok))
		if err == nil {
			if rt.ClientID != c.ID || !rt.UsedAt.IsZero() || !p.now().Before(rt.ExpiresAt) {
				return inactive, nil
			}
			g, err := p.st.GetGrant(ctx, rt.GrantID)
			if err != nil || !g.RevokedAt.IsZero() {
				return inactive, nil
			}
			sub, err := p.Subject(ctx, c, g.AccountID)
			if err != nil {
				return nil, err
			}
			return &introspection{Active: true, Scope: strings.Join(g.Scopes, " "), ClientID: rt.ClientID,
				Sub: sub, Exp: rt.ExpiresAt.Unix(), Iat: rt.CreatedAt.Unix(), Iss: p.cfg.Issuer,
				TokenType: "refresh_token", ACR: g.LoA.ACR()}, nil
		}
		if !errors.Is(err, sqin.ErrNotFound) {
			return nil, err
		}
	}
	v, err := p.verifyAccessToken(ctx, tok)
	if err != nil {
		var oe *oauthError
		if errors.As(err, &oe) {
			return inactive, nil
		}
		return nil, err
	}
	if !sameSector(v.claims.ClientID) {
		return inactive, nil
	}
	tokenType := "Bearer"
	if v.claims.Cnf != nil {
		tokenType = "DPoP"
	}
	return &introspection{Active: true, Scope: v.claims.Scope, ClientID: v.claims.ClientID, Sub: v.claims.Sub,
		Exp: v.claims.Exp, Iat: v.claims.Iat, Iss: v.claims.Iss, Aud: v.claims.Aud, TokenType: tokenType,
		ACR: v.claims.ACR, AMR: v.claims.AMR, AuthTime: v.claims.AuthTime, Cnf: v.claims.Cnf}, nil
}
