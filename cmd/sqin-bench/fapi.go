package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// The FAPI 2.0 client: an outside client written from the RFCs, on
// go-jose only. It pushes its authorization request (PAR, RFC 9126),
// authenticates with private_key_jwt (RFC 7523, a fresh jti per
// assertion), binds its tokens to a DPoP key (RFC 9449) and answers the
// server's use_dpop_nonce challenges as RFC 9449 §8 and §9 describe: it
// keeps the last DPoP-Nonce the server sent and, when told to use a
// nonce, takes the one that came with the error and sends the request
// once more with a new proof (and a new assertion: each is single-use).

const (
	assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
	errUseNonce   = "use_dpop_nonce"
)

// fapiClient is one registered FAPI 2.0 client; its DPoP keys are per
// worker (dpopKey).
type fapiClient struct {
	*rp                // discovery, JWKS, authorization response and ID token checks
	signer jose.Signer // client assertions: ES256 with the registered key's kid
	// nonce is the last DPoP-Nonce the server gave (one per server, shared
	// by every worker, as a client library keeps it per origin).
	nonce atomic.Pointer[string]
	// nonceRetries counts requests sent again with a fresh nonce.
	nonceRetries atomic.Int64
	// steps sums the wall time of each step of the successful flows (in
	// the order of stepNames), flows counts them; reset by resetSteps.
	steps [3]atomic.Int64
	flows atomic.Int64
}

// stepNames are the steps of a FAPI flow, as the client times them.
var stepNames = [3]string{"PAR", "authorize", "token + ID token check"}

func (c *fapiClient) resetSteps() {
	for i := range c.steps {
		c.steps[i].Store(0)
	}
	c.flows.Store(0)
}

// meanSteps is the mean wall time of each step over the flows since the
// last reset.
func (c *fapiClient) meanSteps() (means [3]time.Duration, n int64) {
	n = c.flows.Load()
	if n == 0 {
		return means, 0
	}
	for i := range c.steps {
		means[i] = time.Duration(c.steps[i].Load() / n)
	}
	return means, n
}

// fapiKey is the client's signing key and its public JWKS (for
// `sqin client create --jwks-file`).
type fapiKey struct {
	priv *ecdsa.PrivateKey
	kid  string
}

func newFAPIKey() (*fapiKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	return &fapiKey{priv: priv, kid: "bench-" + randString(6)}, nil
}

// jwksJSON is the public key as a JWK Set.
func (k *fapiKey) jwksJSON() ([]byte, error) {
	return json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{
		Key: &k.priv.PublicKey, KeyID: k.kid, Algorithm: string(jose.ES256), Use: "sig"}}})
}

// createFAPIClient registers a FAPI 2.0 client (profile fapi2: PAR, DPoP,
// private_key_jwt and ES256 ID tokens, nothing weaker) with the CLI.
func createFAPIClient(bin, db, dir, id, redirectURI string, k *fapiKey) error {
	jwks, err := k.jwksJSON()
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "fapi-jwks-*.json")
	if err != nil {
		return err
	}
	if _, err := f.Write(jwks); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	cmd := exec.Command(bin, "client", "create", "--db", db, "--id", id, "--profile", "fapi2",
		"--jwks-file", f.Name(), "--redirect-uri", redirectURI,
		"--grant-types", "authorization_code,refresh_token", "--scopes", "openid,profile,email")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("sqin client create --profile fapi2: %v\n%s", err, out)
	}
	var c struct {
		ClientID string `json:"client_id"`
		Profile  string `json:"profile"`
	}
	if json.Unmarshal(out, &c) != nil || c.ClientID != id || c.Profile != "fapi2" {
		return fmt.Errorf("sqin client create --profile fapi2: unexpected output\n%s", out)
	}
	return nil
}

// newFAPIClient reads the provider's metadata as the client id and
// prepares its assertion signer.
func newFAPIClient(ctx context.Context, hc *http.Client, issuer, clientID, redirectURI string, k *fapiKey) (*fapiClient, error) {
	r, err := newRP(ctx, hc, issuer, clientID, "", redirectURI)
	if err != nil {
		return nil, err
	}
	if r.par == "" {
		return nil, errors.New("discovery: no pushed_authorization_request_endpoint")
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: k.priv},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", k.kid))
	if err != nil {
		return nil, err
	}
	return &fapiClient{rp: r, signer: s}, nil
}

// assertion is a fresh client assertion (RFC 7523 §3): iss = sub =
// client_id, aud = the issuer (FAPI 2.0 §5.3.2.1), a unique jti, 60 s of
// life.
func (c *fapiClient) assertion() (string, error) {
	now := time.Now().Unix()
	payload, err := json.Marshal(map[string]any{
		"iss": c.clientID, "sub": c.clientID, "aud": c.issuer,
		"jti": randString(16), "iat": now, "exp": now + 60,
	})
	if err != nil {
		return "", err
	}
	return signCompact(c.signer, payload)
}

func signCompact(s jose.Signer, payload []byte) (string, error) {
	jws, err := s.Sign(payload)
	if err != nil {
		return "", err
	}
	return jws.CompactSerialize()
}

// dpopKey is a worker's proof-of-possession key (RFC 9449): its proofs
// carry the public key in the header.
type dpopKey struct {
	signer jose.Signer
	jkt    string // base64url SHA-256 JWK thumbprint (RFC 7638)
}

func newDPoPKey() (*dpopKey, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: priv},
		(&jose.SignerOptions{EmbedJWK: true}).WithType("dpop+jwt"))
	if err != nil {
		return nil, err
	}
	tp, err := (&jose.JSONWebKey{Key: &priv.PublicKey}).Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	return &dpopKey{signer: s, jkt: base64.RawURLEncoding.EncodeToString(tp)}, nil
}

// proof is a DPoP proof (RFC 9449 §4.2) for one request; accessToken, when
// not empty, is bound through ath.
func (k *dpopKey) proof(method, htu, accessToken, nonce string) (string, error) {
	cl := map[string]any{"jti": randString(16), "htm": method, "htu": htu, "iat": time.Now().Unix()}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		cl["ath"] = base64.RawURLEncoding.EncodeToString(sum[:])
	}
	if nonce != "" {
		cl["nonce"] = nonce
	}
	payload, err := json.Marshal(cl)
	if err != nil {
		return "", err
	}
	return signCompact(k.signer, payload)
}

func (c *fapiClient) currentNonce() string {
	if p := c.nonce.Load(); p != nil {
		return *p
	}
	return ""
}

// keepNonce remembers the DPoP-Nonce a response carries.
func (c *fapiClient) keepNonce(h http.Header) {
	if n := h.Get("DPoP-Nonce"); n != "" && n != c.currentNonce() {
		c.nonce.Store(&n)
	}
}

// oauthErr is an OAuth error response body.
type oauthErr struct {
	Error       string `json:"error"`
	Description string `json:"error_description"`
}

// postDPoP posts an authenticated form with a DPoP proof to an endpoint of
// the authorization server; form is rebuilt for each attempt (the
// assertion inside is single-use). A 400 use_dpop_nonce answer (RFC 9449
// §8) is tried once more with the nonce it brought.
func (c *fapiClient) postDPoP(ctx context.Context, hc *http.Client, endpoint string, key *dpopKey,
	form func() (string, error), buf *bytes.Buffer) (int, error) {
	for attempt := 0; ; attempt++ {
		body, err := form()
		if err != nil {
			return 0, err
		}
		proof, err := key.proof(http.MethodPost, endpoint, "", c.currentNonce())
		if err != nil {
			return 0, err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", proof)
		resp, err := hc.Do(req)
		if err != nil {
			return 0, err
		}
		buf.Reset()
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil {
			return 0, err
		}
		c.keepNonce(resp.Header)
		if resp.StatusCode == http.StatusBadRequest && attempt == 0 && resp.Header.Get("DPoP-Nonce") != "" {
			var e oauthErr
			if json.Unmarshal(buf.Bytes(), &e) == nil && e.Error == errUseNonce {
				c.nonceRetries.Add(1)
				continue
			}
		}
		return resp.StatusCode, nil
	}
}

// pushAuthorization pushes a (PKCE, state, nonce) authorization request
// and returns the request the browser opens: client_id and request_uri
// only.
func (c *fapiClient) pushAuthorization(ctx context.Context, hc *http.Client, key *dpopKey, scope string, buf *bytes.Buffer) (authRequest, error) {
	verifier, challenge := pkce()
	a := authRequest{state: randString(12), nonce: randString(12), verifier: verifier}
	params := url.Values{
		"response_type":         {"code"},
		"client_id":             {c.clientID},
		"redirect_uri":          {c.redirectURI},
		"scope":                 {scope},
		"state":                 {a.state},
		"nonce":                 {a.nonce},
		"code_challenge":        {challenge},
		"code_challenge_method": {"S256"},
		"client_assertion_type": {assertionType},
	}
	status, err := c.postDPoP(ctx, hc, c.par, key, func() (string, error) {
		as, err := c.assertion()
		params.Set("client_assertion", as)
		return params.Encode(), err
	}, buf)
	if err != nil {
		return a, err
	}
	if status != http.StatusCreated {
		return a, fmt.Errorf("par: status %d %s", status, oneLine(buf.String()))
	}
	var pr struct {
		RequestURI string `json:"request_uri"`
		ExpiresIn  int    `json:"expires_in"`
	}
	if err := json.Unmarshal(buf.Bytes(), &pr); err != nil || pr.RequestURI == "" || pr.ExpiresIn <= 0 {
		return a, fmt.Errorf("par: bad response %s", oneLine(buf.String()))
	}
	a.url = c.authorize + "?" + url.Values{"client_id": {c.clientID}, "request_uri": {pr.RequestURI}}.Encode()
	return a, nil
}

// redeem exchanges a code for DPoP-bound tokens and checks the ID token.
func (c *fapiClient) redeem(ctx context.Context, hc *http.Client, key *dpopKey, code string, a authRequest, buf *bytes.Buffer, out *tokenResponse) error {
	form := url.Values{
		"grant_type":            {"authorization_code"},
		"code":                  {code},
		"redirect_uri":          {c.redirectURI},
		"code_verifier":         {a.verifier},
		"client_assertion_type": {assertionType},
	}
	status, err := c.postDPoP(ctx, hc, c.token, key, func() (string, error) {
		as, err := c.assertion()
		form.Set("client_assertion", as)
		return form.Encode(), err
	}, buf)
	if err != nil {
		return err
	}
	*out = tokenResponse{}
	if err := json.Unmarshal(buf.Bytes(), out); err != nil {
		return fmt.Errorf("token: status %d, bad JSON", status)
	}
	if status != http.StatusOK {
		return fmt.Errorf("token: status %d %s", status, oneLine(buf.String()))
	}
	if out.AccessToken == "" || out.TokenType != "DPoP" {
		return fmt.Errorf("token: token_type %q, want a DPoP-bound access token", out.TokenType)
	}
	return c.verifyIDToken(ctx, hc, out.IDToken, a.nonce)
}

// userinfoDPoP calls userinfo with a DPoP-bound access token (RFC 9449
// §7: DPoP scheme, proof with ath). A 401 whose challenge says
// use_dpop_nonce (§9) is tried once more with the nonce it brought.
func (c *fapiClient) userinfoDPoP(ctx context.Context, hc *http.Client, key *dpopKey, at string, buf *bytes.Buffer) error {
	for attempt := 0; ; attempt++ {
		proof, err := key.proof(http.MethodGet, c.userinfo, at, c.currentNonce())
		if err != nil {
			return err
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.userinfo, nil)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "DPoP "+at)
		req.Header.Set("DPoP", proof)
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		buf.Reset()
		_, err = buf.ReadFrom(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		c.keepNonce(resp.Header)
		if resp.StatusCode == http.StatusUnauthorized && attempt == 0 && resp.Header.Get("DPoP-Nonce") != "" &&
			strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="`+errUseNonce+`"`) {
			c.nonceRetries.Add(1)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("userinfo: status %d %s %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), oneLine(buf.String()))
		}
		if !bytes.Contains(buf.Bytes(), []byte(`"sub"`)) {
			return errors.New("userinfo: no sub")
		}
		return nil
	}
}

// flow is one FAPI 2.0 sign-in of the browser hc (its cookie jar holds the
// SSO session, or it signs in with username and password on the login
// form): PAR → /authorize with request_uri → (login, consent) → code →
// /token → ID token check, every call to the provider's API with a DPoP
// proof by key, every client authentication a fresh private_key_jwt
// assertion: the plain code flow's journey, with FAPI 2.0's protections.
// With userinfo, the access token is then used at userinfo with a proof
// too (not timed: a worker's first flow does it, so that the run proves
// the token works at a resource; the measured flows, like the plain code
// flow they are compared with, stop at the token).
func (c *fapiClient) flow(ctx context.Context, api, browser *http.Client, key *dpopKey, username, password string, userinfo bool, buf *bytes.Buffer, out *tokenResponse) error {
	var t [4]time.Time
	t[0] = time.Now()
	a, err := c.pushAuthorization(ctx, api, key, "openid profile email", buf)
	if err != nil {
		return err
	}
	t[1] = time.Now()
	code, err := c.browse(ctx, browser, a, username, password, buf)
	if err != nil {
		return err
	}
	t[2] = time.Now()
	if err := c.redeem(ctx, api, key, code, a, buf, out); err != nil {
		return err
	}
	t[3] = time.Now()
	for i := range c.steps {
		c.steps[i].Add(int64(t[i+1].Sub(t[i])))
	}
	if userinfo {
		if err := c.userinfoDPoP(ctx, api, key, out.AccessToken, buf); err != nil {
			return err
		}
	}
	c.flows.Add(1)
	return nil
}

// fapiState is what the FAPI scenario keeps across concurrency levels:
// the client, a DPoP key per worker, and which workers' accounts have
// given consent to the client.
type fapiState struct {
	client *fapiClient
	mu     sync.Mutex
	keys   []*dpopKey
	ready  []bool
}

// worker returns worker w's DPoP key.
func (s *fapiState) worker(w int) (*dpopKey, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.keys) <= w {
		k, err := newDPoPKey()
		if err != nil {
			return nil, false, err
		}
		s.keys = append(s.keys, k)
		s.ready = append(s.ready, false)
	}
	return s.keys[w], s.ready[w], nil
}

func (s *fapiState) setReady(w int) {
	s.mu.Lock()
	s.ready[w] = true
	s.mu.Unlock()
}
