package storetest

import (
	"bytes"
	"testing"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/store"
)

func testLocalSecrets(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.PutLocalSecrets(ctx, []store.LocalSecret{
		{SecretType: "driving-licence", PersonID: "p1", Hash: []byte{1, 2, 3}},
		{SecretType: "driving-licence", PersonID: "p2", Hash: []byte{4}},
		{SecretType: "other", PersonID: "p1", Hash: []byte{5}},
	}, t0))
	// A new delivery replaces the person's hash of that type only.
	ok(t, s.PutLocalSecrets(ctx, []store.LocalSecret{{SecretType: "driving-licence", PersonID: "p1", Hash: []byte{9, 9}}}, t0))
	for _, tc := range []struct {
		typ, person string
		want        []byte
	}{
		{"driving-licence", "p1", []byte{9, 9}},
		{"driving-licence", "p2", []byte{4}},
		{"other", "p1", []byte{5}},
	} {
		got, err := s.LocalSecretHash(ctx, tc.typ, tc.person)
		ok(t, err)
		if !bytes.Equal(got, tc.want) {
			t.Fatalf("%s/%s = %v, want %v", tc.typ, tc.person, got, tc.want)
		}
	}
	_, err := s.LocalSecretHash(ctx, "driving-licence", "p3")
	isErr(t, err, sqin.ErrNotFound)
	ok(t, s.PutLocalSecrets(ctx, nil, t0))
}
