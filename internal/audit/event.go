// Package audit is SQIN's tamper-evident audit log: events that say who did
// what, about whom, for which client and public body, under which legal
// basis and with which attributes (names only), kept in an append-only
// Merkle tree hashed as Certificate Transparency 2.0 does (RFC 9162 §2.1),
// with signed tree heads, inclusion and consistency proofs, and a verifier
// that recomputes everything from storage.
//
// Events reach storage in the same transaction as the change they record:
// a producer puts them in the context with With, and the store writes them
// with the next write it makes through that context (see With). Events that
// record no other change go through the store's AppendEvents.
//
// docs/audit.md describes the format, the hashing, the proofs and the
// retention approach.
package audit

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
	"unicode/utf8"
)

// Actor kinds.
const (
	ActorCitizen = "citizen" // a citizen's account (ID pseudonymised)
	ActorAgent   = "agent"   // an agent of a public body, by staff identifier
	ActorAdmin   = "admin"   // an administrator of SQIN, by staff identifier
	ActorClient  = "client"  // a relying party, by client ID
	ActorSystem  = "system"  // SQIN itself (jobs, CLI), ID names the component
)

// Outcomes.
const (
	Success = "success"
	Failure = "failure"
	Denied  = "denied"
)

// Actions in use. New actions follow the same form: lower-case words
// separated by dots, the object first.
const (
	SigninSuccess     = "signin.success"
	SigninFailure     = "signin.failure"
	SigninLockout     = "signin.lockout"
	ConsentGiven      = "consent.given"
	ConsentWithdrawn  = "consent.withdrawn"
	TokenIssued       = "token.issued"
	TokenRevoked      = "token.revoked"
	UserinfoDisclosed = "userinfo.disclosed"
	RegistryDisclosed = "registry.disclosed"
	RegistryWithheld  = "registry.withheld"
	ClientCreated     = "client.created"
	ClientUpdated     = "client.updated"
	ClientDeleted     = "client.deleted"
	KeysRotated       = "keys.rotated"
	KeysCreated       = "keys.created" // a first signing key, generated at start
	SessionEnded      = "session.ended"
	// Administration of client registration and of legacy identifiers.
	SubjectsImported         = "subjects.imported"
	RegistrationTokenCreated = "registration_token.created"
	RegistrationTokenRevoked = "registration_token.revoked"
)

// Limits on the fields of an event, in bytes. They keep events small and
// make room for nothing but identifiers and names.
const (
	MaxField      = 256 // every string field but Detail
	MaxDetail     = 256
	MaxAttributes = 128 // number of attribute names
	MaxAttribute  = 64  // length of one attribute name
)

// Actor is who acted.
type Actor struct {
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
}

// Event is one entry of the audit log. Personal identifiers never appear in
// it in clear: Subject (and a citizen actor's ID) are pseudonyms computed
// with a Pseudonymizer, Attributes are names without values and Detail is
// a short explanation without personal data.
type Event struct {
	ID         uint64    `json:"id"`   // position in the log, from 0, assigned by the store
	Time       time.Time `json:"time"` // millisecond precision, UTC; the store fills a zero time
	RequestID  string    `json:"request_id,omitempty"`
	Actor      Actor     `json:"actor"`
	Action     string    `json:"action"`
	Subject    string    `json:"subject,omitempty"`     // pseudonym of the person or account concerned
	ClientID   string    `json:"client_id,omitempty"`   // relying party concerned
	PublicBody string    `json:"public_body,omitempty"` // sector of the public body
	LegalBasis string    `json:"legal_basis,omitempty"` // authorisation reference or "consent:<id>"
	Attributes []string  `json:"attributes,omitempty"`  // names of the attributes disclosed, sorted
	Outcome    string    `json:"outcome"`
	Detail     string    `json:"detail,omitempty"`
	// Salt is random, set by the store when it appends the event; it
	// enters the personal digest (see PersonalDigest).
	Salt []byte `json:"salt,omitempty"`
}

// Normalize puts e in its canonical form: Time in UTC truncated to the
// millisecond, Attributes sorted without duplicates (nil when empty).
func (e *Event) Normalize() {
	if !e.Time.IsZero() {
		e.Time = time.UnixMilli(e.Time.UnixMilli()).UTC()
	}
	if len(e.Attributes) == 0 {
		e.Attributes = nil
		return
	}
	a := slices.Clone(e.Attributes)
	slices.Sort(a)
	e.Attributes = slices.Compact(a)
}

// ErrInvalid is the error of every event that cannot be logged.
var ErrInvalid = errors.New("audit: invalid event")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// Validate reports whether e, normalised and salted, can be logged: known
// actor kind and outcome, a well-formed action and attribute names, fields
// within their limits, valid UTF-8 without control characters, a time
// after 1970 and a salt of SaltSize bytes.
func (e *Event) Validate() error {
	if err := e.validatePublic(); err != nil {
		return err
	}
	for _, f := range []struct{ name, v string }{
		{"request_id", e.RequestID}, {"actor.id", e.Actor.ID}, {"subject", e.Subject}, {"legal_basis", e.LegalBasis},
	} {
		if err := checkText(f.name, f.v, MaxField); err != nil {
			return err
		}
	}
	if err := checkText("detail", e.Detail, MaxDetail); err != nil {
		return err
	}
	if len(e.Salt) != SaltSize {
		return invalid("salt of %d bytes, want %d", len(e.Salt), SaltSize)
	}
	return nil
}

// validatePublic checks the fields that stay after redaction.
func (e *Event) validatePublic() error {
	switch e.Actor.Kind {
	case ActorCitizen, ActorAgent, ActorAdmin, ActorClient, ActorSystem:
	default:
		return invalid("actor kind %q", e.Actor.Kind)
	}
	switch e.Outcome {
	case Success, Failure, Denied:
	default:
		return invalid("outcome %q", e.Outcome)
	}
	if !validAction(e.Action) {
		return invalid("action %q is not lower-case words joined by dots", e.Action)
	}
	if e.Time.IsZero() || e.Time.UnixMilli() < 0 {
		return invalid("time %v", e.Time)
	}
	for _, f := range []struct{ name, v string }{{"client_id", e.ClientID}, {"public_body", e.PublicBody}} {
		if err := checkText(f.name, f.v, MaxField); err != nil {
			return err
		}
	}
	if len(e.Attributes) > MaxAttributes {
		return invalid("%d attributes, at most %d", len(e.Attributes), MaxAttributes)
	}
	for i, a := range e.Attributes {
		if !validName(a, MaxAttribute) {
			return invalid("attribute name %q", a)
		}
		if i > 0 && e.Attributes[i-1] >= a {
			return invalid("attributes not sorted and unique")
		}
	}
	return nil
}

// validAction: [a-z][a-z0-9_]* words joined by single dots, at least two.
func validAction(s string) bool {
	if len(s) > MaxField || strings.Count(s, ".") == 0 {
		return false
	}
	for w := range strings.SplitSeq(s, ".") {
		if w == "" || w[0] < 'a' || w[0] > 'z' {
			return false
		}
		for i := 0; i < len(w); i++ {
			if c := w[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_') {
				return false
			}
		}
	}
	return true
}

// validName accepts claim and attribute names: letters, digits and
// _ - . : /, at most max bytes.
func validName(s string, max int) bool {
	if s == "" || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			c == '_' || c == '-' || c == '.' || c == ':' || c == '/') {
			return false
		}
	}
	return true
}

func checkText(name, v string, max int) error {
	if len(v) > max {
		return invalid("%s is %d bytes, at most %d", name, len(v), max)
	}
	if !utf8.ValidString(v) {
		return invalid("%s is not UTF-8", name)
	}
	for _, r := range v {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) || r == 0x2028 || r == 0x2029 {
			return invalid("%s holds a control character", name)
		}
	}
	return nil
}

// entryVersion is the first byte of every entry of this format.
const entryVersion = 1

// SaltSize is the length of an event's salt.
const SaltSize = 16

// personalLabel starts the input of the personal digest.
const personalLabel = "sqin-audit-personal/v1\x00"

// PersonalDigest commits to e's personal fields: SHA-256 of the label
// "sqin-audit-personal/v1" and a zero byte, then salt, request ID, actor
// ID, subject, legal basis and detail, each as a big-endian uint16 length
// and its bytes. The random salt keeps the digest from being tested
// against guesses once the fields are gone (retention drops them with the
// salt and keeps the digest, so the entry can still be rebuilt).
func (e *Event) PersonalDigest() Hash {
	b := make([]byte, 0, len(personalLabel)+2*6+len(e.Salt)+len(e.RequestID)+len(e.Actor.ID)+
		len(e.Subject)+len(e.LegalBasis)+len(e.Detail))
	b = append(b, personalLabel...)
	b = appendBytes(b, e.Salt)
	for _, s := range []string{e.RequestID, e.Actor.ID, e.Subject, e.LegalBasis, e.Detail} {
		b = appendString(b, s)
	}
	return sha256.Sum256(b)
}

// Entry is e's canonical serialisation, the bytes whose hash is its leaf
// (RFC 9162: MTH({d}) = SHA-256(0x00 || d)). It is defined for a valid,
// normalised event with its salt (Validate): see AppendEntry.
func (e *Event) Entry() []byte { return e.AppendEntry(nil, e.PersonalDigest()) }

// AppendEntry appends the entry of e's non-personal fields and the given
// personal digest: version byte 1; ID as uint64 and Time as int64 unix
// milliseconds, big-endian; actor kind, action, client ID and public body,
// each as a big-endian uint16 length and its UTF-8 bytes; the number of
// attributes (uint16) and each attribute the same way; the outcome; and
// the 32-byte personal digest.
func (e *Event) AppendEntry(b []byte, personal Hash) []byte {
	b = append(b, entryVersion)
	b = binary.BigEndian.AppendUint64(b, e.ID)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Time.UnixMilli()))
	for _, s := range []string{e.Actor.Kind, e.Action, e.ClientID, e.PublicBody} {
		b = appendString(b, s)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(e.Attributes)))
	for _, a := range e.Attributes {
		b = appendString(b, a)
	}
	b = appendString(b, e.Outcome)
	return append(b, personal[:]...)
}

func appendString(b []byte, s string) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

func appendBytes(b, s []byte) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(len(s)))
	return append(b, s...)
}

// LeafHash is the RFC 9162 leaf hash of e's entry.
func (e *Event) LeafHash() Hash {
	var buf [256]byte
	return LeafHash(e.AppendEntry(buf[:0], e.PersonalDigest()))
}

// ParseEntry decodes an entry into the event's non-personal fields and its
// personal digest. It accepts exactly what AppendEntry produces for a
// valid event, so that re-encoding what it returns gives b again.
func ParseEntry(b []byte) (*Event, Hash, error) {
	var personal Hash
	d := decoder{b: b}
	if v := d.byte(); v != entryVersion {
		return nil, personal, invalid("entry version %d", v)
	}
	e := new(Event)
	e.ID = d.uint64()
	ms := int64(d.uint64())
	e.Time = time.UnixMilli(ms).UTC()
	e.Actor.Kind, e.Action, e.ClientID, e.PublicBody = d.string(), d.string(), d.string(), d.string()
	n := int(d.uint16())
	if n > MaxAttributes {
		return nil, personal, invalid("%d attributes", n)
	}
	for range n {
		if d.err != nil {
			break
		}
		e.Attributes = append(e.Attributes, d.string())
	}
	e.Outcome = d.string()
	copy(personal[:], d.take(len(personal)))
	if d.err != nil {
		return nil, personal, d.err
	}
	if len(d.b) != 0 {
		return nil, personal, invalid("%d bytes after the entry", len(d.b))
	}
	if ms < 0 {
		return nil, personal, invalid("negative time")
	}
	if err := e.validatePublic(); err != nil {
		return nil, personal, err
	}
	return e, personal, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = invalid("entry truncated")
		return nil
	}
	p := d.b[:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) byte() byte {
	if p := d.take(1); p != nil {
		return p[0]
	}
	return 0
}

func (d *decoder) uint16() uint16 {
	if p := d.take(2); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (d *decoder) uint64() uint64 {
	if p := d.take(8); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

func (d *decoder) string() string { return string(d.take(int(d.uint16()))) }
