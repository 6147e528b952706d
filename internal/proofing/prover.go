package proofing

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/sqin/sqin"
)

// Outcomes of one proofing attempt. The citizen-facing pages map them to
// messages; NoMatch is also what a person unknown to the registry gets.
type Outcome int

const (
	Match       Outcome = iota + 1
	NoMatch             // wrong secret, no such person, or the registry holds no such data
	Unavailable         // the holder could not answer: offer another secret
	Locked              // too many attempts: retry after Result.RetryAfter
	BadFormat           // the value does not have the field's format (Result.Field)
)

func (o Outcome) String() string {
	switch o {
	case Match:
		return "match"
	case NoMatch:
		return "no_match"
	case Unavailable:
		return "unavailable"
	case Locked:
		return "locked"
	case BadFormat:
		return "bad_format"
	}
	return "unknown"
}

// Result is the outcome of Check.
type Result struct {
	Outcome    Outcome
	Field      string        // for BadFormat
	RetryAfter time.Duration // for Locked
}

// Limits bound attempts in a sliding window held in the database, so that
// they hold across server instances. Zero values take the defaults.
type Limits struct {
	Window     time.Duration // default 24 h
	PerPerson  int           // per claimed identity (exists or not); default 5
	PerAccount int           // default 10
	PerAddress int           // per network address; default 50
	Global     int           // every attempt of every citizen; default 100 000
	// MinDuration pads every answer to at least this long, so that a local
	// check, a person unknown to the registry and a remote check cannot be
	// told apart by timing; default 300 ms.
	MinDuration time.Duration
}

func (l *Limits) defaults() {
	if l.Window <= 0 {
		l.Window = 24 * time.Hour
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&l.PerPerson, 5)
	def(&l.PerAccount, 10)
	def(&l.PerAddress, 50)
	def(&l.Global, 100_000)
	if l.MinDuration <= 0 {
		l.MinDuration = 300 * time.Millisecond
	}
}

// Counter counts events in a sliding window (store.RateLimits provides it).
type Counter interface {
	Hit(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
	Count(ctx context.Context, key string, window time.Duration, now time.Time) (int, error)
}

// MultiCounter is a Counter that records one event under several keys in
// one transaction (one commit instead of one per key), returning each
// key's count in order. The prover uses it when its counter has it.
type MultiCounter interface {
	HitAll(ctx context.Context, keys []string, window time.Duration, now time.Time) ([]int, error)
}

// HashStore returns the keyed hash of a delivered local secret of one
// person (sqin.ErrNotFound when the holder delivered none).
type HashStore interface {
	LocalSecretHash(ctx context.Context, secretType, personID string) ([]byte, error)
}

// Verifier asks a holder (RemoteVerifier provides it).
type Verifier interface {
	Verify(ctx context.Context, values []string, person map[string]string) (bool, error)
}

// Prover checks shared secrets against the registry: by comparing with the
// registry's own values, with keyed hashes a holder delivered, or by asking
// the holder.
type Prover struct {
	cat     *Catalogue
	key     []byte
	limits  Limits
	counter Counter
	hashes  HashStore
	remote  map[string]Verifier
	now     func() time.Time
	sleep   func(context.Context, time.Duration)
}

// NewProver returns a prover. key (32 bytes or more) keys the hashes of
// delivered secrets; remote maps the catalogue's remote secret types to
// their verifiers.
func NewProver(cat *Catalogue, key []byte, limits Limits, counter Counter, hashes HashStore, remote map[string]Verifier) (*Prover, error) {
	if len(key) < 32 {
		return nil, errors.New("proofing: the secret-hash key must be at least 32 bytes")
	}
	for _, s := range cat.Secrets {
		if s.Verify == VerifyRemote && remote[s.ID] == nil {
			return nil, fmt.Errorf("proofing: no verifier for remote secret %q", s.ID)
		}
	}
	limits.defaults()
	return &Prover{cat: cat, key: key, limits: limits, counter: counter, hashes: hashes, remote: remote,
		now: time.Now, sleep: sleepCtx}, nil
}

// Limits returns the prover's limits, defaults filled in (other proofs,
// such as codes by mail, count attempts the same way).
func (p *Prover) Limits() Limits { return p.limits }

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// Attempt is one check a citizen asks for.
type Attempt struct {
	SecretType string
	Values     map[string]string // as typed, by field name
	AccountID  string
	Address    string // network address
	// Identity is a stable key of the identity the citizen claims (e.g. a
	// keyed hash of name and birth date), the same whether or not the
	// registry knows it, so that limits do not reveal who exists.
	Identity string
	// PersonID and Person are the registry person that identity designates
	// and its attribute values (by attribute name); empty when none.
	PersonID string
	Person   map[string]string
}

// Check runs one attempt. It counts against every limit before checking
// (an attempt that fails on format counts too), then checks, then pads the
// answer to MinDuration. Errors are storage failures only; a holder that
// cannot answer is the Unavailable outcome.
func (p *Prover) Check(ctx context.Context, a Attempt) (Result, error) {
	start := p.now()
	defer func() {
		if d := p.limits.MinDuration - p.now().Sub(start); d > 0 {
			p.sleep(ctx, d)
		}
	}()
	s, ok := p.cat.Secret(a.SecretType)
	if !ok {
		return Result{}, fmt.Errorf("proofing: unknown secret type %q", a.SecretType)
	}
	if r, err := p.count(ctx, a); err != nil || r.Outcome == Locked {
		return r, err
	}
	values, err := s.Normalize(a.Values)
	if err != nil {
		var fe *FormatError
		if !errors.As(err, &fe) {
			return Result{}, err
		}
		return Result{Outcome: BadFormat, Field: fe.Field}, nil
	}
	switch {
	case s.Verify == VerifyRemote:
		// A person the registry does not know is asked about too, under a
		// fictitious identity: the holder's availability and its time then
		// show on every answer alike, and only "no match" can come of it.
		person := a.Person
		if a.PersonID == "" {
			person = decoyPerson(s)
		}
		match, err := p.remote[s.ID].Verify(ctx, values, person)
		switch {
		case err != nil:
			return Result{Outcome: Unavailable}, nil
		case a.PersonID == "":
			return Result{Outcome: NoMatch}, nil
		}
		return result(match), nil
	case s.registryHeld():
		return result(p.compareRegistry(s, values, a.Person)), nil
	default:
		return p.compareDelivered(ctx, s, values, a.PersonID)
	}
}

// decoy is the fictitious identity a remote holder is asked about when
// the registry knows no person for the identity claimed: nobody's, fixed,
// well-formed, so that the holder answers it like any other.
var decoy = map[string]string{
	"family_name": "Fictif", "given_names": "Personne", "birth_date": "1900-01-01", "sex": "X",
	"health_insurance_number": "FICP00010199", "health_card_expiry": "2099-12",
}

// decoyPerson returns the decoy's value of every attribute s sends.
func decoyPerson(s *SecretType) map[string]string {
	p := make(map[string]string, len(s.Match))
	for _, a := range s.Match {
		p[a] = decoy[a]
		if p[a] == "" {
			p[a] = "0"
		}
	}
	return p
}

func result(match bool) Result {
	if match {
		return Result{Outcome: Match}
	}
	return Result{Outcome: NoMatch}
}

// count records the attempt under each limit and reports Locked when one is
// exceeded. The global key comes last: with a MultiCounter, the one row
// every attempt updates stays locked only for the end of the transaction.
func (p *Prover) count(ctx context.Context, a Attempt) (Result, error) {
	now := p.now()
	var keys []string
	var limits []int
	for _, k := range []struct {
		key   string
		limit int
	}{
		{"proof:identity:" + a.Identity, p.limits.PerPerson},
		{"proof:account:" + a.AccountID, p.limits.PerAccount},
		{"proof:address:" + a.Address, p.limits.PerAddress},
		p.globalKey(),
	} {
		if k.key[len(k.key)-1] == ':' {
			continue // no such dimension in this attempt
		}
		keys, limits = append(keys, k.key), append(limits, k.limit)
	}
	counts := make([]int, len(keys))
	if mc, ok := p.counter.(MultiCounter); ok {
		var err error
		if counts, err = mc.HitAll(ctx, keys, p.limits.Window, now); err != nil {
			return Result{}, fmt.Errorf("proofing: count attempts: %w", err)
		}
	} else {
		for i, k := range keys {
			n, err := p.counter.Hit(ctx, k, p.limits.Window, now)
			if err != nil {
				return Result{}, fmt.Errorf("proofing: count attempts: %w", err)
			}
			counts[i] = n
		}
	}
	for i, n := range counts {
		if n > limits[i] {
			return Result{Outcome: Locked, RetryAfter: p.limits.Window}, nil
		}
	}
	return Result{}, nil
}

// globalKey is the global limit's key and limit for one attempt. Every
// attempt of every citizen counts there, so on PostgreSQL one row would
// take every attempt's lock in turn: past 1,000 a limit is spread over up
// to 8 keys, one picked at random per attempt, each holding its share.
// The shards fill evenly, so the limit still holds within a few per cent
// (at the default 100,000: each shard's 12,500 ± about 110).
func (p *Prover) globalKey() struct {
	key   string
	limit int
} {
	shards := min(max(p.limits.Global/1000, 1), 8)
	if shards == 1 {
		return struct {
			key   string
			limit int
		}{"proof:global", p.limits.Global}
	}
	return struct {
		key   string
		limit int
	}{"proof:global:" + strconv.Itoa(rand.IntN(shards)), (p.limits.Global + shards - 1) / shards}
}

// registryHeld reports whether every field of a local secret names the
// registry attribute it is compared with (the registry is its holder).
func (s *SecretType) registryHeld() bool {
	if s.Verify != VerifyLocal {
		return false
	}
	for _, f := range s.Fields {
		if f.Attribute == "" {
			return false
		}
	}
	return true
}

// compareRegistry compares each value with the registry attribute its field
// names, normalised the same way, in constant time; every field is
// compared even after a difference.
func (p *Prover) compareRegistry(s *SecretType, values []string, person map[string]string) bool {
	ok := len(person) > 0
	for i, f := range s.Fields {
		want := normalize(f.Normalize, person[f.Attribute])
		if subtle.ConstantTimeCompare([]byte(values[i]), []byte(want)) != 1 || want == "" {
			ok = false
		}
	}
	return ok
}

// SecretHash is the keyed hash under which a delivered local secret is
// stored: HMAC-SHA256 over the secret type, the person and the normalised
// values, each length-prefixed. The clear value is never stored.
func SecretHash(key []byte, secretType, personID string, values []string) []byte {
	m := hmac.New(sha256.New, key)
	put := func(s string) {
		var n [2]byte
		n[0], n[1] = byte(len(s)>>8), byte(len(s))
		m.Write(n[:])
		m.Write([]byte(s))
	}
	put("sqin-proofing-secret/v1")
	put(secretType)
	put(personID)
	for _, v := range values {
		put(v)
	}
	return m.Sum(nil)
}

// compareDelivered compares with the hash the holder delivered. An unknown
// person or a person without a delivered secret costs the same HMAC and
// compare.
func (p *Prover) compareDelivered(ctx context.Context, s *SecretType, values []string, personID string) (Result, error) {
	got := SecretHash(p.key, s.ID, personID, values)
	var want []byte
	if personID != "" {
		h, err := p.hashes.LocalSecretHash(ctx, s.ID, personID)
		if err != nil && !errors.Is(err, sqin.ErrNotFound) {
			return Result{}, fmt.Errorf("proofing: read the delivered secret: %w", err)
		}
		want = h
	}
	if want == nil {
		_ = hmac.Equal(got, make([]byte, len(got))) // the same work as a real compare
		return Result{Outcome: NoMatch}, nil
	}
	return result(hmac.Equal(got, want)), nil
}
