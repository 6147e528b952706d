package oidc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/sqin/sqin"
	"github.com/sqin/sqin/internal/keys"
	"github.com/sqin/sqin/internal/store"
)

// OpenID Connect Back-Channel Logout 1.0: when a session ends, every
// service that took part in it and registered a backchannel_logout_uri
// receives a logout token by a direct POST. The deliveries are queued in
// the store in the transaction that ends the session (store.Logouts), so
// none is lost to a crash or a restart, and any instance may send them.
//
// Delivery policy:
//   - one attempt = a freshly signed logout token (typ logout+jwt, exp two
//     minutes ahead) POSTed form-encoded, with a short timeout; redirects
//     are not followed; 200 and 204 are success, anything else a failure;
//   - failures are retried after 10 s, 20 s, 40 s … at most 1 h, each wait
//     shortened by up to a half at random so that retries of many
//     deliveries to one service spread out;
//   - a delivery still failing 24 h after the sign-out is given up, with a
//     warning in the log (never the token or the subject);
//   - the queue holds at most 100 000 deliveries; beyond that the oldest
//     are deleted when a session ends (see sqlstore.EndSession), with a
//     warning. Signing out never waits for, or fails because of, delivery.
//
// Instances claim deliveries with a lease (store.ClaimLogouts), so two of
// them never send one delivery at the same time; a claim whose lease ran
// out (an instance that died mid-send) is taken up again by another: the
// delivery is at least once, and services treat a repeated logout token as
// the spec asks (jti differs; sid and sub identify the session).

const (
	backchannelEvent = "http://schemas.openid.net/event/backchannel-logout"
	logoutTokenType  = "logout+jwt"
	maxLastError     = 200 // characters of a failure kept in the queue
)

// LogoutConfig tunes logout notifications. Zero values take the defaults.
type LogoutConfig struct {
	QueueLimit int           // deliveries queued at most (100 000)
	MaxAge     time.Duration // give up a delivery this long after the sign-out (24 h)
	Timeout    time.Duration // per POST (5 s)
	MinBackoff time.Duration // first retry (10 s)
	MaxBackoff time.Duration // longest wait between attempts (1 h)
	Poll       time.Duration // how often the worker looks for due deliveries (2 s)
	Lease      time.Duration // how long a claim keeps other instances away (1 min)
	Batch      int           // deliveries claimed at once (32)
	Parallel   int           // POSTs in flight at once (8)
	TokenTTL   time.Duration // logout token lifetime (2 min, the spec's advice)
	// HTTPClient sends the POSTs; nil for one with Timeout that follows no
	// redirects.
	HTTPClient *http.Client
}

func (c *LogoutConfig) defaults() {
	set := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	set(&c.MaxAge, 24*time.Hour)
	set(&c.Timeout, 5*time.Second)
	set(&c.MinBackoff, 10*time.Second)
	set(&c.MaxBackoff, time.Hour)
	set(&c.Poll, 2*time.Second)
	set(&c.Lease, time.Minute)
	set(&c.TokenTTL, 2*time.Minute)
	if c.QueueLimit <= 0 {
		c.QueueLimit = 100_000
	}
	if c.Batch <= 0 {
		c.Batch = 32
	}
	if c.Parallel <= 0 {
		c.Parallel = 8
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{Timeout: c.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
}

// logoutWake lets a sign-out on this instance start delivery at once
// instead of at the next poll.
type logoutWake chan struct{}

func newLogoutWake() logoutWake { return make(logoutWake, 1) }

func (w logoutWake) wake() {
	select {
	case w <- struct{}{}:
	default:
	}
}

// EndSession ends a browser session for every reason there is (the user
// signs out, a service asks for it, "sign out everywhere"): in one
// transaction the session is deleted, its online grants revoked and a
// back-channel logout queued for each service of the session that
// registered one. It returns the front-channel logout frames to show in
// the browser, for the services that registered a front-channel URI.
func (p *Provider) EndSession(ctx context.Context, sessionID string) ([]FrontchannelFrame, error) {
	ended, err := p.st.EndSession(ctx, sessionID, p.now().UTC(), p.cfg.Logout.QueueLimit)
	if err != nil {
		return nil, err
	}
	if ended.Evicted > 0 {
		p.log.WarnContext(ctx, "back-channel logout queue full: oldest deliveries dropped",
			"dropped", ended.Evicted, "limit", p.cfg.Logout.QueueLimit)
	}
	if len(ended.Enqueued) > 0 {
		p.logoutWake.wake()
	}
	return p.frontchannelFrames(ended.Clients, sessionID), nil
}

// RunLogoutDelivery sends queued back-channel logouts until ctx ends: at
// every poll, and at once after a sign-out on this instance. Sends in
// flight when ctx ends are finished (each within the POST timeout), so
// callers may wait for it to return before closing the store.
func (p *Provider) RunLogoutDelivery(ctx context.Context) {
	t := time.NewTicker(p.cfg.Logout.Poll)
	defer t.Stop()
	for {
		if _, err := p.DeliverLogouts(ctx); err != nil && ctx.Err() == nil {
			p.log.Warn("back-channel logout: claim deliveries", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-p.logoutWake:
		}
	}
}

// DeliverLogouts claims the deliveries due now and sends them, batch after
// batch, until none is due or ctx ends. It returns how many were
// acknowledged by their service.
func (p *Provider) DeliverLogouts(ctx context.Context) (int, error) {
	cfg := &p.cfg.Logout
	delivered := 0
	for ctx.Err() == nil {
		batch, err := p.st.ClaimLogouts(ctx, p.now().UTC(), cfg.Lease, cfg.Batch)
		if err != nil || len(batch) == 0 {
			return delivered, err
		}
		// Sends started are finished even if ctx ends meanwhile: the
		// claims are then answered instead of waiting for their lease.
		sendCtx := context.WithoutCancel(ctx)
		var (
			mu  sync.Mutex
			wg  sync.WaitGroup
			sem = make(chan struct{}, cfg.Parallel)
		)
		for _, d := range batch {
			sem <- struct{}{}
			wg.Go(func() {
				defer func() { <-sem }()
				if p.deliverLogout(sendCtx, d) {
					mu.Lock()
					delivered++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(batch) < cfg.Batch {
			return delivered, nil
		}
	}
	return delivered, nil
}

// deliverLogout makes one attempt of a claimed delivery and records its
// outcome; it reports whether the service acknowledged the logout.
func (p *Provider) deliverLogout(ctx context.Context, d *store.LogoutDelivery) bool {
	cfg := &p.cfg.Logout
	now := p.now().UTC()
	log := p.log.With("delivery", d.ID, "client_id", d.ClientID, "attempt", d.Attempts)
	if now.Sub(d.CreatedAt) >= cfg.MaxAge {
		log.Warn("back-channel logout given up: too old", "age", now.Sub(d.CreatedAt).Round(time.Second), "last_error", d.LastError)
		p.finishLogout(ctx, d, log)
		return false
	}
	c, err := p.st.GetClient(ctx, d.ClientID)
	if errors.Is(err, sqin.ErrNotFound) || (err == nil && c.BackchannelLogoutURI == "") {
		log.Info("back-channel logout dropped: the client no longer takes back-channel logouts")
		p.finishLogout(ctx, d, log)
		return false
	}
	if err == nil {
		err = p.sendLogout(ctx, c, d, now)
	}
	if err == nil {
		p.finishLogout(ctx, d, log)
		log.Info("back-channel logout delivered")
		return true
	}
	reason := err.Error()
	if len(reason) > maxLastError {
		reason = reason[:maxLastError]
	}
	next := now.Add(p.logoutBackoff(d.Attempts))
	if next.Sub(d.CreatedAt) >= cfg.MaxAge {
		log.Warn("back-channel logout given up: the service did not acknowledge it in time",
			"age", now.Sub(d.CreatedAt).Round(time.Second), "last_error", reason)
		p.finishLogout(ctx, d, log)
		return false
	}
	log.Info("back-channel logout failed; will retry", "err", reason, "retry_in", next.Sub(now).Round(time.Second))
	if err := p.st.RetryLogout(ctx, d.ID, d.Attempts, next, reason); err != nil {
		p.lostClaim(log, err)
	}
	return false
}

// finishLogout removes a delivery that is done with.
func (p *Provider) finishLogout(ctx context.Context, d *store.LogoutDelivery, log *slog.Logger) {
	if err := p.st.CompleteLogout(ctx, d.ID, d.Attempts); err != nil {
		p.lostClaim(log, err)
	}
}

// lostClaim logs a claim that could not be answered: another instance took
// the delivery after the lease ran out (it sends it again), or the store
// failed (the lease runs out and the delivery is retried).
func (p *Provider) lostClaim(log *slog.Logger, err error) {
	if errors.Is(err, sqin.ErrNotFound) {
		log.Warn("back-channel logout: the claim's lease ran out before the answer; another attempt follows")
		return
	}
	log.Warn("back-channel logout: record the outcome", "err", err)
}

// logoutBackoff is the wait after the attempts-th failed attempt:
// MinBackoff doubled each time up to MaxBackoff, less up to half at random.
func (p *Provider) logoutBackoff(attempts int) time.Duration {
	cfg := &p.cfg.Logout
	d := cfg.MinBackoff
	for i := 1; i < attempts && d < cfg.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, cfg.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d/2)+1))
}

// logoutToken signs the logout token of one attempt (Back-Channel Logout
// 1.0, 2.4): a new jti each time, never a nonce.
func (p *Provider) logoutToken(ctx context.Context, c *sqin.Client, d *store.LogoutDelivery, now time.Time) (string, error) {
	sub, err := p.Subject(ctx, c, d.AccountID)
	if err != nil {
		return "", fmt.Errorf("subject: %w", err)
	}
	claims := map[string]any{
		"iss": p.cfg.Issuer, "sub": sub, "aud": c.ID,
		"iat": now.Unix(), "exp": now.Add(p.cfg.Logout.TokenTTL).Unix(),
		"jti":    keys.Random(16),
		"events": map[string]any{backchannelEvent: map[string]any{}},
		"sid":    p.sid(d.SessionID),
	}
	alg := c.SigningAlg
	if alg == "" {
		alg = keys.ES256
	}
	return p.keys.Sign(ctx, alg, logoutTokenType, claims)
}

// sendLogout POSTs a logout token to the client's back-channel URI.
// Errors name the failure (status or transport error) for the queue and the
// log; they never hold the token.
func (p *Provider) sendLogout(ctx context.Context, c *sqin.Client, d *store.LogoutDelivery, now time.Time) error {
	token, err := p.logoutToken(ctx, c, d, now)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Logout.Timeout)
	defer cancel()
	body := url.Values{"logout_token": {token}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.BackchannelLogoutURI, strings.NewReader(body))
	if err != nil {
		return fmt.Errorf("back-channel URI: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := p.cfg.Logout.HTTPClient.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is known; keep the cause
		}
		return fmt.Errorf("POST: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return nil
}
