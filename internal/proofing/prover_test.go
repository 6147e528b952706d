package proofing_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/sqlstore"
	"github.com/sqin/sqin/internal/sqltest"
	"github.com/sqin/sqin/internal/store"
)

var key = bytes.Repeat([]byte{7}, 32)

func openDB(t testing.TB, url string) *sqlstore.DB {
	t.Helper()
	db, err := sqlstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return db
}

// verifierFunc is a holder verifier in the test (the HTTP one is tested in
// remote_test.go against a real server).
type verifierFunc func(values []string, person map[string]string) (bool, error)

func (f verifierFunc) Verify(_ context.Context, v []string, p map[string]string) (bool, error) {
	return f(v, p)
}

func newProver(t *testing.T, db *sqlstore.DB, limits proofing.Limits, holder verifierFunc) *proofing.Prover {
	t.Helper()
	if limits.MinDuration == 0 {
		limits.MinDuration = time.Nanosecond // padding is tested on its own
	}
	remote := map[string]proofing.Verifier{"sin": holder, "notice-of-assessment": holder}
	p, err := proofing.NewProver(proofing.DefaultCatalogue(), key, limits, db, db, remote)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

var marie = map[string]string{"family_name": "Tremblay", "given_names": "Marie-Ève", "birth_date": "1990-07-15",
	"health_insurance_number": "TREM90571512", "health_card_expiry": "2028-05"}

func TestProverChecks(t *testing.T) {
	db := openDB(t, sqltest.SQLiteURL(t))
	ctx := t.Context()
	if err := db.PutLocalSecrets(ctx, []store.LocalSecret{{SecretType: "driving-licence", PersonID: "p-marie",
		Hash: proofing.SecretHash(key, "driving-licence", "p-marie", []string{"T123456789012"})}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	holder := verifierFunc(func(v []string, p map[string]string) (bool, error) {
		switch v[0] {
		case "046454286":
			return p["family_name"] == "Tremblay", nil
		case "130692544":
			return false, errors.New("holder down")
		}
		return false, nil
	})
	p := newProver(t, db, proofing.Limits{PerPerson: 1000, PerAccount: 1000}, holder)
	for _, tc := range []struct {
		name     string
		secret   string
		values   map[string]string
		personID string
		person   map[string]string
		want     proofing.Outcome
		field    string
	}{
		{"health card", "health-card", map[string]string{"nam": "trem 9057 1512", "expiry": "2028 05"}, "p-marie", marie, proofing.Match, ""},
		{"health card, wrong expiry", "health-card", map[string]string{"nam": "TREM90571512", "expiry": "2028 06"}, "p-marie", marie, proofing.NoMatch, ""},
		{"health card, unknown person", "health-card", map[string]string{"nam": "TREM90571512", "expiry": "2028 05"}, "", nil, proofing.NoMatch, ""},
		{"health card, registry without expiry", "health-card", map[string]string{"nam": "TREM90571512", "expiry": "2028 05"}, "p-x",
			map[string]string{"health_insurance_number": "TREM90571512"}, proofing.NoMatch, ""},
		{"health card, bad format", "health-card", map[string]string{"nam": "TREM 9013 1512", "expiry": "2028 05"}, "p-marie", marie, proofing.BadFormat, "nam"},
		{"licence delivered", "driving-licence", map[string]string{"number": "T1234 567890 12"}, "p-marie", marie, proofing.Match, ""},
		{"licence wrong", "driving-licence", map[string]string{"number": "T1234 567890 13"}, "p-marie", marie, proofing.NoMatch, ""},
		{"licence never delivered", "driving-licence", map[string]string{"number": "T1234 567890 12"}, "p-other", marie, proofing.NoMatch, ""},
		{"licence, unknown person", "driving-licence", map[string]string{"number": "T1234 567890 12"}, "", nil, proofing.NoMatch, ""},
		{"SIN match", "sin", map[string]string{"sin": "046 454 286"}, "p-marie", marie, proofing.Match, ""},
		{"SIN no match", "sin", map[string]string{"sin": "000000000"}, "p-marie", marie, proofing.NoMatch, ""},
		{"SIN, holder down", "sin", map[string]string{"sin": "130 692 544"}, "p-marie", marie, proofing.Unavailable, ""},
		{"SIN, unknown person, holder down: unavailable, as for a known person", "sin", map[string]string{"sin": "130 692 544"}, "", nil, proofing.Unavailable, ""},
		{"SIN, unknown person, holder up: no match", "sin", map[string]string{"sin": "046 454 286"}, "", nil, proofing.NoMatch, ""},
		{"SIN, Luhn", "sin", map[string]string{"sin": "046 454 287"}, "p-marie", marie, proofing.BadFormat, "sin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := p.Check(ctx, proofing.Attempt{SecretType: tc.secret, Values: tc.values, AccountID: "acct-1",
				Address: "198.51.100.7", Identity: "id-marie", PersonID: tc.personID, Person: tc.person})
			if err != nil {
				t.Fatal(err)
			}
			if r.Outcome != tc.want || r.Field != tc.field {
				t.Fatalf("outcome %v field %q, want %v %q", r.Outcome, r.Field, tc.want, tc.field)
			}
		})
	}
	if _, err := p.Check(ctx, proofing.Attempt{SecretType: "passport"}); err == nil {
		t.Fatal("unknown secret type accepted")
	}
}

// The N+1th attempt on one claimed identity is refused, whichever of two
// server instances on one PostgreSQL receives it, whatever the outcomes,
// and even for an identity the registry does not know.
func TestProverLimitsAcrossInstances(t *testing.T) {
	url := sqltest.PostgresURL(t)
	a, b := openDB(t, url), openDB(t, url)
	limits := proofing.Limits{PerPerson: 5, PerAccount: 100, PerAddress: 100, Window: time.Hour}
	holder := verifierFunc(func([]string, map[string]string) (bool, error) { return false, nil })
	pa, pb := newProver(t, a, limits, holder), newProver(t, b, limits, holder)
	for _, known := range []bool{true, false} {
		identity := "id-" + rand.Text()
		personID, person := "", map[string]string(nil)
		if known {
			personID, person = "p-marie", marie
		}
		var mu sync.Mutex
		outcomes := map[proofing.Outcome]int{}
		var wg sync.WaitGroup
		for i := range 8 { // 8 concurrent attempts for a limit of 5, on both instances
			wg.Go(func() {
				p := pa
				if i%2 == 1 {
					p = pb
				}
				r, err := p.Check(t.Context(), proofing.Attempt{SecretType: "health-card", Identity: identity,
					Values: map[string]string{"nam": "TREM90571512", "expiry": "2028 06"}, AccountID: "acct-" + rand.Text(),
					Address: "198.51.100.9", PersonID: personID, Person: person})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				outcomes[r.Outcome]++
				mu.Unlock()
			})
		}
		wg.Wait()
		if outcomes[proofing.NoMatch] != 5 || outcomes[proofing.Locked] != 3 {
			t.Fatalf("known=%v: outcomes %v, want 5 checked and 3 locked", known, outcomes)
		}
		// Even the right secret is refused once locked.
		r, err := pb.Check(t.Context(), proofing.Attempt{SecretType: "health-card", Identity: identity,
			Values: map[string]string{"nam": "TREM90571512", "expiry": "2028 05"}, PersonID: personID, Person: person})
		if err != nil || r.Outcome != proofing.Locked || r.RetryAfter != time.Hour {
			t.Fatalf("right secret after the limit: %+v %v", r, err)
		}
	}
}

func TestProverPadsAnswers(t *testing.T) {
	db := openDB(t, sqltest.SQLiteURL(t))
	p := newProver(t, db, proofing.Limits{MinDuration: 150 * time.Millisecond}, func([]string, map[string]string) (bool, error) { return true, nil })
	for _, a := range []proofing.Attempt{
		{SecretType: "health-card", Values: map[string]string{"nam": "x"}, Identity: "i1"},                                                               // bad format
		{SecretType: "health-card", Values: map[string]string{"nam": "TREM90571512", "expiry": "2028 05"}, Identity: "i2"},                               // unknown person
		{SecretType: "health-card", Values: map[string]string{"nam": "TREM90571512", "expiry": "2028 05"}, Identity: "i3", PersonID: "p", Person: marie}, // match
	} {
		start := time.Now()
		if _, err := p.Check(t.Context(), a); err != nil {
			t.Fatal(err)
		}
		if d := time.Since(start); d < 150*time.Millisecond {
			t.Fatalf("answer after %v, before the floor", d)
		}
	}
}

func TestProverNeedsVerifiersAndKey(t *testing.T) {
	db := openDB(t, sqltest.SQLiteURL(t))
	if _, err := proofing.NewProver(proofing.DefaultCatalogue(), key, proofing.Limits{}, db, db, nil); err == nil {
		t.Fatal("remote secrets without verifiers accepted")
	}
	if _, err := proofing.NewProver(proofing.DefaultCatalogue(), key[:16], proofing.Limits{}, db, db, map[string]proofing.Verifier{}); err == nil {
		t.Fatal("short key accepted")
	}
}

// TestGlobalLimitShards: a global limit of 2,000 is spread over two keys
// of 1,000; whatever the random choice of key, no attempt is locked
// before the 1,001st and, by pigeonhole, one is by the 2,001st.
func TestGlobalLimitShards(t *testing.T) {
	db := openDB(t, sqltest.SQLiteURL(t))
	never := 1 << 30
	p := newProver(t, db, proofing.Limits{PerPerson: never, PerAccount: never, PerAddress: never, Global: 2000}, nil)
	for i := 1; i <= 2001; i++ {
		r, err := p.Check(t.Context(), proofing.Attempt{SecretType: "health-card", Values: map[string]string{"nam": "x"},
			AccountID: "a", Identity: fmt.Sprint("id-", i), Address: "192.0.2.1"})
		if err != nil {
			t.Fatal(err)
		}
		if r.Outcome == proofing.Locked {
			if i <= 1000 {
				t.Fatalf("locked at attempt %d", i)
			}
			return
		}
	}
	t.Fatal("2,001 attempts and no lock: the global limit does not hold")
}

// TestProverDecoy: for an identity the registry does not know, a remote
// holder is asked about a fixed fictitious person (never about anyone
// real), so that its availability and its time show alike for everyone;
// even a holder that confirms it gives no match, and a holder that
// cannot answer gives "unavailable", as for a person the registry knows.
func TestProverDecoy(t *testing.T) {
	db := openDB(t, sqltest.SQLiteURL(t))
	var asked []map[string]string
	var down bool
	holder := verifierFunc(func(_ []string, p map[string]string) (bool, error) {
		asked = append(asked, p)
		if down {
			return false, errors.New("holder down")
		}
		return true, nil
	})
	p := newProver(t, db, proofing.Limits{PerPerson: 1000, PerAccount: 1000}, holder)
	for _, tc := range []struct {
		name     string
		down     bool
		personID string
		person   map[string]string
		want     proofing.Outcome
	}{
		{"known person, holder up", false, "p-marie", marie, proofing.Match},
		{"unknown person, holder up", false, "", nil, proofing.NoMatch},
		{"known person, holder down", true, "p-marie", marie, proofing.Unavailable},
		{"unknown person, holder down", true, "", nil, proofing.Unavailable},
	} {
		t.Run(tc.name, func(t *testing.T) {
			asked, down = nil, tc.down
			r, err := p.Check(t.Context(), proofing.Attempt{SecretType: "sin", Values: map[string]string{"sin": "046 454 286"},
				AccountID: "acct-1", Address: "198.51.100.7", Identity: "id-" + tc.name, PersonID: tc.personID, Person: tc.person})
			if err != nil {
				t.Fatal(err)
			}
			if r.Outcome != tc.want {
				t.Fatalf("outcome %v, want %v", r.Outcome, tc.want)
			}
			if len(asked) != 1 {
				t.Fatalf("the holder was asked %d times", len(asked))
			}
			if tc.personID == "" {
				for _, a := range []string{"family_name", "given_names", "birth_date"} {
					if asked[0][a] == "" || asked[0][a] == marie[a] {
						t.Errorf("decoy %s = %q", a, asked[0][a])
					}
				}
			}
		})
	}
}
