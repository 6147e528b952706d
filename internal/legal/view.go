package legal

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// View is how the CLI and the administration API show an authorisation:
// times in Québec's zone, and its status at the moment shown.
type View struct {
	Ref        string   `json:"ref"`
	Status     string   `json:"status"` // upcoming, in force, ended, expired
	Title      string   `json:"title"`
	Purpose    string   `json:"purpose"`
	LegalBasis string   `json:"legal_basis"`
	Source     string   `json:"source"`
	Recipients []string `json:"recipients"`
	Attributes []string `json:"attributes"`
	From       string   `json:"from"`
	To         string   `json:"to"`
	CreatedAt  string   `json:"created_at"`
	EndedAt    string   `json:"ended_at,omitempty"`
}

// Local formats t in Québec's zone (RFC 3339).
func Local(t time.Time) string { return t.In(Zone()).Format(time.RFC3339) }

// View describes a at now.
func (a *Authorisation) View(now time.Time) View {
	v := View{Ref: a.Ref, Title: a.Title, Purpose: a.Purpose, LegalBasis: a.LegalBasis, Source: a.Source,
		Recipients: a.Recipients, Attributes: a.Attributes, From: Local(a.From), To: Local(a.To), CreatedAt: Local(a.CreatedAt)}
	switch {
	case !a.EndedAt.IsZero():
		v.Status, v.EndedAt = "ended", Local(a.EndedAt)
	case now.Before(a.From):
		v.Status = "upcoming"
	case a.InForce(now):
		v.Status = "in force"
	default:
		v.Status = "expired"
	}
	return v
}

// Input is an authorisation as an operator writes it (CLI flags, API
// JSON): dates as ParseWhen reads them.
type Input struct {
	Ref        string   `json:"ref"`
	Title      string   `json:"title"`
	Purpose    string   `json:"purpose"`
	LegalBasis string   `json:"legal_basis"`
	Source     string   `json:"source"`
	Recipients []string `json:"recipients"`
	Attributes []string `json:"attributes"`
	From       string   `json:"from"`
	To         string   `json:"to"`
}

// Authorisation checks in and returns the authorisation it describes,
// created at now; known says whether an attribute name is in the registry
// catalogue. Errors are ErrInvalid, naming the problem.
func (in *Input) Authorisation(now time.Time, known func(string) bool) (*Authorisation, error) {
	a := &Authorisation{Ref: in.Ref, Title: in.Title, Purpose: in.Purpose, LegalBasis: in.LegalBasis, Source: in.Source,
		Recipients: in.Recipients, Attributes: in.Attributes, CreatedAt: now}
	var err error
	if a.From, err = ParseWhen(in.From); err != nil {
		return nil, fmt.Errorf("%w: from: %v", ErrInvalid, err)
	}
	if a.To, err = ParseWhen(in.To); err != nil {
		return nil, fmt.Errorf("%w: to: %v", ErrInvalid, err)
	}
	a.Normalize()
	if err := a.Validate(known); err != nil {
		return nil, err
	}
	return a, nil
}

// Problem returns the description of an ErrInvalid error without its
// prefix, for a message to an operator.
func Problem(err error) string {
	if !errors.Is(err, ErrInvalid) {
		return err.Error()
	}
	return strings.TrimPrefix(err.Error(), ErrInvalid.Error()+": ")
}
