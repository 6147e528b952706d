package oidc

import (
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/keys"
)

const requestURIPrefix = "urn:ietf:params:oauth:request_uri:"

type parResponse struct {
	RequestURI string `json:"request_uri"`
	ExpiresIn  int    `json:"expires_in"`
}

// handlePAR is the pushed authorization request endpoint (RFC 9126): the
// client sends the authorization request directly, authenticated, and gets
// a short-lived, single-use request_uri for the browser.
func (p *Provider) handlePAR(w http.ResponseWriter, r *http.Request) {
	if p.cfg.DPoPNonce {
		p.setNonce(w)
	}
	resp, err := p.par(r)
	if err != nil {
		p.writeOAuthError(w, r, err)
		return
	}
	writeJSON(w, http.StatusCreated, resp)
}

func (p *Provider) par(r *http.Request) (*parResponse, error) {
	ctx := r.Context()
	form, err := requireForm(r)
	if err != nil {
		return nil, err
	}
	c, proof, once, err := p.authenticate(r, form, p.endpointURL("/par"))
	if err != nil {
		return nil, err
	}
	req, err := p.pushed(r, form, c, proof)
	if err != nil {
		return nil, p.spend(ctx, once, err)
	}
	// The request and the jti of its assertion and proof, in one write.
	if err := p.st.PushAuthRequest(ctx, req, once, p.now()); err != nil {
		return nil, spentError(err)
	}
	return &parResponse{RequestURI: requestURIPrefix + req.ID, ExpiresIn: int(p.cfg.PARTTL.Seconds())}, nil
}

// pushed validates a pushed authorization request of client c.
func (p *Provider) pushed(r *http.Request, form url.Values, c *sqin.Client, proof *dpopProof) (*sqin.AuthRequest, error) {
	if form.Has("request_uri") {
		return nil, oerr(errInvalidRequest, "request_uri is not allowed in a pushed authorization request")
	}
	q := form
	if raw := form.Get("request"); raw != "" {
		var err error
		if q, err = p.requestObject(r.Context(), c, raw); err != nil {
			return nil, err
		}
	}
	q = withoutAuthParams(q)
	q.Set("client_id", c.ID)
	req, _, f := p.parseAuthorize(r, q)
	if f != nil {
		return nil, f.oauthError
	}
	if proof != nil {
		if req.DPoPJKT != "" && req.DPoPJKT != proof.jkt {
			return nil, oerr(errInvalidDPoP, "dpop_jkt does not match the DPoP proof's key")
		}
		req.DPoPJKT = proof.jkt
	}
	req.Pushed = true
	req.ExpiresAt = req.CreatedAt.Add(p.cfg.PARTTL)
	return req, nil
}

// withoutAuthParams drops client authentication parameters, which are not
// part of the authorization request.
func withoutAuthParams(q url.Values) url.Values {
	out := make(url.Values, len(q))
	for k, v := range q {
		switch k {
		case "client_secret", "client_assertion", "client_assertion_type", "request":
		default:
			out[k] = v
		}
	}
	return out
}

// pushedRequest reads the request behind a request_uri at the authorization
// endpoint: it must be ours, for this client, unexpired and not yet
// redeemed. It is redeemed (taken, single use across instances) by the
// write that ends the request: with the code on an SSO session
// (IssueCode), or when the request is stored again under a fresh
// identifier to wait for the user (takePushed), or ends with an error.
func (p *Provider) pushedRequest(r *http.Request, q url.Values) (*sqin.AuthRequest, *sqin.Client, *authzFailure) {
	ctx := r.Context()
	c, f := p.lookupClient(r, q.Get("client_id"))
	if f != nil {
		return nil, nil, f
	}
	id, ok := strings.CutPrefix(q.Get("request_uri"), requestURIPrefix)
	if !ok || id == "" || len(id) > 64 {
		return nil, c, errRequestURI
	}
	req, err := p.st.GetAuthRequest(ctx, id, p.now())
	if err != nil {
		if !errors.Is(err, sqin.ErrNotFound) {
			p.logErr(ctx, "oidc: get pushed request", err)
		}
		return nil, c, errRequestURI
	}
	if !req.Pushed || req.ClientID != c.ID || req.SessionID != "" {
		return nil, c, errRequestURI
	}
	return req, c, nil
}

var errRequestURI = &authzFailure{oauthError: oerr("invalid_request_uri", "request_uri is unknown, expired or already used"),
	page: "error.request_uri"}

// takePushed redeems the pushed request req (one DELETE … RETURNING,
// across instances, only by its client) before it is stored again, under a
// fresh identifier and with the normal time to sign in, or ends; false when
// another redemption took it first.
func (p *Provider) takePushed(r *http.Request, req *sqin.AuthRequest) bool {
	ctx := r.Context()
	now := p.now()
	if _, err := p.st.TakePushedRequest(ctx, req.ID, req.ClientID, now); err != nil {
		if !errors.Is(err, sqin.ErrNotFound) {
			p.logErr(ctx, "oidc: take pushed request", err)
		}
		return false
	}
	req.ID = keys.Random(24)
	req.Pushed = false
	req.CreatedAt = now.UTC()
	req.ExpiresAt = req.CreatedAt.Add(p.cfg.AuthRequestTTL)
	return true
}
