// Package sqin holds the domain types shared by every part of SQIN, the
// Service québécois d'identité numérique: accounts, registry persons, clients
// of public bodies, levels of assurance and the grants that link them.
//
// Adapters (storage, HTTP, CLI) live under internal/ and depend on this
// package, never the other way round.
package sqin

import (
	"slices"
	"strconv"
	"strings"
	"time"
)

// LoA is a level of assurance (niveau d'assurance): 1 verified email and
// password, 2 proved against the registry, 3 in person or 2 plus a
// phishing-resistant authenticator.
type LoA int

// Levels of assurance.
const (
	LoA1 LoA = 1
	LoA2 LoA = 2
	LoA3 LoA = 3
)

const acrPrefix = "urn:sqin:loa:"

// ACR is the level's Authentication Context Class Reference.
func (l LoA) ACR() string { return acrPrefix + strconv.Itoa(int(l)) }

// Valid reports whether l is one of the defined levels.
func (l LoA) Valid() bool { return l >= LoA1 && l <= LoA3 }

// ParseACR turns "urn:sqin:loa:N" into a level.
func ParseACR(s string) (LoA, bool) {
	n, ok := strings.CutPrefix(s, acrPrefix)
	if !ok || len(n) != 1 {
		return 0, false
	}
	l := LoA(n[0] - '0')
	return l, l.Valid()
}

// Token endpoint authentication methods.
const (
	AuthSecretBasic = "client_secret_basic"
	AuthSecretPost  = "client_secret_post"
	AuthNone        = "none"
	AuthPrivateKey  = "private_key_jwt"
)

// Grant types.
const (
	GrantAuthorizationCode = "authorization_code"
	GrantRefreshToken      = "refresh_token"
	GrantClientCredentials = "client_credentials"
)

// Client is an online service of a public body registered with SAG.
type Client struct {
	ID                     string
	SecretHash             string // empty for public clients
	Name                   string
	RedirectURIs           []string
	PostLogoutRedirectURIs []string
	GrantTypes             []string
	Scopes                 []string // scopes the client may request
	Claims                 []string // claims the client may receive; empty = what its scopes give
	AuthMethod             string   // token endpoint authentication method
	SigningAlg             string   // ID token signing algorithm: ES256 (default), RS256, PS256
	MinLoA                 LoA
	Sector                 string // public body whose clients share one pairwise sub; empty = own sector
	JWKS                   []byte // registered public keys (private_key_jwt, JAR), JSON
	JWKSURI                string // or where to fetch them
	RequirePAR             bool   // authorization requests only through PAR
	RequireDPoP            bool   // tokens only sender-constrained with DPoP
	Profile                string // "" or ProfileFAPI2: no weaker option accepted
	SubjectType            string // SubjectPairwise (default) or SubjectPublic
	BackchannelLogoutURI   string
	FrontchannelLogoutURI  string
	// Purpose is the purpose code the service declares (internal/legal):
	// registry attributes reach it under an authorisation for that purpose.
	Purpose   string
	CreatedAt time.Time
}

// Client security profiles and subject types.
const (
	ProfileFAPI2    = "fapi2"
	SubjectPairwise = "pairwise"
	SubjectPublic   = "public"
)

// FAPI2 reports whether the client follows the FAPI 2.0 Security Profile.
func (c *Client) FAPI2() bool { return c.Profile == ProfileFAPI2 }

// Public reports whether the client has no credentials of its own.
func (c *Client) Public() bool { return c.AuthMethod == AuthNone }

// HasGrant reports whether the client may use grant type g.
func (c *Client) HasGrant(g string) bool { return slices.Contains(c.GrantTypes, g) }

// HasRedirectURI reports whether uri is registered, compared exactly.
func (c *Client) HasRedirectURI(uri string) bool { return slices.Contains(c.RedirectURIs, uri) }

// SectorID is the identifier used to derive pairwise subjects.
func (c *Client) SectorID() string {
	if c.Sector != "" {
		return c.Sector
	}
	return c.ID
}

// Account is a citizen's SAG account.
type Account struct {
	ID            string // opaque, never shown to clients (they get a pairwise sub)
	Email         string // normalised: trimmed, lower case
	EmailVerified bool
	PasswordHash  string
	LoA           LoA
	PersonID      string // registry person the account is linked to; empty before proofing
	Locale        string // fr or en
	Locked        bool
	CreatedAt     time.Time
	UpdatedAt     time.Time
}

// Address is a postal address in the registry.
type Address struct {
	CivicNumber  string
	Street       string
	Unit         string
	Municipality string
	Province     string
	PostalCode   string
	Country      string
}

// Person is an entry of the registry of identity attributes (RAIG).
type Person struct {
	ID         string // internal, never shown outside
	FamilyName string
	GivenName  string
	BirthDate  string // YYYY-MM-DD
	Sex        string // F, M, X
	HealthNo   string // 4 letters + 8 digits
	Address    Address
	Language   string // fr or en: language of correspondence
	DeathDate  string // empty if alive
	UpdatedAt  time.Time
}

// Session is a browser single sign-on session.
type Session struct {
	ID        string // hash of the cookie value
	AccountID string
	LoA       LoA
	AMR       []string
	AuthTime  time.Time
	CreatedAt time.Time
	ExpiresAt time.Time
}

// AuthRequest is a validated authorization request waiting for the user
// (sign-in, consent).
type AuthRequest struct {
	ID            string
	ClientID      string
	RedirectURI   string
	State         string
	Nonce         string
	Scopes        []string
	Claims        string // the JSON "claims" parameter, validated
	CodeChallenge string
	Prompt        []string
	MaxAge        int // -1 when absent
	LoginHint     string
	UILocale      string
	ACRValues     []string
	ResponseMode  string
	DPoPJKT       string // thumbprint the code is bound to (dpop_jkt or the PAR request's proof)
	Pushed        bool   // came through the PAR endpoint
	SessionID     string // set once the user is signed in
	CreatedAt     time.Time
	ExpiresAt     time.Time
}

// AuthCode is an issued authorization code.
type AuthCode struct {
	Hash          string
	ClientID      string
	AccountID     string
	SessionID     string
	RedirectURI   string
	Nonce         string
	Scopes        []string
	Claims        string
	CodeChallenge string
	LoA           LoA
	AMR           []string
	AuthTime      time.Time
	GrantID       string // grant that the exchange creates; revoked on replay
	DPoPJKT       string // the exchange must prove this key
	ExpiresAt     time.Time
	UsedAt        time.Time // zero until exchanged
}

// Grant is what one account allowed one client: the family that refresh
// tokens and access tokens belong to. Revoking it revokes them all.
type Grant struct {
	ID        string
	ClientID  string
	AccountID string
	SessionID string
	Scopes    []string
	Claims    string
	LoA       LoA
	AMR       []string
	AuthTime  time.Time
	Offline   bool
	DPoPJKT   string // refresh tokens of the grant are bound to this key (RFC 9449 5)
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time
}

// RefreshToken is one link of a grant's rotation chain.
type RefreshToken struct {
	Hash      string
	GrantID   string
	ClientID  string
	CreatedAt time.Time
	ExpiresAt time.Time
	UsedAt    time.Time // set when rotated; presenting it again is reuse
}

// Consent is a citizen's approval that a client receives a set of claims.
type Consent struct {
	AccountID string
	ClientID  string
	Scopes    []string // sorted
	Claims    []string // sorted
	GrantedAt time.Time
}

// Covers reports whether the consent includes every scope and claim asked.
func (c *Consent) Covers(scopes, claims []string) bool {
	for _, s := range scopes {
		if !slices.Contains(c.Scopes, s) {
			return false
		}
	}
	for _, s := range claims {
		if !slices.Contains(c.Claims, s) {
			return false
		}
	}
	return true
}

// SigningKey is a key used to sign tokens. The private part is stored
// encrypted; Public is its JWK.
type SigningKey struct {
	ID        string // kid
	Alg       string // ES256, RS256 (RSA keys also sign PS256)
	Private   []byte // encrypted PKCS#8
	Public    []byte // JWK JSON
	CreatedAt time.Time
	RetiredAt time.Time // no longer signs; zero while active
	ExpiresAt time.Time // removed from JWKS after this; zero while active
}
