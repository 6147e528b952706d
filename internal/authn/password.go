// Package authn verifies what citizens present to sign in: passwords today,
// one-time codes and passkeys later.
package authn

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"golang.org/x/crypto/argon2"
)

// Argon2Params are argon2id's cost parameters.
type Argon2Params struct {
	Time      uint32 // iterations
	MemoryKiB uint32
	Threads   uint8
	KeyLen    uint32
	SaltLen   uint32
}

// DefaultArgon2 follows RFC 9106's second recommended option (64 MiB, t=3).
var DefaultArgon2 = Argon2Params{Time: 3, MemoryKiB: 64 * 1024, Threads: 2, KeyLen: 32, SaltLen: 16}

// DemoArgon2 is cheap, for demos and tests only.
var DemoArgon2 = Argon2Params{Time: 1, MemoryKiB: 8 * 1024, Threads: 1, KeyLen: 32, SaltLen: 16}

// ErrMismatch is returned when a password does not match its hash.
var ErrMismatch = errors.New("authn: password mismatch")

// Hasher hashes and verifies passwords with argon2id in PHC string format:
// $argon2id$v=19$m=65536,t=3,p=2$salt$hash.
type Hasher struct {
	P Argon2Params
	// dummy is a hash of a random password with the current parameters,
	// verified when an account does not exist so that timing is the same.
	dummy string
	// slots bounds how many hashes run at once: each takes MemoryKiB, so
	// a burst of sign-ins must queue rather than exhaust memory.
	slots chan struct{}
	// pace, when set (PaceGC), changes the collector's pacing while
	// hashes run.
	pace *gcPace
}

// gcPace sets the garbage collector's target percentage to busy while at
// least one hash runs and back to idle when the last one ends.
type gcPace struct {
	mu         sync.Mutex
	running    int
	busy, idle int
	set        func(int) int // debug.SetGCPercent; replaced in tests
}

func (g *gcPace) enter() {
	g.mu.Lock()
	if g.running == 0 {
		g.set(g.busy)
	}
	g.running++
	g.mu.Unlock()
}

func (g *gcPace) leave() {
	g.mu.Lock()
	g.running--
	if g.running == 0 {
		g.set(g.idle)
	}
	g.mu.Unlock()
}

// PaceGC makes the garbage collector pace at GOGC=busy while a hash runs
// and at idle otherwise; call it before the hasher is used. Each hash
// allocates MemoryKiB that die with it: with a high GOGC (a server tuned
// for small API requests) the heap grows into fresh pages and the
// scavenger hands them back, so every hash pays page faults (+8 % CPU per
// sign-in measured at 400 against 100; docs/PERFORMANCE.md, "Password
// sign-ins and the collector"). At busy=100 the freed arrays are reused.
func (h *Hasher) PaceGC(busy, idle int) {
	h.pace = &gcPace{busy: busy, idle: idle, set: debug.SetGCPercent}
}

// NewHasher returns a hasher with parameters p.
func NewHasher(p Argon2Params) (*Hasher, error) {
	if p.Time == 0 || p.MemoryKiB < 1024 || p.Threads == 0 || p.KeyLen < 16 || p.SaltLen < 16 {
		return nil, fmt.Errorf("authn: argon2id parameters too weak: %+v", p)
	}
	h := &Hasher{P: p, slots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)))}
	var pw [24]byte
	_, _ = rand.Read(pw[:])
	d, err := h.Hash(string(pw[:]))
	if err != nil {
		return nil, err
	}
	h.dummy = d
	return h, nil
}

// Hash returns the PHC string of password.
func (h *Hasher) Hash(password string) (string, error) {
	salt := make([]byte, h.P.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("authn: salt: %w", err)
	}
	key := h.idKey([]byte(password), salt, h.P, h.P.KeyLen)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version,
		h.P.MemoryKiB, h.P.Time, h.P.Threads, b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// Verify checks password against a PHC string, in constant time. The
// parameters come from the string, so hashes made with older parameters
// still verify. An empty hash (no such account) costs the same time as a
// real one and never matches.
func (h *Hasher) Verify(hash, password string) error {
	if hash == "" {
		_ = h.verify(h.dummy, password)
		return ErrMismatch
	}
	return h.verify(hash, password)
}

func (h *Hasher) verify(hash, password string) error {
	p, salt, key, err := parsePHC(hash)
	if err != nil {
		return err
	}
	got := h.idKey([]byte(password), salt, p, uint32(len(key)))
	if subtle.ConstantTimeCompare(got, key) != 1 {
		return ErrMismatch
	}
	return nil
}

// idKey runs argon2id in one of the hasher's slots.
func (h *Hasher) idKey(password, salt []byte, p Argon2Params, keyLen uint32) []byte {
	h.slots <- struct{}{}
	defer func() { <-h.slots }()
	if h.pace != nil {
		h.pace.enter()
		defer h.pace.leave()
	}
	return argon2.IDKey(password, salt, p.Time, p.MemoryKiB, p.Threads, keyLen)
}

// NeedsRehash reports whether hash was made with other parameters than h's.
func (h *Hasher) NeedsRehash(hash string) bool {
	p, _, _, err := parsePHC(hash)
	return err != nil || p.Time != h.P.Time || p.MemoryKiB != h.P.MemoryKiB || p.Threads != h.P.Threads
}

func parsePHC(s string) (p Argon2Params, salt, key []byte, err error) {
	parts := strings.Split(s, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return p, nil, nil, errors.New("authn: not an argon2id hash")
	}
	var v int
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return p, nil, nil, errors.New("authn: unsupported argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Time, &p.Threads); err != nil {
		return p, nil, nil, fmt.Errorf("authn: argon2 parameters: %w", err)
	}
	if p.Time == 0 || p.Threads == 0 || p.MemoryKiB == 0 || p.MemoryKiB > 4<<20 || p.Time > 100 {
		return p, nil, nil, errors.New("authn: argon2 parameters out of range")
	}
	b64 := base64.RawStdEncoding
	if salt, err = b64.DecodeString(parts[4]); err != nil {
		return p, nil, nil, fmt.Errorf("authn: salt: %w", err)
	}
	if key, err = b64.DecodeString(parts[5]); err != nil || len(key) < 16 {
		return p, nil, nil, errors.New("authn: bad hash")
	}
	return p, salt, key, nil
}
