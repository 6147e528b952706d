package main

import (
	"bufio"
	"bytes"
	"context"
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
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// server is one running `sqin serve --demo` process.
type server struct {
	bin     string
	db      string // --db URL
	dir     string // --data-dir
	addr    string
	issuer  string
	cmd     *exec.Cmd
	logPath string
	done    chan error
}

// freePort asks the kernel for an unused loopback port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// serveHelp returns the text of `sqin serve --help`.
func serveHelp(bin string) string {
	out, _ := exec.Command(bin, "serve", "--help").CombinedOutput()
	return string(out)
}

// startServer starts bin and waits until /readyz answers 200.
func startServer(ctx context.Context, bin, db, dir string, extra []string, readyTimeout time.Duration) (*server, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	s := &server{bin: bin, db: db, dir: dir, addr: fmt.Sprintf("127.0.0.1:%d", port), done: make(chan error, 1)}
	s.issuer = "http://" + s.addr
	args := []string{"serve", "--demo", "--db", db, "--addr", s.addr, "--issuer", s.issuer,
		"--demo-rp-addr", "", "--data-dir", dir, "--log-level", "warn"}
	args = append(args, extra...)
	s.logPath = filepath.Join(dir, "server.log")
	logf, err := os.Create(s.logPath)
	if err != nil {
		return nil, err
	}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = logf, logf
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := s.cmd.Start(); err != nil {
		logf.Close()
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait(); logf.Close() }()
	deadline := time.Now().Add(readyTimeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case err := <-s.done:
			s.done <- err
			return nil, fmt.Errorf("server exited before it was ready (%v); log:\n%s", err, s.logTail(20))
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		resp, err := hc.Get(s.issuer + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return s, nil
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			return nil, fmt.Errorf("server not ready after %s; log:\n%s", readyTimeout, s.logTail(20))
		}
	}
}

func (s *server) pid() int { return s.cmd.Process.Pid }

// stop sends SIGTERM and waits for the process to end (SIGKILL after 30 s).
func (s *server) stop() error {
	if s == nil || s.cmd == nil || s.cmd.Process == nil {
		return nil
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		err := <-s.done
		s.done <- err
		return errors.New("server ignored SIGTERM for 30 s; killed")
	}
}

func (s *server) logTail(n int) string {
	b, _ := os.ReadFile(s.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// createClient registers the benchmark's client with the CLI.
func createClient(bin, db, id, secret, redirectURI string) error {
	cmd := exec.Command(bin, "client", "create", "--db", db, "--id", id, "--secret", secret,
		"--redirect-uri", redirectURI,
		"--grant-types", "authorization_code,refresh_token,client_credentials",
		"--scopes", "openid,profile,email,offline_access")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("sqin client create: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte(id)) {
		return fmt.Errorf("sqin client create: unexpected output\n%s", out)
	}
	return nil
}

// procCPU returns utime+stime (plus the children's when children is set)
// of a process in clock ticks.
func procCPU(pid int, children bool) (int64, string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, "", err
	}
	s := string(b)
	open, closing := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || closing < open {
		return 0, "", errors.New("bad /proc stat")
	}
	comm := s[open+1 : closing]
	f := strings.Fields(s[closing+1:])
	// f[0] is field 3 (state); utime, stime, cutime, cstime are fields
	// 14 to 17.
	if len(f) < 15 {
		return 0, "", errors.New("short /proc stat")
	}
	var sum int64
	last := 12
	if children {
		last = 14
	}
	for i := 11; i <= last; i++ {
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0, "", err
		}
		sum += v
	}
	return sum, comm, nil
}

// procTimes returns utime+stime and stime of a process in clock ticks.
func procTimes(pid int) (total, sys int64, err error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, 0, err
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, 0, errors.New("short /proc stat")
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, err
	}
	return u + st, st, nil
}

// pgBackends finds the PostgreSQL backends that serve one process: the
// backends whose client port is the local port of one of that process's
// TCP connections to the PostgreSQL port. Backends of other clients of the
// same PostgreSQL server (other test runs) are left out; so are the WAL
// writer, checkpointer and other shared background processes.
type pgBackends struct {
	conn   *pgx.Conn
	pid    int    // the server
	pgPort uint16 // PostgreSQL's TCP port
	mu     sync.Mutex
}

func newPGBackends(ctx context.Context, base string, serverPID int) (*pgBackends, error) {
	cfg, err := pgx.ParseConfig(base)
	if err != nil {
		return nil, err
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return &pgBackends{conn: conn, pid: serverPID, pgPort: cfg.Port}, nil
}

func (b *pgBackends) close() { _ = b.conn.Close(context.Background()) }

// cpu returns utime+stime in clock ticks of each backend of the server.
func (b *pgBackends) cpu() map[int]int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	ports := socketPorts(b.pid, b.pgPort)
	out := map[int]int64{}
	if len(ports) == 0 {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rows, err := b.conn.Query(ctx, "SELECT pid FROM pg_stat_activity WHERE client_port = ANY($1)", ports)
	if err != nil {
		return out
	}
	pids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
	if err != nil {
		return out
	}
	for _, pid := range pids {
		if t, _, err := procCPU(int(pid), false); err == nil {
			out[int(pid)] = t
		}
	}
	return out
}

// socketPorts returns the local ports of pid's TCP connections whose
// remote port is remotePort.
func socketPorts(pid int, remotePort uint16) []int32 {
	dir := "/proc/" + strconv.Itoa(pid)
	fds, err := os.ReadDir(dir + "/fd")
	if err != nil {
		return nil
	}
	inodes := map[string]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(dir + "/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(l, "socket:[") {
			inodes[strings.TrimSuffix(strings.TrimPrefix(l, "socket:["), "]")] = true
		}
	}
	var ports []int32
	for _, f := range []string{"/net/tcp", "/net/tcp6"} {
		b, err := os.ReadFile(dir + f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n")[1:] {
			fl := strings.Fields(line)
			if len(fl) < 10 || !inodes[fl[9]] {
				continue
			}
			_, lp, _ := strings.Cut(fl[1], ":")
			_, rp, _ := strings.Cut(fl[2], ":")
			l, err1 := strconv.ParseUint(lp, 16, 16)
			r, err2 := strconv.ParseUint(rp, 16, 16)
			if err1 == nil && err2 == nil && uint16(r) == remotePort {
				ports = append(ports, int32(l))
			}
		}
	}
	return ports
}

// procMemKiB returns VmRSS and VmHWM (peak) of a process in KiB.
func procMemKiB(pid int) (rss, hwm int64) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		switch k {
		case "VmRSS":
			rss = n
		case "VmHWM":
			hwm = n
		}
	}
	return rss, hwm
}

// pgSchema creates a fresh schema and returns the URL that selects it and
// a function that drops it.
func pgSchema(ctx context.Context, base string) (string, func() error, error) {
	conn, err := pgx.Connect(ctx, base)
	if err != nil {
		return "", nil, fmt.Errorf("postgres: %w", err)
	}
	defer conn.Close(ctx)
	name := "sqin_bench_" + strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(randString(6)))
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("postgres: create schema: %w", err)
	}
	drop := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, base)
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		_, err = c.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{name}.Sanitize()+" CASCADE")
		return err
	}
	sep := "?"
	if strings.Contains(base, "?") {
		sep = "&"
	}
	return base + sep + "search_path=" + name, drop, nil
}

// machineBusy returns the busy time of all CPUs (user, nice, system, irq,
// softirq, steal) from /proc/stat, in clock ticks.
func machineBusy() int64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var sum int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} {
		v, _ := strconv.ParseInt(f[i], 10, 64)
		sum += v
	}
	return sum
}
