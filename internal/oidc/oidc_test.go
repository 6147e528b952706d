package oidc

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := "testdata/" + name
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
		t.Errorf("%s differs from golden file:\n%s", name, got)
	}
}

func TestDiscoveryGolden(t *testing.T) {
	e := newEnv(t)
	resp, body := e.browser().get("/.well-known/openid-configuration")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("discovery: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	_ = enc.Encode(doc)
	golden(t, "discovery.json", bytes.ReplaceAll(buf.Bytes(), []byte(e.srv.URL), []byte("https://issuer.test")))

	resp, body = e.browser().get("/jwks.json")
	var jwks struct {
		Keys []map[string]any `json:"keys"`
	}
	if err := json.Unmarshal([]byte(body), &jwks); err != nil || resp.StatusCode != 200 || len(jwks.Keys) != 2 {
		t.Fatalf("jwks: %d %v %s", resp.StatusCode, err, body)
	}
	for _, k := range jwks.Keys {
		if _, private := k["d"]; private {
			t.Fatal("JWKS leaks a private key")
		}
	}
}

func TestAuthorizeValidation(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name      string
		mod       func(url.Values)
		wantPage  int    // status of an error page (no redirect)
		wantError string // error in the redirect
	}{
		{"missing client", func(q url.Values) { q.Del("client_id") }, 400, ""},
		{"unknown client", func(q url.Values) { q.Set("client_id", "nobody") }, 400, ""},
		{"unregistered redirect", func(q url.Values) { q.Set("redirect_uri", "https://evil.test/cb") }, 400, ""},
		{"redirect prefix only", func(q url.Values) { q.Set("redirect_uri", testRedirect+"/x") }, 400, ""},
		{"redirect with extra query", func(q url.Values) { q.Set("redirect_uri", testRedirect+"?a=1") }, 400, ""},
		{"missing PKCE", func(q url.Values) { q.Del("code_challenge"); q.Del("code_challenge_method") }, 0, "invalid_request"},
		{"plain PKCE", func(q url.Values) { q.Set("code_challenge_method", "plain") }, 0, "invalid_request"},
		{"PKCE without method", func(q url.Values) { q.Del("code_challenge_method") }, 0, "invalid_request"},
		{"malformed challenge", func(q url.Values) { q.Set("code_challenge", "short") }, 0, "invalid_request"},
		{"implicit flow", func(q url.Values) { q.Set("response_type", "id_token") }, 0, "unsupported_response_type"},
		{"no openid", func(q url.Values) { q.Set("scope", "profile") }, 0, "invalid_scope"},
		{"scope not allowed", func(q url.Values) { q.Set("scope", "openid phone") }, 0, "invalid_scope"},
		{"malformed request object", func(q url.Values) { q.Set("request", "eyJ.x.y") }, 400, ""},
		{"unknown request_uri", func(q url.Values) { q.Set("request_uri", "urn:x") }, 400, ""},
		{"bad prompt", func(q url.Values) { q.Set("prompt", "sometimes") }, 0, "invalid_request"},
		{"prompt none and login", func(q url.Values) { q.Set("prompt", "none login") }, 0, "invalid_request"},
		{"bad max_age", func(q url.Values) { q.Set("max_age", "-1") }, 0, "invalid_request"},
		{"bad claims", func(q url.Values) { q.Set("claims", "{not json") }, 0, "invalid_request"},
		{"prompt none without session", func(q url.Values) { q.Set("prompt", "none") }, 0, "login_required"},
		{"long state", func(q url.Values) { q.Set("state", strings.Repeat("s", 3000)) }, 0, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, _ := e.authorizeURL(tt.mod)
			resp, body := e.browser().get(u)
			if tt.wantPage != 0 {
				if resp.StatusCode != tt.wantPage || resp.Header.Get("Location") != "" {
					t.Fatalf("want error page %d without redirect, got %d Location=%q", tt.wantPage, resp.StatusCode, resp.Header.Get("Location"))
				}
				if !strings.Contains(body, `lang="fr"`) || !strings.Contains(body, "Impossible de continuer") {
					t.Fatalf("error page is not the French page: %s", body)
				}
				return
			}
			loc, err := resp.Location()
			if err != nil {
				t.Fatalf("want redirect with %s, got %d: %s", tt.wantError, resp.StatusCode, body)
			}
			if !strings.HasPrefix(loc.String(), testRedirect+"?") {
				t.Fatalf("redirected to %s", loc)
			}
			q := loc.Query()
			if q.Get("error") != tt.wantError || q.Get("iss") != e.srv.URL {
				t.Fatalf("error=%q iss=%q, want %q", q.Get("error"), q.Get("iss"), tt.wantError)
			}
			if tt.mod != nil && !strings.Contains(tt.name, "state") && q.Get("state") != "st-123" {
				t.Fatalf("state not returned: %v", q)
			}
		})
	}
}

func TestCodeFlowEndToEnd(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	tok := e.signIn(b, func(q url.Values) { q.Set("scope", "openid profile email address") })
	for _, k := range []string{"access_token", "id_token", "refresh_token", "token_type", "expires_in", "scope"} {
		if _, ok := tok[k]; !ok {
			t.Errorf("token response lacks %s: %v", k, tok)
		}
	}
	if tok["token_type"] != "Bearer" {
		t.Errorf("token_type = %v", tok["token_type"])
	}
	idt := claimsOf(t, tok["id_token"].(string))
	if idt["nonce"] != "n-456" || idt["aud"] != "rp" || idt["iss"] != e.srv.URL || idt["acr"] != "urn:sqin:loa:2" {
		t.Errorf("ID token claims: %v", idt)
	}
	if idt["sub"] == "a1" || idt["sub"] == "" {
		t.Errorf("sub must be pairwise, got %v", idt["sub"])
	}
	names := make([]string, 0, len(idt))
	for k := range idt {
		names = append(names, k)
	}
	sort.Strings(names)
	golden(t, "id_token_claims.txt", []byte(strings.Join(names, "\n")))

	// userinfo, GET with the bearer header
	req, _ := http.NewRequest(http.MethodGet, e.srv.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok["access_token"].(string))
	status, ui, _ := e.do(req)
	if status != 200 || ui["sub"] != idt["sub"] || ui["family_name"] != "Côté" || ui["given_name"] != "Marie-Ève" ||
		ui["email"] != testEmail || ui["birthdate"] != "1985-03-14" {
		t.Fatalf("userinfo: %d %v", status, ui)
	}
	if addr, _ := ui["address"].(map[string]any); addr["postal_code"] != "G1R 2B5" || addr["locality"] != "Québec" {
		t.Fatalf("address claim: %v", ui["address"])
	}
	// userinfo, POST with the token in the body
	req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/userinfo", strings.NewReader("access_token="+tok["access_token"].(string)))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if status, ui2, _ := e.do(req); status != 200 || ui2["sub"] != ui["sub"] {
		t.Fatalf("userinfo POST: %d %v", status, ui2)
	}

	// SSO: a second authorization needs neither password nor consent.
	u, _ := e.authorizeURL(nil)
	resp, _ := b.get(u)
	if loc, _ := resp.Location(); loc == nil || loc.Query().Get("code") == "" {
		t.Fatalf("SSO: want a code at once, got %d %v", resp.StatusCode, resp.Header.Get("Location"))
	}

	// refresh with rotation; reuse revokes the family
	rt1 := tok["refresh_token"].(string)
	status, tok2, _ := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}}, nil)
	if status != 200 || tok2["refresh_token"] == rt1 || tok2["refresh_token"] == nil {
		t.Fatalf("refresh: %d %v", status, tok2)
	}
	status, r3, _ := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt1}}, nil)
	if status != 400 || r3["error"] != "invalid_grant" {
		t.Fatalf("refresh reuse: %d %v", status, r3)
	}
	status, r4, _ := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok2["refresh_token"].(string)}}, nil)
	if status != 400 || r4["error"] != "invalid_grant" {
		t.Fatalf("newest token of a reused family must be revoked: %d %v", status, r4)
	}
	req, _ = http.NewRequest(http.MethodGet, e.srv.URL+"/userinfo", nil)
	req.Header.Set("Authorization", "Bearer "+tok2["access_token"].(string))
	if status, _, h := e.do(req); status != 401 || !strings.Contains(h.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("access token of a revoked family: %d %q", status, h.Get("WWW-Authenticate"))
	}
}

func TestTokenErrors(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.signIn(b, nil) // session and consent exist from now on
	freshCode := func() (string, string) {
		u, ap := e.authorizeURL(nil)
		loc := b.follow(u)
		return loc.Query().Get("code"), ap.verifier
	}
	basicWrong := func(r *http.Request) { r.SetBasicAuth("rp", "wrong-secret-value") }
	tests := []struct {
		name    string
		form    func() url.Values
		auth    func(*http.Request)
		status  int
		errCode string
	}{
		{"wrong secret", func() url.Values { c, v := freshCode(); return codeForm(c, v) }, basicWrong, 401, "invalid_client"},
		{"unknown client", func() url.Values { c, v := freshCode(); return codeForm(c, v) },
			func(r *http.Request) { r.SetBasicAuth("nobody", testSecret) }, 401, "invalid_client"},
		{"no client auth", func() url.Values { c, v := freshCode(); return codeForm(c, v) }, func(*http.Request) {}, 401, "invalid_client"},
		{"missing verifier", func() url.Values { c, _ := freshCode(); f := codeForm(c, ""); f.Del("code_verifier"); return f }, nil, 400, "invalid_request"},
		{"wrong verifier", func() url.Values { c, _ := freshCode(); return codeForm(c, strings.Repeat("a", 43)) }, nil, 400, "invalid_grant"},
		{"wrong redirect_uri", func() url.Values {
			c, v := freshCode()
			f := codeForm(c, v)
			f.Set("redirect_uri", "https://rp.example.test/other")
			return f
		}, nil, 400, "invalid_grant"},
		{"unknown code", func() url.Values { return codeForm("nope", strings.Repeat("a", 43)) }, nil, 400, "invalid_grant"},
		{"missing grant_type", func() url.Values { return url.Values{"code": {"x"}} }, nil, 400, "invalid_request"},
		{"unsupported grant", func() url.Values { return url.Values{"grant_type": {"password"}} }, nil, 400, "unsupported_grant_type"},
		{"repeated parameter", func() url.Values {
			return url.Values{"grant_type": {"client_credentials", "client_credentials"}}
		}, nil, 400, "invalid_request"},
		{"client_credentials with openid", func() url.Values {
			return url.Values{"grant_type": {"client_credentials"}, "scope": {"openid"}}
		}, nil, 400, "invalid_scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, h := e.tokenRequest(tt.form(), tt.auth)
			if status != tt.status || body["error"] != tt.errCode {
				t.Fatalf("got %d %v, want %d %s", status, body, tt.status, tt.errCode)
			}
			if h.Get("Cache-Control") != "no-store" {
				t.Errorf("Cache-Control = %q", h.Get("Cache-Control"))
			}
		})
	}

	t.Run("replayed code revokes its tokens", func(t *testing.T) {
		c, v := freshCode()
		status, tok, _ := e.tokenRequest(codeForm(c, v), nil)
		if status != 200 {
			t.Fatalf("first exchange: %d %v", status, tok)
		}
		status, again, _ := e.tokenRequest(codeForm(c, v), nil)
		if status != 400 || again["error"] != "invalid_grant" {
			t.Fatalf("replay: %d %v", status, again)
		}
		status, r, _ := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, nil)
		if status != 400 || r["error"] != "invalid_grant" {
			t.Fatalf("refresh after replay: %d %v", status, r)
		}
	})
	t.Run("another client's unused code is refused and left usable", func(t *testing.T) {
		e.addClient(&sqin.Client{ID: "rp-other", Name: "Autre organisme", AuthMethod: sqin.AuthSecretBasic,
			RedirectURIs: []string{testRedirect}, GrantTypes: []string{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken},
			Scopes: []string{"openid"}, MinLoA: sqin.LoA1})
		other := func(r *http.Request) { r.SetBasicAuth("rp-other", testSecret) }
		c, v := freshCode()
		status, r, _ := e.tokenRequest(codeForm(c, v), other)
		if status != 400 || r["error"] != "invalid_grant" {
			t.Fatalf("other client: %d %v", status, r)
		}
		status, tok, _ := e.tokenRequest(codeForm(c, v), nil)
		if status != 200 || tok["refresh_token"] == nil {
			t.Fatalf("owner after the other client's attempt: %d %v", status, tok)
		}
		// A refresh token presented by the other client: refused, and
		// the owner's family still rotates.
		form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}
		if status, r, _ := e.tokenRequest(form, other); status != 400 || r["error"] != "invalid_grant" {
			t.Fatalf("other client's refresh: %d %v", status, r)
		}
		if status, r, _ := e.tokenRequest(form, nil); status != 200 {
			t.Fatalf("owner's refresh after the other client's attempt: %d %v", status, r)
		}
	})
	t.Run("expired code", func(t *testing.T) {
		c, v := freshCode()
		e.now = e.now.Add(2 * time.Minute)
		defer func() { e.now = e.now.Add(-2 * time.Minute) }()
		status, r, _ := e.tokenRequest(codeForm(c, v), nil)
		if status != 400 || r["error"] != "invalid_grant" || !strings.Contains(r["error_description"].(string), "expired") {
			t.Fatalf("expired: %d %v", status, r)
		}
	})
	t.Run("malformed body", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/token", strings.NewReader(`{"grant_type":"client_credentials"}`))
		req.Header.Set("Content-Type", "application/json")
		req.SetBasicAuth("rp", testSecret)
		if status, r, _ := e.do(req); status != 400 || r["error"] != "invalid_request" {
			t.Fatalf("JSON body: %d %v", status, r)
		}
		req, _ = http.NewRequest(http.MethodPost, e.srv.URL+"/token", strings.NewReader("grant_type=%zz"))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("rp", testSecret)
		if status, r, _ := e.do(req); status != 400 || r["error"] != "invalid_request" {
			t.Fatalf("bad escape: %d %v", status, r)
		}
	})
	t.Run("oversized body", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+"/token",
			strings.NewReader("grant_type=client_credentials&pad="+strings.Repeat("x", 2<<20)))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth("rp", testSecret)
		if status, r, _ := e.do(req); status != http.StatusRequestEntityTooLarge || r["error"] != "invalid_request" {
			t.Fatalf("oversized: %d %v", status, r)
		}
	})
	t.Run("client_credentials", func(t *testing.T) {
		status, tok, _ := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}, "scope": {"profile"}}, nil)
		if status != 200 || tok["access_token"] == nil || tok["refresh_token"] != nil || tok["id_token"] != nil {
			t.Fatalf("client_credentials: %d %v", status, tok)
		}
		if c := claimsOf(t, tok["access_token"].(string)); c["sub"] != "rp" || c["client_id"] != "rp" {
			t.Fatalf("client_credentials claims: %v", c)
		}
	})
}

func codeForm(code, verifier string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {testRedirect}, "code_verifier": {verifier}}
}

func TestLevelsOfAssurance(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.signIn(b, nil)
	for _, tt := range []struct {
		acr  string
		want string // error, or "" for a code
	}{
		{"urn:sqin:loa:1", ""},
		{"urn:sqin:loa:2", ""},
		{"urn:sqin:loa:3", "unmet_authentication_requirements"},
		{"urn:sqin:loa:3 urn:sqin:loa:2", ""}, // the lowest acceptable level counts
	} {
		u, _ := e.authorizeURL(func(q url.Values) { q.Set("acr_values", tt.acr) })
		loc := b.follow(u)
		if got := loc.Query().Get("error"); got != tt.want || (tt.want == "" && loc.Query().Get("code") == "") {
			t.Errorf("acr_values=%q: got %v, want error %q", tt.acr, loc.Query(), tt.want)
		}
	}
	// A client whose minimum level is 3 never gets a code for a level-2 account.
	e.addClient(&sqin.Client{ID: "strict", Name: "Strict", AuthMethod: sqin.AuthSecretBasic, RedirectURIs: []string{testRedirect},
		GrantTypes: []string{sqin.GrantAuthorizationCode}, Scopes: []string{"openid", "profile", "email"}, MinLoA: sqin.LoA3})
	u, _ := e.authorizeURL(func(q url.Values) { q.Set("client_id", "strict") })
	if loc := b.follow(u); loc.Query().Get("error") != "unmet_authentication_requirements" {
		t.Fatalf("client minimum level: %v", loc.Query())
	}
}

func TestPromptAndMaxAge(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	e.signIn(b, nil)
	// prompt=login shows the form again despite the session.
	u, _ := e.authorizeURL(func(q url.Values) { q.Set("prompt", "login") })
	if resp, _ := b.get(u); !strings.HasPrefix(resp.Header.Get("Location"), "/login?") {
		t.Fatalf("prompt=login: Location %q", resp.Header.Get("Location"))
	}
	// max_age shorter than the session's age forces a sign-in.
	e.now = e.now.Add(10 * time.Minute)
	u, _ = e.authorizeURL(func(q url.Values) { q.Set("max_age", "60") })
	if resp, _ := b.get(u); !strings.HasPrefix(resp.Header.Get("Location"), "/login?") {
		t.Fatalf("max_age: Location %q", resp.Header.Get("Location"))
	}
	// prompt=consent asks again; declining returns access_denied.
	u, _ = e.authorizeURL(func(q url.Values) { q.Set("prompt", "consent") })
	resp, _ := b.get(u)
	loc, _ := resp.Location()
	resp, body := b.get(loc.String())
	if !strings.Contains(body, `name="approve"`) {
		t.Fatalf("prompt=consent: no consent page (%d)", resp.StatusCode)
	}
	form := hiddenInputs(body)
	form.Set("deny", "yes")
	resp, _ = b.post("/consent", form)
	if l, _ := resp.Location(); l == nil || l.Query().Get("error") != "access_denied" {
		t.Fatalf("deny: %v", resp.Header.Get("Location"))
	}
	// prompt=none with a session gives a code directly.
	u, _ = e.authorizeURL(func(q url.Values) { q.Set("prompt", "none") })
	if resp, _ := b.get(u); !strings.Contains(resp.Header.Get("Location"), "code=") {
		t.Fatalf("prompt=none with session: %q", resp.Header.Get("Location"))
	}
}

func TestLoginFailuresAreUniformAndLimited(t *testing.T) {
	e := newEnv(t)
	try := func(b *browser, email, pw string) (int, string) {
		u, _ := e.authorizeURL(nil)
		resp, _ := b.get(u)
		loc, _ := resp.Location()
		_, page := b.get(loc.String())
		form := hiddenInputs(page)
		form.Set("username", email)
		form.Set("password", pw)
		r, body := b.post("/login", form)
		return r.StatusCode, body
	}
	b := e.browser()
	s1, wrongPw := try(b, testEmail, "wrong password")
	s2, noAcct := try(b, "nobody@example.test", "wrong password")
	if s1 != s2 || !strings.Contains(wrongPw, "incorrect") || !strings.Contains(noAcct, "incorrect") {
		t.Fatalf("answers differ: %d vs %d", s1, s2)
	}
	// Per account: the 6th attempt within the window is refused, even with
	// the right password.
	for range 3 {
		try(e.browser(), testEmail, "wrong password")
	}
	if s, body := try(e.browser(), testEmail, "wrong password"); s != 200 || strings.Contains(body, "Trop d") {
		t.Fatalf("5th failure should still be answered normally: %d", s)
	}
	if s, body := try(e.browser(), testEmail, testPassword); s != http.StatusTooManyRequests || !strings.Contains(body, "15 minutes") {
		t.Fatalf("limit: %d", s)
	}
	// The window slides: later, the right password works again.
	e.now = e.now.Add(16 * time.Minute)
	b2 := e.browser()
	if tok := e.signIn(b2, nil); tok["id_token"] == nil {
		t.Fatal("sign-in after the window failed")
	}
}

func TestCSRFRequired(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	u, _ := e.authorizeURL(nil)
	resp, _ := b.get(u)
	loc, _ := resp.Location()
	_, page := b.get(loc.String())
	form := hiddenInputs(page)
	form.Set("csrf", "forged")
	form.Set("username", testEmail)
	form.Set("password", testPassword)
	if r, _ := b.post("/login", form); r.StatusCode != http.StatusForbidden {
		t.Fatalf("forged CSRF token: %d", r.StatusCode)
	}
}

func TestRevocationAndIntrospection(t *testing.T) {
	e := newEnv(t)
	tok := e.signIn(e.browser(), nil)
	post := func(path string, form url.Values, user, pass string) (int, map[string]any) {
		req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(user, pass)
		s, m, _ := e.do(req)
		return s, m
	}
	at := tok["access_token"].(string)
	if s, m := post("/introspect", url.Values{"token": {at}}, "rp", testSecret); s != 200 || m["active"] != true || m["client_id"] != "rp" {
		t.Fatalf("introspect live token: %d %v", s, m)
	}
	if s, m := post("/introspect", url.Values{"token": {tok["refresh_token"].(string)}}, "rp", testSecret); s != 200 || m["active"] != true || m["token_type"] != "refresh_token" {
		t.Fatalf("introspect refresh token: %d %v", s, m)
	}
	if s, m := post("/introspect", url.Values{"token": {at}}, "rp", "bad-secret-123"); s != 401 || m["error"] != "invalid_client" {
		t.Fatalf("introspect with bad credentials: %d %v", s, m)
	}
	// Another public body's client learns nothing about this token.
	e.addClient(&sqin.Client{ID: "other", Name: "Autre", AuthMethod: sqin.AuthSecretBasic, Sector: "another-body",
		GrantTypes: []string{sqin.GrantClientCredentials}, Scopes: []string{"openid"}})
	if s, m := post("/introspect", url.Values{"token": {at}}, "other", testSecret); s != 200 || m["active"] != false || len(m) != 1 {
		t.Fatalf("introspect by another body: %d %v", s, m)
	}
	if s, _ := post("/revoke", url.Values{"token": {at}, "token_type_hint": {"access_token"}}, "rp", testSecret); s != 200 {
		t.Fatalf("revoke access token: %d", s)
	}
	if s, m := post("/introspect", url.Values{"token": {at}}, "rp", testSecret); s != 200 || m["active"] != false {
		t.Fatalf("revoked access token still active: %v", m)
	}
	// The refresh token still works after the access token's revocation.
	rt := tok["refresh_token"].(string)
	s, tok2, _ := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, nil)
	if s != 200 {
		t.Fatalf("refresh after access token revocation: %d %v", s, tok2)
	}
	if s, _ := post("/revoke", url.Values{"token": {tok2["refresh_token"].(string)}}, "rp", testSecret); s != 200 {
		t.Fatalf("revoke refresh token: %d", s)
	}
	if s, m := post("/introspect", url.Values{"token": {tok2["access_token"].(string)}}, "rp", testSecret); s != 200 || m["active"] != false {
		t.Fatalf("access token of a revoked grant still active: %v", m)
	}
	if s, _ := post("/revoke", url.Values{"token": {"unknown"}}, "rp", testSecret); s != 200 {
		t.Fatalf("revoking an unknown token must succeed: %d", s)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	tok := e.signIn(b, nil)
	q := url.Values{"id_token_hint": {tok["id_token"].(string)}, "post_logout_redirect_uri": {"https://rp.example.test/bye"}, "state": {"xyz"}}
	resp, _ := b.get("/logout?" + q.Encode())
	if loc := resp.Header.Get("Location"); loc != "https://rp.example.test/bye?state=xyz" {
		t.Fatalf("logout redirect: %d %q", resp.StatusCode, loc)
	}
	u, _ := e.authorizeURL(func(q url.Values) { q.Set("prompt", "none") })
	if resp, _ := b.get(u); !strings.Contains(resp.Header.Get("Location"), "error=login_required") {
		t.Fatalf("after logout: %q", resp.Header.Get("Location"))
	}
	// Unregistered post-logout URI: error page, no redirect.
	q.Set("post_logout_redirect_uri", "https://evil.test/")
	if resp, _ := b.get("/logout?" + q.Encode()); resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Fatalf("unregistered post-logout URI: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Without a hint, a signed-in user is asked to confirm.
	e.signIn(b, nil)
	resp, body := b.get("/logout")
	if resp.StatusCode != 200 || !strings.Contains(body, `name="logout"`) {
		t.Fatalf("confirmation page: %d", resp.StatusCode)
	}
	form := hiddenInputs(body)
	form.Set("logout", "yes")
	if resp, body := b.post("/logout", form); resp.StatusCode != 200 || !strings.Contains(body, "déconnecté") {
		t.Fatalf("confirmed logout: %d", resp.StatusCode)
	}
}

func TestPairwiseSubjects(t *testing.T) {
	e := newEnv(t)
	for _, c := range []*sqin.Client{
		{ID: "saaq-1", Sector: "saaq"}, {ID: "saaq-2", Sector: "saaq"}, {ID: "ramq-1", Sector: "ramq"},
	} {
		c.Name, c.AuthMethod, c.RedirectURIs = c.ID, sqin.AuthSecretBasic, []string{testRedirect}
		c.GrantTypes, c.Scopes = []string{sqin.GrantAuthorizationCode}, []string{"openid"}
		e.addClient(c)
	}
	b := e.browser()
	subs := map[string]string{}
	for _, id := range []string{"saaq-1", "saaq-2", "ramq-1"} {
		u, ap := e.authorizeURL(func(q url.Values) { q.Set("client_id", id); q.Set("scope", "openid") })
		code := b.follow(u).Query().Get("code")
		s, tok, _ := e.tokenRequest(codeForm(code, ap.verifier), func(r *http.Request) { r.SetBasicAuth(id, testSecret) })
		if s != 200 {
			t.Fatalf("%s: %d %v", id, s, tok)
		}
		subs[id] = claimsOf(t, tok["id_token"].(string))["sub"].(string)
	}
	if subs["saaq-1"] != subs["saaq-2"] || subs["saaq-1"] == subs["ramq-1"] {
		t.Fatalf("pairwise subjects: %v", subs)
	}
}

func TestConsentPageListsClaims(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	u, _ := e.authorizeURL(func(q url.Values) { q.Set("scope", "openid profile address"); q.Set("ui_locales", "en") })
	resp, _ := b.get(u)
	loc, _ := resp.Location()
	_, page := b.get(loc.String())
	form := hiddenInputs(page)
	form.Set("username", testEmail)
	form.Set("password", testPassword)
	resp, _ = b.post("/login", form)
	loc, _ = resp.Location()
	resp, _ = b.get(loc.String())
	loc, _ = resp.Location()
	_, page = b.get(loc.String())
	for _, want := range []string{`lang="en"`, "Your date of birth", "Your postal address", `name="approve"`} {
		if !strings.Contains(page, want) {
			t.Errorf("consent page lacks %q", want)
		}
	}
	if strings.Contains(page, "Your email address") {
		t.Error("consent page lists a claim that was not asked")
	}
	if csp := resp.Header.Get("Content-Security-Policy"); !slices.Contains(strings.Fields(csp), "'none';") && !strings.Contains(csp, "default-src 'none'") {
		t.Errorf("CSP: %q", csp)
	}
}

func TestConsentWithdrawal(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	tok := e.signIn(b, nil)
	resp, page := b.get("/consents")
	if resp.StatusCode != 200 || !strings.Contains(page, "Service de test") || !strings.Contains(page, "Votre adresse courriel") {
		t.Fatalf("consents page: %d\n%s", resp.StatusCode, page)
	}
	form := hiddenInputs(page)
	if form.Get("client_id") != "rp" {
		t.Fatalf("withdraw form: %v", form)
	}
	resp, _ = b.post("/consents", form)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("withdraw: %d", resp.StatusCode)
	}
	_, page = b.get(resp.Header.Get("Location"))
	if !strings.Contains(page, "est retiré") || strings.Contains(page, `name="client_id"`) {
		t.Fatalf("after withdrawal:\n%s", page)
	}
	// The service's tokens stop working at once…
	s, r, _ := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, nil)
	if s != 400 || r["error"] != "invalid_grant" {
		t.Fatalf("refresh after withdrawal: %d %v", s, r)
	}
	// …and the next authorization asks again.
	u, _ := e.authorizeURL(nil)
	resp, _ = b.get(u)
	if !strings.HasPrefix(resp.Header.Get("Location"), "/consent?") {
		t.Fatalf("next authorization: %q", resp.Header.Get("Location"))
	}
	// Without a session the page sends to sign-in; a forged form is refused.
	if resp, _ := e.browser().get("/consents"); resp.Header.Get("Location") != "/login" {
		t.Fatalf("anonymous: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	form.Set("csrf", "forged")
	if resp, _ := b.post("/consents", form); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("forged: %d", resp.StatusCode)
	}
}
