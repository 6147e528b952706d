package oidc

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/store"
)

type tokenResponse struct {
	AccessToken  string `json:"access_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	IDToken      string `json:"id_token,omitempty"`
	RefreshToken string `json:"refresh_token,omitempty"`
	Scope        string `json:"scope,omitempty"`
}

// requireForm checks a POST with an urlencoded body and returns its
// parameters.
func requireForm(r *http.Request) (url.Values, error) {
	if r.Method != http.MethodPost {
		return nil, &oauthError{Code: errInvalidRequest, Description: "use POST", status: http.StatusMethodNotAllowed}
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || ct != "application/x-www-form-urlencoded" {
		return nil, oerr(errInvalidRequest, "body must be application/x-www-form-urlencoded")
	}
	return formParams(r)
}

func (p *Provider) handleToken(w http.ResponseWriter, r *http.Request) {
	if p.cfg.DPoPNonce {
		p.setNonce(w)
	}
	if err := p.token(w, r); err != nil {
		p.writeOAuthError(w, r, err)
	}
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) error {
	form, err := requireForm(r)
	if err != nil {
		return err
	}
	gt := form.Get("grant_type")
	if gt == "" {
		return oerr(errInvalidRequest, "grant_type is missing")
	}
	ctx := r.Context()
	c, proof, once, err := p.authenticate(r, form, p.endpointURL("/token"))
	if err != nil {
		return err
	}
	if proof == nil && (c.RequireDPoP || c.FAPI2()) {
		return p.spend(ctx, once, oerr(errInvalidDPoP, "this client must send a DPoP proof with every token request"))
	}
	switch gt {
	case sqin.GrantAuthorizationCode, sqin.GrantRefreshToken, sqin.GrantClientCredentials:
		if !c.HasGrant(gt) {
			return p.spend(ctx, once, oerr(errUnauthorizedClient, "client may not use grant type "+gt))
		}
	default:
		return p.spend(ctx, once, oerr(errUnsupportedGrant, "grant type "+gt+" is not supported"))
	}
	var resp *tokenResponse
	switch gt {
	case sqin.GrantAuthorizationCode:
		// The code's redemption records the request's jti (assertion,
		// proof) in its transaction, as the refresh token's rotation does.
		resp, err = p.exchangeCode(ctx, c, form, proof, once)
	case sqin.GrantRefreshToken:
		resp, err = p.refresh(ctx, c, form, proof, once)
	case sqin.GrantClientCredentials:
		// No write of its own: the jti are recorded before the token and
		// its event exist.
		if err := p.useOnce(ctx, once...); err != nil {
			return err
		}
		resp, err = p.clientCredentials(ctx, c, form, proof)
	}
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, resp)
	return nil
}

// HashSecret returns the stored form of a client secret: client secrets
// are generated with at least 96 bits of entropy (the CLI refuses shorter
// ones), so a salted SHA-256 is as strong as a slow hash would be and keeps
// the token endpoint fast.
func HashSecret(secret string) string {
	salt := keys.Random(16)
	return "sha256$" + salt + "$" + secretDigest(salt, secret)
}

func secretDigest(salt, secret string) string {
	sum := sha256.Sum256([]byte(salt + "\x00" + secret))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// VerifySecret checks secret against HashSecret's output in constant time.
func VerifySecret(stored, secret string) bool {
	parts := strings.Split(stored, "$")
	if len(parts) != 3 || parts[0] != "sha256" {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(secretDigest(parts[1], secret)), []byte(parts[2])) == 1
}

func (p *Provider) exchangeCode(ctx context.Context, c *sqin.Client, form url.Values, proof *dpopProof, once []store.OnceKey) (*tokenResponse, error) {
	code, verifier, redirectURI := form.Get("code"), form.Get("code_verifier"), form.Get("redirect_uri")
	switch {
	case code == "" || len(code) > 256:
		return nil, p.spend(ctx, once, oerr(errInvalidRequest, "code is missing"))
	case verifier == "":
		return nil, p.spend(ctx, once, oerr(errInvalidRequest, "code_verifier is required (PKCE)"))
	case !pkceVerifierRE.MatchString(verifier):
		return nil, p.spend(ctx, once, oerr(errInvalidRequest, "code_verifier is malformed"))
	}
	// Everything the transaction needs that does not depend on the code is
	// computed before it: on SQLite it holds the one writer.
	now := p.now().UTC()
	sum := sha256.Sum256([]byte(verifier))
	challenge := base64.RawURLEncoding.EncodeToString(sum[:])
	codeHash := keys.Hash(code)
	var refresh, refreshHash string
	if c.HasGrant(sqin.GrantRefreshToken) {
		refresh = keys.Random(32)
		refreshHash = keys.Hash(refresh)
	}
	var grant *sqin.Grant
	var cr *claimsRequest
	var holder store.Holder
	var nonce string
	if p.auditing() {
		// token.issued is added inside issue: it commits with the
		// redemption or not at all.
		ctx = audit.Recorder(ctx)
	}
	err := p.st.RedeemCode(ctx, codeHash, now, once, c.SectorID(), func(ac *sqin.AuthCode, h store.Holder) (*sqin.Grant, *sqin.RefreshToken, error) {
		if ac.ClientID != c.ID {
			return nil, nil, oerr(errInvalidGrant, "code was issued to another client")
		}
		if ac.RedirectURI != redirectURI {
			return nil, nil, oerr(errInvalidGrant, "redirect_uri does not match the authorization request")
		}
		if subtle.ConstantTimeCompare([]byte(challenge), []byte(ac.CodeChallenge)) != 1 {
			return nil, nil, oerr(errInvalidGrant, "code_verifier does not match the code_challenge")
		}
		if ac.DPoPJKT != "" && (proof == nil || proof.jkt != ac.DPoPJKT) {
			return nil, nil, oerr(errInvalidGrant, "the code is bound to another DPoP key")
		}
		if err := usableHolder(h); err != nil {
			return nil, nil, err
		}
		holder, nonce = h, ac.Nonce
		offline := slices.Contains(ac.Scopes, "offline_access") && c.HasGrant(sqin.GrantRefreshToken)
		grant = &sqin.Grant{ID: ac.GrantID, ClientID: c.ID, AccountID: ac.AccountID, SessionID: ac.SessionID,
			Scopes: ac.Scopes, Claims: ac.Claims, LoA: ac.LoA, AMR: ac.AMR, AuthTime: ac.AuthTime,
			Offline: offline, CreatedAt: now, ExpiresAt: now.Add(p.cfg.SessionTTL)}
		if proof != nil && c.Public() {
			// A public client's refresh tokens are bound to its DPoP key
			// (RFC 9449 5); a confidential client's, to its credentials.
			grant.DPoPJKT = proof.jkt
		}
		if offline {
			grant.ExpiresAt = now.Add(p.cfg.OfflineTTL)
		} else if slices.Contains(grant.Scopes, "offline_access") {
			grant.Scopes = slices.DeleteFunc(slices.Clone(grant.Scopes), func(s string) bool { return s == "offline_access" })
		}
		var rt *sqin.RefreshToken
		if refreshHash != "" {
			rt = &sqin.RefreshToken{Hash: refreshHash, GrantID: grant.ID, ClientID: c.ID,
				CreatedAt: now, ExpiresAt: grant.ExpiresAt}
		}
		cr, _, _ = parseClaimsRequest(grant.Claims)
		if p.auditing() {
			p.addIssued(ctx, c, grant, cr, sqin.GrantAuthorizationCode, grant.Scopes)
		}
		return grant, rt, nil
	})
	if err != nil {
		p.auditReplay(ctx, c, err, "code")
		return nil, grantError(err, "code")
	}
	return p.userTokens(ctx, c, grant, cr, holder, nonce, refresh, grant.Scopes, true, proof)
}

// usableHolder refuses tokens for an account that is missing or locked.
func usableHolder(h store.Holder) error {
	switch {
	case h.Account == nil:
		return oerr(errInvalidGrant, "the account no longer exists")
	case h.Account.Locked:
		return errLocked
	}
	return nil
}

var errLocked = oerr(errInvalidGrant, "the account is locked")

// addIssued records, inside the store callback that decides it, the
// token.issued event of a citizen's grant: the claims the grant releases
// (ID token and userinfo), the grant type and scopes.
func (p *Provider) addIssued(ctx context.Context, c *sqin.Client, g *sqin.Grant, cr *claimsRequest, grantType string, scopes []string) {
	e := p.clientEvent(ctx, audit.TokenIssued, c, g.AccountID)
	e.Attributes = releasedClaims(c, scopes, cr) // what the grant may release (consented); the rule filters each disclosure
	e.Detail = issuedDetail(grantType, scopes)
	audit.Add(ctx, e)
}

// auditReplay records the revocation a replayed code or refresh token
// caused in the store (committed there already, so through the batcher).
func (p *Provider) auditReplay(ctx context.Context, c *sqin.Client, err error, what string) {
	if !p.auditing() || !errors.Is(err, sqin.ErrReplay) {
		return
	}
	e := p.clientEvent(ctx, audit.TokenRevoked, c, "")
	e.Detail = what + " replayed: its grant is revoked"
	if err := p.commitEvent(ctx, e); err != nil {
		p.logErr(ctx, "oidc: audit a replay", err)
	}
}

// grantError maps store errors on codes and refresh tokens to invalid_grant,
// and replayed jti of the request to their error.
func grantError(err error, what string) error {
	var oe *oauthError
	var rk *store.ReplayedKeys
	switch {
	case errors.As(err, &rk):
		return spentError(err)
	case errors.As(err, &oe):
		return oe
	case errors.Is(err, sqin.ErrNotFound):
		return oerr(errInvalidGrant, what+" is invalid")
	case errors.Is(err, sqin.ErrExpired):
		return oerr(errInvalidGrant, what+" has expired")
	case errors.Is(err, sqin.ErrReplay):
		return oerr(errInvalidGrant, what+" was already used; the tokens it issued are revoked")
	case errors.Is(err, sqin.ErrRevoked):
		return oerr(errInvalidGrant, what+" was revoked")
	}
	return err
}

func (p *Provider) refresh(ctx context.Context, c *sqin.Client, form url.Values, proof *dpopProof, once []store.OnceKey) (*tokenResponse, error) {
	token := form.Get("refresh_token")
	if token == "" || len(token) > 256 {
		return nil, p.spend(ctx, once, oerr(errInvalidRequest, "refresh_token is missing"))
	}
	var scopes []string
	if s := form.Get("scope"); s != "" {
		scopes = dedupe(strings.Fields(s))
	}
	// Everything the rotation needs that does not depend on the token is
	// computed before its transaction (on SQLite it holds the one writer).
	now := p.now().UTC()
	tokenHash := keys.Hash(token)
	next := keys.Random(32)
	nextHash := keys.Hash(next)
	var grant *sqin.Grant
	var cr *claimsRequest
	var holder store.Holder
	locked := false
	if p.auditing() {
		ctx = audit.Recorder(ctx)
	}
	err := p.st.RotateRefresh(ctx, tokenHash, now, once, c.SectorID(), func(rt *sqin.RefreshToken, g *sqin.Grant, h store.Holder) (*sqin.RefreshToken, error) {
		if rt.ClientID != c.ID {
			return nil, oerr(errInvalidGrant, "refresh token was issued to another client")
		}
		if g.DPoPJKT != "" && (proof == nil || proof.jkt != g.DPoPJKT) {
			return nil, oerr(errInvalidGrant, "the refresh token is bound to another DPoP key")
		}
		for _, s := range scopes {
			if !slices.Contains(g.Scopes, s) {
				return nil, oerr(errInvalidScope, "scope "+s+" exceeds the original grant")
			}
		}
		if err := usableHolder(h); err != nil {
			locked = err == errLocked
			return nil, err
		}
		grant, holder = g, h
		cr, _, _ = parseClaimsRequest(g.Claims)
		if p.auditing() {
			issued := scopes
			if issued == nil {
				issued = g.Scopes
			}
			p.addIssued(ctx, c, g, cr, sqin.GrantRefreshToken, issued)
		}
		return &sqin.RefreshToken{Hash: nextHash, GrantID: g.ID, ClientID: c.ID, CreatedAt: now, ExpiresAt: g.ExpiresAt}, nil
	})
	if locked {
		// A locked account's grant dies: every token of the family.
		p.revokeLocked(ctx, c, tokenHash)
	}
	if err != nil {
		p.auditReplay(ctx, c, err, "refresh token")
		return nil, grantError(err, "refresh token")
	}
	// An ID token on refresh is optional (OIDC Core 12.2): it costs a
	// signature, so it is issued when the client asks for it by naming
	// openid in the request's scope.
	idToken := slices.Contains(scopes, "openid")
	if scopes == nil {
		scopes = grant.Scopes
	}
	return p.userTokens(ctx, c, grant, cr, holder, "", next, scopes, idToken, proof)
}

// revokeLocked revokes, with its token.revoked event, the grant of a
// refresh token refused because its account is locked.
func (p *Provider) revokeLocked(ctx context.Context, c *sqin.Client, tokenHash string) {
	rt, err := p.st.GetRefreshToken(ctx, tokenHash)
	if err != nil {
		p.logErr(ctx, "oidc: the refresh token of a locked account", err)
		return
	}
	if p.auditing() {
		ctx, err = p.withRevoked(ctx, c, rt.GrantID, true, "account locked")
		if err != nil {
			p.logErr(ctx, "oidc: audit the revocation of a locked account's grant", err)
			return
		}
	}
	if err := p.st.RevokeGrant(ctx, rt.GrantID, p.now()); err != nil {
		p.logErr(ctx, "oidc: revoke the grant of a locked account", err)
	}
}

// userTokens builds the access token and, with idToken, the ID token for
// a grant whose claims request is cr, held by h (read with the grant).
func (p *Provider) userTokens(ctx context.Context, c *sqin.Client, g *sqin.Grant, cr *claimsRequest, h store.Holder, nonce, refresh string, scopes []string, idToken bool, proof *dpopProof) (*tokenResponse, error) {
	acct := h.Account
	now := p.now()
	sub := p.subjectOf(c, acct.ID, h.Legacy)
	at, tokenType, err := p.accessToken(ctx, c, sub, g.ID, scopes, g, now, proof)
	if err != nil {
		return nil, err
	}
	resp := &tokenResponse{AccessToken: at, TokenType: tokenType, ExpiresIn: int(p.cfg.AccessTTL.Seconds()),
		RefreshToken: refresh, Scope: strings.Join(scopes, " ")}
	if !idToken {
		return resp, nil
	}
	idt := map[string]any{
		"iss": p.cfg.Issuer, "sub": sub, "aud": c.ID, "azp": c.ID,
		"iat": now.Unix(), "exp": now.Add(p.cfg.IDTokenTTL).Unix(),
		"auth_time": g.AuthTime.Unix(), "acr": g.LoA.ACR(), "amr": g.AMR,
	}
	if g.SessionID != "" {
		idt["sid"] = p.sid(g.SessionID)
	}
	if nonce != "" {
		idt["nonce"] = nonce
	}
	if cr != nil && len(cr.IDToken) > 0 {
		var person *sqin.Person
		if acct.PersonID != "" {
			if person, err = p.st.GetPerson(ctx, acct.PersonID); err != nil && !errors.Is(err, sqin.ErrNotFound) {
				return nil, err
			}
		}
		asked := idTokenClaims(c, cr)
		rel, err := p.decideRelease(ctx, c, asked)
		if err != nil {
			return nil, err
		}
		filled := rel.resolve(idt, asked, acct, person)
		if p.auditing() && (len(filled) > 0 || len(rel.withheld) > 0) {
			// Claims in the ID token are a disclosure of their own.
			base := p.clientEvent(ctx, audit.RegistryDisclosed, c, acct.ID)
			base.Detail = "id_token"
			for _, e := range p.disclosureEvents(base, c, rel, filled) {
				if err := p.commitEvent(ctx, e); err != nil {
					return nil, fmt.Errorf("oidc: audit an ID token disclosure: %w", err)
				}
			}
		}
	}
	alg := c.SigningAlg
	if alg == "" {
		alg = keys.ES256
	}
	if resp.IDToken, err = p.keys.Sign(ctx, alg, "JWT", idt); err != nil {
		return nil, err
	}
	return resp, nil
}

// subjectOf is Subject (provider.go) once the legacy sub of c's sector is
// known: legacy when there is one, the account ID for public-subject
// clients, the sector's pairwise sub otherwise.
func (p *Provider) subjectOf(c *sqin.Client, accountID, legacy string) string {
	switch {
	case legacy != "":
		return legacy
	case c.SubjectType == sqin.SubjectPublic:
		return accountID
	}
	return p.pairwise(c.SectorID(), accountID)
}

// atClaims are an access token's claims (RFC 9068). jti is the grant
// identifier, a dot, and a random part: the grant is what userinfo and
// introspection check.
type atClaims struct {
	Iss      string   `json:"iss"`
	Sub      string   `json:"sub"`
	Aud      string   `json:"aud"`
	ClientID string   `json:"client_id"`
	Iat      int64    `json:"iat"`
	Exp      int64    `json:"exp"`
	Jti      string   `json:"jti"`
	Scope    string   `json:"scope,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	Cnf      *cnf     `json:"cnf,omitempty"`
}

// cnf binds a token to a key (RFC 7800; RFC 9449 6.1).
type cnf struct {
	JKT string `json:"jkt"`
}

// accessToken signs an access token, bound to the proof's key when there
// is one; it returns the token and its type (Bearer or DPoP).
func (p *Provider) accessToken(ctx context.Context, c *sqin.Client, sub, grantID string, scopes []string, g *sqin.Grant, now time.Time, proof *dpopProof) (string, string, error) {
	cl := atClaims{Iss: p.cfg.Issuer, Sub: sub, Aud: p.cfg.Issuer, ClientID: c.ID, Iat: now.Unix(),
		Exp: now.Add(p.cfg.AccessTTL).Unix(), Jti: grantID + "." + keys.Random(12), Scope: strings.Join(scopes, " ")}
	if g != nil {
		cl.AuthTime, cl.ACR, cl.AMR = g.AuthTime.Unix(), g.LoA.ACR(), g.AMR
	}
	tokenType := "Bearer"
	if proof != nil {
		cl.Cnf, tokenType = &cnf{JKT: proof.jkt}, "DPoP"
	}
	at, err := p.keys.Sign(ctx, keys.ES256, "at+jwt", cl)
	if err != nil {
		return "", "", err
	}
	if grantID != "" {
		// A citizen's token goes to userinfo next, often on this instance:
		// its claims are known, so its signature need not be checked
		// there (revocation and the grant still are, at every use).
		p.verified.put(tokenKey(at), cl, time.Unix(cl.Exp, 0), now)
	}
	return at, tokenType, nil
}

func (p *Provider) clientCredentials(ctx context.Context, c *sqin.Client, form url.Values, proof *dpopProof) (*tokenResponse, error) {
	if c.Public() {
		return nil, oerr(errUnauthorizedClient, "public clients cannot use client_credentials")
	}
	scopes := dedupe(strings.Fields(form.Get("scope")))
	for _, s := range scopes {
		if s == "openid" || s == "offline_access" || !slices.Contains(c.Scopes, s) {
			return nil, oerr(errInvalidScope, "scope "+s+" is not allowed for this client")
		}
	}
	at, tokenType, err := p.accessToken(ctx, c, c.ID, "", scopes, nil, p.now(), proof)
	if err != nil {
		return nil, err
	}
	if p.auditing() {
		// No write of its own: the token leaves once its event is
		// committed (with others', through the batcher).
		e := p.clientEvent(ctx, audit.TokenIssued, c, "")
		e.Detail = issuedDetail(sqin.GrantClientCredentials, scopes)
		if err := p.commitEvent(ctx, e); err != nil {
			return nil, fmt.Errorf("oidc: audit a client_credentials token: %w", err)
		}
	}
	return &tokenResponse{AccessToken: at, TokenType: tokenType, ExpiresIn: int(p.cfg.AccessTTL.Seconds()),
		Scope: strings.Join(scopes, " ")}, nil
}
