package storetest

import (
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/store"
)

// testTokenState: GetTokenState reads what GetGrant, GetAccount, GetPerson
// and AccessTokenRevoked read, in every combination of missing pieces.
func testTokenState(t *testing.T, s store.Store) {
	ctx := t.Context()
	person := &sqin.Person{ID: "p-1", FamilyName: "Côté", GivenName: "Marie-Ève", BirthDate: "1984-02-29",
		Sex: "F", HealthNo: "COTM84522912", Language: "fr", UpdatedAt: t0,
		Address: sqin.Address{CivicNumber: "12", Street: "rue des Érables", Unit: "3", Municipality: "Québec",
			Province: "QC", PostalCode: "G1R 2B5", Country: "CA"}}
	ok(t, s.CreatePerson(ctx, person))
	accounts := []*sqin.Account{
		{ID: "acct-person", Email: "a@example.test", EmailVerified: true, PasswordHash: "$argon2id$h", LoA: sqin.LoA2,
			PersonID: "p-1", Locale: "fr", CreatedAt: t0.Add(-time.Hour), UpdatedAt: t0},
		{ID: "acct-alone", Email: "b@example.test", Locale: "en", Locked: true, CreatedAt: t0, UpdatedAt: t0},
		{ID: "acct-lost", Email: "c@example.test", PersonID: "p-missing", CreatedAt: t0, UpdatedAt: t0},
	}
	for _, a := range accounts {
		ok(t, s.CreateAccount(ctx, a))
	}
	grant := func(id, accountID string) *sqin.Grant {
		c := authCode("code-"+id, id, "rp", "sess")
		c.AccountID = accountID
		ok(t, s.CreateAuthCode(ctx, c))
		var g *sqin.Grant
		ok(t, s.ExchangeCode(ctx, c.Hash, t0, func(c *sqin.AuthCode) (*sqin.Grant, *sqin.RefreshToken, error) {
			g, _ = issue(c, false, "")
			return g, nil, nil
		}))
		return g
	}
	grant("g-person", "acct-person")
	grant("g-alone", "acct-alone")
	grant("g-lost", "acct-lost")
	grant("g-nobody", "acct-missing")
	grant("g-revoked", "acct-person")
	ok(t, s.RevokeGrant(ctx, "g-revoked", t0.Add(time.Minute)))
	ok(t, s.RevokeAccessToken(ctx, "g-person.revoked", t0.Add(time.Hour)))
	ok(t, s.RevokeAccessToken(ctx, ".cc-revoked", t0.Add(time.Hour)))

	for _, tc := range []struct {
		jti, grantID      string
		revoked           bool
		account, person   string // IDs expected, "" for nil
		noGrant, notFound bool
	}{
		{jti: "g-person.a", grantID: "g-person", account: "acct-person", person: "p-1"},
		{jti: "g-person.revoked", grantID: "g-person", revoked: true, account: "acct-person", person: "p-1"},
		{jti: "g-alone.a", grantID: "g-alone", account: "acct-alone"},
		{jti: "g-lost.a", grantID: "g-lost", account: "acct-lost"},
		{jti: "g-nobody.a", grantID: "g-nobody"},
		{jti: "g-revoked.a", grantID: "g-revoked", account: "acct-person", person: "p-1"},
		{jti: ".cc", noGrant: true},
		{jti: ".cc-revoked", noGrant: true, revoked: true},
		{jti: "g-missing.a", grantID: "g-missing", notFound: true},
	} {
		t.Run(tc.jti, func(t *testing.T) {
			st, err := s.GetTokenState(ctx, tc.jti, tc.grantID)
			if tc.notFound {
				isErr(t, err, sqin.ErrNotFound)
				return
			}
			ok(t, err)
			if st.Revoked != tc.revoked {
				t.Errorf("Revoked = %v, want %v", st.Revoked, tc.revoked)
			}
			if tc.noGrant {
				if st.Grant != nil || st.Account != nil || st.Person != nil {
					t.Errorf("state without grant: %+v", st)
				}
				return
			}
			g, err := s.GetGrant(ctx, tc.grantID)
			ok(t, err)
			same(t, st.Grant, g)
			if tc.account == "" {
				if st.Account != nil {
					t.Errorf("Account = %+v, want nil", st.Account)
				}
			} else {
				a, err := s.GetAccount(ctx, tc.account)
				ok(t, err)
				a.PasswordHash = "" // not read for a resource
				same(t, st.Account, a)
			}
			if tc.person == "" {
				if st.Person != nil {
					t.Errorf("Person = %+v, want nil", st.Person)
				}
			} else {
				p, err := s.GetPerson(ctx, tc.person)
				ok(t, err)
				same(t, st.Person, p)
			}
		})
	}
}

// testAccountSubject: GetAccountSubject reads what GetAccount and
// GetLegacySubject read.
func testAccountSubject(t *testing.T, s store.Store) {
	ctx := t.Context()
	a := &sqin.Account{ID: "acct-1", Email: "a@example.test", EmailVerified: true, PasswordHash: "$argon2id$h",
		LoA: sqin.LoA3, PersonID: "p-1", Locale: "fr", Locked: true, CreatedAt: t0.Add(-time.Hour), UpdatedAt: t0}
	ok(t, s.CreateAccount(ctx, a))
	ok(t, s.CreateAccount(ctx, &sqin.Account{ID: "acct-2", Email: "b@example.test"}))
	ok(t, s.SetLegacySubject(ctx, "ramq", "acct-1", "legacy-sub-1"))
	ok(t, s.SetLegacySubject(ctx, "saaq", "acct-2", "legacy-sub-2"))
	for _, tc := range []struct {
		id, sector, sub string
		notFound        bool
	}{
		{id: "acct-1", sector: "ramq", sub: "legacy-sub-1"},
		{id: "acct-1", sector: "saaq"},
		{id: "acct-2", sector: "saaq", sub: "legacy-sub-2"},
		{id: "acct-2", sector: "ramq"},
		{id: "acct-missing", sector: "ramq", notFound: true},
	} {
		t.Run(tc.id+"/"+tc.sector, func(t *testing.T) {
			got, sub, err := s.GetAccountSubject(ctx, tc.id, tc.sector)
			if tc.notFound {
				isErr(t, err, sqin.ErrNotFound)
				return
			}
			ok(t, err)
			want, err := s.GetAccount(ctx, tc.id)
			ok(t, err)
			same(t, got, want)
			if sub != tc.sub {
				t.Errorf("legacy sub %q, want %q", sub, tc.sub)
			}
		})
	}
}
