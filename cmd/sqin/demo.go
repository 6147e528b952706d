package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
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

// demoSource is the source of the demo accounts' registry people.
const demoSource = "DEMO"

// seedDemo creates the demo accounts that do not exist yet, each linked to
// a synthetic registry person; running it again changes nothing.
//
// The people come through a registry delivery, as in production: `sqin
// registry generate` writes it under DATA-DIR/demo-registry and `sqin
// registry import` loads it. A demo database made before the demo did so
// holds people inserted directly (identifiers "p_…", where an import
// makes "r_…" from source and reference): importing into it would give
// its demo citizens a twin each. So the delivery is imported only into a
// database whose registry is empty or already holds a demo delivery; an
// older one keeps being seeded the way it was made.
func (a *app) seedDemo(ctx context.Context) error {
	people, imported, err := a.db.RegistrySeeded(ctx, demoSource)
	if err != nil {
		return fmt.Errorf("demo registry: %w", err)
	}
	if people && !imported {
		return a.seedDemoDirect(ctx)
	}
	hash, err := a.hasher.Hash(demoPassword)
	if err != nil {
		return err
	}
	persons, err := a.importDemoPeople(ctx, a.cfg.DemoUsers)
	if err != nil {
		return fmt.Errorf("demo registry: %w", err)
	}
	now := time.Now().UTC()
	for i, p := range persons {
		acct := &sqin.Account{ID: fmt.Sprintf("acct-demo-%04d", i+1), Email: demoEmail(i + 1), EmailVerified: true,
			PasswordHash: hash, LoA: sqin.LoA2, PersonID: p.id, Locale: p.language, CreatedAt: now, UpdatedAt: now}
		if err := a.db.CreateAccount(ctx, acct); err != nil && !errors.Is(err, sqin.ErrConflict) {
			return fmt.Errorf("demo account: %w", err)
		}
	}
	return nil
}

// demoPerson is a registry person a demo account is linked to.
type demoPerson struct{ id, language string }

// demoBornBy: demo accounts go to people born on or before this date, 14
// years (SAG's minimum age) before the demo deliveries' extraction: always
// the same people, whenever and with whatever delivery the demo starts.
const demoBornBy = "2012-11-01"

// importDemoPeople generates and imports the demo delivery and returns its
// first n people born by demoBornBy.
//
// The delivery holds 2n+20 people rounded up to a power of two (64 at
// least) and its sequence number grows with that size: the demo started
// with more accounts imports a larger snapshot (the people already there
// are the same: generation is deterministic and a larger population
// begins with the smaller one), one started with fewer finds its people
// in the larger snapshot imported before.
func (a *app) importDemoPeople(ctx context.Context, n int) ([]demoPerson, error) {
	if n <= 0 {
		return nil, nil
	}
	count, seq := 64, int64(1)
	for count < 2*n+20 {
		count, seq = 2*count, seq+1
	}
	m, manifest, err := registry.GenerateDelivery(filepath.Join(a.cfg.DataDir, "demo-registry"), registry.DeliveryOptions{
		Seed: demoSeed, Count: count, Kind: registry.KindSnapshot, Source: demoSource, Sequence: seq})
	if err != nil {
		return nil, err
	}
	if _, err := registry.Import(ctx, a.db, manifest, registry.ImportOptions{Logger: a.log, MaxRejectRatio: -1}); err != nil &&
		!errors.Is(err, registry.ErrOutOfSequence) { // a larger snapshot is there already
		return nil, err
	}
	f, err := os.Open(filepath.Join(filepath.Dir(manifest), m.DataFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rd := registry.NewReader(f, m.Format)
	var out []demoPerson
	var rec registry.Record
	for len(out) < n {
		if err := rd.Next(&rec); err != nil {
			return nil, fmt.Errorf("the demo delivery holds fewer than %d people aged 14 or more: %w", n, err)
		}
		if rec.Fields[registry.FBirthDate] <= demoBornBy {
			out = append(out, demoPerson{registry.PersonID(demoSource, rec.Ref()), rec.Fields[registry.FLanguage]})
		}
	}
	return out, nil
}

// seedDemoDirect seeds a demo database made before the demo imported its
// people: persons inserted directly, as it was made.
func (a *app) seedDemoDirect(ctx context.Context) error {
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
