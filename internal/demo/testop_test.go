package demo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// testOP is the smallest OpenID Provider the RP's handlers can be tested
// against: discovery, JWKS, token (code + PKCE), UserInfo. Authorization
// is a method the test calls with the RP's request; there is no browser
// UI. The real end-to-end proof runs against SQIN itself.
type testOP struct {
	t      *testing.T
	srv    *httptest.Server
	signer jose.Signer
	jwks   jose.JSONWebKeySet

	mu            sync.Mutex
	codes         map[string]testCode
	tokens        map[string]string // access token -> sub
	discoveryFail int               // discovery requests still to fail
	tokenCalls    int
	lastIDToken   string
	// knobs
	nonce       string // overrides the nonce put in ID tokens
	userinfoSub string // overrides the UserInfo sub
	userinfoOff bool   // UserInfo answers 500
}

type testCode struct {
	clientID, redirectURI, nonce, challenge, acr string
}

const (
	testClientID     = "demo-rp"
	testClientSecret = "demo-secret"
	testSub          = "pw-3f9a1c"
)

func newTestOP(t *testing.T) *testOP {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	op := &testOP{t: t, codes: map[string]testCode{}, tokens: map[string]string{}}
	op.signer, err = jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		t.Fatal(err)
	}
	op.jwks = jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "ES256", Use: "sig"}}}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", op.discovery)
	mux.HandleFunc("GET /jwks", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, 200, op.jwks) })
	mux.HandleFunc("POST /token", op.token)
	mux.HandleFunc("GET /userinfo", op.userinfo)
	op.srv = httptest.NewServer(mux)
	t.Cleanup(op.srv.Close)
	return op
}

func (op *testOP) issuer() string { return op.srv.URL }

// set changes the provider's knobs while its handlers may run.
func (op *testOP) set(f func(op *testOP)) {
	op.mu.Lock()
	defer op.mu.Unlock()
	f(op)
}

func (op *testOP) tokenRequests() int {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.tokenCalls
}

func (op *testOP) idToken() string {
	op.mu.Lock()
	defer op.mu.Unlock()
	return op.lastIDToken
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (op *testOP) discovery(w http.ResponseWriter, r *http.Request) {
	op.mu.Lock()
	fail := op.discoveryFail > 0
	if fail {
		op.discoveryFail--
	}
	op.mu.Unlock()
	if fail {
		http.Error(w, "starting", http.StatusServiceUnavailable)
		return
	}
	u := op.issuer()
	writeJSON(w, 200, map[string]any{
		"issuer":                                u,
		"authorization_endpoint":                u + "/authorize",
		"token_endpoint":                        u + "/token",
		"userinfo_endpoint":                     u + "/userinfo",
		"jwks_uri":                              u + "/jwks",
		"end_session_endpoint":                  u + "/logout?from=rp",
		"response_types_supported":              []string{"code"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"ES256"},
		"token_endpoint_auth_methods_supported": []string{"client_secret_basic"},
		"code_challenge_methods_supported":      []string{"S256"},
	})
}

// authorize plays the provider's authorization endpoint for the request
// the RP redirected to, after a successful sign-in at level acr: it checks
// the request and returns the callback URL.
func (op *testOP) authorize(authURL, acr string) string {
	op.t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		op.t.Fatal(err)
	}
	q := u.Query()
	if q.Get("response_type") != "code" || q.Get("client_id") != testClientID || q.Get("code_challenge_method") != "S256" ||
		len(q.Get("code_challenge")) != 43 || q.Get("state") == "" || q.Get("nonce") == "" {
		op.t.Fatalf("bad authorization request %s", authURL)
	}
	code := rand.Text()
	op.mu.Lock()
	op.codes[code] = testCode{testClientID, q.Get("redirect_uri"), q.Get("nonce"), q.Get("code_challenge"), acr}
	op.mu.Unlock()
	cb := url.Values{"code": {code}, "state": {q.Get("state")}, "iss": {op.issuer()}}
	return q.Get("redirect_uri") + "?" + cb.Encode()
}

func (op *testOP) token(w http.ResponseWriter, r *http.Request) {
	op.mu.Lock()
	defer op.mu.Unlock()
	op.tokenCalls++
	id, secret, ok := r.BasicAuth()
	if !ok || id != testClientID || secret != testClientSecret {
		writeJSON(w, 401, map[string]string{"error": "invalid_client"})
		return
	}
	c, ok := op.codes[r.PostFormValue("code")]
	delete(op.codes, r.PostFormValue("code"))
	sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
	switch {
	case r.PostFormValue("grant_type") != "authorization_code" || !ok:
		writeJSON(w, 400, map[string]string{"error": "invalid_grant"})
		return
	case r.PostFormValue("redirect_uri") != c.redirectURI:
		writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "redirect_uri"})
		return
	case base64.RawURLEncoding.EncodeToString(sum[:]) != c.challenge:
		writeJSON(w, 400, map[string]string{"error": "invalid_grant", "error_description": "PKCE verification failed"})
		return
	}
	nonce := c.nonce
	if op.nonce != "" {
		nonce = op.nonce
	}
	now := time.Now()
	access := rand.Text()
	op.tokens[access] = testSub
	atHash := sha256.Sum256([]byte(access))
	claims := map[string]any{
		"iss": op.issuer(), "sub": testSub, "aud": testClientID, "azp": testClientID,
		"exp": now.Add(5 * time.Minute).Unix(), "iat": now.Unix(), "auth_time": now.Add(-time.Minute).Unix(),
		"nonce": nonce, "acr": c.acr, "amr": []string{"pwd"}, "sid": "s-1",
		"at_hash":    base64.RawURLEncoding.EncodeToString(atHash[:16]),
		"given_name": "Élodie", "family_name": "Côté",
	}
	payload, _ := json.Marshal(claims)
	obj, err := op.signer.Sign(payload)
	if err != nil {
		op.t.Error(err)
		return
	}
	idt, _ := obj.CompactSerialize()
	op.lastIDToken = idt
	writeJSON(w, 200, map[string]any{
		"access_token": access, "token_type": "Bearer", "expires_in": 300,
		"id_token": idt, "scope": "openid profile email address",
	})
}

func (op *testOP) userinfo(w http.ResponseWriter, r *http.Request) {
	op.mu.Lock()
	defer op.mu.Unlock()
	const prefix = "Bearer "
	h := r.Header.Get("Authorization")
	sub, ok := "", len(h) > len(prefix) && h[:len(prefix)] == prefix
	if ok {
		sub, ok = op.tokens[h[len(prefix):]]
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		writeJSON(w, 401, map[string]string{"error": "invalid_token"})
		return
	}
	if op.userinfoOff {
		writeJSON(w, 500, map[string]string{"error": "server_error"})
		return
	}
	if op.userinfoSub != "" {
		sub = op.userinfoSub
	}
	writeJSON(w, 200, map[string]any{
		"sub": sub, "given_name": "Élodie", "family_name": "Côté", "name": "Élodie Côté",
		"birthdate": "1985-03-07", "email": "citoyen1@demo.sqin.test", "email_verified": true,
		"address": map[string]string{
			"street_address": "1234 rue des Érables", "locality": "Québec", "region": "QC",
			"postal_code": "G1R 4S9", "country": "CA",
		},
		"updated_at": 1767225600, // 2026-01-01 00:00 UTC
	})
}
