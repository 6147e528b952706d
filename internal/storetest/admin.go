package storetest

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/store"
)

func adminToken(id string) *store.AdminToken {
	return &store.AdminToken{ID: id, Hash: "hash-" + id, Note: "équipe d'exploitation", CreatedAt: t0,
		ExpiresAt: t0.Add(24 * time.Hour)}
}

func testAdminTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := adminToken("adm-b"), adminToken("adm-a")
	b.CreatedAt = t0.Add(time.Second)
	ok(t, s.CreateAdminToken(ctx, a))
	ok(t, s.CreateAdminToken(ctx, b))
	isErr(t, s.CreateAdminToken(ctx, adminToken("adm-b")), sqin.ErrConflict)
	dup := adminToken("adm-c")
	dup.Hash = a.Hash
	isErr(t, s.CreateAdminToken(ctx, dup), sqin.ErrConflict)

	got, err := s.GetAdminToken(ctx, a.Hash)
	ok(t, err)
	if !reflect.DeepEqual(got, a) || !got.Usable(t0) || got.Usable(a.ExpiresAt) {
		t.Fatalf("GetAdminToken = %+v", got)
	}
	_, err = s.GetAdminToken(ctx, "hash-missing")
	isErr(t, err, sqin.ErrNotFound)

	all, err := s.ListAdminTokens(ctx)
	ok(t, err)
	if len(all) != 2 || all[0].ID != "adm-b" || all[1].ID != "adm-a" {
		t.Fatalf("ListAdminTokens not oldest first: %v", all)
	}

	ok(t, s.RevokeAdminToken(ctx, a.ID, t0.Add(time.Minute)))
	ok(t, s.RevokeAdminToken(ctx, a.ID, t0.Add(time.Hour))) // keeps the first time
	got, err = s.GetAdminToken(ctx, a.Hash)
	ok(t, err)
	if !got.RevokedAt.Equal(t0.Add(time.Minute)) || got.Usable(t0.Add(2*time.Minute)) {
		t.Fatalf("revoked token %+v", got)
	}
	isErr(t, s.RevokeAdminToken(ctx, "adm-missing", t0), sqin.ErrNotFound)
}

var adminWrites = []struct {
	name    string
	prepare func(context.Context, store.Store) error
	write   func(context.Context, store.Store) error
}{
	{"CreateAdminToken", nil, func(ctx context.Context, s store.Store) error {
		return s.CreateAdminToken(ctx, adminToken("adm-w-1"))
	}},
	{"RevokeAdminToken", func(ctx context.Context, s store.Store) error {
		return s.CreateAdminToken(ctx, adminToken("adm-w-2"))
	}, func(ctx context.Context, s store.Store) error {
		return s.RevokeAdminToken(ctx, "adm-w-2", t0)
	}},
}
