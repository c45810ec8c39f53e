// Command bench runs Tessera and a minimal baseline side by side on this machine, in one
// run, and prints the ratio (machines are noisy; absolute times alone mean little):
//
//   - create: a validated POST of one record (with its history and outbox rows) vs a plain
//     INSERT of the same row from a net/http + pgx handler;
//   - list: a filtered, sorted page over a million rows vs the same SELECT;
//   - import: a CSV import through the API vs COPY of the same file;
//   - hooks: the same create with no hook, a Go hook, a pooled goja script hook and the
//     script on a fresh runtime per call (Tessera against itself: the ratios are the point);
//   - rowrule: a list by a user whose role has a row rule vs an admin filtering explicitly
//     to the same rows of a million-row table.
//
// Both sides use the same database: a fresh one on BENCH_DATABASE_URL's server when that
// is set (a postgres:// URL; the database is dropped at the end), otherwise a private
// cluster started from the machine's PostgreSQL binaries in a temporary directory.
//
//	go run ./bench [-only create,list,import,hooks,rowrule] [-duration 10s] [-rounds 2]
//	               [-rows 1000000] [-import-rows 100000] [-out bench/RESULTS.md] [-cpuprofile prefix]
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/store"
	"github.com/tessera/tessera/internal/pgserver"
	"github.com/tessera/tessera/web"
)

const (
	adminEmail    = "bench@tessera.local"
	adminPassword = "a long benchmark password"
)

type config struct {
	only       map[string]bool
	duration   time.Duration
	rounds     int
	rows       int
	importRows int
	poolMax    int
	out        string
	cpuprofile string
}

// env is everything the benchmarks share: the database, both servers and their pools.
type env struct {
	cfg config
	url string
	// pgPID is the postmaster of the private cluster (0 with BENCH_DATABASE_URL), so the
	// CPU time PostgreSQL spends can be measured.
	pgPID int

	tesseraPool  *pgxpool.Pool
	baselinePool *pgxpool.Pool
	// The statements each side's pool sends, counted by a pgx tracer.
	tesseraStmts  *stmtCounter
	baselineStmts *stmtCounter

	tessera  string   // base URL of the Tessera HTTP server
	baseline string   // base URL of the baseline HTTP server
	token    string   // bearer token of the bench admin
	servers  []string // base URLs (with a slash) of every Tessera server, for setup requests

	// What the Tessera server is built from, so a benchmark can register Go hooks or
	// serve a second engine on the same pool.
	engine *engine.Engine
	users  *auth.Service
	log    *slog.Logger

	accounts []string // ids of the account records orders refer to

	profiles     map[string]string // CPU profile summaries by run name
	profilePaths map[string]string // CPU profile files by run name
	profiledRuns map[string]result // the runs profiled, by run name
}

// benchmarks are the benchmarks there are, in the order they run and are written.
var benchmarks = []string{"create", "list", "import", "hooks", "rowrule"}

// section is one benchmark's outcome, printed to stdout and written to the Markdown file.
type section struct {
	Name    string // the benchmark's name, as -only takes it
	Title   string
	Intro   string
	Summary []string   // one line per headline result, e.g. "create c=8: tessera … ratio …"
	Table   [][]string // first row is the header
	Detail  [][]string // every round of every run, first row is the header
	Notes   []string   // what limits it
}

func main() {
	var cfg config
	only := flag.String("only", strings.Join(benchmarks, ","), "benchmarks to run, comma-separated")
	flag.DurationVar(&cfg.duration, "duration", 10*time.Second, "measured time of each create and list run")
	flag.IntVar(&cfg.rounds, "rounds", 2, "runs of each side, alternating baseline and Tessera; the best is reported")
	flag.IntVar(&cfg.rows, "rows", 1_000_000, "rows in the list benchmark's table")
	flag.IntVar(&cfg.importRows, "import-rows", 100_000, "rows in the import benchmark's CSV")
	flag.IntVar(&cfg.poolMax, "pool-max-conns", 0, "max connections of each side's pool (0: as tessera serve sizes its pool)")
	flag.StringVar(&cfg.out, "out", "", "also write the results as Markdown to this file (e.g. bench/RESULTS.md); when it holds "+
		"sections of benchmarks not run now, they are kept and the new sections replace or join them")
	flag.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of the last Tessera run of each benchmark to PREFIX.<run>.pprof")
	flag.Parse()
	cfg.only = map[string]bool{}
	for _, name := range strings.Split(*only, ",") {
		name = strings.TrimSpace(name)
		switch {
		case slices.Contains(benchmarks, name):
			cfg.only[name] = true
		case name == "":
		default:
			fmt.Fprintf(os.Stderr, "bench: unknown benchmark %q (want %s)\n", name, strings.Join(benchmarks, ", "))
			os.Exit(2)
		}
	}
	if cfg.rounds < 1 || cfg.duration <= 0 || cfg.rows < 1 || cfg.importRows < 1 {
		fmt.Fprintln(os.Stderr, "bench: -rounds, -duration, -rows and -import-rows must be positive")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, cfg)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, cfg config) error {
	started := time.Now()
	progress("setting up the database")
	e := &env{cfg: cfg}
	var (
		cleanup func()
		err     error
	)
	e.url, e.pgPID, cleanup, err = openDatabase(ctx)
	if err != nil {
		return err
	}
	defer cleanup()
	if _, err := store.Migrate(ctx, e.url); err != nil {
		return err
	}
	stopTessera, err := e.startTessera(ctx)
	if err != nil {
		return err
	}
	defer stopTessera()
	stopBaseline, err := e.startBaseline(ctx)
	if err != nil {
		return err
	}
	defer stopBaseline()
	m, err := describeMachine(ctx, e)
	if err != nil {
		return err
	}
	fmt.Printf("%s — %d CPUs, %s, %s RAM — %s, PostgreSQL %s — %s\n", started.UTC().Format("2006-01-02 15:04 MST"),
		m.CPUs, m.CPUModel, m.RAM, m.Go, m.Postgres, m.Code)
	if err := e.setupAccounts(ctx); err != nil {
		return err
	}

	var sections []section
	for _, b := range []struct {
		name string
		run  func(context.Context) (section, error)
	}{{"create", e.benchCreate}, {"list", e.benchList}, {"import", e.benchImport}, {"hooks", e.benchHooks}, {"rowrule", e.benchRowRule}} {
		if !cfg.only[b.name] {
			continue
		}
		s, err := b.run(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", b.name, err)
		}
		s.Name = b.name
		printSection(os.Stdout, s)
		sections = append(sections, s)
	}
	fmt.Println()
	for _, s := range sections {
		for _, line := range s.Summary {
			fmt.Println(line)
		}
	}
	progress(fmt.Sprintf("done in %s", time.Since(started).Round(time.Second)))
	if cfg.out != "" {
		if err := writeMarkdown(cfg.out, m, sections, started); err != nil {
			return err
		}
		progress("wrote " + cfg.out)
	}
	return nil
}

// openDatabase returns the URL of an empty database for this run and how to remove it.
func openDatabase(ctx context.Context) (dbURL string, pgPID int, cleanup func(), err error) {
	if admin := os.Getenv("BENCH_DATABASE_URL"); admin != "" {
		u, err := url.Parse(admin)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			return "", 0, nil, fmt.Errorf("BENCH_DATABASE_URL must be a postgres:// URL")
		}
		conn, err := pgx.Connect(ctx, admin)
		if err != nil {
			return "", 0, nil, fmt.Errorf("connect to BENCH_DATABASE_URL: %w", err)
		}
		defer conn.Close(ctx)
		name := fmt.Sprintf("tessera_bench_%d", os.Getpid())
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			return "", 0, nil, fmt.Errorf("create database %s: %w", name, err)
		}
		u.Path = "/" + name
		return u.String(), 0, func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			c, err := pgx.Connect(ctx, admin)
			if err != nil {
				fmt.Fprintf(os.Stderr, "bench: database %s left behind: %v\n", name, err)
				return
			}
			defer c.Close(ctx)
			if _, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
				fmt.Fprintf(os.Stderr, "bench: database %s left behind: %v\n", name, err)
			}
		}, nil
	}
	dir, err := os.MkdirTemp("", "tessera-bench-")
	if err != nil {
		return "", 0, nil, err
	}
	// When run as root the cluster runs as the postgres user, who must reach the directory.
	if err := os.Chmod(dir, 0o755); err != nil {
		os.RemoveAll(dir)
		return "", 0, nil, err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	srv, err := pgserver.Start(ctx, pgserver.Options{DataDir: dir, Logger: log})
	if err != nil {
		os.RemoveAll(dir)
		return "", 0, nil, err
	}
	pid := 0
	if b, err := os.ReadFile(filepath.Join(dir, "pg", "postmaster.pid")); err == nil {
		first, _, _ := strings.Cut(string(b), "\n")
		pid, _ = strconv.Atoi(strings.TrimSpace(first))
	}
	return srv.URL(), pid, func() {
		if err := srv.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "bench: stop postgres:", err)
		}
		os.RemoveAll(dir)
	}, nil
}

// servePoolConns is the pool size `tessera serve` uses unless its database URL sets
// pool_max_conns (cmd/tessera/platform.go); both sides get a pool sized like that.
const servePoolConns = 32

// newPool opens a pool sized like tessera serve's, counting statements.
func (e *env) newPool(ctx context.Context, counter *stmtCounter) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(e.url)
	if err != nil {
		return nil, err
	}
	switch {
	case e.cfg.poolMax > 0:
		cfg.MaxConns = int32(e.cfg.poolMax)
	case cfg.MaxConns < servePoolConns && !strings.Contains(e.url, "pool_max_conns"):
		cfg.MaxConns = servePoolConns
	}
	cfg.ConnConfig.Tracer = counter
	return pgxpool.NewWithConfig(ctx, cfg)
}

// startTessera serves the real HTTP stack, wired as `tessera serve` wires it (without
// Temporal), on a loopback port, and logs in.
func (e *env) startTessera(ctx context.Context) (func(), error) {
	e.tesseraStmts = &stmtCounter{}
	pool, err := e.newPool(ctx, e.tesseraStmts)
	if err != nil {
		return nil, err
	}
	e.tesseraPool = pool
	// JSON logs at info like serve, formatted but discarded (the bench measures the
	// server, not the terminal); warnings and errors also go to stderr.
	log := slog.New(slog.NewMultiHandler(
		slog.NewJSONHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}),
		slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	users := auth.NewService(pool)
	if _, _, err := users.Bootstrap(ctx, adminEmail, adminPassword); err != nil {
		pool.Close()
		return nil, err
	}
	eng := engine.New(pool, log)
	e.engine, e.users, e.log = eng, users, log
	listenCtx, stopListen := context.WithCancel(context.Background())
	go eng.Listen(listenCtx)
	base, stopApp, err := e.serve(eng)
	if err != nil {
		stopListen()
		pool.Close()
		return nil, err
	}
	e.tessera = base
	stop := func() {
		stopApp()
		stopListen()
		pool.Close()
	}
	var out struct {
		Token string `json:"token"`
	}
	body, _ := json.Marshal(map[string]string{"email": adminEmail, "password": adminPassword})
	if err := e.call(ctx, "POST", e.tessera+"/api/v1/auth/login", body, "application/json", 200, &out); err != nil {
		stop()
		return nil, fmt.Errorf("log in: %w", err)
	}
	e.token = out.Token
	return stop, nil
}

// serve runs Tessera's HTTP stack over an engine on Tessera's pool, on a loopback port,
// and returns its base URL.
func (e *env) serve(eng *engine.Engine) (string, func(), error) {
	app := web.New(web.Deps{Pool: e.tesseraPool, Auth: e.users, Engine: eng, Logger: e.log, Registry: prometheus.NewRegistry()})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	go func() { _ = app.Listener(ln) }()
	base := "http://" + ln.Addr().String()
	e.servers = append(e.servers, base+"/")
	return base, func() { _ = app.ShutdownWithTimeout(10 * time.Second) }, nil
}

func (e *env) startBaseline(ctx context.Context) (func(), error) {
	e.baselineStmts = &stmtCounter{}
	pool, err := e.newPool(ctx, e.baselineStmts)
	if err != nil {
		return nil, err
	}
	e.baselinePool = pool
	addr, stop, err := startBaselineServer(pool, e.baselineStmts)
	if err != nil {
		pool.Close()
		return nil, err
	}
	e.baseline = "http://" + addr
	return func() {
		stop()
		pool.Close()
	}, nil
}

// call makes one setup request to Tessera (with the bearer token) or the baseline and
// decodes the answer.
func (e *env) call(ctx context.Context, method, target string, body []byte, contentType string, want int, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	return e.do(req, want, out)
}

// do sends a request, adding the bearer token for Tessera (unless it has credentials of
// its own), checks the status and decodes the JSON answer into out (when not nil).
func (e *env) do(req *http.Request, want int, out any) error {
	isTessera := slices.ContainsFunc(e.servers, func(base string) bool { return strings.HasPrefix(req.URL.String(), base) })
	if e.token != "" && isTessera && req.Header.Get("Authorization") == "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: status %d, want %d: %s", req.Method, req.URL, resp.StatusCode, want, truncate(string(data), 500))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("%s %s: decode: %w", req.Method, req.URL, err)
		}
	}
	return nil
}

// putEntity creates an entity through the API.
func (e *env) putEntity(ctx context.Context, name, def string) error {
	return e.call(ctx, "PUT", e.tessera+"/api/v1/entities/"+name, []byte(def), "application/json", 201, nil)
}

// stmtCounter is a pgx tracer counting the statements a pool sends (a batch counts each
// of its statements, a COPY counts one). While capturing it also keeps them, to show
// what one request sends.
type stmtCounter struct {
	n         atomic.Int64
	capturing atomic.Bool
	mu        sync.Mutex
	captured  []capturedStmt
}

type capturedStmt struct {
	SQL      string
	Args     []any
	start    time.Time
	Duration time.Duration // from sending to the last result row read (0: not known)
}

// capturedKey carries the index of a captured statement from start to end.
type capturedKey struct{}

func (s *stmtCounter) add(ctx context.Context, sql string, args []any) context.Context {
	s.n.Add(1)
	if !s.capturing.Load() {
		return ctx
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.captured = append(s.captured, capturedStmt{SQL: sql, Args: args, start: time.Now()})
	return context.WithValue(ctx, capturedKey{}, len(s.captured)-1)
}

func (s *stmtCounter) end(ctx context.Context) {
	i, ok := ctx.Value(capturedKey{}).(int)
	if !ok {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if i < len(s.captured) {
		s.captured[i].Duration = time.Since(s.captured[i].start)
	}
}

// capture runs fn and returns the statements sent meanwhile.
func (s *stmtCounter) capture(fn func() error) ([]capturedStmt, error) {
	s.mu.Lock()
	s.captured = nil
	s.mu.Unlock()
	s.capturing.Store(true)
	err := fn()
	s.capturing.Store(false)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.captured, err
}

func (s *stmtCounter) TraceQueryStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceQueryStartData) context.Context {
	return s.add(ctx, d.SQL, d.Args)
}
func (s *stmtCounter) TraceQueryEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceQueryEndData) {
	s.end(ctx)
}
func (s *stmtCounter) TraceBatchStart(ctx context.Context, _ *pgx.Conn, _ pgx.TraceBatchStartData) context.Context {
	return ctx
}
func (s *stmtCounter) TraceBatchQuery(ctx context.Context, _ *pgx.Conn, d pgx.TraceBatchQueryData) {
	s.add(ctx, d.SQL, d.Args)
}
func (s *stmtCounter) TraceBatchEnd(context.Context, *pgx.Conn, pgx.TraceBatchEndData) {}
func (s *stmtCounter) TraceCopyFromStart(ctx context.Context, _ *pgx.Conn, d pgx.TraceCopyFromStartData) context.Context {
	return s.add(ctx, "COPY "+d.TableName.Sanitize()+" FROM STDIN", nil)
}
func (s *stmtCounter) TraceCopyFromEnd(ctx context.Context, _ *pgx.Conn, _ pgx.TraceCopyFromEndData) {
	s.end(ctx)
}

// statementList renders captured statements as a numbered, shortened list; a run of
// the same statement is one item with its count and total time.
func statementList(stmts []capturedStmt) string {
	var b strings.Builder
	for i, n := 0, 1; i < len(stmts); n++ {
		j, took := i, time.Duration(0)
		for ; j < len(stmts) && stmts[j].SQL == stmts[i].SQL; j++ {
			took += stmts[j].Duration
		}
		times := ""
		if j-i > 1 {
			times = fmt.Sprintf(" ×%d", j-i)
		}
		if took > 0 {
			times += " — " + ms(took)
		}
		fmt.Fprintf(&b, "%d. `%s`%s\n", n, shortSQL(stmts[i].SQL, 90), times)
		i = j
	}
	return b.String()
}

func shortSQL(sql string, n int) string {
	return truncate(strings.Join(strings.Fields(sql), " "), n)
}

// machine describes where the run happened.
type machine struct {
	CPUs       int
	CPUModel   string
	RAM        string
	Go         string
	Postgres   string
	PGSettings string
	Database   string
	PoolConns  int32
	// ListenConns are the connections Tessera's pool has checked out while idle: the
	// entity-change listener's.
	ListenConns int32
	PoolSet     bool
	Code        string // the commit measured
}

func describeMachine(ctx context.Context, e *env) (machine, error) {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), CPUModel: "unknown", RAM: "unknown",
		PoolConns: e.tesseraPool.Config().MaxConns, ListenConns: e.tesseraPool.Stat().AcquiredConns(), PoolSet: e.cfg.poolMax > 0}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "MemTotal:"); ok {
				kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				m.RAM = fmt.Sprintf("%.1f GiB", kb/(1<<20))
			}
		}
	}
	if err := e.tesseraPool.QueryRow(ctx, "SELECT current_setting('server_version')").Scan(&m.Postgres); err != nil {
		return m, err
	}
	var sb, sc, fs string
	if err := e.tesseraPool.QueryRow(ctx, "SELECT current_setting('shared_buffers'), current_setting('synchronous_commit'), current_setting('fsync')").Scan(&sb, &sc, &fs); err != nil {
		return m, err
	}
	m.PGSettings = fmt.Sprintf("shared_buffers=%s, synchronous_commit=%s, fsync=%s", sb, sc, fs)
	m.Code = codeVersion()
	m.Database = "private cluster started by internal/pgserver in a temp dir"
	if e.pgPID == 0 {
		m.Database = "fresh database on BENCH_DATABASE_URL's server"
	}
	return m, nil
}

// codeVersion names the commit the bench runs on and whether the working tree differs
// from it (bench/ aside).
func codeVersion() string {
	rev, err := exec.Command("git", "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return "unknown (not a git checkout)"
	}
	out, err := exec.Command("git", "status", "--porcelain").Output()
	if err != nil {
		return "commit " + strings.TrimSpace(string(rev))
	}
	changed := 0
	for _, line := range strings.Split(string(out), "\n") {
		if len(line) > 3 && !strings.HasPrefix(line[3:], "bench/") {
			changed++
		}
	}
	if changed == 0 {
		return "commit " + strings.TrimSpace(string(rev)) + ", clean working tree"
	}
	return fmt.Sprintf("commit %s plus uncommitted changes to %d files", strings.TrimSpace(string(rev)), changed)
}

func progress(msg string) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05"), msg)
}

func printSection(w io.Writer, s section) {
	fmt.Fprintf(w, "\n== %s ==\n", s.Title)
	printTable(w, s.Table)
	if len(s.Detail) > 1 {
		fmt.Fprintln(w, "\nevery run:")
		printTable(w, s.Detail)
	}
	for _, n := range s.Notes {
		fmt.Fprintln(w, "\n"+n)
	}
}

func printTable(w io.Writer, rows [][]string) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	tw.Flush()
}

func markdownTable(b *strings.Builder, rows [][]string) {
	for i, r := range rows {
		b.WriteString("| " + strings.Join(r, " | ") + " |\n")
		if i == 0 {
			b.WriteString("|" + strings.Repeat("---|", len(r)) + "\n")
		}
	}
}

func writeMarkdown(path string, m machine, sections []section, started time.Time) error {
	old, err := os.ReadFile(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	var out string
	if preamble, kept := splitMarkdown(string(old)); err == nil && keepsOthers(kept, sections) {
		out = mergeMarkdown(preamble, kept, sections, runLine(m, started))
	} else {
		var b strings.Builder
		writeHeader(&b, m, started)
		for _, s := range sections {
			writeSection(&b, s, "")
		}
		out = b.String()
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return err
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// writeHeader describes the run of every section written without a run line of its own.
func writeHeader(b *strings.Builder, m machine, started time.Time) {
	b.WriteString("# Tessera benchmarks\n\n")
	b.WriteString("Tessera and a baseline run side by side on the same machine in one run; the ratio is what\n")
	b.WriteString("matters (absolute numbers move with the machine and whatever else it is doing). Written by\n")
	b.WriteString("`go run ./bench`; rerun it to refresh this file.\n\n")
	fmt.Fprintf(b, "- **Date:** %s\n", started.UTC().Format("2006-01-02 15:04 MST"))
	fmt.Fprintf(b, "- **Command:** `%s`\n", commandLine())
	fmt.Fprintf(b, "- **Code:** %s\n", m.Code)
	fmt.Fprintf(b, "- **Machine:** %d CPUs (nproc), %s, %s RAM\n", m.CPUs, m.CPUModel, m.RAM)
	fmt.Fprintf(b, "- **Go:** %s; **PostgreSQL:** %s (%s; %s)\n", m.Go, m.Postgres, m.Database, m.PGSettings)
	fmt.Fprintf(b, "- **Pools:** %s\n", poolText(m))
	b.WriteString("- **Load:** a Go HTTP client in the same process (keep-alive, one connection per client) drives both\n")
	b.WriteString("  servers over loopback TCP; latency is measured per request, client side. Each side runs\n")
	b.WriteString("  alternately (baseline, Tessera, baseline, Tessera, …) and the best run of each is reported.\n")
	b.WriteString("  \"Go CPU/op\" is the bench process's CPU time per request (server *and* load generator);\n")
	b.WriteString("  \"PG CPU/op\" is the CPU time of the PostgreSQL server processes (private cluster only).\n\n")
}

func poolText(m machine) string {
	origin := "sized as `tessera serve` sizes its pool"
	if m.PoolSet {
		origin = "set with -pool-max-conns"
	}
	return fmt.Sprintf("each side has its own pgxpool with max %d connections (%s); while idle, Tessera's has %d "+
		"of them checked out (`engine.Listen` holds one for LISTEN), so its requests share the rest", m.PoolConns, origin, m.ListenConns)
}

// runLine describes this run under a section merged into a file that describes another.
func runLine(m machine, started time.Time) string {
	return fmt.Sprintf("**Run:** %s; command `%s`; %s; %d CPUs (nproc), %s, %s RAM; Go %s; PostgreSQL %s (%s; %s). "+
		"Pools: %s. Load as described at the top of this file.",
		started.UTC().Format("2006-01-02 15:04 MST"), commandLine(), m.Code, m.CPUs, m.CPUModel, m.RAM, m.Go, m.Postgres,
		m.Database, m.PGSettings, poolText(m))
}

func writeSection(b *strings.Builder, s section, run string) {
	fmt.Fprintf(b, "## %s\n\n", s.Title)
	if run != "" {
		b.WriteString(run + "\n\n")
	}
	if s.Intro != "" {
		b.WriteString(s.Intro + "\n\n")
	}
	markdownTable(b, s.Table)
	if len(s.Summary) > 0 {
		b.WriteString("\n```\n" + strings.Join(s.Summary, "\n") + "\n```\n")
	}
	if len(s.Detail) > 1 {
		b.WriteString("\n<details><summary>Every run</summary>\n\n")
		markdownTable(b, s.Detail)
		b.WriteString("\n</details>\n")
	}
	if len(s.Notes) > 0 {
		b.WriteString("\n**What limits it.** ")
		b.WriteString(strings.Join(s.Notes, "\n\n") + "\n")
	}
	b.WriteString("\n")
}

// markdownSection is one "## name: …" section of an existing results file.
type markdownSection struct {
	name, text string
}

// splitMarkdown cuts a results file into what precedes the first section and its
// sections, each named by its title up to the colon.
func splitMarkdown(doc string) (preamble string, sections []markdownSection) {
	lines := strings.SplitAfter(doc, "\n")
	i := 0
	for ; i < len(lines) && !strings.HasPrefix(lines[i], "## "); i++ {
		preamble += lines[i]
	}
	for i < len(lines) {
		title := strings.TrimPrefix(lines[i], "## ")
		name, _, _ := strings.Cut(title, ":")
		sec := markdownSection{name: strings.TrimSpace(name), text: lines[i]}
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "## "); i++ {
			sec.text += lines[i]
		}
		sections = append(sections, sec)
	}
	return preamble, sections
}

// keepsOthers tells whether a results file has sections of benchmarks this run did
// not run, which a merge keeps.
func keepsOthers(kept []markdownSection, sections []section) bool {
	for _, k := range kept {
		if !slices.ContainsFunc(sections, func(s section) bool { return s.Name == k.name }) {
			return true
		}
	}
	return false
}

// separateMarker starts the header line naming the sections measured in other runs.
const separateMarker = "- **Measured separately:**"

// mergeMarkdown replaces the sections of the benchmarks run now and adds the new ones
// (in the order benchmarks run), each with this run's description, and keeps the rest.
// The header keeps describing the run of the sections without a run line of their own.
func mergeMarkdown(preamble string, kept []markdownSection, sections []section, run string) string {
	fresh := map[string]string{}
	for _, s := range sections {
		var b strings.Builder
		writeSection(&b, s, run)
		fresh[s.Name] = b.String()
	}
	var all []markdownSection
	for _, k := range kept {
		if text, ok := fresh[k.name]; ok {
			k.text = text
			delete(fresh, k.name)
		}
		all = append(all, k)
	}
	for _, name := range benchmarks {
		if text, ok := fresh[name]; ok {
			all = append(all, markdownSection{name: name, text: text})
		}
	}
	var separate []string
	for _, s := range all {
		if strings.Contains(s.text, "\n**Run:** ") {
			separate = append(separate, s.name)
		}
	}
	note := fmt.Sprintf("%s %s: each of these sections starts with a **Run** line describing the run it comes from "+
		"(merged into this file by `-out`, which keeps the sections of benchmarks a run did not run); the lines above "+
		"describe the run of the other sections.\n", separateMarker, strings.Join(separate, ", "))
	var head []string
	placed := false
	for _, line := range strings.SplitAfter(preamble, "\n") {
		if strings.HasPrefix(line, separateMarker) {
			line, placed = note, true
		}
		head = append(head, line)
	}
	if !placed {
		// After the header's list: its last line starting with "- " or continuing one.
		at := len(head)
		for i, line := range head {
			if strings.HasPrefix(line, "- ") || (strings.HasPrefix(line, "  ") && i > 0) {
				at = i + 1
			}
		}
		head = slices.Insert(head, at, note)
	}
	var b strings.Builder
	b.WriteString(strings.Join(head, ""))
	for _, s := range all {
		b.WriteString(s.text)
	}
	return b.String()
}

// commandLine is how this run was started, as a user would type it.
func commandLine() string {
	parts := []string{"go run ./bench"}
	for _, a := range os.Args[1:] {
		if strings.ContainsAny(a, " \t\"'$&|;<>*?") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	if os.Getenv("BENCH_DATABASE_URL") != "" {
		parts = append([]string{"BENCH_DATABASE_URL=…"}, parts...)
	}
	return strings.Join(parts, " ")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
