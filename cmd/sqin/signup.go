package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/csv"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/oidc"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/signup"
	"github.com/sqin/sqin/internal/web"
)

// setupSignup builds account creation and proofing (internal/signup): the
// catalogue (--proofing-catalogue or the built-in one), a verifier per
// remote secret (the holder's API; in the demo a built-in holder that
// answers offline), the prover with its key derived from the master key,
// and the outbox sender (--smtp-addr; in the demo, files under
// DATA-DIR/mail). Outside the demo without --smtp-addr there is no
// account creation: nothing could deliver the codes.
func (a *app) setupSignup(rd *web.Renderer, pseudonyms *audit.Pseudonymizer) error {
	var sender signup.Sender
	switch {
	case a.cfg.SMTPAddr != "":
		sender = signup.SMTPSender{Addr: a.cfg.SMTPAddr}
	case a.cfg.Demo:
		sender = signup.DirSink{Dir: filepath.Join(a.cfg.DataDir, "mail"), Log: a.log}
	default:
		a.log.Info("account creation disabled: no --smtp-addr to send the email codes")
		return nil
	}
	cat := proofing.DefaultCatalogue()
	if a.cfg.ProofingCatalogue != "" {
		f, err := os.Open(a.cfg.ProofingCatalogue)
		if err != nil {
			return fmt.Errorf("proofing catalogue: %w", err)
		}
		cat, err = proofing.ParseCatalogue(f, func(name string) bool { _, ok := registry.AttributeByName(name); return ok })
		f.Close()
		if err != nil {
			return fmt.Errorf("%s: %w", a.cfg.ProofingCatalogue, err)
		}
	}
	a.catalogue = cat
	remote := map[string]proofing.Verifier{}
	for i := range cat.Secrets {
		s := &cat.Secrets[i]
		if s.Verify != proofing.VerifyRemote {
			continue
		}
		if a.cfg.Demo && strings.HasSuffix(hostOf(s.Remote.URL), ".example") {
			// The demo has no holder to ask: a built-in one answers.
			remote[s.ID] = demoHolder{key: derive(a.master, "demo-holder"), secret: s.ID}
			continue
		}
		token := ""
		if s.Remote.TokenFile != "" {
			b, err := os.ReadFile(s.Remote.TokenFile)
			if err != nil {
				return fmt.Errorf("proofing: token of %s: %w", s.ID, err)
			}
			token = strings.TrimSpace(string(b))
		}
		v, err := proofing.NewRemoteVerifier(s, token, nil, nil)
		if err != nil {
			return err
		}
		remote[s.ID] = v
	}
	prover, err := proofing.NewProver(cat, proofingSecretKey(a.master), proofing.Limits{}, a.db, a.db, remote)
	if err != nil {
		return err
	}
	// Queued mail bodies (codes, reset links) are sealed at rest.
	mailSealer, err := keys.NewSealer(derive(a.master, "mail-outbox"))
	if err != nil {
		return err
	}
	a.mailer = &signup.Worker{Store: a.db, Sender: sender, Sealer: mailSealer, From: a.cfg.MailFrom, Log: a.log}
	a.signup, err = signup.New(signup.Config{
		Issuer: a.cfg.Issuer, CSRFKey: derive(a.master, "signup-csrf"), IdentityKey: derive(a.master, "proofing-identity"),
		Catalogue: cat, Prover: prover, Hasher: a.hasher, Counter: a.db, Pseudonyms: pseudonyms, Batcher: a.batcher,
		Mailer: a.mailer, Sessions: providerSessions{a.op}, MailCodeKey: mailCodeKey(a.master), MailCodeTTL: a.cfg.MailCodeTTL,
		MailSealer: mailSealer, LettersPerDay: a.cfg.LettersPerDay,
	}, a.db, rd, a.log)
	return err
}

// mailCodeKey keys the hashes of codes sent by letter: sqin serve checks
// them, sqin letters export makes them.
func mailCodeKey(master []byte) []byte { return derive(master, "mail-code") }

// providerSessions gives account creation the provider's sessions.
type providerSessions struct{ op *oidc.Provider }

func (p providerSessions) SignIn(w http.ResponseWriter, r *http.Request, accountID string, amr []string, authTime time.Time,
	authRequest string) (string, error) {
	return p.op.SignIn(w, r, accountID, amr, authTime, authRequest)
}

func (p providerSessions) SessionAccount(r *http.Request) (string, string) {
	return p.op.SessionAccount(r)
}

func (p providerSessions) EndSession(ctx context.Context, sessionID string) error {
	_, err := p.op.EndSession(ctx, sessionID)
	return err
}

func (p providerSessions) ForgetFailedSignIns(ctx context.Context, email string) error {
	return p.op.ForgetFailedSignIns(ctx, email)
}

// runMailer delivers the outbox until ctx ends.
func (a *app) runMailer(ctx context.Context) {
	if a.mailer != nil {
		a.mailer.Run(ctx)
	}
}

func hostOf(u string) string {
	_, rest, _ := strings.Cut(u, "://")
	host, _, _ := strings.Cut(rest, "/")
	return host
}

// demoHolder stands in, in the demo only, for a holder body's verification
// API: the "right" value of a remote secret for a person is derived from
// the person's names and birth date (demoSecret), so the demo works
// offline and the values it prints always match. It is never used outside
// --demo.
type demoHolder struct {
	key    []byte
	secret string
}

// Verify answers match when the value is the person's demo value.
func (d demoHolder) Verify(_ context.Context, values []string, person map[string]string) (bool, error) {
	want := demoSecret(d.key, d.secret, person)
	return len(values) == 1 && hmac.Equal([]byte(values[0]), []byte(want)), nil
}

// demoSecret is the demo value of a remote secret for a person: for the
// SIN, 9 digits starting with 0 (never issued) with a valid Luhn digit;
// for other secrets, 10 digits.
func demoSecret(key []byte, secret string, person map[string]string) string {
	m := hmac.New(sha256.New, key)
	for _, k := range []string{secret, person["family_name"], person["given_names"], person["birth_date"]} {
		m.Write([]byte(k + "\x00"))
	}
	n := binary.BigEndian.Uint64(m.Sum(nil))
	if secret == "sin" {
		body := fmt.Sprintf("0%07d", n%10_000_000)
		return body + luhnDigit(body)
	}
	return fmt.Sprintf("%010d", n%10_000_000_000)
}

func luhnDigit(s string) string {
	sum := 0
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if (len(s)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return fmt.Sprint((10 - sum%10) % 10)
}

// demoSignupSource is the source of the registry people the demo keeps
// without an account, for trying account creation and proofing.
const demoSignupSource = "DEMO-SIGNUP"

// demoIdentity is what the demo prints for one of those people: Licence
// is empty for those who hold none.
type demoIdentity struct{ Family, Given, Birth, NAM, Expiry, SIN, Licence string }

// demoLicenceSource is the (synthetic) holder of the demo's driver's
// licence numbers.
const demoLicenceSource = "SAAQ-DEMO"

// seedSignupDemo imports (once) a small synthetic delivery of people with
// health cards and no account, and returns the first few with their demo
// SIN (what the demo holder accepts). The values are fictitious: health
// numbers in the synthetic range, SINs starting with 0.
func (a *app) seedSignupDemo(ctx context.Context, n int) ([]demoIdentity, error) {
	if a.signup == nil {
		return nil, nil
	}
	dir := filepath.Join(a.cfg.DataDir, "signup-registry")
	m, manifest, err := registry.GenerateDelivery(dir, registry.DeliveryOptions{Seed: demoSeed + 7, Count: 20,
		Kind: registry.KindSnapshot, Source: demoSignupSource})
	if err != nil {
		return nil, fmt.Errorf("demo sign-up people: %w", err)
	}
	if _, err := registry.Import(ctx, a.db, manifest, registry.ImportOptions{Logger: a.log}); err != nil {
		return nil, fmt.Errorf("demo sign-up people: %w", err)
	}
	licences, err := a.seedDemoLicences(ctx, registry.DeliveryOptions{Seed: demoSeed + 7, Count: 20,
		Kind: proofing.DeliverySnapshot, Source: demoLicenceSource})
	if err != nil {
		return nil, fmt.Errorf("demo driver's licences: %w", err)
	}
	f, err := os.Open(filepath.Join(dir, m.DataFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rd := registry.NewReader(f, m.Format)
	key := derive(a.master, "demo-holder")
	adult := time.Now().AddDate(-18, 0, 0).Format(time.DateOnly)
	var out []demoIdentity
	for len(out) < n {
		var rec registry.Record
		if err := rd.Next(&rec); err != nil {
			break
		}
		if rec.Fields[registry.FBirthDate] > adult {
			continue
		}
		id := demoIdentity{Family: rec.Fields[registry.FFamilyName], Given: rec.Fields[registry.FGivenNames],
			Birth: rec.Fields[registry.FBirthDate], NAM: registry.FormatHealthNumber(rec.Fields[registry.FNAM]),
			Expiry: rec.Fields[registry.FCardExpiry]}
		id.SIN = demoSecret(key, "sin", map[string]string{"family_name": id.Family, "given_names": id.Given, "birth_date": id.Birth})
		id.Licence = licences[rec.Fields[registry.FNAM]]
		out = append(out, id)
	}
	return out, nil
}

// seedDemoLicences imports (once) a synthetic delivery of driver's licence
// numbers for the people of o, as the holder body would deliver them, and
// returns each holder's number by health number. Nothing is imported when
// the catalogue has no locally verified driving-licence secret.
func (a *app) seedDemoLicences(ctx context.Context, o registry.DeliveryOptions) (map[string]string, error) {
	if s, ok := a.catalogue.Secret(proofing.SyntheticSecretType); !ok || s.Verify != proofing.VerifyLocal {
		return nil, nil
	}
	dir := filepath.Join(a.cfg.DataDir, "signup-licences")
	m, manifest, err := proofing.GenerateSecretDelivery(dir, o)
	if err != nil {
		return nil, err
	}
	if _, err := proofing.ImportSecrets(ctx, a.db, a.catalogue, manifest, proofing.ImportOptions{
		Key: proofingSecretKey(a.master), Logger: a.log}); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(dir, m.DataFile))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rows, err := csv.NewReader(f).ReadAll()
	if err != nil || len(rows) == 0 || len(rows[0]) < 3 || rows[0][1] != proofing.MatchNAM {
		return nil, fmt.Errorf("%s: not the CSV the generator writes (%v)", m.DataFile, err)
	}
	out := make(map[string]string, len(rows))
	for _, r := range rows[1:] {
		if len(r) >= 3 && r[0] == proofing.OpSet {
			out[r[1]] = r[2]
		}
	}
	return out, nil
}

// printSignupDemo tells a newcomer how to try account creation.
func (a *app) printSignupDemo(w io.Writer, ids []demoIdentity) {
	if a.signup == nil {
		return
	}
	mailTo := filepath.Join(a.cfg.DataDir, "mail") + "/*.eml  (demo mail sink: nothing is sent)"
	if a.cfg.SMTPAddr != "" {
		mailTo = "SMTP relay " + a.cfg.SMTPAddr
	}
	fmt.Fprintf(w, `Account creation and identity proofing (DEMO — fictitious people)
  create an account        %s/inscription   (or « Créer un compte » on the sign-in page)
  email codes go to        %s
  the SIN and notice-of-assessment checks are answered by a built-in DEMO holder (offline)
  registry people without an account (health card + SIN reach level 2):
`, a.cfg.Issuer, mailTo)
	for _, id := range ids {
		fmt.Fprintf(w, "    %s, %s  born %s  health card %s exp. %s  SIN %s %s %s\n", id.Family, id.Given, id.Birth,
			id.NAM, id.Expiry, id.SIN[:3], id.SIN[3:6], id.SIN[6:])
		if l := id.Licence; len(l) == 13 {
			fmt.Fprintf(w, "      or health card + driver's licence %s %s %s (delivered by a synthetic holder, checked locally)\n",
				l[:5], l[5:11], l[11:])
		}
	}
	fmt.Fprintln(w)
}
