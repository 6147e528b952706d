package clientreg

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/go-jose/go-jose/v4"

	"github.com/sqin/sqin"
)

// testKeys are generated once per run.
var testKeys = sync.OnceValue(func() map[string]any {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ec384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsa2048, _ := rsa.GenerateKey(rand.Reader, 2048)
	rsa1024, _ := rsa.GenerateKey(rand.Reader, 1024)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	return map[string]any{"ec": ec, "ec384": ec384, "rsa": rsa2048, "rsa1024": rsa1024, "ed": ed}
})

// jwk returns the JWK of a test key as a map; public selects its public
// part.
func jwk(t testing.TB, name string, public bool, extra map[string]any) map[string]any {
	t.Helper()
	k := testKeys()[name]
	if public {
		switch k := k.(type) {
		case *ecdsa.PrivateKey:
			return jwkOf(t, &k.PublicKey, extra)
		case *rsa.PrivateKey:
			return jwkOf(t, &k.PublicKey, extra)
		case ed25519.PrivateKey:
			return jwkOf(t, k.Public(), extra)
		}
	}
	return jwkOf(t, k, extra)
}

func jwkOf(t testing.TB, key any, extra map[string]any) map[string]any {
	b, err := json.Marshal(jose.JSONWebKey{Key: key})
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for k, v := range extra {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = v
		}
	}
	return m
}

func jwks(t testing.TB, keys ...map[string]any) json.RawMessage {
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// valid is a confidential client that passes validation.
func valid() *Metadata {
	return &Metadata{ClientID: "saaq-permis", ClientName: "Permis de conduire",
		RedirectURIs: []string{"https://permis.saaq.example/cb"}, Scope: "openid profile"}
}

func no() *bool { v := false; return &v }

func TestValidateRules(t *testing.T) {
	ecJWKS := jwks(t, jwk(t, "ec", true, nil))
	tests := []struct {
		name  string
		edit  func(m *Metadata)
		opt   Options
		code  string // "" = valid
		field string
		want  string // in the description
	}{
		{"valid", func(m *Metadata) {}, Options{}, "", "", ""},

		// client_id and client_name
		{"no client_id", func(m *Metadata) { m.ClientID = "" }, Options{}, InvalidClientMetadata, "client_id", "client_id"},
		{"client_id with slash", func(m *Metadata) { m.ClientID = "a/b" }, Options{}, InvalidClientMetadata, "client_id", "client_id"},
		{"client_id with colon", func(m *Metadata) { m.ClientID = "a:b" }, Options{}, InvalidClientMetadata, "client_id", "client_id"},
		{"client_id too long", func(m *Metadata) { m.ClientID = strings.Repeat("a", 129) }, Options{}, InvalidClientMetadata, "client_id", "128"},
		{"client_id non-ASCII", func(m *Metadata) { m.ClientID = "québec" }, Options{}, InvalidClientMetadata, "client_id", "client_id"},
		{"name with control", func(m *Metadata) { m.ClientName = "a\x00b" }, Options{}, InvalidClientMetadata, "client_name", "control"},
		{"name too long", func(m *Metadata) { m.ClientName = strings.Repeat("é", 201) }, Options{}, InvalidClientMetadata, "client_name", "200"},

		// redirect URIs
		{"http on a public host", func(m *Metadata) { m.RedirectURIs = []string{"http://rp.example/cb"} }, Options{}, InvalidRedirectURI, "redirect_uris", "use https"},
		{"http on 127.0.0.1", func(m *Metadata) { m.RedirectURIs = []string{"http://127.0.0.1:9000/cb"} }, Options{}, "", "", ""},
		{"http on [::1]", func(m *Metadata) { m.RedirectURIs = []string{"http://[::1]:9000/cb"} }, Options{}, "", "", ""},
		{"http on localhost", func(m *Metadata) { m.RedirectURIs = []string{"http://localhost:9000/cb"} }, Options{}, "", "", ""},
		{"http on localhost.evil", func(m *Metadata) { m.RedirectURIs = []string{"http://localhost.evil.example/cb"} }, Options{}, InvalidRedirectURI, "redirect_uris", "loopback"},
		{"fragment", func(m *Metadata) { m.RedirectURIs = []string{"https://rp.example/cb#x"} }, Options{}, InvalidRedirectURI, "redirect_uris", "fragment"},
		{"empty fragment", func(m *Metadata) { m.RedirectURIs = []string{"https://rp.example/cb#"} }, Options{}, InvalidRedirectURI, "redirect_uris", "fragment"},
		{"wildcard host", func(m *Metadata) { m.RedirectURIs = []string{"https://*.rp.example/cb"} }, Options{}, InvalidRedirectURI, "redirect_uris", "wildcard"},
		{"wildcard path", func(m *Metadata) { m.RedirectURIs = []string{"https://rp.example/*"} }, Options{}, InvalidRedirectURI, "redirect_uris", "wildcard"},
		{"userinfo", func(m *Metadata) { m.RedirectURIs = []string{"https://user:pw@rp.example/cb"} }, Options{}, InvalidRedirectURI, "redirect_uris", "credentials"},
		{"relative", func(m *Metadata) { m.RedirectURIs = []string{"/cb"} }, Options{}, InvalidRedirectURI, "redirect_uris", "absolute"},
		{"custom scheme", func(m *Metadata) { m.RedirectURIs = []string{"ca.gouv.app:/cb"} }, Options{}, InvalidRedirectURI, "redirect_uris", "absolute"},
		{"javascript", func(m *Metadata) { m.RedirectURIs = []string{"javascript://rp.example/%0aalert(1)"} }, Options{}, InvalidRedirectURI, "redirect_uris", "scheme"},
		{"upper-case scheme", func(m *Metadata) { m.RedirectURIs = []string{"HTTPS://rp.example/cb"} }, Options{}, InvalidRedirectURI, "redirect_uris", "lower case"},
		{"space", func(m *Metadata) { m.RedirectURIs = []string{"https://rp.example/a b"} }, Options{}, InvalidRedirectURI, "redirect_uris", "printable ASCII"},
		{"non-ASCII", func(m *Metadata) { m.RedirectURIs = []string{"https://rp.example/é"} }, Options{}, InvalidRedirectURI, "redirect_uris", "percent-encode"},
		{"backslash", func(m *Metadata) { m.RedirectURIs = []string{`https://rp.example\@evil.example/`} }, Options{}, InvalidRedirectURI, "redirect_uris", "backslash"},
		{"bad port", func(m *Metadata) { m.RedirectURIs = []string{"https://rp.example:x/cb"} }, Options{}, InvalidRedirectURI, "redirect_uris", "absolute"},
		{"no host", func(m *Metadata) { m.RedirectURIs = []string{"https:///cb"} }, Options{}, InvalidRedirectURI, "redirect_uris", "absolute"},
		{"second URI names index", func(m *Metadata) { m.RedirectURIs = []string{"https://rp.example/cb", "http://rp.example/cb"} }, Options{}, InvalidRedirectURI, "redirect_uris", "redirect_uris[1]"},
		{"duplicate URI", func(m *Metadata) { m.RedirectURIs = []string{"https://rp.example/cb", "https://rp.example/cb"} }, Options{}, InvalidRedirectURI, "redirect_uris", "twice"},
		{"too many URIs", func(m *Metadata) {
			m.RedirectURIs = nil
			for i := range 21 {
				m.RedirectURIs = append(m.RedirectURIs, "https://rp.example/cb"+strings.Repeat("x", i))
			}
		}, Options{}, InvalidRedirectURI, "redirect_uris", "at most 20"},
		{"too long URI", func(m *Metadata) { m.RedirectURIs = []string{"https://rp.example/" + strings.Repeat("a", 2000)} }, Options{}, InvalidRedirectURI, "redirect_uris", "longer"},
		{"no redirect for code", func(m *Metadata) { m.RedirectURIs = nil }, Options{}, InvalidRedirectURI, "redirect_uris", "required"},
		{"post-logout http", func(m *Metadata) { m.PostLogoutRedirectURIs = []string{"http://rp.example/"} }, Options{}, InvalidClientMetadata, "post_logout_redirect_uris", "use https"},
		{"post-logout fragment", func(m *Metadata) { m.PostLogoutRedirectURIs = []string{"https://rp.example/#bye"} }, Options{}, InvalidClientMetadata, "post_logout_redirect_uris", "fragment"},

		// grant and response types
		{"unknown grant", func(m *Metadata) { m.GrantTypes = []string{"implicit"} }, Options{}, InvalidClientMetadata, "grant_types", "unknown grant type"},
		{"password grant", func(m *Metadata) { m.GrantTypes = []string{"password"} }, Options{}, InvalidClientMetadata, "grant_types", "unknown grant type"},
		{"empty grants", func(m *Metadata) { m.GrantTypes = []string{} }, Options{}, InvalidClientMetadata, "grant_types", "empty"},
		{"duplicate grant", func(m *Metadata) { m.GrantTypes = []string{"authorization_code", "authorization_code"} }, Options{}, InvalidClientMetadata, "grant_types", "twice"},
		{"refresh without code", func(m *Metadata) { m.GrantTypes = []string{"client_credentials", "refresh_token"} }, Options{}, InvalidClientMetadata, "grant_types", "refresh_token needs"},
		{"public client_credentials", func(m *Metadata) {
			m.TokenEndpointAuthMethod, m.GrantTypes = "none", []string{"client_credentials"}
		}, Options{}, InvalidClientMetadata, "grant_types", "public client"},
		{"machine client", func(m *Metadata) { m.GrantTypes, m.RedirectURIs = []string{"client_credentials"}, nil }, Options{}, "", "", ""},
		{"response type token", func(m *Metadata) { m.ResponseTypes = []string{"token"} }, Options{}, InvalidClientMetadata, "response_types", `["code"]`},
		{"response type code id_token", func(m *Metadata) { m.ResponseTypes = []string{"code id_token"} }, Options{}, InvalidClientMetadata, "response_types", `["code"]`},
		{"response type code", func(m *Metadata) { m.ResponseTypes = []string{"code"} }, Options{}, "", "", ""},
		{"response type without code grant", func(m *Metadata) {
			m.GrantTypes, m.ResponseTypes = []string{"client_credentials"}, []string{"code"}
		}, Options{}, InvalidClientMetadata, "response_types", "empty"},

		// authentication
		{"unknown auth", func(m *Metadata) { m.TokenEndpointAuthMethod = "client_secret_jwt" }, Options{}, InvalidClientMetadata, "token_endpoint_auth_method", "not supported"},
		{"mtls auth", func(m *Metadata) { m.TokenEndpointAuthMethod = "tls_client_auth" }, Options{}, InvalidClientMetadata, "token_endpoint_auth_method", "not supported"},
		{"short secret", func(m *Metadata) { m.ClientSecret = "short" }, Options{}, InvalidClientMetadata, "client_secret", "at least 12"},
		{"secret with none", func(m *Metadata) { m.TokenEndpointAuthMethod, m.ClientSecret = "none", "0123456789abcdef" }, Options{}, InvalidClientMetadata, "client_secret", "makes no sense"},
		{"private_key_jwt without keys", func(m *Metadata) { m.TokenEndpointAuthMethod = "private_key_jwt" }, Options{}, InvalidClientMetadata, "jwks", "jwks or jwks_uri"},
		{"private_key_jwt with jwks", func(m *Metadata) { m.TokenEndpointAuthMethod, m.JWKS = "private_key_jwt", ecJWKS }, Options{}, "", "", ""},
		{"private_key_jwt with jwks_uri", func(m *Metadata) {
			m.TokenEndpointAuthMethod, m.JWKSURI = "private_key_jwt", "https://permis.saaq.example/jwks.json"
		}, Options{}, "", "", ""},

		// keys
		{"jwks and jwks_uri", func(m *Metadata) { m.JWKS, m.JWKSURI = ecJWKS, "https://rp.example/jwks" }, Options{}, InvalidClientMetadata, "jwks", "mutually exclusive"},
		{"jwks_uri http", func(m *Metadata) { m.JWKSURI = "http://rp.example/jwks" }, Options{}, InvalidClientMetadata, "jwks_uri", "https"},
		{"jwks_uri loopback http", func(m *Metadata) { m.JWKSURI = "http://127.0.0.1/jwks" }, Options{}, InvalidClientMetadata, "jwks_uri", "https"},
		{"jwks_uri loopback https", func(m *Metadata) { m.JWKSURI = "https://127.0.0.1/jwks" }, Options{}, InvalidClientMetadata, "jwks_uri", "public host"},
		{"jwks_uri private IP", func(m *Metadata) { m.JWKSURI = "https://10.1.2.3/jwks" }, Options{}, InvalidClientMetadata, "jwks_uri", "public host"},
		{"jwks_uri metadata IP", func(m *Metadata) { m.JWKSURI = "https://169.254.169.254/latest" }, Options{}, InvalidClientMetadata, "jwks_uri", "public host"},
		{"jwks_uri localhost", func(m *Metadata) { m.JWKSURI = "https://localhost/jwks" }, Options{}, InvalidClientMetadata, "jwks_uri", "public host"},
		{"jwks_uri single label", func(m *Metadata) { m.JWKSURI = "https://intranet/jwks" }, Options{}, InvalidClientMetadata, "jwks_uri", "public host"},
		{"jwks_uri fragment", func(m *Metadata) { m.JWKSURI = "https://rp.example/jwks#k" }, Options{}, InvalidClientMetadata, "jwks_uri", "fragment"},
		{"jwks_uri userinfo", func(m *Metadata) { m.JWKSURI = "https://a@rp.example/jwks" }, Options{}, InvalidClientMetadata, "jwks_uri", "credentials"},
		{"jwks private EC key", func(m *Metadata) { m.JWKS = jwks(t, jwk(t, "ec", false, nil)) }, Options{}, InvalidClientMetadata, "jwks", `private member "d"`},
		{"jwks private RSA key", func(m *Metadata) { m.JWKS = jwks(t, jwk(t, "rsa", false, nil)) }, Options{}, InvalidClientMetadata, "jwks", "private member"},
		{"jwks private Ed25519 key", func(m *Metadata) { m.JWKS = jwks(t, jwk(t, "ed", false, nil)) }, Options{}, InvalidClientMetadata, "jwks", `private member "d"`},
		{"jwks symmetric key", func(m *Metadata) {
			m.JWKS = json.RawMessage(`{"keys":[{"kty":"oct","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"}]}`)
		}, Options{}, InvalidClientMetadata, "jwks", `private member "k"`},
		{"jwks RSA and Ed25519 public", func(m *Metadata) {
			m.JWKS = jwks(t, jwk(t, "rsa", true, map[string]any{"kid": "r"}), jwk(t, "ed", true, map[string]any{"kid": "e"}))
		}, Options{}, "", "", ""},
		{"jwks empty", func(m *Metadata) { m.JWKS = json.RawMessage(`{"keys":[]}`) }, Options{}, InvalidClientMetadata, "jwks", "at least one key"},
		{"jwks not a set", func(m *Metadata) { m.JWKS = json.RawMessage(`{"kty":"EC"}`) }, Options{}, InvalidClientMetadata, "jwks", `"keys"`},
		{"jwks garbage key", func(m *Metadata) { m.JWKS = json.RawMessage(`{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA"}]}`) }, Options{}, InvalidClientMetadata, "jwks", "jwks.keys[0]"},
		{"jwks P-384", func(m *Metadata) { m.JWKS = jwks(t, jwk(t, "ec384", true, nil)) }, Options{}, InvalidClientMetadata, "jwks", "P-256"},
		{"jwks small RSA", func(m *Metadata) { m.JWKS = jwks(t, jwk(t, "rsa1024", true, nil)) }, Options{}, InvalidClientMetadata, "jwks", "2048"},
		{"jwks HS256 alg", func(m *Metadata) { m.JWKS = jwks(t, jwk(t, "ec", true, map[string]any{"alg": "HS256"})) }, Options{}, InvalidClientMetadata, "jwks", `alg "HS256"`},
		{"jwks bad use", func(m *Metadata) { m.JWKS = jwks(t, jwk(t, "ec", true, map[string]any{"use": "both"})) }, Options{}, InvalidClientMetadata, "jwks", "use"},
		{"jwks encryption only", func(m *Metadata) { m.JWKS = jwks(t, jwk(t, "ec", true, map[string]any{"use": "enc"})) }, Options{}, InvalidClientMetadata, "jwks", "no signing key"},
		{"jwks two keys without kid", func(m *Metadata) { m.JWKS = jwks(t, jwk(t, "ec", true, nil), jwk(t, "ed", true, nil)) }, Options{}, InvalidClientMetadata, "jwks", "needs a kid"},
		{"jwks duplicate kid", func(m *Metadata) {
			m.JWKS = jwks(t, jwk(t, "ec", true, map[string]any{"kid": "a"}), jwk(t, "ed", true, map[string]any{"kid": "a"}))
		}, Options{}, InvalidClientMetadata, "jwks", "used twice"},

		// scopes, claims, levels, subjects
		{"unknown scope", func(m *Metadata) { m.Scope = "openid everything" }, Options{}, InvalidClientMetadata, "scope", "unknown scope"},
		{"double space", func(m *Metadata) { m.Scope = "openid  profile" }, Options{}, InvalidClientMetadata, "scope", "single spaces"},
		{"duplicate scope", func(m *Metadata) { m.Scope = "openid openid" }, Options{}, InvalidClientMetadata, "scope", "twice"},
		{"all scopes", func(m *Metadata) { m.Scope = strings.Join(KnownScopes, " ") }, Options{}, "", "", ""},
		{"unknown claim", func(m *Metadata) { m.Claims = []string{"health_number"} }, Options{}, InvalidClientMetadata, "claims", "unknown claim"},
		{"known claims", func(m *Metadata) { m.Claims = []string{"given_name", "family_name"} }, Options{}, "", "", ""},
		{"minimum_acr 4", func(m *Metadata) { m.MinimumACR = "urn:sqin:loa:4" }, Options{}, InvalidClientMetadata, "minimum_acr", "urn:sqin:loa:1"},
		{"minimum_acr foreign", func(m *Metadata) { m.MinimumACR = "urn:mace:incommon:iap:silver" }, Options{}, InvalidClientMetadata, "minimum_acr", "minimum_acr"},
		{"minimum_acr 3", func(m *Metadata) { m.MinimumACR = "urn:sqin:loa:3" }, Options{}, "", "", ""},
		{"subject public not allowed", func(m *Metadata) { m.SubjectType = "public" }, Options{}, InvalidClientMetadata, "subject_type", "approval"},
		{"subject public allowed", func(m *Metadata) { m.SubjectType = "public" }, Options{AllowPublicSubject: true}, "", "", ""},
		{"subject unknown", func(m *Metadata) { m.SubjectType = "global" }, Options{AllowPublicSubject: true}, InvalidClientMetadata, "subject_type", "pairwise or public"},
		{"sector with space", func(m *Metadata) { m.SectorIdentifier = "saaq permis" }, Options{}, InvalidClientMetadata, "sector_identifier", "sector_identifier"},
		{"signing alg HS256", func(m *Metadata) { m.IDTokenSignedAlg = "HS256" }, Options{}, InvalidClientMetadata, "id_token_signed_response_alg", "not supported"},
		{"signing alg none", func(m *Metadata) { m.IDTokenSignedAlg = "none" }, Options{}, InvalidClientMetadata, "id_token_signed_response_alg", "not supported"},

		// logout
		{"backchannel http", func(m *Metadata) { m.BackchannelLogoutURI = "http://rp.example/bc" }, Options{}, InvalidClientMetadata, "backchannel_logout_uri", "use https"},
		{"backchannel fragment", func(m *Metadata) { m.BackchannelLogoutURI = "https://rp.example/bc#x" }, Options{}, InvalidClientMetadata, "backchannel_logout_uri", "fragment"},
		{"backchannel loopback", func(m *Metadata) { m.BackchannelLogoutURI = "http://127.0.0.1:8000/bc" }, Options{}, "", "", ""},
		{"frontchannel other origin", func(m *Metadata) { m.FrontchannelLogoutURI = "https://other.example/fc" }, Options{}, InvalidClientMetadata, "frontchannel_logout_uri", "redirect_uris"},
		{"frontchannel other port", func(m *Metadata) { m.FrontchannelLogoutURI = "https://permis.saaq.example:8443/fc" }, Options{}, InvalidClientMetadata, "frontchannel_logout_uri", "redirect_uris"},
		{"frontchannel same origin", func(m *Metadata) { m.FrontchannelLogoutURI = "https://permis.saaq.example:443/fc?x=1" }, Options{}, "", "", ""},
		{"frontchannel wildcard", func(m *Metadata) { m.FrontchannelLogoutURI = "https://*.saaq.example/fc" }, Options{}, InvalidClientMetadata, "frontchannel_logout_uri", "wildcard"},

		// FAPI 2.0
		{"profile unknown", func(m *Metadata) { m.Profile = "fapi1" }, Options{}, InvalidClientMetadata, "profile", "fapi2"},
		{"fapi2 defaults", func(m *Metadata) { m.Profile, m.JWKS = "fapi2", ecJWKS }, Options{}, "", "", ""},
		{"fapi2 secret", func(m *Metadata) { m.Profile, m.TokenEndpointAuthMethod = "fapi2", "client_secret_basic" }, Options{}, InvalidClientMetadata, "token_endpoint_auth_method", "private_key_jwt"},
		{"fapi2 public", func(m *Metadata) { m.Profile, m.TokenEndpointAuthMethod = "fapi2", "none" }, Options{}, InvalidClientMetadata, "token_endpoint_auth_method", "private_key_jwt"},
		{"fapi2 without keys", func(m *Metadata) { m.Profile = "fapi2" }, Options{}, InvalidClientMetadata, "jwks", "jwks or jwks_uri"},
		{"fapi2 without PAR", func(m *Metadata) { m.Profile, m.JWKS, m.RequirePAR = "fapi2", ecJWKS, no() }, Options{}, InvalidClientMetadata, "require_pushed_authorization_requests", "fapi2"},
		{"fapi2 without DPoP", func(m *Metadata) { m.Profile, m.JWKS, m.DPoPBound = "fapi2", ecJWKS, no() }, Options{}, InvalidClientMetadata, "dpop_bound_access_tokens", "fapi2"},
		{"fapi2 RS256", func(m *Metadata) { m.Profile, m.JWKS, m.IDTokenSignedAlg = "fapi2", ecJWKS, "RS256" }, Options{}, InvalidClientMetadata, "id_token_signed_response_alg", "PS256 or ES256"},
		{"fapi2 PS256", func(m *Metadata) { m.Profile, m.JWKS, m.IDTokenSignedAlg = "fapi2", ecJWKS, "PS256" }, Options{}, "", "", ""},
		{"fapi2 RS256 key", func(m *Metadata) {
			m.Profile, m.JWKS = "fapi2", jwks(t, jwk(t, "rsa", true, map[string]any{"alg": "RS256"}))
		}, Options{}, InvalidClientMetadata, "jwks", `alg "RS256"`},
		{"fapi2 client_credentials", func(m *Metadata) {
			m.Profile, m.JWKS, m.GrantTypes = "fapi2", ecJWKS, []string{"authorization_code", "client_credentials"}
		}, Options{}, "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := valid()
			tt.edit(m)
			c, err := Validate(m, tt.opt)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if c == nil || c.ID != m.ClientID {
					t.Fatalf("client %+v", c)
				}
				return
			}
			e, ok := err.(*Error)
			if !ok {
				t.Fatalf("error %v (%T), want %s on %s", err, err, tt.code, tt.field)
			}
			if e.Code != tt.code || e.Field != tt.field || !strings.Contains(e.Description, tt.want) {
				t.Fatalf("error %s on %s: %q\nwant %s on %s containing %q", e.Code, e.Field, e.Description, tt.code, tt.field, tt.want)
			}
			if !strings.Contains(e.Description, tt.field) && tt.field != "jwks" {
				t.Errorf("description %q does not name the member %s", e.Description, tt.field)
			}
		})
	}
}

func TestValidateDefaults(t *testing.T) {
	c, err := Validate(&Metadata{ClientID: "rp", RedirectURIs: []string{"https://rp.example/cb"}}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := &sqin.Client{ID: "rp", Name: "rp", RedirectURIs: []string{"https://rp.example/cb"},
		GrantTypes: []string{"authorization_code"}, Scopes: []string{"openid"}, AuthMethod: sqin.AuthSecretBasic,
		SigningAlg: "ES256", MinLoA: sqin.LoA1, SubjectType: sqin.SubjectPairwise}
	if !reflect.DeepEqual(c, want) {
		t.Fatalf("defaults:\n got %+v\nwant %+v", c, want)
	}

	// FAPI 2.0 fills in what it requires; the sector equal to the client's
	// own ID is dropped (it is the default); the JWKS is stored compact.
	m := &Metadata{ClientID: "rp", RedirectURIs: []string{"https://rp.example/cb"}, Profile: "fapi2",
		SectorIdentifier: "rp", JWKS: json.RawMessage("{ \"keys\" : [ " + string(jwks(t, jwk(t, "ec", true, nil))[9:]))}
	c, err = Validate(m, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.AuthMethod != sqin.AuthPrivateKey || !c.RequirePAR || !c.RequireDPoP || c.SigningAlg != "ES256" || c.Sector != "" {
		t.Fatalf("fapi2 client %+v", c)
	}
	if strings.ContainsAny(string(c.JWKS), " \n") {
		t.Fatalf("JWKS not compacted: %s", c.JWKS)
	}
}

func TestDecode(t *testing.T) {
	tests := []struct {
		name, body string
		field      string // of the error; "-" = no error
		want       string
	}{
		{"ok", `{"client_name":"x","redirect_uris":["https://a.example/cb"],"extension":{"a":[1,2]}}`, "-", ""},
		{"not an object", `["a"]`, "", "one JSON object"},
		{"empty", ``, "", "one JSON object"},
		{"trailing", `{} {}`, "", "nothing after"},
		{"truncated", `{"client_name":"x"`, "", "not valid JSON"},
		{"duplicate", `{"redirect_uris":["https://a.example/cb"],"redirect_uris":["https://evil.example/cb"]}`, "redirect_uris", "more than once"},
		{"duplicate unknown", `{"x":1,"x":2}`, "x", "more than once"},
		{"wrong type", `{"redirect_uris":"https://a.example/cb"}`, "redirect_uris", "array of strings"},
		{"wrong bool", `{"dpop_bound_access_tokens":"true"}`, "dpop_bound_access_tokens", "boolean"},
		{"wrong scope type", `{"scope":["openid"]}`, "scope", "space-separated"},
		{"jwks string", `{"jwks":"{}"}`, "jwks", "Key Set"},
		{"mtls", `{"tls_client_certificate_bound_access_tokens":true}`, "tls_client_certificate_bound_access_tokens", "dpop_bound_access_tokens"},
		{"sector uri", `{"sector_identifier_uri":"https://a.example/s.json"}`, "sector_identifier_uri", "sector_identifier"},
		{"too large", `{"client_name":"` + strings.Repeat("a", MaxSize) + `"}`, "", "larger"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Decode([]byte(tt.body))
			if tt.field == "-" {
				if err != nil || m == nil {
					t.Fatalf("Decode: %v", err)
				}
				return
			}
			e, ok := err.(*Error)
			if !ok || e.Code != InvalidClientMetadata || e.Field != tt.field || !strings.Contains(e.Description, tt.want) {
				t.Fatalf("error %#v, want invalid_client_metadata on %q containing %q", err, tt.field, tt.want)
			}
		})
	}
	// Names match exactly: a member spelt otherwise is an unknown one.
	m, err := Decode([]byte(`{"Redirect_URIs":["http://evil.example/"],"redirect_uris":["https://a.example/cb"]}`))
	if err != nil || len(m.RedirectURIs) != 1 || m.RedirectURIs[0] != "https://a.example/cb" {
		t.Fatalf("case variant: %+v, %v", m, err)
	}
	// null is absent.
	m, err = Decode([]byte(`{"jwks":null,"require_pushed_authorization_requests":null,"grant_types":null}`))
	if err != nil || m.JWKS != nil || m.RequirePAR != nil || m.GrantTypes != nil {
		t.Fatalf("nulls: %+v, %v", m, err)
	}
}

// A validated client described again validates to the same client.
func TestRoundTrip(t *testing.T) {
	m := &Metadata{ClientID: "rp", ClientName: " Ministère ", RedirectURIs: []string{"https://rp.example/cb", "http://[::1]:1/cb"},
		PostLogoutRedirectURIs: []string{"https://rp.example/"}, GrantTypes: []string{"authorization_code", "refresh_token"},
		Scope: "openid email", Claims: []string{"email"}, Profile: "fapi2", IDTokenSignedAlg: "PS256",
		JWKS: jwks(t, jwk(t, "ec", true, map[string]any{"kid": "<k>"})), SubjectType: "public", SectorIdentifier: "saaq",
		MinimumACR: "urn:sqin:loa:2", BackchannelLogoutURI: "https://rp.example/bc", FrontchannelLogoutURI: "https://rp.example/fc"}
	roundTrip(t, m, Options{AllowPublicSubject: true})
}

func roundTrip(t testing.TB, m *Metadata, opt Options) {
	t.Helper()
	c, err := Validate(m, opt)
	if err != nil {
		t.Fatalf("Validate: %v", err)
	}
	out, err := json.Marshal(FromClient(c))
	if err != nil {
		t.Fatal(err)
	}
	m2, err := Decode(out)
	if err != nil {
		t.Fatalf("Decode(%s): %v", out, err)
	}
	c2, err := Validate(m2, opt)
	if err != nil {
		t.Fatalf("Validate(%s): %v", out, err)
	}
	if !reflect.DeepEqual(c, c2) {
		t.Fatalf("round trip changed the client:\n%+v\n%+v\n%s", c, c2, out)
	}
	out2, _ := json.Marshal(FromClient(c2))
	if string(out) != string(out2) {
		t.Fatalf("round trip changed the metadata:\n%s\n%s", out, out2)
	}
}
