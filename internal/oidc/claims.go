package oidc

import (
	"encoding/json"
	"slices"
	"strings"

	"github.com/sqin/sqin"
)

// claimDef declares one claim: the scope that asks for it and how its value
// is taken from the account and the registry person. Every claim SQIN can
// release is declared here, in one place; its label and purpose for the
// consent page are the catalogue keys claim.<name> and purpose.<name>.
type claimDef struct {
	name  string
	scope string
	value func(a *sqin.Account, p *sqin.Person) any // nil when unknown
}

var claimDefs = []claimDef{
	{"name", "profile", func(_ *sqin.Account, p *sqin.Person) any {
		if p == nil {
			return nil
		}
		return strings.TrimSpace(p.GivenName + " " + p.FamilyName)
	}},
	{"given_name", "profile", personStr(func(p *sqin.Person) string { return p.GivenName })},
	{"family_name", "profile", personStr(func(p *sqin.Person) string { return p.FamilyName })},
	{"birthdate", "profile", personStr(func(p *sqin.Person) string { return p.BirthDate })},
	{"gender", "profile", personStr(func(p *sqin.Person) string {
		switch p.Sex {
		case "F":
			return "female"
		case "M":
			return "male"
		case "X":
			return "other"
		}
		return ""
	})},
	{"locale", "profile", func(a *sqin.Account, p *sqin.Person) any {
		l := a.Locale
		if p != nil && p.Language != "" {
			l = p.Language
		}
		if l == "" {
			return nil
		}
		return l + "-CA"
	}},
	// The health-insurance number leaves only under a legal authorisation
	// (release.go): consent cannot stand in for one.
	{"sqin_health_insurance_number", "sqin_health", personStr(func(p *sqin.Person) string { return p.HealthNo })},
	{"email", "email", func(a *sqin.Account, _ *sqin.Person) any { return a.Email }},
	{"email_verified", "email", func(a *sqin.Account, _ *sqin.Person) any { return a.EmailVerified }},
	{"address", "address", func(_ *sqin.Account, p *sqin.Person) any {
		if p == nil || p.Address.Municipality == "" {
			return nil
		}
		return addressClaim(p.Address)
	}},
}

func personStr(f func(*sqin.Person) string) func(*sqin.Account, *sqin.Person) any {
	return func(_ *sqin.Account, p *sqin.Person) any {
		if p == nil {
			return nil
		}
		if s := f(p); s != "" {
			return s
		}
		return nil
	}
}

type addressJSON struct {
	Formatted     string `json:"formatted"`
	StreetAddress string `json:"street_address"`
	Locality      string `json:"locality"`
	Region        string `json:"region"`
	PostalCode    string `json:"postal_code"`
	Country       string `json:"country"`
}

func addressClaim(a sqin.Address) addressJSON {
	street := strings.TrimSpace(a.CivicNumber + " " + a.Street)
	if a.Unit != "" {
		street += ", app. " + a.Unit
	}
	region, country := a.Province, a.Country
	if region == "" {
		region = "QC"
	}
	if country == "" {
		country = "CA"
	}
	return addressJSON{
		Formatted:     street + "\n" + a.Municipality + " (" + region + ") " + a.PostalCode + "\n" + country,
		StreetAddress: street, Locality: a.Municipality, Region: region, PostalCode: a.PostalCode, Country: country,
	}
}

var claimIndex = func() map[string]*claimDef {
	m := make(map[string]*claimDef, len(claimDefs))
	for i := range claimDefs {
		m[claimDefs[i].name] = &claimDefs[i]
	}
	return m
}()

func claimNames() []string {
	names := []string{"sub", "acr", "amr", "auth_time", "sid"}
	for _, d := range claimDefs {
		names = append(names, d.name)
	}
	return names
}

// claimsRequest is the "claims" request parameter (OIDC Core 5.5).
type claimsRequest struct {
	UserInfo map[string]*claimSpec `json:"userinfo,omitempty"`
	IDToken  map[string]*claimSpec `json:"id_token,omitempty"`
}

type claimSpec struct {
	Essential bool  `json:"essential,omitempty"`
	Value     any   `json:"value,omitempty"`
	Values    []any `json:"values,omitempty"`
}

// parseClaimsRequest validates the claims parameter and returns it
// re-encoded (canonical, without unknown members).
func parseClaimsRequest(s string) (*claimsRequest, string, error) {
	if s == "" {
		return &claimsRequest{}, "", nil
	}
	var cr claimsRequest
	dec := json.NewDecoder(strings.NewReader(s))
	if err := dec.Decode(&cr); err != nil || dec.More() {
		return nil, "", oerr(errInvalidRequest, "claims parameter is not valid JSON")
	}
	b, _ := json.Marshal(cr)
	return &cr, string(b), nil
}

// allowed reports whether client c may receive claim name.
func allowed(c *sqin.Client, name string) bool {
	d := claimIndex[name]
	if d == nil {
		return false
	}
	if len(c.Claims) > 0 {
		return slices.Contains(c.Claims, name)
	}
	return slices.Contains(c.Scopes, d.scope)
}

// releasedClaims lists, in declaration order, the claims a request would
// release to client c: those of the granted scopes and those asked for
// individually, restricted to what the client is allowed.
func releasedClaims(c *sqin.Client, scopes []string, cr *claimsRequest) []string {
	var out []string
	for _, d := range claimDefs {
		asked := slices.Contains(scopes, d.scope)
		if cr != nil {
			_, inUI := cr.UserInfo[d.name]
			_, inID := cr.IDToken[d.name]
			asked = asked || inUI || inID
		}
		if asked && allowed(c, d.name) {
			out = append(out, d.name)
		}
	}
	return out
}

// userinfoClaims are the claims for userinfo: scope claims and those asked
// for userinfo, within what was consented (the grant's released set).
func userinfoClaims(c *sqin.Client, scopes []string, cr *claimsRequest) []string {
	var out []string
	for _, d := range claimDefs {
		asked := slices.Contains(scopes, d.scope)
		if cr != nil {
			_, ok := cr.UserInfo[d.name]
			asked = asked || ok
		}
		if asked && allowed(c, d.name) {
			out = append(out, d.name)
		}
	}
	return out
}

// idTokenClaims are the claims asked individually for the ID token.
func idTokenClaims(c *sqin.Client, cr *claimsRequest) []string {
	var out []string
	for _, d := range claimDefs {
		if _, ok := cr.IDToken[d.name]; ok && allowed(c, d.name) {
			out = append(out, d.name)
		}
	}
	return out
}
