package store

import (
	"context"
	"time"

	"github.com/sqin/sqin"
)

// InitialAccessToken lets a public body's integrator register clients
// (RFC 7591 section 3). Operators create it from the CLI; the store keeps
// only the SHA-256 hash of its value.
type InitialAccessToken struct {
	ID                 string // shown to operators, to list and revoke
	Hash               string // SHA-256 of the token, base64url
	Sector             string // "" = any sector; otherwise clients it registers belong to this sector
	AllowPublicSubject bool   // clients it registers may ask for subject_type public
	MaxUses            int    // 0 = unlimited
	Uses               int    // registrations made with it
	Note               string // operator's memo: who received it, for what
	CreatedAt          time.Time
	ExpiresAt          time.Time // required: a token without expiry is never usable
	RevokedAt          time.Time // zero while valid
}

// Usable reports whether the token may register one more client at now.
func (t *InitialAccessToken) Usable(now time.Time) bool {
	return t.RevokedAt.IsZero() && now.Before(t.ExpiresAt) && (t.MaxUses == 0 || t.Uses < t.MaxUses)
}

// Registration ties a client registered through the API to the
// registration access token that lets its integrator read, update and
// delete it (RFC 7592). It keeps the policy of the initial access token
// that created it, so that updates stay within it after that token is
// revoked or expires.
type Registration struct {
	ClientID           string
	TokenHash          string // SHA-256 of the registration access token, base64url
	InitialTokenID     string // the initial access token that registered the client
	Sector             string // the initial token's sector restriction ("" = none)
	AllowPublicSubject bool
	CreatedAt          time.Time
	UpdatedAt          time.Time
}

// Registrations stores what dynamic client registration needs.
type Registrations interface {
	// CreateInitialAccessToken stores t; a taken ID or hash is
	// sqin.ErrConflict.
	CreateInitialAccessToken(ctx context.Context, t *InitialAccessToken) error
	// GetInitialAccessToken returns the token with that hash, even when
	// revoked, expired or used up (callers check Usable), or
	// sqin.ErrNotFound.
	GetInitialAccessToken(ctx context.Context, hash string) (*InitialAccessToken, error)
	// ListInitialAccessTokens returns every token, oldest first.
	ListInitialAccessTokens(ctx context.Context) ([]*InitialAccessToken, error)
	// RevokeInitialAccessToken revokes the token at now; revoking it again
	// keeps the first time; a missing token is sqin.ErrNotFound. Clients it
	// registered stay.
	RevokeInitialAccessToken(ctx context.Context, id string, now time.Time) error
	// RegisterClient stores c and r in one transaction, counting one use
	// of the initial access token r.InitialTokenID: a missing token is
	// sqin.ErrNotFound; a revoked or used-up one sqin.ErrRevoked; an
	// expired one (at now) sqin.ErrExpired; a taken client ID
	// sqin.ErrConflict. Nothing is written on error. Of concurrent
	// registrations with a token that has one use left, one succeeds.
	RegisterClient(ctx context.Context, c *sqin.Client, r *Registration, now time.Time) error
	// GetRegistration returns the registration of a client, or
	// sqin.ErrNotFound (also for clients created from the CLI). Deleting
	// the client deletes its registration.
	GetRegistration(ctx context.Context, clientID string) (*Registration, error)
	// UpdateRegisteredClient replaces every setting of client c.ID but its
	// creation time, and replaces the registration access token hash
	// oldHash with newHash, in one transaction. A missing registration, or
	// one whose token is no longer oldHash (a concurrent update rotated
	// it), is sqin.ErrNotFound and nothing is written.
	UpdateRegisteredClient(ctx context.Context, c *sqin.Client, oldHash, newHash string, now time.Time) error
}

// LegacySubject is the sub a public body knew an account by before SQIN.
type LegacySubject struct {
	AccountID string
	Sub       string
}

// ImportOutcome is what ImportLegacySubjects did, or would do, with one
// item.
type ImportOutcome int

// Import outcomes. The last three are conflicts.
const (
	ImportImported     ImportOutcome = iota + 1 // recorded
	ImportUnchanged                             // the same sub was already recorded
	ImportAccountTaken                          // the account already has another sub in the sector
	ImportSubTaken                              // the sub already belongs to another account of the sector
	ImportDuplicate                             // an earlier item names the same account or sub
)

// Conflict reports whether o prevents the import.
func (o ImportOutcome) Conflict() bool { return o >= ImportAccountTaken }

func (o ImportOutcome) String() string {
	switch o {
	case ImportImported:
		return "imported"
	case ImportUnchanged:
		return "unchanged"
	case ImportAccountTaken:
		return "conflict: the account already has another sub in this sector"
	case ImportSubTaken:
		return "conflict: this sub already belongs to another account of the sector"
	case ImportDuplicate:
		return "conflict: an earlier line names the same account or sub"
	}
	return "unknown"
}

// SubjectImports imports legacy subjects in bulk (migration of a public
// body from a legacy service).
type SubjectImports interface {
	// ImportLegacySubjects records the items for sector, all or nothing,
	// in one transaction, and returns one outcome per item in order. When
	// any outcome is a conflict nothing is written and the error is
	// sqin.ErrConflict (the outcomes say which items); with dryRun nothing
	// is written either way.
	ImportLegacySubjects(ctx context.Context, sector string, items []LegacySubject, dryRun bool) ([]ImportOutcome, error)
}
