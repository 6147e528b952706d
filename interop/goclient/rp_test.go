package goclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// rp is a relying party built on go-oidc and x/oauth2, as a public body's
// service would be.
type rp struct {
	srv      *Server
	spec     ClientSpec
	provider *oidc.Provider
	cfg      oauth2.Config
	verifier *oidc.IDTokenVerifier
	meta     providerMeta
}

// providerMeta is the part of discovery that go-oidc does not expose.
type providerMeta struct {
	Issuer                     string   `json:"issuer"`
	RevocationEndpoint         string   `json:"revocation_endpoint"`
	IntrospectionEndpoint      string   `json:"introspection_endpoint"`
	EndSessionEndpoint         string   `json:"end_session_endpoint"`
	CodeChallengeMethods       []string `json:"code_challenge_methods_supported"`
	IDTokenAlgs                []string `json:"id_token_signing_alg_values_supported"`
	ACRValues                  []string `json:"acr_values_supported"`
	IssParameterSupported      bool     `json:"authorization_response_iss_parameter_supported"`
	GrantTypes                 []string `json:"grant_types_supported"`
	TokenEndpointAuthMethods   []string `json:"token_endpoint_auth_methods_supported"`
	ResponseTypes              []string `json:"response_types_supported"`
	RequestParameterSupported  bool     `json:"request_parameter_supported"`
	ClaimsParameterSupported   bool     `json:"claims_parameter_supported"`
	ScopesSupported            []string `json:"scopes_supported"`
	SubjectTypes               []string `json:"subject_types_supported"`
	UserinfoEndpoint           string   `json:"userinfo_endpoint"`
	JWKSURI                    string   `json:"jwks_uri"`
	FrontchannelLogoutSupport  bool     `json:"frontchannel_logout_supported"`
	BackchannelLogoutSupported bool     `json:"backchannel_logout_supported"`
}

func ctxT(t testing.TB) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// newRP registers spec on s and discovers the provider.
func newRP(t testing.TB, s *Server, spec ClientSpec) *rp {
	t.Helper()
	s.CreateClient(t, spec)
	return discoverRP(t, s, spec)
}

// discoverRP builds the relying party of an already registered client.
func discoverRP(t testing.TB, s *Server, spec ClientSpec) *rp {
	t.Helper()
	ctx := ctxT(t)
	p, err := oidc.NewProvider(ctx, s.Issuer)
	if err != nil {
		t.Fatalf("oidc.NewProvider(%s): %v", s.Issuer, err)
	}
	r := &rp{srv: s, spec: spec, provider: p}
	if err := p.Claims(&r.meta); err != nil {
		t.Fatalf("discovery claims: %v", err)
	}
	ep := p.Endpoint()
	switch spec.Auth {
	case "client_secret_post", "none":
		ep.AuthStyle = oauth2.AuthStyleInParams
	default:
		ep.AuthStyle = oauth2.AuthStyleInHeader
	}
	redirect := ""
	if len(spec.RedirectURIs) > 0 {
		redirect = spec.RedirectURIs[0]
	}
	r.cfg = oauth2.Config{ClientID: spec.ID, ClientSecret: spec.Secret, Endpoint: ep, RedirectURL: redirect,
		Scopes: []string{oidc.ScopeOpenID, "profile", "email"}}
	r.verifier = p.Verifier(&oidc.Config{ClientID: spec.ID})
	return r
}

// authReq is one authorization request the RP prepared.
type authReq struct {
	URL, State, Nonce, Verifier string
}

// authURL builds an authorization request with PKCE S256, state and nonce;
// extra adds or replaces parameters.
func (r *rp) authURL(scopes []string, extra ...oauth2.AuthCodeOption) authReq {
	a := authReq{State: randHex(12), Nonce: randHex(12), Verifier: oauth2.GenerateVerifier()}
	cfg := r.cfg
	if scopes != nil {
		cfg.Scopes = scopes
	}
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(a.Verifier), oidc.Nonce(a.Nonce)}, extra...)
	a.URL = cfg.AuthCodeURL(a.State, opts...)
	return a
}

// login is the result of a completed sign-in.
type login struct {
	Token      *oauth2.Token
	RawIDToken string
	IDToken    *oidc.IDToken
	Claims     idClaims
	Browser    *browser
	SawConsent bool
	SawLogin   bool
}

type idClaims struct {
	Sub      string   `json:"sub"`
	ACR      string   `json:"acr"`
	AMR      []string `json:"amr"`
	AuthTime int64    `json:"auth_time"`
	SID      string   `json:"sid"`
	Nonce    string   `json:"nonce"`
	AZP      string   `json:"azp"`
}

// signInOpts tunes rp.signIn.
type signInOpts struct {
	User    int // demo account number, default 1
	Scopes  []string
	Extra   []oauth2.AuthCodeOption
	Browser *browser // reuse a browser (its session); default a new one
}

// callback sends the browser through the authorization request and
// returns the redirect back to the client.
func (r *rp) callback(t testing.TB, a authReq, b *browser, o navOpts) *url.URL {
	t.Helper()
	cb, err := b.navigate(a.URL, r.cfg.RedirectURL, o)
	if err != nil {
		t.Fatalf("authorization request %s: %v", a.URL, err)
	}
	return cb
}

// checkCallback asserts a successful authorization response and returns
// its code.
func (r *rp) checkCallback(t testing.TB, a authReq, cb *url.URL) string {
	t.Helper()
	q := cb.Query()
	if e := q.Get("error"); e != "" {
		t.Fatalf("authorization error %q (%s) at %s", e, q.Get("error_description"), cb)
	}
	if got := q.Get("state"); got != a.State {
		t.Fatalf("callback state = %q, want %q (%s)", got, a.State, cb)
	}
	if got := q.Get("iss"); got != r.srv.Issuer {
		t.Fatalf("callback iss = %q, want %q (RFC 9207) (%s)", got, r.srv.Issuer, cb)
	}
	code := q.Get("code")
	if code == "" {
		t.Fatalf("callback without code: %s", cb)
	}
	return code
}

// signIn runs the whole authorization code flow with PKCE through the
// pages, exchanges the code and verifies the ID token (signature, issuer,
// audience, expiry, nonce, at_hash).
func (r *rp) signIn(t testing.TB, o signInOpts) *login {
	t.Helper()
	if o.User == 0 {
		o.User = 1
	}
	b := o.Browser
	if b == nil {
		b = newBrowser()
	}
	a := r.authURL(o.Scopes, o.Extra...)
	l := &login{Browser: b}
	cb := r.callback(t, a, b, navOpts{Username: demoUser(o.User), Password: demoPassword,
		SawConsent: &l.SawConsent, SawLogin: &l.SawLogin})
	code := r.checkCallback(t, a, cb)
	tok, err := r.cfg.Exchange(ctxT(t), code, oauth2.VerifierOption(a.Verifier))
	if err != nil {
		t.Fatalf("code exchange: %s", describeErr(err))
	}
	l.Token = tok
	l.RawIDToken, l.IDToken, l.Claims = r.verifyIDToken(t, tok, a.Nonce)
	return l
}

// verifyIDToken checks the ID token of a token response with go-oidc.
func (r *rp) verifyIDToken(t testing.TB, tok *oauth2.Token, nonce string) (string, *oidc.IDToken, idClaims) {
	t.Helper()
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		t.Fatalf("token response without id_token (access token type %q)", tok.TokenType)
	}
	idt, err := r.verifier.Verify(ctxT(t), raw)
	if err != nil {
		t.Fatalf("ID token does not verify: %v", err)
	}
	if nonce != "" && idt.Nonce != nonce {
		t.Fatalf("ID token nonce = %q, want %q", idt.Nonce, nonce)
	}
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			t.Fatalf("at_hash: %v", err)
		}
	}
	var c idClaims
	if err := idt.Claims(&c); err != nil {
		t.Fatalf("ID token claims: %v", err)
	}
	return raw, idt, c
}

// describeErr shows an oauth2 error with the server's answer.
func describeErr(err error) string {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		status := 0
		if re.Response != nil {
			status = re.Response.StatusCode
		}
		return fmt.Sprintf("%v (status %d, error %q, body %s)", err, status, re.ErrorCode, re.Body)
	}
	return err.Error()
}

// wantOAuthError asserts err is an OAuth error response with code.
func wantOAuthError(t testing.TB, err error, code, what string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: succeeded, want error %q", what, code)
	}
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) {
		t.Fatalf("%s: %v, want OAuth error %q", what, err, code)
	}
	if re.ErrorCode != code {
		t.Fatalf("%s: error %q, want %q (%s)", what, re.ErrorCode, code, describeErr(err))
	}
}

// refresh uses the refresh token rt once through an oauth2 TokenSource.
func (r *rp) refresh(t testing.TB, rt string) (*oauth2.Token, error) {
	t.Helper()
	return r.cfg.TokenSource(ctxT(t), &oauth2.Token{RefreshToken: rt}).Token()
}

// formPost sends a form to an endpoint with the client's credentials (HTTP
// Basic, or in the body for client_secret_post / none) and returns the
// status and the decoded JSON body.
func (r *rp) formPost(t testing.TB, endpoint string, v url.Values) (int, map[string]any, string) {
	t.Helper()
	if r.spec.Auth == "client_secret_post" || r.spec.Auth == "none" {
		v.Set("client_id", r.spec.ID)
		if r.spec.Secret != "" {
			v.Set("client_secret", r.spec.Secret)
		}
	}
	req, err := http.NewRequestWithContext(ctxT(t), http.MethodPost, endpoint, strings.NewReader(v.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r.spec.Auth != "client_secret_post" && r.spec.Auth != "none" {
		req.SetBasicAuth(url.QueryEscape(r.spec.ID), url.QueryEscape(r.spec.Secret))
	}
	return doJSON(t, req)
}

func doJSON(t testing.TB, req *http.Request) (int, map[string]any, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	raw, _ := readAll(resp)
	var m map[string]any
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &m)
	}
	return resp.StatusCode, m, string(raw)
}

// revoke revokes token at the revocation endpoint (RFC 7009).
func (r *rp) revoke(t testing.TB, token, hint string) {
	t.Helper()
	v := url.Values{"token": {token}}
	if hint != "" {
		v.Set("token_type_hint", hint)
	}
	status, _, raw := r.formPost(t, r.meta.RevocationEndpoint, v)
	if status != http.StatusOK {
		t.Fatalf("revoke: status %d, want 200: %s", status, raw)
	}
}

// introspect asks the introspection endpoint about token (RFC 7662).
func (r *rp) introspect(t testing.TB, token string) map[string]any {
	t.Helper()
	status, m, raw := r.formPost(t, r.meta.IntrospectionEndpoint, url.Values{"token": {token}})
	if status != http.StatusOK || m == nil {
		t.Fatalf("introspect: status %d, want 200 with JSON: %s", status, raw)
	}
	return m
}

// userinfo fetches the userinfo claims with go-oidc.
func (r *rp) userinfo(t testing.TB, accessToken string) (*oidc.UserInfo, map[string]any) {
	t.Helper()
	ui, err := r.provider.UserInfo(ctxT(t), oauth2.StaticTokenSource(&oauth2.Token{AccessToken: accessToken, TokenType: "Bearer"}))
	if err != nil {
		t.Fatalf("userinfo: %v", err)
	}
	var m map[string]any
	if err := ui.Claims(&m); err != nil {
		t.Fatalf("userinfo claims: %v", err)
	}
	return ui, m
}
