package oidc

import (
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/authn"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/web"
)

func (p *Provider) lang(r *http.Request, uiLocales string) string { return web.PickLang(r, uiLocales) }

// setLang remembers an explicit language choice.
func (p *Provider) setLang(w http.ResponseWriter, lang string) {
	http.SetCookie(w, &http.Cookie{Name: web.LangCookie, Value: lang, Path: "/", MaxAge: 365 * 24 * 3600,
		HttpOnly: true, Secure: p.cookies.Secure, SameSite: http.SameSiteLaxMode})
}

type errorData struct{ Message string }

// errorPage shows a message from the catalogue and what to do next.
func (p *Provider) errorPage(w http.ResponseWriter, r *http.Request, lang string, status int, key string) {
	pg := p.rd.NewPage(r, lang, "error.title", errorData{Message: key})
	p.rd.Render(w, status, "error", pg)
}

type loginData struct {
	Req        string
	Username   string
	Error      string // catalogue key
	ClientName string
}

func (p *Provider) handleLogin(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		p.showLogin(w, r, r.URL.Query().Get("req"), "", "", http.StatusOK)
	case http.MethodPost:
		p.postLogin(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

func (p *Provider) showLogin(w http.ResponseWriter, r *http.Request, reqID, username, errKey string, status int) {
	ctx := r.Context()
	d := loginData{Req: reqID, Username: username, Error: errKey}
	uiLocales := ""
	if reqID != "" {
		req, err := p.st.GetAuthRequest(ctx, reqID, p.now())
		if err != nil {
			p.errorPage(w, r, p.lang(r, ""), http.StatusBadRequest, "error.request_expired")
			return
		}
		uiLocales = req.UILocale
		web.AllowFormAction(w, origin(req.RedirectURI))
		if d.Username == "" {
			d.Username = req.LoginHint
		}
		if c, err := p.st.GetClient(ctx, req.ClientID); err == nil {
			d.ClientName = c.Name
		}
	}
	lang := p.lang(r, uiLocales)
	if r.URL.Query().Has("lang") {
		p.setLang(w, lang)
	}
	pg := p.rd.NewPage(r, lang, "login.title", d)
	pg.CSRF = p.csrf.Token(w, r)
	p.rd.Render(w, status, "login", pg)
}

// normEmail trims and lower-cases an email address.
func normEmail(s string) string { return strings.ToLower(strings.TrimSpace(s)) }

func (p *Provider) postLogin(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, r, p.lang(r, ""), http.StatusRequestEntityTooLarge, "error.bad_request")
		return
	}
	reqID := r.PostForm.Get("req")
	if !p.csrf.Valid(r) {
		p.showLogin(w, r, reqID, "", "error.csrf", http.StatusForbidden)
		return
	}
	email := normEmail(r.PostForm.Get("username"))
	password := r.PostForm.Get("password")
	if email == "" || password == "" || len(email) > maxHintLen || len(password) > 1024 {
		p.showLogin(w, r, reqID, email, "login.error.missing", http.StatusBadRequest)
		return
	}
	now := p.now()
	acctKey := signInLimitKey(email)
	addrKey := "login:addr:" + web.LimitAddress(r)
	nAcct, err1 := p.st.Count(ctx, acctKey, p.cfg.LoginWindow, now)
	nAddr, err2 := p.st.Count(ctx, addrKey, p.cfg.LoginWindow, now)
	if err := errors.Join(err1, err2); err != nil {
		p.logErr(ctx, "oidc: rate limit", err)
		p.errorPage(w, r, p.lang(r, ""), http.StatusInternalServerError, "error.internal")
		return
	}
	if nAcct >= p.cfg.LoginPerAccount || nAddr >= p.cfg.LoginPerAddress {
		p.log.WarnContext(ctx, "sign-in throttled", "request_id", web.RequestID(ctx), "by_account", nAcct >= p.cfg.LoginPerAccount)
		w.Header().Set("Retry-After", retryAfter(p.cfg.LoginWindow))
		p.showLogin(w, r, reqID, email, "login.error.throttled", http.StatusTooManyRequests)
		return
	}
	acct, err := p.st.GetAccountByEmail(ctx, email)
	if err != nil && !errors.Is(err, sqin.ErrNotFound) {
		p.logErr(ctx, "oidc: get account", err)
		p.errorPage(w, r, p.lang(r, ""), http.StatusInternalServerError, "error.internal")
		return
	}
	hash := ""
	if acct != nil {
		hash = acct.PasswordHash
	}
	// The client the sign-in is for, named in its audit events.
	client := p.signinClient(r, reqID)
	// Verify even when there is no account: same work, same answer.
	if err := p.hasher.Verify(hash, password); err != nil || acct == nil || acct.Locked {
		if !errors.Is(err, authn.ErrMismatch) && err != nil {
			p.logErr(ctx, "oidc: verify password", err)
		}
		// The failure is recorded with the per-account hit, known account
		// or not, so that both take the same path (see signinFailure).
		failed := p.withAudit(ctx, func() audit.Event { return p.signinFailure(ctx, client, acct, audit.SigninFailure) })
		n, e1 := p.st.Hit(failed, acctKey, p.cfg.LoginWindow, now)
		_, e2 := p.st.Hit(ctx, addrKey, p.cfg.LoginWindow, now)
		if err := errors.Join(e1, e2); err != nil {
			p.logErr(ctx, "oidc: rate limit", err)
		}
		if e1 == nil && n == p.cfg.LoginPerAccount && p.auditing() {
			// This failure locks the account (or the identifier that names none)
			// for the window: known only after the hit, so recorded apart.
			ev := p.signinFailure(ctx, client, acct, audit.SigninLockout)
			ev.Outcome, ev.Detail = audit.Denied, "too many failed sign-ins: further attempts refused for "+p.cfg.LoginWindow.String()
			if err := p.appendAudit(ctx, ev); err != nil {
				p.logErr(ctx, "oidc: audit lockout", err)
			}
		}
		p.log.InfoContext(ctx, "sign-in failed", "request_id", web.RequestID(ctx))
		p.showLogin(w, r, reqID, email, "login.error.invalid", http.StatusOK)
		return
	}
	if err := p.st.Reset(ctx, acctKey); err != nil {
		p.logErr(ctx, "oidc: rate limit reset", err)
	}
	// A new session identifier at every sign-in (no fixation); the old
	// session, if any, ends.
	if old := p.cookies.Get(r, sessionCookie); old != "" && len(old) <= 100 {
		endCtx := ctx
		if prev, err := p.st.GetSession(ctx, keys.Hash(old), now); err == nil {
			endCtx = p.withAudit(ctx, func() audit.Event {
				e := p.citizenEvent(ctx, audit.SessionEnded, nil, prev.AccountID)
				e.Detail = "replaced by a new sign-in"
				return e
			})
		}
		if _, err := p.EndSession(endCtx, keys.Hash(old)); err != nil {
			p.logErr(ctx, "oidc: end previous session", err)
		}
	}
	token := keys.Random(32)
	sess := &sqin.Session{ID: keys.Hash(token), AccountID: acct.ID, LoA: acct.LoA, AMR: []string{"pwd"},
		AuthTime: now.UTC().Truncate(time.Second), CreatedAt: now.UTC(), ExpiresAt: now.UTC().Add(p.cfg.SessionTTL)}
	signedIn := p.withAudit(ctx, func() audit.Event {
		e := p.citizenEvent(ctx, audit.SigninSuccess, client, acct.ID)
		e.Detail = "amr=pwd loa=" + strconv.Itoa(int(acct.LoA))
		return e
	})
	if err := p.st.CreateSession(signedIn, sess); err != nil {
		p.logErr(ctx, "oidc: create session", err)
		p.errorPage(w, r, p.lang(r, ""), http.StatusInternalServerError, "error.internal")
		return
	}
	p.cookies.Set(w, sessionCookie, token, 0)
	p.log.InfoContext(ctx, "sign-in", "request_id", web.RequestID(ctx), "loa", int(acct.LoA))
	if reqID == "" {
		http.Redirect(w, r, "/", http.StatusSeeOther)
		return
	}
	if err := p.st.SetAuthRequestSession(ctx, reqID, sess.ID); err != nil {
		p.errorPage(w, r, p.lang(r, ""), http.StatusBadRequest, "error.request_expired")
		return
	}
	http.Redirect(w, r, "/authorize/resume?req="+url.QueryEscape(reqID), http.StatusSeeOther)
}

func retryAfter(d time.Duration) string { return strconv.Itoa(int(d.Seconds())) }

type consentData struct {
	Req        string
	ClientName string
	Claims     []string
}

func (p *Provider) handleConsent(w http.ResponseWriter, r *http.Request) {
	var id string
	switch r.Method {
	case http.MethodGet:
		id = r.URL.Query().Get("req")
	case http.MethodPost:
		id = r.PostFormValue("req")
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	req, c, sess, ok := p.pendingRequest(w, r, id)
	if !ok {
		return
	}
	lang := p.lang(r, req.UILocale)
	cr, _, _ := parseClaimsRequest(req.Claims)
	released, _, err := p.consentClaims(r.Context(), c, req.Scopes, cr)
	if err != nil {
		p.logErr(r.Context(), "oidc: legal release rule", err)
		p.finishWithError(w, r, req, true, oerr(errServerError, ""))
		return
	}
	if r.Method == http.MethodGet {
		if r.URL.Query().Has("lang") {
			p.setLang(w, lang)
		}
		p.showConsent(w, r, lang, req, c, released, http.StatusOK)
		return
	}
	if !p.csrf.Valid(r) {
		p.showConsent(w, r, lang, req, c, released, http.StatusForbidden)
		return
	}
	if !r.PostForm.Has("approve") {
		p.finishWithError(w, r, req, true, oerr(errAccessDenied, "the user declined"))
		return
	}
	con := &sqin.Consent{AccountID: sess.AccountID, ClientID: c.ID, Scopes: sortedSet(req.Scopes),
		Claims: sortedSet(released), GrantedAt: p.now().UTC()}
	if old, err := p.st.GetConsent(r.Context(), sess.AccountID, c.ID); err == nil {
		con.Scopes = sortedSet(append(con.Scopes, old.Scopes...))
		con.Claims = sortedSet(append(con.Claims, old.Claims...))
	}
	given := p.withAudit(r.Context(), func() audit.Event {
		e := p.citizenEvent(r.Context(), audit.ConsentGiven, c, sess.AccountID)
		e.LegalBasis, e.Attributes, e.Detail = "consent:"+c.ID, released, scopeDetail(req.Scopes)
		return e
	})
	if err := p.st.SaveConsent(given, con); err != nil {
		p.logErr(r.Context(), "oidc: save consent", err)
		p.finishWithError(w, r, req, true, oerr(errServerError, ""))
		return
	}
	p.issueCode(w, r, req, c, sess, true)
}

func (p *Provider) showConsent(w http.ResponseWriter, r *http.Request, lang string, req *sqin.AuthRequest, c *sqin.Client, released []string, status int) {
	pg := p.rd.NewPage(r, lang, "consent.title", consentData{Req: req.ID, ClientName: c.Name, Claims: released})
	pg.CSRF = p.csrf.Token(w, r)
	web.AllowFormAction(w, origin(req.RedirectURI))
	p.rd.Render(w, status, "consent", pg)
}

// origin returns scheme://host of u.
func origin(u string) string {
	pu, err := url.Parse(u)
	if err != nil || pu.Host == "" {
		return ""
	}
	return pu.Scheme + "://" + pu.Host
}

func sortedSet(s []string) []string {
	out := dedupe(s)
	slices.Sort(out)
	return out
}

type homeData struct {
	SignedIn bool
	// Unproved: the signed-in account is below level 2; the page links to
	// identity proofing and to the entry of a code received by mail.
	Unproved bool
}

// HandleHome is the service's landing page.
func (p *Provider) HandleHome(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/" { // only the root; other paths are 404
		p.errorPage(w, r, p.lang(r, ""), http.StatusNotFound, "error.bad_request")
		return
	}
	lang := p.lang(r, "")
	if r.URL.Query().Has("lang") {
		p.setLang(w, lang)
	}
	sess := p.currentSession(r)
	d := homeData{SignedIn: sess != nil}
	if sess != nil && sess.LoA < sqin.LoA2 {
		// The account may have been proved since this session began (on
		// another device): its own level decides.
		if a, err := p.st.GetAccount(r.Context(), sess.AccountID); err != nil {
			p.logErr(r.Context(), "oidc: home: read account", err)
		} else {
			d.Unproved = a.LoA < sqin.LoA2
		}
	}
	pg := p.rd.NewPage(r, lang, "home.title", d)
	pg.CSRF = p.csrf.Token(w, r)
	p.rd.Render(w, http.StatusOK, "home", pg)
}
