package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"time"

	"github.com/sqin/sqin"
)

const clientCols = `id, secret_hash, name, redirect_uris, post_logout_redirect_uris, grant_types,
	scopes, claims, auth_method, signing_alg, min_loa, sector, jwks, created_at, jwks_uri, require_par,
	require_dpop, profile, subject_type, backchannel_logout_uri, frontchannel_logout_uri, purpose`

var (
	qCreateClient        = insertQuery("clients", clientCols)
	qGetClient           = newQuery(`SELECT ` + clientCols + ` FROM clients WHERE id = ?`)
	qListClients         = newQuery(`SELECT ` + clientCols + ` FROM clients ORDER BY id`)
	qDeleteClient        = newQuery(`DELETE FROM clients WHERE id = ?`)
	qRevokeClientGrants  = newQuery(`UPDATE grants SET revoked_at = ? WHERE client_id = ? AND revoked_at = 0`)
	qDeleteClientConsent = newQuery(`DELETE FROM consents WHERE client_id = ?`)
)

// CreateClient stores c; a taken ID is sqin.ErrConflict.
func (db *DB) CreateClient(ctx context.Context, c *sqin.Client) error {
	const op = "sqlstore.CreateClient"
	row, err := clientRow(op, c)
	if err != nil {
		return err
	}
	args, err := clientArgs(op, row, false)
	if err != nil {
		return err
	}
	_, err = db.writeExec(ctx, qCreateClient, args...)
	return wrap(op, err)
}

func scanClient(s scanner) (*sqin.Client, error) {
	c := new(sqin.Client)
	err := s.Scan(&c.ID, &c.SecretHash, &c.Name, strs{&c.RedirectURIs}, strs{&c.PostLogoutRedirectURIs},
		strs{&c.GrantTypes}, strs{&c.Scopes}, strs{&c.Claims}, &c.AuthMethod, &c.SigningAlg,
		num(&c.MinLoA), &c.Sector, &c.JWKS, millis{&c.CreatedAt}, &c.JWKSURI, &c.RequirePAR, &c.RequireDPoP,
		&c.Profile, &c.SubjectType, &c.BackchannelLogoutURI, &c.FrontchannelLogoutURI, &c.Purpose)
	return c, err
}

// GetClient returns the client, or sqin.ErrNotFound.
func (db *DB) GetClient(ctx context.Context, id string) (*sqin.Client, error) {
	c, err := scanClient(db.read.QueryRowContext(ctx, db.sql(qGetClient), id))
	if err != nil {
		return nil, wrap("sqlstore.GetClient", err)
	}
	return c, nil
}

// ListClients returns every client, ordered by ID.
func (db *DB) ListClients(ctx context.Context) ([]*sqin.Client, error) {
	const op = "sqlstore.ListClients"
	rows, err := db.read.QueryContext(ctx, db.sql(qListClients))
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var cs []*sqin.Client
	for rows.Next() {
		c, err := scanClient(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		cs = append(cs, c)
	}
	return cs, wrap(op, rows.Err())
}

// DeleteClient removes the client, revokes its grants and deletes its
// consents in one transaction; a missing client is sqin.ErrNotFound.
func (db *DB) DeleteClient(ctx context.Context, id string) error {
	now := ms(time.Now()) // the interface gives no time
	return wrap("sqlstore.DeleteClient", db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.sql(qDeleteClient), id)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return cmp.Or(err, sql.ErrNoRows)
		}
		if _, err := tx.ExecContext(ctx, db.sql(qRevokeClientGrants), now, id); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, db.sql(qDeleteClientConsent), id)
		return err
	}))
}

const accountCols = `id, email, email_verified, password_hash, loa, person_id, locale, locked, created_at, updated_at`

var (
	qCreateAccount     = insertQuery("accounts", accountCols)
	qGetAccount        = newQuery(`SELECT ` + accountCols + ` FROM accounts WHERE id = ?`)
	qGetAccountByEmail = newQuery(`SELECT ` + accountCols + ` FROM accounts WHERE email = ?`)
)

// CreateAccount stores a; a taken ID or email is sqin.ErrConflict.
func (db *DB) CreateAccount(ctx context.Context, a *sqin.Account) error {
	_, err := db.writeExec(ctx, qCreateAccount, a.ID, a.Email, a.EmailVerified, a.PasswordHash,
		int64(a.LoA), a.PersonID, a.Locale, a.Locked, ms(a.CreatedAt), ms(a.UpdatedAt))
	return wrap("sqlstore.CreateAccount", err)
}

func scanAccount(s scanner) (*sqin.Account, error) {
	a := new(sqin.Account)
	err := s.Scan(&a.ID, &a.Email, &a.EmailVerified, &a.PasswordHash, num(&a.LoA), &a.PersonID, &a.Locale,
		&a.Locked, millis{&a.CreatedAt}, millis{&a.UpdatedAt})
	return a, err
}

// GetAccount returns the account, or sqin.ErrNotFound.
func (db *DB) GetAccount(ctx context.Context, id string) (*sqin.Account, error) {
	a, err := scanAccount(db.read.QueryRowContext(ctx, db.sql(qGetAccount), id))
	if err != nil {
		return nil, wrap("sqlstore.GetAccount", err)
	}
	return a, nil
}

// qAccountSubject reads an account and its legacy sub for one sector.
var qAccountSubject = newQuery(`SELECT ` + prefixCols("a.", accountCols) + `, COALESCE(l.sub, '')
	FROM accounts a LEFT JOIN legacy_subjects l ON l.sector = ? AND l.account_id = a.id
	WHERE a.id = ?`)

// GetAccountSubject returns the account and the legacy sub of sector (""
// when none) in one statement, or sqin.ErrNotFound.
func (db *DB) GetAccountSubject(ctx context.Context, id, sector string) (*sqin.Account, string, error) {
	a := new(sqin.Account)
	var sub string
	err := db.read.QueryRowContext(ctx, db.sql(qAccountSubject), sector, id).Scan(&a.ID, &a.Email,
		&a.EmailVerified, &a.PasswordHash, num(&a.LoA), &a.PersonID, &a.Locale, &a.Locked, millis{&a.CreatedAt},
		millis{&a.UpdatedAt}, &sub)
	if err != nil {
		return nil, "", wrap("sqlstore.GetAccountSubject", err)
	}
	return a, sub, nil
}

// GetAccountByEmail returns the account with that (normalised) email, or
// sqin.ErrNotFound.
func (db *DB) GetAccountByEmail(ctx context.Context, email string) (*sqin.Account, error) {
	a, err := scanAccount(db.read.QueryRowContext(ctx, db.sql(qGetAccountByEmail), email))
	if err != nil {
		return nil, wrap("sqlstore.GetAccountByEmail", err)
	}
	return a, nil
}

const personCols = `id, family_name, given_name, birth_date, sex, health_no, civic_number, street, unit,
	municipality, province, postal_code, country, language, death_date, updated_at`

var (
	qCreatePerson = insertQuery("persons", personCols)
	qGetPerson    = newQuery(`SELECT ` + personCols + ` FROM persons WHERE id = ?`)
)

// CreatePerson stores p; a taken ID is sqin.ErrConflict.
func (db *DB) CreatePerson(ctx context.Context, p *sqin.Person) error {
	a := &p.Address
	_, err := db.writeExec(ctx, qCreatePerson, p.ID, p.FamilyName, p.GivenName, p.BirthDate,
		p.Sex, p.HealthNo, a.CivicNumber, a.Street, a.Unit, a.Municipality, a.Province, a.PostalCode,
		a.Country, p.Language, p.DeathDate, ms(p.UpdatedAt))
	return wrap("sqlstore.CreatePerson", err)
}

// GetPerson returns the person, or sqin.ErrNotFound.
func (db *DB) GetPerson(ctx context.Context, id string) (*sqin.Person, error) {
	p := new(sqin.Person)
	a := &p.Address
	err := db.read.QueryRowContext(ctx, db.sql(qGetPerson), id).Scan(&p.ID, &p.FamilyName, &p.GivenName,
		&p.BirthDate, &p.Sex, &p.HealthNo, &a.CivicNumber, &a.Street, &a.Unit, &a.Municipality, &a.Province,
		&a.PostalCode, &a.Country, &p.Language, &p.DeathDate, millis{&p.UpdatedAt})
	if err != nil {
		return nil, wrap("sqlstore.GetPerson", err)
	}
	return p, nil
}
