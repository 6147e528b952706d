package oidc

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/sqin/sqin"
)

// Algorithms accepted on JWTs that clients sign (client assertions,
// request objects, DPoP proofs): asymmetric only, as FAPI 2.0 allows plus
// RS256 for older integrations.
var clientAlgs = []jose.SignatureAlgorithm{jose.ES256, jose.PS256, jose.RS256, jose.EdDSA}

// clientKeys resolves a client's public keys: its registered JWKS, or its
// jwks_uri fetched with a timeout and a size limit and cached, refetched
// when a kid is unknown (the client rotated) at most once per minRefetch.
type clientKeys struct {
	http       *http.Client
	ttl        time.Duration
	minRefetch time.Duration
	maxBytes   int64
	mu         sync.Mutex
	cache      map[string]*cachedKeys // by client id
}

type cachedKeys struct {
	source  [32]byte // hash of the JWKS or of the URI it came from
	set     *jose.JSONWebKeySet
	fetched time.Time
}

func newClientKeys(hc *http.Client) *clientKeys {
	if hc == nil {
		// Clients' jwks_uri are fetched from inside our network: refuse
		// to connect to loopback, private or link-local addresses, whatever
		// the name resolved to (SSRF).
		dialer := &net.Dialer{Timeout: 3 * time.Second, Control: publicOnly}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.DialContext = dialer.DialContext
		tr.Proxy = nil
		hc = &http.Client{Timeout: 5 * time.Second, Transport: tr,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	return &clientKeys{http: hc, ttl: 5 * time.Minute, minRefetch: 30 * time.Second, maxBytes: 64 << 10,
		cache: map[string]*cachedKeys{}}
}

var errNoClientKeys = errors.New("client has no registered keys")

// key returns the client's key for kid (any usable key when kid is empty
// and the set holds exactly one).
func (ck *clientKeys) key(ctx context.Context, c *sqin.Client, kid string, now time.Time) (*jose.JSONWebKey, error) {
	set, err := ck.set(ctx, c, now, false)
	if err != nil {
		return nil, err
	}
	if k := pick(set, kid); k != nil {
		return k, nil
	}
	if c.JWKSURI == "" {
		return nil, fmt.Errorf("no registered key with kid %q", kid)
	}
	if set, err = ck.set(ctx, c, now, true); err != nil {
		return nil, err
	}
	if k := pick(set, kid); k != nil {
		return k, nil
	}
	return nil, fmt.Errorf("no key with kid %q at the client's jwks_uri", kid)
}

func pick(set *jose.JSONWebKeySet, kid string) *jose.JSONWebKey {
	if kid == "" {
		if len(set.Keys) == 1 {
			return &set.Keys[0]
		}
		return nil
	}
	for i := range set.Keys {
		if set.Keys[i].KeyID == kid && (set.Keys[i].Use == "" || set.Keys[i].Use == "sig") {
			return &set.Keys[i]
		}
	}
	return nil
}

func (ck *clientKeys) set(ctx context.Context, c *sqin.Client, now time.Time, refresh bool) (*jose.JSONWebKeySet, error) {
	var source [32]byte
	switch {
	case len(c.JWKS) > 0:
		source = sha256.Sum256(c.JWKS)
	case c.JWKSURI != "":
		source = sha256.Sum256([]byte("uri:" + c.JWKSURI))
	default:
		return nil, errNoClientKeys
	}
	ck.mu.Lock()
	cached := ck.cache[c.ID]
	ck.mu.Unlock()
	if cached != nil && cached.source == source {
		age := now.Sub(cached.fetched)
		if len(c.JWKS) > 0 || (age < ck.ttl && (!refresh || age < ck.minRefetch)) {
			return cached.set, nil
		}
	}
	var raw []byte
	if len(c.JWKS) > 0 {
		raw = c.JWKS
	} else {
		var err error
		if raw, err = ck.fetch(ctx, c.JWKSURI); err != nil {
			if cached != nil && cached.source == source {
				return cached.set, nil // keep serving the last good set
			}
			return nil, err
		}
	}
	set, err := parsePublicJWKS(raw)
	if err != nil {
		return nil, err
	}
	ck.mu.Lock()
	ck.cache[c.ID] = &cachedKeys{source: source, set: set, fetched: now}
	ck.mu.Unlock()
	return set, nil
}

func (ck *clientKeys) fetch(ctx context.Context, uri string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := ck.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch jwks_uri: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetch jwks_uri: status %d", resp.StatusCode)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, ck.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("fetch jwks_uri: %w", err)
	}
	if int64(len(b)) > ck.maxBytes {
		return nil, errors.New("fetch jwks_uri: key set too large")
	}
	return b, nil
}

// publicOnly refuses connections to non-public addresses.
func publicOnly(network, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return err
	}
	ip = ip.Unmap()
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || !ip.IsGlobalUnicast() {
		return fmt.Errorf("refusing to fetch keys from non-public address %s", ip)
	}
	return nil
}

// parsePublicJWKS parses a JWKS and refuses private or symmetric keys.
func parsePublicJWKS(raw []byte) (*jose.JSONWebKeySet, error) {
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, fmt.Errorf("client JWKS: %w", err)
	}
	for _, k := range set.Keys {
		if !k.IsPublic() || !k.Valid() {
			return nil, errors.New("client JWKS must hold public keys only")
		}
	}
	return &set, nil
}
