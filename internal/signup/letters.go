package signup

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
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
	// ActionLetterDecided records, about the registry person a request
	// designates (its subject is the person, never the requester), what
	// came of the request: queued, no address, or the person's owner told.
	// The requester's own event (ActionLetterRequested) is the same in
	// every case; a request for an identity the registry does not know
	// has no decided event.
	ActionLetterDecided = "proofing.letter.decided"
)

// letterReceived is the detail of the requester's event, whatever came of
// the request.
const letterReceived = "letter request received"

// letterWindow is the window of the per-account and per-identity limits
// on letter requests.
const letterWindow = 30 * 24 * time.Hour

type letterData struct {
	form
	Family, Given, Birth string
	Consent              bool
	Days                 int  // life of a printed code, in days
	MaxAttempts          int  // wrong codes that void a letter
	SignIn               bool // nobody signed in: the page says to sign in first
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
	// From here the work depends on whether the person exists: every
	// answer, a refusal by a limit included, takes the same time.
	defer pad(ctx, time.Now(), h.cfg.MinResponse)
	now := h.cfg.Now().UTC()
	personID, attrs, err := h.person(ctx, family, given, birth)
	if err != nil {
		h.internal(w, r, lang, "signup: letter request", err)
		return
	}
	// Counted whether the person exists or not (the per-person limit under
	// the person's key when it does: every spelling of the name counts
	// once); the global cap last, so that a request another limit refuses
	// does not use it up.
	for _, l := range []struct {
		key    string
		window time.Duration
		limit  int
	}{
		{"letter:account:" + acct.ID, letterWindow, h.cfg.LettersPer30Days},
		{"letter:identity:" + h.limitKey(personID, family, given, birth), letterWindow, h.cfg.LettersPer30Days},
		{"letter:addr:" + remoteAddr(r), 24 * time.Hour, h.cfg.SignupsPerHour},
		{letterGlobalKey, 24 * time.Hour, h.cfg.LettersPerDay},
	} {
		n, err := h.cfg.Counter.Hit(ctx, l.key, l.window, now)
		if err != nil {
			h.internal(w, r, lang, "signup: letter limit", err)
			return
		}
		if n <= l.limit {
			continue
		}
		msg := h.t(lang, "letter.error.throttled", h.when(lang, l.window))
		if l.key == letterGlobalKey {
			msg = h.t(lang, "letter.error.busy")
			if n == l.limit+1 {
				// Once per window across instances (the counter is shared):
				// the first refused request raises the alert.
				h.log.ErrorContext(ctx, "letter requests: the daily cap is reached, requests are refused until the 24-hour window moves on",
					"alert", "letters_daily_cap", "cap", l.limit, "request_id", web.RequestID(ctx))
			}
		}
		w.Header().Set("Retry-After", strconv.Itoa(int(l.window.Seconds())))
		d.Alert = msg
		h.render(w, r, lang, http.StatusTooManyRequests, "signup_letter_request", "letter.request.title", d)
		return
	}
	outcome, err := h.requestLetter(ctx, acct, lang, personID, attrs)
	if err != nil {
		h.internal(w, r, lang, "signup: letter request", err)
		return
	}
	h.log.InfoContext(ctx, "letter requested", "request_id", web.RequestID(ctx), "outcome", outcome)
	h.render(w, r, lang, http.StatusOK, "signup_letter_sent", "letter.sent.title", d)
}

// requestLetter queues a letter to personID (the person the claimed
// identity designates, "" for none), unless the registry holds no address
// for it or the person has another account, whose owner is then told by
// mail. What the requester can see is the same in every case: the page,
// and its own audit event (letterReceived). What came of the request is
// recorded in an event about the person (ActionLetterDecided), which only
// the person's own account reads; none when the registry knows no such
// person. It returns the outcome, for the log.
func (h *Handler) requestLetter(ctx context.Context, acct *sqin.Account, lang, personID string, attrs map[string]string) (string, error) {
	now := h.cfg.Now().UTC()
	const basis = "consent:proofing:" + proofing.ProofMailCode
	var events []*audit.Event
	add := func(e *audit.Event) {
		if e != nil {
			events = append(events, e)
		}
	}
	add(h.event(ctx, acct.ID, ActionLetterRequested, audit.Success, letterReceived, basis))
	decided := func(outcome, detail string) {
		add(h.personEvent(ctx, acct.ID, personID, ActionLetterDecided, outcome, detail, basis))
	}
	switch {
	case personID == "":
		return "no_person", h.appendEvent(ctx, events...)
	case attrs["address_street"] == "" || attrs["address_municipality"] == "" || attrs["address_postal_code"] == "":
		decided(audit.Failure, "the registry holds no postal address: no letter")
		return "no_address", h.appendEvent(ctx, events...)
	case acct.PersonID != "" && acct.PersonID != personID:
		decided(audit.Denied, "requested by an account linked to another person: no letter")
		return "other_person", h.appendEvent(ctx, events...)
	}
	other, err := h.st.PersonAccount(ctx, personID, acct.ID)
	switch {
	case err == nil:
		// The person has an account: its owner is told (and offered
		// recovery) instead of a letter to their home.
		m := h.newMail(other.Email, "letter_taken", cmpLang(other.Locale, lang), "mail.letter_taken.subject",
			"mail.letter_taken.body", h.cfg.Issuer+"/login", h.cfg.Issuer+"/mot-de-passe-oublie")
		decided(audit.Denied, "the person already has an account: no letter; its owner was told")
		if _, err := h.st.QueueLetter(withEvents(ctx, events), nil, m); err != nil {
			return "", fmt.Errorf("queue the owner's mail: %w", err)
		}
		if h.cfg.Mailer != nil {
			h.cfg.Mailer.Wake()
		}
		return "person_taken", nil
	case !errors.Is(err, sqin.ErrNotFound):
		return "", fmt.Errorf("person's account: %w", err)
	}
	l := &Letter{ID: "ltr-" + keys.Random(16), AccountID: acct.ID, PersonID: personID, Locale: lang, RequestedAt: now}
	decided(audit.Success, "letter "+l.ID+" queued for printing, unless the account has one queued already")
	stored, err := h.st.QueueLetter(withEvents(ctx, events), l)
	if err != nil {
		return "", fmt.Errorf("queue the letter: %w", err)
	}
	if !stored {
		// A letter is already waiting for the print shop: one is enough.
		return "already_queued", nil
	}
	return "queued", nil
}

// letterGlobalKey counts every letter request of every citizen.
const letterGlobalKey = "letter:global"

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
	d := letterData{Days: h.days(), MaxAttempts: h.cfg.MaxLetterAttempts}
	if acct == nil {
		d.SignIn = true
		h.render(w, r, lang, http.StatusOK, "signup_letter_code", "letter.code.title", d)
		return
	}
	if acct.LoA >= sqin.LoA2 {
		http.Redirect(w, r, "/verification", http.StatusSeeOther)
		return
	}
	// The page says nothing of the account's letters (requested, printed,
	// voided): whether a letter was queued tells whether the registry knows
	// the identity asked for.
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
	// With or without a printed letter, the answer takes the same time.
	defer pad(ctx, time.Now(), h.cfg.MinResponse)
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
	ls, err := h.st.PendingLetters(ctx, acct.ID, h.cfg.Now())
	if err != nil {
		h.internal(w, r, lang, "signup: pending letters", err)
		return
	}
	var printed []*Letter
	for _, l := range ls {
		if !l.ExportedAt.IsZero() {
			printed = append(printed, l)
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
		// The same event and message whether the account has a printed
		// letter or not (a letter's attempts are counted, and it is voided
		// at the limit, which the page explains for every letter).
		for i, l := range printed {
			wctx := ctx
			if i == 0 {
				wctx = h.withAudit(ctx, acct.ID, ActionLetterEntered, audit.Failure, "wrong code", "")
			}
			if _, err := h.st.LetterAttempt(wctx, l.ID, h.cfg.MaxLetterAttempts, now); err != nil && !errors.Is(err, sqin.ErrNotFound) {
				h.internal(w, r, lang, "signup: letter attempt", err)
				return
			}
		}
		if len(printed) == 0 {
			if err := h.appendEvent(ctx, h.event(ctx, acct.ID, ActionLetterEntered, audit.Failure, "wrong code", "")); err != nil {
				h.internal(w, r, lang, "signup: audit", err)
				return
			}
		}
		d.Errors = []FieldError{{"code", h.t(lang, "letter.code.error.wrong")}}
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
