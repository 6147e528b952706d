package signup_test

import (
	"context"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/authn"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/signup"
	"github.com/sqin/sqin/internal/sqlstore"
	"github.com/sqin/sqin/internal/sqltest"
	"github.com/sqin/sqin/internal/web"
	assets "github.com/sqin/sqin/web"
)

func TestCheckPassword(t *testing.T) {
	tests := []struct {
		password, email, want string
	}{
		{"trois chats dorment au soleil", "marie@exemple.ca", ""},
		{"Vélo-rouge-sur-la-Côte-Nord", "marie@exemple.ca", ""},
		{"court", "marie@exemple.ca", signup.PwTooShort},
		{"onzecaracte", "marie@exemple.ca", signup.PwTooShort},
		{strings.Repeat("x", 129), "marie@exemple.ca", signup.PwTooLong},
		{"motdepasse123", "marie@exemple.ca", signup.PwCommon},
		{"Azertyuiop123", "marie@exemple.ca", signup.PwCommon},
		{"Motdepasse2026!!", "marie@exemple.ca", signup.PwService},
		{"Soleil-Soleil-2026", "marie@exemple.ca", signup.PwCommon},
		{"password1234", "marie@exemple.ca", signup.PwCommon},
		{"jean-francois.tremblay!", "jean-francois.tremblay@exemple.ca", signup.PwEmail},
		{"Québec2026!!!", "marie@exemple.ca", signup.PwService},
		{"sqin12345678", "marie@exemple.ca", signup.PwCommon},
		{"sqin-2026-2027", "marie@exemple.ca", signup.PwService},
		{"aaaaaaaaaaaaaaa", "marie@exemple.ca", signup.PwRepeated},
		{"abababababab", "marie@exemple.ca", signup.PwRepeated},
		{"cdefghijklmnop", "marie@exemple.ca", signup.PwSequences},
		{"3456789012345", "marie@exemple.ca", signup.PwSequences},
	}
	for _, tt := range tests {
		if got := signup.CheckPassword(tt.password, tt.email); got != tt.want {
			t.Errorf("CheckPassword(%q) = %q, want %q", tt.password, got, tt.want)
		}
	}
}

// clock is the handlers' time, moved by the test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type person struct{ Family, Given, Birth, NAM, Expiry string }

// world is a database with a synthetic registry.
type world struct {
	url    string
	people []person
	clock  *clock
	log    *slog.Logger // the handlers' log; nil discards it
}

func newWorld(t *testing.T, dbURL string) *world {
	t.Helper()
	ctx := context.Background()
	db := openDB(t, dbURL)
	m, manifest, err := registry.GenerateDelivery(t.TempDir(), registry.DeliveryOptions{Seed: 9, Count: 30, Kind: registry.KindSnapshot})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Import(ctx, db, manifest, registry.ImportOptions{}); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(filepath.Dir(manifest), m.DataFile))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w := &world{url: dbURL, clock: &clock{t: time.Now()}}
	rd := registry.NewReader(f, m.Format)
	for {
		var rec registry.Record
		if err := rd.Next(&rec); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if rec.Fields[registry.FBirthDate] < "2005-01-01" {
			w.people = append(w.people, person{rec.Fields[registry.FFamilyName], rec.Fields[registry.FGivenNames],
				rec.Fields[registry.FBirthDate], rec.Fields[registry.FNAM], rec.Fields[registry.FCardExpiry]})
		}
	}
	return w
}

func openDB(t *testing.T, dbURL string) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), dbURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

var (
	testKey = []byte("0123456789abcdef0123456789abcdef")
	mailKey = []byte("mail-code-key-for-tests-only-0123")
	// mailSealer seals the outbox's bodies, as sqin serve does.
	mailSealer, _ = keys.NewSealer([]byte("outbox-key-for-tests-only-012345"))
)

// provider is one server instance: its own connections, prover and
// handler over the world's database.
type provider struct {
	rd     *web.Renderer
	srv    *httptest.Server
	db     *sqlstore.DB
	sink   *signup.MemorySink
	worker *signup.Worker
}

func (w *world) provider(t *testing.T, cat *proofing.Catalogue, limits proofing.Limits, remote map[string]proofing.Verifier,
	mods ...func(*signup.Config)) *provider {
	t.Helper()
	db := openDB(t, w.url)
	if cat == nil {
		cat = proofing.DefaultCatalogue()
	}
	if remote == nil {
		remote = map[string]proofing.Verifier{}
		for _, s := range cat.Secrets {
			if s.Verify == proofing.VerifyRemote {
				remote[s.ID] = never{}
			}
		}
	}
	prover, err := proofing.NewProver(cat, testKey, limits, db, db, remote)
	if err != nil {
		t.Fatal(err)
	}
	wcat, err := web.LoadCatalog(assets.FS)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if w.log != nil {
		log = w.log
	}
	rd, err := web.NewRenderer(assets.FS, wcat, log)
	if err != nil {
		t.Fatal(err)
	}
	hasher, err := authn.NewHasher(authn.DemoArgon2)
	if err != nil {
		t.Fatal(err)
	}
	p := &provider{db: db, sink: &signup.MemorySink{}}
	p.worker = &signup.Worker{Store: db, Sender: p.sink, Sealer: mailSealer, From: "SQIN <no-reply@sqin.test>", Now: w.clock.Now}
	cfg := signup.Config{Issuer: "http://sqin.test", CSRFKey: testKey, IdentityKey: testKey, Catalogue: cat,
		Prover: prover, Hasher: hasher, Counter: db, Now: w.clock.Now, SignupsPerHour: 1000, MailCodeKey: mailKey,
		MailSealer: mailSealer, MinResponse: time.Millisecond}
	for _, m := range mods {
		m(&cfg)
	}
	p.rd = rd
	h, err := signup.New(cfg, db, rd, log)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	h.Routes(mux)
	p.srv = httptest.NewServer(mux)
	t.Cleanup(p.srv.Close)
	return p
}

// never is a holder that always answers "no match".
type never struct{}

func (never) Verify(context.Context, []string, map[string]string) (bool, error) { return false, nil }

type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

var hiddenRE = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)">`)

func (b *browser) do(method, u string, form url.Values) (int, string, http.Header) {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, _ := http.NewRequest(method, u, body)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	page, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, html.UnescapeString(string(page)), resp.Header
}

// post reads the form of the page at base+path and posts it with fields.
func (b *browser) post(base, path string, fields url.Values) (int, string, http.Header) {
	b.t.Helper()
	_, page, _ := b.do(http.MethodGet, base+path, nil)
	form := url.Values{}
	for _, m := range hiddenRE.FindAllStringSubmatch(page, -1) {
		form.Set(m[1], m[2])
	}
	for k, v := range fields {
		form[k] = v
	}
	return b.do(http.MethodPost, base+path, form)
}

const password = "trois chats dorment au soleil"

var codeRE = regexp.MustCompile(`: ([0-9]{6})\n`)

// register starts a registration on p and returns the code mailed.
func (b *browser) register(p *provider, email string) string {
	b.t.Helper()
	status, _, h := b.post(p.srv.URL, "/inscription", url.Values{"email": {email}, "password": {password},
		"password2": {password}, "terms": {"yes"}})
	if status != http.StatusSeeOther || h.Get("Location") != "/inscription/code" {
		b.t.Fatalf("register: %d %s", status, h.Get("Location"))
	}
	if _, err := p.worker.RunOnce(context.Background()); err != nil {
		b.t.Fatal(err)
	}
	for _, m := range p.sink.Sent() {
		if m.To == email && m.Kind == "code" {
			return codeRE.FindStringSubmatch(m.Body + "\n")[1]
		}
	}
	b.t.Fatalf("no code mailed to %s", email)
	return ""
}

func (b *browser) code(p *provider, code string) (int, string, http.Header) {
	return b.post(p.srv.URL, "/inscription/code", url.Values{"code": {code}})
}

// account registers and verifies an account on p.
func (b *browser) account(p *provider, email string) {
	b.t.Helper()
	if _, _, h := b.code(p, b.register(p, email)); h.Get("Location") != "/verification" {
		b.t.Fatalf("code: %s", h.Get("Location"))
	}
}

func (b *browser) prove(p *provider, who person, fields url.Values) (int, string) {
	b.t.Helper()
	f := url.Values{"family_name": {who.Family}, "given_names": {who.Given}, "birth_date": {who.Birth}}
	for k, v := range fields {
		f[k] = v
	}
	status, page, _ := b.post(p.srv.URL, "/verification", f)
	return status, page
}

func healthCard(who person) url.Values {
	return url.Values{"use-health-card": {"yes"}, "health-card.nam": {who.NAM}, "health-card.expiry": {who.Expiry}}
}

func databases(t *testing.T) map[string]func(testing.TB) string {
	return map[string]func(testing.TB) string{"sqlite": sqltest.SQLiteURL, "postgres": sqltest.PostgresURL}
}

// TestEmailCode: a wrong code says how many attempts are left; the sixth
// attempt ends the registration, even with the right code; a code past
// its 15 minutes is refused; a right code creates the account at level 1,
// once.
func TestEmailCode(t *testing.T) {
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			w := newWorld(t, newURL(t))
			p := w.provider(t, nil, proofing.Limits{}, nil)

			b := newBrowser(t)
			code := b.register(p, "essais@exemple.test")
			wrong := "000000"
			if code == wrong {
				wrong = "111111"
			}
			for i := 1; i <= 5; i++ {
				status, page, _ := b.code(p, wrong)
				if status != http.StatusBadRequest || !strings.Contains(page, "Ce code est incorrect. Il vous reste") {
					t.Fatalf("wrong code %d: %d", i, status)
				}
			}
			if status, page, _ := b.code(p, code); status != http.StatusTooManyRequests || !strings.Contains(page, "Trop de codes incorrects") {
				t.Fatalf("sixth attempt with the right code: %d", status)
			}
			if _, err := p.db.GetAccountByEmail(context.Background(), "essais@exemple.test"); !errors.Is(err, sqin.ErrNotFound) {
				t.Fatalf("an account after too many attempts: %v", err)
			}

			b = newBrowser(t)
			code = b.register(p, "lent@exemple.test")
			w.clock.add(16 * time.Minute)
			if status, page, _ := b.code(p, code); status != http.StatusBadRequest || !strings.Contains(page, "Ce code a expiré") {
				t.Fatalf("expired code: %d", status)
			}
			w.clock.add(-16 * time.Minute)

			b = newBrowser(t)
			code = b.register(p, "juste@exemple.test")
			if status, _, h := b.code(p, code); status != http.StatusSeeOther || h.Get("Location") != "/verification" {
				t.Fatalf("right code: %d %s", status, h.Get("Location"))
			}
			a, err := p.db.GetAccountByEmail(context.Background(), "juste@exemple.test")
			if err != nil || a.LoA != sqin.LoA1 || !a.EmailVerified || a.PersonID != "" {
				t.Fatalf("account %+v %v", a, err)
			}
			// The code is spent: the flow now leads to proofing only.
			if _, _, h := b.code(p, code); h.Get("Location") != "/verification" {
				t.Fatalf("code again: %s", h.Get("Location"))
			}
			if status, _, _ := newBrowser(t).do(http.MethodGet, p.srv.URL+"/verification", nil); status != http.StatusBadRequest {
				t.Fatalf("proofing without a registration: %d", status)
			}
			// Under 14, no proofing: the page says why.
			young := person{Family: "Côté", Given: "Léa", Birth: w.clock.Now().AddDate(-13, 0, 0).Format(time.DateOnly)}
			if status, page := b.prove(p, young, healthCard(young)); status != http.StatusBadRequest || !strings.Contains(page, "à partir de 14 ans") {
				t.Fatalf("a 13-year-old: %d", status)
			}
		})
	}
}

// TestRegisterErrors: refused forms list their errors in a summary that
// links to each field, with the field described by its error.
func TestRegisterErrors(t *testing.T) {
	w := newWorld(t, sqltest.SQLiteURL(t))
	p := w.provider(t, nil, proofing.Limits{}, nil)
	b := newBrowser(t)
	status, page, _ := b.post(p.srv.URL, "/inscription", url.Values{"email": {"pas-une-adresse"}, "password": {"motdepasse123"},
		"password2": {"motdepasse123"}})
	if status != http.StatusBadRequest {
		t.Fatalf("status %d", status)
	}
	for _, want := range []string{`<a href="#email">`, `<a href="#password">`, `<a href="#terms">`, `aria-describedby="password-hint password-error"`,
		"fait partie des plus utilisés", `aria-invalid="true"`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	// Without the form token nothing happens.
	status, _, _ = b.do(http.MethodPost, p.srv.URL+"/inscription", url.Values{"email": {"a@exemple.test"},
		"password": {password}, "password2": {password}, "terms": {"yes"}})
	if status != http.StatusForbidden {
		t.Fatalf("no CSRF token: %d", status)
	}
}

// TestBruteForceAcrossProviders: the per-person limit holds across two
// server instances on one PostgreSQL: attempts on a claimed identity from
// two accounts on two instances add up, and the N+1th is refused even
// with the right values, saying when to retry.
func TestBruteForceAcrossProviders(t *testing.T) {
	w := newWorld(t, sqltest.PostgresURL(t))
	limits := proofing.Limits{PerPerson: 3, MinDuration: time.Millisecond}
	p1 := w.provider(t, nil, limits, nil)
	p2 := w.provider(t, nil, limits, nil)
	victim := w.people[0]
	wrong := victim
	wrong.Expiry = "2099-01"
	a, b := newBrowser(t), newBrowser(t)
	a.account(p1, "a@exemple.test")
	b.account(p2, "b@exemple.test")
	for i, step := range []struct {
		br *browser
		p  *provider
	}{{a, p1}, {b, p2}, {a, p1}} {
		status, page := step.br.prove(step.p, victim, healthCard(wrong))
		if status != http.StatusOK || !strings.Contains(page, "ne correspond pas") {
			t.Fatalf("attempt %d: %d", i+1, status)
		}
	}
	status, page := b.prove(p2, victim, healthCard(victim))
	if status != http.StatusTooManyRequests || !strings.Contains(page, "Trop d'essais de vérification") || !strings.Contains(page, "Réessayez après le") {
		t.Fatalf("fourth attempt: %d %s", status, page)
	}
	// Another identity is not locked.
	if status, page := b.prove(p2, w.people[1], healthCard(w.people[1])); status != http.StatusOK || !strings.Contains(page, "Preuves confirmées : 1 sur 2") {
		t.Fatalf("another person: %d", status)
	}
}

// TestNewSecretType: a secret type added to the catalogue (the postal code
// of the registry address, checked against the registry) appears on the
// page with its labels and, with the health card, reaches level 2.
func TestNewSecretType(t *testing.T) {
	w := newWorld(t, sqltest.SQLiteURL(t))
	cat := proofing.DefaultCatalogue()
	const extra = `{"secrets": [{"id": "postal-code", "holder": "RAMQ",
		"label": {"fr": "Code postal de votre adresse", "en": "Postal code of your address"},
		"help": {"fr": "Le code postal où la RAMQ vous écrit.", "en": "The postal code where RAMQ writes to you."},
		"fields": [{"name": "code", "label": {"fr": "Code postal", "en": "Postal code"}, "hint": {"fr": "Par exemple H2X 1Y4", "en": "For example H2X 1Y4"},
		  "pattern": "^[A-Z][0-9][A-Z][0-9][A-Z][0-9]$", "normalize": "upper-alnum", "attribute": "address_postal_code"}],
		"match": ["address_postal_code"], "verify": "local"}],
		"ladder": [{"level": 2, "min": 1, "from": ["postal-code"]}]}`
	more, err := proofing.ParseCatalogue(strings.NewReader(extra), nil)
	if err != nil {
		t.Fatal(err)
	}
	cat.Secrets = append(cat.Secrets, more.Secrets...)
	cat.Ladder = []proofing.Rule{{Level: sqin.LoA2, Min: 2, OneOf: []string{"health-card"}}}
	p := w.provider(t, cat, proofing.Limits{MinDuration: time.Millisecond}, nil)
	b := newBrowser(t)
	b.account(p, "postal@exemple.test")
	_, page, _ := b.do(http.MethodGet, p.srv.URL+"/verification", nil)
	for _, want := range []string{"Code postal de votre adresse", "Le code postal où la RAMQ vous écrit.", `name="postal-code.code"`, "Par exemple H2X 1Y4"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	who := w.people[2]
	e, err := p.db.FindPersonByNameAndBirthDate(context.Background(), who.Family, who.Given, who.Birth)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := p.db.GetRegistryEntry(context.Background(), e)
	if err != nil {
		t.Fatal(err)
	}
	pc, _ := entry.Attribute("address_postal_code")
	f := healthCard(who)
	f.Set("use-postal-code", "yes")
	f.Set("postal-code.code", strings.ToLower(pc.Value))
	if status, page := b.prove(p, who, f); status != http.StatusOK || !strings.Contains(page, "Vérification de votre identité terminée") {
		t.Fatalf("proofing with the new secret: %d %s", status, page)
	}
}

// failing fails its first n sends.
type failing struct {
	mu   sync.Mutex
	n    int
	sent []*signup.Mail
}

func (f *failing) Send(_ context.Context, _ string, m *signup.Mail) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.n > 0 {
		f.n--
		return errors.New("relay down")
	}
	f.sent = append(f.sent, m)
	return nil
}

// TestOutboxRetries: a mail the relay refuses is retried after the
// backoff, delivered once, and its body is then forgotten.
func TestOutboxRetries(t *testing.T) {
	for name, newURL := range databases(t) {
		t.Run(name, func(t *testing.T) {
			db := openDB(t, newURL(t))
			c := &clock{t: time.Now()}
			f := &failing{n: 2}
			wk := &signup.Worker{Store: db, Sender: f, From: "no-reply@sqin.test", Now: c.Now}
			other := &signup.Worker{Store: db, Sender: f, From: "no-reply@sqin.test", Now: c.Now}
			ctx := context.Background()
			if err := db.QueueMail(ctx, &signup.Mail{ID: "m1", To: "x@exemple.test", Subject: "s", Body: "code: 123456", Kind: "code", CreatedAt: c.Now()}); err != nil {
				t.Fatal(err)
			}
			if n, err := wk.RunOnce(ctx); n != 0 || err != nil {
				t.Fatalf("first attempt: %d %v", n, err)
			}
			if n, _ := other.RunOnce(ctx); n != 0 {
				t.Fatal("retried before the backoff")
			}
			c.add(signup.Backoff(1))
			if n, _ := other.RunOnce(ctx); n != 0 {
				t.Fatal("the second attempt should fail too")
			}
			c.add(signup.Backoff(2))
			if n, err := wk.RunOnce(ctx); n != 1 || err != nil {
				t.Fatalf("third attempt: %d %v", n, err)
			}
			c.add(time.Hour)
			if n, _ := wk.RunOnce(ctx); n != 0 || len(f.sent) != 1 {
				t.Fatalf("sent again: %d", len(f.sent))
			}
			ms, err := db.ClaimMails(ctx, c.Now().Add(48*time.Hour), time.Minute, 10)
			if err != nil || len(ms) != 0 {
				t.Fatalf("a sent mail is due again: %v %v", ms, err)
			}
		})
	}
}

// down is a holder whose verification service cannot answer.
type down struct{}

func (down) Verify(context.Context, []string, map[string]string) (bool, error) {
	return false, proofing.ErrUnavailable
}

// TestHolderUnavailable: when a holder cannot answer, the page says so and
// offers another proof; the proofs that did answer still count, and the
// citizen reaches level 2 with another secret.
func TestHolderUnavailable(t *testing.T) {
	w := newWorld(t, sqltest.SQLiteURL(t))
	cat := proofing.DefaultCatalogue()
	p := w.provider(t, cat, proofing.Limits{MinDuration: time.Millisecond},
		map[string]proofing.Verifier{"sin": down{}, "notice-of-assessment": matchAll{}})
	b := newBrowser(t)
	b.account(p, "panne@exemple.test")
	who := w.people[3]
	f := healthCard(who)
	f.Set("use-sin", "yes")
	f.Set("sin.sin", "046454286")
	status, page := b.prove(p, who, f)
	if status != http.StatusOK || !strings.Contains(page, "Le service de vérification de Revenu Québec ne répond pas pour le moment. Choisissez une autre preuve") ||
		!strings.Contains(page, "Preuves confirmées : 1 sur 2") {
		t.Fatalf("holder down: %d %s", status, page)
	}
	f = url.Values{"use-notice-of-assessment": {"yes"}, "notice-of-assessment.reference": {"AB12CD34EF"}}
	if status, page := b.prove(p, who, f); status != http.StatusOK || !strings.Contains(page, "Vérification de votre identité terminée") {
		t.Fatalf("another proof: %d %s", status, page)
	}
}

// matchAll is a holder that confirms every value.
type matchAll struct{}

func (matchAll) Verify(context.Context, []string, map[string]string) (bool, error) { return true, nil }
