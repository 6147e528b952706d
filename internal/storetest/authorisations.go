package storetest

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/legal"
	"github.com/sqin/sqin/internal/store"
)

func authorisation(ref string) *legal.Authorisation {
	a := &legal.Authorisation{
		Ref: ref, Title: "Expérimentation « allocation »", Purpose: "allocation-famille",
		LegalBasis: "Loi sur l'administration publique, art. 3; décret " + ref, Source: "Fichier des personnes assurées",
		Recipients: []string{"client:rp", "body:mfa"}, Attributes: []string{"family_name", "birth_date"},
		From: t0, To: t0.Add(90 * 24 * time.Hour), CreatedAt: t0,
	}
	a.Normalize()
	return a
}

func testAuthorisations(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := authorisation("D-200-2026"), authorisation("D-100-2026")
	ok(t, s.CreateAuthorisation(ctx, a))
	ok(t, s.CreateAuthorisation(ctx, b))
	isErr(t, s.CreateAuthorisation(ctx, authorisation("D-200-2026")), sqin.ErrConflict)

	got, err := s.GetAuthorisation(ctx, a.Ref)
	ok(t, err)
	if !reflect.DeepEqual(got, a) {
		t.Fatalf("GetAuthorisation = %+v, want %+v", got, a)
	}
	_, err = s.GetAuthorisation(ctx, "D-missing")
	isErr(t, err, sqin.ErrNotFound)

	all, err := s.ListAuthorisations(ctx)
	ok(t, err)
	if len(all) != 2 || all[0].Ref != b.Ref || all[1].Ref != a.Ref {
		t.Fatalf("ListAuthorisations not by reference: %v", all)
	}

	// Ending moves the term; it can happen once, and not after the term.
	end := t0.Add(24 * time.Hour)
	ok(t, s.EndAuthorisation(ctx, a.Ref, end))
	got, err = s.GetAuthorisation(ctx, a.Ref)
	ok(t, err)
	if !got.To.Equal(end) || !got.EndedAt.Equal(end) || !got.InForce(end.Add(-time.Millisecond)) || got.InForce(end) {
		t.Fatalf("ended authorisation: to %v ended %v", got.To, got.EndedAt)
	}
	for name, err := range map[string]error{
		"twice":         s.EndAuthorisation(ctx, a.Ref, end.Add(time.Hour)),
		"after its end": s.EndAuthorisation(ctx, b.Ref, b.To.Add(time.Hour)),
	} {
		if !errors.Is(err, sqin.ErrConflict) || sqin.ErrorCode(err) != sqin.EConflict {
			t.Errorf("end %s: %v, want a conflict", name, err)
		}
	}
	isErr(t, s.EndAuthorisation(ctx, "D-missing", end), sqin.ErrNotFound)
	if got, _ := s.GetAuthorisation(ctx, b.Ref); !got.EndedAt.IsZero() {
		t.Fatal("a refused end changed the authorisation")
	}
}

var authorisationWrites = []struct {
	name    string
	prepare func(context.Context, store.Store) error
	write   func(context.Context, store.Store) error
}{
	{"CreateAuthorisation", nil, func(ctx context.Context, s store.Store) error {
		return s.CreateAuthorisation(ctx, authorisation("D-w-1"))
	}},
	{"EndAuthorisation", createAuthorisation("D-w-2"), func(ctx context.Context, s store.Store) error {
		return s.EndAuthorisation(ctx, "D-w-2", t0.Add(time.Hour))
	}},
}

func createAuthorisation(ref string) func(context.Context, store.Store) error {
	return func(ctx context.Context, s store.Store) error { return s.CreateAuthorisation(ctx, authorisation(ref)) }
}
