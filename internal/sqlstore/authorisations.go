package sqlstore

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/legal"
)

const authzCols = `ref, title, purpose, legal_basis, source, recipients, attributes, valid_from, valid_to, created_at, ended_at`

var (
	qCreateAuthz = insertQuery("legal_authorisations", authzCols)
	qGetAuthz    = newQuery(`SELECT ` + authzCols + ` FROM legal_authorisations WHERE ref = ?`)
	qListAuthz   = newQuery(`SELECT ` + authzCols + ` FROM legal_authorisations ORDER BY ref`)
	// qEndAuthz ends an authorisation still in force at ? (or not yet in
	// force): its end moves to that instant.
	qEndAuthz = newQuery(`UPDATE legal_authorisations SET valid_to = ?, ended_at = ?
		WHERE ref = ? AND ended_at = 0 AND valid_to > ?`)
)

func scanAuthz(s scanner) (*legal.Authorisation, error) {
	a := new(legal.Authorisation)
	var recipients, attributes string
	err := s.Scan(&a.Ref, &a.Title, &a.Purpose, &a.LegalBasis, &a.Source, &recipients, &attributes,
		millis{&a.From}, millis{&a.To}, millis{&a.CreatedAt}, millis{&a.EndedAt})
	a.Recipients, a.Attributes = strings.Fields(recipients), strings.Fields(attributes)
	return a, err
}

// CreateAuthorisation stores a, which the caller has normalised and
// validated; a taken reference is sqin.ErrConflict.
func (db *DB) CreateAuthorisation(ctx context.Context, a *legal.Authorisation) error {
	const op = "sqlstore.CreateAuthorisation"
	var l lists
	recipients, attributes := l.join(a.Recipients), l.join(a.Attributes)
	if l.err != nil {
		return l.invalid(op)
	}
	_, err := db.writeExec(ctx, qCreateAuthz, a.Ref, a.Title, a.Purpose, a.LegalBasis, a.Source, recipients, attributes,
		ms(a.From), ms(a.To), ms(a.CreatedAt), ms(a.EndedAt))
	return wrap(op, err)
}

// GetAuthorisation returns the authorisation ref, or sqin.ErrNotFound.
func (db *DB) GetAuthorisation(ctx context.Context, ref string) (*legal.Authorisation, error) {
	a, err := scanAuthz(db.read.QueryRowContext(ctx, db.sql(qGetAuthz), ref))
	if err != nil {
		return nil, wrap("sqlstore.GetAuthorisation", err)
	}
	return a, nil
}

// ListAuthorisations returns every authorisation, in force or not, by
// reference.
func (db *DB) ListAuthorisations(ctx context.Context) ([]*legal.Authorisation, error) {
	const op = "sqlstore.ListAuthorisations"
	rows, err := db.read.QueryContext(ctx, db.sql(qListAuthz))
	if err != nil {
		return nil, wrap(op, err)
	}
	defer rows.Close()
	var as []*legal.Authorisation
	for rows.Next() {
		a, err := scanAuthz(rows)
		if err != nil {
			return nil, wrap(op, err)
		}
		as = append(as, a)
	}
	return as, wrap(op, rows.Err())
}

// EndAuthorisation ends ref at the instant at: releases stop then. An
// authorisation already ended, or whose term is not after at, is
// sqin.ErrConflict; a missing one sqin.ErrNotFound.
func (db *DB) EndAuthorisation(ctx context.Context, ref string, at time.Time) error {
	const op = "sqlstore.EndAuthorisation"
	return wrap(op, db.inTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, db.sql(qEndAuthz), ms(at), ms(at), ref, ms(at))
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil || n > 0 {
			return err
		}
		if _, err := scanAuthz(tx.QueryRowContext(ctx, db.sql(qGetAuthz), ref)); err != nil {
			return err
		}
		return &sqin.Error{Code: sqin.EConflict, Op: op, Message: "the authorisation has already ended", Err: sqin.ErrConflict}
	}))
}
