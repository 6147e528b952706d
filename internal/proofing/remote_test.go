package proofing

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// holder is a real HTTP server playing a holder body's verification API.
type holder struct {
	srv      *httptest.Server
	requests atomic.Int32
	// answer decides the response to the n-th request (from 1); set it
	// with set (handlers of timed-out requests may still be running).
	answer atomic.Pointer[answerFunc]
}

type answerFunc func(n int32, req remoteRequest, w http.ResponseWriter)

func (h *holder) set(f answerFunc) { h.answer.Store(&f) }

func newHolder(t *testing.T) *holder {
	h := &holder{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := h.requests.Add(1)
		if r.Method != http.MethodPost || r.Header.Get("Authorization") != "Bearer holder-token" ||
			r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "unauthorised", http.StatusUnauthorized)
			return
		}
		var req remoteRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		(*h.answer.Load())(n, req, w)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func reply(w http.ResponseWriter, match bool) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]bool{"match": match})
}

func remoteSIN(t *testing.T, url string, clock func() time.Time) *RemoteVerifier {
	t.Helper()
	s, _ := DefaultCatalogue().Secret("sin")
	s2 := *s
	s2.Remote = &Remote{URL: url, Timeout: Duration(200 * time.Millisecond), Retries: 1, FailureThreshold: 3, OpenFor: Duration(30 * time.Second)}
	v, err := NewRemoteVerifier(&s2, "holder-token", nil, clock)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

var person = map[string]string{"family_name": "Tremblay", "given_names": "Marie-Ève", "birth_date": "1990-07-15", "address_street": "not sent"}

func TestRemoteVerifier(t *testing.T) {
	h := newHolder(t)
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	v := remoteSIN(t, h.srv.URL, func() time.Time { return now })
	ctx := t.Context()

	// Match and no match; the holder receives the values and only the
	// attributes the secret type names.
	h.set(func(_ int32, req remoteRequest, w http.ResponseWriter) {
		if req.SecretType != "sin" || len(req.Person) != 3 || req.Person["given_names"] != "Marie-Ève" || req.Person["address_street"] != "" {
			http.Error(w, "unexpected request", http.StatusBadRequest)
			return
		}
		reply(w, req.Values["sin"] == "046454286")
	})
	if ok, err := v.Verify(ctx, []string{"046454286"}, person); err != nil || !ok {
		t.Fatalf("match: %v %v", ok, err)
	}
	if ok, err := v.Verify(ctx, []string{"130692544"}, person); err != nil || ok {
		t.Fatalf("no match: %v %v", ok, err)
	}

	// A 500 then an answer: retried within the budget.
	h.requests.Store(0)
	h.set(func(n int32, _ remoteRequest, w http.ResponseWriter) {
		if n == 1 {
			http.Error(w, "oops", http.StatusInternalServerError)
			return
		}
		reply(w, true)
	})
	if ok, err := v.Verify(ctx, []string{"046454286"}, person); err != nil || !ok || h.requests.Load() != 2 {
		t.Fatalf("retry after a 500: %v %v after %d requests", ok, err, h.requests.Load())
	}

	// Timeouts: both attempts time out; unavailable, not "no match".
	h.requests.Store(0)
	h.set(func(_ int32, _ remoteRequest, w http.ResponseWriter) {
		time.Sleep(400 * time.Millisecond)
		reply(w, true)
	})
	start := time.Now()
	if _, err := v.Verify(ctx, []string{"046454286"}, person); !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("timeout: %v", err)
	}
	if d := time.Since(start); d > 2*time.Second || h.requests.Load() != 2 {
		t.Fatalf("timeout handling took %v and %d requests", d, h.requests.Load())
	}

	// A 4xx or a malformed answer is not retried.
	for name, answer := range map[string]answerFunc{
		"403":       func(_ int32, _ remoteRequest, w http.ResponseWriter) { http.Error(w, "no", http.StatusForbidden) },
		"malformed": func(_ int32, _ remoteRequest, w http.ResponseWriter) { w.Write([]byte(`{"match":"yes"}`)) },
	} {
		h.requests.Store(0)
		h.set(answer)
		if _, err := v.Verify(ctx, []string{"046454286"}, person); !errors.Is(err, ErrUnavailable) || h.requests.Load() != 1 {
			t.Fatalf("%s: %v after %d requests", name, err, h.requests.Load())
		}
	}

	// Three failures in a row (the timeout, the 403, the malformed answer)
	// opened the circuit: no request is sent.
	h.requests.Store(0)
	h.set(func(_ int32, _ remoteRequest, w http.ResponseWriter) { reply(w, true) })
	if _, err := v.Verify(ctx, []string{"046454286"}, person); !errors.Is(err, ErrCircuitOpen) || h.requests.Load() != 0 || !v.Open() {
		t.Fatalf("open circuit: %v, %d requests", err, h.requests.Load())
	}
	// After the open period one trial goes through; its success closes
	// the circuit.
	now = now.Add(31 * time.Second)
	if ok, err := v.Verify(ctx, []string{"046454286"}, person); err != nil || !ok || v.Open() {
		t.Fatalf("trial: %v %v", ok, err)
	}
	if ok, err := v.Verify(ctx, []string{"046454286"}, person); err != nil || !ok {
		t.Fatalf("closed again: %v %v", ok, err)
	}
}

func TestRemoteVerifierTrialFails(t *testing.T) {
	h := newHolder(t)
	h.set(func(_ int32, _ remoteRequest, w http.ResponseWriter) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	v := remoteSIN(t, h.srv.URL, func() time.Time { return now })
	for range 3 {
		if _, err := v.Verify(t.Context(), []string{"046454286"}, person); !errors.Is(err, ErrUnavailable) {
			t.Fatal(err)
		}
	}
	now = now.Add(31 * time.Second)
	h.requests.Store(0)
	if _, err := v.Verify(t.Context(), []string{"046454286"}, person); errors.Is(err, ErrCircuitOpen) || h.requests.Load() != 2 {
		t.Fatalf("trial not sent: %v", err)
	}
	if _, err := v.Verify(t.Context(), []string{"046454286"}, person); !errors.Is(err, ErrCircuitOpen) {
		t.Fatalf("a failed trial did not reopen the circuit: %v", err)
	}
}

func TestRemoteVerifierUnauthorised(t *testing.T) {
	h := newHolder(t)
	h.set(func(_ int32, _ remoteRequest, w http.ResponseWriter) { reply(w, true) })
	s, _ := DefaultCatalogue().Secret("sin")
	s2 := *s
	s2.Remote = &Remote{URL: h.srv.URL}
	v, err := NewRemoteVerifier(&s2, "wrong-token", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), []string{"046454286"}, person); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("a holder refusing our credentials must be unavailable, not a match: %v", err)
	}
	local, _ := DefaultCatalogue().Secret("health-card")
	if _, err := NewRemoteVerifier(local, "", nil, nil); err == nil {
		t.Fatal("a local secret got a remote verifier")
	}
}
