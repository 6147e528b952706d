package clientreg

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/sqin/sqin/internal/audit"
	"github.com/sqin/sqin/internal/store"
)

// TestRegistrationAudited: registering, updating and deleting a client
// through the API each commit their event, made by the client, with the
// request's ID; refused requests record nothing, and no token or secret
// reaches the log.
func TestRegistrationAudited(t *testing.T) {
	e := newEnv(t)
	e.h.cfg.FailuresPerAddress = 100
	ctx := context.Background()
	mark, err := e.db.AuditSize(ctx) // the start-up's events (first signing keys) come before
	if err != nil {
		t.Fatal(err)
	}
	var iatID string
	tok := e.token(func(t *store.InitialAccessToken) { t.Sector = "saaq"; iatID = t.ID })

	if r := e.register("sqin_iat_not-a-token", machine); r.status != http.StatusUnauthorized {
		t.Fatalf("bad token: %d", r.status)
	}
	r := e.register(tok, machine)
	if r.status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.status, r.body)
	}
	id, _ := r.json["client_id"].(string)
	secret, _ := r.json["client_secret"].(string)
	rat, _ := r.json["registration_access_token"].(string)
	createdRID := r.header.Get("X-Request-Id")

	if r := e.do(http.MethodDelete, "/register/"+id, "sqin_rat_wrong", "", nil); r.status != http.StatusUnauthorized {
		t.Fatalf("delete with a wrong token: %d", r.status)
	}
	meta := map[string]any{"client_id": id, "client_name": "Permis — SAAQ (v2)", "grant_types": []string{"client_credentials"},
		"scope": "openid"}
	body, _ := json.Marshal(meta)
	u := e.do(http.MethodPut, "/register/"+id, rat, "application/json", body)
	if u.status != http.StatusOK {
		t.Fatalf("update: %d %s", u.status, u.body)
	}
	rat2, _ := u.json["registration_access_token"].(string)
	d := e.do(http.MethodDelete, "/register/"+id, rat2, "", nil)
	if d.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", d.status, d.body)
	}

	n, err := e.db.AuditSize(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := e.db.Events(ctx, mark, n)
	if err != nil {
		t.Fatal(err)
	}
	want := []struct{ action, rid, detail string }{
		{audit.ClientCreated, createdRID, "registered (RFC 7591) with initial access token " + iatID},
		{audit.ClientUpdated, u.header.Get("X-Request-Id"), "updated (RFC 7592)"},
		{audit.ClientDeleted, d.header.Get("X-Request-Id"), "deleted (RFC 7592)"},
	}
	if len(rs) != len(want) {
		t.Fatalf("%d events, want %d: %+v", len(rs), len(want), rs)
	}
	for i, w := range want {
		got := rs[i]
		if got.Action != w.action || got.RequestID != w.rid || w.rid == "" || got.Actor != (audit.Actor{Kind: audit.ActorClient, ID: id}) ||
			got.ClientID != id || got.PublicBody != "saaq" || got.Detail != w.detail || got.Outcome != audit.Success {
			t.Errorf("event %d: %+v, want %+v", i, got.Event, w)
		}
	}
	b, _ := json.Marshal(rs)
	for _, v := range []string{tok, secret, rat, rat2} {
		if v == "" || strings.Contains(string(b), v) {
			t.Errorf("the log holds a secret (%d bytes)", len(v))
		}
	}
}
