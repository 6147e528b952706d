package proofing

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ErrUnavailable is returned when the holder's verification service could
// not answer (timeouts, errors, circuit open): the citizen is told to use
// another secret or to retry later, never that the secret is wrong.
var ErrUnavailable = errors.New("proofing: the holder's verification service is unavailable")

// ErrCircuitOpen is ErrUnavailable while the circuit is open: no request
// is sent.
var ErrCircuitOpen = fmt.Errorf("%w (circuit open)", ErrUnavailable)

// RemoteVerifier asks one holder's verification API whether a secret
// matches a person, and gets only "match" or "no match".
//
// The protocol (docs/formats/proofing-remote.md): POST of a JSON object
// {"secret_type", "values": {field: value}, "person": {attribute: value}}
// with the bearer token of the configuration; the answer is 200 with
// {"match": true|false}. Anything else is a failure. Timeouts, 429 and 5xx
// are retried within the retry budget; every failure counts towards the
// circuit breaker.
type RemoteVerifier struct {
	secret  *SecretType
	cfg     Remote
	token   string
	client  *http.Client
	now     func() time.Time
	retries int
	timeout time.Duration

	mu        sync.Mutex
	failures  int       // consecutive
	openUntil time.Time // circuit open before this instant
	trial     bool      // a half-open trial is in flight
}

// NewRemoteVerifier returns the verifier of a remote secret type. token is
// the bearer token read from Remote.TokenFile by the caller ("" for none);
// client nil means a client with no redirects; now nil means time.Now.
func NewRemoteVerifier(s *SecretType, token string, client *http.Client, now func() time.Time) (*RemoteVerifier, error) {
	if s.Verify != VerifyRemote || s.Remote == nil {
		return nil, fmt.Errorf("proofing: secret %q is not remote", s.ID)
	}
	if client == nil {
		client = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
	if now == nil {
		now = time.Now
	}
	v := &RemoteVerifier{secret: s, cfg: *s.Remote, token: token, client: client, now: now,
		retries: s.Remote.Retries, timeout: time.Duration(s.Remote.Timeout)}
	if v.timeout <= 0 {
		v.timeout = 2 * time.Second
	}
	if v.retries <= 0 {
		v.retries = 1
	}
	if v.cfg.FailureThreshold <= 0 {
		v.cfg.FailureThreshold = 5
	}
	if v.cfg.OpenFor <= 0 {
		v.cfg.OpenFor = Duration(30 * time.Second)
	}
	return v, nil
}

type remoteRequest struct {
	SecretType string            `json:"secret_type"`
	Values     map[string]string `json:"values"`
	Person     map[string]string `json:"person"`
}

// Verify asks whether values (normalised, in field order, as
// SecretType.Normalize returns them) match the person (the registry
// attributes the secret type's Match names).
func (v *RemoteVerifier) Verify(ctx context.Context, values []string, person map[string]string) (bool, error) {
	if !v.admit() {
		return false, ErrCircuitOpen
	}
	req := remoteRequest{SecretType: v.secret.ID, Values: map[string]string{}, Person: map[string]string{}}
	for i, f := range v.secret.Fields {
		if i < len(values) {
			req.Values[f.Name] = values[i]
		}
	}
	for _, a := range v.secret.Match {
		req.Person[a] = person[a]
	}
	body, err := json.Marshal(req)
	if err != nil {
		return false, fmt.Errorf("proofing: %w", err)
	}
	var last error
	for attempt := 0; attempt <= v.retries; attempt++ {
		match, retry, err := v.attempt(ctx, body)
		if err == nil {
			v.record(true)
			return match, nil
		}
		last = err
		if !retry || ctx.Err() != nil {
			break
		}
	}
	v.record(false)
	return false, fmt.Errorf("%w: %s: %v", ErrUnavailable, v.secret.ID, last)
}

// attempt sends one request; retry says whether another may follow.
func (v *RemoteVerifier) attempt(ctx context.Context, body []byte) (match, retry bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, v.timeout)
	defer cancel()
	r, err := http.NewRequestWithContext(ctx, http.MethodPost, v.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return false, false, err
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Accept", "application/json")
	if v.token != "" {
		r.Header.Set("Authorization", "Bearer "+v.token)
	}
	resp, err := v.client.Do(r)
	if err != nil {
		return false, true, errors.New("no answer") // the error may quote the URL, never the values; keep it short
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return false, true, errors.New("answer cut short")
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return false, true, fmt.Errorf("status %d", resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return false, false, fmt.Errorf("status %d", resp.StatusCode)
	}
	var out struct {
		Match *bool `json:"match"`
	}
	ct := resp.Header.Get("Content-Type")
	if !strings.HasPrefix(ct, "application/json") || json.Unmarshal(b, &out) != nil || out.Match == nil {
		return false, false, errors.New("malformed answer")
	}
	return *out.Match, false, nil
}

// admit reports whether a request may be sent: always when the circuit is
// closed; once (a trial) when its open period is over.
func (v *RemoteVerifier) admit() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.failures < v.cfg.FailureThreshold {
		return true
	}
	if v.now().Before(v.openUntil) || v.trial {
		return false
	}
	v.trial = true
	return true
}

func (v *RemoteVerifier) record(ok bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.trial = false
	if ok {
		v.failures = 0
		return
	}
	v.failures++
	if v.failures >= v.cfg.FailureThreshold {
		v.openUntil = v.now().Add(time.Duration(v.cfg.OpenFor))
	}
}

// Open reports whether the circuit is open (for health pages and metrics).
func (v *RemoteVerifier) Open() bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.failures >= v.cfg.FailureThreshold && v.now().Before(v.openUntil)
}
