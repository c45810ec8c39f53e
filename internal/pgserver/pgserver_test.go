package pgserver

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func TestFindBinaries(t *testing.T) {
	dir, err := FindBinaries()
	installed, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if _, lookErr := exec.LookPath("initdb"); lookErr == nil {
		installed = append(installed, "initdb on PATH")
	}
	if len(installed) == 0 {
		// No PostgreSQL here: the error must tell the user what to do.
		if err == nil {
			t.Fatalf("FindBinaries() = %q, want error", dir)
		}
		for _, want := range []string{"apt-get install postgresql", "dnf install postgresql-server", "DATABASE_URL"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("error %q does not mention %q", err, want)
			}
		}
		return
	}
	if err != nil {
		t.Fatalf("FindBinaries: %v (installed: %v)", err, installed)
	}
	for _, name := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s missing from %s: %v", name, dir, err)
		}
	}
	t.Logf("binaries in %s", dir)
}

func TestVersionLess(t *testing.T) {
	if !versionLess("9.6", "15") || versionLess("16", "15") || !versionLess("15", "16") {
		t.Fatal("versionLess does not order PostgreSQL versions numerically")
	}
}

// newDataDir returns a data dir the postgres user can reach when the test
// runs as root: t.TempDir's parents are 0700.
func newDataDir(t *testing.T) string {
	t.Helper()
	if _, err := FindBinaries(); err != nil {
		t.Skipf("no PostgreSQL binaries: %v", err)
	}
	base, err := os.MkdirTemp("/tmp", "pgserver-test-")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	return filepath.Join(base, "data")
}

func start(t *testing.T, dataDir string) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s, err := Start(ctx, Options{DataDir: dataDir})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { s.Stop() })
	return s
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), url)
	if err != nil {
		t.Fatalf("connect %s: %v", url, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func TestStartStopRestartLock(t *testing.T) {
	dataDir := newDataDir(t)
	ctx := context.Background()

	s := start(t, dataDir)
	if !strings.HasPrefix(s.URL(), "postgres://tessera:") || !strings.HasSuffix(s.URL(), "/tessera?sslmode=disable") {
		t.Errorf("unexpected URL %q", s.URL())
	}
	fi, err := os.Stat(filepath.Join(dataDir, "pg.password"))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("pg.password: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	conn := connect(t, s.URL())
	if _, err := conn.Exec(ctx, "CREATE TABLE t (v text); INSERT INTO t VALUES ('hello')"); err != nil {
		t.Fatal(err)
	}
	conn.Close(ctx)

	pid := s.cmd.Process.Pid
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	if err := s.Stop(); err != nil {
		t.Fatalf("second Stop: %v", err)
	}
	assertNoPostgres(t, dataDir, pid)

	s2 := start(t, dataDir)
	var v string
	if err := connect(t, s2.URL()).QueryRow(ctx, "SELECT v FROM t").Scan(&v); err != nil || v != "hello" {
		t.Fatalf("after restart: v=%q err=%v", v, err)
	}

	_, err = Start(ctx, Options{DataDir: dataDir})
	if err == nil {
		t.Fatal("second concurrent Start succeeded")
	}
	for _, want := range []string{dataDir, "lock", "pid " + strconv.Itoa(os.Getpid())} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("concurrent Start error %q does not mention %q", err, want)
		}
	}
	// The failed attempt must not have disturbed the running server.
	if err := connect(t, s2.URL()).Ping(ctx); err != nil {
		t.Fatalf("server broken by failed second Start: %v", err)
	}

	pid2 := s2.cmd.Process.Pid
	if err := s2.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	assertNoPostgres(t, dataDir, pid2)
}

// TestRestartAfterCrash kills a tessera process (a re-executed test binary)
// with SIGKILL: postgres must go away by itself, and a new Start must work,
// including when postmaster.pid was left behind by a killed postmaster.
func TestRestartAfterCrash(t *testing.T) {
	dataDir := newDataDir(t)
	ctx := context.Background()

	// tessera dies, postgres follows via Pdeathsig.
	helper, pmPid, url := startHelper(t, dataDir)
	if _, err := connect(t, url).Exec(ctx, "CREATE TABLE t (v int); INSERT INTO t VALUES (1)"); err != nil {
		t.Fatal(err)
	}
	helper.Process.Kill()
	helper.Wait()
	waitGone(t, pmPid)

	// tessera and postgres both die hard: postmaster.pid stays behind.
	helper, pmPid, url = startHelper(t, dataDir)
	if _, err := connect(t, url).Exec(ctx, "INSERT INTO t VALUES (2)"); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(pmPid, syscall.SIGKILL)
	helper.Process.Kill()
	helper.Wait()
	waitGone(t, pmPid)
	if _, err := os.Stat(filepath.Join(dataDir, "pg", "postmaster.pid")); err != nil {
		t.Fatalf("expected a stale postmaster.pid: %v", err)
	}

	s := start(t, dataDir)
	var n int
	if err := connect(t, s.URL()).QueryRow(ctx, "SELECT count(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("after crash restart: count=%d err=%v", n, err)
	}
	pid := s.cmd.Process.Pid
	if err := s.Stop(); err != nil {
		t.Fatalf("Stop: %v", err)
	}
	assertNoPostgres(t, dataDir, pid)
}

func TestUnreachableAncestor(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ancestor check only applies when running as root")
	}
	if _, err := lookupClusterUser(); err != nil {
		t.Skip(err)
	}
	base := newDataDir(t) // .../data; use its parent as the sandbox
	closed := filepath.Join(filepath.Dir(base), "closed")
	if err := os.Mkdir(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	dataDir := filepath.Join(closed, "data")
	if err := os.Mkdir(dataDir, 0o755); err != nil {
		t.Fatal(err)
	}
	_, err := Start(context.Background(), Options{DataDir: dataDir})
	if err == nil {
		t.Fatal("Start succeeded with an unreachable ancestor")
	}
	if !strings.Contains(err.Error(), "chmod o+x "+closed) {
		t.Errorf("error %q does not name the fix for %s", err, closed)
	}
	lock, err := acquireLock(dataDir)
	if err != nil {
		t.Fatalf("lock still held after failed Start: %v", err)
	}
	lock.Unlock()
}

const helperEnv = "PGSERVER_TEST_HELPER_DATADIR"

// TestHelperProcess is not a real test: it plays a tessera process for
// TestRestartAfterCrash.
func TestHelperProcess(t *testing.T) {
	dataDir := os.Getenv(helperEnv)
	if dataDir == "" {
		t.Skip("helper process only")
	}
	s, err := Start(context.Background(), Options{DataDir: dataDir})
	if err != nil {
		fmt.Printf("ERROR %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("READY %d %s\n", s.cmd.Process.Pid, s.URL())
	time.Sleep(10 * time.Minute)
	os.Exit(2)
}

func startHelper(t *testing.T, dataDir string) (*exec.Cmd, int, string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
	cmd.Env = append(os.Environ(), helperEnv+"="+dataDir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "ERROR ") {
			t.Fatalf("helper: %s", line)
		}
		if f := strings.Fields(line); len(f) == 3 && f[0] == "READY" {
			pid, _ := strconv.Atoi(f[1])
			go func() {
				for sc.Scan() {
				}
			}()
			return cmd, pid, f[2]
		}
	}
	t.Fatalf("helper exited without becoming ready: %v", sc.Err())
	return nil, 0, ""
}

// waitGone waits for pid to disappear completely, so that the crash test
// exercises postgres's own stale-lock handling; a zombie is accepted only if
// nothing reaps it in time.
func waitGone(t *testing.T, pid int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			return
		}
		if time.Now().After(deadline) {
			if processAlive(pid) {
				t.Fatalf("postmaster %d still running 30s after tessera died", pid)
			}
			t.Logf("postmaster %d is an unreaped zombie", pid)
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestRemoveStalePostmasterPid(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "postmaster.pid")
	write := func(pid int) {
		if err := os.WriteFile(path, []byte(fmt.Sprintf("%d\n%s\n", pid, dir)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	exists := func() bool { _, err := os.Stat(path); return err == nil }

	// A dead pid is postgres's business: it recognizes that itself.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	write(dead.Process.Pid)
	removeStalePostmasterPid(dir, slog.Default())
	if !exists() {
		t.Error("postmaster.pid of a dead pid was removed; postgres handles that")
	}

	// A live non-postgres process (this test binary) means the pid was recycled.
	write(os.Getpid())
	removeStalePostmasterPid(dir, slog.Default())
	if exists() {
		t.Error("postmaster.pid naming a recycled, non-postgres pid was kept")
	}
}

// processAlive treats zombies as gone: the postmaster's parent is dead and
// the zombie is only waiting for init to reap it.
func processAlive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	_, rest, _ := strings.Cut(string(b), ") ")
	return !strings.HasPrefix(rest, "Z") && !strings.HasPrefix(rest, "X")
}

// assertNoPostgres checks that neither the postmaster nor any process still
// mentioning the data dir (or child of the postmaster) survives.
func assertNoPostgres(t *testing.T, dataDir string, postmasterPid int) {
	t.Helper()
	if postmasterPid > 0 && processAlive(postmasterPid) {
		t.Errorf("postmaster %d still running after Stop", postmasterPid)
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || !processAlive(pid) {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		status, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "status"))
		if strings.Contains(string(cmdline), dataDir) ||
			postmasterPid > 0 && strings.Contains(string(status), fmt.Sprintf("\nPPid:\t%d\n", postmasterPid)) {
			t.Errorf("process %d (%q) survived Stop", pid, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
}

// TestInitInterrupted cancels Start while initdb runs: nothing half-made may
// remain, and the next Start must initialize cleanly.
func TestInitInterrupted(t *testing.T) {
	dataDir := newDataDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
	defer cancel()
	if s, err := Start(ctx, Options{DataDir: dataDir}); err == nil {
		s.Stop()
		t.Skip("initdb finished before the deadline")
	}
	for _, name := range []string{"pg", "pg.initializing"} {
		if _, err := os.Stat(filepath.Join(dataDir, name)); err == nil {
			t.Errorf("%s left behind after interrupted init", name)
		}
	}
	start(t, dataDir).Stop()
}

// TestPostgresFailsToStart breaks the configuration: Start must report the
// server's own complaint and leave no process or lock behind.
func TestPostgresFailsToStart(t *testing.T) {
	dataDir := newDataDir(t)
	start(t, dataDir).Stop()

	conf, err := os.OpenFile(filepath.Join(dataDir, "pg", "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintln(conf, "max_wal_senders = notanumber")
	conf.Close()

	_, err = Start(context.Background(), Options{DataDir: dataDir})
	if err == nil {
		t.Fatal("Start succeeded with a broken configuration")
	}
	t.Logf("Start error: %v", err)
	if !strings.Contains(err.Error(), "max_wal_senders") {
		t.Errorf("error does not quote the postgres log: %v", err)
	}
	assertNoPostgres(t, dataDir, 0)
	lock, err := acquireLock(dataDir)
	if err != nil {
		t.Fatalf("lock still held after failed Start: %v", err)
	}
	lock.Unlock()
}
