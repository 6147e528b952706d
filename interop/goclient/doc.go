// Package goclient holds interop tests only: they build ./cmd/sqin, start it
// on SQLite and on PostgreSQL, and prove the OpenID Provider with the
// standard Go relying-party stack (github.com/coreos/go-oidc/v3 and
// golang.org/x/oauth2), which nobody in this project wrote.
//
// Run them with `go test ./interop/...`. PostgreSQL is reached through
// SQIN_TEST_POSTGRES (default
// postgres://postgres@127.0.0.1:5432/test?sslmode=disable); each run works
// in a fresh schema and drops it. Without PostgreSQL its half is skipped,
// unless CI is set, where that is a failure.
package goclient
