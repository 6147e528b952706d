package oidc

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/store"
)

const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// Longest lifetime accepted for a client assertion.
const maxAssertionLife = 5 * time.Minute

// authenticateClient applies the client's registered method (RFC 6749
// 2.3.1, RFC 7523): HTTP Basic with url-encoded credentials,
// client_secret_post, private_key_jwt, or none for public clients. Exactly
// one method per request. endpoint is the URL the request was sent to, an
// acceptable client assertion audience besides the issuer.
func (p *Provider) authenticateClient(r *http.Request, form url.Values, endpoint string) (*sqin.Client, error) {
	c, once, err := p.identifyClient(r, form, endpoint)
	if err != nil {
		return nil, err
	}
	if once != nil {
		if err := p.useOnce(r.Context(), *once); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// authenticate is authenticateClient followed by checkDPoP for the token
// and PAR endpoints, with the FAPI 2.0 rule on the client's method. It
// returns the replay-cache keys of the client assertion's jti and the
// proof's jti, both verified, for the request's write to record in its own
// transaction (store.Grants.RedeemCode); a request that makes no write, or
// fails before it, records them with spend. When the proof fails, the
// assertion's jti is recorded at once: a request whose proof fails still
// spends its assertion.
func (p *Provider) authenticate(r *http.Request, form url.Values, endpoint string) (*sqin.Client, *dpopProof, []store.OnceKey, error) {
	ctx := r.Context()
	c, once, err := p.identifyClient(r, form, endpoint)
	if err != nil {
		return nil, nil, nil, err
	}
	var keys []store.OnceKey
	if once != nil {
		keys = append(keys, *once)
	}
	if c.FAPI2() && c.AuthMethod != sqin.AuthPrivateKey {
		return nil, nil, nil, oerr(errInvalidClient, "FAPI 2.0 clients must authenticate with private_key_jwt")
	}
	proof, err := p.verifyDPoP(r, endpoint, "")
	if err != nil {
		return nil, nil, nil, p.spend(ctx, keys, err)
	}
	if proof != nil {
		keys = append(keys, proof.once)
	}
	return c, proof, keys, nil
}

// Prefixes of the replay-cache keys.
const (
	assertionKeyPrefix = "client-assertion:"
	dpopKeyPrefix      = "dpop:"
)

// useOnce records the replay-cache keys of one request in one statement;
// a replayed client assertion is invalid_client, a replayed DPoP proof
// invalid_dpop_proof (the assertion's error first).
func (p *Provider) useOnce(ctx context.Context, keys ...store.OnceKey) error {
	if len(keys) == 0 {
		return nil
	}
	replays, err := p.st.UseOnceAll(ctx, keys, p.now())
	if err != nil {
		return fmt.Errorf("oidc: record single-use identifiers: %w", err)
	}
	return replayError(replays)
}

// spend records the keys of a request that ends with err before a write
// recorded them: a replayed key's error wins over err, as the keys are
// checked before anything else the request asks.
func (p *Provider) spend(ctx context.Context, keys []store.OnceKey, err error) error {
	if rerr := p.useOnce(ctx, keys...); rerr != nil {
		return rerr
	}
	return err
}

// replayError is the error of a request whose replay-cache keys replays
// were already recorded; nil when there are none.
func replayError(replays []string) error {
	if slices.ContainsFunc(replays, func(k string) bool { return strings.HasPrefix(k, assertionKeyPrefix) }) {
		return oerr(errInvalidClient, "client_assertion jti was already used")
	}
	if len(replays) > 0 {
		return dpopError(errInvalidDPoP, "DPoP proof jti was already used")
	}
	return nil
}

// spentError maps the *store.ReplayedKeys of a write that was given the
// request's keys to the request's error; other errors are returned as they
// are.
func spentError(err error) error {
	var rk *store.ReplayedKeys
	if errors.As(err, &rk) {
		if rerr := replayError(rk.Keys); rerr != nil {
			return rerr
		}
	}
	return err
}

// identifyClient authenticates the client; for private_key_jwt it returns
// the assertion's replay-cache key, not yet recorded.
func (p *Provider) identifyClient(r *http.Request, form url.Values, endpoint string) (*sqin.Client, *store.OnceKey, error) {
	basicID, basicSecret, hasBasic := r.BasicAuth()
	if hasBasic {
		var err1, err2 error
		basicID, err1 = url.QueryUnescape(basicID)
		basicSecret, err2 = url.QueryUnescape(basicSecret)
		if err1 != nil || err2 != nil {
			return nil, nil, oerr(errInvalidClient, "malformed client credentials")
		}
	}
	formID, formSecret := form.Get("client_id"), form.Get("client_secret")
	assertion, aType := form.Get("client_assertion"), form.Get("client_assertion_type")
	methods := 0
	for _, used := range []bool{hasBasic, formSecret != "", assertion != "" || aType != ""} {
		if used {
			methods++
		}
	}
	if methods > 1 {
		return nil, nil, oerr(errInvalidRequest, "use one client authentication method")
	}
	var id, secret, method string
	switch {
	case hasBasic:
		if formID != "" && formID != basicID {
			return nil, nil, oerr(errInvalidRequest, "client_id does not match the credentials")
		}
		id, secret, method = basicID, basicSecret, sqin.AuthSecretBasic
	case formSecret != "":
		id, secret, method = formID, formSecret, sqin.AuthSecretPost
	case assertion != "" || aType != "":
		return p.verifyAssertion(r.Context(), formID, aType, assertion, endpoint)
	case formID != "":
		id, method = formID, sqin.AuthNone
	default:
		return nil, nil, oerr(errInvalidClient, "client authentication is missing")
	}
	c, err := p.client(r.Context(), id)
	if errors.Is(err, sqin.ErrNotFound) {
		// Same work as a real check, so timing does not tell which
		// client identifiers exist.
		_ = VerifySecret("sha256$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", secret)
		return nil, nil, oerr(errInvalidClient, "client authentication failed")
	}
	if err != nil {
		return nil, nil, err
	}
	if c.AuthMethod != method {
		if c.AuthMethod == sqin.AuthPrivateKey {
			return nil, nil, oerr(errInvalidClient, "this client must authenticate with private_key_jwt")
		}
		return nil, nil, oerr(errInvalidClient, "client authentication failed")
	}
	if method != sqin.AuthNone && !VerifySecret(c.SecretHash, secret) {
		return nil, nil, oerr(errInvalidClient, "client authentication failed")
	}
	return c, nil, nil
}

type assertionClaims struct {
	jwt.Claims
}

// verifyAssertion verifies a private_key_jwt client assertion (RFC 7523
// 3): signed by a registered key, iss = sub = client_id, our issuer or this
// endpoint in aud, short-lived. It returns the key under which the caller
// records its jti, which no instance may have seen before.
func (p *Provider) verifyAssertion(ctx context.Context, formID, aType, assertion, endpoint string) (*sqin.Client, *store.OnceKey, error) {
	if aType != assertionType {
		return nil, nil, oerr(errInvalidClient, "client_assertion_type must be "+assertionType)
	}
	if assertion == "" || len(assertion) > 8192 {
		return nil, nil, oerr(errInvalidClient, "client_assertion is missing")
	}
	tok, err := jwt.ParseSigned(assertion, clientAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return nil, nil, oerr(errInvalidClient, "client_assertion is not a signed JWT with an accepted algorithm")
	}
	var unverified assertionClaims
	if err := tok.UnsafeClaimsWithoutVerification(&unverified); err != nil {
		return nil, nil, oerr(errInvalidClient, "client_assertion claims are malformed")
	}
	id := unverified.Issuer
	if id == "" || unverified.Subject != id || (formID != "" && formID != id) {
		return nil, nil, oerr(errInvalidClient, "client_assertion iss and sub must both be the client_id")
	}
	c, err := p.client(ctx, id)
	if errors.Is(err, sqin.ErrNotFound) {
		return nil, nil, oerr(errInvalidClient, "client authentication failed")
	}
	if err != nil {
		return nil, nil, err
	}
	if c.AuthMethod != sqin.AuthPrivateKey {
		return nil, nil, oerr(errInvalidClient, "client authentication failed")
	}
	now := p.now()
	key, err := p.clientKeys.key(ctx, c, tok.Headers[0].KeyID, now)
	if err != nil {
		return nil, nil, oerr(errInvalidClient, "client_assertion: "+err.Error())
	}
	if !algMatchesKey(tok.Headers[0].Algorithm, key) {
		return nil, nil, oerr(errInvalidClient, "client_assertion algorithm does not match the key")
	}
	var cl assertionClaims
	if err := tok.Claims(key.Key, &cl); err != nil {
		return nil, nil, oerr(errInvalidClient, "client_assertion signature is invalid")
	}
	if cl.Expiry == nil || cl.ID == "" {
		return nil, nil, oerr(errInvalidClient, "client_assertion must have exp and jti")
	}
	aud := slices.ContainsFunc([]string(cl.Audience), func(a string) bool {
		return a == p.cfg.Issuer || a == p.cfg.Issuer+"/token" || (endpoint != "" && a == endpoint)
	})
	if !aud {
		return nil, nil, oerr(errInvalidClient, "client_assertion aud must be the issuer")
	}
	exp := cl.Expiry.Time()
	if !now.Before(exp.Add(leeway)) {
		return nil, nil, oerr(errInvalidClient, "client_assertion has expired")
	}
	if exp.Sub(now) > maxAssertionLife || (cl.IssuedAt != nil && cl.IssuedAt.Time().After(now.Add(leeway))) ||
		(cl.NotBefore != nil && cl.NotBefore.Time().After(now.Add(leeway))) {
		return nil, nil, oerr(errInvalidClient, "client_assertion lifetime is too long or starts in the future")
	}
	return c, &store.OnceKey{Key: assertionKeyPrefix + c.ID + ":" + cl.ID, ExpiresAt: exp.Add(leeway)}, nil
}

// leeway tolerates clock skew between clients and the server.
const leeway = 30 * time.Second

// algMatchesKey refuses, say, an RS256 header on an EC key.
func algMatchesKey(alg string, k *jose.JSONWebKey) bool {
	if k.Algorithm != "" && k.Algorithm != alg {
		return false
	}
	switch k.Key.(type) {
	case *ecdsa.PublicKey:
		return alg == "ES256"
	case *rsa.PublicKey:
		return alg == "PS256" || alg == "RS256"
	case ed25519.PublicKey:
		return alg == "EdDSA"
	}
	return false
}
