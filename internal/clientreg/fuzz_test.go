package clientreg

import (
	"encoding/json"
	"testing"
)

// FuzzDecodeValidate: the decoder and the validator never panic, and what
// validates round-trips: described again, it validates to the same client
// and the same metadata.
func FuzzDecodeValidate(f *testing.F) {
	ec, _ := json.Marshal(map[string]any{"keys": []any{jwk(f, "ec", true, map[string]any{"kid": "k1"})}})
	for _, s := range []string{
		`{"client_id":"rp","redirect_uris":["https://rp.example/cb"]}`,
		`{"client_id":"rp","redirect_uris":["http://127.0.0.1:8080/cb"],"token_endpoint_auth_method":"none","grant_types":["authorization_code","refresh_token"],"scope":"openid offline_access"}`,
		`{"client_id":"m2m","grant_types":["client_credentials"],"token_endpoint_auth_method":"client_secret_post","client_secret":"0123456789abcdef"}`,
		`{"client_id":"fapi","redirect_uris":["https://rp.example/cb"],"profile":"fapi2","jwks":` + string(ec) + `}`,
		`{"client_id":"rp","redirect_uris":["https://rp.example/cb"],"jwks_uri":"https://rp.example/jwks","token_endpoint_auth_method":"private_key_jwt","dpop_bound_access_tokens":true,"require_pushed_authorization_requests":true}`,
		`{"client_id":"rp","redirect_uris":["https://rp.example/cb"],"subject_type":"public","sector_identifier":"saaq","minimum_acr":"urn:sqin:loa:3","claims":["email"],"backchannel_logout_uri":"https://rp.example/bc","frontchannel_logout_uri":"https://rp.example/fc","post_logout_redirect_uris":["https://rp.example/"]}`,
		`{"client_id":"rp","redirect_uris":["https://rp.example/cb#f"]}`,
		`{"client_id":"rp","jwks":{"keys":[{"kty":"oct","k":"AAAA"}]}}`,
		`{"a":1,"a":2}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Decode(data)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Decode error %T: %v", err, err)
			}
			return
		}
		opt := Options{AllowPublicSubject: true}
		if _, err := Validate(m, opt); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("Validate error %T: %v", err, err)
			}
			return
		}
		m.ClientSecret = "" // never part of a description
		roundTrip(t, m, opt)
	})
}
