package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

func TestAdminTokenCommands(t *testing.T) {
	db := "sqlite://" + filepath.Join(t.TempDir(), "a.db")
	code, out, errOut := run(t, nil, "admin", "token", "create", "--db", db, "--note", "pipeline", "--expires", "24h")
	var created adminTokenJSON
	if code != 0 || json.Unmarshal([]byte(out), &created) != nil || !strings.HasPrefix(created.Token, "sqa_") || created.Status != "active" {
		t.Fatalf("create: %d %s %s", code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"admin", "token", "create", "--db", db}, "--note is required"},
		{[]string{"admin", "token", "create", "--db", db, "--note", "x", "--expires", "9000h"}, "--expires"},
		{[]string{"admin", "token", "revoke", "--db", db}, "--id is required"},
		{[]string{"admin", "token", "revoke", "--db", db, "--id", "adm-404"}, `no admin token "adm-404"`},
		{[]string{"admin", "tokens"}, "want token create"},
	} {
		if code, _, errOut := run(t, nil, tc.args...); code != 1 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: %d %q", tc.args, code, errOut)
		}
	}
	if code, out, _ := run(t, nil, "admin", "token", "revoke", "--db", db, "--id", created.ID); code != 0 || !strings.Contains(out, "revoked") {
		t.Fatalf("revoke: %d %s", code, out)
	}
	code, out, _ = run(t, nil, "admin", "token", "list", "--db", db)
	var list []adminTokenJSON
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Status != "revoked" || list[0].Token != "" {
		t.Fatalf("list: %d %s", code, out)
	}
}
