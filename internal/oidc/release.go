package oidc

import (
	"context"
	"slices"
	"strings"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/legal"
	"github.com/sqin/sqin/internal/registry"
)

// Registry claims leave SQIN only under the legal rule (internal/legal,
// docs/authorisations.md): every registry attribute a claim carries must be
// released, under an authorisation in force for the client and its
// declared purpose or, where the law allows it, under the citizen's
// consent. Claims that carry no registry attribute (email) rest on the
// consent alone.

// claimAttributes maps each claim drawn from the registry to the registry
// attributes it carries, from the registry's catalogue; "name" is composed
// of two of them.
var claimAttributes = func() map[string][]string {
	m := map[string][]string{"name": {"family_name", "given_names"}}
	for _, a := range registry.Attributes {
		if a.Claim != "" {
			m[a.Claim] = append(m[a.Claim], a.Name)
		}
	}
	return m
}()

// consentBasis is the legal basis of what a citizen consented to give
// client c (every citizen's grant follows a consent to c).
func consentBasis(c *sqin.Client) string { return "consent:" + c.ID }

// release is the legal decision over the claims about to reach a client.
type release struct {
	// claims holds the claims that may go out: for a registry claim, the
	// release of each attribute it carries; nil for an account claim,
	// which rests on the consent.
	claims map[string][]legal.Release
	// withheld lists the registry attributes withheld, and why;
	// withheldClaims the claims they belong to.
	withheld       []legal.Withholding
	withheldClaims []string
}

// decideRelease applies the legal rule at this instant to the claims names
// for client c. It fails only when the authorisations cannot be read (the
// caller then answers with a server error: nothing is released blindly).
func (p *Provider) decideRelease(ctx context.Context, c *sqin.Client, names []string) (*release, error) {
	auths, err := p.authorisations.Authorisations(ctx)
	if err != nil {
		return nil, err
	}
	now := p.now()
	rel := &release{claims: make(map[string][]legal.Release, len(names))}
	for _, n := range names {
		attrs, ok := claimAttributes[n]
		if !ok {
			rel.claims[n] = nil
			continue
		}
		d := legal.Decide(auths, now, legal.Request{ClientID: c.ID, Body: c.SectorID(), Purpose: c.Purpose,
			Attributes: attrs, Consent: c.ID, ConsentAllowed: registry.ConsentAllowed})
		if len(d.Withheld) == 0 {
			rel.claims[n] = d.Released
			continue
		}
		for _, w := range d.Withheld {
			if !slices.ContainsFunc(rel.withheld, func(x legal.Withholding) bool { return x.Attribute == w.Attribute }) {
				rel.withheld = append(rel.withheld, w)
			}
		}
		rel.withheldClaims = append(rel.withheldClaims, n)
	}
	return rel, nil
}

// releasable returns the claims of names the rule lets through, in order.
func (rel *release) releasable(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if _, ok := rel.claims[n]; ok {
			out = append(out, n)
		}
	}
	return out
}

// resolve fills dst with the values of the released claims among names
// and returns those it filled. Registry values go only into the registry
// claims released as such; a withheld claim is resolved without the
// person (a withheld "locale" still gives the account's own language).
// An account below level 2 gets no registry value at all, even when it
// keeps its person (a password reset by email lowers the level and keeps
// the link, until the citizen proves the identity again).
func (rel *release) resolve(dst map[string]any, names []string, a *sqin.Account, person *sqin.Person) []string {
	if a.LoA < sqin.LoA2 {
		person = nil
	}
	var filled []string
	for _, n := range names {
		d := claimIndex[n]
		if d == nil {
			continue
		}
		releases, released := rel.claims[n]
		pp := person
		if !released || releases == nil && claimAttributes[n] != nil {
			pp = nil
		}
		if v := d.value(a, pp); v != nil {
			dst[n] = v
			filled = append(filled, n)
		}
	}
	return filled
}

// withheldEssential returns the first claim the request asks for as
// essential that the rule withholds, and the reason, or "" when none.
func (rel *release) withheldEssential(cr *claimsRequest) (string, string) {
	if cr == nil {
		return "", ""
	}
	for _, n := range rel.withheldClaims {
		for _, set := range []map[string]*claimSpec{cr.IDToken, cr.UserInfo} {
			if spec := set[n]; spec != nil && spec.Essential {
				reason := legal.WithheldNoAuthorisation
				for _, w := range rel.withheld {
					if slices.Contains(claimAttributes[n], w.Attribute) {
						reason = w.Reason
						break
					}
				}
				return n, reason
			}
		}
	}
	return "", ""
}

// withheldDescription is the error_description of a refused essential
// claim: precise for the integrator, without personal data.
func withheldDescription(claim, reason string) string {
	const from = " comes from the registry of identity attributes and "
	switch reason {
	case legal.WithheldNoPurpose:
		return "the essential claim " + claim + from + "this client declares no purpose: register the purpose of its legal authorisation"
	case legal.WithheldNotInForce:
		return "the essential claim " + claim + from + "the legal authorisation covering this client is not in force"
	}
	return "the essential claim " + claim + from + "no legal authorisation in force covers this client, this attribute and its purpose"
}

// disclosureEvents are the events of one disclosure to client c of the
// claims filled: one per legal basis, naming the registry attributes (or,
// for account claims, the claims) released under it, and one for the
// registry attributes withheld (outcome denied, the reasons in its
// detail). base is the event as the caller built it.
func (p *Provider) disclosureEvents(base audit.Event, c *sqin.Client, rel *release, filled []string) []audit.Event {
	byBasis := map[string][]string{}
	for _, n := range filled {
		releases := rel.claims[n]
		if releases == nil {
			byBasis[consentBasis(c)] = append(byBasis[consentBasis(c)], n)
			continue
		}
		for _, r := range releases {
			byBasis[r.Basis] = append(byBasis[r.Basis], r.Attribute)
		}
	}
	bases := make([]string, 0, len(byBasis))
	for b := range byBasis {
		bases = append(bases, b)
	}
	slices.Sort(bases)
	out := make([]audit.Event, 0, len(bases)+1)
	for _, b := range bases {
		e := base
		e.LegalBasis = b
		e.Attributes = byBasis[b]
		out = append(out, e)
	}
	if len(out) == 0 { // nothing released: the event still records the request
		out = append(out, base)
	}
	if e, ok := withheldEvent(base, rel); ok {
		out = append(out, e)
	}
	return out
}

// withheldEvent is the event recording the registry attributes rel
// withholds (outcome denied, the reasons in its detail), if any.
func withheldEvent(base audit.Event, rel *release) (audit.Event, bool) {
	if len(rel.withheld) == 0 {
		return audit.Event{}, false
	}
	e := base
	e.Action, e.Outcome, e.LegalBasis, e.Attributes = audit.RegistryWithheld, audit.Denied, "", nil
	var reasons []string
	for _, w := range rel.withheld {
		e.Attributes = append(e.Attributes, w.Attribute)
		if !slices.Contains(reasons, w.Reason) {
			reasons = append(reasons, w.Reason)
		}
	}
	slices.Sort(reasons)
	e.Detail = "withheld: " + strings.Join(reasons, " ")
	return e, true
}

// consentClaims returns the claims a request would release to client c
// (those of its scopes and those asked for individually, within what the
// client is allowed) that the legal rule lets through now: what the
// consent page lists and the consent covers.
func (p *Provider) consentClaims(ctx context.Context, c *sqin.Client, scopes []string, cr *claimsRequest) ([]string, *release, error) {
	asked := releasedClaims(c, scopes, cr)
	rel, err := p.decideRelease(ctx, c, asked)
	if err != nil {
		return nil, nil, err
	}
	return rel.releasable(asked), rel, nil
}
