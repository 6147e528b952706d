package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/sqin/sqin/internal/admin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/config"
	"github.com/sqin/sqin/internal/store"
)

type adminTokenJSON struct {
	ID        string `json:"id"`
	Token     string `json:"admin_token,omitempty"` // on creation only
	Status    string `json:"status"`
	Note      string `json:"note,omitempty"`
	CreatedAt string `json:"created_at"`
	ExpiresAt string `json:"expires_at"`
	RevokedAt string `json:"revoked_at,omitempty"`
}

func toAdminTokenJSON(t *store.AdminToken, now time.Time) adminTokenJSON {
	out := adminTokenJSON{ID: t.ID, Note: t.Note, CreatedAt: t.CreatedAt.Format(time.RFC3339), ExpiresAt: t.ExpiresAt.Format(time.RFC3339)}
	out.Status, out.RevokedAt = tokenStatus(t.RevokedAt, t.ExpiresAt, now, false)
	return out
}

// adminCmd runs sqin admin token create|list|revoke: the bearer tokens of
// the administration API (/admin/v1, internal/admin).
func adminCmd(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	if len(args) < 2 || args[0] != "token" {
		return errors.New("admin: want token create, token list or token revoke")
	}
	sub := args[1]
	var cfg config.Config
	fs := flag.NewFlagSet("sqin admin token "+sub, flag.ContinueOnError)
	dbFlags(fs, &cfg)
	var (
		id, note string
		expires  time.Duration
	)
	switch sub {
	case "create":
		fs.DurationVar(&expires, "expires", 30*24*time.Hour, "lifetime of the token (at most 8760h)")
		fs.StringVar(&note, "note", "", "who holds the token, for what (required)")
	case "revoke":
		fs.StringVar(&id, "id", "", "identifier of the token (from token list)")
	case "list":
	default:
		return fmt.Errorf("admin token: unknown subcommand %q (want create, list or revoke)", sub)
	}
	if err := parseCmd(fs, args[2:], getenv); err != nil {
		return err
	}
	cmd := "admin token " + sub
	switch {
	case sub == "create" && (expires < time.Minute || expires > 365*24*time.Hour):
		return fmt.Errorf("%s: --expires must be between 1m and 8760h", cmd)
	case sub == "create" && (note == "" || len(note) > 500):
		return fmt.Errorf("%s: --note is required (at most 500 characters): say who holds the token", cmd)
	case sub == "revoke" && id == "":
		return fmt.Errorf("%s: --id is required", cmd)
	}
	db, err := openCmdDB(ctx, &cfg)
	if err != nil {
		return err
	}
	defer db.Close()
	now := time.Now().UTC()
	switch sub {
	case "create":
		tok, t, err := admin.CreateToken(ctx, db, note, expires, cliActor(getenv), now)
		if err != nil {
			return fmt.Errorf("%s: %w", cmd, err)
		}
		out := toAdminTokenJSON(t, now)
		out.Token = tok
		return jsonOut(stdout, out)
	case "list":
		ts, err := db.ListAdminTokens(ctx)
		return listOut(stdout, cmd, ts, err, func(t *store.AdminToken) adminTokenJSON { return toAdminTokenJSON(t, now) })
	default:
		ev := audit.Event{Actor: cliActor(getenv), Action: "admin_token.revoked", Outcome: audit.Success, Detail: "token " + id}
		if err := db.RevokeAdminToken(audit.With(ctx, ev), id, now); err != nil {
			return cmdError(cmd, err, fmt.Sprintf("no admin token %q (sqin admin token list)", id))
		}
		fmt.Fprintf(stdout, "admin token %s revoked\n", id)
		return nil
	}
}
