package clientreg

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/go-jose/go-jose/v4"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/keys"
)

// What SQIN supports. Scopes and claims mirror the provider's discovery
// document (claims_supported, scopes_supported); a test keeps them equal.
var (
	KnownScopes = []string{"openid", "profile", "email", "address", "sqin_health", "offline_access"}
	KnownClaims = []string{"name", "given_name", "family_name", "birthdate", "gender", "locale",
		"sqin_health_insurance_number", "email", "email_verified", "address"}
	GrantTypes  = []string{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken, sqin.GrantClientCredentials}
	AuthMethods = []string{sqin.AuthSecretBasic, sqin.AuthSecretPost, sqin.AuthPrivateKey, sqin.AuthNone}
	// keyAlgs are the algorithms a client's registered key may declare.
	keyAlgs     = []string{"ES256", "PS256", "RS256", "EdDSA"}
	fapiKeyAlgs = []string{"ES256", "PS256", "EdDSA"}
	fapiIDAlgs  = []string{"PS256", "ES256"}
)

// Limits on what one client may register.
const (
	maxURIs      = 20
	maxURILen    = 2000
	maxNameLen   = 200
	maxSecretLen = 512
	minSecretLen = 12
	maxJWKSSize  = 32 << 10
	maxJWKSKeys  = 10
	minRSABits   = 2048
)

var (
	// identifiers appear in URLs, HTTP Basic credentials and sub
	// derivation: unreserved URL characters only.
	clientIDRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$`)
	sectorRE   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._~-]{0,63}$`)
	purposeRE  = regexp.MustCompile(`^[a-z0-9-]{1,64}$`)
)

// CheckSector checks the name of a sector (a public body) as
// sector_identifier does.
func CheckSector(s string) error {
	if !sectorRE.MatchString(s) {
		return invalid("sector_identifier", "sector_identifier %q must be 1 to 64 characters among A-Z a-z 0-9 . _ ~ -, starting with a letter or a digit", s)
	}
	return nil
}

// Options are what the caller may allow beyond the defaults.
type Options struct {
	// AllowPublicSubject lets subject_type public through: an operator
	// at the CLI, or an initial access token that allows it.
	AllowPublicSubject bool
}

// Validate checks m strictly and returns the client it describes, with
// defaults filled in and values normalised (the JWKS compacted, an empty
// list nil, a sector equal to the client's own ID dropped). SecretHash and
// CreatedAt are left to the caller; m.ClientSecret, when present, is only
// checked. Errors are *Error: invalid_redirect_uri for redirect_uris,
// invalid_client_metadata for everything else, the description naming the
// member.
//
// Rules: redirect URIs exact https (http only on loopback: 127.0.0.1,
// [::1], localhost), no fragment, no wildcard, no userinfo; logout URIs
// the same; jwks and jwks_uri mutually exclusive, private_key_jwt needs
// one of them, jwks holds public keys only, jwks_uri is https; profile
// fapi2 means private_key_jwt, PAR, DPoP and PS256 or ES256 ID tokens, with
// no weaker option accepted; a public client cannot use
// client_credentials; known scopes and claims only; minimum_acr one of
// urn:sqin:loa:1..3; subject_type public only when asked and allowed.
func Validate(m *Metadata, opt Options) (*sqin.Client, error) {
	c := new(sqin.Client)

	if !clientIDRE.MatchString(m.ClientID) {
		return nil, invalid("client_id", "client_id %q must be 1 to 128 characters among A-Z a-z 0-9 . _ ~ -, starting with a letter or a digit", m.ClientID)
	}
	c.ID = m.ClientID

	c.Name = strings.TrimSpace(m.ClientName)
	if c.Name == "" {
		c.Name = c.ID
	}
	if utf8.RuneCountInString(c.Name) > maxNameLen || strings.ContainsFunc(c.Name, unicode.IsControl) || !utf8.ValidString(c.Name) {
		return nil, invalid("client_name", "client_name must be at most %d characters of text, without control characters", maxNameLen)
	}

	switch m.Profile {
	case "", sqin.ProfileFAPI2:
		c.Profile = m.Profile
	default:
		return nil, invalid("profile", "profile %q is unknown: use %q (FAPI 2.0 Security Profile) or leave it out", m.Profile, sqin.ProfileFAPI2)
	}
	fapi := c.FAPI2()

	if m.Purpose != "" && !purposeRE.MatchString(m.Purpose) {
		return nil, invalid("purpose", "purpose %q must be a code of 1 to 64 lower-case letters, digits and dashes, as in the legal authorisation (e.g. allocation-famille)", m.Purpose)
	}
	c.Purpose = m.Purpose

	c.AuthMethod = m.TokenEndpointAuthMethod
	if c.AuthMethod == "" {
		c.AuthMethod = sqin.AuthSecretBasic
		if fapi {
			c.AuthMethod = sqin.AuthPrivateKey
		}
	}
	if !slices.Contains(AuthMethods, c.AuthMethod) {
		return nil, invalid("token_endpoint_auth_method", "token_endpoint_auth_method %q is not supported (supported: %s)", c.AuthMethod, strings.Join(AuthMethods, ", "))
	}
	if fapi && c.AuthMethod != sqin.AuthPrivateKey {
		return nil, invalid("token_endpoint_auth_method", "profile fapi2 requires token_endpoint_auth_method private_key_jwt, not %s", c.AuthMethod)
	}
	secretAuth := c.AuthMethod == sqin.AuthSecretBasic || c.AuthMethod == sqin.AuthSecretPost
	if s := m.ClientSecret; s != "" {
		switch {
		case !secretAuth:
			return nil, invalid("client_secret", "client_secret makes no sense with token_endpoint_auth_method %s", c.AuthMethod)
		case len(s) < minSecretLen:
			return nil, invalid("client_secret", "client_secret must be at least %d characters (leave it out to have a strong one generated)", minSecretLen)
		case len(s) > maxSecretLen || strings.ContainsFunc(s, unicode.IsControl):
			return nil, invalid("client_secret", "client_secret must be at most %d characters, without control characters", maxSecretLen)
		}
	}

	// Grant and response types.
	switch {
	case m.GrantTypes == nil:
		c.GrantTypes = []string{sqin.GrantAuthorizationCode}
	case len(m.GrantTypes) == 0:
		return nil, invalid("grant_types", "grant_types must not be empty (supported: %s)", strings.Join(GrantTypes, ", "))
	default:
		c.GrantTypes = slices.Clone(m.GrantTypes)
	}
	if err := knownList("grant_types", "grant type", c.GrantTypes, GrantTypes); err != nil {
		return nil, err
	}
	code := c.HasGrant(sqin.GrantAuthorizationCode)
	if c.Public() && c.HasGrant(sqin.GrantClientCredentials) {
		return nil, invalid("grant_types", "grant_types: a public client (token_endpoint_auth_method none) cannot use client_credentials")
	}
	if c.HasGrant(sqin.GrantRefreshToken) && !code {
		return nil, invalid("grant_types", "grant_types: refresh_token needs authorization_code: refresh tokens come from code exchanges only")
	}
	if m.ResponseTypes != nil {
		want := []string{}
		if code {
			want = []string{"code"}
		}
		if !slices.Equal(m.ResponseTypes, want) {
			if code {
				return nil, invalid("response_types", `response_types must be ["code"]: SQIN supports the authorization code flow only`)
			}
			return nil, invalid("response_types", "response_types must be empty without the authorization_code grant")
		}
	}

	// Redirect URIs.
	if code && len(m.RedirectURIs) == 0 {
		return nil, &Error{Code: InvalidRedirectURI, Field: "redirect_uris",
			Description: "redirect_uris is required for the authorization_code grant"}
	}
	if err := checkURIs("redirect_uris", InvalidRedirectURI, m.RedirectURIs); err != nil {
		return nil, err
	}
	c.RedirectURIs = nilIfEmpty(m.RedirectURIs)
	if err := checkURIs("post_logout_redirect_uris", InvalidClientMetadata, m.PostLogoutRedirectURIs); err != nil {
		return nil, err
	}
	c.PostLogoutRedirectURIs = nilIfEmpty(m.PostLogoutRedirectURIs)

	// Scopes and claims.
	if m.Scope == "" {
		c.Scopes = []string{"openid"}
	} else {
		c.Scopes = strings.Split(m.Scope, " ")
		if slices.Contains(c.Scopes, "") {
			return nil, invalid("scope", "scope must be scope names separated by single spaces")
		}
		if err := knownList("scope", "scope", c.Scopes, KnownScopes); err != nil {
			return nil, err
		}
	}
	if err := knownList("claims", "claim", m.Claims, KnownClaims); err != nil {
		return nil, err
	}
	c.Claims = nilIfEmpty(m.Claims)

	// ID tokens, level of assurance, subjects.
	c.SigningAlg = m.IDTokenSignedAlg
	if c.SigningAlg == "" {
		c.SigningAlg = keys.ES256
	}
	if !slices.Contains(keys.SupportedAlgs, c.SigningAlg) {
		return nil, invalid("id_token_signed_response_alg", "id_token_signed_response_alg %q is not supported (supported: %s)", c.SigningAlg, strings.Join(keys.SupportedAlgs, ", "))
	}
	if fapi && !slices.Contains(fapiIDAlgs, c.SigningAlg) {
		return nil, invalid("id_token_signed_response_alg", "profile fapi2 requires id_token_signed_response_alg PS256 or ES256, not %s", c.SigningAlg)
	}
	c.MinLoA = sqin.LoA1
	if m.MinimumACR != "" {
		l, ok := sqin.ParseACR(m.MinimumACR)
		if !ok {
			return nil, invalid("minimum_acr", "minimum_acr %q must be one of %s, %s, %s", m.MinimumACR, sqin.LoA1.ACR(), sqin.LoA2.ACR(), sqin.LoA3.ACR())
		}
		c.MinLoA = l
	}
	if s := m.SectorIdentifier; s != "" {
		if err := CheckSector(s); err != nil {
			return nil, err
		}
		if s != c.ID {
			c.Sector = s
		}
	}
	switch m.SubjectType {
	case "", sqin.SubjectPairwise:
		c.SubjectType = sqin.SubjectPairwise
	case sqin.SubjectPublic:
		if !opt.AllowPublicSubject {
			return nil, invalid("subject_type", "subject_type public lets services link a citizen across public bodies: it needs the operator's approval (an initial access token created with --allow-public-subject)")
		}
		c.SubjectType = sqin.SubjectPublic
	default:
		return nil, invalid("subject_type", "subject_type %q must be pairwise or public", m.SubjectType)
	}

	// Keys.
	if len(m.JWKS) > 0 && m.JWKSURI != "" {
		return nil, invalid("jwks", "jwks and jwks_uri are mutually exclusive: register one of them")
	}
	if len(m.JWKS) > 0 {
		jwks, err := normaliseJWKS(m.JWKS, fapi)
		if err != nil {
			return nil, err
		}
		c.JWKS = jwks
	}
	if m.JWKSURI != "" {
		if err := checkJWKSURI(m.JWKSURI); err != nil {
			return nil, err
		}
		c.JWKSURI = m.JWKSURI
	}
	if c.AuthMethod == sqin.AuthPrivateKey && len(c.JWKS) == 0 && c.JWKSURI == "" {
		return nil, invalid("jwks", "token_endpoint_auth_method private_key_jwt needs the client's public keys: jwks or jwks_uri")
	}

	// Sender-constrained tokens and pushed requests.
	c.RequirePAR = m.RequirePAR != nil && *m.RequirePAR
	c.RequireDPoP = m.DPoPBound != nil && *m.DPoPBound
	if fapi {
		if m.RequirePAR != nil && !*m.RequirePAR {
			return nil, invalid("require_pushed_authorization_requests", "profile fapi2 requires require_pushed_authorization_requests true")
		}
		if m.DPoPBound != nil && !*m.DPoPBound {
			return nil, invalid("dpop_bound_access_tokens", "profile fapi2 requires dpop_bound_access_tokens true (SQIN binds tokens with DPoP, not mTLS)")
		}
		c.RequirePAR, c.RequireDPoP = true, true
	}

	// Logout.
	if u := m.BackchannelLogoutURI; u != "" {
		if err := checkURI("backchannel_logout_uri", InvalidClientMetadata, u, false); err != nil {
			return nil, err
		}
		c.BackchannelLogoutURI = u
	}
	if u := m.FrontchannelLogoutURI; u != "" {
		if err := checkURI("frontchannel_logout_uri", InvalidClientMetadata, u, false); err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(c.RedirectURIs, func(r string) bool { return origin(r) == origin(u) }) {
			return nil, invalid("frontchannel_logout_uri", "frontchannel_logout_uri %q must have the scheme, host and port of one of the redirect_uris (Front-Channel Logout 1.0 section 2)", u)
		}
		c.FrontchannelLogoutURI = u
	}
	return c, nil
}

func nilIfEmpty(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	return slices.Clone(s)
}

// knownList checks that every element of list is in known, once.
func knownList(field, what string, list, known []string) error {
	for i, v := range list {
		if !slices.Contains(known, v) {
			return invalid(field, "%s: unknown %s %q (known: %s)", field, what, v, strings.Join(known, ", "))
		}
		if slices.Contains(list[:i], v) {
			return invalid(field, "%s: %s %q is listed twice", field, what, v)
		}
	}
	return nil
}

func checkURIs(field, code string, uris []string) error {
	if len(uris) > maxURIs {
		return &Error{Code: code, Field: field, Description: fmt.Sprintf("%s: at most %d URIs", field, maxURIs)}
	}
	for i, u := range uris {
		if err := checkURI(fmt.Sprintf("%s[%d]", field, i), code, u, false); err != nil {
			return err
		}
		if slices.Contains(uris[:i], u) {
			return &Error{Code: code, Field: field, Description: fmt.Sprintf("%s: %q is listed twice", field, u)}
		}
	}
	return nil
}

// checkURI checks a URI the provider sends browsers or requests to: an
// absolute https URL (http only on loopback unless httpsOnly), printable
// ASCII, no fragment, no wildcard, no credentials.
func checkURI(name, code, s string, httpsOnly bool) error {
	bad := func(format string, args ...any) error {
		field, _, _ := strings.Cut(name, "[")
		return &Error{Code: code, Field: field, Description: fmt.Sprintf("%s %q: ", name, s) + fmt.Sprintf(format, args...)}
	}
	if len(s) > maxURILen {
		return bad("longer than %d characters", maxURILen)
	}
	if strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r >= 0x7f || r == '\\' }) {
		return bad("must be printable ASCII without spaces or backslashes (percent-encode other characters)")
	}
	if strings.Contains(s, "#") {
		return bad("must not have a fragment")
	}
	if strings.Contains(s, "*") {
		return bad("must not contain wildcards: register each URI exactly")
	}
	u, err := url.Parse(s)
	if err != nil || !u.IsAbs() || u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return bad("must be an absolute URL")
	}
	if u.User != nil || strings.Contains(u.Host, "@") {
		return bad("must not contain credentials (userinfo)")
	}
	switch {
	case strings.HasPrefix(s, "https://"):
	case strings.HasPrefix(s, "http://") && !httpsOnly:
		if !loopback(u.Hostname()) {
			return bad("http is allowed only on loopback (127.0.0.1, [::1], localhost); use https")
		}
	case httpsOnly:
		return bad("scheme must be https")
	default:
		return bad("scheme must be https (or http on loopback), in lower case")
	}
	return nil
}

func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// origin is scheme://host:port of an absolute URL, with default ports
// made explicit.
func origin(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return ""
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"https": "443", "http": "80"}[u.Scheme]
	}
	return u.Scheme + "://" + strings.ToLower(u.Hostname()) + ":" + port
}

// checkJWKSURI refuses, besides what checkURI refuses, http and hosts that
// name the server's own networks (the provider fetches the URI).
func checkJWKSURI(s string) error {
	if err := checkURI("jwks_uri", InvalidClientMetadata, s, true); err != nil {
		return err
	}
	u, _ := url.Parse(s)
	host := strings.ToLower(u.Hostname())
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast() {
			return invalid("jwks_uri", "jwks_uri %q must name a public host", s)
		}
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") || !strings.Contains(host, ".") && net.ParseIP(host) == nil {
		return invalid("jwks_uri", "jwks_uri %q must name a public host", s)
	}
	return nil
}

// privateMembers are JWK members that only private or symmetric keys have.
var privateMembers = []string{"d", "p", "q", "dp", "dq", "qi", "oth", "k"}

// normaliseJWKS checks a client's JWKS and returns it compact, with members
// in a fixed order, so that it reads back byte for byte.
func normaliseJWKS(raw []byte, fapi bool) ([]byte, error) {
	if len(raw) > maxJWKSSize {
		return nil, invalid("jwks", "jwks is larger than %d bytes: publish the keys at a jwks_uri", maxJWKSSize)
	}
	var set map[string]json.RawMessage
	if err := json.Unmarshal(raw, &set); err != nil {
		return nil, invalid("jwks", "jwks must be a JSON Web Key Set object")
	}
	var members []map[string]json.RawMessage
	if err := json.Unmarshal(set["keys"], &members); err != nil || len(members) == 0 {
		return nil, invalid("jwks", `jwks must have a "keys" array with at least one key`)
	}
	if len(members) > maxJWKSKeys {
		return nil, invalid("jwks", "jwks holds more than %d keys", maxJWKSKeys)
	}
	out := make([]map[string]any, len(members))
	kids := map[string]bool{}
	signing := false
	for i, km := range members {
		where := fmt.Sprintf("jwks.keys[%d]", i)
		if km == nil {
			return nil, invalid("jwks", "%s must be a JSON object", where)
		}
		for _, p := range privateMembers {
			if _, ok := km[p]; ok {
				return nil, invalid("jwks", "%s has the private member %q: register public keys only, and replace a key whose private part was shared", where, p)
			}
		}
		b, _ := json.Marshal(km)
		var k jose.JSONWebKey
		if err := k.UnmarshalJSON(b); err != nil {
			return nil, invalid("jwks", "%s is not a valid JWK: %v", where, err)
		}
		if !k.IsPublic() || !k.Valid() {
			return nil, invalid("jwks", "%s must be a valid public key", where)
		}
		switch pk := k.Key.(type) {
		case *ecdsa.PublicKey:
			if pk.Curve != elliptic.P256() {
				return nil, invalid("jwks", "%s: EC keys must be on P-256 (ES256)", where)
			}
		case *rsa.PublicKey:
			if pk.N.BitLen() < minRSABits {
				return nil, invalid("jwks", "%s: RSA keys must have at least %d bits", where, minRSABits)
			}
		case ed25519.PublicKey:
		default:
			return nil, invalid("jwks", "%s: key type %T is not supported (EC P-256, RSA or Ed25519)", where, k.Key)
		}
		if k.Algorithm != "" {
			allowed := keyAlgs
			if fapi {
				allowed = fapiKeyAlgs
			}
			if !slices.Contains(allowed, k.Algorithm) {
				return nil, invalid("jwks", "%s: alg %q is not accepted (accepted: %s)", where, k.Algorithm, strings.Join(allowed, ", "))
			}
		}
		switch k.Use {
		case "", "sig":
			signing = true
		case "enc":
		default:
			return nil, invalid("jwks", `%s: use %q must be "sig" or "enc"`, where, k.Use)
		}
		if len(members) > 1 {
			if k.KeyID == "" {
				return nil, invalid("jwks", "%s needs a kid: every key of a set of several has one", where)
			}
			if kids[k.KeyID] {
				return nil, invalid("jwks", "%s: kid %q is used twice", where, k.KeyID)
			}
			kids[k.KeyID] = true
		}
		var generic map[string]any
		_ = json.Unmarshal(b, &generic)
		out[i] = generic
	}
	if !signing {
		return nil, invalid("jwks", `jwks has no signing key (use "sig" or no use)`)
	}
	b, err := json.Marshal(map[string]any{"keys": out})
	if err != nil {
		return nil, invalid("jwks", "jwks cannot be stored: %v", err)
	}
	return b, nil
}
