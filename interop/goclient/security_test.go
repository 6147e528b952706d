package goclient

// The security profile from the outside: pushed authorization requests
// (RFC 9126), signed request objects (RFC 9101), private_key_jwt (RFC
// 7523) and DPoP (RFC 9449), with proofs and assertions built here with
// go-jose, and every way of getting them wrong that the RFCs name.

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
	"golang.org/x/oauth2"
)

const (
	assertionType    = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	requestURIPrefix = "urn:ietf:params:oauth:request_uri:"
)

// ecKey is a P-256 key: a client's signing key or a DPoP key.
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

// writeJWKS writes the public key as a JWKS file in dir for --jwks-file.
func (k *ecKey) writeJWKS(t testing.TB, dir string) string {
	t.Helper()
	b, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &k.priv.PublicKey, KeyID: k.kid, Use: "sig", Algorithm: "ES256"}}})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "jwks-"+k.kid+"-"+randHex(4)+".json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// thumbprint is the RFC 7638 SHA-256 thumbprint of the public key, computed
// by hand rather than by the library that signs the proofs.
func (k *ecKey) thumbprint(t testing.TB) string {
	t.Helper()
	pt, err := k.priv.PublicKey.Bytes()
	if err != nil || len(pt) != 65 {
		t.Fatalf("public key bytes: %v", err)
	}
	b64 := base64.RawURLEncoding.EncodeToString
	canon := `{"crv":"P-256","kty":"EC","x":"` + b64(pt[1:33]) + `","y":"` + b64(pt[33:]) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return b64(sum[:])
}

// sign makes a compact JWS with header typ; embed puts the public key in
// the header (jwk, for DPoP) instead of its kid.
func (k *ecKey) sign(t testing.TB, typ string, embed bool, claims any) string {
	t.Helper()
	opts := (&jose.SignerOptions{EmbedJWK: embed}).WithType(jose.ContentType(typ))
	var key any = jose.JSONWebKey{Key: k.priv, KeyID: k.kid}
	if embed {
		key = k.priv
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, opts)
	if err != nil {
		t.Fatal(err)
	}
	out, err := jwt.Signed(s).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// dpopProof is a DPoP proof JWT (RFC 9449 4.2) by k for method and htu,
// bound to accessToken (ath) when not empty, carrying nonce when not empty.
func dpopProof(t testing.TB, k *ecKey, method, htu, accessToken, nonce string) string {
	t.Helper()
	cl := map[string]any{"jti": randHex(16), "htm": method, "htu": htu, "iat": time.Now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		cl["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if nonce != "" {
		cl["nonce"] = nonce
	}
	return k.sign(t, "dpop+jwt", true, cl)
}

// spoiledProof is dpopProof with typ and claims changed by spoil.
func spoiledProof(t testing.TB, k *ecKey, typ, method, htu, accessToken, nonce string, spoil func(map[string]any)) string {
	t.Helper()
	parts := strings.Split(dpopProof(t, k, method, htu, accessToken, nonce), ".")
	b, _ := base64.RawURLEncoding.DecodeString(parts[1])
	var cl map[string]any
	if err := json.Unmarshal(b, &cl); err != nil {
		t.Fatal(err)
	}
	cl["jti"] = randHex(16)
	spoil(cl)
	return k.sign(t, typ, true, cl)
}

// keyClient is a confidential client that authenticates with
// private_key_jwt and binds its tokens with DPoP, speaking the protocol
// by hand.
type keyClient struct {
	s      *Server
	id     string
	key    *ecKey // client authentication and request objects
	dpop   *ecKey // DPoP
	nonces map[string]string
}

// newKeyClient registers a private_key_jwt client with all grants on s.
func newKeyClient(t testing.TB, s *Server, prefix string, flags ...string) *keyClient {
	t.Helper()
	kc := &keyClient{s: s, id: prefix + "-" + randHex(4), key: newECKey(t, "k-"+randHex(3)), dpop: newECKey(t, ""),
		nonces: map[string]string{}}
	s.CreateClient(t, ClientSpec{ID: kc.id, Auth: "private_key_jwt", JWKSFile: kc.key.writeJWKS(t, s.DB.dir),
		RedirectURIs: []string{rpRedirect}, GrantTypes: []string{"authorization_code", "refresh_token", "client_credentials"},
		Scopes: []string{"openid", "profile", "email", "offline_access"}, Flags: flags})
	return kc
}

// assertion is a fresh client assertion for aud (RFC 7523 3), with its jti.
func (kc *keyClient) assertion(t testing.TB, aud string) url.Values {
	t.Helper()
	now := time.Now()
	a := kc.key.sign(t, "JWT", false, map[string]any{"iss": kc.id, "sub": kc.id, "aud": aud, "jti": randHex(16),
		"iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})
	return url.Values{"client_id": {kc.id}, "client_assertion_type": {assertionType}, "client_assertion": {a}}
}

// response is one answer of an OAuth endpoint.
type response struct {
	Status int
	Header http.Header
	JSON   map[string]any
	Raw    string
}

func (r *response) String() string {
	return fmt.Sprintf("%d WWW-Authenticate=%q DPoP-Nonce=%q %s", r.Status, r.Header.Get("WWW-Authenticate"),
		r.Header.Get("DPoP-Nonce"), clip(r.Raw))
}

func (r *response) errCode() string { s, _ := r.JSON["error"].(string); return s }

// send does req and remembers the DPoP-Nonce the server gave.
func (kc *keyClient) send(t testing.TB, req *http.Request) *response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	raw, _ := readAll(resp)
	r := &response{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &r.JSON)
	if n := resp.Header.Get("DPoP-Nonce"); n != "" {
		kc.nonces[req.URL.Host] = n
	}
	return r
}

// post sends form to base+path with DPoP header proof (none when empty).
func (kc *keyClient) post(t testing.TB, base, path string, form url.Values, proof string) *response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return kc.send(t, req)
}

// dpopPost posts form (rebuilt for each try: assertions are single-use)
// to the issuer's path with a proof for that URL, and when the server asks
// for a nonce (400 use_dpop_nonce, RFC 9449 8) once more with the nonce.
func (kc *keyClient) dpopPost(t testing.TB, path string, form func() url.Values) *response {
	t.Helper()
	htu := kc.s.Issuer + path
	r := kc.post(t, kc.s.Issuer, path, form(), dpopProof(t, kc.dpop, http.MethodPost, htu, "", kc.nonces[hostOf(kc.s.Issuer)]))
	if r.Status == http.StatusBadRequest && r.errCode() == "use_dpop_nonce" {
		if r.Header.Get("DPoP-Nonce") == "" {
			t.Fatalf("POST %s: use_dpop_nonce without a DPoP-Nonce header (RFC 9449 8): %s", path, r)
		}
		r = kc.post(t, kc.s.Issuer, path, form(), dpopProof(t, kc.dpop, http.MethodPost, htu, "", kc.nonces[hostOf(kc.s.Issuer)]))
	}
	return r
}

func hostOf(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return p.Host
}

// authzParams is an authorization request of kc with PKCE, state and nonce.
func (kc *keyClient) authzParams(scope string) (url.Values, authReq) {
	a := authReq{State: randHex(12), Nonce: randHex(12), Verifier: oauth2.GenerateVerifier()}
	return url.Values{"response_type": {"code"}, "client_id": {kc.id}, "redirect_uri": {rpRedirect},
		"scope": {scope}, "state": {a.State}, "nonce": {a.Nonce},
		"code_challenge": {oauth2.S256ChallengeFromVerifier(a.Verifier)}, "code_challenge_method": {"S256"}}, a
}

// par pushes params (authenticated, with a DPoP proof) and returns the
// answer.
func (kc *keyClient) par(t testing.TB, params url.Values) *response {
	t.Helper()
	return kc.dpopPost(t, "/par", func() url.Values { return merged(params, kc.assertion(t, kc.s.Issuer)) })
}

// authorizeURL is the front-channel request for a pushed request_uri.
func (kc *keyClient) authorizeURL(requestURI string) string {
	return kc.s.Issuer + "/authorize?" + url.Values{"client_id": {kc.id}, "request_uri": {requestURI}}.Encode()
}

// dpopLogin is the outcome of a PAR + DPoP + private_key_jwt sign-in.
type dpopLogin struct {
	Tokens  map[string]any
	AT, RT  string
	Browser *browser
}

// signIn runs PAR, the sign-in pages and the code exchange, all with DPoP.
func (kc *keyClient) signIn(t testing.TB, user int) *dpopLogin {
	t.Helper()
	params, a := kc.authzParams("openid email offline_access")
	r := kc.par(t, params)
	uri, _ := r.JSON["request_uri"].(string)
	if r.Status != http.StatusCreated || !strings.HasPrefix(uri, requestURIPrefix) {
		t.Fatalf("PAR: %s; want 201 with a request_uri (RFC 9126 2.2)", r)
	}
	b := newBrowser()
	cb, err := b.navigate(kc.authorizeURL(uri), rpRedirect, navOpts{Username: demoUser(user), Password: demoPassword})
	if err != nil {
		t.Fatalf("sign-in through request_uri: %v", err)
	}
	q := cb.Query()
	if q.Get("state") != a.State || q.Get("iss") != kc.s.Issuer || q.Get("code") == "" {
		t.Fatalf("callback %s: want code, state %s, iss %s", cb, a.State, kc.s.Issuer)
	}
	tok := kc.dpopPost(t, "/token", func() url.Values {
		return merged(url.Values{"grant_type": {"authorization_code"}, "code": {q.Get("code")}, "redirect_uri": {rpRedirect},
			"code_verifier": {a.Verifier}}, kc.assertion(t, kc.s.Issuer))
	})
	if tok.Status != http.StatusOK || tok.JSON["token_type"] != "DPoP" {
		t.Fatalf("code exchange with DPoP: %s; want 200, token_type DPoP", tok)
	}
	l := &dpopLogin{Tokens: tok.JSON, Browser: b}
	l.AT, _ = tok.JSON["access_token"].(string)
	l.RT, _ = tok.JSON["refresh_token"].(string)
	if jkt := jwtClaims(t, l.AT)["cnf"]; fmt.Sprint(jkt) != fmt.Sprint(map[string]any{"jkt": kc.dpop.thumbprint(t)}) {
		t.Fatalf("access token cnf = %v, want jkt %s (RFC 9449 6.1)", jkt, kc.dpop.thumbprint(t))
	}
	return l
}

// userinfo calls GET /userinfo with the access token in scheme and the
// DPoP proof (none when empty).
func (kc *keyClient) userinfo(t testing.TB, scheme, at, proof string) *response {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, kc.s.Issuer+"/userinfo", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", scheme+" "+at)
	if proof != "" {
		req.Header.Set("DPoP", proof)
	}
	return kc.send(t, req)
}

// jwtClaims reads a JWT's payload without verifying it.
func jwtClaims(t testing.TB, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", trunc(tok))
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("JWT payload: %v", err)
	}
	return m
}

func merged(vs ...url.Values) url.Values {
	out := url.Values{}
	for _, v := range vs {
		for k, x := range v {
			out[k] = x
		}
	}
	return out
}

// wantChallenge asserts a 401 from a protected resource whose
// WWW-Authenticate names scheme and error code.
func wantChallenge(t testing.TB, r *response, scheme, code, what string) {
	t.Helper()
	h := r.Header.Get("WWW-Authenticate")
	if r.Status != http.StatusUnauthorized || !strings.HasPrefix(strings.ToLower(h), strings.ToLower(scheme)+" ") ||
		!strings.Contains(h, `error="`+code+`"`) {
		t.Errorf("%s: got %s; want 401 with WWW-Authenticate: %s … error=%q", what, r, scheme, code)
	}
}

// wantJSONError asserts an OAuth error response (RFC 6749 5.2 shape).
func wantJSONError(t testing.TB, r *response, status int, code, what string) {
	t.Helper()
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if r.Status != status || r.errCode() != code || ct != "application/json" {
		t.Errorf("%s: got %s (Content-Type %q); want %d application/json with error %q", what, r, r.Header.Get("Content-Type"), status, code)
	}
}

// TestDPoPNegative drives a DPoP-bound sign-in and then spoils the proof in
// each way RFC 9449 names, at the userinfo endpoint (401 with a DPoP or
// Bearer challenge, 7.1) and at the token endpoint (400, 5 and 8).
func TestDPoPNegative(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		kc := newKeyClient(t, s, "go-dpop")
		l := kc.signIn(t, 1)
		ui := s.Issuer + "/userinfo"
		nonce := kc.nonces[hostOf(s.Issuer)]

		good := dpopProof(t, kc.dpop, http.MethodGet, ui, l.AT, nonce)
		if r := kc.userinfo(t, "DPoP", l.AT, good); r.Status != http.StatusOK || r.JSON["sub"] == nil {
			t.Fatalf("userinfo with a DPoP proof: %s; want 200 with sub", r)
		}

		t.Run("userinfo", func(t *testing.T) {
			for _, tc := range []struct {
				name, scheme, proof string
				wantScheme, want    string
			}{
				{"replayed proof", "DPoP", good, "DPoP", "invalid_dpop_proof"},
				{"proof for another method", "DPoP", dpopProof(t, kc.dpop, http.MethodPost, ui, l.AT, nonce), "DPoP", "invalid_dpop_proof"},
				{"proof for another URL", "DPoP", dpopProof(t, kc.dpop, http.MethodGet, s.Issuer+"/token", l.AT, nonce), "DPoP", "invalid_dpop_proof"},
				{"wrong ath", "DPoP", dpopProof(t, kc.dpop, http.MethodGet, ui, l.AT+"x", nonce), "DPoP", "invalid_dpop_proof"},
				{"no ath", "DPoP", dpopProof(t, kc.dpop, http.MethodGet, ui, "", nonce), "DPoP", "invalid_dpop_proof"},
				{"proof by another key", "DPoP", dpopProof(t, newECKey(t, ""), http.MethodGet, ui, l.AT, nonce), "DPoP", "invalid_dpop_proof"},
				{"DPoP scheme without a proof", "DPoP", "", "DPoP", "invalid_dpop_proof"},
				{"DPoP-bound token used as Bearer", "Bearer", "", "Bearer", "invalid_token"},
				{"DPoP-bound token used as Bearer, proof attached", "Bearer", dpopProof(t, kc.dpop, http.MethodGet, ui, l.AT, nonce), "Bearer", "invalid_token"},
				{"proof iat 10 minutes old", "DPoP", spoiledProof(t, kc.dpop, "dpop+jwt", http.MethodGet, ui, l.AT, nonce,
					func(c map[string]any) { c["iat"] = time.Now().Add(-10 * time.Minute).Unix() }), "DPoP", "invalid_dpop_proof"},
				{"proof iat 10 minutes ahead", "DPoP", spoiledProof(t, kc.dpop, "dpop+jwt", http.MethodGet, ui, l.AT, nonce,
					func(c map[string]any) { c["iat"] = time.Now().Add(10 * time.Minute).Unix() }), "DPoP", "invalid_dpop_proof"},
				{"proof without jti", "DPoP", spoiledProof(t, kc.dpop, "dpop+jwt", http.MethodGet, ui, l.AT, nonce,
					func(c map[string]any) { delete(c, "jti") }), "DPoP", "invalid_dpop_proof"},
				{"proof typ JWT", "DPoP", spoiledProof(t, kc.dpop, "JWT", http.MethodGet, ui, l.AT, nonce, func(map[string]any) {}), "DPoP", "invalid_dpop_proof"},
				{"no nonce", "DPoP", dpopProof(t, kc.dpop, http.MethodGet, ui, l.AT, ""), "DPoP", "use_dpop_nonce"},
				{"stale nonce", "DPoP", dpopProof(t, kc.dpop, http.MethodGet, ui, l.AT, staleNonce(nonce)), "DPoP", "use_dpop_nonce"},
				{"made-up nonce", "DPoP", dpopProof(t, kc.dpop, http.MethodGet, ui, l.AT, "bm9uY2UtdGhhdC1uZXZlci13YXM"), "DPoP", "use_dpop_nonce"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					r := kc.userinfo(t, tc.scheme, l.AT, tc.proof)
					wantChallenge(t, r, tc.wantScheme, tc.want, "GET /userinfo ("+tc.name+")")
					if tc.want == "use_dpop_nonce" && r.Header.Get("DPoP-Nonce") == "" {
						t.Errorf("use_dpop_nonce without a DPoP-Nonce header (RFC 9449 9): %s", r)
					}
				})
			}
			// After all that, a correct proof still works.
			if r := kc.userinfo(t, "DPoP", l.AT, dpopProof(t, kc.dpop, http.MethodGet, ui, l.AT, kc.nonces[hostOf(s.Issuer)])); r.Status != http.StatusOK {
				t.Errorf("userinfo with a fresh proof after the failures: %s", r)
			}
		})

		t.Run("token endpoint", func(t *testing.T) {
			tokURL := s.Issuer + "/token"
			refresh := func(rt string) url.Values {
				return merged(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}, kc.assertion(t, s.Issuer))
			}
			nonce := kc.nonces[hostOf(s.Issuer)]
			// Stale nonce: 400 use_dpop_nonce with the nonce to use; the
			// refresh token is not spent, so the retry with it succeeds.
			r := kc.post(t, s.Issuer, "/token", refresh(l.RT), dpopProof(t, kc.dpop, http.MethodPost, tokURL, "", staleNonce(nonce)))
			wantJSONError(t, r, http.StatusBadRequest, "use_dpop_nonce", "refresh with a stale DPoP nonce")
			if r.Header.Get("DPoP-Nonce") == "" {
				t.Errorf("use_dpop_nonce without DPoP-Nonce header (RFC 9449 8): %s", r)
			}
			proof := dpopProof(t, kc.dpop, http.MethodPost, tokURL, "", kc.nonces[hostOf(s.Issuer)])
			r = kc.post(t, s.Issuer, "/token", refresh(l.RT), proof)
			if r.Status != http.StatusOK || r.JSON["token_type"] != "DPoP" {
				t.Fatalf("refresh retried with the server's nonce (same refresh token): %s; want 200 DPoP", r)
			}
			if c := jwtClaims(t, r.JSON["access_token"].(string))["cnf"]; fmt.Sprint(c) != fmt.Sprint(map[string]any{"jkt": kc.dpop.thumbprint(t)}) {
				t.Errorf("refreshed access token cnf = %v, want the DPoP key's jkt", c)
			}
			rt2, _ := r.JSON["refresh_token"].(string)
			if rt2 == "" {
				t.Fatalf("no rotated refresh token: %s", r)
			}
			// The same proof again, with the new refresh token: replay.
			r = kc.post(t, s.Issuer, "/token", refresh(rt2), proof)
			wantJSONError(t, r, http.StatusBadRequest, "invalid_dpop_proof", "token request with a replayed DPoP proof")
			n := kc.nonces[hostOf(s.Issuer)]
			r = kc.post(t, s.Issuer, "/token", refresh(rt2), dpopProof(t, kc.dpop, http.MethodPost, ui, "", n))
			wantJSONError(t, r, http.StatusBadRequest, "invalid_dpop_proof", "token request with a proof for the userinfo URL")
			r = kc.post(t, s.Issuer, "/token", refresh(rt2), dpopProof(t, kc.dpop, http.MethodGet, tokURL, "", n))
			wantJSONError(t, r, http.StatusBadRequest, "invalid_dpop_proof", "token request with a proof for GET")
			bad := dpopProof(t, kc.dpop, http.MethodPost, tokURL, "", n)
			parts := strings.Split(bad, ".")
			parts[2] = base64.RawURLEncoding.EncodeToString(make([]byte, 64))
			r = kc.post(t, s.Issuer, "/token", refresh(rt2), strings.Join(parts, "."))
			wantJSONError(t, r, http.StatusBadRequest, "invalid_dpop_proof", "token request with a badly signed proof")
			if r := kc.post(t, s.Issuer, "/token", refresh(rt2), dpopProof(t, kc.dpop, http.MethodPost, tokURL, "", n)); r.Status != http.StatusOK {
				t.Errorf("refresh token after refused proofs: %s; want 200 (a refused proof spends nothing)", r)
			}
		})
	})
}

// staleNonce turns a server nonce into one it does not accept any more:
// the same shape, another value. (A real nonce ages out after minutes,
// too long to wait for here.)
func staleNonce(n string) string {
	b, err := base64.RawURLEncoding.DecodeString(n)
	if err != nil || len(b) == 0 {
		return "c3RhbGUtbm9uY2U"
	}
	b[len(b)-1] ^= 0x5a
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestPARNegative checks pushed authorization requests and request objects
// refused for the reasons RFC 9126 and RFC 9101 give.
func TestPARNegative(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		kc := newKeyClient(t, s, "go-par")

		t.Run("redirect URI not registered", func(t *testing.T) {
			params, _ := kc.authzParams("openid")
			params.Set("redirect_uri", "https://evil.example/callback")
			wantJSONError(t, kc.par(t, params), http.StatusBadRequest, "invalid_request", "PAR with an unregistered redirect_uri (RFC 9126 2.3)")
		})

		t.Run("PAR DPoP proof and dpop_jkt disagree", func(t *testing.T) {
			params, _ := kc.authzParams("openid")
			params.Set("dpop_jkt", newECKey(t, "").thumbprint(t))
			r := kc.par(t, params)
			if r.Status != http.StatusBadRequest || (r.errCode() != "invalid_dpop_proof" && r.errCode() != "invalid_request") {
				t.Errorf("PAR whose dpop_jkt is not the DPoP proof's key: %s; want 400 (RFC 9449 10.1: MUST reject)", r)
			}
		})

		t.Run("code bound to the PAR proof's key", func(t *testing.T) {
			params, a := kc.authzParams("openid")
			r := kc.par(t, params)
			uri, _ := r.JSON["request_uri"].(string)
			cb, err := newBrowser().navigate(kc.authorizeURL(uri), rpRedirect, navOpts{Username: demoUser(1), Password: demoPassword})
			if err != nil || cb.Query().Get("code") == "" {
				t.Fatalf("sign-in: %v %v", cb, err)
			}
			thief := newECKey(t, "")
			form := merged(url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")}, "redirect_uri": {rpRedirect},
				"code_verifier": {a.Verifier}}, kc.assertion(t, s.Issuer))
			r = kc.post(t, s.Issuer, "/token", form, dpopProof(t, thief, http.MethodPost, s.Issuer+"/token", "", kc.nonces[hostOf(s.Issuer)]))
			if r.Status != http.StatusBadRequest || (r.errCode() != "invalid_grant" && r.errCode() != "invalid_dpop_proof") {
				t.Errorf("code pushed with one DPoP key, exchanged with another: %s; want 400 (RFC 9449 10.1)", r)
			}
		})

		t.Run("request_uri reused", func(t *testing.T) {
			params, a := kc.authzParams("openid email")
			r := kc.par(t, params)
			uri, _ := r.JSON["request_uri"].(string)
			if r.Status != http.StatusCreated || uri == "" {
				t.Fatalf("PAR: %s", r)
			}
			if exp, _ := r.JSON["expires_in"].(float64); exp <= 0 || exp > 600 {
				t.Errorf("PAR expires_in = %v, want a short positive lifetime (RFC 9126 2.2)", r.JSON["expires_in"])
			}
			cb, err := newBrowser().navigate(kc.authorizeURL(uri), rpRedirect, navOpts{Username: demoUser(2), Password: demoPassword})
			if err != nil {
				t.Fatalf("first use of the request_uri: %v", err)
			}
			if cb.Query().Get("code") == "" || cb.Query().Get("state") != a.State {
				t.Fatalf("first use of the request_uri: %s", cb)
			}
			wantErrorPage(t, kc.authorizeURL(uri), "request_uri used a second time (RFC 9126 4: one-time use)")
		})

		t.Run("unknown or garbled request_uri", func(t *testing.T) {
			for _, uri := range []string{
				requestURIPrefix + randHex(16),
				requestURIPrefix,
				"urn:example:" + randHex(8),
				"https://rp.example/request.jwt",
				strings.Repeat("x", 2000),
			} {
				wantErrorPage(t, kc.authorizeURL(uri), "request_uri "+trunc(uri))
			}
		})

		t.Run("request_uri of another client", func(t *testing.T) {
			params, _ := kc.authzParams("openid")
			r := kc.par(t, params)
			uri, _ := r.JSON["request_uri"].(string)
			other := newRP(t, s, confidential("go-par-thief", "client_secret_basic"))
			u := s.Issuer + "/authorize?" + url.Values{"client_id": {other.spec.ID}, "request_uri": {uri}}.Encode()
			wantErrorPage(t, u, "request_uri redeemed by another client")
		})

		t.Run("request object", func(t *testing.T) {
			params, a := kc.authzParams("openid email")
			obj := map[string]any{"iss": kc.id, "aud": s.Issuer, "exp": time.Now().Add(5 * time.Minute).Unix(), "nbf": time.Now().Unix()}
			for k, v := range params {
				obj[k] = v[0]
			}
			signed := kc.key.sign(t, "oauth-authz-req+jwt", false, obj)
			r := kc.par(t, url.Values{"client_id": {kc.id}, "request": {signed}})
			uri, _ := r.JSON["request_uri"].(string)
			if r.Status != http.StatusCreated {
				t.Fatalf("PAR with a request object signed by the client's key: %s; want 201", r)
			}
			cb, err := newBrowser().navigate(kc.authorizeURL(uri), rpRedirect, navOpts{Username: demoUser(3), Password: demoPassword})
			if err != nil || cb.Query().Get("code") == "" || cb.Query().Get("state") != a.State {
				t.Fatalf("sign-in with a pushed request object: %v %v", cb, err)
			}

			foreign := &ecKey{priv: newECKey(t, "").priv, kid: kc.key.kid} // same kid, another key
			forged := foreign.sign(t, "oauth-authz-req+jwt", false, obj)
			r = kc.par(t, url.Values{"client_id": {kc.id}, "request": {forged}})
			wantJSONError(t, r, http.StatusBadRequest, "invalid_request_object", "PAR with a request object signed by a foreign key (RFC 9101 6.2)")
			unsigned := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none"}`)) + "." +
				base64.RawURLEncoding.EncodeToString(mustJSON(t, obj)) + "."
			r = kc.par(t, url.Values{"client_id": {kc.id}, "request": {unsigned}})
			wantJSONError(t, r, http.StatusBadRequest, "invalid_request_object", "PAR with an unsigned (alg none) request object")
			u := s.Issuer + "/authorize?" + url.Values{"client_id": {kc.id}, "request": {forged}}.Encode()
			wantErrorPage(t, u, "request object signed by a foreign key at the authorization endpoint")
		})
	})
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// wantErrorPage asserts that the authorization endpoint answers u with an
// error page and no redirect (the request cannot be trusted).
func wantErrorPage(t testing.TB, u, what string) {
	t.Helper()
	p, err := newBrowser().get(u)
	if err != nil {
		t.Fatal(err)
	}
	ct, _, _ := mime.ParseMediaType(p.Header.Get("Content-Type"))
	if p.Status != http.StatusBadRequest || p.Header.Get("Location") != "" || ct != "text/html" {
		t.Errorf("%s: GET %s\ngot %s\nwant a 400 HTML error page and no redirect", what, trunc(u), p)
	}
}

// TestClientAssertionReplay sends one private_key_jwt assertion twice: the
// second use is refused (RFC 7523 3, item 7: jti).
func TestClientAssertionReplay(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		kc := newKeyClient(t, s, "go-jti")
		cc := url.Values{"grant_type": {"client_credentials"}}
		a := merged(cc, kc.assertion(t, s.Issuer))
		if r := kc.post(t, s.Issuer, "/token", a, ""); r.Status != http.StatusOK {
			t.Fatalf("client_credentials with a fresh assertion: %s", r)
		}
		wantJSONError(t, kc.post(t, s.Issuer, "/token", a, ""), http.StatusUnauthorized, "invalid_client", "replayed client assertion")
		// The token endpoint URL is an accepted audience too.
		if r := kc.post(t, s.Issuer, "/token", merged(cc, kc.assertion(t, s.Issuer+"/token")), ""); r.Status != http.StatusOK {
			t.Errorf("assertion with aud = token endpoint URL: %s; want 200 (RFC 7523 3)", r)
		}
		wantJSONError(t, kc.post(t, s.Issuer, "/token", merged(cc, kc.assertion(t, "https://elsewhere.example")), ""),
			http.StatusUnauthorized, "invalid_client", "assertion for another audience")
	})
}

// TestClientAssertionReplayAcrossInstances runs two `sqin serve` processes
// on one PostgreSQL schema with one master key, answering as one issuer
// (two instances behind a load balancer): an assertion used at one is
// refused at the other, both ways.
func TestClientAssertionReplayAcrossInstances(t *testing.T) {
	db := requireDatabase(t, "postgres")
	a := mustStart(t, db)
	// Same database, same working directory, so the same demo master key.
	b, err := startServerAs(db, 0, a.Issuer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAndClean(t, b) })

	kc := newKeyClient(t, a, "go-jti2")
	cc := url.Values{"grant_type": {"client_credentials"}}
	for _, dir := range []struct {
		name          string
		first, second *Server
	}{{"first then second", a, b}, {"second then first", b, a}} {
		t.Run(dir.name, func(t *testing.T) {
			form := merged(cc, kc.assertion(t, a.Issuer))
			if r := kc.post(t, dir.first.URL, "/token", form, ""); r.Status != http.StatusOK {
				t.Fatalf("fresh assertion at %s: %s", dir.first.URL, r)
			}
			wantJSONError(t, kc.post(t, dir.second.URL, "/token", form, ""), http.StatusUnauthorized, "invalid_client",
				"assertion replayed at the other instance "+dir.second.URL)
			wantJSONError(t, kc.post(t, dir.first.URL, "/token", form, ""), http.StatusUnauthorized, "invalid_client",
				"assertion replayed at the same instance "+dir.first.URL)
		})
	}

	// DPoP proofs are single-use across instances too, and the nonce of one
	// instance is good at the other.
	tokURL := a.Issuer + "/token"
	r := kc.post(t, a.URL, "/token", merged(cc, kc.assertion(t, a.Issuer)), dpopProof(t, kc.dpop, http.MethodPost, tokURL, "", ""))
	nonce := r.Header.Get("DPoP-Nonce")
	if r.errCode() != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("first DPoP proof without a nonce: %s; want 400 use_dpop_nonce with DPoP-Nonce", r)
	}
	proof := dpopProof(t, kc.dpop, http.MethodPost, tokURL, "", nonce)
	if r := kc.post(t, b.URL, "/token", merged(cc, kc.assertion(t, a.Issuer)), proof); r.Status != http.StatusOK || r.JSON["token_type"] != "DPoP" {
		t.Fatalf("DPoP proof with the first instance's nonce at the second: %s; want 200 DPoP", r)
	}
	wantJSONError(t, kc.post(t, a.URL, "/token", merged(cc, kc.assertion(t, a.Issuer)), proof), http.StatusBadRequest, "invalid_dpop_proof",
		"DPoP proof replayed at the other instance")
}

// TestPairwiseSubjectsAcrossRotationAndRestart extends TestPairwiseSubjects:
// clients of two different public bodies (--sector) see different subs for
// one person, two clients of one body the same, and none of them changes
// across `sqin keys rotate` and a restart.
func TestPairwiseSubjectsAcrossRotationAndRestart(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			db := requireDatabase(t, backend)
			srv := mustStart(t, db)
			bodyA, bodyB := "go-body-a-"+randHex(3), "go-body-b-"+randHex(3)
			specs := map[string]ClientSpec{}
			for name, sector := range map[string]string{"a1": bodyA, "a2": bodyA, "b1": bodyB} {
				c := confidential("go-pw-"+name, "client_secret_basic")
				c.Sector = sector
				specs[name] = c
				db.CreateClient(t, c)
			}
			subs := func(stage string) (map[string]string, string) {
				t.Helper()
				out := map[string]string{}
				kid := ""
				for _, name := range []string{"a1", "a2", "b1"} {
					r := discoverRP(t, srv, specs[name])
					l := r.signIn(t, signInOpts{User: 2})
					out[name] = l.Claims.Sub
					kid = jwtHeader(t, l.RawIDToken)["kid"].(string)
					if ui, _ := r.userinfo(t, l.Token.AccessToken); ui.Subject != l.Claims.Sub {
						t.Errorf("%s, %s: userinfo sub %q, ID token sub %q", stage, name, ui.Subject, l.Claims.Sub)
					}
				}
				return out, kid
			}
			before, kid0 := subs("before rotation")
			if before["a1"] != before["a2"] {
				t.Errorf("two clients of one public body see different subs: %q, %q", before["a1"], before["a2"])
			}
			if before["a1"] == before["b1"] {
				t.Errorf("clients of two public bodies see the same sub %q", before["a1"])
			}

			rotate := runCLI(t, db, "keys", "rotate", "--db", db.url, "--demo")
			t.Logf("sqin keys rotate: %s", strings.TrimSpace(rotate))
			afterRotation, _ := subs("after rotation")
			if err := srv.Stop(); err != nil {
				t.Fatalf("stop: %v", err)
			}
			if err := srv.launch(); err != nil {
				t.Fatalf("restart: %v", err)
			}
			afterRestart, kid2 := subs("after restart")
			if kid2 == kid0 {
				t.Errorf("ID tokens still signed with key %s after rotation and restart: the rotation did not happen", kid0)
			}
			for _, name := range []string{"a1", "a2", "b1"} {
				if afterRotation[name] != before[name] || afterRestart[name] != before[name] {
					t.Errorf("%s: sub %q before, %q after key rotation, %q after restart; want it unchanged",
						name, before[name], afterRotation[name], afterRestart[name])
				}
			}
		})
	}
}

// runCLI runs bin/sqin with args in db's working directory (where the demo
// keeps its master key) and returns what it printed.
func runCLI(t testing.TB, db *database, args ...string) string {
	t.Helper()
	cmd := osexec.Command(sqinBin, args...)
	cmd.Dir = db.dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("sqin %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func jwtHeader(t testing.TB, tok string) map[string]any {
	t.Helper()
	h, _, _ := strings.Cut(tok, ".")
	b, err := base64.RawURLEncoding.DecodeString(h)
	if err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("JWT header: %v", err)
	}
	return m
}

// TestPerClientRequirements checks the per-client settings of `sqin client
// create`: --require-par refuses a plain authorization request (and the
// pushed one works), --require-dpop refuses a token request without a
// proof, and a jwks_uri the provider would fetch from its own network is
// refused at registration.
func TestPerClientRequirements(t *testing.T) {
	forEachBackend(t, func(t *testing.T, s *Server) {
		t.Run("require-par", func(t *testing.T) {
			spec := confidential("go-req-par", "client_secret_basic")
			spec.Flags = []string{"--require-par"}
			r := newRP(t, s, spec)
			a := r.authURL([]string{"openid"})
			cb := r.callback(t, a, newBrowser(), navOpts{Username: demoUser(1), Password: demoPassword})
			q := cb.Query()
			if q.Get("error") != "invalid_request" || !strings.Contains(q.Get("error_description"), "PAR") || q.Get("state") != a.State || q.Get("code") != "" {
				t.Fatalf("authorization request without PAR for a --require-par client: %s; want error=invalid_request naming PAR", cb)
			}
			v, ap := r.authzParams()
			req, _ := http.NewRequest(http.MethodPost, s.Issuer+"/par", strings.NewReader(v.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			status, m, raw := doJSON(t, basic(req, r))
			uri, _ := m["request_uri"].(string)
			if status != http.StatusCreated || uri == "" {
				t.Fatalf("PAR with client_secret_basic: %d %s", status, raw)
			}
			u := s.Issuer + "/authorize?" + url.Values{"client_id": {spec.ID}, "request_uri": {uri}}.Encode()
			cb, err := newBrowser().navigate(u, rpRedirect, navOpts{Username: demoUser(1), Password: demoPassword})
			if err != nil {
				t.Fatal(err)
			}
			code := r.checkCallback(t, authReq{State: ap.State}, cb)
			if _, err := r.cfg.Exchange(ctxT(t), code, oauth2.VerifierOption(ap.Verifier)); err != nil {
				t.Fatalf("code exchange after PAR: %s", describeErr(err))
			}
		})

		t.Run("require-dpop", func(t *testing.T) {
			kc := newKeyClient(t, s, "go-req-dpop", "--require-dpop")
			cc := url.Values{"grant_type": {"client_credentials"}}
			wantJSONError(t, kc.post(t, s.Issuer, "/token", merged(cc, kc.assertion(t, s.Issuer)), ""), http.StatusBadRequest,
				"invalid_dpop_proof", "token request without a DPoP proof for a --require-dpop client")
			r := kc.dpopPost(t, "/token", func() url.Values { return merged(cc, kc.assertion(t, s.Issuer)) })
			if r.Status != http.StatusOK || r.JSON["token_type"] != "DPoP" {
				t.Fatalf("token request with a DPoP proof: %s", r)
			}
			l := kc.signIn(t, 2)
			if l.RT == "" {
				t.Fatal("no refresh token")
			}
			wantJSONError(t, kc.post(t, s.Issuer, "/token", merged(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {l.RT}},
				kc.assertion(t, s.Issuer)), ""), http.StatusBadRequest, "invalid_dpop_proof", "refresh without a DPoP proof for a --require-dpop client")
		})

		t.Run("jwks_uri on the provider's own network", func(t *testing.T) {
			for _, u := range []string{"http://127.0.0.1:9/jwks.json", "https://127.0.0.1/jwks.json", "https://localhost/jwks.json", "https://10.0.0.8/jwks.json"} {
				args := []string{"client", "create", "--db", s.DB.url, "--id", "go-jwks-uri-" + randHex(4), "--auth", "private_key_jwt",
					"--jwks-uri", u, "--redirect-uri", rpRedirect}
				cmd := osexec.Command(sqinBin, args...)
				cmd.Dir = s.DB.dir
				if out, err := cmd.CombinedOutput(); err == nil {
					t.Errorf("sqin client create --jwks-uri %s: accepted, want refused (the provider would fetch its own network)\n%s", u, out)
				} else if !strings.Contains(string(out), "jwks_uri") {
					t.Errorf("sqin client create --jwks-uri %s: refused without naming jwks_uri: %s", u, out)
				}
			}
		})
	})
}
