package oidc

import (
	"context"
	"crypto"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sqin/sqin/internal/store"
)

// DPoP (RFC 9449): proofs of possession that bind tokens to a client key.
const (
	errInvalidDPoP = "invalid_dpop_proof"
	errUseNonce    = "use_dpop_nonce"
	// dpopWindow is how far a proof's iat may be from now, and how long
	// its jti is remembered.
	dpopWindow = 60 * time.Second
	// nonceStep is the life of one server nonce; the previous one is still
	// accepted, so a nonce lives between one and two steps.
	nonceStep = 2 * time.Minute
)

var dpopAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.PS256, jose.RS256, jose.EdDSA}

type dpopClaims struct {
	JTI   string `json:"jti"`
	HTM   string `json:"htm"`
	HTU   string `json:"htu"`
	IAT   int64  `json:"iat"`
	ATH   string `json:"ath,omitempty"`
	Nonce string `json:"nonce,omitempty"`
}

// dpopProof is a verified proof.
type dpopProof struct {
	jkt  string        // base64url SHA-256 JWK thumbprint (RFC 7638) of the proof key
	once store.OnceKey // its jti's replay-cache key
}

// nonce returns the current server nonce: a time step and its HMAC, so
// every instance that shares the master key agrees without storage.
func (p *Provider) nonce(at time.Time) string {
	step := uint64(at.Unix() / int64(nonceStep/time.Second))
	return p.nonceFor(step)
}

func (p *Provider) nonceFor(step uint64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], step)
	m := hmac.New(sha256.New, p.dpopKey)
	m.Write(b[:])
	return base64.RawURLEncoding.EncodeToString(append(b[:], m.Sum(nil)[:16]...))
}

func (p *Provider) validNonce(n string, at time.Time) bool {
	step := uint64(at.Unix() / int64(nonceStep/time.Second))
	for _, s := range []uint64{step, step - 1} {
		if subtle.ConstantTimeCompare([]byte(n), []byte(p.nonceFor(s))) == 1 {
			return true
		}
	}
	return false
}

// setNonce gives the client the nonce to use next.
func (p *Provider) setNonce(w http.ResponseWriter) {
	w.Header().Set("DPoP-Nonce", p.nonce(p.now()))
}

// dpopError is a proof problem; Code is invalid_dpop_proof or
// use_dpop_nonce.
func dpopError(code, desc string) *oauthError { return oerr(code, desc) }

// checkDPoP verifies the request's DPoP proof for method and target URL
// (RFC 9449 4.3) and records its jti. It returns nil, nil when the request
// carries no proof. accessToken, when not empty, must be hashed in the
// proof's ath.
func (p *Provider) checkDPoP(ctx context.Context, r *http.Request, htu, accessToken string) (*dpopProof, error) {
	proof, err := p.verifyDPoP(r, htu, accessToken)
	if err != nil || proof == nil {
		return nil, err
	}
	if err := p.useOnce(ctx, proof.once); err != nil {
		return nil, err
	}
	return proof, nil
}

// verifyDPoP is checkDPoP but for the jti, which the caller records (see
// useOnce) before it accepts the proof.
func (p *Provider) verifyDPoP(r *http.Request, htu, accessToken string) (*dpopProof, error) {
	vals := r.Header.Values("DPoP")
	if len(vals) == 0 {
		return nil, nil
	}
	if len(vals) > 1 || len(vals[0]) > 8192 {
		return nil, dpopError(errInvalidDPoP, "send exactly one DPoP proof")
	}
	jws, err := jose.ParseSignedCompact(vals[0], dpopAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, dpopError(errInvalidDPoP, "DPoP proof is not a JWS with an accepted algorithm")
	}
	h := jws.Signatures[0].Header
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); typ != "dpop+jwt" {
		return nil, dpopError(errInvalidDPoP, "DPoP proof typ must be dpop+jwt")
	}
	if h.JSONWebKey == nil || !h.JSONWebKey.IsPublic() || !h.JSONWebKey.Valid() || !algMatchesKey(h.Algorithm, h.JSONWebKey) {
		return nil, dpopError(errInvalidDPoP, "DPoP proof must carry the public key (jwk) that signed it")
	}
	payload, err := jws.Verify(h.JSONWebKey)
	if err != nil {
		return nil, dpopError(errInvalidDPoP, "DPoP proof signature is invalid")
	}
	var cl dpopClaims
	if err := json.Unmarshal(payload, &cl); err != nil || cl.JTI == "" || len(cl.JTI) > 256 {
		return nil, dpopError(errInvalidDPoP, "DPoP proof claims are malformed or lack jti")
	}
	if cl.HTM != r.Method {
		return nil, dpopError(errInvalidDPoP, "DPoP proof htm does not match the request method")
	}
	if !sameHTU(cl.HTU, htu) {
		return nil, dpopError(errInvalidDPoP, "DPoP proof htu does not match the request URL")
	}
	now := p.now()
	iat := time.Unix(cl.IAT, 0)
	if iat.Before(now.Add(-dpopWindow)) || iat.After(now.Add(leeway)) {
		return nil, dpopError(errInvalidDPoP, "DPoP proof iat is too old or in the future")
	}
	if accessToken != "" {
		sum := sha256.Sum256([]byte(accessToken))
		if subtle.ConstantTimeCompare([]byte(cl.ATH), []byte(base64.RawURLEncoding.EncodeToString(sum[:]))) != 1 {
			return nil, dpopError(errInvalidDPoP, "DPoP proof ath does not match the access token")
		}
	}
	if p.cfg.DPoPNonce && !p.validNonce(cl.Nonce, now) {
		return nil, dpopError(errUseNonce, "use the server's DPoP-Nonce")
	}
	tp, err := h.JSONWebKey.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, dpopError(errInvalidDPoP, "DPoP proof key is unusable")
	}
	jkt := base64.RawURLEncoding.EncodeToString(tp)
	return &dpopProof{jkt: jkt, once: store.OnceKey{Key: dpopKeyPrefix + jkt + ":" + cl.JTI, ExpiresAt: now.Add(dpopWindow + leeway)}}, nil
}

// sameHTU compares URLs without query and fragment (RFC 9449 4.3, 4.2:
// scheme and host case-insensitive).
func sameHTU(got, want string) bool {
	g, err1 := url.Parse(got)
	w, err2 := url.Parse(want)
	if err1 != nil || err2 != nil || g.Opaque != "" {
		return false
	}
	return strings.EqualFold(g.Scheme, w.Scheme) && strings.EqualFold(g.Host, w.Host) && g.EscapedPath() == w.EscapedPath()
}

// endpointURL is the public URL of one of our endpoints.
func (p *Provider) endpointURL(path string) string { return p.cfg.Issuer + path }
