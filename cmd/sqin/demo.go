package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/demo"
	"github.com/sqin/sqin/internal/oidc"
	"github.com/sqin/sqin/internal/registry"
)

// Demo contract (docs/ARCHITECTURE.md): accounts citoyenN@demo.sqin.test
// with this password, each linked to a synthetic registry person, at LoA 2.
const (
	demoPassword = "demo-password-2026"
	demoClientID = "demo-rp"
	demoSeed     = 2026
)

func demoEmail(i int) string { return fmt.Sprintf("citoyen%d@demo.sqin.test", i) }

// seedDemo creates the synthetic persons and demo accounts that do not
// exist yet; running it again changes nothing.
func (a *app) seedDemo(ctx context.Context) error {
	i := 0
	hash, err := a.hasher.Hash(demoPassword)
	if err != nil {
		return err
	}
	now := time.Now().UTC()
	// SAG accounts are for people aged 14 and over: skip younger ones.
	adultBefore := now.AddDate(-14, 0, 0).Format("2006-01-02")
	err = registry.Generate(demoSeed, 2*a.cfg.DemoUsers+20, func(p *sqin.Person) error {
		if i == a.cfg.DemoUsers {
			return errEnough
		}
		if p.BirthDate > adultBefore {
			return nil
		}
		i++
		if err := a.db.CreatePerson(ctx, p); err != nil && !errors.Is(err, sqin.ErrConflict) {
			return fmt.Errorf("demo person: %w", err)
		}
		acct := &sqin.Account{ID: fmt.Sprintf("acct-demo-%04d", i), Email: demoEmail(i), EmailVerified: true,
			PasswordHash: hash, LoA: sqin.LoA2, PersonID: p.ID, Locale: p.Language, CreatedAt: now, UpdatedAt: now}
		if err := a.db.CreateAccount(ctx, acct); err != nil && !errors.Is(err, sqin.ErrConflict) {
			return fmt.Errorf("demo account: %w", err)
		}
		return nil
	})
	if errors.Is(err, errEnough) {
		return nil
	}
	return err
}

var errEnough = errors.New("enough")

// demoClientEvent is the event of the demo's own change to its relying
// party.
func demoClientEvent(action string, c *sqin.Client) audit.Event {
	return audit.Event{Actor: audit.Actor{Kind: audit.ActorSystem, ID: "sqin serve --demo"}, Action: action,
		ClientID: c.ID, PublicBody: c.SectorID(), Outcome: audit.Success, Detail: "demo relying party"}
}

// startDemo registers and starts the demo relying party and prints what a
// newcomer needs.
func (a *app) startDemo(ctx context.Context, stdout io.Writer, errc chan<- error) (*http.Server, error) {
	var rpSrv *http.Server
	rpURL := ""
	if a.cfg.DemoRPAddr != "" {
		rpURL = "http://" + a.cfg.DemoRPAddr
		secret := base64.RawURLEncoding.EncodeToString(derive(a.master, "demo-rp-secret"))
		c := &sqin.Client{ID: demoClientID, Name: "Service en ligne de démonstration — Ministère de la Famille",
			RedirectURIs: []string{rpURL + "/callback"}, PostLogoutRedirectURIs: []string{rpURL + "/"},
			GrantTypes: []string{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken},
			Scopes:     []string{"openid", "profile", "email", "address"}, AuthMethod: sqin.AuthSecretBasic,
			SigningAlg: "ES256", MinLoA: sqin.LoA1, SecretHash: oidc.HashSecret(secret), CreatedAt: time.Now().UTC()}
		if old, err := a.db.GetClient(ctx, demoClientID); err == nil && !sameStrings(old.RedirectURIs, c.RedirectURIs) {
			// The demo RP moved (another --demo-rp-addr): register it again.
			if err := a.db.DeleteClient(audit.With(ctx, demoClientEvent(audit.ClientDeleted, old)), demoClientID); err != nil {
				return nil, err
			}
		}
		// Already there after a restart: the conflict drops the event.
		if err := a.db.CreateClient(audit.With(ctx, demoClientEvent(audit.ClientCreated, c)), c); err != nil && !errors.Is(err, sqin.ErrConflict) {
			return nil, fmt.Errorf("demo client: %w", err)
		}
		rp := demo.NewRP(demo.RPConfig{Issuer: a.cfg.Issuer, ClientID: demoClientID, ClientSecret: secret,
			BaseURL: rpURL, Scopes: c.Scopes})
		ln, err := net.Listen("tcp", a.cfg.DemoRPAddr)
		if err != nil {
			return nil, fmt.Errorf("demo relying party: listen on %s: %w", a.cfg.DemoRPAddr, err)
		}
		rpSrv = newServer(rp.Handler())
		go func() { errc <- rpSrv.Serve(ln) }()
	}
	a.printDemo(stdout, rpURL)
	return rpSrv, nil
}

func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func (a *app) printDemo(w io.Writer, rpURL string) {
	iss := a.cfg.Issuer
	fmt.Fprintf(w, `
SQIN demo is running — démonstration en cours
=============================================
OpenID Provider (issuer)   %s
  discovery                %s/.well-known/openid-configuration
  JWKS                     %s/jwks.json
  health / readiness       %s/healthz  %s/readyz
  metrics                  %s/metrics
Database                   %s
`, iss, iss, iss, iss, iss, iss, redactDB(a.cfg.DB))
	if rpURL != "" {
		fmt.Fprintf(w, `
Demo online service (RP)   %s      <- open this and click « Se connecter avec SQIN »
  client_id                %s  (client_secret_basic; secret derived from the demo master key)
`, rpURL, demoClientID)
	}
	fmt.Fprintf(w, "\nDemo accounts (level of assurance 2, synthetic registry persons):\n")
	n := min(a.cfg.DemoUsers, 10)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(w, "  %-32s password: %s\n", demoEmail(i), demoPassword)
	}
	if a.cfg.DemoUsers > n {
		fmt.Fprintf(w, "  … up to %s\n", demoEmail(a.cfg.DemoUsers))
	}
	if a.cfg.DemoFastHash {
		fmt.Fprintf(w, "\nWARNING: demo mode lowers the argon2id password cost (t=%d, m=%d KiB).", a.hasher.P.Time, a.hasher.P.MemoryKiB)
	}
	fmt.Fprintf(w, `
WARNING: demo mode keeps its master key in %s/master.key.
Never use --demo in production. Stop with Ctrl-C.

`, a.cfg.DataDir)
}
