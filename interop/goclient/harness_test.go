package goclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Demo accounts created by `serve --demo --demo-users 3`.
const (
	demoPassword = "demo-password-2026"
	acrLoA2      = "urn:sqin:loa:2"
	acrLoA3      = "urn:sqin:loa:3"
	defaultPG    = "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
)

func demoUser(n int) string { return fmt.Sprintf("citoyen%d@demo.sqin.test", n) }

// sqinBin is the server binary TestMain builds from ./cmd/sqin.
var sqinBin string

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "goclient:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	dir, err := os.MkdirTemp("", "sqin-goclient-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return 0, err
	}
	sqinBin = filepath.Join(dir, "sqin")
	build := exec.Command("go", "build", "-o", sqinBin, "./cmd/sqin")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return 0, fmt.Errorf("go build ./cmd/sqin: %v\n%s", err, out)
	}
	code := m.Run()
	shared.stopAll()
	return code, nil
}

// randHex returns n random bytes, hex encoded.
func randHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// database is one storage backend prepared for a server: a SQLite file in a
// temporary directory or a fresh PostgreSQL schema.
type database struct {
	backend string
	url     string
	file    string // SQLite file
	dir     string // working directory of the server and the CLI (demo data dir)
	drop    func() error
}

// errSkip marks a backend that is not available on this machine.
type errSkip struct{ reason string }

func (e errSkip) Error() string { return e.reason }

// newDatabase prepares a database for backend ("sqlite" or "postgres").
// The caller removes it with drop.
func newDatabase(backend string) (*database, error) {
	switch backend {
	case "sqlite":
		dir, err := os.MkdirTemp("", "sqin-goclient-db-")
		if err != nil {
			return nil, err
		}
		f := filepath.Join(dir, "sqin.db")
		return &database{backend: backend, url: "sqlite://" + f, file: f, dir: dir,
			drop: func() error { return os.RemoveAll(dir) }}, nil
	case "postgres":
		base := os.Getenv("SQIN_TEST_POSTGRES")
		if base == "" {
			base = defaultPG
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			return nil, errSkip{fmt.Sprintf("PostgreSQL unreachable at %s: %v", base, err)}
		}
		defer conn.Close(ctx)
		dir, err := os.MkdirTemp("", "sqin-goclient-pg-")
		if err != nil {
			return nil, err
		}
		schema := "interop_go_" + randHex(6)
		if _, err := conn.Exec(ctx, "CREATE SCHEMA "+schema); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("create schema %s: %w", schema, err)
		}
		sep := "?"
		if strings.Contains(base, "?") {
			sep = "&"
		}
		return &database{backend: backend, url: base + sep + "search_path=" + schema, dir: dir, drop: func() error {
			os.RemoveAll(dir)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := pgx.Connect(ctx, base)
			if err != nil {
				return err
			}
			defer conn.Close(ctx)
			_, err = conn.Exec(ctx, "DROP SCHEMA IF EXISTS "+schema+" CASCADE")
			return err
		}}, nil
	}
	return nil, fmt.Errorf("unknown backend %q", backend)
}

// requireDatabase is newDatabase for one test: a missing PostgreSQL skips
// the test, or fails it when CI is set.
func requireDatabase(t *testing.T, backend string) *database {
	t.Helper()
	db, err := newDatabase(backend)
	skipOrFatal(t, err)
	t.Cleanup(func() {
		if err := db.drop(); err != nil {
			t.Logf("drop %s database: %v", backend, err)
		}
	})
	return db
}

func skipOrFatal(t *testing.T, err error) {
	t.Helper()
	var skip errSkip
	switch {
	case err == nil:
	case errors.As(err, &skip) && os.Getenv("CI") == "":
		t.Skip(skip.reason)
	default:
		t.Fatal(err)
	}
}

// Server is a running `sqin serve --demo`.
type Server struct {
	DB     *database
	Port   int
	Issuer string
	URL    string // where this instance listens: Issuer, unless it serves a shared issuer

	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// startServer starts sqin on db and port (0: a free one) and waits for
// /readyz.
func startServer(db *database, port int) (*Server, error) { return startServerAs(db, port, "") }

// mustStart starts sqin serve on db for t and stops it when t ends; its
// log is removed unless t failed or SQIN_KEEP_LOGS is set.
func mustStart(t *testing.T, db *database) *Server {
	t.Helper()
	s, err := startServer(db, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stopAndClean(t, s) })
	return s
}

func stopAndClean(t *testing.T, s *Server) {
	if err := s.Stop(); err != nil {
		t.Errorf("stop %s: %v", s.URL, err)
	}
	if !t.Failed() && os.Getenv("SQIN_KEEP_LOGS") == "" {
		os.Remove(s.logPath)
	} else {
		t.Logf("server log kept in %s", s.logPath)
	}
}

// stormThenKill runs workers goroutines of work until count reaches at
// least n or wait passes, marks killed, SIGKILLs srv with requests in
// flight, and returns once the workers have stopped.
func stormThenKill(srv *Server, workers, n int, wait time.Duration, killed *atomic.Bool, count func() int,
	work func(ctx context.Context, i int)) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*wait)
	defer cancel()
	var wg sync.WaitGroup
	for i := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work(ctx, i)
		}()
	}
	deadline := time.Now().Add(wait)
	for count() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	killed.Store(true)
	srv.Kill()
	cancel()
	wg.Wait()
}

// startServerAs is startServer for an instance that answers as issuer
// (empty: its own address), as several instances behind one public URL.
func startServerAs(db *database, port int, issuer string) (*Server, error) {
	if port == 0 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
	}
	logf, err := os.CreateTemp("", "sqin-goclient-server-*.log")
	if err != nil {
		return nil, err
	}
	s := &Server{DB: db, Port: port, URL: "http://127.0.0.1:" + strconv.Itoa(port), Issuer: issuer, logPath: logf.Name()}
	if s.Issuer == "" {
		s.Issuer = s.URL
	}
	logf.Close()
	return s, s.launch()
}

func (s *Server) launch() error {
	logf, err := os.OpenFile(s.logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "---- start %s\n", time.Now().Format(time.RFC3339Nano))
	s.cmd = exec.Command(sqinBin, "serve", "--demo", "--db", s.DB.url,
		"--addr", "127.0.0.1:"+strconv.Itoa(s.Port), "--issuer", s.Issuer,
		"--demo-rp-addr", "", "--demo-users", "3")
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.Dir = s.DB.dir // the demo keeps its generated secrets in ./sqin-data
	if err := s.cmd.Start(); err != nil {
		return fmt.Errorf("start sqin: %w", err)
	}
	s.exited = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) {
		_ = c.Wait()
		close(done)
	}(s.cmd, s.exited)
	return s.waitReady(30 * time.Second)
}

func (s *Server) waitReady(max time.Duration) error {
	deadline := time.Now().Add(max)
	c := &http.Client{Timeout: 2 * time.Second}
	last := "no answer"
	for time.Now().Before(deadline) {
		select {
		case <-s.exited:
			return fmt.Errorf("sqin serve exited (%v) before it was ready; log:\n%s", s.cmd.ProcessState, s.LogTail(40))
		default:
		}
		resp, err := c.Get(s.URL + "/readyz")
		if err == nil {
			b, _ := readAll(resp)
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, b)
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("sqin serve not ready after %v (last /readyz: %s); log:\n%s", max, last, s.LogTail(40))
}

// LogTail returns the last n lines the server wrote.
func (s *Server) LogTail(n int) string {
	b, err := os.ReadFile(s.logPath)
	if err != nil {
		return "(no server log)"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Stop ends the server gracefully (SIGTERM), SIGKILL after 10 s.
func (s *Server) Stop() error {
	if s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	select {
	case <-s.exited:
		return nil
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
		if st := s.cmd.ProcessState; st != nil && !st.Success() {
			return fmt.Errorf("sqin did not exit cleanly on SIGTERM: %v", st)
		}
		return nil
	case <-time.After(10 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
		return errors.New("sqin did not stop within 10s of SIGTERM")
	}
}

// Kill ends the server at once (SIGKILL) and waits for it to be gone.
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// ClientSpec describes a client for `sqin client create`.
type ClientSpec struct {
	ID, Secret     string
	RedirectURIs   []string
	PostLogoutURIs []string
	GrantTypes     []string
	Auth           string // client_secret_basic, client_secret_post, none
	Scopes         []string
	MinLoA         int
	Sector         string
	JWKSFile       string   // --jwks-file (private_key_jwt)
	Flags          []string // further `client create` flags, as given
}

// CreateClient registers c with the CLI and returns what it printed.
func (s *Server) CreateClient(t testing.TB, c ClientSpec) map[string]any {
	t.Helper()
	return s.DB.CreateClient(t, c)
}

// CreateClient registers c with the CLI, whether a server runs or not.
func (d *database) CreateClient(t testing.TB, c ClientSpec) map[string]any {
	t.Helper()
	args := []string{"client", "create", "--db", d.url, "--id", c.ID}
	if c.Secret != "" {
		args = append(args, "--secret", c.Secret)
	}
	for _, u := range c.RedirectURIs {
		args = append(args, "--redirect-uri", u)
	}
	for _, u := range c.PostLogoutURIs {
		args = append(args, "--post-logout-redirect-uri", u)
	}
	if len(c.GrantTypes) > 0 {
		args = append(args, "--grant-types", strings.Join(c.GrantTypes, ","))
	}
	if c.Auth != "" {
		args = append(args, "--auth", c.Auth)
	}
	if len(c.Scopes) > 0 {
		args = append(args, "--scopes", strings.Join(c.Scopes, ","))
	}
	if c.MinLoA != 0 {
		args = append(args, "--min-loa", strconv.Itoa(c.MinLoA))
	}
	if c.Sector != "" {
		args = append(args, "--sector", c.Sector)
	}
	if c.JWKSFile != "" {
		args = append(args, "--jwks-file", c.JWKSFile)
	}
	args = append(args, c.Flags...)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(sqinBin, args...)
	cmd.Dir = d.dir
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sqin %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	var out map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &out); err != nil {
		t.Fatalf("sqin client create printed no JSON object: %v\n%s", err, stdout.String())
	}
	return out
}

// shared keeps one server per backend for the tests that do not need a
// server of their own; TestMain stops them.
var shared = &serverPool{m: map[string]*poolEntry{}}

type serverPool struct {
	mu sync.Mutex
	m  map[string]*poolEntry
}

type poolEntry struct {
	once sync.Once
	srv  *Server
	err  error
}

func (p *serverPool) get(backend string) (*Server, error) {
	p.mu.Lock()
	e, ok := p.m[backend]
	if !ok {
		e = &poolEntry{}
		p.m[backend] = e
	}
	p.mu.Unlock()
	e.once.Do(func() {
		db, err := newDatabase(backend)
		if err != nil {
			e.err = err
			return
		}
		e.srv, e.err = startServer(db, 0)
		if e.err != nil {
			if e.srv != nil {
				_ = e.srv.Stop()
			}
			_ = db.drop()
			e.srv = nil
		}
	})
	return e.srv, e.err
}

func (p *serverPool) stopAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, e := range p.m {
		if e.srv == nil {
			continue
		}
		if err := e.srv.Stop(); err != nil {
			fmt.Fprintf(os.Stderr, "goclient: stop %s server: %v\n", name, err)
		}
		if err := e.srv.DB.drop(); err != nil {
			fmt.Fprintf(os.Stderr, "goclient: drop %s database: %v\n", name, err)
		}
		if os.Getenv("SQIN_KEEP_LOGS") == "" {
			os.Remove(e.srv.logPath)
		} else {
			fmt.Fprintf(os.Stderr, "goclient: %s server log in %s\n", name, e.srv.logPath)
		}
	}
}

var backends = []string{"sqlite", "postgres"}

// forEachBackend runs f as a subtest per backend against the shared server
// of that backend.
func forEachBackend(t *testing.T, f func(t *testing.T, s *Server)) {
	t.Helper()
	for _, b := range backends {
		t.Run(b, func(t *testing.T) {
			s, err := shared.get(b)
			skipOrFatal(t, err)
			f(t, s)
		})
	}
}

func readAll(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, err := buf.ReadFrom(resp.Body)
	return buf.Bytes(), err
}
