package oidc

import (
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/keys"
)

const sessionCookie = "sqin_session"

var (
	pkceChallengeRE = regexp.MustCompile(`^[A-Za-z0-9_-]{43}$`)
	pkceVerifierRE  = regexp.MustCompile(`^[A-Za-z0-9._~-]{43,128}$`)
)

// Limits on free-text parameters.
const (
	maxStateLen  = 2048
	maxNonceLen  = 512
	maxHintLen   = 320
	maxClaimsLen = 8192
)

// authzFailure is an authorization request error. When redirect is false
// the redirect URI cannot be trusted and the user sees an error page.
type authzFailure struct {
	*oauthError
	redirect bool
	page     string // catalogue key of the page message when not redirecting
}

// parseAuthorize validates an authorization request (OIDC Core 3.1.2.1,
// RFC 9700): client and redirect URI first, then everything else.
func (p *Provider) parseAuthorize(r *http.Request, q url.Values) (*sqin.AuthRequest, *sqin.Client, *authzFailure) {
	c, f := p.lookupClient(r, q.Get("client_id"))
	if f != nil {
		return nil, nil, f
	}
	redirectURI := q.Get("redirect_uri")
	if redirectURI == "" || !c.HasRedirectURI(redirectURI) {
		return nil, c, &authzFailure{oauthError: oerr(errInvalidRequest, "redirect_uri is not registered for this client"), page: "error.redirect_uri"}
	}
	fail := func(code, desc string) (*sqin.AuthRequest, *sqin.Client, *authzFailure) {
		return &sqin.AuthRequest{RedirectURI: redirectURI, State: q.Get("state")}, c, &authzFailure{oauthError: oerr(code, desc), redirect: true}
	}
	if len(q.Get("state")) > maxStateLen {
		return fail(errInvalidRequest, "state is too long")
	}
	if q.Has("request") || q.Has("request_uri") {
		return fail(errInvalidRequest, "request and request_uri cannot be nested")
	}
	dpopJKT := q.Get("dpop_jkt")
	if dpopJKT != "" && !pkceChallengeRE.MatchString(dpopJKT) {
		return fail(errInvalidRequest, "dpop_jkt must be a base64url SHA-256 JWK thumbprint")
	}
	if q.Get("response_type") != "code" {
		return fail(errUnsupportedResponse, "only response_type=code is supported")
	}
	if rm := q.Get("response_mode"); rm != "" && rm != "query" {
		return fail(errInvalidRequest, "only response_mode=query is supported")
	}
	if !c.HasGrant(sqin.GrantAuthorizationCode) {
		return fail(errUnauthorizedClient, "client may not use the authorization code flow")
	}
	scopes := strings.Fields(q.Get("scope"))
	if !slices.Contains(scopes, "openid") {
		return fail(errInvalidScope, "scope must include openid")
	}
	scopes = dedupe(scopes)
	for _, s := range scopes {
		if s != "openid" && !slices.Contains(c.Scopes, s) {
			return fail(errInvalidScope, "scope "+s+" is not allowed for this client")
		}
	}
	method, challenge := q.Get("code_challenge_method"), q.Get("code_challenge")
	if challenge == "" {
		return fail(errInvalidRequest, "code_challenge is required (PKCE S256)")
	}
	if method != "S256" {
		return fail(errInvalidRequest, "code_challenge_method must be S256")
	}
	if !pkceChallengeRE.MatchString(challenge) {
		return fail(errInvalidRequest, "code_challenge is malformed")
	}
	nonce := q.Get("nonce")
	if len(nonce) > maxNonceLen {
		return fail(errInvalidRequest, "nonce is too long")
	}
	prompt := strings.Fields(q.Get("prompt"))
	for _, pr := range prompt {
		switch pr {
		case "none", "login", "consent", "select_account":
		default:
			return fail(errInvalidRequest, "unsupported prompt value "+pr)
		}
	}
	if slices.Contains(prompt, "none") && len(prompt) > 1 {
		return fail(errInvalidRequest, "prompt=none cannot be combined with other values")
	}
	maxAge := -1
	if s := q.Get("max_age"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return fail(errInvalidRequest, "max_age must be a non-negative integer")
		}
		maxAge = n
	}
	claimsParam := q.Get("claims")
	if len(claimsParam) > maxClaimsLen {
		return fail(errInvalidRequest, "claims parameter is too long")
	}
	_, claimsJSON, err := parseClaimsRequest(claimsParam)
	if err != nil {
		return fail(errInvalidRequest, "claims parameter is not valid JSON")
	}
	if len(q.Get("login_hint")) > maxHintLen {
		return fail(errInvalidRequest, "login_hint is too long")
	}
	now := p.now().UTC()
	return &sqin.AuthRequest{
		ID:            keys.Random(24),
		ClientID:      c.ID,
		RedirectURI:   redirectURI,
		State:         q.Get("state"),
		Nonce:         nonce,
		Scopes:        scopes,
		Claims:        claimsJSON,
		CodeChallenge: challenge,
		Prompt:        prompt,
		MaxAge:        maxAge,
		LoginHint:     q.Get("login_hint"),
		UILocale:      q.Get("ui_locales"),
		ACRValues:     strings.Fields(q.Get("acr_values")),
		DPoPJKT:       dpopJKT,
		CreatedAt:     now,
		ExpiresAt:     now.Add(p.cfg.AuthRequestTTL),
	}, c, nil
}

// lookupClient finds the client of an authorization request; failures are
// shown on a page, since no redirect URI can be trusted yet.
func (p *Provider) lookupClient(r *http.Request, clientID string) (*sqin.Client, *authzFailure) {
	if clientID == "" {
		return nil, &authzFailure{oauthError: oerr(errInvalidRequest, "client_id is missing"), page: "error.client_missing"}
	}
	c, err := p.client(r.Context(), clientID)
	if err != nil {
		if !errors.Is(err, sqin.ErrNotFound) {
			p.logErr(r.Context(), "oidc: get client", err)
			return nil, &authzFailure{oauthError: oerr(errServerError, ""), page: "error.internal"}
		}
		return nil, &authzFailure{oauthError: oerr(errInvalidRequest, "unknown client"), page: "error.client_unknown"}
	}
	return c, nil
}

// readAuthorize turns the authorization endpoint's parameters into a
// validated request: through a pushed request_uri, through a signed request
// object, or from plain parameters, and enforces the clients that must use
// PAR (per client, FAPI 2.0, or everyone).
func (p *Provider) readAuthorize(r *http.Request, q url.Values) (*sqin.AuthRequest, *sqin.Client, *authzFailure) {
	if q.Has("request_uri") {
		return p.pushedRequest(r, q)
	}
	if raw := q.Get("request"); raw != "" {
		c, f := p.lookupClient(r, q.Get("client_id"))
		if f != nil {
			return nil, nil, f
		}
		ro, err := p.requestObject(r.Context(), c, raw)
		if err != nil {
			var oe *oauthError
			errors.As(err, &oe)
			return nil, c, &authzFailure{oauthError: oe, page: "error.request_object"}
		}
		q = ro
	}
	req, c, f := p.parseAuthorize(r, q)
	if f == nil && (c.RequirePAR || c.FAPI2() || p.cfg.RequirePAR) {
		f = &authzFailure{oauthError: oerr(errInvalidRequest, "this client must use pushed authorization requests (PAR)"), redirect: true}
	}
	return req, c, f
}

func dedupe(s []string) []string {
	out := s[:0:0]
	for _, v := range s {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// requiredLoA is the level a request needs: the client's minimum, raised to
// the lowest level among the acr_values it names (levels are ordered, so a
// higher one satisfies a lower one) and among essential acr claim values.
func requiredLoA(c *sqin.Client, req *sqin.AuthRequest) sqin.LoA {
	need := c.MinLoA
	if need < sqin.LoA1 {
		need = sqin.LoA1
	}
	raise := func(values []string) {
		var lowest sqin.LoA
		for _, v := range values {
			if l, ok := sqin.ParseACR(v); ok && (lowest == 0 || l < lowest) {
				lowest = l
			}
		}
		if lowest > need {
			need = lowest
		}
	}
	raise(req.ACRValues)
	if cr, _, err := parseClaimsRequest(req.Claims); err == nil && cr != nil {
		if spec := cr.IDToken["acr"]; spec != nil && spec.Essential {
			var vals []string
			if s, ok := spec.Value.(string); ok {
				vals = append(vals, s)
			}
			for _, v := range spec.Values {
				if s, ok := v.(string); ok {
					vals = append(vals, s)
				}
			}
			raise(vals)
		}
	}
	return need
}

func (p *Provider) handleAuthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	lang := p.lang(r, r.URL.Query().Get("ui_locales"))
	q, err := formParams(r)
	if err != nil {
		p.errorPage(w, r, lang, http.StatusBadRequest, "error.bad_request")
		return
	}
	req, c, f := p.readAuthorize(r, q)
	if f != nil {
		if !f.redirect {
			status := http.StatusBadRequest
			if f.Code == errServerError {
				status = http.StatusInternalServerError
			}
			p.errorPage(w, r, lang, status, f.page)
			return
		}
		p.redirectError(w, r, req.RedirectURI, req.State, f.oauthError)
		return
	}
	// The session and its consent to the client in one read.
	sess, con := p.sessionConsent(r, c.ID)
	now := p.now()
	needLogin := sess == nil || slices.Contains(req.Prompt, "login") ||
		(req.MaxAge >= 0 && now.Sub(sess.AuthTime) > time.Duration(req.MaxAge)*time.Second)
	if needLogin {
		if req.Pushed && !p.takePushed(r, req) {
			p.errorPage(w, r, lang, http.StatusBadRequest, errRequestURI.page)
			return
		}
		if slices.Contains(req.Prompt, "none") {
			p.redirectError(w, r, req.RedirectURI, req.State, oerr(errLoginRequired, "the user is not signed in"))
			return
		}
		if err := p.st.CreateAuthRequest(r.Context(), req); err != nil {
			p.logErr(r.Context(), "oidc: save authorization request", err)
			p.redirectError(w, r, req.RedirectURI, req.State, oerr(errServerError, ""))
			return
		}
		p.setLang(w, lang)
		http.Redirect(w, r, "/login?req="+url.QueryEscape(req.ID), http.StatusSeeOther)
		return
	}
	req.SessionID = sess.ID
	p.proceed(w, r, req, c, sess, false, func() (*sqin.Consent, error) { return con, nil })
}

// handleResume continues a stored request after sign-in.
func (p *Provider) handleResume(w http.ResponseWriter, r *http.Request) {
	req, c, sess, ok := p.pendingRequest(w, r, r.URL.Query().Get("req"))
	if !ok {
		return
	}
	p.proceed(w, r, req, c, sess, true, func() (*sqin.Consent, error) {
		con, err := p.st.GetConsent(r.Context(), sess.AccountID, c.ID)
		if errors.Is(err, sqin.ErrNotFound) {
			return nil, nil
		}
		return con, err
	})
}

// pendingRequest loads a stored request that the current browser session
// signed in for; on failure it has already answered.
func (p *Provider) pendingRequest(w http.ResponseWriter, r *http.Request, id string) (*sqin.AuthRequest, *sqin.Client, *sqin.Session, bool) {
	ctx := r.Context()
	lang := p.lang(r, "")
	req, err := p.st.GetAuthRequest(ctx, id, p.now())
	if err != nil {
		if !errors.Is(err, sqin.ErrNotFound) && !errors.Is(err, sqin.ErrExpired) {
			p.logErr(ctx, "oidc: get authorization request", err)
		}
		p.errorPage(w, r, lang, http.StatusBadRequest, "error.request_expired")
		return nil, nil, nil, false
	}
	sess := p.currentSession(r)
	if sess == nil || req.SessionID == "" || sess.ID != req.SessionID {
		p.errorPage(w, r, lang, http.StatusBadRequest, "error.request_expired")
		return nil, nil, nil, false
	}
	c, err := p.st.GetClient(ctx, req.ClientID)
	if err != nil {
		p.errorPage(w, r, lang, http.StatusBadRequest, "error.client_unknown")
		return nil, nil, nil, false
	}
	return req, c, sess, true
}

// proceed finishes a request for a signed-in user: level of assurance,
// consent, then the code. stored tells whether req is in storage (a pushed
// request not yet redeemed is not); consent returns the account's consent
// to c (nil when none).
func (p *Provider) proceed(w http.ResponseWriter, r *http.Request, req *sqin.AuthRequest, c *sqin.Client, sess *sqin.Session, stored bool,
	consent func() (*sqin.Consent, error)) {
	ctx := r.Context()
	if sess.LoA < requiredLoA(c, req) {
		p.finishWithError(w, r, req, stored, oerr(errUnmetAuthn, "the account has not reached the level of assurance required"))
		return
	}
	cr, _, _ := parseClaimsRequest(req.Claims)
	released, rel, err := p.consentClaims(ctx, c, req.Scopes, cr)
	if err != nil {
		p.logErr(ctx, "oidc: legal release rule", err)
		p.finishWithError(w, r, req, stored, oerr(errServerError, ""))
		return
	}
	if claim, reason := rel.withheldEssential(cr); claim != "" {
		// The refusal is audited; the client learns precisely why.
		if p.auditing() {
			e, _ := withheldEvent(p.clientEvent(ctx, audit.RegistryWithheld, c, sess.AccountID), rel)
			if err := p.commitEvent(ctx, e); err != nil {
				p.logErr(ctx, "oidc: audit a withheld claim", err)
				p.finishWithError(w, r, req, stored, oerr(errServerError, ""))
				return
			}
		}
		p.finishWithError(w, r, req, stored, oerr(errAccessDenied, withheldDescription(claim, reason)))
		return
	}
	consented := false
	if !slices.Contains(req.Prompt, "consent") {
		con, err := consent()
		switch {
		case err != nil:
			p.logErr(ctx, "oidc: get consent", err)
			p.finishWithError(w, r, req, stored, oerr(errServerError, ""))
			return
		case con != nil:
			consented = con.Covers(req.Scopes, released)
		}
	}
	if !consented {
		if slices.Contains(req.Prompt, "none") {
			p.finishWithError(w, r, req, stored, oerr(errConsentRequired, "the user has not consented"))
			return
		}
		if !stored {
			if req.Pushed && !p.takePushed(r, req) {
				p.errorPage(w, r, p.lang(r, ""), http.StatusBadRequest, errRequestURI.page)
				return
			}
			if err := p.st.CreateAuthRequest(ctx, req); err != nil {
				p.logErr(ctx, "oidc: save authorization request", err)
				p.redirectError(w, r, req.RedirectURI, req.State, oerr(errServerError, ""))
				return
			}
		}
		http.Redirect(w, r, "/consent?req="+url.QueryEscape(req.ID), http.StatusSeeOther)
		return
	}
	p.issueCode(w, r, req, c, sess, stored)
}

func (p *Provider) finishWithError(w http.ResponseWriter, r *http.Request, req *sqin.AuthRequest, stored bool, e *oauthError) {
	switch {
	case stored:
		_ = p.st.DeleteAuthRequest(r.Context(), req.ID)
	case req.Pushed && !p.takePushed(r, req):
		p.errorPage(w, r, p.lang(r, ""), http.StatusBadRequest, errRequestURI.page)
		return
	}
	p.redirectError(w, r, req.RedirectURI, req.State, e)
}

// issueCode stores a single-use code and redirects to the client. The code
// and the end of the request it answers (stored, or pushed and not yet
// redeemed) are one write: of concurrent answers to one request, one gets
// a code.
func (p *Provider) issueCode(w http.ResponseWriter, r *http.Request, req *sqin.AuthRequest, c *sqin.Client, sess *sqin.Session, stored bool) {
	ctx := r.Context()
	code := keys.Random(32)
	now := p.now().UTC()
	ac := &sqin.AuthCode{
		Hash: keys.Hash(code), ClientID: c.ID, AccountID: sess.AccountID, SessionID: sess.ID,
		RedirectURI: req.RedirectURI, Nonce: req.Nonce, Scopes: req.Scopes, Claims: req.Claims,
		CodeChallenge: req.CodeChallenge, LoA: sess.LoA, AMR: sess.AMR, AuthTime: sess.AuthTime,
		GrantID: keys.Random(18), DPoPJKT: req.DPoPJKT, ExpiresAt: now.Add(p.cfg.CodeTTL),
	}
	var err error
	switch {
	case stored, req.Pushed:
		err = p.st.IssueCode(ctx, ac, req.ID, !stored, now)
		if errors.Is(err, sqin.ErrNotFound) {
			page := "error.request_expired"
			if !stored {
				page = errRequestURI.page
			}
			p.errorPage(w, r, p.lang(r, ""), http.StatusBadRequest, page)
			return
		}
	default:
		err = p.st.CreateAuthCode(ctx, ac)
	}
	if err != nil {
		p.logErr(ctx, "oidc: save code", err)
		p.finishWithError(w, r, req, stored, oerr(errServerError, ""))
		return
	}
	q := url.Values{"code": {code}, "iss": {p.cfg.Issuer}}
	if req.State != "" {
		q.Set("state", req.State)
	}
	http.Redirect(w, r, appendQuery(req.RedirectURI, q), http.StatusSeeOther)
}

// sessionConsent returns the browser's valid session and its account's
// consent to clientID (nil when none), in one read; nil, nil without a
// session.
func (p *Provider) sessionConsent(r *http.Request, clientID string) (*sqin.Session, *sqin.Consent) {
	v := p.cookies.Get(r, sessionCookie)
	if v == "" || len(v) > 100 {
		return nil, nil
	}
	s, con, err := p.st.GetSessionConsent(r.Context(), keys.Hash(v), clientID, p.now())
	if err != nil {
		if !errors.Is(err, sqin.ErrNotFound) && !errors.Is(err, sqin.ErrExpired) {
			p.logErr(r.Context(), "oidc: get session", err)
		}
		return nil, nil
	}
	return s, con
}

// currentSession returns the browser's valid session, or nil.
func (p *Provider) currentSession(r *http.Request) *sqin.Session {
	v := p.cookies.Get(r, sessionCookie)
	if v == "" || len(v) > 100 {
		return nil
	}
	s, err := p.st.GetSession(r.Context(), keys.Hash(v), p.now())
	if err != nil {
		if !errors.Is(err, sqin.ErrNotFound) && !errors.Is(err, sqin.ErrExpired) {
			p.logErr(r.Context(), "oidc: get session", err)
		}
		return nil
	}
	return s
}
