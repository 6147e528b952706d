package goclient

import (
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// authzParams is a well-formed authorization request for r, to be spoiled
// by a test case.
func (r *rp) authzParams() (url.Values, authReq) {
	a := authReq{State: randHex(12), Nonce: randHex(12), Verifier: oauth2.GenerateVerifier()}
	return url.Values{
		"response_type":         {"code"},
		"client_id":             {r.spec.ID},
		"redirect_uri":          {r.cfg.RedirectURL},
		"scope":                 {"openid email"},
		"state":                 {a.State},
		"nonce":                 {a.Nonce},
		"code_challenge":        {oauth2.S256ChallengeFromVerifier(a.Verifier)},
		"code_challenge_method": {"S256"},
	}, a
}

// TestAuthorizationErrors checks the errors of the authorization endpoint:
// before the redirect URI is trusted an HTML page with status 400 and no
// redirect; after, a redirect to the client with the exact error code,
// state and iss.
func TestAuthorizationErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		r := newRP(t, s, confidential("go-authz-err", "client_secret_basic"))
		cases := []struct {
			name     string
			spoil    func(v url.Values)
			login    bool   // the error comes after signing in
			wantPage bool   // 400 HTML page, no redirect
			wantErr  string // error code in the redirect
		}{
			{name: "unknown client", spoil: func(v url.Values) { v.Set("client_id", "no-such-client-"+randHex(4)) }, wantPage: true},
			{name: "missing client_id", spoil: func(v url.Values) { v.Del("client_id") }, wantPage: true},
			{name: "unregistered redirect_uri", spoil: func(v url.Values) { v.Set("redirect_uri", "https://evil.example/callback") }, wantPage: true},
			{name: "redirect_uri not an exact match", spoil: func(v url.Values) { v.Set("redirect_uri", rpRedirect+"/x") }, wantPage: true},
			{name: "redirect_uri with added query", spoil: func(v url.Values) { v.Set("redirect_uri", rpRedirect+"?next=1") }, wantPage: true},
			{name: "missing PKCE", spoil: func(v url.Values) { v.Del("code_challenge"); v.Del("code_challenge_method") }, wantErr: "invalid_request"},
			{name: "PKCE method plain", spoil: func(v url.Values) {
				v.Set("code_challenge", oauth2.GenerateVerifier())
				v.Set("code_challenge_method", "plain")
			}, wantErr: "invalid_request"},
			{name: "PKCE method omitted (means plain)", spoil: func(v url.Values) { v.Del("code_challenge_method") }, wantErr: "invalid_request"},
			{name: "response_type token", spoil: func(v url.Values) { v.Set("response_type", "token") }, wantErr: "unsupported_response_type"},
			{name: "prompt=none without session", spoil: func(v url.Values) { v.Set("prompt", "none") }, wantErr: "login_required"},
			{name: "acr_values above the account's level", spoil: func(v url.Values) { v.Set("acr_values", acrLoA3) }, login: true, wantErr: "unmet_authentication_requirements"},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				v, a := r.authzParams()
				tc.spoil(v)
				u := r.provider.Endpoint().AuthURL + "?" + v.Encode()
				b := newBrowser()
				if tc.wantPage {
					p, err := b.get(u)
					if err != nil {
						t.Fatal(err)
					}
					ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
					if p.Status != http.StatusBadRequest || p.Header.Get("Location") != "" || ct != "text/html" {
						t.Fatalf("GET %s\nwant a 400 HTML error page and no redirect, got %s", u, p)
					}
					return
				}
				o := navOpts{}
				if tc.login {
					o = navOpts{Username: demoUser(1), Password: demoPassword}
				}
				cb, err := b.navigate(u, rpRedirect, o)
				if err != nil {
					t.Fatalf("GET %s\nwant a redirect with error=%s: %v", u, tc.wantErr, err)
				}
				q := cb.Query()
				if q.Get("error") != tc.wantErr || q.Get("code") != "" {
					t.Fatalf("GET %s\nredirect %s, want error=%s and no code", u, cb, tc.wantErr)
				}
				if q.Get("state") != a.State {
					t.Errorf("error redirect %s: state %q, want %q", cb, q.Get("state"), a.State)
				}
				if q.Get("iss") != s.Issuer {
					t.Errorf("error redirect %s: iss %q, want %q (RFC 9207)", cb, q.Get("iss"), s.Issuer)
				}
			})
		}
	})
}

// negEnv is what the token endpoint cases share on one server.
type negEnv struct {
	s       *Server
	conf    *rp // client_secret_basic, refresh tokens
	post    *rp // client_secret_post
	other   *rp // another confidential client
	browser *browser
}

// code gets a fresh authorization code for r from e's signed-in browser.
func (e *negEnv) code(t testing.TB, r *rp, scopes ...string) (string, authReq) {
	t.Helper()
	if scopes == nil {
		scopes = []string{oidc.ScopeOpenID, "email"}
	}
	a := r.authURL(scopes)
	cb := r.callback(t, a, e.browser, navOpts{Username: demoUser(1), Password: demoPassword})
	return r.checkCallback(t, a, cb), a
}

// tokenReq builds a request to the token endpoint with a raw body.
func (e *negEnv) tokenReq(t testing.TB, contentType, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.conf.provider.Endpoint().TokenURL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return req
}

// basic sets the HTTP Basic credentials of r on req (RFC 6749 §2.3.1).
func basic(req *http.Request, r *rp) *http.Request {
	req.SetBasicAuth(url.QueryEscape(r.spec.ID), url.QueryEscape(r.spec.Secret))
	return req
}

func codeForm(code string, a authReq, redirect string) url.Values {
	return url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {redirect}, "code_verifier": {a.Verifier}}
}

// tokenCase is one request to the token endpoint and the answer it must get.
type tokenCase struct {
	name       string
	req        func(t *testing.T) *http.Request
	wantStatus []int
	wantErr    string // exact error code; empty: any 400 must say invalid_request
	after      func(t *testing.T)
}

// TestTokenErrors checks the token endpoint's error responses against the
// exact codes of RFC 6749 §5.2 (and RFC 7636, OAuth 2.0 Security BCP).
func TestTokenErrors(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		e := &negEnv{s: s, browser: newBrowser(),
			conf:  newRP(t, s, confidential("go-tok-err", "client_secret_basic")),
			post:  newRP(t, s, confidential("go-tok-post", "client_secret_post")),
			other: newRP(t, s, confidential("go-tok-other", "client_secret_basic")),
		}
		form := "application/x-www-form-urlencoded"
		cases := []tokenCase{
			{name: "wrong code_verifier", wantStatus: []int{400}, wantErr: "invalid_grant", req: func(t *testing.T) *http.Request {
				code, a := e.code(t, e.conf)
				v := codeForm(code, a, rpRedirect)
				v.Set("code_verifier", oauth2.GenerateVerifier())
				return basic(e.tokenReq(t, form, v.Encode()), e.conf)
			}},
			{name: "code of another client", wantStatus: []int{400}, wantErr: "invalid_grant", req: func(t *testing.T) *http.Request {
				code, a := e.code(t, e.other)
				return basic(e.tokenReq(t, form, codeForm(code, a, rpRedirect).Encode()), e.conf)
			}},
			{name: "redirect_uri differs from the authorization request", wantStatus: []int{400}, wantErr: "invalid_grant", req: func(t *testing.T) *http.Request {
				code, a := e.code(t, e.conf)
				return basic(e.tokenReq(t, form, codeForm(code, a, spaRedirect).Encode()), e.conf)
			}},
			func() (c tokenCase) {
				// Replay: the second exchange fails and the tokens of the
				// first are revoked (RFC 6749 §4.1.2, RFC 9700 §4.5).
				var first *oauth2.Token
				c.name, c.wantStatus, c.wantErr = "replayed code", []int{400}, "invalid_grant"
				c.req = func(t *testing.T) *http.Request {
					code, a := e.code(t, e.conf, oidc.ScopeOpenID, oidc.ScopeOfflineAccess)
					var err error
					first, err = e.conf.cfg.Exchange(ctxT(t), code, oauth2.VerifierOption(a.Verifier))
					if err != nil {
						t.Fatalf("first exchange: %s", describeErr(err))
					}
					if first.RefreshToken == "" {
						t.Fatalf("first exchange gave no refresh token (offline_access, refresh_token grant)")
					}
					return basic(e.tokenReq(t, form, codeForm(code, a, rpRedirect).Encode()), e.conf)
				}
				c.after = func(t *testing.T) {
					_, err := e.conf.refresh(t, first.RefreshToken)
					wantOAuthError(t, err, "invalid_grant", "refresh token of the first exchange after the code was replayed")
					if m := e.conf.introspect(t, first.AccessToken); m["active"] != false {
						t.Logf("note: access token of the first exchange still active after code replay (RFC 6749 §4.1.2 SHOULD revoke): %v", m)
					}
				}
				return c
			}(),
			func() (c tokenCase) {
				var t2 string
				c.name, c.wantStatus, c.wantErr = "refresh token reuse", []int{400}, "invalid_grant"
				c.req = func(t *testing.T) *http.Request {
					code, a := e.code(t, e.conf, oidc.ScopeOpenID, oidc.ScopeOfflineAccess)
					tok, err := e.conf.cfg.Exchange(ctxT(t), code, oauth2.VerifierOption(a.Verifier))
					if err != nil {
						t.Fatalf("exchange: %s", describeErr(err))
					}
					next, err := e.conf.refresh(t, tok.RefreshToken)
					if err != nil {
						t.Fatalf("first refresh: %s", describeErr(err))
					}
					t2 = next.RefreshToken
					v := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken}}
					return basic(e.tokenReq(t, form, v.Encode()), e.conf)
				}
				c.after = func(t *testing.T) {
					_, err := e.conf.refresh(t, t2)
					wantOAuthError(t, err, "invalid_grant", "rotated refresh token after reuse of its parent (family revoked)")
				}
				return c
			}(),
			{name: "wrong client secret (basic)", wantStatus: []int{401}, wantErr: "invalid_client", req: func(t *testing.T) *http.Request {
				req := e.tokenReq(t, form, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}.Encode())
				req.SetBasicAuth(e.conf.spec.ID, e.conf.spec.Secret+"-wrong")
				return req
			}},
			{name: "unknown client (basic)", wantStatus: []int{401}, wantErr: "invalid_client", req: func(t *testing.T) *http.Request {
				req := e.tokenReq(t, form, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"x"}}.Encode())
				req.SetBasicAuth("no-such-client-"+randHex(4), "whatever-secret-123")
				return req
			}},
			{name: "wrong client secret (post)", wantStatus: []int{400, 401}, wantErr: "invalid_client", req: func(t *testing.T) *http.Request {
				code, a := e.code(t, e.post)
				v := codeForm(code, a, rpRedirect)
				v.Set("client_id", e.post.spec.ID)
				v.Set("client_secret", e.post.spec.Secret+"-wrong")
				return e.tokenReq(t, form, v.Encode())
			}},
			{name: "no client authentication for a confidential client", wantStatus: []int{400, 401}, wantErr: "invalid_client", req: func(t *testing.T) *http.Request {
				code, a := e.code(t, e.conf)
				v := codeForm(code, a, rpRedirect)
				v.Set("client_id", e.conf.spec.ID)
				return e.tokenReq(t, form, v.Encode())
			}},
			{name: "malformed body: bad percent-encoding", wantStatus: []int{400}, wantErr: "invalid_request", req: func(t *testing.T) *http.Request {
				return basic(e.tokenReq(t, form, "grant_type=authorization_code&code=%zz&code_verifier=%"), e.conf)
			}},
			{name: "malformed body: repeated parameter", wantStatus: []int{400}, wantErr: "invalid_request", req: func(t *testing.T) *http.Request {
				return basic(e.tokenReq(t, form, "grant_type=refresh_token&refresh_token=a&refresh_token=b"), e.conf)
			}},
			{name: "malformed body: JSON instead of a form", wantStatus: []int{400}, wantErr: "invalid_request", req: func(t *testing.T) *http.Request {
				return basic(e.tokenReq(t, "application/json", `{"grant_type":"client_credentials"}`), e.conf)
			}},
			{name: "missing grant_type", wantStatus: []int{400}, wantErr: "invalid_request", req: func(t *testing.T) *http.Request {
				return basic(e.tokenReq(t, form, "code=abc"), e.conf)
			}},
			{name: "missing code", wantStatus: []int{400}, wantErr: "invalid_request", req: func(t *testing.T) *http.Request {
				return basic(e.tokenReq(t, form, url.Values{"grant_type": {"authorization_code"}, "redirect_uri": {rpRedirect},
					"code_verifier": {oauth2.GenerateVerifier()}}.Encode()), e.conf)
			}},
			{name: "oversized body (2 MiB)", wantStatus: []int{400, 413}, req: func(t *testing.T) *http.Request {
				big := "grant_type=authorization_code&code=" + strings.Repeat("A", 2<<20)
				return basic(e.tokenReq(t, form, big), e.conf)
			}, after: func(t *testing.T) {
				resp, err := http.Get(s.Issuer + "/readyz")
				if err != nil {
					t.Fatalf("server gone after an oversized request: %v\n%s", err, s.LogTail(20))
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					t.Fatalf("/readyz %d after an oversized request", resp.StatusCode)
				}
			}},
			{name: "unsupported grant_type password", wantStatus: []int{400}, wantErr: "unsupported_grant_type", req: func(t *testing.T) *http.Request {
				return basic(e.tokenReq(t, form, url.Values{"grant_type": {"password"}, "username": {demoUser(1)},
					"password": {demoPassword}}.Encode()), e.conf)
			}},
			{name: "unsupported grant_type (unknown URN)", wantStatus: []int{400}, wantErr: "unsupported_grant_type", req: func(t *testing.T) *http.Request {
				return basic(e.tokenReq(t, form, "grant_type=urn%3Aexample%3Anot-a-grant"), e.conf)
			}},
			{name: "grant type not registered for the client", wantStatus: []int{400}, wantErr: "unauthorized_client", req: func(t *testing.T) *http.Request {
				return basic(e.tokenReq(t, form, "grant_type=client_credentials"), e.conf)
			}},
			{name: "unknown refresh token", wantStatus: []int{400}, wantErr: "invalid_grant", req: func(t *testing.T) *http.Request {
				return basic(e.tokenReq(t, form, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"no-such-" + randHex(16)}}.Encode()), e.conf)
			}},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				req := tc.req(t)
				status, m, raw, hdr := doTokenReq(t, req)
				what := fmt.Sprintf("POST /token (%s)", tc.name)
				if !slices.Contains(tc.wantStatus, status) {
					t.Fatalf("%s: status %d, want %v; body %s", what, status, tc.wantStatus, clip(raw))
				}
				if tc.wantErr != "" {
					if got, _ := m["error"].(string); got != tc.wantErr {
						t.Fatalf("%s: error %q, want %q; body %s", what, got, tc.wantErr, clip(raw))
					}
					if ct, _, _ := mime.ParseMediaType(hdr.Get("Content-Type")); ct != "application/json" {
						t.Errorf("%s: Content-Type %q, want application/json (RFC 6749 §5.2)", what, hdr.Get("Content-Type"))
					}
				} else if status == 400 {
					if got, _ := m["error"].(string); got != "invalid_request" {
						t.Errorf("%s: 400 with error %q, want invalid_request; body %s", what, got, clip(raw))
					}
				}
				if status == http.StatusUnauthorized && req.Header.Get("Authorization") != "" && hdr.Get("WWW-Authenticate") == "" {
					t.Errorf("%s: 401 without WWW-Authenticate although the client used the Authorization header (RFC 6749 §5.2)", what)
				}
				if tc.after != nil {
					tc.after(t)
				}
			})
		}
	})
}

func doTokenReq(t *testing.T, req *http.Request) (int, map[string]any, string, http.Header) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	raw, _ := readAll(resp)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return resp.StatusCode, m, string(raw), resp.Header
}

func clip(s string) string {
	if len(s) > 600 {
		return s[:600] + "…"
	}
	return s
}
