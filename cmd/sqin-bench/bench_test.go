package main

import (
	"io"
	"net/url"
	"testing"
	"time"
)

func TestParseForm(t *testing.T) {
	page := `<html><body><div class="alert" role="alert" id="login-error"><p>Adresse ou mot de passe invalide.</p></div>
<form method="post" action="/login" novalidate>
  <input type="hidden" name="req" value="abc&#43;def">
  <input type="hidden" name="csrf" value="x&amp;y">
  <input id="username" name="username" type="email" autocomplete="username" required value="">
  <input id="password" name="password" type="password" required>
  <input type="checkbox" name="remember" value="1" checked>
  <button type="submit">Se connecter</button>
</form></body></html>`
	f, ok := parseForm([]byte(page))
	if !ok {
		t.Fatal("no form")
	}
	if f.action != "/login" {
		t.Errorf("action = %q", f.action)
	}
	want := url.Values{"req": {"abc+def"}, "csrf": {"x&y"}, "remember": {"1"}}
	if f.fields.Encode() != want.Encode() {
		t.Errorf("fields = %v, want %v", f.fields, want)
	}
	if !f.has("password") || !f.has("username") || f.has("approve") {
		t.Errorf("names = %v", f.names)
	}
	if got := pageAlert([]byte(page)); got != " (Adresse ou mot de passe invalide.)" {
		t.Errorf("pageAlert = %q", got)
	}

	consent := `<form method="post" action="/consent">
  <input type="hidden" name="req" value="r1">
  <button type="submit" name="approve" value="yes">Accepter</button>
  <button type="submit" name="deny" value="yes" class="secondary">Refuser</button>
</form>`
	f, ok = parseForm([]byte(consent))
	if !ok || !f.has("approve") || f.fields.Get("approve") != "" || f.fields.Get("req") != "r1" {
		t.Errorf("consent form = %+v", f)
	}
	if _, ok := parseForm([]byte("<p>nothing</p>")); ok {
		t.Error("found a form where there is none")
	}
}

func TestPercentile(t *testing.T) {
	var v []time.Duration
	for i := 1; i <= 100; i++ {
		v = append(v, time.Duration(i))
	}
	if p := percentile(v, 0.5); p != 50 {
		t.Errorf("p50 = %d", p)
	}
	if p := percentile(v, 0.99); p != 99 {
		t.Errorf("p99 = %d", p)
	}
	if p := percentile(v[:1], 0.99); p != 1 {
		t.Errorf("p99 of one = %d", p)
	}
	if p := percentile(nil, 0.5); p != 0 {
		t.Errorf("empty = %d", p)
	}
}

func TestPKCE(t *testing.T) {
	v, c := pkce()
	if len(v) != 43 || len(c) != 43 {
		t.Fatalf("lengths %d %d", len(v), len(c))
	}
	v2, _ := pkce()
	if v == v2 {
		t.Error("verifier repeated")
	}
}

func TestParseFlags(t *testing.T) {
	o, err := parseFlags([]string{"--concurrency", "2, 4", "--db", "sqlite", "--scenarios", "password,client_credentials"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.concurrency) != 2 || o.concurrency[1] != 4 || len(o.dbs) != 1 {
		t.Errorf("%+v", o)
	}
	if o.scenarios[0] != scClientCredentials || o.scenarios[1] != scPassword {
		t.Errorf("scenarios not in canonical order: %v", o.scenarios)
	}
	for _, bad := range [][]string{{"--db", "mysql"}, {"--concurrency", "0"}, {"--scenarios", "nope"}} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestProcCPU(t *testing.T) {
	if _, _, err := procCPU(1, true); err != nil {
		t.Skip("no /proc:", err)
	}
	rss, _ := procMemKiB(1)
	if rss < 0 {
		t.Error("negative RSS")
	}
}
