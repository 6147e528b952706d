package oidc

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/keys"
)

// ecKey is a client's or a DPoP key.
type ecKey struct {
	priv *ecdsa.PrivateKey
	kid  string
}

func newECKey(t testing.TB, kid string) *ecKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return &ecKey{priv: k, kid: kid}
}

func (k *ecKey) jwks(t testing.TB) []byte {
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: k.priv.Public(), KeyID: k.kid, Use: "sig", Algorithm: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func (k *ecKey) sign(t testing.TB, typ string, header map[jose.HeaderKey]any, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	for hk, hv := range header {
		opts = opts.WithHeader(hk, hv)
	}
	var key any = jose.JSONWebKey{Key: k.priv, KeyID: k.kid}
	if header["jwk"] != nil {
		key = k.priv // the jwk header replaces the kid
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (k *ecKey) thumbprint() string {
	tp, _ := (&jose.JSONWebKey{Key: k.priv.Public()}).Thumbprint(crypto.SHA256)
	return base64.RawURLEncoding.EncodeToString(tp)
}

// assertion is a private_key_jwt client assertion for clientID.
func (e *env) assertion(k *ecKey, clientID string, mod func(map[string]any)) string {
	cl := map[string]any{"iss": clientID, "sub": clientID, "aud": e.srv.URL, "jti": keys.Random(12),
		"iat": e.now.Unix(), "exp": e.now.Add(time.Minute).Unix()}
	if mod != nil {
		mod(cl)
	}
	return k.sign(e.t, "JWT", nil, cl)
}

func assertionAuth(a string) url.Values {
	return url.Values{"client_assertion_type": {assertionType}, "client_assertion": {a}}
}

// proof is a DPoP proof by k for method and URL.
func (e *env) proof(k *ecKey, method, u, accessToken, nonce string) string {
	cl := map[string]any{"jti": keys.Random(12), "htm": method, "htu": u, "iat": e.now.Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		cl["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if nonce != "" {
		cl["nonce"] = nonce
	}
	jwk := jose.JSONWebKey{Key: k.priv.Public()}
	return k.sign(e.t, "dpop+jwt", map[jose.HeaderKey]any{"jwk": jwk}, cl)
}

// post sends a form with optional headers.
func (e *env) post(path string, form url.Values, hdr map[string]string) (int, map[string]any, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	return e.do(req)
}

func merge(vs ...url.Values) url.Values {
	out := url.Values{}
	for _, v := range vs {
		for k, x := range v {
			out[k] = x
		}
	}
	return out
}

// secondInstance is another provider on the same database and keys, as a
// second server behind a load balancer.
func (e *env) secondInstance() *env {
	e.t.Helper()
	e2 := &env{t: e.t, db: e.db, keys: e.keys, now: e.now}
	e2.srv = httptest.NewServer(nil)
	e.t.Cleanup(e2.srv.Close)
	p := testProvider(e.t, e.db, e.keys, Config{Issuer: e.srv.URL, DPoPNonce: e.p.cfg.DPoPNonce})
	p.now = func() time.Time { return e2.now }
	mux := http.NewServeMux()
	p.Routes(mux)
	e2.srv.Config.Handler = mux
	e2.p = p
	return e2
}

func (e *env) addKeyClient(id string, k *ecKey, mod func(*sqin.Client)) {
	c := &sqin.Client{ID: id, Name: "Service " + id, AuthMethod: sqin.AuthPrivateKey, JWKS: k.jwks(e.t),
		RedirectURIs: []string{testRedirect}, PostLogoutRedirectURIs: []string{"https://rp.example.test/bye"},
		GrantTypes: []string{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken, sqin.GrantClientCredentials},
		Scopes:     []string{"openid", "profile", "email", "offline_access"}, MinLoA: sqin.LoA1}
	if mod != nil {
		mod(c)
	}
	e.addClient(c)
}

func TestPrivateKeyJWT(t *testing.T) {
	e := newEnv(t)
	k := newECKey(t, "k1")
	e.addKeyClient("pkj", k, nil)
	cc := url.Values{"grant_type": {"client_credentials"}}
	a := e.assertion(k, "pkj", nil)
	if s, r, _ := e.post("/token", merge(cc, assertionAuth(a)), nil); s != 200 || r["access_token"] == nil {
		t.Fatalf("valid assertion: %d %v", s, r)
	}
	e2 := e.secondInstance()
	foreign := newECKey(t, "k1")
	tests := []struct {
		name string
		form url.Values
		on   *env
		desc string
	}{
		{"replayed jti", merge(cc, assertionAuth(a)), e, "already used"},
		{"replayed jti on another instance", merge(cc, assertionAuth(a)), e2, "already used"},
		{"wrong audience", merge(cc, assertionAuth(e.assertion(k, "pkj", func(m map[string]any) { m["aud"] = "https://elsewhere" }))), e, "aud"},
		{"expired", merge(cc, assertionAuth(e.assertion(k, "pkj", func(m map[string]any) { m["exp"] = e.now.Add(-time.Minute).Unix() }))), e, "expired"},
		{"too long-lived", merge(cc, assertionAuth(e.assertion(k, "pkj", func(m map[string]any) { m["exp"] = e.now.Add(time.Hour).Unix() }))), e, "lifetime"},
		{"no jti", merge(cc, assertionAuth(e.assertion(k, "pkj", func(m map[string]any) { delete(m, "jti") }))), e, "jti"},
		{"sub differs", merge(cc, assertionAuth(e.assertion(k, "pkj", func(m map[string]any) { m["sub"] = "other" }))), e, "iss and sub"},
		{"foreign key", merge(cc, assertionAuth(e.assertion(foreign, "pkj", nil))), e, "signature"},
		{"unknown kid", merge(cc, assertionAuth(e.assertion(newECKey(t, "k9"), "pkj", nil))), e, "kid"},
		{"wrong assertion type", merge(cc, url.Values{"client_assertion_type": {"urn:x"}, "client_assertion": {a}}), e, "client_assertion_type"},
		{"secret for a key client", merge(cc, url.Values{"client_id": {"pkj"}, "client_secret": {testSecret}}), e, "private_key_jwt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, r, _ := tt.on.post("/token", tt.form, nil)
			if s != 401 || r["error"] != "invalid_client" || !strings.Contains(r["error_description"].(string), tt.desc) {
				t.Fatalf("got %d %v, want 401 invalid_client mentioning %q", s, r, tt.desc)
			}
		})
	}
	// An HMAC-signed assertion is refused before any key lookup.
	hs, _ := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: []byte(strings.Repeat("k", 32))}, nil)
	hsTok, _ := jwt.Signed(hs).Claims(map[string]any{"iss": "pkj", "sub": "pkj", "aud": e.srv.URL, "jti": "x", "exp": e.now.Add(time.Minute).Unix()}).Serialize()
	if s, r, _ := e.post("/token", merge(cc, assertionAuth(hsTok)), nil); s != 401 || r["error"] != "invalid_client" {
		t.Fatalf("HS256 assertion: %d %v", s, r)
	}
}

func TestJWKSURIRotation(t *testing.T) {
	e := newEnv(t)
	current := newECKey(t, "v1")
	jwksSrv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(current.jwks(t))
	}))
	defer jwksSrv.Close()
	// The default fetcher refuses loopback (SSRF); this test server is one.
	if _, err := e.p.clientKeys.fetch(context.Background(), jwksSrv.URL); err == nil || !strings.Contains(err.Error(), "non-public") {
		t.Fatalf("loopback jwks_uri fetched: %v", err)
	}
	e.p.clientKeys = newClientKeys(http.DefaultClient)
	e.addKeyClient("uri", current, func(c *sqin.Client) { c.JWKS, c.JWKSURI = nil, jwksSrv.URL })
	cc := url.Values{"grant_type": {"client_credentials"}}
	if s, r, _ := e.post("/token", merge(cc, assertionAuth(e.assertion(current, "uri", nil))), nil); s != 200 {
		t.Fatalf("key from jwks_uri: %d %v", s, r)
	}
	// The client rotates: a new kid makes the provider fetch again (after
	// the anti-hammering delay).
	current = newECKey(t, "v2")
	e.now = e.now.Add(time.Minute)
	if s, r, _ := e.post("/token", merge(cc, assertionAuth(e.assertion(current, "uri", nil))), nil); s != 200 {
		t.Fatalf("rotated key: %d %v", s, r)
	}
}

func TestDPoP(t *testing.T) {
	e := newEnv(t)
	e.p.cfg.DPoPNonce = true
	k := newECKey(t, "")
	tokURL := e.srv.URL + "/token"
	b := e.browser()
	u, ap := e.authorizeURL(nil)
	code := b.follow(u).Query().Get("code")
	form := codeForm(code, ap.verifier)

	// Without a nonce: use_dpop_nonce and the nonce to use.
	s, r, h := e.tokenRequest(form, func(req *http.Request) {
		req.SetBasicAuth("rp", testSecret)
		req.Header.Set("DPoP", e.proof(k, "POST", tokURL, "", ""))
	})
	nonce := h.Get("DPoP-Nonce")
	if s != 400 || r["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("no nonce: %d %v %q", s, r, nonce)
	}
	s, tok, _ := e.tokenRequest(form, func(req *http.Request) {
		req.SetBasicAuth("rp", testSecret)
		req.Header.Set("DPoP", e.proof(k, "POST", tokURL, "", nonce))
	})
	if s != 200 || tok["token_type"] != "DPoP" {
		t.Fatalf("DPoP token: %d %v", s, tok)
	}
	at := tok["access_token"].(string)
	if c := claimsOf(t, at); c["cnf"].(map[string]any)["jkt"] != k.thumbprint() {
		t.Fatalf("cnf: %v", c["cnf"])
	}
	ui := e.srv.URL + "/userinfo"
	call := func(scheme, proof string) (int, map[string]any, http.Header) {
		req, _ := http.NewRequest(http.MethodGet, ui, nil)
		req.Header.Set("Authorization", scheme+" "+at)
		if proof != "" {
			req.Header.Set("DPoP", proof)
		}
		return e.do(req)
	}
	if s, r, _ := call("DPoP", e.proof(k, "GET", ui, at, nonce)); s != 200 || r["sub"] == nil {
		t.Fatalf("userinfo with proof: %d %v", s, r)
	}
	replayed := e.proof(k, "GET", ui, at, nonce)
	call("DPoP", replayed)
	other := newECKey(t, "")
	stale := e.proof(k, "GET", ui, at, "bm9wZQ")
	negatives := []struct {
		name, scheme, proof, want string
	}{
		{"token used without its proof", "Bearer", "", "invalid_token"},
		{"DPoP scheme without proof", "DPoP", "", "invalid_dpop_proof"},
		{"replayed proof", "DPoP", replayed, "invalid_dpop_proof"},
		{"proof for another method", "DPoP", e.proof(k, "POST", ui, at, nonce), "invalid_dpop_proof"},
		{"proof for another URL", "DPoP", e.proof(k, "GET", e.srv.URL+"/other", at, nonce), "invalid_dpop_proof"},
		{"wrong ath", "DPoP", e.proof(k, "GET", ui, "another-token", nonce), "invalid_dpop_proof"},
		{"proof by another key", "DPoP", e.proof(other, "GET", ui, at, nonce), "invalid_dpop_proof"},
		{"stale nonce", "DPoP", stale, "use_dpop_nonce"},
	}
	for _, n := range negatives {
		t.Run(n.name, func(t *testing.T) {
			s, _, h := call(n.scheme, n.proof)
			if s != 401 || !strings.Contains(h.Get("WWW-Authenticate"), `error="`+n.want+`"`) {
				t.Fatalf("got %d %q, want 401 %s", s, h.Get("WWW-Authenticate"), n.want)
			}
			if n.want == "use_dpop_nonce" && h.Get("DPoP-Nonce") == "" {
				t.Fatal("no DPoP-Nonce with use_dpop_nonce")
			}
		})
	}
	// A nonce ages out after two steps.
	e.now = e.now.Add(4*time.Minute + 30*time.Second)
	if s, _, h := call("DPoP", e.proof(k, "GET", ui, at, nonce)); s != 401 || !strings.Contains(h.Get("WWW-Authenticate"), "use_dpop_nonce") {
		t.Fatalf("expired nonce: %d %q", s, h.Get("WWW-Authenticate"))
	}
	e.now = e.now.Add(-4*time.Minute - 30*time.Second)
	// Refresh with a proof gives a new DPoP-bound token.
	s, r2, _ := e.tokenRequest(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}}, func(req *http.Request) {
		req.SetBasicAuth("rp", testSecret)
		req.Header.Set("DPoP", e.proof(k, "POST", tokURL, "", nonce))
	})
	if s != 200 || r2["token_type"] != "DPoP" {
		t.Fatalf("DPoP refresh: %d %v", s, r2)
	}
}

func TestDPoPPublicClientBindsRefreshTokens(t *testing.T) {
	e := newEnv(t)
	e.addClient(&sqin.Client{ID: "spa", Name: "SPA", AuthMethod: sqin.AuthNone, RedirectURIs: []string{testRedirect},
		GrantTypes: []string{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken}, Scopes: []string{"openid", "profile", "email"}})
	k := newECKey(t, "")
	tokURL := e.srv.URL + "/token"
	b := e.browser()
	u, ap := e.authorizeURL(func(q url.Values) { q.Set("client_id", "spa"); q.Set("dpop_jkt", k.thumbprint()) })
	code := b.follow(u).Query().Get("code")
	form := merge(codeForm(code, ap.verifier), url.Values{"client_id": {"spa"}})
	// dpop_jkt binds the code: a proof by another key is refused.
	s, r, _ := e.post("/token", form, map[string]string{"DPoP": e.proof(newECKey(t, ""), "POST", tokURL, "", "")})
	if s != 400 || r["error"] != "invalid_grant" {
		t.Fatalf("code bound by dpop_jkt, other key: %d %v", s, r)
	}
	s, tok, _ := e.post("/token", form, map[string]string{"DPoP": e.proof(k, "POST", tokURL, "", "")})
	if s != 200 {
		t.Fatalf("token: %d %v", s, tok)
	}
	rf := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok["refresh_token"].(string)}, "client_id": {"spa"}}
	if s, r, _ := e.post("/token", rf, nil); s != 400 || r["error"] != "invalid_grant" {
		t.Fatalf("bound refresh token without proof: %d %v", s, r)
	}
	if s, r, _ := e.post("/token", rf, map[string]string{"DPoP": e.proof(k, "POST", tokURL, "", "")}); s != 200 {
		t.Fatalf("bound refresh token with its key: %d %v", s, r)
	}
}

// par pushes an authorization request and returns the request_uri.
func (e *env) par(form url.Values, hdr map[string]string) (int, map[string]any) {
	if hdr == nil && form.Get("client_assertion") == "" && form.Get("client_secret") == "" && form.Get("client_id") == "rp" {
		hdr = map[string]string{"Authorization": "Basic " + base64.StdEncoding.EncodeToString([]byte("rp:"+testSecret))}
	}
	s, r, _ := e.post("/par", form, hdr)
	return s, r
}

func parForm(e *env, ap authParams) url.Values {
	f := url.Values{}
	for k, v := range ap.query {
		f[k] = v
	}
	return f
}

func TestPAR(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	_, ap := e.authorizeURL(nil)
	form := parForm(e, ap)
	s, r := e.par(form, nil)
	if s != 201 || !strings.HasPrefix(r["request_uri"].(string), requestURIPrefix) || r["expires_in"].(float64) != 60 {
		t.Fatalf("PAR: %d %v", s, r)
	}
	requestURI := r["request_uri"].(string)
	start := e.srv.URL + "/authorize?" + url.Values{"client_id": {"rp"}, "request_uri": {requestURI}}.Encode()
	loc := b.follow(start)
	if loc.Query().Get("code") == "" || loc.Query().Get("state") != "st-123" {
		t.Fatalf("PAR flow: %v", loc)
	}
	if s, tok, _ := e.tokenRequest(codeForm(loc.Query().Get("code"), ap.verifier), nil); s != 200 {
		t.Fatalf("token after PAR: %d %v", s, tok)
	}
	if resp, _ := b.get(start); resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Fatalf("reused request_uri: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// On the SSO session (consent given) the code and the redemption of
	// the request_uri are one write: still single use.
	_, r = e.par(form, nil)
	sso := e.srv.URL + "/authorize?" + url.Values{"client_id": {"rp"}, "request_uri": {r["request_uri"].(string)}}.Encode()
	if resp, _ := b.get(sso); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("request_uri on the SSO session: %d", resp.StatusCode)
	} else if loc, _ := resp.Location(); loc.Query().Get("code") == "" {
		t.Fatalf("request_uri on the SSO session: %v", loc)
	}
	if resp, _ := b.get(sso); resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
		t.Fatalf("request_uri reused on the SSO session: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Expired request_uri.
	_, r = e.par(form, nil)
	e.now = e.now.Add(2 * time.Minute)
	u2 := e.srv.URL + "/authorize?" + url.Values{"client_id": {"rp"}, "request_uri": {r["request_uri"].(string)}}.Encode()
	if resp, _ := b.get(u2); resp.StatusCode != 400 {
		t.Fatalf("expired request_uri: %d", resp.StatusCode)
	}
	e.now = e.now.Add(-2 * time.Minute)
	// Another client cannot redeem it.
	_, r = e.par(form, nil)
	e.addClient(&sqin.Client{ID: "thief", Name: "x", AuthMethod: sqin.AuthSecretBasic, RedirectURIs: []string{testRedirect},
		GrantTypes: []string{sqin.GrantAuthorizationCode}, Scopes: []string{"openid"}})
	u3 := e.srv.URL + "/authorize?" + url.Values{"client_id": {"thief"}, "request_uri": {r["request_uri"].(string)}}.Encode()
	if resp, _ := b.get(u3); resp.StatusCode != 400 {
		t.Fatalf("request_uri of another client: %d", resp.StatusCode)
	}

	errs := []struct {
		name string
		form url.Values
		code string
		want int
	}{
		{"unregistered redirect_uri", merge(form, url.Values{"redirect_uri": {"https://evil.test/cb"}}), "invalid_request", 400},
		{"request_uri inside PAR", merge(form, url.Values{"request_uri": {"urn:x"}}), "invalid_request", 400},
		{"no PKCE", merge(form, url.Values{"code_challenge": {""}}), "invalid_request", 400},
		{"no client authentication", merge(form, url.Values{"client_id": {"nobody"}}), "invalid_client", 401},
		{"wrong secret", merge(form, url.Values{"client_id": {"rp"}, "client_secret": {"wrong-secret-123"}}), "invalid_client", 401},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			s, r := e.par(tt.form, nil)
			if s != tt.want || r["error"] != tt.code {
				t.Fatalf("got %d %v, want %d %s", s, r, tt.want, tt.code)
			}
		})
	}
}

func TestPARRequiredPerClient(t *testing.T) {
	e := newEnv(t)
	e.addClient(&sqin.Client{ID: "paronly", Name: "PAR only", AuthMethod: sqin.AuthSecretBasic, RequirePAR: true,
		RedirectURIs: []string{testRedirect}, GrantTypes: []string{sqin.GrantAuthorizationCode}, Scopes: []string{"openid", "profile", "email"}})
	u, _ := e.authorizeURL(func(q url.Values) { q.Set("client_id", "paronly") })
	resp, _ := e.browser().get(u)
	loc, _ := resp.Location()
	if loc == nil || loc.Query().Get("error") != "invalid_request" || !strings.Contains(loc.Query().Get("error_description"), "PAR") {
		t.Fatalf("authorization without PAR: %d %v", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestRequestObjects(t *testing.T) {
	e := newEnv(t)
	k := newECKey(t, "k1")
	e.addKeyClient("jar", k, nil)
	_, ap := e.authorizeURL(func(q url.Values) { q.Set("client_id", "jar") })
	obj := map[string]any{"iss": "jar", "aud": e.srv.URL, "exp": e.now.Add(5 * time.Minute).Unix(), "nbf": e.now.Unix()}
	for k, v := range ap.query {
		obj[k] = v[0]
	}
	signed := k.sign(t, "oauth-authz-req+jwt", nil, obj)
	// Through PAR, authenticated with private_key_jwt.
	s, r := e.par(merge(url.Values{"client_id": {"jar"}, "request": {signed}}, assertionAuth(e.assertion(k, "jar", nil))), nil)
	if s != 201 {
		t.Fatalf("PAR with request object: %d %v", s, r)
	}
	b := e.browser()
	loc := b.follow(e.srv.URL + "/authorize?" + url.Values{"client_id": {"jar"}, "request_uri": {r["request_uri"].(string)}}.Encode())
	if loc.Query().Get("code") == "" {
		t.Fatalf("flow: %v", loc)
	}
	// Directly at the authorization endpoint; outer parameters are ignored.
	direct := e.srv.URL + "/authorize?" + url.Values{"client_id": {"jar"}, "request": {signed}, "scope": {"openid email"}}.Encode()
	if loc := b.follow(direct); loc.Query().Get("code") == "" {
		t.Fatalf("request object at authorize: %v", loc)
	}
	bad := []struct {
		name string
		obj  string
	}{
		{"foreign key", newECKey(t, "k1").sign(t, "oauth-authz-req+jwt", nil, obj)},
		{"wrong audience", k.sign(t, "oauth-authz-req+jwt", nil, withClaim(obj, "aud", "https://elsewhere"))},
		{"expired", k.sign(t, "oauth-authz-req+jwt", nil, withClaim(obj, "exp", e.now.Add(-time.Minute).Unix()))},
		{"too long-lived", k.sign(t, "oauth-authz-req+jwt", nil, withClaim(obj, "exp", e.now.Add(2*time.Hour).Unix()))},
		{"other client_id", k.sign(t, "oauth-authz-req+jwt", nil, withClaim(obj, "client_id", "rp"))},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			s, r := e.par(merge(url.Values{"client_id": {"jar"}, "request": {tt.obj}}, assertionAuth(e.assertion(k, "jar", nil))), nil)
			if s != 400 || r["error"] != "invalid_request_object" {
				t.Fatalf("got %d %v", s, r)
			}
			resp, _ := b.get(e.srv.URL + "/authorize?" + url.Values{"client_id": {"jar"}, "request": {tt.obj}}.Encode())
			if resp.StatusCode != 400 || resp.Header.Get("Location") != "" {
				t.Fatalf("at authorize: %d %q", resp.StatusCode, resp.Header.Get("Location"))
			}
		})
	}
}

func withClaim(m map[string]any, k string, v any) map[string]any {
	out := map[string]any{}
	for a, b := range m {
		out[a] = b
	}
	out[k] = v
	return out
}

func TestFAPI2Profile(t *testing.T) {
	e := newEnv(t)
	e.p.cfg.DPoPNonce = true
	k := newECKey(t, "k1")
	dk := newECKey(t, "")
	e.addKeyClient("fapi", k, func(c *sqin.Client) { c.Profile = sqin.ProfileFAPI2; c.RequirePAR, c.RequireDPoP = true, true })
	b := e.browser()
	// No PAR: refused.
	u, ap := e.authorizeURL(func(q url.Values) { q.Set("client_id", "fapi") })
	if resp, _ := b.get(u); !strings.Contains(resp.Header.Get("Location"), "error=invalid_request") {
		t.Fatalf("FAPI without PAR: %q", resp.Header.Get("Location"))
	}
	// PAR with private_key_jwt, then the code.
	s, r := e.par(merge(parForm(e, ap), url.Values{"client_id": {"fapi"}}, assertionAuth(e.assertion(k, "fapi", nil))), nil)
	if s != 201 {
		t.Fatalf("FAPI PAR: %d %v", s, r)
	}
	loc := b.follow(e.srv.URL + "/authorize?" + url.Values{"client_id": {"fapi"}, "request_uri": {r["request_uri"].(string)}}.Encode())
	code := loc.Query().Get("code")
	if code == "" || loc.Query().Get("iss") != e.srv.URL {
		t.Fatalf("FAPI code: %v", loc)
	}
	form := merge(codeForm(code, ap.verifier), assertionAuth(e.assertion(k, "fapi", nil)))
	// No DPoP proof: refused, and the code is not spent.
	if s, r, _ := e.post("/token", form, nil); s != 400 || r["error"] != "invalid_dpop_proof" {
		t.Fatalf("FAPI token without DPoP: %d %v", s, r)
	}
	tokURL := e.srv.URL + "/token"
	_, _, h := e.post("/token", merge(codeForm(code, ap.verifier), assertionAuth(e.assertion(k, "fapi", nil))),
		map[string]string{"DPoP": e.proof(dk, "POST", tokURL, "", "")})
	nonce := h.Get("DPoP-Nonce")
	s, tok, _ := e.post("/token", merge(codeForm(code, ap.verifier), assertionAuth(e.assertion(k, "fapi", nil))),
		map[string]string{"DPoP": e.proof(dk, "POST", tokURL, "", nonce)})
	if s != 200 || tok["token_type"] != "DPoP" {
		t.Fatalf("FAPI token: %d %v", s, tok)
	}
	// A FAPI client registered with a secret by mistake cannot use it.
	e.addClient(&sqin.Client{ID: "fapi-secret", Name: "x", AuthMethod: sqin.AuthSecretBasic, Profile: sqin.ProfileFAPI2,
		RedirectURIs: []string{testRedirect}, GrantTypes: []string{sqin.GrantClientCredentials}, Scopes: []string{"profile"}})
	s, r, _ = e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, func(req *http.Request) { req.SetBasicAuth("fapi-secret", testSecret) })
	if s != 401 || r["error"] != "invalid_client" {
		t.Fatalf("FAPI client with a secret: %d %v", s, r)
	}
}

func TestSubjectTypesAndLegacy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, c := range []*sqin.Client{
		{ID: "pub", SubjectType: sqin.SubjectPublic}, {ID: "legacy-1", Sector: "saaq"}, {ID: "legacy-2", Sector: "saaq"}, {ID: "pw", Sector: "ramq"},
	} {
		c.Name, c.AuthMethod, c.RedirectURIs = c.ID, sqin.AuthSecretBasic, []string{testRedirect}
		c.GrantTypes, c.Scopes = []string{sqin.GrantAuthorizationCode}, []string{"openid"}
		e.addClient(c)
	}
	if err := e.db.SetLegacySubject(ctx, "saaq", "a1", "SAAQ-000123"); err != nil {
		t.Fatal(err)
	}
	b := e.browser()
	sub := func(id string) string {
		u, ap := e.authorizeURL(func(q url.Values) { q.Set("client_id", id); q.Set("scope", "openid") })
		code := b.follow(u).Query().Get("code")
		s, tok, _ := e.tokenRequest(codeForm(code, ap.verifier), func(r *http.Request) { r.SetBasicAuth(id, testSecret) })
		if s != 200 {
			t.Fatalf("%s: %d %v", id, s, tok)
		}
		return claimsOf(t, tok["id_token"].(string))["sub"].(string)
	}
	if got := sub("pub"); got != "a1" {
		t.Errorf("public subject = %q", got)
	}
	if sub("legacy-1") != "SAAQ-000123" || sub("legacy-2") != "SAAQ-000123" {
		t.Error("legacy subject not kept for the sector")
	}
	before := sub("pw")
	if err := e.keys.Rotate(ctx, keys.ES256); err != nil {
		t.Fatal(err)
	}
	if after := sub("pw"); after != before || before == "a1" {
		t.Errorf("pairwise sub changed across key rotation: %q -> %q", before, after)
	}
}
