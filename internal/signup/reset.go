package signup

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/web"
)

// Password reset ("mot de passe oublié"): the citizen gives an email
// address; when it has an account, a link with a single-use 256-bit token
// (stored as its SHA-256) is mailed, valid ResetTTL. The page is the same
// whether or not the address has an account, and takes the same time. The
// link leads to a form for the new password (showing the masked address
// of the account it changes), under the same rules as at account
// creation. A mailed link proves the mailbox, not the identity: the
// change, in one transaction with its audit event, spends every pending
// link of the account, lowers it to level 1 (its person is kept, so that
// proofing the same person again raises it; its proofs are forgotten),
// revokes all its grants (offline ones too), ends its sessions, and tells
// the owner by mail.

// Audit actions of password resets.
const (
	ActionResetRequested = "account.password_reset_requested"
	ActionPasswordReset  = "account.password_reset"
)

const resetCookie = "sqin_reset"

type resetData struct {
	form
	Email   string
	Minutes int
}

// ---- /mot-de-passe-oublie

func (h *Handler) handleResetRequest(w http.ResponseWriter, r *http.Request) {
	lang := h.lang(w, r)
	d := resetData{Minutes: int(h.cfg.ResetTTL.Minutes())}
	switch r.Method {
	case http.MethodGet:
		h.render(w, r, lang, http.StatusOK, "signup_reset_request", "reset.title", d)
		return
	case http.MethodPost:
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if err := r.ParseForm(); err != nil || !h.csrf.Valid(r) {
		d.Alert = h.t(lang, "error.csrf")
		h.render(w, r, lang, http.StatusForbidden, "signup_reset_request", "reset.title", d)
		return
	}
	ctx := r.Context()
	email, ok := normEmail(r.PostForm.Get("email"))
	d.Email = email
	if !ok {
		d.Errors = []FieldError{{"email", h.t(lang, "signup.error.email")}}
		h.render(w, r, lang, http.StatusBadRequest, "signup_reset_request", "reset.title", d)
		return
	}
	// Counted whether or not the address has an account.
	now := h.cfg.Now().UTC()
	for _, l := range []struct {
		key   string
		limit int
	}{{"reset:email:" + keys.Hash(email), h.cfg.ResetsPerHour}, {"reset:addr:" + remoteAddr(r), h.cfg.SignupsPerHour}} {
		n, err := h.cfg.Counter.Hit(ctx, l.key, time.Hour, now)
		if err != nil {
			h.internal(w, r, lang, "signup: reset limit", err)
			return
		}
		if n > l.limit {
			w.Header().Set("Retry-After", "3600")
			d.Alert = h.t(lang, "reset.error.throttled")
			h.render(w, r, lang, http.StatusTooManyRequests, "signup_reset_request", "reset.title", d)
			return
		}
	}
	defer pad(ctx, time.Now(), h.cfg.MinResponse)
	acct, err := h.st.GetAccountByEmail(ctx, email)
	if err != nil && !errors.Is(err, sqin.ErrNotFound) {
		h.internal(w, r, lang, "signup: look up email", err)
		return
	}
	if acct != nil && !acct.Locked {
		token := keys.Random(32)
		rs := &PasswordReset{ID: keys.Hash(token), AccountID: acct.ID, CreatedAt: now, ExpiresAt: now.Add(h.cfg.ResetTTL)}
		m := h.newMail(acct.Email, "reset", cmpLang(acct.Locale, lang), "mail.reset.subject", "mail.reset.body",
			h.cfg.Issuer+"/mot-de-passe-oublie/nouveau?jeton="+token, d.Minutes)
		token = ""
		requested := h.withAudit(ctx, acct.ID, ActionResetRequested, audit.Success, "reset link mailed", "")
		if err := h.st.CreatePasswordReset(requested, rs, m); err != nil {
			h.internal(w, r, lang, "signup: create reset", err)
			return
		}
		if h.cfg.Mailer != nil {
			h.cfg.Mailer.Wake()
		}
	}
	h.log.InfoContext(ctx, "password reset requested", "request_id", web.RequestID(ctx))
	h.render(w, r, lang, http.StatusOK, "signup_reset_sent", "reset.sent.title", d)
}

// ---- /mot-de-passe-oublie/nouveau

func (h *Handler) handleResetPassword(w http.ResponseWriter, r *http.Request) {
	lang := h.lang(w, r)
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx := r.Context()
	now := h.cfg.Now().UTC()
	if tok := r.URL.Query().Get("jeton"); r.Method == http.MethodGet && tok != "" {
		// The token leaves the address bar (history, the language switch,
		// a Referer) for a short-lived cookie, only when it is a live
		// token: a link made up by someone else sets nothing. Looked up
		// and padded the same way either way.
		defer pad(ctx, time.Now(), h.cfg.MinResponse)
		if len(tok) <= 100 {
			switch _, err := h.st.GetPasswordReset(ctx, keys.Hash(tok), now); {
			case err == nil:
				h.cookies.Set(w, resetCookie, tok, h.cfg.ResetTTL)
			case !errors.Is(err, sqin.ErrNotFound):
				h.internal(w, r, lang, "signup: read reset", err)
				return
			}
		}
		http.Redirect(w, r, "/mot-de-passe-oublie/nouveau", http.StatusSeeOther)
		return
	}
	tok := h.cookies.Get(r, resetCookie)
	var rs *PasswordReset
	if tok != "" && len(tok) <= 100 {
		var err error
		rs, err = h.st.GetPasswordReset(ctx, keys.Hash(tok), now)
		if err != nil && !errors.Is(err, sqin.ErrNotFound) {
			h.internal(w, r, lang, "signup: read reset", err)
			return
		}
	}
	if rs == nil {
		h.errorPage(w, r, lang, http.StatusBadRequest, "reset.error.link")
		return
	}
	acct, err := h.st.GetAccount(ctx, rs.AccountID)
	if err != nil {
		h.internal(w, r, lang, "signup: read account", err)
		return
	}
	// The form names the account it changes (masked), so that a link
	// someone else planted is seen for what it is.
	d := resetData{Email: MaskEmail(acct.Email)}
	if r.Method == http.MethodGet {
		h.render(w, r, lang, http.StatusOK, "signup_reset_password", "reset.new.title", d)
		return
	}
	if err := r.ParseForm(); err != nil || !h.csrf.Valid(r) {
		d.Alert = h.t(lang, "error.csrf")
		h.render(w, r, lang, http.StatusForbidden, "signup_reset_password", "reset.new.title", d)
		return
	}
	password := r.PostForm.Get("password")
	if reason := CheckPassword(password, acct.Email); reason != "" {
		d.Errors = append(d.Errors, FieldError{"password", h.t(lang, reason, MinPassword)})
	} else if r.PostForm.Get("password2") != password {
		d.Errors = append(d.Errors, FieldError{"password2", h.t(lang, "signup.error.password_mismatch")})
	}
	if len(d.Errors) > 0 {
		h.render(w, r, lang, http.StatusBadRequest, "signup_reset_password", "reset.new.title", d)
		return
	}
	hash, err := h.cfg.Hasher.Hash(password)
	if err != nil {
		h.internal(w, r, lang, "signup: hash password", err)
		return
	}
	m := h.newMail(acct.Email, "password_changed", cmpLang(acct.Locale, lang), "mail.password_changed.subject",
		"mail.password_changed.body", h.cfg.Issuer+"/verification", h.cfg.Issuer+"/mot-de-passe-oublie")
	changed := h.withAudit(ctx, acct.ID, ActionPasswordReset, audit.Success, "password changed by a mailed link; loa "+
		strconv.Itoa(int(acct.LoA))+" -> "+strconv.Itoa(int(min(acct.LoA, sqin.LoA1)))+"; proofs dropped; all grants revoked; sessions ended", "")
	switch err := h.st.ResetPassword(changed, rs.ID, hash, now, m); {
	case errors.Is(err, sqin.ErrNotFound):
		h.errorPage(w, r, lang, http.StatusBadRequest, "reset.error.link")
		return
	case err != nil:
		h.internal(w, r, lang, "signup: reset password", err)
		return
	}
	h.cookies.Clear(w, resetCookie)
	if h.cfg.Mailer != nil {
		h.cfg.Mailer.Wake()
	}
	// The failed sign-ins of the address no longer hold the citizen back
	// (the sessions ended in the reset's transaction).
	if h.cfg.Sessions != nil {
		if err := h.cfg.Sessions.ForgetFailedSignIns(ctx, acct.Email); err != nil {
			h.log.ErrorContext(ctx, "signup: forget failed sign-ins", "request_id", web.RequestID(ctx), "err", err)
		}
	}
	h.log.InfoContext(ctx, "password reset: level 1, grants revoked, sessions ended", "request_id", web.RequestID(ctx))
	h.render(w, r, lang, http.StatusOK, "signup_reset_done", "reset.done.title", d)
}

// MaskEmail shows enough of an address for its owner to recognise it:
// the first character of the local part, then dots, and the domain.
func MaskEmail(addr string) string {
	at := strings.LastIndex(addr, "@")
	if at <= 0 {
		return "•••"
	}
	first, _ := utf8.DecodeRuneInString(addr)
	return string(first) + "•••" + addr[at:]
}
