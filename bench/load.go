package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// side names which server a run drove.
type side string

const (
	tesseraSide  side = "tessera"
	baselineSide side = "baseline"
)

// requestFunc builds the next request of a worker; rng is the worker's own.
type requestFunc func(ctx context.Context, worker int, rng *rand.Rand) (*http.Request, error)

// result is the outcome of one measured run.
type result struct {
	Side     side
	Label    string // e.g. "c=8"
	Round    int
	Clients  int
	Requests int    // requests answered with the wanted status
	Errors   int    // any other outcome
	FirstErr string // the first of them
	Elapsed  time.Duration
	Latency  []time.Duration // sorted, successful requests only
	Units    float64         // work done (rows for import); Requests when zero
	Cost     cost
	Warmup   int // requests sent during the warm-up before the measured run
}

// cost is what a run consumed, for the "what limits it" notes.
type cost struct {
	GoCPU time.Duration // CPU time of this process
	PGCPU time.Duration // CPU time of the PostgreSQL server processes (-1: unknown)
	Stmts int64         // SQL statements sent by the side's pool
	// Connection acquisitions from the side's pool, how many found no idle connection,
	// and the total time spent waiting for one.
	Acquires, EmptyAcquires int64
	AcquireWait             time.Duration
	// Machine-wide CPU time from /proc/stat, in ticks: busy and total (busy + idle).
	MachineBusy, MachineTotal int64
}

func (r result) Throughput() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	if r.Units > 0 {
		return r.Units / r.Elapsed.Seconds()
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

// Percentile is the nearest-rank percentile (q in 0..1) of the successful requests.
func (r result) Percentile(q float64) time.Duration {
	return percentile(r.Latency, q)
}

// Mean is the mean time of the successful requests.
func (r result) Mean() time.Duration {
	if len(r.Latency) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range r.Latency {
		sum += d
	}
	return sum / time.Duration(len(r.Latency))
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// perOp divides a run's costs by its requests.
func (r result) perOp() (goCPU, pgCPU time.Duration, stmts float64) {
	n := max(r.Requests+r.Errors, 1)
	goCPU = r.Cost.GoCPU / time.Duration(n)
	pgCPU = -1
	if r.Cost.PGCPU >= 0 {
		pgCPU = r.Cost.PGCPU / time.Duration(n)
	}
	return goCPU, pgCPU, float64(r.Cost.Stmts) / float64(n)
}

// load drives clients concurrent workers against a server: an unmeasured warm-up, then a
// measured run of the given duration. Each worker has its own keep-alive connection.
func (e *env) load(ctx context.Context, s side, clients int, warmup, duration time.Duration, next requestFunc, want int) (result, error) {
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, DisableCompression: true, IdleConnTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	warm := 0
	if warmup > 0 {
		w, err := e.drive(ctx, client, s, clients, warmup, next, want)
		if err != nil {
			return result{}, err
		}
		warm = w.Requests + w.Errors
	}
	r, err := e.drive(ctx, client, s, clients, duration, next, want)
	r.Warmup = warm
	return r, err
}

func (e *env) drive(ctx context.Context, client *http.Client, s side, clients int, duration time.Duration, next requestFunc, want int) (result, error) {
	type workerResult struct {
		lat      []time.Duration
		errors   int
		firstErr string
	}
	results := make([]workerResult, clients)
	before := e.sample(s)
	start := time.Now()
	deadline := start.Add(duration)
	var wg sync.WaitGroup
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res := &results[w]
			rng := rand.New(rand.NewPCG(uint64(w)+1, uint64(start.UnixNano())))
			buf := make([]byte, 32<<10)
			for ctx.Err() == nil && time.Now().Before(deadline) {
				req, err := next(ctx, w, rng)
				if err != nil {
					res.errors++
					if res.firstErr == "" {
						res.firstErr = err.Error()
					}
					continue
				}
				// Every side but the baseline is a Tessera server; a request that brings
				// its own credentials (another user's) keeps them.
				if s != baselineSide && req.Header.Get("Authorization") == "" {
					req.Header.Set("Authorization", "Bearer "+e.token)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				var status int
				var head []byte
				if err == nil {
					status = resp.StatusCode
					n, _ := io.ReadFull(resp.Body, buf)
					head = buf[:n]
					_, err = io.CopyBuffer(io.Discard, resp.Body, buf)
					resp.Body.Close()
				}
				lat := time.Since(t0)
				switch {
				case err != nil:
					res.errors++
					if res.firstErr == "" {
						res.firstErr = err.Error()
					}
				case status != want:
					res.errors++
					if res.firstErr == "" {
						res.firstErr = fmt.Sprintf("status %d: %s", status, truncate(string(head), 300))
					}
				default:
					res.lat = append(res.lat, lat)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	after := e.sample(s)
	r := result{Side: s, Clients: clients, Elapsed: elapsed, Cost: after.minus(before)}
	for _, res := range results {
		r.Latency = append(r.Latency, res.lat...)
		r.Errors += res.errors
		if r.FirstErr == "" {
			r.FirstErr = res.firstErr
		}
	}
	slices.Sort(r.Latency)
	r.Requests = len(r.Latency)
	return r, ctx.Err()
}

// sample reads the CPU clocks and the statement counter of a side (every side but the
// baseline is served from Tessera's pool).
func (e *env) sample(s side) cost {
	c := cost{GoCPU: selfCPU(), PGCPU: postgresCPU(e.pgPID)}
	pool := e.tesseraPool
	c.Stmts = e.tesseraStmts.n.Load()
	if s == baselineSide {
		pool = e.baselinePool
		c.Stmts = e.baselineStmts.n.Load()
	}
	c.MachineBusy, c.MachineTotal = machineCPU()
	st := pool.Stat()
	c.Acquires, c.EmptyAcquires, c.AcquireWait = st.AcquireCount(), st.EmptyAcquireCount(), st.AcquireDuration()
	return c
}

func (c cost) minus(o cost) cost {
	d := cost{GoCPU: c.GoCPU - o.GoCPU, PGCPU: -1, Stmts: c.Stmts - o.Stmts,
		Acquires: c.Acquires - o.Acquires, EmptyAcquires: c.EmptyAcquires - o.EmptyAcquires, AcquireWait: c.AcquireWait - o.AcquireWait,
		MachineBusy: c.MachineBusy - o.MachineBusy, MachineTotal: c.MachineTotal - o.MachineTotal}
	if c.PGCPU >= 0 && o.PGCPU >= 0 {
		d.PGCPU = c.PGCPU - o.PGCPU
	}
	return d
}

func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// machineCPU reads the busy and total CPU ticks of the whole machine from /proc/stat.
func machineCPU() (busy, total int64) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0, 0
	}
	var idle int64
	for k := 1; k <= 8; k++ { // user nice system idle iowait irq softirq steal
		v, _ := strconv.ParseInt(f[k], 10, 64)
		total += v
		if k == 4 || k == 5 {
			idle += v
		}
	}
	return total - idle, total
}

// clockTick is USER_HZ, the unit of /proc/<pid>/stat times (100 on every Linux build
// that matters).
const clockTick = 10 * time.Millisecond

// postgresCPU is the CPU time of the postmaster, its live children (backends,
// background workers) and the children it has already reaped; -1 when unknown.
func postgresCPU(postmaster int) time.Duration {
	if postmaster <= 0 {
		return -1
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return -1
	}
	var ticks int64
	for _, ent := range entries {
		pid, err := strconv.Atoi(ent.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", ent.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command name is in parentheses and may contain spaces.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 15 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		if pid != postmaster && ppid != postmaster {
			continue
		}
		for _, k := range []int{11, 12} { // utime, stime
			v, _ := strconv.ParseInt(f[k], 10, 64)
			ticks += v
		}
		if pid == postmaster {
			for _, k := range []int{13, 14} { // cutime, cstime: exited backends and workers
				v, _ := strconv.ParseInt(f[k], 10, 64)
				ticks += v
			}
		}
	}
	return time.Duration(ticks) * clockTick
}

// busy is the CPU a run used as a share of the machine's capacity: the bench process,
// PostgreSQL (-1 when unknown) and everything that ran on the machine meanwhile.
func (r result) busy() (goShare, pgShare, machine float64) {
	capacity := r.Elapsed.Seconds() * float64(runtime.NumCPU())
	goShare, pgShare, machine = r.Cost.GoCPU.Seconds()/capacity, -1, -1
	if r.Cost.PGCPU >= 0 {
		pgShare = r.Cost.PGCPU.Seconds() / capacity
	}
	if r.Cost.MachineTotal > 0 {
		machine = float64(r.Cost.MachineBusy) / float64(r.Cost.MachineTotal)
	}
	return goShare, pgShare, machine
}

// busyText renders busy() as "bench / PG / machine".
func (r result) busyText() string {
	g, p, m := r.busy()
	return pct(g) + " / " + pct(p) + " / " + pct(m)
}

// poolWait is the average wait for a pool connection per acquisition and the share of
// acquisitions that had to wait.
func (r result) poolWait() (avg time.Duration, waited float64) {
	if r.Cost.Acquires == 0 {
		return 0, 0
	}
	return r.Cost.AcquireWait / time.Duration(r.Cost.Acquires), float64(r.Cost.EmptyAcquires) / float64(r.Cost.Acquires)
}

func pct(f float64) string {
	if f < 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", 100*f)
}

// profile starts a CPU profile when -cpuprofile is set; the returned func stops it and
// keeps a summary for the notes.
func (e *env) profile(name string) (func(), error) {
	if e.cfg.cpuprofile == "" {
		return func() {}, nil
	}
	path := e.cfg.cpuprofile + "." + name + ".pprof"
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		progress("CPU profile of the Tessera side: " + path)
		if e.profiles == nil {
			e.profiles = map[string]string{}
			e.profilePaths = map[string]string{}
		}
		e.profiles[name] = profileSummary(path)
		e.profilePaths[name] = path
	}, nil
}

// profileShow picks the frames worth naming in a summary: Tessera's own code, schema
// validation, JSON, pgx round trips, the HTTP server and client, and the GC.
const profileShow = `tessera/tessera/(web|engine)|santhosh-tekuri/jsonschema/v6\.\(\*Schema\)\.Validate$|` +
	`encoding/json\.(Marshal|Unmarshal)$|pgx/v5\.\(\*Conn\)\.(Query|Exec|CopyFrom)$|fasthttp\.\(\*Server\)\.serveConn$|` +
	`net/http\.\(\*Transport\)\.RoundTrip$|runtime\.gcBgMarkWorker$`

// profileSummary is the cumulative top of a profile, limited to profileShow, from
// `go tool pprof` ("" when the go command is not at hand).
func profileSummary(path string) string {
	return profileTop(path, profileShow, 18)
}

// profileTop is the cumulative top n of a profile, limited to the frames matching show.
func profileTop(path, show string, n int) string {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", fmt.Sprintf("-nodecount=%d", n), "-show="+show, path).Output()
	if err != nil {
		return ""
	}
	var keep []string
	table := false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Duration:"):
			keep = append(keep, line)
		case len(f) > 0 && f[0] == "flat":
			keep = append(keep, fmt.Sprintf("%6s %8s  %s", "cum%", "cum", "function"))
			table = true
		case table && len(f) >= 6:
			keep = append(keep, fmt.Sprintf("%6s %8s  %s", f[4], f[3], strings.Join(f[5:], " ")))
		}
	}
	return strings.Join(keep, "\n")
}

// profileNote presents the summary of a profile, if one was taken.
func (e *env) profileNote(name string) []string {
	sum := e.profiles[name]
	if sum == "" {
		return nil
	}
	return []string{"Go CPU profile of the last Tessera run (" + name + "; `-cpuprofile`), cumulative, limited to the frames " +
		"that say where time goes (each includes what it calls); percentages are of all samples of the bench process, " +
		"the load generator's included:\n\n```\n" +
		sum + "\n```"}
}

// cpuVerdict compares the CPU per unit of work of both sides with their throughput: when
// the throughput ratio is close to the inverse CPU ratio, CPU is what limits it.
func cpuVerdict(t, b result, unit string) string {
	tGo, tPG, _ := t.perOp()
	bGo, bPG, _ := b.perOp()
	_, _, tm := t.busy()
	_, _, bm := b.busy()
	if tPG < 0 || bPG < 0 || tm < 0 {
		return ""
	}
	tt, bt := tGo+tPG, bGo+bPG
	return fmt.Sprintf("Tessera needs %s of CPU per %s (bench process + PostgreSQL), the baseline %s, so CPU alone "+
		"predicts a throughput ratio of %.2f; the measured ratio is %.2f, with the whole machine %s busy during Tessera's "+
		"run and %s during the baseline's (other work on the machine included).",
		ms(tt), unit, ms(bt), float64(bt)/float64(tt), t.Throughput()/b.Throughput(), pct(tm), pct(bm))
}

// best picks the run of a side with the highest throughput (or, with lowest, the lowest p99).
func best(runs []result, s side, label string, lowestP99 bool) result {
	var out result
	found := false
	for _, r := range runs {
		if r.Side != s || r.Label != label {
			continue
		}
		better := r.Throughput() > out.Throughput()
		if lowestP99 {
			better = r.Percentile(0.99) < out.Percentile(0.99)
		}
		if !found || better {
			out, found = r, true
		}
	}
	return out
}

// detailRows lists every run for the "every run" table.
func detailRows(runs []result, unit string) [][]string {
	rows := [][]string{{"run", "side", "round", "ok", "errors", unit, "p50", "p99", "Go CPU/op", "PG CPU/op", "CPU busy bench / PG / machine", "SQL stmts/op", "pool wait/acquire"}}
	for _, r := range runs {
		goCPU, pgCPU, stmts := r.perOp()
		wait, waited := r.poolWait()
		rows = append(rows, []string{r.Label, string(r.Side), strconv.Itoa(r.Round),
			strconv.Itoa(r.Requests), strconv.Itoa(r.Errors), fmt.Sprintf("%.0f", r.Throughput()),
			ms(r.Percentile(0.5)), ms(r.Percentile(0.99)), ms(goCPU), ms(pgCPU),
			r.busyText(), fmt.Sprintf("%.1f", stmts), fmt.Sprintf("%s (%s waited)", ms(wait), pct(waited))})
	}
	return rows
}

// ms renders a duration in milliseconds with sensible precision; negative is unknown.
func ms(d time.Duration) string {
	switch {
	case d < 0:
		return "n/a"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/1e6)
	case d < 100*time.Millisecond:
		return fmt.Sprintf("%.1f ms", float64(d)/1e6)
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	}
	return fmt.Sprintf("%.0f ms", float64(d)/1e6)
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// profileFrame is one function's cumulative CPU time in a profile.
type profileFrame struct {
	Name string
	Cum  time.Duration
}

// profileCum is the cumulative CPU time of the frames of a profile matching show, most
// first (nil when the go command is not at hand).
func profileCum(path, show string) []profileFrame {
	out, err := exec.Command("go", "tool", "pprof", "-top", "-cum", "-nodecount=40", "-show="+show, path).Output()
	if err != nil {
		return nil
	}
	var frames []profileFrame
	table := false
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		switch {
		case len(f) > 0 && f[0] == "flat":
			table = true
		case table && len(f) >= 6:
			d, err := time.ParseDuration(f[3])
			if err != nil {
				continue
			}
			frames = append(frames, profileFrame{Name: strings.Join(f[5:], " "), Cum: d})
		}
	}
	return frames
}

// perRequestCPU renders, for the profiled run of each name (see keepProfiled), the CPU
// time per request of the frames matching show: frame rows, one column per run.
func (e *env) perRequestCPU(names []string, show string, shorten func(string) string) [][]string {
	header := []string{"CPU per request in (cumulative)"}
	cum := map[string][]time.Duration{}
	var order []string
	for col, name := range names {
		path, r := e.profilePaths[name], e.profiledRuns[name]
		if path == "" {
			return nil
		}
		header = append(header, string(r.Side))
		for _, f := range profileCum(path, show) {
			key := shorten(f.Name)
			if _, ok := cum[key]; !ok {
				cum[key] = make([]time.Duration, len(names))
				order = append(order, key)
			}
			// The profile covers the warm-up too: divide by all its requests.
			cum[key][col] += f.Cum / time.Duration(max(r.Requests+r.Errors+r.Warmup, 1))
		}
	}
	rows := [][]string{header}
	for _, key := range order {
		row := []string{"`" + key + "`"}
		for _, d := range cum[key] {
			if d == 0 {
				row = append(row, "–")
			} else {
				row = append(row, usec(d))
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// usec renders a short duration in microseconds (milliseconds from 10 ms).
func usec(d time.Duration) string {
	if d >= 10*time.Millisecond {
		return ms(d)
	}
	return fmt.Sprintf("%.0f µs", float64(d)/1e3)
}

// keepProfiled remembers the run a profile was taken of (its requests, warm-up included,
// are what the profile's times are divided by).
func (e *env) keepProfiled(name string, r result) {
	if e.profiledRuns == nil {
		e.profiledRuns = map[string]result{}
	}
	e.profiledRuns[name] = r
}

// frameCPU is the CPU per request (warm-up included) a profiled run spent in the first
// frame matching show; -1 when not profiled.
func (e *env) frameCPU(name, show string) time.Duration {
	path, r := e.profilePaths[name], e.profiledRuns[name]
	if path == "" {
		return -1
	}
	frames := profileCum(path, show)
	if len(frames) == 0 {
		return 0
	}
	return frames[0].Cum / time.Duration(max(r.Requests+r.Errors+r.Warmup, 1))
}
