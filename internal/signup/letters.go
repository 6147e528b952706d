package signup

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/web"
)

// Codes by mail: a citizen without the shared secrets (or without enough
// of them) asks for a letter (/verification/courrier/demande); `sqin
// letters export` prints it with a one-time code to the address the
// registry holds; the citizen, signed in, enters the code
// (/verification/courrier), which is the proof proofing.ProofMailCode.

// Audit actions of codes by mail (none carries the code).
const (
	ActionLetterRequested = "proofing.letter.requested"
	ActionLetterPrinted   = "proofing.letter.printed"
	ActionLetterEntered   = "proofing.letter.entered"
)

// letterWindow is the window of the per-account and per-identity limits
// on letter requests.
const letterWindow = 30 * 24 * time.Hour

type letterData struct {
	form
	Family, Given, Birth string
	Consent              bool
	Days                 int    // life of a printed code, in days
	SignIn               bool   // nobody signed in: the page says to sign in first
	Requested            string // date of the letter on its way, "" for none
	Printed              string // date it was printed, "" when not yet
	Done                 bool
}

// ---- /verification/courrier/demande

func (h *Handler) handleLetterRequest(w http.ResponseWriter, r *http.Request) {
	lang := h.lang(w, r)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	acct, _, err := h.current(r)
	if err != nil {
		h.internal(w, r, lang, "signup: current account", err)
		return
	}
	d := letterData{Days: h.days()}
	if acct == nil {
		d.SignIn = true
		h.render(w, r, lang, http.StatusOK, "signup_letter_request", "letter.request.title", d)
		return
	}
	if acct.LoA >= sqin.LoA2 {
		http.Redirect(w, r, "/verification", http.StatusSeeOther)
		return
	}
	if r.Method == http.MethodGet {
		h.render(w, r, lang, http.StatusOK, "signup_letter_request", "letter.request.title", d)
		return
	}
	if err := r.ParseForm(); err != nil || !h.csrf.Valid(r) {
		d.Alert = h.t(lang, "error.csrf")
		h.render(w, r, lang, http.StatusForbidden, "signup_letter_request", "letter.request.title", d)
		return
	}
	h.postLetterRequest(w, r, lang, acct, d)
}

func (h *Handler) days() int { return int(h.cfg.MailCodeTTL / (24 * time.Hour)) }

func (h *Handler) postLetterRequest(w http.ResponseWriter, r *http.Request, lang string, acct *sqin.Account, d letterData) {
	ctx := r.Context()
	d.Family, d.Given, d.Birth = r.PostForm.Get("family_name"), r.PostForm.Get("given_names"), r.PostForm.Get("birth_date")
	d.Consent = r.PostForm.Get("consent") == "yes"
	family, given, birth := h.checkIdentity(lang, &d.Errors, d.Family, d.Given, d.Birth)
	if !d.Consent {
		d.Errors = append(d.Errors, FieldError{"consent", h.t(lang, "letter.error.consent")})
	}
	if len(d.Errors) > 0 {
		h.render(w, r, lang, http.StatusBadRequest, "signup_letter_request", "letter.request.title", d)
		return
	}
	// Counted before anything is looked up, whether the person exists or
	// not: the limit tells nothing either.
	now := h.cfg.Now().UTC()
	identity := IdentityKey(h.cfg.IdentityKey, family, given, birth)
	for _, l := range []struct {
		key    string
		window time.Duration
		limit  int
	}{
		{"letter:account:" + acct.ID, letterWindow, h.cfg.LettersPer30Days},
		{"letter:identity:" + identity, letterWindow, h.cfg.LettersPer30Days},
		{"letter:addr:" + remoteAddr(r), 24 * time.Hour, h.cfg.SignupsPerHour},
	} {
		n, err := h.cfg.Counter.Hit(ctx, l.key, l.window, now)
		if err != nil {
			h.internal(w, r, lang, "signup: letter limit", err)
			return
		}
		if n > l.limit {
			w.Header().Set("Retry-After", strconv.Itoa(int(l.window.Seconds())))
			d.Alert = h.t(lang, "letter.error.throttled", h.when(lang, l.window))
			h.render(w, r, lang, http.StatusTooManyRequests, "signup_letter_request", "letter.request.title", d)
			return
		}
	}
	defer pad(ctx, time.Now(), h.cfg.MinResponse)
	outcome, err := h.requestLetter(ctx, acct, lang, family, given, birth)
	if err != nil {
		h.internal(w, r, lang, "signup: letter request", err)
		return
	}
	h.log.InfoContext(ctx, "letter requested", "request_id", web.RequestID(ctx), "outcome", outcome)
	h.render(w, r, lang, http.StatusOK, "signup_letter_sent", "letter.sent.title", d)
}

// requestLetter queues a letter to the person the identity designates,
// unless the registry knows no such person (or no address for it), or the
// person has another account, whose owner is then told by mail. The audit
// event records which; the page is the same.
func (h *Handler) requestLetter(ctx context.Context, acct *sqin.Account, lang, family, given, birth string) (string, error) {
	personID, attrs, err := h.person(ctx, family, given, birth)
	if err != nil {
		return "", err
	}
	now := h.cfg.Now().UTC()
	record := func(outcome, detail string) error {
		return h.appendEvent(ctx, h.event(ctx, acct.ID, ActionLetterRequested, outcome, detail, "consent:proofing:"+proofing.ProofMailCode))
	}
	switch {
	case personID == "":
		return audit.Failure, record(audit.Failure, "no such person in the registry: no letter")
	case attrs["address_street"] == "" || attrs["address_municipality"] == "" || attrs["address_postal_code"] == "":
		return audit.Failure, record(audit.Failure, "the registry holds no postal address: no letter")
	case acct.PersonID != "" && acct.PersonID != personID:
		return audit.Denied, record(audit.Denied, "the account is linked to another person: no letter")
	}
	other, err := h.st.PersonAccount(ctx, personID, acct.ID)
	switch {
	case err == nil:
		// The person has an account: its owner is told (and offered
		// recovery) instead of a letter to their home.
		m := h.newMail(other.Email, "letter_taken", cmpLang(other.Locale, lang), "mail.letter_taken.subject",
			"mail.letter_taken.body", h.cfg.Issuer+"/login", h.cfg.Issuer+"/mot-de-passe-oublie")
		wctx := h.withAudit(ctx, acct.ID, ActionLetterRequested, audit.Denied,
			"the registry person already has an account: no letter; its owner was told", "consent:proofing:"+proofing.ProofMailCode)
		if _, err := h.st.QueueLetter(wctx, nil, m); err != nil {
			return "", err
		}
		if h.cfg.Mailer != nil {
			h.cfg.Mailer.Wake()
		}
		return audit.Denied, nil
	case !errors.Is(err, sqin.ErrNotFound):
		return "", err
	}
	l := &Letter{ID: "ltr-" + keys.Random(16), AccountID: acct.ID, PersonID: personID, Locale: lang, RequestedAt: now}
	wctx := h.withAudit(ctx, acct.ID, ActionLetterRequested, audit.Success, "letter "+l.ID+" queued for printing",
		"consent:proofing:"+proofing.ProofMailCode)
	stored, err := h.st.QueueLetter(wctx, l)
	if err != nil {
		return "", err
	}
	if !stored {
		// A letter is already waiting for the print shop: one is enough.
		return audit.Success, record(audit.Success, "a letter is already queued: no second one")
	}
	return audit.Success, nil
}

// ---- /verification/courrier

func (h *Handler) handleLetterCode(w http.ResponseWriter, r *http.Request) {
	lang := h.lang(w, r)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	acct, f, err := h.current(r)
	if err != nil {
		h.internal(w, r, lang, "signup: current account", err)
		return
	}
	d := letterData{Days: h.days()}
	if acct == nil {
		d.SignIn = true
		h.render(w, r, lang, http.StatusOK, "signup_letter_code", "letter.code.title", d)
		return
	}
	if acct.LoA >= sqin.LoA2 {
		http.Redirect(w, r, "/verification", http.StatusSeeOther)
		return
	}
	ls, err := h.st.PendingLetters(r.Context(), acct.ID, h.cfg.Now())
	if err != nil {
		h.internal(w, r, lang, "signup: pending letters", err)
		return
	}
	var printed []*Letter
	for _, l := range ls {
		if d.Requested == "" {
			d.Requested = h.date(lang, l.RequestedAt)
		}
		if !l.ExportedAt.IsZero() {
			printed = append(printed, l)
			d.Printed = h.date(lang, l.ExportedAt)
		}
	}
	if r.Method == http.MethodGet {
		h.render(w, r, lang, http.StatusOK, "signup_letter_code", "letter.code.title", d)
		return
	}
	if err := r.ParseForm(); err != nil || !h.csrf.Valid(r) {
		d.Alert = h.t(lang, "error.csrf")
		h.render(w, r, lang, http.StatusForbidden, "signup_letter_code", "letter.code.title", d)
		return
	}
	ctx := r.Context()
	code, ok := proofing.NormalizeMailCode(r.PostForm.Get("code"))
	if !ok {
		d.Errors = []FieldError{{"code", h.t(lang, "letter.code.error.format", proofing.MailCodeLen)}}
		h.render(w, r, lang, http.StatusBadRequest, "signup_letter_code", "letter.code.title", d)
		return
	}
	now := h.cfg.Now().UTC()
	limits := h.cfg.Prover.Limits()
	for _, l := range []struct {
		key   string
		limit int
	}{{"mailcode:account:" + acct.ID, limits.PerAccount}, {"mailcode:addr:" + remoteAddr(r), limits.PerAddress}} {
		n, err := h.cfg.Counter.Hit(ctx, l.key, limits.Window, now)
		if err != nil {
			h.internal(w, r, lang, "signup: mail code limit", err)
			return
		}
		if n > l.limit {
			w.Header().Set("Retry-After", strconv.Itoa(int(limits.Window.Seconds())))
			d.Errors = []FieldError{{"code", h.t(lang, "proofing.outcome.locked", h.when(lang, limits.Window))}}
			h.render(w, r, lang, http.StatusTooManyRequests, "signup_letter_code", "letter.code.title", d)
			return
		}
	}
	var match *Letter
	for _, l := range printed {
		// Every printed letter is compared, in constant time.
		if subtle.ConstantTimeCompare([]byte(proofing.MailCodeHash(h.cfg.MailCodeKey, l.ID, code)), []byte(l.CodeHash)) == 1 {
			match = l
		}
	}
	if match == nil {
		voided := false
		for i, l := range printed {
			wctx := ctx
			if i == 0 {
				wctx = h.withAudit(ctx, acct.ID, ActionLetterEntered, audit.Failure, "wrong code", "")
			}
			n, err := h.st.LetterAttempt(wctx, l.ID, h.cfg.MaxLetterAttempts, now)
			if err != nil && !errors.Is(err, sqin.ErrNotFound) {
				h.internal(w, r, lang, "signup: letter attempt", err)
				return
			}
			voided = voided || n >= h.cfg.MaxLetterAttempts
		}
		if len(printed) == 0 {
			if err := h.appendEvent(ctx, h.event(ctx, acct.ID, ActionLetterEntered, audit.Failure, "a code but no printed letter", "")); err != nil {
				h.internal(w, r, lang, "signup: audit", err)
				return
			}
		}
		msg := h.t(lang, "letter.code.error.wrong")
		if voided {
			msg = h.t(lang, "letter.code.error.voided")
		}
		d.Errors = []FieldError{{"code", msg}}
		h.render(w, r, lang, http.StatusBadRequest, "signup_letter_code", "letter.code.title", d)
		return
	}
	used := h.withAudit(ctx, acct.ID, ActionLetterEntered, audit.Success, "letter "+match.ID+" code entered",
		"consent:proofing:"+proofing.ProofMailCode)
	proofs, err := h.st.UseLetter(used, match.ID, proofing.ProofMailCode, now)
	if errors.Is(err, sqin.ErrNotFound) {
		// Spent or voided by a concurrent request.
		d.Errors = []FieldError{{"code", h.t(lang, "letter.code.error.wrong")}}
		h.render(w, r, lang, http.StatusBadRequest, "signup_letter_code", "letter.code.title", d)
		return
	}
	if err != nil {
		h.internal(w, r, lang, "signup: use letter", err)
		return
	}
	level := h.cfg.Catalogue.Level(proofs)
	if level < sqin.LoA2 {
		// A ladder where the mail code alone is not enough: back to the
		// secrets, with the proof counted.
		http.Redirect(w, r, "/verification", http.StatusSeeOther)
		return
	}
	h.finishProofing(w, r, lang, f, acct, match.PersonID, level, proofing.ProofMailCode)
}

// date is t as a date in lang, Québec time.
func (h *Handler) date(lang string, t time.Time) string { return dateIn(lang, t.In(quebec())) }
