package sqlstore

import "testing"

func TestIsWrite(t *testing.T) {
	for sql, want := range map[string]bool{
		"INSERT INTO used_once (key) VALUES ($1)":                    true,
		" update grants SET revoked_at = $1":                         true,
		"DELETE FROM auth_requests WHERE id = $1":                    true,
		"WITH d AS (DELETE FROM auth_requests) INSERT INTO x":        true,
		"WITH k AS (INSERT INTO used_once (key) VALUES ($1)) SELECT": true,
		"SELECT id FROM grants WHERE id = $1":                        false,
		"WITH u AS (SELECT 1) SELECT * FROM u":                       false,
		"begin":                                                      false,
	} {
		if got := isWrite(sql); got != want {
			t.Errorf("isWrite(%q) = %v, want %v", sql, got, want)
		}
	}
}
