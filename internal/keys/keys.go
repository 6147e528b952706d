// Package keys manages the provider's token signing keys: generation on
// first start, encryption at rest, rotation with overlap, the JWKS, signing
// and verification of our own tokens.
package keys

import (
	"context"
	"crypto"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/store"
)

// Algorithms the provider signs with. RSA keys serve RS256 and PS256.
const (
	ES256 = "ES256"
	RS256 = "RS256"
	PS256 = "PS256"
)

// SupportedAlgs lists the signing algorithms in discovery order.
var SupportedAlgs = []string{ES256, RS256, PS256}

// keyAlg maps a signing algorithm to the stored key's algorithm family.
func keyAlg(alg string) string {
	if alg == PS256 {
		return RS256
	}
	return alg
}

// Sealer encrypts keys at rest with AES-256-GCM under the master key.
type Sealer struct{ aead cipher.AEAD }

// NewSealer returns a sealer for a 32-byte master key.
func NewSealer(master []byte) (*Sealer, error) {
	if len(master) != 32 {
		return nil, fmt.Errorf("keys: master key must be 32 bytes, got %d", len(master))
	}
	b, err := aes.NewCipher(master)
	if err != nil {
		return nil, err
	}
	g, err := cipher.NewGCM(b)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: g}, nil
}

// Seal encrypts plaintext, binding it to ad.
func (s *Sealer) Seal(plaintext, ad []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plaintext)+s.aead.Overhead())
	_, _ = rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plaintext, ad)
}

// Open decrypts what Seal produced.
func (s *Sealer) Open(sealed, ad []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n {
		return nil, errors.New("keys: sealed value too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], ad)
}

// Config tunes the manager.
type Config struct {
	// Keep is how long a retired key stays in the JWKS: at least the
	// longest lifetime of a token it signed.
	Keep time.Duration
	// Reload is how often keys are re-read from storage, so rotations made
	// by another instance or the CLI are picked up.
	Reload time.Duration
	// RSABits is the size of generated RSA keys.
	RSABits int
}

type loaded struct {
	meta    *sqin.SigningKey
	private crypto.Signer
	public  jose.JSONWebKey
	signers sync.Map // "alg typ" -> jose.Signer
}

type keyset struct {
	active map[string]*loaded // by key algorithm: newest unretired key
	byKID  map[string]*loaded
	jwks   []byte
	at     time.Time
}

// Manager signs and verifies tokens with the stored keys.
type Manager struct {
	store  store.Keys
	sealer *Sealer
	cfg    Config
	set    atomic.Pointer[keyset]
	mu     sync.Mutex // serialises reloads
	now    func() time.Time
}

// NewManager loads the keys, generating the first ES256 and RSA keys when
// storage has none; each key it generates is stored with its keys.created
// audit event (actor: system "keys"), in one transaction.
func NewManager(ctx context.Context, st store.Keys, sealer *Sealer, cfg Config) (*Manager, error) {
	if cfg.RSABits == 0 {
		cfg.RSABits = 3072
	}
	if cfg.Reload == 0 {
		cfg.Reload = 30 * time.Second
	}
	m := &Manager{store: st, sealer: sealer, cfg: cfg, now: time.Now}
	if err := m.Reload(ctx); err != nil {
		return nil, err
	}
	for _, alg := range []string{ES256, RS256} {
		if m.set.Load().active[alg] == nil {
			ev := audit.Event{Actor: audit.Actor{Kind: audit.ActorSystem, ID: "keys"}, Action: audit.KeysCreated,
				Outcome: audit.Success, Detail: "first " + alg + " signing key generated at start"}
			if err := m.Rotate(audit.With(ctx, ev), alg); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

// Rotate generates a new key for alg and retires the current one, which
// stays published for Keep.
func (m *Manager) Rotate(ctx context.Context, alg string) error {
	alg = keyAlg(alg)
	k, err := m.generate(alg)
	if err != nil {
		return err
	}
	if err := m.store.AddSigningKey(ctx, k, m.now(), m.cfg.Keep); err != nil {
		return fmt.Errorf("keys: store new %s key: %w", alg, err)
	}
	return m.Reload(ctx)
}

func (m *Manager) generate(alg string) (*sqin.SigningKey, error) {
	var priv crypto.Signer
	var err error
	switch alg {
	case ES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case RS256:
		priv, err = rsa.GenerateKey(rand.Reader, m.cfg.RSABits)
	default:
		return nil, fmt.Errorf("keys: unsupported algorithm %q", alg)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: generate %s: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	pub := jose.JSONWebKey{Key: priv.Public(), Use: "sig"}
	tp, err := pub.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, err
	}
	pub.KeyID = base64.RawURLEncoding.EncodeToString(tp)
	if alg == ES256 {
		pub.Algorithm = ES256
	}
	pubJSON, err := pub.MarshalJSON()
	if err != nil {
		return nil, err
	}
	return &sqin.SigningKey{
		ID: pub.KeyID, Alg: alg, Public: pubJSON, CreatedAt: m.now().UTC(),
		Private: m.sealer.Seal(der, []byte(pub.KeyID)),
	}, nil
}

// Reload re-reads keys from storage.
func (m *Manager) Reload(ctx context.Context) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	ks, err := m.store.ListSigningKeys(ctx, now)
	if err != nil {
		return fmt.Errorf("keys: list: %w", err)
	}
	old := m.set.Load()
	set := &keyset{active: map[string]*loaded{}, byKID: map[string]*loaded{}, at: now}
	var pubs jose.JSONWebKeySet
	for _, k := range ks {
		l := old.lookup(k.ID)
		if l == nil {
			if l, err = m.load(k); err != nil {
				return err
			}
		}
		l.meta = k
		set.byKID[k.ID] = l
		pubs.Keys = append(pubs.Keys, l.public)
		if k.RetiredAt.IsZero() && set.active[k.Alg] == nil {
			set.active[k.Alg] = l
		}
	}
	if set.jwks, err = json.Marshal(pubs); err != nil {
		return err
	}
	m.set.Store(set)
	return nil
}

func (ks *keyset) lookup(kid string) *loaded {
	if ks == nil {
		return nil
	}
	return ks.byKID[kid]
}

func (m *Manager) load(k *sqin.SigningKey) (*loaded, error) {
	der, err := m.sealer.Open(k.Private, []byte(k.ID))
	if err != nil {
		return nil, fmt.Errorf("keys: decrypt key %s (wrong master key?): %w", k.ID, err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("keys: parse key %s: %w", k.ID, err)
	}
	signer, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("keys: key %s is not a signer", k.ID)
	}
	var pub jose.JSONWebKey
	if err := pub.UnmarshalJSON(k.Public); err != nil {
		return nil, fmt.Errorf("keys: public key %s: %w", k.ID, err)
	}
	return &loaded{meta: k, private: signer, public: pub}, nil
}

// current returns the key set, reloading it when it is older than Reload.
func (m *Manager) current(ctx context.Context) *keyset {
	set := m.set.Load()
	if m.now().Sub(set.at) > m.cfg.Reload && m.mu.TryLock() {
		m.mu.Unlock()
		if err := m.Reload(ctx); err == nil {
			set = m.set.Load()
		}
	}
	return set
}

// JWKS returns the public key set as JSON.
func (m *Manager) JWKS(ctx context.Context) []byte { return m.current(ctx).jwks }

// Ready reports whether every algorithm has an active key.
func (m *Manager) Ready() bool {
	set := m.set.Load()
	return set != nil && set.active[ES256] != nil && set.active[RS256] != nil
}

// Sign serialises claims as a compact JWS with alg and header typ.
func (m *Manager) Sign(ctx context.Context, alg, typ string, claims any) (string, error) {
	payload, err := json.Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("keys: claims: %w", err)
	}
	l := m.current(ctx).active[keyAlg(alg)]
	if l == nil {
		return "", fmt.Errorf("keys: no active %s key", alg)
	}
	signer, err := l.signer(alg, typ)
	if err != nil {
		return "", err
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		return "", fmt.Errorf("keys: sign: %w", err)
	}
	return jws.CompactSerialize()
}

func (l *loaded) signer(alg, typ string) (jose.Signer, error) {
	key := alg + " " + typ
	if s, ok := l.signers.Load(key); ok {
		return s.(jose.Signer), nil
	}
	opts := (&jose.SignerOptions{}).WithType(jose.ContentType(typ))
	s, err := jose.NewSigner(jose.SigningKey{
		Algorithm: jose.SignatureAlgorithm(alg),
		Key:       jose.JSONWebKey{Key: l.private, KeyID: l.meta.ID},
	}, opts)
	if err != nil {
		return nil, fmt.Errorf("keys: signer %s: %w", alg, err)
	}
	l.signers.Store(key, s)
	return s, nil
}

// Errors of Verify.
var (
	ErrMalformed = errors.New("keys: malformed token")
	ErrSignature = errors.New("keys: bad signature")
)

// Verify checks a token we signed (any published key, algorithm in algs,
// header typ when typ is not empty) and returns its payload.
func (m *Manager) Verify(ctx context.Context, token, typ string, algs ...string) ([]byte, error) {
	sigAlgs := make([]jose.SignatureAlgorithm, len(algs))
	for i, a := range algs {
		sigAlgs[i] = jose.SignatureAlgorithm(a)
	}
	jws, err := jose.ParseSignedCompact(token, sigAlgs)
	if err != nil || len(jws.Signatures) != 1 {
		return nil, ErrMalformed
	}
	h := jws.Signatures[0].Header
	if typ != "" {
		if t, _ := h.ExtraHeaders[jose.HeaderType].(string); t != typ {
			return nil, ErrMalformed
		}
	}
	set := m.current(ctx)
	l := set.byKID[h.KeyID]
	if l == nil && m.now().Sub(set.at) > time.Second && m.mu.TryLock() {
		// Another instance may have rotated: look again, at most once a
		// second so that unknown kids cannot hammer the database.
		m.mu.Unlock()
		if m.Reload(ctx) == nil {
			l = m.set.Load().byKID[h.KeyID]
		}
	}
	if l == nil {
		return nil, ErrSignature
	}
	payload, err := jws.Verify(l.private.Public())
	if err != nil {
		return nil, ErrSignature
	}
	return payload, nil
}

// Hash returns the base64url SHA-256 of s: how codes, tokens and session
// identifiers are stored.
func Hash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// Random returns n random bytes, base64url encoded.
func Random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
