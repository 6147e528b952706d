package oidc

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
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
		// The withdrawal commits with its event, when there is a consent to
		// withdraw (a client that does not exist has none: deleting a
		// client deletes them). Without one, RevokeConsent still revokes
		// stray grants, and nothing is recorded as withdrawn.
		withdrawn := ctx
		_, err := p.st.GetConsent(ctx, sess.AccountID, id)
		var c *sqin.Client
		if err == nil {
			c, err = p.client(ctx, id)
		}
		switch {
		case err == nil:
			withdrawn = p.withAudit(ctx, func() audit.Event {
				e := p.citizenEvent(ctx, audit.ConsentWithdrawn, c, sess.AccountID)
				e.LegalBasis = "consent:" + c.ID
				return e
			})
		case !errors.Is(err, sqin.ErrNotFound):
			p.logErr(ctx, "oidc: withdraw consent", err)
			p.errorPage(w, r, lang, http.StatusInternalServerError, "error.internal")
			return
		}
		if err := p.st.RevokeConsent(withdrawn, sess.AccountID, id, p.now()); err != nil && !errors.Is(err, sqin.ErrNotFound) {
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
