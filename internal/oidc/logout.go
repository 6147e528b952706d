package oidc

import (
	"encoding/json"
	"net/http"
	"net/url"
	"slices"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/web"
)

type logoutData struct {
	ClientName            string
	PostLogoutRedirectURI string
	State                 string
	ClientID              string
	Done                  bool
}

// handleLogout implements OpenID Connect RP-Initiated Logout 1.0. With a
// valid id_token_hint for the current session the user is signed out at
// once; otherwise a confirmation form protects them from forged logouts.
func (p *Provider) handleLogout(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodPost {
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	ctx := r.Context()
	if err := r.ParseForm(); err != nil {
		p.errorPage(w, r, p.lang(r, ""), http.StatusBadRequest, "error.bad_request")
		return
	}
	q := r.Form
	lang := p.lang(r, q.Get("ui_locales"))
	hint, clientID := q.Get("id_token_hint"), q.Get("client_id")
	var hinted struct {
		Aud any    `json:"aud"`
		Sid string `json:"sid"`
	}
	hintValid := false
	if hint != "" {
		payload, err := p.keys.Verify(ctx, hint, "", keys.SupportedAlgs...)
		if err != nil || json.Unmarshal(payload, &hinted) != nil {
			p.errorPage(w, r, lang, http.StatusBadRequest, "error.logout_hint")
			return
		}
		aud, _ := hinted.Aud.(string)
		if clientID != "" && aud != clientID {
			p.errorPage(w, r, lang, http.StatusBadRequest, "error.logout_hint")
			return
		}
		clientID, hintValid = aud, true
	}
	var c *sqin.Client
	if clientID != "" {
		var err error
		if c, err = p.st.GetClient(ctx, clientID); err != nil {
			p.errorPage(w, r, lang, http.StatusBadRequest, "error.client_unknown")
			return
		}
	}
	post := q.Get("post_logout_redirect_uri")
	if post != "" && (c == nil || !slices.Contains(c.PostLogoutRedirectURIs, post)) {
		p.errorPage(w, r, lang, http.StatusBadRequest, "error.post_logout_uri")
		return
	}
	sess := p.currentSession(r)
	confirmed := r.Method == http.MethodPost && r.PostForm.Has("logout") && p.csrf.Valid(r)
	// A hint for another session than the browser's does not sign the
	// current one out without asking.
	silent := hintValid && (sess == nil || p.sid(sess.ID) == hinted.Sid)
	if sess != nil && !silent && !confirmed {
		d := logoutData{PostLogoutRedirectURI: post, State: q.Get("state"), ClientID: clientID}
		if c != nil {
			d.ClientName = c.Name
		}
		pg := p.rd.NewPage(r, lang, "logout.title", d)
		pg.CSRF = p.csrf.Token(w, r)
		web.AllowFormAction(w, origin(post))
		p.rd.Render(w, http.StatusOK, "logout", pg)
		return
	}
	// Ending the session queues the back-channel logouts; the services
	// with a front-channel URI are told by the page that follows.
	var frames []FrontchannelFrame
	if sess != nil {
		var err error
		ended := p.withAudit(ctx, func() audit.Event {
			e := p.citizenEvent(ctx, audit.SessionEnded, c, sess.AccountID)
			e.Detail = "signed out"
			return e
		})
		if frames, err = p.EndSession(ended, sess.ID); err != nil {
			p.logErr(ctx, "oidc: end session", err)
			p.errorPage(w, r, lang, http.StatusInternalServerError, "error.internal")
			return
		}
	}
	p.cookies.Clear(w, sessionCookie)
	next := post
	if st := q.Get("state"); post != "" && st != "" {
		next = appendQuery(post, url.Values{"state": {st}})
	}
	if len(frames) > 0 {
		p.renderFrontchannel(w, r, lang, frames, next)
		return
	}
	if next != "" {
		http.Redirect(w, r, next, http.StatusSeeOther)
		return
	}
	pg := p.rd.NewPage(r, lang, "logout.done_title", logoutData{Done: true})
	p.rd.Render(w, http.StatusOK, "logout", pg)
}
