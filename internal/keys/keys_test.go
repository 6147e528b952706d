package keys_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/sqlstore"
)

func newManager(t testing.TB, dbPath string, master byte) *keys.Manager {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, "sqlite://"+dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	mk := make([]byte, 32)
	mk[0] = master
	sealer, err := keys.NewSealer(mk)
	if err != nil {
		t.Fatal(err)
	}
	m, err := keys.NewManager(ctx, db, sealer, keys.Config{Keep: time.Hour, RSABits: 2048})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func jwksKIDs(t *testing.T, m *keys.Manager) []string {
	var set struct {
		Keys []struct {
			Kid string `json:"kid"`
			D   string `json:"d"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(m.JWKS(context.Background()), &set); err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, k := range set.Keys {
		if k.D != "" {
			t.Fatal("private key in JWKS")
		}
		ids = append(ids, k.Kid)
	}
	return ids
}

func TestSignVerifyRotate(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "k.db")
	m := newManager(t, path, 1)
	if !m.Ready() || len(jwksKIDs(t, m)) != 2 {
		t.Fatalf("first start must create ES256 and RSA keys: %v", jwksKIDs(t, m))
	}
	claims := map[string]any{"sub": "x", "n": 1}
	for _, alg := range keys.SupportedAlgs {
		tok, err := m.Sign(ctx, alg, "JWT", claims)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Verify(ctx, tok, "JWT", alg); err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		if _, err := m.Verify(ctx, tok, "at+jwt", alg); err == nil {
			t.Fatalf("%s: wrong typ accepted", alg)
		}
	}
	es, _ := m.Sign(ctx, keys.ES256, "at+jwt", claims)
	if _, err := m.Verify(ctx, es, "at+jwt", keys.RS256); err == nil {
		t.Fatal("algorithm outside the allowed list accepted")
	}
	// Tampering with the payload breaks the signature.
	parts := strings.Split(es, ".")
	tampered := parts[0] + "." + strings.TrimRight(parts[1], "Q") + "Q." + parts[2]
	if _, err := m.Verify(ctx, tampered, "at+jwt", keys.ES256); err == nil {
		t.Fatal("tampered token verified")
	}

	before := jwksKIDs(t, m)
	if err := m.Rotate(ctx, keys.ES256); err != nil {
		t.Fatal(err)
	}
	after := jwksKIDs(t, m)
	if len(after) != 3 {
		t.Fatalf("old key must stay published during overlap: %v -> %v", before, after)
	}
	if _, err := m.Verify(ctx, es, "at+jwt", keys.ES256); err != nil {
		t.Fatalf("token signed before rotation: %v", err)
	}
	es2, _ := m.Sign(ctx, keys.ES256, "at+jwt", claims)
	if strings.Split(es2, ".")[0] == parts[0] {
		t.Fatal("new tokens still signed with the retired key")
	}

	// A restart with the same master key loads the same keys; another
	// master key cannot decrypt them.
	m2 := newManager(t, path, 1)
	if _, err := m2.Verify(ctx, es2, "at+jwt", keys.ES256); err != nil {
		t.Fatalf("after restart: %v", err)
	}
	db, _ := sqlstore.Open(ctx, "sqlite://"+path)
	defer db.Close()
	wrong := make([]byte, 32)
	sealer, _ := keys.NewSealer(wrong)
	if _, err := keys.NewManager(ctx, db, sealer, keys.Config{Keep: time.Hour}); err == nil || !strings.Contains(err.Error(), "master key") {
		t.Fatalf("wrong master key: %v", err)
	}
}

func FuzzVerify(f *testing.F) {
	m := newManager(f, filepath.Join(f.TempDir(), "k.db"), 1)
	tok, _ := m.Sign(context.Background(), keys.ES256, "at+jwt", map[string]any{"a": 1})
	f.Add(tok)
	f.Add("e30.e30.")
	f.Add("eyJhbGciOiJub25lIn0.e30.")
	f.Fuzz(func(t *testing.T, s string) {
		payload, err := m.Verify(context.Background(), s, "at+jwt", keys.ES256)
		if err == nil && s != tok {
			// Only tokens we signed verify; JWS compact has one encoding
			// per signature except for trailing base64 bits.
			if string(payload) != `{"a":1}` {
				t.Fatalf("foreign token verified: %q", s)
			}
		}
	})
}

func BenchmarkSignES256(b *testing.B) {
	m := newManager(b, filepath.Join(b.TempDir(), "k.db"), 1)
	ctx := context.Background()
	claims := map[string]any{"iss": "https://issuer", "sub": "abc", "exp": 1}
	for b.Loop() {
		if _, err := m.Sign(ctx, keys.ES256, "at+jwt", claims); err != nil {
			b.Fatal(err)
		}
	}
}
