package goclient

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
)

const (
	rpRedirect   = "https://rp.example/callback"
	spaRedirect  = "https://spa.example/callback"
	rpPostLogout = "https://rp.example/logged-out"
	rpScopesAll  = "openid,profile,email,address,offline_access"
)

// confidential returns the spec of a confidential client with refresh
// tokens, with a unique id.
func confidential(prefix, auth string) ClientSpec {
	return ClientSpec{
		ID: prefix + "-" + randHex(4), Secret: "s3cret-" + randHex(12), Auth: auth,
		RedirectURIs: []string{rpRedirect}, PostLogoutURIs: []string{rpPostLogout},
		GrantTypes: []string{"authorization_code", "refresh_token"},
		Scopes:     strings.Split(rpScopesAll, ","),
	}
}

func public(prefix string) ClientSpec {
	return ClientSpec{
		ID: prefix + "-" + randHex(4), Auth: "none", RedirectURIs: []string{spaRedirect},
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid", "profile", "email"},
	}
}

func TestDiscovery(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		r := discoverRP(t, s, ClientSpec{ID: "unused", RedirectURIs: []string{rpRedirect}})
		m := r.meta
		ep := r.provider.Endpoint()
		for name, got := range map[string]string{
			"authorization_endpoint": ep.AuthURL,
			"token_endpoint":         ep.TokenURL,
			"userinfo_endpoint":      r.provider.UserInfoEndpoint(),
			"jwks_uri":               m.JWKSURI,
			"revocation_endpoint":    m.RevocationEndpoint,
			"introspection_endpoint": m.IntrospectionEndpoint,
			"end_session_endpoint":   m.EndSessionEndpoint,
		} {
			want := s.Issuer + map[string]string{
				"authorization_endpoint": "/authorize", "token_endpoint": "/token", "userinfo_endpoint": "/userinfo",
				"jwks_uri": "/jwks.json", "revocation_endpoint": "/revoke", "introspection_endpoint": "/introspect",
				"end_session_endpoint": "/logout",
			}[name]
			if got != want {
				t.Errorf("%s = %q, want %q", name, got, want)
			}
		}
		if !slices.Contains(m.CodeChallengeMethods, "S256") || slices.Contains(m.CodeChallengeMethods, "plain") {
			t.Errorf("code_challenge_methods_supported = %v, want S256 and not plain", m.CodeChallengeMethods)
		}
		if !slices.Contains(m.IDTokenAlgs, "ES256") {
			t.Errorf("id_token_signing_alg_values_supported = %v, want ES256", m.IDTokenAlgs)
		}
		if !m.IssParameterSupported {
			t.Errorf("authorization_response_iss_parameter_supported is false; the server sends iss (RFC 9207)")
		}
		for _, g := range []string{"authorization_code", "refresh_token", "client_credentials"} {
			if !slices.Contains(m.GrantTypes, g) {
				t.Errorf("grant_types_supported = %v, missing %s", m.GrantTypes, g)
			}
		}
		if !slices.Equal(m.ResponseTypes, []string{"code"}) {
			t.Errorf("response_types_supported = %v, want [code]", m.ResponseTypes)
		}
	})
}

func TestCodeFlow(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		for _, tc := range []struct {
			name string
			spec ClientSpec
		}{
			{"client_secret_basic", confidential("go-basic", "client_secret_basic")},
			{"client_secret_post", confidential("go-post", "client_secret_post")},
			{"public", public("go-public")},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := newRP(t, s, tc.spec)
				l := r.signIn(t, signInOpts{User: 1})
				if !l.SawLogin || !l.SawConsent {
					t.Errorf("first sign-in: login page shown %v, consent shown %v; want both", l.SawLogin, l.SawConsent)
				}
				if l.Claims.ACR != acrLoA2 {
					t.Errorf("acr = %q, want %q", l.Claims.ACR, acrLoA2)
				}
				if l.Claims.Sub == "" || l.Claims.AuthTime == 0 {
					t.Errorf("ID token lacks sub or auth_time: %+v", l.Claims)
				}
				if !slices.Contains(l.IDToken.Audience, tc.spec.ID) {
					t.Errorf("aud = %v, want %s", l.IDToken.Audience, tc.spec.ID)
				}
				if !strings.EqualFold(l.Token.TokenType, "bearer") {
					t.Errorf("token_type = %q, want Bearer", l.Token.TokenType)
				}
				if tc.spec.Auth == "none" && l.Token.RefreshToken != "" {
					t.Errorf("refresh token issued to a client without the refresh_token grant")
				}
				ui, claims := r.userinfo(t, l.Token.AccessToken)
				if ui.Subject != l.Claims.Sub {
					t.Errorf("userinfo sub = %q, ID token sub = %q", ui.Subject, l.Claims.Sub)
				}
				if claims["email"] != demoUser(1) {
					t.Errorf("userinfo email = %v, want %s (email scope)", claims["email"], demoUser(1))
				}
				// Userinfo by POST too (OIDC Core §5.3.1).
				req, _ := http.NewRequest(http.MethodPost, r.provider.UserInfoEndpoint(), nil)
				req.Header.Set("Authorization", "Bearer "+l.Token.AccessToken)
				status, m, raw := doJSON(t, req)
				if status != http.StatusOK || m["sub"] != l.Claims.Sub {
					t.Errorf("POST userinfo: %d %s, want 200 with sub %s", status, raw, l.Claims.Sub)
				}
			})
		}
	})
}

func TestConsentAndPromptNone(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		r := newRP(t, s, confidential("go-consent", "client_secret_basic"))
		first := r.signIn(t, signInOpts{User: 2})
		if !first.SawConsent {
			t.Errorf("first sign-in of an account to a client must ask consent")
		}
		// Live session, consent given: prompt=none answers at once.
		again := r.signIn(t, signInOpts{User: 2, Browser: first.Browser, Extra: []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "none")}})
		if again.SawLogin || again.SawConsent {
			t.Errorf("prompt=none with a session showed a page (login %v, consent %v)", again.SawLogin, again.SawConsent)
		}
		if again.Claims.Sub != first.Claims.Sub {
			t.Errorf("sub changed between sign-ins: %q then %q", first.Claims.Sub, again.Claims.Sub)
		}
		// New browser, consent remembered.
		third := r.signIn(t, signInOpts{User: 2})
		if third.SawConsent {
			t.Errorf("consent asked again although given and prompt=consent not sent")
		}
		forced := r.signIn(t, signInOpts{User: 2, Browser: third.Browser, Extra: []oauth2.AuthCodeOption{oauth2.SetAuthURLParam("prompt", "consent")}})
		if !forced.SawConsent {
			t.Errorf("prompt=consent did not ask consent")
		}
	})
}

func TestRefreshRotation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		r := newRP(t, s, confidential("go-refresh", "client_secret_basic"))
		l := r.signIn(t, signInOpts{User: 3, Scopes: []string{oidc.ScopeOpenID, "email", oidc.ScopeOfflineAccess}})
		rt0 := l.Token.RefreshToken
		if rt0 == "" {
			t.Fatalf("no refresh token with offline_access for a client with the refresh_token grant")
		}
		t1, err := r.refresh(t, rt0)
		if err != nil {
			t.Fatalf("refresh: %s", describeErr(err))
		}
		if t1.AccessToken == "" || t1.AccessToken == l.Token.AccessToken {
			t.Errorf("refresh gave no new access token")
		}
		if t1.RefreshToken == "" || t1.RefreshToken == rt0 {
			t.Fatalf("refresh token not rotated (old %q…, new %q…)", trunc(rt0), trunc(t1.RefreshToken))
		}
		if raw, _ := t1.Extra("id_token").(string); raw != "" {
			_, _, c := r.verifyIDToken(t, t1, "")
			if c.Sub != l.Claims.Sub {
				t.Errorf("refreshed ID token sub %q, want %q", c.Sub, l.Claims.Sub)
			}
		}
		if ui, _ := r.userinfo(t, t1.AccessToken); ui.Subject != l.Claims.Sub {
			t.Errorf("userinfo after refresh: sub %q", ui.Subject)
		}
		t2, err := r.refresh(t, t1.RefreshToken)
		if err != nil {
			t.Fatalf("second refresh: %s", describeErr(err))
		}
		// Reuse of a rotated token: refused, and the whole family revoked.
		_, err = r.refresh(t, rt0)
		wantOAuthError(t, err, "invalid_grant", "reuse of the first refresh token")
		_, err = r.refresh(t, t2.RefreshToken)
		wantOAuthError(t, err, "invalid_grant", "newest refresh token after reuse (family revoked)")
		if m := r.introspect(t, t2.RefreshToken); m["active"] != false {
			t.Errorf("introspection of a revoked family's refresh token: %v", m)
		}
	})
}

func TestRevocationAndIntrospection(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		r := newRP(t, s, confidential("go-revoke", "client_secret_basic"))
		l := r.signIn(t, signInOpts{User: 1, Scopes: []string{oidc.ScopeOpenID, "email", oidc.ScopeOfflineAccess}})

		m := r.introspect(t, l.Token.AccessToken)
		if m["active"] != true || m["client_id"] != r.spec.ID || m["sub"] != l.Claims.Sub {
			t.Errorf("introspection of a live access token = %v, want active, client_id %s, sub %s", m, r.spec.ID, l.Claims.Sub)
		}
		if sc, _ := m["scope"].(string); !slices.Contains(strings.Fields(sc), "openid") {
			t.Errorf("introspection scope = %v", m["scope"])
		}
		if m := r.introspect(t, "no-such-token-"+randHex(8)); m["active"] != false || len(m) != 1 {
			t.Errorf("introspection of an unknown token = %v, want exactly {active:false}", m)
		}

		r.revoke(t, l.Token.AccessToken, "access_token")
		if m := r.introspect(t, l.Token.AccessToken); m["active"] != false {
			t.Errorf("introspection after revocation = %v, want active:false", m)
		}
		req, _ := http.NewRequest(http.MethodGet, r.provider.UserInfoEndpoint(), nil)
		req.Header.Set("Authorization", "Bearer "+l.Token.AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := readAll(resp)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), "invalid_token") {
			t.Errorf("userinfo with a revoked token: %d WWW-Authenticate %q %s; want 401 with error=\"invalid_token\" (RFC 6750 §3)",
				resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}

		r.revoke(t, l.Token.RefreshToken, "refresh_token")
		_, err = r.refresh(t, l.Token.RefreshToken)
		wantOAuthError(t, err, "invalid_grant", "refresh with a revoked refresh token")
		// Unknown token: 200 all the same (RFC 7009 §2.2).
		r.revoke(t, "no-such-token-"+randHex(8), "")
	})
}

func TestClientCredentials(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		spec := ClientSpec{ID: "go-machine-" + randHex(4), Secret: "machine-" + randHex(12),
			Auth: "client_secret_basic", GrantTypes: []string{"client_credentials"}, Scopes: []string{"openid"}}
		s.CreateClient(t, spec)
		r := discoverRP(t, s, spec)
		cc := clientcredentials.Config{ClientID: spec.ID, ClientSecret: spec.Secret,
			TokenURL: r.provider.Endpoint().TokenURL, AuthStyle: oauth2.AuthStyleInHeader}
		tok, err := cc.Token(ctxT(t))
		if err != nil {
			t.Fatalf("client_credentials: %s", describeErr(err))
		}
		if tok.AccessToken == "" || tok.RefreshToken != "" || tok.Extra("id_token") != nil {
			t.Errorf("client_credentials: access %v, refresh %q, id_token %v; want an access token only",
				tok.AccessToken != "", trunc(tok.RefreshToken), tok.Extra("id_token"))
		}
		if m := r.introspect(t, tok.AccessToken); m["active"] != true || m["client_id"] != spec.ID {
			t.Errorf("introspection of a client_credentials token = %v", m)
		}
	})
}

func TestLogout(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		r := newRP(t, s, confidential("go-logout", "client_secret_basic"))

		t.Run("id_token_hint", func(t *testing.T) {
			l := r.signIn(t, signInOpts{User: 1})
			state := randHex(8)
			u := r.meta.EndSessionEndpoint + "?" + url.Values{"id_token_hint": {l.RawIDToken},
				"post_logout_redirect_uri": {rpPostLogout}, "state": {state}}.Encode()
			back, err := l.Browser.navigate(u, rpPostLogout, navOpts{})
			if err != nil {
				t.Fatalf("logout: %v", err)
			}
			if back.Query().Get("state") != state {
				t.Errorf("post-logout redirect %s: state %q, want %q", back, back.Query().Get("state"), state)
			}
			r.wantPromptNoneError(t, l.Browser, "login_required")
		})

		t.Run("confirmation_form", func(t *testing.T) {
			l := r.signIn(t, signInOpts{User: 1})
			p, err := l.Browser.get(r.meta.EndSessionEndpoint)
			if err != nil {
				t.Fatal(err)
			}
			f, _ := findForm(parseForms(p.Body), p.URL, "/logout")
			if p.Status != http.StatusOK || f == nil {
				t.Fatalf("GET /logout without id_token_hint: want 200 with a confirmation form, got %s", p)
			}
			val, ok := f.Buttons["logout"]
			if !ok {
				t.Fatalf("logout form without a button named logout: %s", p)
			}
			v := f.values()
			v.Set("logout", val)
			res, err := l.Browser.do(http.MethodPost, f.target(p.URL), v)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status >= 400 {
				t.Fatalf("POST /logout: %s", res)
			}
			r.wantPromptNoneError(t, l.Browser, "login_required")
		})

		t.Run("unregistered_post_logout_uri", func(t *testing.T) {
			l := r.signIn(t, signInOpts{User: 1})
			u := r.meta.EndSessionEndpoint + "?" + url.Values{"id_token_hint": {l.RawIDToken},
				"post_logout_redirect_uri": {"https://evil.example/after"}}.Encode()
			p, err := l.Browser.get(u)
			if err != nil {
				t.Fatal(err)
			}
			if loc := p.Header.Get("Location"); strings.HasPrefix(loc, "https://evil.example") {
				t.Errorf("logout redirected to an unregistered post_logout_redirect_uri: %s", p)
			}
		})
	})
}

// wantPromptNoneError asserts that a prompt=none request in b comes back
// with error code.
func (r *rp) wantPromptNoneError(t *testing.T, b *browser, code string) {
	t.Helper()
	a := r.authURL([]string{oidc.ScopeOpenID}, oauth2.SetAuthURLParam("prompt", "none"))
	cb, err := b.navigate(a.URL, r.cfg.RedirectURL, navOpts{})
	if err != nil {
		t.Fatalf("prompt=none: %v", err)
	}
	if got := cb.Query().Get("error"); got != code {
		t.Fatalf("prompt=none: redirect %s, want error=%s", cb, code)
	}
	if got := cb.Query().Get("state"); got != a.State {
		t.Errorf("prompt=none error redirect: state %q, want %q", got, a.State)
	}
}

func TestPairwiseSubjects(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		sector := "go-sector-" + randHex(4)
		a, b := confidential("go-sec-a", "client_secret_basic"), confidential("go-sec-b", "client_secret_basic")
		a.Sector, b.Sector = sector, sector
		ra, rb := newRP(t, s, a), newRP(t, s, b)
		rc := newRP(t, s, confidential("go-sec-c", "client_secret_basic"))
		la := ra.signIn(t, signInOpts{User: 2})
		lb := rb.signIn(t, signInOpts{User: 2})
		lc := rc.signIn(t, signInOpts{User: 2})
		if la.Claims.Sub != lb.Claims.Sub {
			t.Errorf("clients of one sector see different subs: %q and %q", la.Claims.Sub, lb.Claims.Sub)
		}
		if lc.Claims.Sub == la.Claims.Sub {
			t.Errorf("a client of another sector sees the same sub %q (pairwise subjects)", lc.Claims.Sub)
		}
	})
}

func trunc(s string) string {
	if len(s) > 8 {
		return s[:8]
	}
	return s
}

// TestTokenResponseHeaders checks what RFC 6749 §5.1 and RFC 6750 §3 ask
// of the HTTP layer, which the client libraries do not look at.
func TestTokenResponseHeaders(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		r := newRP(t, s, confidential("go-headers", "client_secret_basic"))
		a := r.authURL(nil)
		code := r.checkCallback(t, a, r.callback(t, a, newBrowser(), navOpts{Username: demoUser(2), Password: demoPassword}))
		v := url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {rpRedirect}, "code_verifier": {a.Verifier}}
		req, _ := http.NewRequest(http.MethodPost, r.provider.Endpoint().TokenURL, strings.NewReader(v.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(r.spec.ID, r.spec.Secret)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := readAll(resp)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("token: %d %s", resp.StatusCode, body)
		}
		if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Errorf("token response Cache-Control %q, want no-store (RFC 6749 §5.1)", cc)
		}
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Errorf("token response Content-Type %q, want application/json", ct)
		}

		// Userinfo without a token: 401 with a Bearer challenge.
		resp, err = http.Get(r.provider.UserInfoEndpoint())
		if err != nil {
			t.Fatal(err)
		}
		body, _ = readAll(resp)
		if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("userinfo without a token: %d WWW-Authenticate %q %s; want 401 with a Bearer challenge (RFC 6750 §3)",
				resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	})
}
