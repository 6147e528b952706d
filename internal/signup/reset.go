package signup

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/web"
)

// Password reset ("mot de passe oublié"): the citizen gives an email
// address; when it has an account, a link with a single-use 256-bit token
// (stored as its SHA-256) is mailed, valid ResetTTL. The page is the same
// whether or not the address has an account, and takes the same time. The
// link leads to a form for the new password, under the same rules as at
// account creation; the change spends every pending link of the account,
// ends its sessions and tells the owner by mail.

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
	if tok := r.URL.Query().Get("jeton"); r.Method == http.MethodGet && tok != "" {
		// The token leaves the address bar (history, the language switch,
		// a Referer) for a short-lived cookie.
		if len(tok) <= 100 {
			h.cookies.Set(w, resetCookie, tok, h.cfg.ResetTTL)
		}
		http.Redirect(w, r, "/mot-de-passe-oublie/nouveau", http.StatusSeeOther)
		return
	}
	ctx := r.Context()
	now := h.cfg.Now().UTC()
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
	d := resetData{}
	if r.Method == http.MethodGet {
		h.render(w, r, lang, http.StatusOK, "signup_reset_password", "reset.new.title", d)
		return
	}
	if err := r.ParseForm(); err != nil || !h.csrf.Valid(r) {
		d.Alert = h.t(lang, "error.csrf")
		h.render(w, r, lang, http.StatusForbidden, "signup_reset_password", "reset.new.title", d)
		return
	}
	acct, err := h.st.GetAccount(ctx, rs.AccountID)
	if err != nil {
		h.internal(w, r, lang, "signup: read account", err)
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
		"mail.password_changed.body", h.cfg.Issuer+"/mot-de-passe-oublie")
	changed := h.withAudit(ctx, acct.ID, ActionPasswordReset, audit.Success, "password changed by a mailed link; sessions ended", "")
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
	// Whoever knew the old password is signed out everywhere; the failed
	// sign-ins of the address no longer hold the citizen back.
	if h.cfg.Sessions != nil {
		if err := h.cfg.Sessions.ForgetFailedSignIns(ctx, acct.Email); err != nil {
			h.log.ErrorContext(ctx, "signup: forget failed sign-ins", "request_id", web.RequestID(ctx), "err", err)
		}
		ids, err := h.st.AccountSessions(ctx, acct.ID)
		if err != nil {
			h.log.ErrorContext(ctx, "signup: sessions to end", "request_id", web.RequestID(ctx), "err", err)
		}
		for _, id := range ids {
			if err := h.cfg.Sessions.EndSession(ctx, id); err != nil {
				h.log.ErrorContext(ctx, "signup: end session", "request_id", web.RequestID(ctx), "err", err)
			}
		}
		h.log.InfoContext(ctx, "password reset", "request_id", web.RequestID(ctx), "sessions_ended", strconv.Itoa(len(ids)))
	}
	h.render(w, r, lang, http.StatusOK, "signup_reset_done", "reset.done.title", d)
}
