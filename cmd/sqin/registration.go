package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/clientreg"
	"github.com/sqin/sqin/internal/config"
	"github.com/sqin/sqin/internal/store"
)

// Bounds of an initial access token's lifetime.
const (
	minTokenLife = time.Minute
	maxTokenLife = 365 * 24 * time.Hour
)

// tokenJSON is how the CLI shows an initial access token.
type tokenJSON struct {
	ID                 string `json:"id"`
	Token              string `json:"initial_access_token,omitempty"` // on creation only
	Status             string `json:"status"`
	Sector             string `json:"sector,omitempty"`
	AllowPublicSubject bool   `json:"allow_public_subject"`
	MaxUses            int    `json:"max_uses"`
	Uses               int    `json:"uses"`
	Note               string `json:"note,omitempty"`
	CreatedAt          string `json:"created_at"`
	ExpiresAt          string `json:"expires_at"`
	RevokedAt          string `json:"revoked_at,omitempty"`
}

func toTokenJSON(t *store.InitialAccessToken, now time.Time) tokenJSON {
	out := tokenJSON{ID: t.ID, Sector: t.Sector, AllowPublicSubject: t.AllowPublicSubject, MaxUses: t.MaxUses,
		Uses: t.Uses, Note: t.Note, CreatedAt: t.CreatedAt.Format(time.RFC3339), ExpiresAt: t.ExpiresAt.Format(time.RFC3339)}
	out.Status, out.RevokedAt = tokenStatus(t.RevokedAt, t.ExpiresAt, now, !t.Usable(now))
	return out
}

// tokenStatus is how the CLI names the state of a bearer token it lists:
// revoked (with when), expired, used up or active.
func tokenStatus(revokedAt, expiresAt, now time.Time, usedUp bool) (status, revoked string) {
	switch {
	case !revokedAt.IsZero():
		return "revoked", revokedAt.Format(time.RFC3339)
	case !now.Before(expiresAt):
		return "expired", ""
	case usedUp:
		return "used up", ""
	}
	return "active", ""
}

// registration runs sqin registration token create|list|revoke: the
// initial access tokens that let integrators register clients at
// POST /register.
func registration(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) < 2 || args[0] != "token" {
		return errors.New("registration: want token create, token list or token revoke")
	}
	sub := args[1]
	var cfg config.Config
	fs := flag.NewFlagSet("sqin registration token "+sub, flag.ContinueOnError)
	dbFlags(fs, &cfg)
	var (
		id, sector, note   string
		expires            time.Duration
		maxUses            int
		allowPublicSubject bool
	)
	switch sub {
	case "create":
		fs.DurationVar(&expires, "expires", 24*time.Hour, "lifetime of the token (at most 8760h)")
		fs.StringVar(&sector, "sector", "", "register clients of this public body (sector) only; default: any sector")
		fs.IntVar(&maxUses, "max-uses", 0, "registrations allowed with the token (0: unlimited until it expires)")
		fs.BoolVar(&allowPublicSubject, "allow-public-subject", false, "let clients it registers ask for subject_type public (the same sub in every public body)")
		fs.StringVar(&note, "note", "", "memo: who receives the token, for what")
	case "revoke":
		fs.StringVar(&id, "id", "", "identifier of the token (from token list)")
	case "list":
	default:
		return fmt.Errorf("registration token: unknown subcommand %q (want create, list or revoke)", sub)
	}
	if err := parseCmd(fs, args[2:], getenv); err != nil {
		return err
	}
	cmd := "registration token " + sub
	switch sub {
	case "create":
		if expires < minTokenLife || expires > maxTokenLife {
			return fmt.Errorf("%s: --expires must be between %s and %s", cmd, minTokenLife, "8760h")
		}
		if sector != "" {
			if err := clientreg.CheckSector(sector); err != nil {
				return fmt.Errorf("%s: --sector: %s", cmd, strings.Replace(err.(*clientreg.Error).Description, "sector_identifier", "sector", 1))
			}
		}
		if maxUses < 0 {
			return fmt.Errorf("%s: --max-uses must be 0 (unlimited) or more", cmd)
		}
		if len(note) > 500 {
			return fmt.Errorf("%s: --note is limited to 500 characters", cmd)
		}
	case "revoke":
		if id == "" {
			return fmt.Errorf("%s: --id is required", cmd)
		}
	}
	db, err := openCmdDB(ctx, &cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now().UTC()
	switch sub {
	case "create":
		tok, hash := clientreg.NewInitialAccessToken()
		t := &store.InitialAccessToken{ID: "iat-" + strings.ToLower(rand.Text()[:12]), Hash: hash, Sector: sector,
			AllowPublicSubject: allowPublicSubject, MaxUses: maxUses, Note: note, CreatedAt: now,
			ExpiresAt: now.Add(expires)}
		ev := audit.Event{Actor: cliActor(getenv), Action: audit.RegistrationTokenCreated, PublicBody: sector,
			Outcome: audit.Success, Detail: "initial access token " + t.ID}
		if err := db.CreateInitialAccessToken(audit.With(ctx, ev), t); err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		out := toTokenJSON(t, now)
		out.Token = tok
		return jsonOut(stdout, out)
	case "list":
		ts, err := db.ListInitialAccessTokens(ctx)
		return listOut(stdout, cmd, ts, err, func(t *store.InitialAccessToken) tokenJSON { return toTokenJSON(t, now) })
	default: // revoke
		// The revocation commits with its event; an unknown ID changes
		// nothing and records nothing.
		revoked := ctx
		ts, err := db.ListInitialAccessTokens(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		for _, t := range ts {
			if t.ID == id {
				revoked = audit.With(ctx, audit.Event{Actor: cliActor(getenv), Action: audit.RegistrationTokenRevoked,
					PublicBody: t.Sector, Outcome: audit.Success, Detail: "initial access token " + t.ID})
			}
		}
		if err := db.RevokeInitialAccessToken(revoked, id, now); err != nil {
			return cmdError(cmd, err, fmt.Sprintf("no initial access token %q (sqin registration token list)", id))
		}
		fmt.Fprintf(stdout, "initial access token %s revoked; the clients it registered stay (sqin client delete removes one)\n", id)
		return nil
	}
}
