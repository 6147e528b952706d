package oidc

import (
	"net/http"
	"net/url"
	"slices"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/web"
)

// OpenID Connect Front-Channel Logout 1.0: services that registered a
// frontchannel_logout_uri are told of a sign-out by the browser itself,
// through an invisible frame per service on the page that follows the
// sign-out. The frame's URL carries iss and sid (frontchannel logout
// session support), so the service ends the right session. The page needs
// no JavaScript: it goes on to the post-logout redirect URI by itself once
// the frames have loaded (Refresh), and offers a link meanwhile.
//
// Browsers that block third-party cookies keep a service's frame from
// reaching its session; back-channel logout is the dependable channel and
// front-channel a complement for services that can only be reached in the
// browser.

// FrontchannelFrame is a service to tell of a sign-out in the browser: the
// page that follows the sign-out embeds Src in an invisible frame.
type FrontchannelFrame struct {
	Src         string // the service's front-channel URI with iss and sid
	ClientName  string
	ClientID    string
	frameOrigin string
}

type frontchannelData struct {
	Frames   []FrontchannelFrame
	Continue string // where to go on: the post-logout redirect; empty to stay
}

// frontchannelRefresh is the pause, once the page and its frames have
// loaded, before going on to the post-logout redirect URI.
const frontchannelRefresh = "1"

// frontchannelFrames returns the frames for the clients of an ended
// session that registered a front-channel URI, in client order.
func (p *Provider) frontchannelFrames(clients []*sqin.Client, sessionID string) []FrontchannelFrame {
	var frames []FrontchannelFrame
	for _, c := range clients {
		o := origin(c.FrontchannelLogoutURI)
		if c.FrontchannelLogoutURI == "" || o == "" {
			continue
		}
		src := appendQuery(c.FrontchannelLogoutURI, url.Values{"iss": {p.cfg.Issuer}, "sid": {p.sid(sessionID)}})
		name := c.Name
		if name == "" {
			name = c.ID
		}
		frames = append(frames, FrontchannelFrame{Src: src, ClientName: name, ClientID: c.ID, frameOrigin: o})
	}
	return frames
}

// renderFrontchannel shows the signed-out page with a frame per service,
// then goes on to next (the post-logout redirect URI with its state) when
// it is not empty. The page's CSP allows frames from exactly those
// services' origins.
func (p *Provider) renderFrontchannel(w http.ResponseWriter, r *http.Request, lang string, frames []FrontchannelFrame, next string) {
	var origins []string
	for _, f := range frames {
		if !slices.Contains(origins, f.frameOrigin) {
			origins = append(origins, f.frameOrigin)
		}
	}
	web.AllowFrames(w, origins...)
	if next != "" {
		// The HTML Refresh header works as <meta http-equiv=refresh>: the
		// wait starts once the document, frames included, has loaded.
		w.Header().Set("Refresh", frontchannelRefresh+"; url="+next)
	}
	pg := p.rd.NewPage(r, lang, "logout.done_title", frontchannelData{Frames: frames, Continue: next})
	p.rd.Render(w, http.StatusOK, "frontchannel", pg)
}
