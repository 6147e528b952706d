// Package store defines what SQIN needs from persistent storage, as small
// interfaces per concern. internal/sqlstore implements them on SQLite and
// PostgreSQL; internal/storetest is the conformance suite every
// implementation passes.
//
// Conventions: a missing row is sqin.ErrNotFound (also for expired
// artefacts that a caller must treat as absent); a duplicate key is
// sqin.ErrConflict; times are stored with millisecond precision in UTC.
// Secrets (codes, tokens, session identifiers) reach the store only as
// hashes computed by the caller.
package store

import (
	"context"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/legal"
)

// Clients stores relying parties.
type Clients interface {
	CreateClient(ctx context.Context, c *sqin.Client) error
	GetClient(ctx context.Context, id string) (*sqin.Client, error)
	ListClients(ctx context.Context) ([]*sqin.Client, error)
	// DeleteClient removes the client and revokes its grants and consents.
	DeleteClient(ctx context.Context, id string) error
}

// Accounts stores citizens' accounts.
type Accounts interface {
	CreateAccount(ctx context.Context, a *sqin.Account) error
	GetAccount(ctx context.Context, id string) (*sqin.Account, error)
	// GetAccountByEmail looks an account up by its normalised email.
	GetAccountByEmail(ctx context.Context, email string) (*sqin.Account, error)
	// GetAccountSubject returns the account, as GetAccount, with the legacy
	// sub of sector (GetLegacySubject; "" when none) in one read.
	GetAccountSubject(ctx context.Context, id, sector string) (*sqin.Account, string, error)
}

// Persons stores the registry of identity attributes (minimal until the
// RAIG issue replaces it with attributes and provenance).
type Persons interface {
	CreatePerson(ctx context.Context, p *sqin.Person) error
	GetPerson(ctx context.Context, id string) (*sqin.Person, error)
}

// Sessions stores browser SSO sessions.
type Sessions interface {
	CreateSession(ctx context.Context, s *sqin.Session) error
	// GetSession returns ErrNotFound for a missing or expired session.
	GetSession(ctx context.Context, id string, now time.Time) (*sqin.Session, error)
	// GetSessionConsent is GetSession with, in the same read, the consent
	// the session's account gave clientID (nil when none).
	GetSessionConsent(ctx context.Context, id, clientID string, now time.Time) (*sqin.Session, *sqin.Consent, error)
	// DeleteSession ends the session and, in the same transaction, revokes
	// the grants tied to it that are not offline.
	DeleteSession(ctx context.Context, id string, now time.Time) error
}

// AuthRequests stores authorization requests waiting for the user.
type AuthRequests interface {
	CreateAuthRequest(ctx context.Context, r *sqin.AuthRequest) error
	// GetAuthRequest returns ErrNotFound for a missing or expired request.
	GetAuthRequest(ctx context.Context, id string, now time.Time) (*sqin.AuthRequest, error)
	// SetAuthRequestSession records the signed-in session on the request.
	SetAuthRequestSession(ctx context.Context, id, sessionID string) error
	DeleteAuthRequest(ctx context.Context, id string) error
	// PushAuthRequest stores a pushed request (r.Pushed) and records once
	// in the same transaction, as RedeemCode does.
	PushAuthRequest(ctx context.Context, r *sqin.AuthRequest, once []OnceKey, now time.Time) error
	// TakePushedRequest redeems a pushed request (PAR request_uri): it
	// deletes and returns request id when it is pushed, of clientID,
	// unexpired at now and without a session. The delete is the single-use
	// check across instances: of concurrent calls one gets the request,
	// the others ErrNotFound, as does any other case (which deletes
	// nothing, so another client cannot spend a request_uri).
	TakePushedRequest(ctx context.Context, id, clientID string, now time.Time) (*sqin.AuthRequest, error)
}

// Grants stores authorization codes, grants and refresh tokens.
type Grants interface {
	CreateAuthCode(ctx context.Context, c *sqin.AuthCode) error
	// IssueCode stores c as CreateAuthCode does and, in the same
	// transaction, deletes the authorization request requestID it answers:
	// a request of c's client unexpired at now that is, when pushed, a
	// pushed request without a session (a PAR request_uri), and otherwise
	// a stored request of c's session. When there is no such request the
	// error is sqin.ErrNotFound and no code is stored: of concurrent calls
	// for one request, one stores its code.
	IssueCode(ctx context.Context, c *sqin.AuthCode, requestID string, pushed bool, now time.Time) error
	// ExchangeCode redeems a code in one transaction: a missing code is
	// ErrNotFound; a code already used, expired or not, has its grant
	// revoked (committed) and returns ErrReplay; an expired code is
	// ErrExpired; otherwise the code is marked used, issue builds from it
	// the grant (whose ID is the code's GrantID) and an optional refresh
	// token of that grant, and both are stored. Of concurrent exchanges of
	// one code, one at most succeeds. Nothing is written when issue fails;
	// its error is returned as it is.
	ExchangeCode(ctx context.Context, codeHash string, now time.Time,
		issue func(*sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error)) error
	// RotateRefreshToken replaces a refresh token in one transaction: a
	// missing token is ErrNotFound; a token already rotated, expired or
	// not, revokes the whole grant (committed) and returns ErrReplay; an
	// expired token is ErrExpired; a revoked or expired grant is
	// ErrRevoked; otherwise the token is marked used and the one next
	// returns, of the same grant, is stored. Of concurrent rotations of one
	// token, one at most succeeds. Nothing is written when next fails; its
	// error is returned as it is.
	RotateRefreshToken(ctx context.Context, tokenHash string, now time.Time,
		next func(*sqin.RefreshToken, *sqin.Grant) (*sqin.RefreshToken, error)) error
	// RedeemCode is ExchangeCode for a token request: in the same
	// transaction it first records once, the request's replay-cache keys
	// (as UseOnceAll), and it reads the code's account with its legacy sub
	// in sector (as GetAccountSubject, but for the password hash) for
	// issue.
	//
	// When a key of once is a replay, the code is left as it is, the keys
	// that were new are recorded, and the error is a *ReplayedKeys. When the
	// exchange fails for another reason, or issue does, the keys are still
	// recorded: a request's verified identifiers are spent whatever its
	// outcome, and a request succeeds only if it recorded them itself.
	RedeemCode(ctx context.Context, codeHash string, now time.Time, once []OnceKey, sector string,
		issue func(*sqin.AuthCode, Holder) (*sqin.Grant, *sqin.RefreshToken, error)) error
	// RotateRefresh is RotateRefreshToken for a token request: it records
	// once and reads the grant's account with its legacy sub in sector for
	// next, in its transaction, as RedeemCode does.
	RotateRefresh(ctx context.Context, tokenHash string, now time.Time, once []OnceKey, sector string,
		next func(*sqin.RefreshToken, *sqin.Grant, Holder) (*sqin.RefreshToken, error)) error
	// GetRefreshToken returns a refresh token even when used or expired.
	GetRefreshToken(ctx context.Context, tokenHash string) (*sqin.RefreshToken, error)
	// GetGrant returns a grant even when revoked (callers check RevokedAt).
	GetGrant(ctx context.Context, id string) (*sqin.Grant, error)
	RevokeGrant(ctx context.Context, id string, now time.Time) error
	// RevokeAccessToken records a revoked access token identifier until the
	// token would have expired anyway.
	RevokeAccessToken(ctx context.Context, jti string, expiresAt time.Time) error
	AccessTokenRevoked(ctx context.Context, jti string) (bool, error)
	// GetTokenState reads at once what a resource checks at every use of
	// an access token: whether jti was revoked and, when grantID is not
	// empty, the grant (even revoked) with its account and that account's
	// registry person, as GetGrant, GetAccount and GetPerson return them
	// but for the account's password hash, left empty (a resource has no
	// use for it). A missing grant is ErrNotFound; a missing account or
	// person is nil.
	GetTokenState(ctx context.Context, jti, grantID string) (*TokenState, error)
}

// Holder is the account a code or refresh token was issued for, as
// RedeemCode and RotateRefresh read it in their transaction.
type Holder struct {
	Account *sqin.Account // nil when missing; without its password hash
	Legacy  string        // the sub of the client's sector before SQIN; "" when none
}

// ReplayedKeys is the error (found with errors.As) of a write given
// replay-cache keys of which some (Keys) were already recorded: it changed
// nothing but record the keys that were new. It is not sqin.ErrReplay,
// which names a replayed code or refresh token.
type ReplayedKeys struct{ Keys []string }

func (e *ReplayedKeys) Error() string {
	return "single-use identifiers already used: " + strings.Join(e.Keys, ", ")
}

// TokenState is what GetTokenState reads.
type TokenState struct {
	Revoked bool
	Grant   *sqin.Grant   // nil when no grant was asked for
	Account *sqin.Account // nil when missing
	Person  *sqin.Person  // nil when the account has none or it is missing
}

// Consents stores what citizens allowed each client to receive.
type Consents interface {
	// SaveConsent records a consent, replacing the previous one.
	SaveConsent(ctx context.Context, c *sqin.Consent) error
	GetConsent(ctx context.Context, accountID, clientID string) (*sqin.Consent, error)
	ListConsents(ctx context.Context, accountID string) ([]*sqin.Consent, error)
	// RevokeConsent deletes the consent and revokes the account's grants to
	// that client, in one transaction.
	RevokeConsent(ctx context.Context, accountID, clientID string, now time.Time) error
}

// Keys stores token signing keys.
type Keys interface {
	// ListSigningKeys returns keys not yet past ExpiresAt, newest first.
	ListSigningKeys(ctx context.Context, now time.Time) ([]*sqin.SigningKey, error)
	// AddSigningKey stores k and, in the same transaction, retires the
	// active keys of the same algorithm: RetiredAt = now, ExpiresAt =
	// now + keep (they stay in the JWKS that long).
	AddSigningKey(ctx context.Context, k *sqin.SigningKey, now time.Time, keep time.Duration) error
}

// RateLimits counts events per key in a sliding window shared by every
// server instance.
type RateLimits interface {
	// Hit records one event for key and returns how many the window ending
	// at now holds, this one included.
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
	// Count returns the events in the window without recording one.
	Count(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
	Reset(ctx context.Context, key string) error
}

// Replays remembers identifiers that may be used only once (client
// assertion and DPoP proof jti), across every server instance.
type Replays interface {
	// UseOnce records key until expiresAt; a key already recorded and not
	// expired at now is sqin.ErrReplay.
	UseOnce(ctx context.Context, key string, expiresAt, now time.Time) error
	// UseOnceAll is UseOnce for several keys in one statement (say a
	// request's client assertion jti and DPoP proof jti). It records every
	// key that is new or expired at now and returns the others, the
	// replays (a key given twice is a replay the second time); nil when
	// all were recorded.
	UseOnceAll(ctx context.Context, keys []OnceKey, now time.Time) (replays []string, err error)
}

// OnceKey is an identifier to record until ExpiresAt.
type OnceKey struct {
	Key       string
	ExpiresAt time.Time
}

// Subjects keeps the sub a public body knew a citizen by before SQIN
// (migration from a legacy service), which wins over the pairwise one.
type Subjects interface {
	SetLegacySubject(ctx context.Context, sector, accountID, sub string) error
	// GetLegacySubject returns sqin.ErrNotFound when there is none.
	GetLegacySubject(ctx context.Context, sector, accountID string) (string, error)
}

// Audit stores the tamper-evident audit log (internal/audit, which
// documents each method). Besides AppendEvents, every write of every store
// method also writes, in the transaction of its change, the events its context
// carries (audit.With); see audit.With for the rules.
type Audit interface {
	audit.Storage
}

// Authorisations stores the legal authorisations under which registry
// attributes are communicated (internal/legal).
type Authorisations interface {
	// CreateAuthorisation stores a normalised, validated authorisation; a
	// taken reference is sqin.ErrConflict.
	CreateAuthorisation(ctx context.Context, a *legal.Authorisation) error
	// GetAuthorisation returns sqin.ErrNotFound when there is none.
	GetAuthorisation(ctx context.Context, ref string) (*legal.Authorisation, error)
	// ListAuthorisations returns all of them, in force or not, by reference.
	ListAuthorisations(ctx context.Context) ([]*legal.Authorisation, error)
	// EndAuthorisation moves the end of an authorisation to at; one that
	// already ended, or ends before at, is sqin.ErrConflict.
	EndAuthorisation(ctx context.Context, ref string, at time.Time) error
}

// LocalSecret is the keyed hash of a shared secret a holder body delivered
// for one registry person (internal/proofing.SecretHash).
type LocalSecret struct {
	SecretType string
	PersonID   string
	Hash       []byte
}

// LocalSecrets stores delivered shared secrets, as keyed hashes only.
type LocalSecrets interface {
	// PutLocalSecrets stores them in one transaction, replacing a
	// person's previous hash of the same type.
	PutLocalSecrets(ctx context.Context, secrets []LocalSecret, now time.Time) error
	// LocalSecretHash returns sqin.ErrNotFound when none was delivered.
	LocalSecretHash(ctx context.Context, secretType, personID string) ([]byte, error)
}

// AdminToken is a bearer token of the administration API, stored as the
// SHA-256 of its value.
type AdminToken struct {
	ID        string
	Hash      string
	Note      string // who holds it, for what
	CreatedAt time.Time
	ExpiresAt time.Time
	RevokedAt time.Time // zero unless revoked
}

// Usable reports whether t may authenticate at now.
func (t *AdminToken) Usable(now time.Time) bool {
	return t.RevokedAt.IsZero() && now.Before(t.ExpiresAt)
}

// AdminTokens stores the administration API's tokens.
type AdminTokens interface {
	// CreateAdminToken stores t; a taken ID or hash is sqin.ErrConflict.
	CreateAdminToken(ctx context.Context, t *AdminToken) error
	// GetAdminToken returns the token with that hash, usable or not, or
	// sqin.ErrNotFound.
	GetAdminToken(ctx context.Context, hash string) (*AdminToken, error)
	ListAdminTokens(ctx context.Context) ([]*AdminToken, error)
	// RevokeAdminToken keeps the first revocation; a missing token is
	// sqin.ErrNotFound.
	RevokeAdminToken(ctx context.Context, id string, now time.Time) error
}

// Store is every concern together, as one backend provides them.
type Store interface {
	Clients
	Accounts
	Persons
	Sessions
	AuthRequests
	Grants
	Consents
	Keys
	RateLimits
	Replays
	Subjects
	Logouts
	Registrations
	SubjectImports
	Audit
	Authorisations
	LocalSecrets
	AdminTokens
	Ping(ctx context.Context) error
	Close() error
}
