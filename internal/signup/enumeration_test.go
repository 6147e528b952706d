package signup_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sqin/sqin/internal/proofing"
	"github.com/sqin/sqin/internal/signup"
	"github.com/sqin/sqin/internal/sqltest"
)

// slowHolder is a remote holder that takes delay to answer and confirms
// one value: without padding, a person unknown to the registry (never
// sent to the holder) would answer faster by that much.
type slowHolder struct {
	delay time.Duration
	right string
}

func (h slowHolder) Verify(ctx context.Context, values []string, _ map[string]string) (bool, error) {
	time.Sleep(h.delay)
	return len(values) == 1 && values[0] == h.right, nil
}

// sample is one kind of request of the comparison: it sends one request
// and returns the time it took and the body.
type sample struct {
	name string
	do   func() (time.Duration, string)
}

// interleave runs n rounds; in each round every kind of request runs once,
// in a new random order, so that whatever else loads the machine (other
// tests, other engineers' builds on a 2-core box) falls on every kind
// alike.
func interleave(kinds []sample, n int) (map[string][]time.Duration, map[string]string) {
	times, bodies := map[string][]time.Duration{}, map[string]string{}
	order := slices.Clone(kinds)
	for range n {
		rand.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
		for _, k := range order {
			d, body := k.do()
			times[k.name] = append(times[k.name], d)
			bodies[k.name] = body
		}
	}
	return times, bodies
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// trimmedMean is the mean of the middle 60 % of the samples: it ignores
// the slowest fifth (a request that waited for the CPU) and the fastest.
func trimmedMean(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	cut := len(s) / 5
	s = s[cut : len(s)-cut]
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return sum / time.Duration(len(s))
}

// tolerance is the largest difference of medians (and trimmed means)
// accepted between two kinds: 4 ms or 4 % of the smaller median. The
// answers are padded to a floor (MinResponse per proof chosen plus one,
// 120 ms here) well above the work they do, so without a leak the
// distributions are the same and their medians differ only by noise:
// timer slack and scheduling, a fraction of a millisecond on an idle
// machine and, because the kinds are interleaved, about the same for each
// on a loaded one; the median and the trimmed mean ignore the outliers a
// loaded machine adds. The control below shows that a difference of
// 15 ms (the holder's delay plus the prover's padding is larger) is
// caught with these samples.
func tolerance(a, b time.Duration) time.Duration {
	return max(4*time.Millisecond, min(a, b)*4/100)
}

// same reports whether kinds a and b cannot be told apart by time.
func same(times map[string][]time.Duration, a, b string) (bool, string) {
	ma, mb := median(times[a]), median(times[b])
	ta, tb := trimmedMean(times[a]), trimmedMean(times[b])
	tol := tolerance(ma, mb)
	diff := func(x, y time.Duration) time.Duration { return max(x-y, y-x) }
	report := fmt.Sprintf("%s: median %v, trimmed mean %v; %s: median %v, trimmed mean %v; tolerance %v",
		a, ma.Round(10*time.Microsecond), ta.Round(10*time.Microsecond), b, mb.Round(10*time.Microsecond),
		tb.Round(10*time.Microsecond), tol.Round(10*time.Microsecond))
	return diff(ma, mb) <= tol && diff(ta, tb) <= tol, report
}

var valueRE = regexp.MustCompile(`value="[^"]*"`)

// normalize drops what legitimately differs between two answers: the
// form token and the values the citizen typed, shown back.
func normalize(page string) string {
	return valueRE.ReplaceAllString(hiddenRE.ReplaceAllString(page, ""), `value=""`)
}

// TestEnumeration: the answers to a proofing attempt, a letter request
// and a password reset request tell no one whether a person or an account
// exists, by their body or their timing: a person the registry knows and
// one it does not (with wrong secrets, and with a remote holder that is
// slow and then fails), a right and a wrong secret (by time: the body
// says which, as it must), an address with an account and one without. Samples of each kind are interleaved; medians and trimmed
// means are compared with a relative tolerance (see tolerance), and a
// control shows the comparison catches a 15 ms difference.
func TestEnumeration(t *testing.T) {
	if testing.Short() {
		t.Skip("statistical timing test (about 20 s)")
	}
	w := newWorld(t, sqltest.SQLiteURL(t))
	who := w.people[7]
	const rightSIN = "046454286"
	limits := proofing.Limits{PerPerson: 1 << 20, PerAccount: 1 << 20, PerAddress: 1 << 20, Global: 1 << 20,
		MinDuration: 15 * time.Millisecond}
	p := w.provider(t, nil, limits, map[string]proofing.Verifier{"sin": slowHolder{delay: 10 * time.Millisecond, right: rightSIN},
		"notice-of-assessment": never{}}, func(c *signup.Config) {
		c.MinResponse = 40 * time.Millisecond
		c.LettersPer30Days, c.ResetsPerHour, c.SignupsPerHour = 1<<20, 1<<20, 1<<20
	})

	// One account asks about a known and an unknown person with wrong
	// secrets; another about the known person with the right SIN.
	wrongAcct, rightAcct := newAccount(t, p, "faux@exemple.test"), newAccount(t, p, "vrai@exemple.test")
	token := func(b *browser, path string) string {
		_, page, _ := b.do(http.MethodGet, p.srv.URL+path, nil)
		m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no form token on %s", path)
		}
		return m[1]
	}
	timed := func(b *browser, path string, f url.Values, want int) (time.Duration, string) {
		start := time.Now()
		status, page, _ := b.do(http.MethodPost, p.srv.URL+path, f)
		d := time.Since(start)
		if status != want {
			t.Fatalf("%s: status %d, want %d: %s", path, status, want, page)
		}
		return d, page
	}
	proof := func(b *browser, birth, sin string) url.Values {
		return url.Values{"csrf": {token(b, "/verification")}, "family_name": {who.Family}, "given_names": {who.Given},
			"birth_date": {birth}, "use-health-card": {"yes"}, "health-card.nam": {who.NAM}, "health-card.expiry": {"2099-01"},
			"use-sin": {"yes"}, "sin.sin": {sin}}
	}
	known := proof(wrongAcct, who.Birth, "046454278")      // Luhn-valid, wrong: the holder is asked
	unknown := proof(wrongAcct, "1901-02-03", "046454278") // Luhn-valid, wrong: the holder is asked
	right := proof(rightAcct, who.Birth, rightSIN)

	const n = 21
	times, bodies := interleave([]sample{
		{"known person", func() (time.Duration, string) { return timed(wrongAcct, "/verification", known, http.StatusOK) }},
		{"unknown person", func() (time.Duration, string) { return timed(wrongAcct, "/verification", unknown, http.StatusOK) }},
		{"right secret", func() (time.Duration, string) { return timed(rightAcct, "/verification", right, http.StatusOK) }},
		{"known person, 15 ms slower (control)", func() (time.Duration, string) {
			d, body := timed(wrongAcct, "/verification", known, http.StatusOK)
			return d + 15*time.Millisecond, body
		}},
	}, n)
	if normalize(bodies["known person"]) != normalize(bodies["unknown person"]) {
		t.Error("the proofing answer differs for a person the registry does not know")
	}
	if !strings.Contains(bodies["right secret"], "Confirmée.") || !strings.Contains(bodies["known person"], "ne correspond pas") {
		t.Fatal("the attempts did not have the outcomes the test wants")
	}
	for _, pair := range [][2]string{{"known person", "unknown person"}, {"known person", "right secret"}} {
		ok, report := same(times, pair[0], pair[1])
		t.Log(report)
		if !ok {
			t.Errorf("timing tells %s from %s: %s", pair[0], pair[1], report)
		}
	}
	if ok, report := same(times, "known person", "known person, 15 ms slower (control)"); ok {
		t.Errorf("the comparison misses a 15 ms difference, it proves nothing: %s", report)
	} else {
		t.Log("control caught: " + report)
	}

	// A holder that is slow and then fails (a timeout, an open circuit):
	// a person the registry knows and one it does not get the same answer
	// ("does not respond") in the same time, since the holder is asked
	// about a decoy for the latter.
	pd := w.provider(t, nil, limits, map[string]proofing.Verifier{"sin": downSlow{10 * time.Millisecond},
		"notice-of-assessment": never{}}, func(c *signup.Config) { c.MinResponse = 40 * time.Millisecond })
	downAcct := newAccount(t, pd, "panne@exemple.test")
	downProof := func(birth string) url.Values {
		_, page, _ := downAcct.do(http.MethodGet, pd.srv.URL+"/verification", nil)
		m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
		if m == nil {
			t.Fatal("no form token on /verification")
		}
		return url.Values{"csrf": {m[1]}, "family_name": {who.Family}, "given_names": {who.Given}, "birth_date": {birth},
			"use-health-card": {"yes"}, "health-card.nam": {who.NAM}, "health-card.expiry": {"2099-01"}, "use-sin": {"yes"}, "sin.sin": {"046454278"}}
	}
	downTimed := func(f url.Values) (time.Duration, string) {
		start := time.Now()
		status, page, _ := downAcct.do(http.MethodPost, pd.srv.URL+"/verification", f)
		if status != http.StatusOK {
			t.Fatalf("holder down: status %d: %s", status, page)
		}
		return time.Since(start), page
	}
	dk, du := downProof(who.Birth), downProof("1901-02-03")
	times, bodies = interleave([]sample{
		{"holder down, known person", func() (time.Duration, string) { return downTimed(dk) }},
		{"holder down, unknown person", func() (time.Duration, string) { return downTimed(du) }},
	}, n)
	if !strings.Contains(bodies["holder down, known person"], "ne répond pas") {
		t.Fatal("the holder-down attempts did not have the outcome the test wants")
	}
	if normalize(bodies["holder down, known person"]) != normalize(bodies["holder down, unknown person"]) {
		t.Error("with the holder down, the proofing answer differs for a person the registry does not know")
	}
	if ok, report := same(times, "holder down, known person", "holder down, unknown person"); !ok {
		t.Errorf("with the holder down, timing tells a known person from an unknown one: %s", report)
	} else {
		t.Log(report)
	}

	// Letter requests and password reset requests.
	letterForm := func(birth string) url.Values {
		return url.Values{"csrf": {token(wrongAcct, "/verification/courrier/demande")}, "family_name": {who.Family},
			"given_names": {who.Given}, "birth_date": {birth}, "consent": {"yes"}}
	}
	anon := newBrowser(t)
	resetForm := func(email string) url.Values {
		return url.Values{"csrf": {token(anon, "/mot-de-passe-oublie")}, "email": {email}}
	}
	lk, lu := letterForm(who.Birth), letterForm("1901-02-03")
	rk, ru := resetForm("vrai@exemple.test"), resetForm("absent@exemple.test")
	times, bodies = interleave([]sample{
		{"letter, known person", func() (time.Duration, string) {
			return timed(wrongAcct, "/verification/courrier/demande", lk, http.StatusOK)
		}},
		{"letter, unknown person", func() (time.Duration, string) {
			return timed(wrongAcct, "/verification/courrier/demande", lu, http.StatusOK)
		}},
		{"reset, account", func() (time.Duration, string) { return timed(anon, "/mot-de-passe-oublie", rk, http.StatusOK) }},
		{"reset, no account", func() (time.Duration, string) { return timed(anon, "/mot-de-passe-oublie", ru, http.StatusOK) }},
	}, n)
	if normalize(bodies["letter, known person"]) != normalize(bodies["letter, unknown person"]) {
		t.Error("the letter answer differs for a person the registry does not know")
	}
	strip := func(s, addr string) string { return normalize(strings.ReplaceAll(s, addr, "ADDR")) }
	if strip(bodies["reset, account"], "vrai@exemple.test") != strip(bodies["reset, no account"], "absent@exemple.test") {
		t.Error("the reset answer differs for an address without an account")
	}
	for _, pair := range [][2]string{{"letter, known person", "letter, unknown person"}, {"reset, account", "reset, no account"}} {
		ok, report := same(times, pair[0], pair[1])
		t.Log(report)
		if !ok {
			t.Errorf("timing tells %s from %s: %s", pair[0], pair[1], report)
		}
	}
}
