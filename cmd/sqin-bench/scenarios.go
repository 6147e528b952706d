package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/crypto/argon2"
)

// The demo accounts' password (fixed by the server's demo contract).
const demoPassword = "demo-password-2026"

func demoUser(i int) string { return fmt.Sprintf("citoyen%d@demo.sqin.test", i+1) }

// Scenario names, in the order they run.
const (
	scClientCredentials = "client_credentials"
	scUserinfo          = "userinfo"
	scRefresh           = "refresh"
	scCodeFlow          = "code_flow"
	scFAPI              = "fapi2"
	scPassword          = "password"
	scAudit             = "audit" // no server: see audit.go
	// scRegistry (no server): see registry.go
	// scProofing (no server): see proofing.go
)

var allScenarios = []string{scClientCredentials, scUserinfo, scRefresh, scCodeFlow, scFAPI, scPassword, scAudit, scRegistry, scProofing}

// serverScenario tells whether a scenario loads a running server.
func serverScenario(sc string) bool { return sc != scAudit && sc != scRegistry && sc != scProofing }

var scenarioTitles = map[string]string{
	scClientCredentials: "client_credentials (Basic auth)",
	scUserinfo:          "userinfo (GET, bearer)",
	scRefresh:           "refresh with rotation",
	scCodeFlow:          "code flow with SSO session",
	scFAPI:              "FAPI 2.0 code flow (PAR, DPoP, private_key_jwt)",
	scPassword:          "password sign-in (argon2id)",
	scAudit:             "audit log",
	scRegistry:          "registry import (RAIG)",
	scProofing:          "proofing checks (local secrets)",
}

// targets in operations per second (the password target is a ratio to
// the hash rate, handled apart).
var targets = map[string]float64{
	scClientCredentials: 8000,
	scUserinfo:          10000,
	scRefresh:           2500,
	scCodeFlow:          1000,
}

const (
	passwordTargetRatio = 0.90
	fapiTargetRatio     = 0.60 // of the plain code flow's rate (issue 4)
	rssTargetBytes      = 150e6
)

// newTransport is tuned for conc workers each doing one request at a time
// on a kept-alive connection.
func newTransport(conc int) *http.Transport {
	return &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        conc,
		MaxIdleConnsPerHost: conc,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
		ForceAttemptHTTP2:   false,
		WriteBufferSize:     8 << 10,
		ReadBufferSize:      16 << 10,
	}
}

// env is one server under test and the state the scenarios share.
type env struct {
	rp     *rp
	meter  cpuMeter
	srvPID int
	// One signed-in browser (cookie jar with an SSO session, consent given)
	// per worker, and one refresh-token chain per worker.
	jars   []http.CookieJar
	chains []string
	fapi   *fapiState // the FAPI 2.0 client, when that scenario runs
}

// op is one operation of a scenario, run by worker w.
type op func(ctx context.Context, w int) error

// setupSessions signs worker i in as demo account i, once, with consent,
// and keeps the refresh token of that first code as the start of worker
// i's refresh chain.
func (e *env) setupSessions(ctx context.Context, n int) error {
	tr := newTransport(4)
	defer tr.CloseIdleConnections()
	e.jars = make([]http.CookieJar, n)
	e.chains = make([]string, n)
	var wg sync.WaitGroup
	var firstErr atomic.Value
	sem := make(chan struct{}, 4)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			jar, _ := cookiejar.New(nil)
			e.jars[i] = jar
			hc := &http.Client{Transport: tr, Jar: jar, CheckRedirect: noFollow, Timeout: 2 * time.Minute}
			var buf bytes.Buffer
			a := e.rp.newAuthRequest("openid profile email offline_access")
			code, err := e.rp.browse(ctx, hc, a, demoUser(i), demoPassword, &buf)
			if err != nil {
				firstErr.CompareAndSwap(nil, fmt.Errorf("sign-in of %s: %w", demoUser(i), err))
				return
			}
			var tok tokenResponse
			if err := e.rp.exchange(ctx, hc, code, a, &buf, &tok); err != nil {
				firstErr.CompareAndSwap(nil, fmt.Errorf("first code of %s: %w", demoUser(i), err))
				return
			}
			if tok.RefreshToken == "" {
				firstErr.CompareAndSwap(nil, errors.New("no refresh token with offline_access"))
				return
			}
			e.chains[i] = tok.RefreshToken
		}()
	}
	wg.Wait()
	if err, _ := firstErr.Load().(error); err != nil {
		return err
	}
	return nil
}

// browser returns worker w's signed-in browser on transport tr.
func (e *env) browser(tr http.RoundTripper, w int) *http.Client {
	return &http.Client{Transport: tr, Jar: e.jars[w], CheckRedirect: noFollow, Timeout: 2 * time.Minute}
}

// ssoTokens runs one code flow on worker w's SSO session.
func (e *env) ssoTokens(ctx context.Context, hc *http.Client, scope string, buf *bytes.Buffer, out *tokenResponse) error {
	a := e.rp.newAuthRequest(scope)
	code, err := e.rp.browse(ctx, hc, a, "", "", buf)
	if err != nil {
		return err
	}
	return e.rp.exchange(ctx, hc, code, a, buf, out)
}

// prepare builds the operation of a scenario for conc workers.
func (e *env) prepare(ctx context.Context, name string, conc int, tr *http.Transport) (op, error) {
	bufs := make([]bytes.Buffer, conc)
	toks := make([]tokenResponse, conc)
	plain := &http.Client{Transport: tr, CheckRedirect: noFollow, Timeout: time.Minute}
	browsers := make([]*http.Client, conc)
	for w := range conc {
		bufs[w].Grow(16 << 10)
		browsers[w] = e.browser(tr, w)
	}
	switch name {
	case scClientCredentials:
		const form = "grant_type=client_credentials"
		return func(ctx context.Context, w int) error {
			return e.rp.postTokenQuick(ctx, plain, form, &bufs[w])
		}, nil

	case scUserinfo:
		auth := make([]string, conc)
		for w := range conc {
			if err := e.ssoTokens(ctx, browsers[w], "openid profile email", &bufs[w], &toks[w]); err != nil {
				return nil, fmt.Errorf("access token for worker %d: %w", w, err)
			}
			auth[w] = "Bearer " + toks[w].AccessToken
		}
		return func(ctx context.Context, w int) error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.rp.userinfo, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", auth[w])
			status, err := do(plain, req, &bufs[w])
			if err != nil {
				return err
			}
			if status != http.StatusOK {
				return fmt.Errorf("userinfo: status %d", status)
			}
			if !bytes.Contains(bufs[w].Bytes(), []byte(`"sub"`)) {
				return errors.New("userinfo: no sub")
			}
			return nil
		}, nil

	case scRefresh:
		return func(ctx context.Context, w int) error {
			old := e.chains[w]
			err := e.rp.postToken(ctx, plain, "grant_type=refresh_token&refresh_token="+old, &bufs[w], &toks[w])
			if err == nil && (toks[w].RefreshToken == "" || toks[w].RefreshToken == old) {
				err = errors.New("refresh: the refresh token was not rotated")
			}
			if err != nil {
				// The chain may be broken: start a new one on the SSO
				// session (not counted).
				var t tokenResponse
				if e2 := e.ssoTokens(ctx, browsers[w], "openid profile email offline_access", &bufs[w], &t); e2 == nil {
					e.chains[w] = t.RefreshToken
				}
				return err
			}
			e.chains[w] = toks[w].RefreshToken
			return nil
		}, nil

	case scCodeFlow:
		return func(ctx context.Context, w int) error {
			return e.ssoTokens(ctx, browsers[w], "openid profile email", &bufs[w], &toks[w])
		}, nil

	case scFAPI:
		// Each worker has its own DPoP key and browses on its SSO session.
		// Its first flow (not counted) gives the account's consent to the
		// FAPI client; the server's DPoP nonce is kept across flows.
		st := e.fapi
		keys := make([]*dpopKey, conc)
		for w := range conc {
			k, ready, err := st.worker(w)
			if err != nil {
				return nil, err
			}
			keys[w] = k
			if !ready {
				if err := st.client.flow(ctx, plain, browsers[w], k, demoUser(w), demoPassword, true, &bufs[w], &toks[w]); err != nil {
					return nil, fmt.Errorf("first FAPI flow of worker %d: %w", w, err)
				}
				st.setReady(w)
			}
		}
		st.client.resetSteps()
		return func(ctx context.Context, w int) error {
			return st.client.flow(ctx, plain, browsers[w], keys[w], "", "", false, &bufs[w], &toks[w])
		}, nil

	case scPassword:
		// A fresh browser (no cookie) per sign-in; worker w always uses
		// account w, so that the per-account limit is never shared.
		return func(ctx context.Context, w int) error {
			jar, _ := cookiejar.New(nil)
			hc := &http.Client{Transport: tr, Jar: jar, CheckRedirect: noFollow, Timeout: 2 * time.Minute}
			a := e.rp.newAuthRequest("openid profile email")
			_, err := e.rp.browse(ctx, hc, a, demoUser(w), demoPassword, &bufs[w])
			return err
		}, nil
	}
	return nil, fmt.Errorf("unknown scenario %q", name)
}

// argon2Params are the production password-hashing parameters.
type argon2Params struct {
	time, memoryKiB uint32
	threads         uint8
}

// hashRate measures argon2id IDKey hashes per second in this process with
// the given number of goroutines.
func hashRate(ctx context.Context, p argon2Params, goroutines int, d time.Duration) float64 {
	var n atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	salt := []byte("sqin-bench-salt!")
	pw := []byte(demoPassword)
	start := time.Now()
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() && ctx.Err() == nil {
				argon2.IDKey(pw, salt, p.time, p.memoryKiB, p.threads, 32)
				n.Add(1)
			}
		}()
	}
	sleepCtx(ctx, d)
	stop.Store(true)
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds()
}
