package oidc

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/sqin/sqin"
)

type consentItem struct {
	ClientID   string
	ClientName string
	Claims     []string
	GrantedAt  string
}

type consentsData struct {
	Items   []consentItem
	Revoked string // name of the service whose consent was just withdrawn
}

// handleConsents lists the services the signed-in citizen allowed to
// receive information and lets them withdraw each consent: the service's
// tokens are revoked at once and the next sign-in asks again.
func (p *Provider) handleConsents(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	lang := p.lang(r, "")
	sess := p.currentSession(r)
	if sess == nil {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return
	}
	var d consentsData
	if r.Method == http.MethodPost {
		if !p.csrf.Valid(r) {
			p.errorPage(w, r, lang, http.StatusForbidden, "error.csrf")
			return
		}
		id := r.PostFormValue("client_id")
		if err := p.st.RevokeConsent(ctx, sess.AccountID, id, p.now()); err != nil && !errors.Is(err, sqin.ErrNotFound) {
			p.logErr(ctx, "oidc: revoke consent", err)
			p.errorPage(w, r, lang, http.StatusInternalServerError, "error.internal")
			return
		}
		p.log.InfoContext(ctx, "consent withdrawn", "client_id", id)
		http.Redirect(w, r, "/consents?revoked="+url.QueryEscape(id), http.StatusSeeOther)
		return
	}
	cons, err := p.st.ListConsents(ctx, sess.AccountID)
	if err != nil {
		p.logErr(ctx, "oidc: list consents", err)
		p.errorPage(w, r, lang, http.StatusInternalServerError, "error.internal")
		return
	}
	revoked := r.URL.Query().Get("revoked")
	for _, c := range cons {
		name := c.ClientID
		if cl, err := p.st.GetClient(ctx, c.ClientID); err == nil {
			name = cl.Name
		}
		d.Items = append(d.Items, consentItem{ClientID: c.ClientID, ClientName: name, Claims: c.Claims,
			GrantedAt: c.GrantedAt.Format("2006-01-02")})
	}
	if revoked != "" {
		d.Revoked = revoked
		if cl, err := p.st.GetClient(ctx, revoked); err == nil {
			d.Revoked = cl.Name
		}
	}
	if r.URL.Query().Has("lang") {
		p.setLang(w, lang)
	}
	pg := p.rd.NewPage(r, lang, "consents.title", d)
	pg.CSRF = p.csrf.Token(w, r)
	p.rd.Render(w, http.StatusOK, "consents", pg)
}
