package oidc

import (
	"net/http"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/keys"
)

// Supported values, advertised in discovery and enforced by the handlers.
var (
	supportedScopes = []string{"openid", "profile", "email", "address", "sqin_health", "offline_access"}
	acrValues       = []string{sqin.LoA1.ACR(), sqin.LoA2.ACR(), sqin.LoA3.ACR()}
	authMethods     = []string{sqin.AuthSecretBasic, sqin.AuthSecretPost, sqin.AuthPrivateKey, sqin.AuthNone}
	clientAlgNames  = []string{"ES256", "PS256", "RS256", "EdDSA"}
)

type discoveryDoc struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	UserinfoEndpoint                  string   `json:"userinfo_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	EndSessionEndpoint                string   `json:"end_session_endpoint"`
	RegistrationEndpoint              string   `json:"registration_endpoint,omitempty"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	ResponseModesSupported            []string `json:"response_modes_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	SubjectTypesSupported             []string `json:"subject_types_supported"`
	IDTokenSigningAlgValuesSupported  []string `json:"id_token_signing_alg_values_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	RevocationAuthMethodsSupported    []string `json:"revocation_endpoint_auth_methods_supported"`
	IntrospectionAuthMethodsSupported []string `json:"introspection_endpoint_auth_methods_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
	ClaimsSupported                   []string `json:"claims_supported"`
	ClaimsParameterSupported          bool     `json:"claims_parameter_supported"`
	RequestParameterSupported         bool     `json:"request_parameter_supported"`
	RequestObjectSigningAlgs          []string `json:"request_object_signing_alg_values_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	PAREndpoint                       string   `json:"pushed_authorization_request_endpoint"`
	RequirePAR                        bool     `json:"require_pushed_authorization_requests"`
	DPoPSigningAlgs                   []string `json:"dpop_signing_alg_values_supported"`
	RequestURIParameterSupported      bool     `json:"request_uri_parameter_supported"`
	ACRValuesSupported                []string `json:"acr_values_supported"`
	PromptValuesSupported             []string `json:"prompt_values_supported"`
	UILocalesSupported                []string `json:"ui_locales_supported"`
	ClaimsLocalesSupported            []string `json:"claims_locales_supported"`
	AuthorizationResponseIssParameter bool     `json:"authorization_response_iss_parameter_supported"`
	FrontchannelLogoutSupported       bool     `json:"frontchannel_logout_supported"`
	BackchannelLogoutSupported        bool     `json:"backchannel_logout_supported"`
	BackchannelSession                bool     `json:"backchannel_logout_session_supported"`
	FrontchannelSession               bool     `json:"frontchannel_logout_session_supported"`
}

func (p *Provider) discoveryDoc() discoveryDoc {
	iss := p.cfg.Issuer
	return discoveryDoc{
		Issuer:                            iss,
		AuthorizationEndpoint:             iss + "/authorize",
		TokenEndpoint:                     iss + "/token",
		UserinfoEndpoint:                  iss + "/userinfo",
		JWKSURI:                           iss + "/jwks.json",
		RevocationEndpoint:                iss + "/revoke",
		IntrospectionEndpoint:             iss + "/introspect",
		EndSessionEndpoint:                iss + "/logout",
		RegistrationEndpoint:              iss + "/register",
		ScopesSupported:                   supportedScopes,
		ResponseTypesSupported:            []string{"code"},
		ResponseModesSupported:            []string{"query"},
		GrantTypesSupported:               []string{sqin.GrantAuthorizationCode, sqin.GrantRefreshToken, sqin.GrantClientCredentials},
		SubjectTypesSupported:             []string{"pairwise", "public"},
		IDTokenSigningAlgValuesSupported:  keys.SupportedAlgs,
		TokenEndpointAuthMethodsSupported: authMethods,
		RevocationAuthMethodsSupported:    authMethods,
		IntrospectionAuthMethodsSupported: authMethods[:3],
		CodeChallengeMethodsSupported:     []string{"S256"},
		ClaimsSupported:                   claimNames(),
		ClaimsParameterSupported:          true,
		RequestParameterSupported:         true,
		RequestObjectSigningAlgs:          clientAlgNames,
		TokenEndpointAuthSigningAlgs:      clientAlgNames,
		PAREndpoint:                       iss + "/par",
		RequirePAR:                        p.cfg.RequirePAR,
		DPoPSigningAlgs:                   clientAlgNames,
		ACRValuesSupported:                acrValues,
		PromptValuesSupported:             []string{"none", "login", "consent"},
		UILocalesSupported:                []string{"fr-CA", "en-CA"},
		ClaimsLocalesSupported:            []string{"fr-CA", "en-CA"},
		AuthorizationResponseIssParameter: true,
		BackchannelLogoutSupported:        true, // backchannel.go
		BackchannelSession:                true, // logout tokens carry sid
		FrontchannelLogoutSupported:       true, // frontchannel.go
		FrontchannelSession:               true, // frames get iss and sid
	}
}

func (p *Provider) handleDiscovery(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(p.discovery)
}

func (p *Provider) handleJWKS(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/jwk-set+json")
	w.Header().Set("Cache-Control", "public, max-age=60")
	_, _ = w.Write(p.keys.JWKS(r.Context()))
}
