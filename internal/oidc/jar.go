package oidc

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/go-jose/go-jose/v4/jwt"

	"github.com/sqin/sqin"
)

const errInvalidRequestObject = "invalid_request_object"

// maxRequestObjectLife bounds exp - nbf of a request object (FAPI 2.0
// message signing: at most 60 minutes).
const maxRequestObjectLife = time.Hour

// requestObject verifies a signed request object (JAR, RFC 9101) from client
// c and returns its parameters. Only the object's parameters count (RFC
// 9101 6.3); its client_id must be c's.
func (p *Provider) requestObject(ctx context.Context, c *sqin.Client, raw string) (url.Values, error) {
	bad := func(desc string) error { return oerr(errInvalidRequestObject, desc) }
	if len(raw) > 16<<10 {
		return nil, bad("request object is too large")
	}
	tok, err := jwt.ParseSigned(raw, clientAlgs)
	if err != nil || len(tok.Headers) != 1 {
		return nil, bad("request object must be a JWS signed with an accepted algorithm (not none)")
	}
	h := tok.Headers[0]
	if typ, ok := h.ExtraHeaders["typ"].(string); ok && typ != "oauth-authz-req+jwt" && typ != "JWT" {
		return nil, bad("request object typ must be oauth-authz-req+jwt")
	}
	key, err := p.clientKeys.key(ctx, c, h.KeyID, p.now())
	if err != nil {
		return nil, bad("request object: " + err.Error())
	}
	if !algMatchesKey(h.Algorithm, key) {
		return nil, bad("request object algorithm does not match the client's key")
	}
	var std jwt.Claims
	var all map[string]any
	if err := tok.Claims(key.Key, &std, &all); err != nil {
		return nil, bad("request object signature is invalid")
	}
	now := p.now()
	switch {
	case std.Issuer != c.ID:
		return nil, bad("request object iss must be the client_id")
	case !slices.Contains([]string(std.Audience), p.cfg.Issuer):
		return nil, bad("request object aud must be the issuer")
	case std.Expiry == nil || !now.Before(std.Expiry.Time().Add(leeway)):
		return nil, bad("request object has no exp or has expired")
	case std.NotBefore != nil && std.NotBefore.Time().After(now.Add(leeway)):
		return nil, bad("request object is not valid yet (nbf)")
	case std.NotBefore != nil && std.Expiry.Time().Sub(std.NotBefore.Time()) > maxRequestObjectLife:
		return nil, bad("request object lifetime (exp - nbf) exceeds 60 minutes")
	}
	q := url.Values{}
	for k, v := range all {
		switch k {
		case "iss", "aud", "exp", "iat", "nbf", "jti", "sub":
			continue
		case "request", "request_uri":
			return nil, bad("request object must not contain " + k)
		}
		switch v := v.(type) {
		case string:
			q.Set(k, v)
		case float64:
			q.Set(k, strconv.FormatFloat(v, 'f', -1, 64))
		case bool:
			q.Set(k, strconv.FormatBool(v))
		default:
			b, err := json.Marshal(v)
			if err != nil {
				return nil, bad("request object member " + k + " is malformed")
			}
			q.Set(k, string(b))
		}
	}
	if q.Get("client_id") != c.ID {
		return nil, bad("request object client_id must be the client's")
	}
	return q, nil
}
