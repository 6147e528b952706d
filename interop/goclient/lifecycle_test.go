package goclient

import (
	"os"
	"testing"
)

// TestReadyAndGracefulStop checks the start/stop contract: a client
// registered with the CLI before any server ran is usable; once /readyz
// says 200 the demo accounts can sign in at once; SIGTERM right after
// readiness ends the process cleanly (exit 0), on a new and on an existing
// database.
func TestReadyAndGracefulStop(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			db := requireDatabase(t, backend)
			spec := confidential("go-lifecycle", "client_secret_basic")
			db.CreateClient(t, spec) // no server yet

			for i := 0; i < 4; i++ {
				srv, err := startServer(db, 0)
				if err != nil {
					t.Fatalf("start %d: %v", i, err)
				}
				if i == 0 {
					// Ready means usable: the demo accounts exist.
					r := discoverRP(t, srv, spec)
					if l := r.signIn(t, signInOpts{User: 3}); l.Claims.ACR != acrLoA2 {
						t.Errorf("acr %q", l.Claims.ACR)
					}
				}
				if err := srv.Stop(); err != nil {
					t.Errorf("start %d (%s database): SIGTERM right after /readyz said 200: %v\nserver log:\n%s",
						i, map[bool]string{true: "new", false: "existing"}[i == 0], err, srv.LogTail(8))
				}
				os.Remove(srv.logPath)
			}
		})
	}
}
