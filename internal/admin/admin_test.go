package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/admin"
	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/registry"
	"github.com/sqin/sqin/internal/sqlstore"
	"github.com/sqin/sqin/internal/sqltest"
	"github.com/sqin/sqin/internal/web"
)

func known(n string) bool { _, ok := registry.AttributeByName(n); return ok }

type apiEnv struct {
	t   *testing.T
	db  *sqlstore.DB
	srv *httptest.Server
	tok string
	id  string
}

func newAPI(t *testing.T, url string) *apiEnv {
	db, err := sqlstore.Open(context.Background(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	admin.New(db, known, slog.New(slog.NewTextHandler(io.Discard, nil))).Routes(mux)
	srv := httptest.NewServer(web.Observe(mux, slog.New(slog.NewTextHandler(io.Discard, nil))))
	t.Cleanup(srv.Close)
	tok, rec, err := admin.CreateToken(t.Context(), db, "pipeline de déploiement", time.Hour,
		audit.Actor{Kind: audit.ActorAdmin, ID: "cli:test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return &apiEnv{t: t, db: db, srv: srv, tok: tok, id: rec.ID}
}

func (e *apiEnv) call(method, path, token, body string) (int, map[string]any, http.Header) {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(b) > 0 && b[0] == '{' {
		if err := json.Unmarshal(b, &m); err != nil {
			e.t.Fatalf("%s %s: %v: %s", method, path, err, b)
		}
	} else {
		m = map[string]any{"raw": string(b)}
	}
	return resp.StatusCode, m, resp.Header
}

const decree = `{"ref":"D-1690-2026","title":"Expérimentation MFA","purpose":"allocation-famille",
 "legal_basis":"Décret 1690-2026","source":"Fichier des personnes assurées (RAMQ)",
 "recipients":["body:mfa"],"attributes":["family_name","birth_date"],"from":"2026-01-01","to":"2099-04-01"}`

func TestAdminAPI(t *testing.T) {
	for name, url := range map[string]func(testing.TB) string{"sqlite": sqltest.SQLiteURL, "postgres": sqltest.PostgresURL} {
		t.Run(name, func(t *testing.T) { testAdminAPI(t, newAPI(t, url(t))) })
	}
}

func testAdminAPI(t *testing.T, e *apiEnv) {
	// Without a valid token: 401, whatever the token's story.
	for _, tok := range []string{"", "sqa_unknown", strings.Repeat("x", 300)} {
		if status, m, h := e.call("GET", "/admin/v1/authorisations", tok, ""); status != http.StatusUnauthorized ||
			!strings.Contains(h.Get("WWW-Authenticate"), "invalid_token") || m["status"] != float64(401) {
			t.Fatalf("token %q: %d %v", tok, status, m)
		}
	}

	status, m, h := e.call("POST", "/admin/v1/authorisations", e.tok, decree)
	if status != http.StatusCreated || m["status"] != "in force" || m["to"] != "2099-04-01T00:00:00-04:00" ||
		h.Get("Location") != "/admin/v1/authorisations/D-1690-2026" {
		t.Fatalf("create: %d %v", status, m)
	}
	for _, tc := range []struct {
		name, body string
		status     int
		detail     string
	}{
		{"duplicate", decree, http.StatusConflict, "already exists"},
		{"unknown attribute", strings.Replace(strings.Replace(decree, "family_name", "shoe_size", 1), "D-1690", "D-2", 1),
			http.StatusUnprocessableEntity, `attribute "shoe_size" is not in the registry catalogue`},
		{"bad date", strings.Replace(strings.Replace(decree, "2099-04-01", "31/03/2099", 1), "D-1690", "D-3", 1),
			http.StatusUnprocessableEntity, `to: "31/03/2099" is neither a date`},
		{"unknown member", strings.Replace(decree, `"title"`, `"titre":"x","title"`, 1), http.StatusBadRequest, "unknown field"},
		{"not JSON", "ref=D-4", http.StatusBadRequest, "JSON"},
	} {
		status, m, _ := e.call("POST", "/admin/v1/authorisations", e.tok, tc.body)
		if status != tc.status || !strings.Contains(m["detail"].(string), tc.detail) {
			t.Errorf("%s: %d %v", tc.name, status, m)
		}
	}
	if status, m, _ := e.call("GET", "/admin/v1/authorisations/D-404", e.tok, ""); status != http.StatusNotFound {
		t.Fatalf("missing: %d %v", status, m)
	}

	status, m, _ = e.call("POST", "/admin/v1/authorisations/D-1690-2026/end", e.tok, `{"at":"2098-01-01"}`)
	if status != http.StatusOK || m["status"] != "ended" || m["to"] != "2098-01-01T00:00:00-05:00" {
		t.Fatalf("end: %d %v", status, m)
	}
	if status, m, _ := e.call("POST", "/admin/v1/authorisations/D-1690-2026/end", e.tok, ""); status != http.StatusConflict {
		t.Fatalf("second end: %d %v", status, m)
	}
	status, m, _ = e.call("GET", "/admin/v1/authorisations", e.tok, "")
	if status != http.StatusOK || !strings.Contains(m["raw"].(string), `"ref": "D-1690-2026"`) {
		t.Fatalf("list: %d %v", status, m)
	}

	// Both changes are audited with the token as actor; refusals wrote
	// nothing.
	n, _ := e.db.AuditSize(t.Context())
	recs, err := e.db.Events(t.Context(), 0, n)
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, r := range recs {
		if r.Actor.ID == "admin-token:"+e.id {
			actions = append(actions, r.Action)
		}
	}
	if !slices.Equal(actions, []string{admin.ActionAuthorisationCreated, admin.ActionAuthorisationEnded}) {
		t.Fatalf("audited %v", actions)
	}

	// A revoked token stops working at once.
	if err := e.db.RevokeAdminToken(t.Context(), e.id, time.Now()); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := e.call("GET", "/admin/v1/authorisations", e.tok, ""); status != http.StatusUnauthorized {
		t.Fatalf("revoked token: %d", status)
	}
}

func TestAdminAPIThrottlesGuessing(t *testing.T) {
	e := newAPI(t, sqltest.SQLiteURL(t))
	for i := range 20 {
		if status, _, _ := e.call("GET", "/admin/v1/authorisations", "sqa_guess", ""); status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, status)
		}
	}
	// The address is now refused, even with the right token, until the
	// window slides.
	if status, _, h := e.call("GET", "/admin/v1/authorisations", e.tok, ""); status != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("after 20 failures: %d", status)
	}
}
