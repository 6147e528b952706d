package authn

import (
	"errors"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHashVerify(t *testing.T) {
	h, err := NewHasher(DemoArgon2)
	if err != nil {
		t.Fatal(err)
	}
	hash, err := h.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(hash, "$argon2id$v=19$m=8192,t=1,p=1$") {
		t.Fatalf("unexpected PHC string %q", hash)
	}
	tests := []struct {
		name     string
		hash, pw string
		want     error
	}{
		{"match", hash, "correct horse battery staple", nil},
		{"mismatch", hash, "correct horse battery stapl", ErrMismatch},
		{"no account", "", "anything", ErrMismatch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.Verify(tt.hash, tt.pw); !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
	for _, bad := range []string{"x", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$m=99999999,t=1,p=1$AAAA$AAAAAAAAAAAAAAAAAAAAAA"} {
		if err := h.Verify(bad, "pw"); err == nil {
			t.Errorf("Verify(%q) accepted a malformed hash", bad)
		}
	}
	if h.NeedsRehash(hash) {
		t.Error("fresh hash needs rehash")
	}
	strong, _ := NewHasher(DefaultArgon2)
	if !strong.NeedsRehash(hash) {
		t.Error("demo hash should need rehash under default parameters")
	}
	if _, err := NewHasher(Argon2Params{Time: 1, MemoryKiB: 16, Threads: 1, KeyLen: 32, SaltLen: 16}); err == nil {
		t.Error("weak parameters accepted")
	}
}

func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=8192,t=1,p=1$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5")
	f.Add("$argon2id$v=19$m=,t=,p=$$")
	f.Fuzz(func(t *testing.T, s string) {
		_, _, _, _ = parsePHC(s)
	})
}

func BenchmarkVerifyDefault(b *testing.B) {
	h, _ := NewHasher(DefaultArgon2)
	hash, _ := h.Hash("pw")
	for b.Loop() {
		_ = h.Verify(hash, "pw")
	}
}

// When every slot is taken, a verification waits for one: memory stays
// bounded by slots × MemoryKiB whatever the burst of sign-ins.
func TestHashesWaitForASlot(t *testing.T) {
	h, err := NewHasher(DemoArgon2)
	if err != nil {
		t.Fatal(err)
	}
	if cap(h.slots) < 1 || cap(h.slots) > runtime.GOMAXPROCS(0) {
		t.Fatalf("%d slots for %d CPUs", cap(h.slots), runtime.GOMAXPROCS(0))
	}
	hash, _ := h.Hash("pw")
	for range cap(h.slots) {
		h.slots <- struct{}{}
	}
	done := make(chan error, 1)
	go func() { done <- h.Verify(hash, "pw") }()
	select {
	case <-done:
		t.Fatal("a hash ran while every slot was taken")
	case <-time.After(100 * time.Millisecond):
	}
	<-h.slots
	if err := <-done; err != nil {
		t.Fatalf("verify after a slot freed: %v", err)
	}
}

func TestPaceGCWhileHashing(t *testing.T) {
	h, err := NewHasher(DemoArgon2)
	if err != nil {
		t.Fatal(err)
	}
	hash, _ := h.Hash("pw")
	var mu sync.Mutex
	var calls []int
	h.PaceGC(100, 400)
	h.pace.set = func(p int) int {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, p)
		return 0
	}
	// Sequential hashes: busy before each, idle after each.
	for range 2 {
		if err := h.Verify(hash, "pw"); err != nil {
			t.Fatal(err)
		}
	}
	if want := []int{100, 400, 100, 400}; !slices.Equal(calls, want) {
		t.Fatalf("sequential: %v, want %v", calls, want)
	}
	// Concurrent hashes: the pacing alternates and ends idle, whatever
	// the interleaving.
	calls = nil
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() { _ = h.Verify(hash, "wrong") })
	}
	wg.Wait()
	if len(calls) == 0 || len(calls)%2 != 0 || calls[len(calls)-1] != 400 {
		t.Fatalf("concurrent: %v", calls)
	}
	for i, p := range calls {
		if want := []int{100, 400}[i%2]; p != want {
			t.Fatalf("concurrent: %v", calls)
		}
	}
	if h.pace.running != 0 {
		t.Fatalf("%d hashes still counted", h.pace.running)
	}
}
