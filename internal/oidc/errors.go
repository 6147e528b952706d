package oidc

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
)

// OAuth 2.0 / OpenID Connect error codes.
const (
	errInvalidRequest      = "invalid_request"
	errInvalidClient       = "invalid_client"
	errInvalidGrant        = "invalid_grant"
	errUnauthorizedClient  = "unauthorized_client"
	errUnsupportedGrant    = "unsupported_grant_type"
	errUnsupportedResponse = "unsupported_response_type"
	errInvalidScope        = "invalid_scope"
	errAccessDenied        = "access_denied"
	errServerError         = "server_error"
	errLoginRequired       = "login_required"
	errConsentRequired     = "consent_required"
	errUnmetAuthn          = "unmet_authentication_requirements"
	errInvalidToken        = "invalid_token"
	errInsufficientScope   = "insufficient_scope"
)

// oauthError is a protocol error with its description.
type oauthError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	status      int
}

func (e *oauthError) Error() string { return e.Code + ": " + e.Description }

func oerr(code, desc string) *oauthError { return &oauthError{Code: code, Description: desc} }

// statusFor maps an OAuth error code to its HTTP status (RFC 6749 5.2,
// RFC 6750 3.1), in this one place.
func statusFor(code string) int {
	switch code {
	case errInvalidClient, errInvalidToken:
		return http.StatusUnauthorized
	case errInsufficientScope:
		return http.StatusForbidden
	case errServerError:
		return http.StatusInternalServerError
	default:
		return http.StatusBadRequest
	}
}

// writeJSON writes v with no caching, as token responses require.
func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeOAuthError answers a protocol endpoint with err; other errors are
// logged and become server_error without detail.
func (p *Provider) writeOAuthError(w http.ResponseWriter, r *http.Request, err error) {
	var oe *oauthError
	if !errors.As(err, &oe) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeJSON(w, http.StatusRequestEntityTooLarge, oerr(errInvalidRequest, "request body too large"))
			return
		}
		p.logErr(r.Context(), "oidc: internal error", err)
		oe = oerr(errServerError, "internal error; try again later")
	}
	status := oe.status
	if status == 0 {
		status = statusFor(oe.Code)
	}
	if status == http.StatusUnauthorized && oe.Code == errInvalidClient {
		if _, _, ok := r.BasicAuth(); ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="sqin"`)
		}
	}
	writeJSON(w, status, oe)
}

// redirectError sends the user agent back to the client with an error
// (RFC 6749 4.1.2.1), adding iss (RFC 9207).
func (p *Provider) redirectError(w http.ResponseWriter, r *http.Request, redirectURI, state string, e *oauthError) {
	q := url.Values{"error": {e.Code}, "iss": {p.cfg.Issuer}}
	if e.Description != "" {
		q.Set("error_description", e.Description)
	}
	if state != "" {
		q.Set("state", state)
	}
	http.Redirect(w, r, appendQuery(redirectURI, q), http.StatusSeeOther)
}

// appendQuery adds q to u's existing query.
func appendQuery(u string, q url.Values) string {
	sep := "?"
	for i := 0; i < len(u); i++ {
		if u[i] == '?' {
			sep = "&"
			break
		}
	}
	return u + sep + q.Encode()
}

// formParams parses a form body (and for GET the query), refusing
// repeated parameters (RFC 6749 3.1, 3.2).
func formParams(r *http.Request) (url.Values, error) {
	if err := r.ParseForm(); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, oerr(errInvalidRequest, "malformed request body")
	}
	v := r.Form
	if r.Method == http.MethodPost {
		v = r.PostForm
	}
	for k, vs := range v {
		if len(vs) > 1 {
			return nil, oerr(errInvalidRequest, "parameter "+k+" is repeated")
		}
	}
	return v, nil
}
