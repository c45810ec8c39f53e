// Package pgserver runs a private PostgreSQL cluster for `tessera serve` when
// no DATABASE_URL is configured, so a single machine needs nothing but the
// distribution's PostgreSQL packages.
package pgserver

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gofrs/flock"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	superuser    = "tessera"
	databaseName = "tessera"

	readyTimeout = 60 * time.Second
	stopTimeout  = 30 * time.Second
	quitTimeout  = 5 * time.Second

	// SIGINT is PostgreSQL's "fast shutdown": it disconnects clients instead
	// of waiting for them (SIGTERM), so a lingering psql session can neither
	// delay Stop nor keep an orphaned postmaster alive after tessera dies.
	shutdownSignal = syscall.SIGINT
)

// Options configures Start.
type Options struct {
	DataDir string       // tessera data dir; the cluster lives in DataDir/pg
	Logger  *slog.Logger // for progress lines; nil means slog.Default()
}

// Server is a running private PostgreSQL cluster owned by this process.
type Server struct {
	dataDir string
	url     string
	log     *slog.Logger
	lock    *flock.Flock

	cmd     *exec.Cmd     // the postmaster; nil until it has been started
	exited  chan struct{} // closed once the postmaster has been reaped
	waitErr error         // valid after exited is closed

	stopOnce sync.Once
	stopErr  error
}

// clusterUser is the unprivileged account PostgreSQL runs as when tessera
// itself runs as root, because postgres refuses to run as root.
type clusterUser struct {
	name   string
	uid    int
	gid    int
	groups map[int]bool
}

// Start finds binaries, takes an exclusive lock on DataDir (so a second
// tessera on the same data dir fails at once with an error naming the dir and
// the pid holding it, instead of two postmasters racing), initializes the
// cluster on first use, starts postgres as a child process, waits until it
// accepts connections, creates the database "tessera" if missing, and
// returns. On any error nothing is left running and the lock is released.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("pgserver: DataDir is required")
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	// Children run with their own working directory, so relative paths
	// would point somewhere else for them.
	dataDir, err := filepath.Abs(opts.DataDir)
	if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}
	binDir, err := FindBinaries()
	if err != nil {
		return nil, err
	}
	var runAs *clusterUser
	if os.Geteuid() == 0 {
		if runAs, err = lookupClusterUser(); err != nil {
			return nil, err
		}
	}

	created, err := ensureDataDir(dataDir)
	if err != nil {
		return nil, err
	}
	lock, err := acquireLock(dataDir)
	if err != nil {
		return nil, err
	}
	s := &Server{dataDir: dataDir, log: logger, lock: lock}
	ok := false
	defer func() {
		if !ok {
			_ = s.Stop()
		}
	}()

	pgDir := filepath.Join(dataDir, "pg")
	if runAs != nil {
		if err := checkReachable(dataDir, created, runAs); err != nil {
			return nil, err
		}
	}
	if _, err := os.Stat(filepath.Join(pgDir, "PG_VERSION")); errors.Is(err, fs.ErrNotExist) {
		logger.Info("initializing PostgreSQL cluster", "dir", pgDir, "bin", binDir)
		if err := initCluster(ctx, binDir, dataDir, runAs); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, fmt.Errorf("pgserver: %w", err)
	}

	password, err := readPassword(dataDir)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	if err := writeConf(pgDir, port, runAs); err != nil {
		return nil, err
	}
	if runAs != nil {
		// A cluster created by an earlier non-root run (or touched by root)
		// must belong to the account postgres now runs as, or it refuses.
		if err := chownTree(pgDir, runAs); err != nil {
			return nil, err
		}
	}
	removeStalePostmasterPid(pgDir, logger)

	for attempt := 1; ; attempt++ {
		logOffset, err := s.startPostgres(binDir, pgDir, runAs)
		if err != nil {
			return nil, err
		}
		err = s.waitReady(ctx, password, port, logOffset)
		if err == nil {
			break
		}
		// Backends of a postmaster that was killed hard hold its shared memory for a
		// moment after it is gone: wait for them instead of failing the start.
		if attempt < shmRetries && s.hasExited() && strings.Contains(s.logTail(logOffset), "pre-existing shared memory block") {
			logger.Info("waiting for the backends of a crashed postgres to exit", "dir", pgDir)
			time.Sleep(500 * time.Millisecond)
			continue
		}
		return nil, err
	}
	s.url = connURL(password, port, databaseName, "")
	logger.Info(fmt.Sprintf("postgres ready on 127.0.0.1:%d", port), "dir", pgDir)
	ok = true
	return s, nil
}

// URL returns the connection URL for the "tessera" database, including the
// generated superuser password.
func (s *Server) URL() string { return s.url }

// Stop shuts postgres down (fast shutdown, escalating to SIGQUIT and then
// SIGKILL if it hangs), waits for it to exit and releases the data-dir lock.
// Calling it again returns the first call's result.
func (s *Server) Stop() error {
	s.stopOnce.Do(func() {
		s.stopErr = errors.Join(s.stopPostgres(), s.releaseLock())
	})
	return s.stopErr
}

// FindBinaries returns the directory holding initdb and postgres: first the
// one on $PATH, then the highest version under /usr/lib/postgresql/*/bin,
// where Debian/Ubuntu install them without putting them on $PATH. When
// neither has them, the error tells the user which package to install or to
// set DATABASE_URL instead.
func FindBinaries() (string, error) {
	if p, err := exec.LookPath("initdb"); err == nil {
		var dirs []string
		// /usr/local/bin/initdb may be a lone symlink; the real directory
		// is where postgres lives next to it.
		if real, err := filepath.EvalSymlinks(p); err == nil {
			dirs = append(dirs, filepath.Dir(real))
		}
		dirs = append(dirs, filepath.Dir(p))
		for _, d := range dirs {
			if hasBinaries(d) {
				return d, nil
			}
		}
	}
	matches, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(matches, func(i, j int) bool {
		return versionLess(filepath.Base(filepath.Dir(matches[j])), filepath.Base(filepath.Dir(matches[i])))
	})
	for _, d := range matches {
		if hasBinaries(d) {
			return d, nil
		}
	}
	return "", errors.New("pgserver: PostgreSQL server binaries (initdb, postgres) not found on $PATH or in /usr/lib/postgresql/*/bin; " +
		"install them with `apt-get install postgresql` (Debian/Ubuntu) or `dnf install postgresql-server` (Fedora/RHEL), " +
		"or set DATABASE_URL to use an existing PostgreSQL server")
}

func hasBinaries(dir string) bool {
	for _, name := range []string{"initdb", "postgres"} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil || fi.IsDir() || fi.Mode().Perm()&0o111 == 0 {
			return false
		}
	}
	return true
}

// versionLess compares directory names like "9.6" and "15" numerically, so
// that 15 sorts above 9.6.
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return a < b
}

func lookupClusterUser() (*clusterUser, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgserver: tessera runs as root, but PostgreSQL refuses to run as root and there is no \"postgres\" system user to run it as (%v); "+
			"create an unprivileged user named postgres (installing the postgresql package does this), run tessera as a non-root user, or set DATABASE_URL", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("pgserver: user postgres has non-numeric uid/gid %q/%q", u.Uid, u.Gid)
	}
	if uid == 0 {
		return nil, errors.New("pgserver: the \"postgres\" user has uid 0; PostgreSQL cannot run as root")
	}
	cu := &clusterUser{name: u.Username, uid: uid, gid: gid, groups: map[int]bool{gid: true}}
	if ids, err := u.GroupIds(); err == nil {
		for _, id := range ids {
			if g, err := strconv.Atoi(id); err == nil {
				cu.groups[g] = true
			}
		}
	}
	return cu, nil
}

// ensureDataDir creates dataDir if needed and reports whether it did, since
// only a directory we created is ours to open up for the cluster user.
func ensureDataDir(dataDir string) (bool, error) {
	if fi, err := os.Stat(dataDir); err == nil {
		if !fi.IsDir() {
			return false, fmt.Errorf("pgserver: data dir %s is not a directory", dataDir)
		}
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("pgserver: %w", err)
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return false, fmt.Errorf("pgserver: create data dir: %w", err)
	}
	return true, nil
}

func acquireLock(dataDir string) (*flock.Flock, error) {
	lockPath := filepath.Join(dataDir, "tessera.lock")
	pidPath := filepath.Join(dataDir, "tessera.pid")
	lock := flock.New(lockPath)
	locked, err := lock.TryLock()
	if err != nil {
		return nil, fmt.Errorf("pgserver: lock %s: %w", lockPath, err)
	}
	if !locked {
		holder := "unknown pid"
		if b, err := os.ReadFile(pidPath); err == nil && strings.TrimSpace(string(b)) != "" {
			holder = "pid " + strings.TrimSpace(string(b))
		}
		return nil, fmt.Errorf("pgserver: data dir %s is already in use by another tessera process (%s holds the lock %s); stop it or use a different --data-dir",
			dataDir, holder, lockPath)
	}
	if err := os.WriteFile(pidPath, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		_ = lock.Unlock()
		return nil, fmt.Errorf("pgserver: write %s: %w", pidPath, err)
	}
	return lock, nil
}

func (s *Server) releaseLock() error {
	if s.lock == nil {
		return nil
	}
	// Remove the pid file first: once unlocked, it belongs to the next holder.
	_ = os.Remove(filepath.Join(s.dataDir, "tessera.pid"))
	return s.lock.Unlock()
}

// checkReachable makes sure the cluster user can traverse every ancestor of
// DataDir/pg; otherwise initdb/postgres fail later with an opaque
// "permission denied".
func checkReachable(dataDir string, created bool, cu *clusterUser) error {
	for dir := dataDir; ; dir = filepath.Dir(dir) {
		fi, err := os.Stat(dir)
		if err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
		if !searchable(fi, cu) {
			if dir == dataDir && created {
				if err := os.Chmod(dir, 0o755); err != nil {
					return fmt.Errorf("pgserver: %w", err)
				}
				continue
			}
			return fmt.Errorf("pgserver: PostgreSQL runs as user %q (tessera runs as root), which cannot reach %s because directory %s is not searchable by it; "+
				"run `chmod o+x %s` or choose a --data-dir elsewhere (for example under /var/lib)",
				cu.name, filepath.Join(dataDir, "pg"), dir, dir)
		}
		if dir == filepath.Dir(dir) {
			return nil
		}
	}
}

// searchable mirrors the kernel's permission check (owner, then group, then
// other bits; ACLs are not considered).
func searchable(fi fs.FileInfo, cu *clusterUser) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return true
	}
	perm := fi.Mode().Perm()
	switch {
	case int(st.Uid) == cu.uid:
		return perm&0o100 != 0
	case cu.groups[int(st.Gid)]:
		return perm&0o010 != 0
	default:
		return perm&0o001 != 0
	}
}

// initCluster runs initdb into a staging directory and renames it to
// DataDir/pg only when complete, so an interrupted or failed init (even a
// SIGKILL of tessera) never leaves a half-made cluster that looks real.
func initCluster(ctx context.Context, binDir, dataDir string, cu *clusterUser) (err error) {
	pgDir := filepath.Join(dataDir, "pg")
	if entries, statErr := os.ReadDir(pgDir); statErr == nil {
		if len(entries) > 0 {
			return fmt.Errorf("pgserver: %s exists but is not a PostgreSQL cluster (no PG_VERSION); move it away or remove it", pgDir)
		}
		if err := os.Remove(pgDir); err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
	}

	staging := filepath.Join(dataDir, "pg.initializing")
	if err := os.RemoveAll(staging); err != nil {
		return fmt.Errorf("pgserver: remove leftover %s: %w", staging, err)
	}
	if err := os.Mkdir(staging, 0o700); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(staging)
		}
	}()

	password, err := newPassword()
	if err != nil {
		return err
	}
	pwfile, err := os.CreateTemp(dataDir, ".pwfile-*")
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	defer os.Remove(pwfile.Name())
	_, err = pwfile.WriteString(password + "\n")
	if cerr := pwfile.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgserver: write password file: %w", err)
	}
	if cu != nil {
		for _, p := range []string{staging, pwfile.Name()} {
			if err := os.Chown(p, cu.uid, cu.gid); err != nil {
				return fmt.Errorf("pgserver: %w", err)
			}
		}
	}

	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"),
		"-D", staging, "-U", superuser, "--pwfile="+pwfile.Name(),
		"--auth=scram-sha-256", "--no-locale", "-E", "UTF8")
	cmd.Dir = dataDir
	cmd.Env = childEnv()
	cmd.SysProcAttr = childAttr(cu)
	out, runErr := cmd.CombinedOutput()
	appendLog(dataDir, "initdb", out)
	if runErr != nil {
		return fmt.Errorf("pgserver: initdb failed: %w\n%s", runErr, lastLines(out, 20))
	}

	conf, err := os.OpenFile(filepath.Join(staging, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	_, err = conf.WriteString("\n# Settings written by tessera at every start.\ninclude_if_exists = 'tessera.conf'\n")
	if cerr := conf.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("pgserver: append to postgresql.conf: %w", err)
	}

	// The password must be on disk before the cluster becomes visible, or a
	// crash in between would leave a cluster nobody can log in to.
	if err := writeFileAtomic(filepath.Join(dataDir, "pg.password"), []byte(password+"\n"), 0o600); err != nil {
		return err
	}
	if err := os.Rename(staging, pgDir); err != nil {
		return fmt.Errorf("pgserver: move new cluster into place: %w", err)
	}
	return nil
}

func newPassword() (string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pgserver: generate password: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

func readPassword(dataDir string) (string, error) {
	path := filepath.Join(dataDir, "pg.password")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("pgserver: read cluster password: %w (the cluster in %s cannot be used without it; restore the file or move %s away to start fresh)",
			err, filepath.Join(dataDir, "pg"), filepath.Join(dataDir, "pg"))
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("pgserver: %s is empty", path)
	}
	return pw, nil
}

func writeFileAtomic(path string, data []byte, perm fs.FileMode) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, perm); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("pgserver: %w", err)
	}
	return nil
}

// freePort asks the kernel for an unused port. Another process could take it
// before postgres binds; postgres then exits and Start reports its log.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pgserver: find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func writeConf(pgDir string, port int, cu *clusterUser) error {
	conf := fmt.Sprintf(`# Written by tessera at every start; edits here are overwritten.
# Put your own settings in postgresql.conf above the include line.
listen_addresses = '127.0.0.1'
port = %d
unix_socket_directories = ''
max_connections = 200
shared_buffers = 128MB
logging_collector = off
`, port)
	path := filepath.Join(pgDir, "tessera.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("pgserver: %w", err)
	}
	if cu != nil {
		if err := os.Chown(path, cu.uid, cu.gid); err != nil {
			return fmt.Errorf("pgserver: %w", err)
		}
	}
	return nil
}

func chownTree(root string, cu *clusterUser) error {
	err := filepath.WalkDir(root, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return os.Lchown(path, cu.uid, cu.gid)
	})
	if err != nil {
		return fmt.Errorf("pgserver: chown %s to %s: %w", root, cu.name, err)
	}
	return nil
}

// removeStalePostmasterPid deletes postmaster.pid when the pid in it now
// belongs to a process that is not PostgreSQL at all (or to a zombie, whose
// cmdline is empty). Postgres itself only
// ignores a stale file when the pid is dead, so after a reboot or container
// restart a recycled pid would otherwise block startup. Any live postgres
// process is left alone: then postgres's own interlock decides.
func removeStalePostmasterPid(pgDir string, logger *slog.Logger) {
	path := filepath.Join(pgDir, "postmaster.pid")
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	first, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(first))
	if err != nil || pid <= 0 {
		return
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return // dead (postgres copes) or unreadable (be conservative)
	}
	if bytes.Contains(cmdline, []byte("postgres")) || bytes.Contains(cmdline, []byte("postmaster")) {
		// We hold the data dir's lock, so this postmaster belongs to a tessera that
		// died: it received its parent-death signal and is shutting down. Wait for
		// it rather than fail the start with "postmaster.pid already exists".
		waitOrphan(pid, logger)
		return
	}
	logger.Warn("removing stale postmaster.pid whose pid now belongs to another program", "pid", pid)
	_ = os.Remove(path)
}

// orphanWait bounds how long Start waits for a dead tessera's postgres to stop
// before asking it to stop at once.
const orphanWait = 30 * time.Second

func waitOrphan(pid int, logger *slog.Logger) {
	logger.Info("waiting for the postgres of a previous run to stop", "pid", pid)
	alive := func() bool { return syscall.Kill(pid, 0) == nil }
	for deadline := time.Now().Add(orphanWait); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if !alive() {
			return
		}
	}
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	for deadline := time.Now().Add(5 * time.Second); alive() && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
	}
}

// startPostgres launches the postmaster and returns the pg.log offset where
// this run's output begins, so errors quote this run only.
func (s *Server) startPostgres(binDir, pgDir string, cu *clusterUser) (int64, error) {
	logPath := filepath.Join(s.dataDir, "pg.log")
	logf, err := os.OpenFile(logPath, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, fmt.Errorf("pgserver: %w", err)
	}
	defer logf.Close() // the child keeps its own copy of the descriptor
	offset, err := logf.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("pgserver: %w", err)
	}
	fmt.Fprintf(logf, "=== tessera: starting postgres at %s ===\n", time.Now().Format(time.RFC3339))

	cmd := exec.Command(filepath.Join(binDir, "postgres"), "-D", pgDir)
	cmd.Dir = pgDir
	cmd.Env = childEnv()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = childAttr(cu)
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("pgserver: start postgres: %w", err)
	}
	s.cmd = cmd
	s.exited = make(chan struct{})
	go func() {
		s.waitErr = cmd.Wait()
		close(s.exited)
	}()
	return offset, nil
}

// childAttr ties the child's lifetime to tessera: Pdeathsig makes the kernel
// shut postgres down if tessera dies without calling Stop (it fires when the
// forking OS thread exits, which the Go runtime does not do for ordinary
// goroutines), and its own process group keeps a terminal's Ctrl-C from
// reaching postgres before tessera has decided how to stop it.
func childAttr(cu *clusterUser) *syscall.SysProcAttr {
	attr := &syscall.SysProcAttr{Setpgid: true, Pdeathsig: shutdownSignal}
	if cu != nil {
		attr.Credential = &syscall.Credential{Uid: uint32(cu.uid), Gid: uint32(cu.gid)}
	}
	return attr
}

// childEnv drops PG* variables (PGDATA, PGPORT, ...) that would make the
// private cluster depend on whatever the user has set for other servers.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PG") {
			env = append(env, kv)
		}
	}
	return env
}

// shmRetries bounds how often Start waits for a crashed cluster's backends (10 s).
const shmRetries = 20

func (s *Server) hasExited() bool {
	select {
	case <-s.exited:
		return true
	default:
		return false
	}
}

func (s *Server) waitReady(ctx context.Context, password string, port int, logOffset int64) error {
	connStr := connURL(password, port, "postgres", "connect_timeout=2")
	deadline := time.Now().Add(readyTimeout)
	for {
		select {
		case <-s.exited:
			return fmt.Errorf("pgserver: postgres exited during startup (%v); last lines of %s:\n%s",
				s.waitErr, filepath.Join(s.dataDir, "pg.log"), s.logTail(logOffset))
		default:
		}
		attemptCtx, cancel := context.WithTimeout(ctx, 3*time.Second)
		conn, err := pgx.Connect(attemptCtx, connStr)
		cancel()
		if err == nil {
			err = ensureDatabase(ctx, conn)
			_ = conn.Close(context.Background())
			return err
		}
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "28P01" || pgErr.Code == "28000") {
			return fmt.Errorf("pgserver: postgres rejected the password in %s: %w", filepath.Join(s.dataDir, "pg.password"), err)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgserver: postgres did not accept connections within %s (last error: %v); last lines of %s:\n%s",
				readyTimeout, err, filepath.Join(s.dataDir, "pg.log"), s.logTail(logOffset))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.exited:
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func ensureDatabase(ctx context.Context, conn *pgx.Conn) error {
	var exists bool
	if err := conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", databaseName).Scan(&exists); err != nil {
		return fmt.Errorf("pgserver: check for database %q: %w", databaseName, err)
	}
	if exists {
		return nil
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{databaseName}.Sanitize()); err != nil {
		return fmt.Errorf("pgserver: create database %q: %w", databaseName, err)
	}
	return nil
}

func connURL(password string, port int, db, extraQuery string) string {
	q := "sslmode=disable"
	if extraQuery != "" {
		q += "&" + extraQuery
	}
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Path:     "/" + db,
		RawQuery: q,
	}
	return u.String()
}

func (s *Server) stopPostgres() error {
	if s.cmd == nil {
		return nil
	}
	select {
	case <-s.exited:
		return fmt.Errorf("pgserver: postgres had already exited (%v); see %s", s.waitErr, filepath.Join(s.dataDir, "pg.log"))
	default:
	}
	pid := s.cmd.Process.Pid
	s.log.Info("stopping postgres", "pid", pid)
	_ = s.cmd.Process.Signal(shutdownSignal)
	select {
	case <-s.exited:
		if s.waitErr != nil {
			return fmt.Errorf("pgserver: postgres exited with %v during shutdown", s.waitErr)
		}
		return nil
	case <-time.After(stopTimeout):
	}
	s.log.Warn("postgres did not stop in time; forcing immediate shutdown", "pid", pid, "timeout", stopTimeout)
	_ = s.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-s.exited:
		return fmt.Errorf("pgserver: postgres did not stop within %s; forced an immediate shutdown", stopTimeout)
	case <-time.After(quitTimeout):
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
	return fmt.Errorf("pgserver: postgres did not stop within %s; killed it", stopTimeout+quitTimeout)
}

// appendLog keeps initdb's output next to the server log for later diagnosis.
func appendLog(dataDir, what string, out []byte) {
	f, err := os.OpenFile(filepath.Join(dataDir, "pg.log"), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return
	}
	defer f.Close()
	fmt.Fprintf(f, "=== tessera: %s at %s ===\n", what, time.Now().Format(time.RFC3339))
	_, _ = f.Write(out)
}

func (s *Server) logTail(offset int64) string {
	f, err := os.Open(filepath.Join(s.dataDir, "pg.log"))
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	const maxRead = 64 << 10
	if fi, err := f.Stat(); err == nil && fi.Size()-offset > maxRead {
		offset = fi.Size() - maxRead
	}
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return "(unreadable log: " + err.Error() + ")"
	}
	b, _ := io.ReadAll(f)
	return lastLines(b, 20)
}

func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
