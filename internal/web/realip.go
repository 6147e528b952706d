package web

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

type trustedKey struct{}

// FromTrustedProxy reports whether r reached SQIN through a trusted proxy
// (TrustProxies): only then are headers such as X-Request-Id taken from it.
func FromTrustedProxy(r *http.Request) bool {
	v, _ := r.Context().Value(trustedKey{}).(bool)
	return v
}

// ParseProxies reads a list of trusted reverse proxies: IP addresses or
// CIDR prefixes, separated by commas or spaces.
func ParseProxies(s string) ([]netip.Prefix, error) {
	var ps []netip.Prefix
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' }) {
		if p, err := netip.ParsePrefix(f); err == nil {
			ps = append(ps, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("trusted proxy %q is neither an IP address nor a CIDR prefix (10.0.0.0/8)", f)
		}
		ps = append(ps, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
	}
	return ps, nil
}

// TrustProxies makes r.RemoteAddr the citizen's address when the request
// came through trusted reverse proxies, so that rate limits and logs key
// on the citizen, not on the proxy. Only when the direct peer is trusted is
// X-Forwarded-For read, from its right end: each trusted hop is skipped and
// the first address that is not trusted is the client's. A malformed entry
// ends the walk at the last trusted hop: a client cannot choose its address
// by writing the header itself. Without trusted proxies, h is returned
// unchanged.
func TrustProxies(h http.Handler, trusted []netip.Prefix) http.Handler {
	if len(trusted) == 0 {
		return h
	}
	isTrusted := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		peer, err := netip.ParseAddrPort(r.RemoteAddr)
		if err != nil || !isTrusted(peer.Addr()) {
			h.ServeHTTP(w, r)
			return
		}
		r = r.WithContext(context.WithValue(r.Context(), trustedKey{}, true))
		client := peer.Addr()
		hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
		for i := len(hops) - 1; i >= 0; i-- {
			a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
			if err != nil {
				break
			}
			client = a.Unmap()
			if !isTrusted(client) {
				break
			}
		}
		if client != peer.Addr() {
			r.RemoteAddr = net.JoinHostPort(client.String(), "0") // r is already a copy
		}
		h.ServeHTTP(w, r)
	})
}

// LimitAddress is what a per-address limit counts r under: the client's
// IPv4 address, or the /64 prefix of its IPv6 address. One subscriber's
// line holds a whole /64 (RFC 6177, and privacy addresses change within
// it at will), so a limit per IPv6 address would give one client 2^64
// buckets. Behind trusted proxies, call it on the request TrustProxies
// passed on.
func LimitAddress(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	return netip.PrefixFrom(a, 64).Masked().String()
}
