// Package clientreg registers the online services of public bodies: client
// metadata in the member names of RFC 7591 (OAuth 2.0 Dynamic Client
// Registration) and OpenID Connect Dynamic Registration, one strict
// validator shared by the CLI and the API, and the registration API itself:
// POST /register with an initial access token (RFC 7591 section 3), and
// read, update and delete of a registration with its registration access
// token (RFC 7592).
package clientreg

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/sqin/sqin"
)

// Metadata is a client's registration metadata as JSON carries it, in a
// request or in a response. Members SQIN does not know are ignored (RFC
// 7591 section 2); known members are decoded by their exact name.
type Metadata struct {
	ClientID                string          `json:"client_id,omitempty"`
	ClientSecret            string          `json:"client_secret,omitempty"` // on creation only (and in CLI input)
	ClientIDIssuedAt        int64           `json:"client_id_issued_at,omitempty"`
	ClientSecretExpiresAt   *int64          `json:"client_secret_expires_at,omitempty"` // 0 = never, sent with client_secret
	ClientName              string          `json:"client_name,omitempty"`
	RedirectURIs            []string        `json:"redirect_uris,omitempty"`
	PostLogoutRedirectURIs  []string        `json:"post_logout_redirect_uris,omitempty"`
	GrantTypes              []string        `json:"grant_types,omitempty"`
	ResponseTypes           []string        `json:"response_types,omitempty"`
	Scope                   string          `json:"scope,omitempty"`
	TokenEndpointAuthMethod string          `json:"token_endpoint_auth_method,omitempty"`
	JWKS                    json.RawMessage `json:"jwks,omitempty"`
	JWKSURI                 string          `json:"jwks_uri,omitempty"`
	IDTokenSignedAlg        string          `json:"id_token_signed_response_alg,omitempty"`
	// RequirePAR is require_pushed_authorization_requests (RFC 9126
	// section 6); DPoPBound is dpop_bound_access_tokens (RFC 9449 section
	// 5.2). Nil when absent, so that a FAPI 2.0 profile can tell an
	// explicit false from a default.
	RequirePAR                       *bool    `json:"require_pushed_authorization_requests,omitempty"`
	DPoPBound                        *bool    `json:"dpop_bound_access_tokens,omitempty"`
	BackchannelLogoutURI             string   `json:"backchannel_logout_uri,omitempty"`
	BackchannelLogoutSessionRequired *bool    `json:"backchannel_logout_session_required,omitempty"`
	FrontchannelLogoutURI            string   `json:"frontchannel_logout_uri,omitempty"`
	SubjectType                      string   `json:"subject_type,omitempty"`
	SectorIdentifier                 string   `json:"sector_identifier,omitempty"` // SQIN: the public body
	MinimumACR                       string   `json:"minimum_acr,omitempty"`       // SQIN: urn:sqin:loa:N
	Claims                           []string `json:"claims,omitempty"`            // SQIN: claims the client may receive
	Profile                          string   `json:"profile,omitempty"`           // SQIN: "fapi2"
	Purpose                          string   `json:"purpose,omitempty"`           // SQIN: purpose code for legal authorisations
	// RFC 7592: how the integrator manages the registration.
	RegistrationAccessToken string `json:"registration_access_token,omitempty"`
	RegistrationClientURI   string `json:"registration_client_uri,omitempty"`
}

// Error codes of RFC 7591 section 3.2.2.
const (
	InvalidRedirectURI    = "invalid_redirect_uri"
	InvalidClientMetadata = "invalid_client_metadata"
)

// Error is a refused registration: an RFC 7591 error code and a
// description that names the member at fault.
type Error struct {
	Code        string // InvalidRedirectURI or InvalidClientMetadata
	Field       string // the metadata member, e.g. redirect_uris
	Description string
}

func (e *Error) Error() string { return e.Code + ": " + e.Description }

func invalid(field, format string, args ...any) *Error {
	return &Error{Code: InvalidClientMetadata, Field: field, Description: fmt.Sprintf(format, args...)}
}

// MaxSize is the largest metadata document Decode accepts.
const MaxSize = 64 << 10

// Decode parses a metadata document: one JSON object, each member at most
// once, known members with the JSON type RFC 7591 gives them. Errors are
// *Error with code invalid_client_metadata.
func Decode(data []byte) (*Metadata, error) {
	if len(data) > MaxSize {
		return nil, invalid("", "the metadata document is larger than %d bytes", MaxSize)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, invalid("", "the body must be one JSON object of client metadata")
	}
	m := new(Metadata)
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, invalid("", "the body is not valid JSON")
		}
		key, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, invalid("", "the body is not valid JSON")
		}
		if seen[key] {
			return nil, invalid(key, "member %q appears more than once", key)
		}
		seen[key] = true
		if err := m.set(key, raw); err != nil {
			return nil, err
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, invalid("", "the body is not valid JSON")
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, invalid("", "the body must hold one JSON object and nothing after it")
	}
	return m, nil
}

// set decodes one member; unknown members are ignored.
func (m *Metadata) set(key string, raw json.RawMessage) error {
	var dst any
	want := "a string"
	switch key {
	case "client_id":
		dst = &m.ClientID
	case "client_secret":
		dst = &m.ClientSecret
	case "client_name":
		dst = &m.ClientName
	case "redirect_uris":
		dst, want = &m.RedirectURIs, "an array of strings"
	case "post_logout_redirect_uris":
		dst, want = &m.PostLogoutRedirectURIs, "an array of strings"
	case "grant_types":
		dst, want = &m.GrantTypes, "an array of strings"
	case "response_types":
		dst, want = &m.ResponseTypes, "an array of strings"
	case "scope":
		dst, want = &m.Scope, "a string of space-separated scopes"
	case "token_endpoint_auth_method":
		dst = &m.TokenEndpointAuthMethod
	case "jwks":
		if string(raw) == "null" {
			return nil
		}
		if !bytes.HasPrefix(raw, []byte("{")) {
			return invalid(key, "jwks must be a JSON Web Key Set object")
		}
		m.JWKS = bytes.Clone(raw)
		return nil
	case "jwks_uri":
		dst = &m.JWKSURI
	case "id_token_signed_response_alg":
		dst = &m.IDTokenSignedAlg
	case "require_pushed_authorization_requests":
		dst, want = &m.RequirePAR, "a boolean"
	case "dpop_bound_access_tokens":
		dst, want = &m.DPoPBound, "a boolean"
	case "backchannel_logout_uri":
		dst = &m.BackchannelLogoutURI
	case "backchannel_logout_session_required":
		dst, want = &m.BackchannelLogoutSessionRequired, "a boolean"
	case "frontchannel_logout_uri":
		dst = &m.FrontchannelLogoutURI
	case "subject_type":
		dst = &m.SubjectType
	case "sector_identifier":
		dst = &m.SectorIdentifier
	case "minimum_acr":
		dst = &m.MinimumACR
	case "claims":
		dst, want = &m.Claims, "an array of claim names"
	case "profile":
		dst = &m.Profile
	case "purpose":
		dst = &m.Purpose
	// Understood, but asking for what SQIN does not do: refuse rather
	// than ignore, so that the integrator is not misled.
	case "tls_client_certificate_bound_access_tokens":
		var b bool
		if json.Unmarshal(raw, &b) == nil && b {
			return invalid(key, "tls_client_certificate_bound_access_tokens is not supported: use dpop_bound_access_tokens")
		}
		return nil
	case "sector_identifier_uri":
		var s string
		if json.Unmarshal(raw, &s) == nil && s == "" {
			return nil
		}
		return invalid(key, "sector_identifier_uri is not supported: SQIN names the public body with sector_identifier")
	default:
		return nil
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return invalid(key, "%s must be %s", key, want)
	}
	return nil
}

// FromClient describes c in metadata, without secrets or registration
// members.
func FromClient(c *sqin.Client) *Metadata {
	b := func(v bool) *bool { return &v }
	m := &Metadata{
		ClientID:                c.ID,
		ClientName:              c.Name,
		RedirectURIs:            c.RedirectURIs,
		PostLogoutRedirectURIs:  c.PostLogoutRedirectURIs,
		GrantTypes:              c.GrantTypes,
		Scope:                   strings.Join(c.Scopes, " "),
		TokenEndpointAuthMethod: c.AuthMethod,
		JWKS:                    json.RawMessage(c.JWKS),
		JWKSURI:                 c.JWKSURI,
		IDTokenSignedAlg:        c.SigningAlg,
		RequirePAR:              b(c.RequirePAR),
		DPoPBound:               b(c.RequireDPoP),
		BackchannelLogoutURI:    c.BackchannelLogoutURI,
		FrontchannelLogoutURI:   c.FrontchannelLogoutURI,
		SubjectType:             c.SubjectType,
		SectorIdentifier:        c.SectorID(),
		MinimumACR:              c.MinLoA.ACR(),
		Claims:                  c.Claims,
		Profile:                 c.Profile,
		Purpose:                 c.Purpose,
	}
	if len(c.JWKS) == 0 {
		m.JWKS = nil
	}
	if c.HasGrant(sqin.GrantAuthorizationCode) {
		m.ResponseTypes = []string{"code"}
	}
	if m.SubjectType == "" {
		m.SubjectType = sqin.SubjectPairwise
	}
	if c.BackchannelLogoutURI != "" {
		// Logout tokens always carry sid.
		m.BackchannelLogoutSessionRequired = b(true)
	}
	if !c.CreatedAt.IsZero() {
		m.ClientIDIssuedAt = c.CreatedAt.Unix()
	}
	return m
}
