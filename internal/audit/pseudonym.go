package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
)

// Pseudonymizer turns personal identifiers into the pseudonyms events
// carry. Its key is not the audit signing key nor the pairwise-subject
// key: whoever holds the log without it cannot tell who is who, and the
// key can be handed to a court or the privacy regulator (to re-identify one
// person's events) without giving away any signing power.
type Pseudonymizer struct{ key []byte }

// NewPseudonymizer returns a pseudonymizer for a key of at least 32 bytes.
func NewPseudonymizer(key []byte) (*Pseudonymizer, error) {
	if len(key) < 32 {
		return nil, errors.New("audit: pseudonymisation key must be at least 32 bytes")
	}
	return &Pseudonymizer{key: append([]byte(nil), key...)}, nil
}

// Pseudonym kinds: what the identifier names. The same identifier of two
// kinds gives two unrelated pseudonyms.
const (
	KindAccount = "account" // a citizen's SAG account
	KindPerson  = "person"  // a person of the registry (RAIG)
)

// Pseudonym is "ps1." followed by the first 128 bits of
// HMAC-SHA256(key, "sqin-audit-pseudonym/v1" 0x00 kind 0x00 id), base64url
// without padding (26 characters in all). An empty id gives "".
func (p *Pseudonymizer) Pseudonym(kind, id string) string {
	if id == "" {
		return ""
	}
	m := hmac.New(sha256.New, p.key)
	m.Write([]byte("sqin-audit-pseudonym/v1\x00"))
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(id))
	return "ps1." + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// Account is the pseudonym of a citizen's account.
func (p *Pseudonymizer) Account(id string) string { return p.Pseudonym(KindAccount, id) }

// Person is the pseudonym of a registry person.
func (p *Pseudonymizer) Person(id string) string { return p.Pseudonym(KindPerson, id) }

// Citizen is the actor a citizen's account makes, its ID pseudonymised.
func (p *Pseudonymizer) Citizen(accountID string) Actor {
	return Actor{Kind: ActorCitizen, ID: p.Account(accountID)}
}
