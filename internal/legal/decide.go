package legal

import (
	"slices"
	"time"
)

// Reasons an attribute is withheld. They are stable codes: audit events and
// error descriptions quote them.
const (
	// WithheldNoAuthorisation: no authorisation names this service (or its
	// public body), this attribute and this purpose, and no valid consent
	// can stand in for one.
	WithheldNoAuthorisation = "no_authorisation"
	// WithheldNotInForce: an authorisation names them but is not in force
	// (not yet, or no longer).
	WithheldNotInForce = "authorisation_not_in_force"
	// WithheldNoPurpose: the service declares no purpose, so nothing can
	// cover it.
	WithheldNoPurpose = "no_purpose"
)

// Request is one communication about to happen: a service asks for
// registry attributes for its declared purpose.
type Request struct {
	ClientID   string
	Body       string // the service's public body (sector)
	Purpose    string // the service's declared purpose code
	Attributes []string
	// Consent is the reference of the citizen's consent covering these
	// attributes for this service ("" without one), and ConsentAllowed
	// says for which attributes the law lets a consent stand in for an
	// authorisation (nil: for none).
	Consent        string
	ConsentAllowed func(attribute string) bool
}

// Release is one attribute that may be communicated and its legal basis:
// an authorisation reference, or "consent:<reference>".
type Release struct {
	Attribute string
	Basis     string
}

// Withholding is one attribute that must not be communicated, and why.
type Withholding struct {
	Attribute string
	Reason    string
}

// Decision splits a request's attributes.
type Decision struct {
	Released []Release
	Withheld []Withholding
}

// Bases returns the distinct legal bases of the released attributes, sorted.
func (d *Decision) Bases() []string {
	var b []string
	for _, r := range d.Released {
		b = append(b, r.Basis)
	}
	slices.Sort(b)
	return slices.Compact(b)
}

// Allowed reports whether attribute was released.
func (d *Decision) Allowed(attribute string) bool {
	return slices.ContainsFunc(d.Released, func(r Release) bool { return r.Attribute == attribute })
}

// Decide applies the rule to req at time now over the authorisations in
// as. An attribute is released under the authorisation in force that covers
// it, the one with the earliest reference when several do (so the basis
// recorded is stable), or else under the citizen's consent where the law
// allows it; otherwise it is withheld with the most useful reason.
func Decide(as []*Authorisation, now time.Time, req Request) Decision {
	var d Decision
	for _, attr := range req.Attributes {
		var basis, reason string
		reason = WithheldNoAuthorisation
		if req.Purpose == "" {
			reason = WithheldNoPurpose
		}
		for _, a := range as {
			if !a.Covers(req.ClientID, req.Body, req.Purpose, attr) {
				continue
			}
			if !a.InForce(now) {
				reason = WithheldNotInForce
				continue
			}
			if basis == "" || a.Ref < basis {
				basis = a.Ref
			}
		}
		if basis == "" && req.Consent != "" && req.ConsentAllowed != nil && req.ConsentAllowed(attr) {
			basis = "consent:" + req.Consent
		}
		if basis != "" {
			d.Released = append(d.Released, Release{Attribute: attr, Basis: basis})
		} else {
			d.Withheld = append(d.Withheld, Withholding{Attribute: attr, Reason: reason})
		}
	}
	return d
}
