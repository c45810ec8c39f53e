package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/script"
)

// The hooks benchmark creates the same small order through the same HTTP stack four
// ways: with no hook, with a Go hook computing its total, with a goja script hook doing
// the same from the engine's runtime pool, and with that script on a fresh runtime per
// call. It compares Tessera with itself, so the ratios are the result.

// hookScriptName is the stored script of the goja variants; hookSource its source.
const (
	hookScriptName = "bench_order_total"
	hookSource     = `record.total = decimal(record.price).mul(record.qty).toFixed(2)`
)

// hookOrderDef is the entity of one variant: qty × price = total, the total read-only
// (set by the hook, never by the client).
func hookOrderDef(name, hook string) string {
	hooks := ""
	if hook != "" {
		hooks = fmt.Sprintf(`, "hooks": {"beforeSave": %q}`, hook)
	}
	return fmt.Sprintf(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "x-entity": {"name": %q, "label": {"en": "Hooked order"}, "titleField": "title"%s},
  "required": ["title", "qty", "price"],
  "properties": {
    "title": {"type": "string", "minLength": 1, "maxLength": 200, "x-field-id": "h1"},
    "qty":   {"type": "integer", "minimum": 1, "x-field-id": "h2"},
    "price": {"type": "string", "format": "money", "x-currency": "EUR", "x-field-id": "h3"},
    "total": {"type": "string", "format": "money", "x-currency": "EUR", "readOnly": true, "x-field-id": "h4"}
  }
}`, name, hooks)
}

// hookVariant is one way of creating the order.
type hookVariant struct {
	side    side
	entity  string
	hook    string // script hook of the entity ("" for none)
	profile string // name of its CPU profile
	what    string
	base    string // base URL of the server it is sent to
}

// goTotal is the Go hook: total = qty × price, exactly, to the cent.
func goTotal(_ context.Context, ev *engine.HookEvent) error {
	qty, err := decimalOf(ev.Record["qty"])
	if err != nil {
		return err
	}
	price, err := decimalOf(ev.Record["price"])
	if err != nil {
		return err
	}
	ev.Record["total"] = price.Mul(qty).StringFixed(2)
	return nil
}

func decimalOf(v any) (decimal.Decimal, error) {
	switch x := v.(type) {
	case string:
		return decimal.NewFromString(x)
	case json.Number:
		return decimal.NewFromString(x.String())
	case nil:
		return decimal.Zero, nil
	}
	return decimal.Zero, fmt.Errorf("not a number: %v", v)
}

// hookOrderJSON is one order; every variant gets the same kind of body.
func hookOrderJSON(rng *rand.Rand) []byte {
	cents := 100 + rng.IntN(1_000_000)
	return fmt.Appendf(nil, `{"title": "%s %s", "qty": %d, "price": "%d.%02d"}`,
		words[rng.IntN(len(words))], products[rng.IntN(len(products))], 1+rng.IntN(500), cents/100, cents%100)
}

func (e *env) benchHooks(ctx context.Context) (section, error) {
	progress("hooks: setting up")
	body, _ := json.Marshal(map[string]string{"source": hookSource})
	if err := e.call(ctx, "PUT", e.tessera+"/api/v1/scripts/"+hookScriptName, body, "application/json", 201, nil); err != nil {
		return section{}, err
	}
	// (d) needs the whole engine's runner in fresh mode: a second engine on the same pool
	// and database, served by a second HTTP stack, so all four variants can alternate.
	// It does not listen for definition changes (none happen after setup).
	fresh := engine.New(e.tesseraPool, e.log)
	fresh.Scripts().Fresh = true
	freshURL, stopFresh, err := e.serve(fresh)
	if err != nil {
		return section{}, err
	}
	defer stopFresh()
	variants := []hookVariant{
		{side: "no hook", entity: "bench_hook_none", profile: "hooks-none", base: e.tessera,
			what: "no hook"},
		{side: "Go hook", entity: "bench_hook_go", profile: "hooks-go", base: e.tessera,
			what: "a Go `beforeSave` hook registered with `engine.OnHook` (shopspring/decimal)"},
		{side: "goja pooled", entity: "bench_hook_goja", hook: hookScriptName, profile: "hooks-goja", base: e.tessera,
			what: "the script hook, run on the engine's pool of pre-warmed goja runtimes"},
		{side: "goja fresh", entity: "bench_hook_fresh", hook: hookScriptName, profile: "hooks-fresh", base: freshURL,
			what: "the script hook on a second engine whose runner has `Fresh = true` (a new runtime per call)"},
	}
	for _, v := range variants {
		if err := e.putEntity(ctx, v.entity, hookOrderDef(v.entity, v.hook)); err != nil {
			return section{}, err
		}
	}
	e.engine.OnHook("bench_hook_go", engine.HookBeforeSave, goTotal)

	post := func(target string) requestFunc {
		return func(ctx context.Context, _ int, rng *rand.Rand) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, "POST", target, bytes.NewReader(hookOrderJSON(rng)))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
			}
			return req, err
		}
	}
	target := func(v hookVariant) string { return v.base + "/api/v1/data/" + v.entity }
	// Wait for the definition-change notifications of the PUTs, then one create per
	// variant loads the definitions and the script and shows the total is right.
	select {
	case <-ctx.Done():
		return section{}, ctx.Err()
	case <-time.After(time.Second):
	}
	stmtsOf := map[side][]capturedStmt{}
	for _, v := range variants {
		var rec struct {
			Qty   int64   `json:"qty"`
			Price string  `json:"price"`
			Total *string `json:"total"`
		}
		req := []byte(`{"title": "Acme pumps", "qty": 3, "price": "19.99"}`)
		if err := e.call(ctx, "POST", target(v), req, "application/json", 201, &rec); err != nil {
			return section{}, fmt.Errorf("%s: %w", v.side, err)
		}
		want := "59.97"
		if v.side == "no hook" {
			if rec.Total != nil {
				return section{}, fmt.Errorf("no hook: total %q", *rec.Total)
			}
		} else if rec.Total == nil || *rec.Total != want {
			return section{}, fmt.Errorf("%s: total %v, want %s", v.side, rec.Total, want)
		}
		// A second one, with everything cached, shows the statements of a create.
		stmts, err := e.tesseraStmts.capture(func() error {
			return e.call(ctx, "POST", target(v), req, "application/json", 201, nil)
		})
		if err != nil {
			return section{}, err
		}
		stmtsOf[v.side] = stmts
	}

	const clients = 8
	label := fmt.Sprintf("c=%d", clients)
	warmup := min(time.Second, e.cfg.duration/5)
	var runs []result
	for round := 1; round <= e.cfg.rounds; round++ {
		for _, v := range variants {
			progress(fmt.Sprintf("hooks round %d: %s", round, v.side))
			stopProfile := func() {}
			last := round == e.cfg.rounds
			if last {
				// Every variant's last run is profiled, so all pay the same overhead.
				if stopProfile, err = e.profile(v.profile); err != nil {
					return section{}, err
				}
			}
			r, err := e.load(ctx, v.side, clients, warmup, e.cfg.duration, post(target(v)), 201)
			stopProfile()
			if err != nil {
				return section{}, err
			}
			r.Label, r.Round = label, round
			if last {
				e.keepProfiled(v.profile, r)
			}
			if r.Errors > 0 {
				return section{}, fmt.Errorf("%s: %d of %d requests failed; first: %s", v.side, r.Errors, r.Errors+r.Requests, r.FirstErr)
			}
			runs = append(runs, r)
		}
	}

	// Every stored total is qty × price (none without a hook), and every record has its
	// history and outbox rows.
	var checked []string
	for _, v := range variants {
		var records, wrong, history, outbox int64
		cond := "total IS DISTINCT FROM round(qty * price, 2)"
		if v.side == "no hook" {
			cond = "total IS NOT NULL"
		}
		if err := e.tesseraPool.QueryRow(ctx, fmt.Sprintf(`SELECT (SELECT count(*) FROM data.%[1]s),
			(SELECT count(*) FROM data.%[1]s WHERE %[2]s),
			(SELECT count(*) FROM tessera.record_history WHERE entity = '%[1]s'),
			(SELECT count(*) FROM tessera.outbox WHERE entity = '%[1]s')`, v.entity, cond)).Scan(&records, &wrong, &history, &outbox); err != nil {
			return section{}, err
		}
		if wrong > 0 || records != history || records != outbox {
			return section{}, fmt.Errorf("%s: %d records, %d with a wrong total, %d history and %d outbox rows", v.entity, records, wrong, history, outbox)
		}
		checked = append(checked, fmt.Sprintf("%s %s", thousands(int(records)), v.side))
	}

	progress("hooks: per-call cost in process")
	inProc := hookCallCost()
	progress("hooks: go test -bench ./engine/script/")
	goBench := scriptGoBench(ctx)

	best := make([]result, len(variants))
	for i, v := range variants {
		best[i] = bestOf(runs, v.side, label)
	}
	none, goHook, pooled, freshR := best[0], best[1], best[2], best[3]
	ratio := func(a, b result) float64 { return float64(a.Mean()) / float64(b.Mean()) }
	goal := ratio(pooled, goHook) <= 1.2
	s := section{
		Title: "hooks: the same create with no hook, a Go hook, a pooled goja hook and a fresh goja runtime",
		Intro: fmt.Sprintf("Four entities of the same shape (`title`, `qty` integer, `price` money, `total` money with "+
			"`\"readOnly\": true`) and `POST /api/v1/data/{entity}` with the same kind of body, through the same HTTP stack, "+
			"%d clients: (a) %s; (b) %s; (c) %s — the stored script `%s`, `%s`, named in the definition's "+
			"`\"x-entity\": {\"hooks\": {\"beforeSave\": %q}}`; (d) %s. The variants alternate (a, b, c, d, a, …), %s measured "+
			"per run after a %s warm-up, best of %d runs per variant (highest req/s). After the runs every stored total is "+
			"`round(qty × price, 2)` (none without a hook) and every record has its history and outbox rows: %s records. "+
			"Request time is client side, per request; the ratios are of the mean.",
			clients, variants[0].what, variants[1].what, variants[2].what, hookScriptName, hookSource, hookScriptName,
			variants[3].what, e.cfg.duration, warmup, e.cfg.rounds, strings.Join(checked, ", ")),
		Table: [][]string{{"variant", "req/s", "mean", "p50", "p99", "mean ÷ Go hook's", "Go CPU/op", "PG CPU/op", "SQL stmts/op"}},
	}
	for _, r := range best {
		goCPU, pgCPU, stmts := r.perOp()
		s.Table = append(s.Table, []string{string(r.Side), fmt.Sprintf("%.0f", r.Throughput()), ms(r.Mean()),
			ms(r.Percentile(0.5)), ms(r.Percentile(0.99)), fmt.Sprintf("%.2f", ratio(r, goHook)), ms(goCPU), ms(pgCPU), fmt.Sprintf("%.1f", stmts)})
	}
	s.Summary = []string{
		fmt.Sprintf("hooks c=%d: mean request time goja pooled / Go hook %.2f (goal ≤ 1.2: %s); goja fresh / Go hook %.2f; Go hook / no hook %.2f",
			clients, ratio(pooled, goHook), met(goal), ratio(freshR, goHook), ratio(goHook, none)),
		fmt.Sprintf("hooks c=%d: req/s no hook %.0f, Go hook %.0f, goja pooled %.0f, goja fresh %.0f; p50 %s / %s / %s / %s",
			clients, none.Throughput(), goHook.Throughput(), pooled.Throughput(), freshR.Throughput(),
			ms(none.Percentile(0.5)), ms(goHook.Percentile(0.5)), ms(pooled.Percentile(0.5)), ms(freshR.Percentile(0.5))),
	}
	if inProc != nil {
		s.Summary = append(s.Summary, fmt.Sprintf("hooks per call in process: Go hook %s, goja pooled %s, goja fresh %s",
			usec(inProc[0].d), usec(inProc[1].d), usec(inProc[2].d)))
	}
	s.Detail = detailRows(runs, "req/s")
	s.Notes = e.hookNotes(variants, best, stmtsOf, inProc, goBench)
	return s, nil
}

// bestOf is the run of a variant with the highest throughput.
func bestOf(runs []result, s side, label string) result {
	return best(runs, s, label, false)
}

// callCost is the in-process cost of one hook call.
type callCost struct {
	what   string
	d      time.Duration
	allocs int64
	bytes  int64
}

// hookCallCost times one hook call in process, without HTTP or SQL: the Go hook, the
// script on a pooled runner and on a fresh one, with the record a create hands them.
func hookCallCost() []callCost {
	record := func() map[string]any {
		return map[string]any{"title": "Acme pumps", "qty": json.Number("3"), "price": "19.99"}
	}
	call := func(r *script.Runner) func(b *testing.B) {
		return func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				res, err := r.Run(context.Background(), script.Call{Name: hookScriptName, Source: hookSource, Record: record(),
					Context: map[string]any{"entity": "bench_hook_goja", "hook": engine.HookBeforeSave}})
				if err != nil || res.Record["total"] != "59.97" {
					b.Fatalf("script: %v %v", res, err)
				}
			}
		}
	}
	pooled := script.NewRunner(4)
	fresh := script.NewRunner(0)
	fresh.Fresh = true
	var out []callCost
	for _, c := range []struct {
		what string
		fn   func(b *testing.B)
	}{
		{"Go hook", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				ev := &engine.HookEvent{Record: record()}
				if err := goTotal(context.Background(), ev); err != nil || ev.Record["total"] != "59.97" {
					b.Fatalf("go hook: %v %v", ev.Record, err)
				}
			}
		}},
		{"goja pooled", call(pooled)},
		{"goja fresh", call(fresh)},
	} {
		r := testing.Benchmark(c.fn)
		if r.N == 0 {
			return nil
		}
		out = append(out, callCost{what: c.what, d: time.Duration(r.NsPerOp()), allocs: r.AllocsPerOp(), bytes: r.AllocedBytesPerOp()})
	}
	return out
}

// scriptGoBench runs the script package's own benchmarks and returns their result lines
// (or why it could not).
func scriptGoBench(ctx context.Context) string {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-run", "^$", "-bench", "BenchmarkPooledHook|BenchmarkFreshRuntime", "-benchmem", "./engine/script/")
	out, err := cmd.CombinedOutput()
	var lines []string
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "Benchmark") {
			lines = append(lines, strings.Join(strings.Fields(line), " "))
		}
	}
	if err != nil || len(lines) == 0 {
		return fmt.Sprintf("(not available: %v: %s)", err, truncate(strings.TrimSpace(string(out)), 300))
	}
	return strings.Join(lines, "\n")
}

// hookShow picks the frames that tell the hook's share of a create apart.
const hookShow = `tessera/engine\.\(\*Engine\)\.(Create|prepare|hook)$|tessera/engine/script\.\(\*Runner\)\.Run$|` +
	`tessera/engine/script\.newSandbox$|tessera/engine/script\.\(\*sandbox\)\.run$|main\.goTotal$|` +
	`tessera/engine/schema\.\(\*Validator\)\.Validate$|goja\.\(\*Runtime\)\.RunString$|runtime\.gcBgMarkWorker$|` +
	`fasthttp\.\(\*Server\)\.serveConn$`

func (e *env) hookNotes(variants []hookVariant, best []result, stmtsOf map[side][]capturedStmt, inProc []callCost, goBench string) []string {
	none, goHook, pooled, fresh := best[0], best[1], best[2], best[3]
	goCPU := func(r result) time.Duration { d, _, _ := r.perOp(); return d }
	pgCPU := func(r result) time.Duration { _, d, _ := r.perOp(); return d }
	stmts := func(r result) float64 { _, _, n := r.perOp(); return n }
	list := func(f func(r result) string) string {
		parts := make([]string, len(best))
		for i, r := range best {
			parts[i] = fmt.Sprintf("%s %s", r.Side, f(r))
		}
		return strings.Join(parts, ", ")
	}
	var b strings.Builder
	fmt.Fprintf(&b, "SQL statements per create, measured over the runs: %s. ", list(func(r result) string { return fmt.Sprintf("%.1f", stmts(r)) }))
	if stmts(pooled) > stmts(goHook) {
		b.WriteString("A create that needs no transaction is one statement (insert, history, outbox and read-back in one " +
			"`WITH`) sent without BEGIN/COMMIT (`engine.singleStatementCreate`); a script hook rules that out, since the " +
			"script may read and write through `db.*` inside the write's transaction, so both goja variants pay a BEGIN and " +
			"a COMMIT, two more round trips, while a Go hook (which gets no transaction) does not. ")
	}
	total := func(r result) time.Duration { return goCPU(r) + pgCPU(r) }
	fmt.Fprintf(&b, "CPU per request, bench process (server and load generator) + PostgreSQL: %s. CPU busy (bench / PostgreSQL "+
		"/ whole machine, of %d CPUs): %s. ",
		list(func(r result) string { return ms(goCPU(r)) + " + " + ms(pgCPU(r)) }), runtime.NumCPU(), list(result.busyText))
	fmt.Fprintf(&b, "CPU alone predicts mean request time ratios (at the same concurrency, on a saturated machine) of %.2f "+
		"(goja pooled / Go hook), %.2f (goja fresh / Go hook) and %.2f (Go hook / no hook); measured: %.2f, %.2f and %.2f.",
		float64(total(pooled))/float64(total(goHook)), float64(total(fresh))/float64(total(goHook)), float64(total(goHook))/float64(total(none)),
		float64(pooled.Mean())/float64(goHook.Mean()), float64(fresh.Mean())/float64(goHook.Mean()), float64(goHook.Mean())/float64(none.Mean()))
	fmt.Fprintf(&b, " Other work on the machine (whole machine busy minus the bench process and PostgreSQL) took %s of it during "+
		"these runs; where it differs between variants, so does the CPU left to them, and the measured ratios drift from "+
		"the predicted ones accordingly.", list(func(r result) string {
		g, p, m := r.busy()
		if p < 0 || m < 0 {
			return "n/a"
		}
		return pct(max(m-g-p, 0))
	}))
	notes := []string{b.String()}
	if inProc != nil {
		rows := [][]string{{"one call, in process", "time", "allocs", "bytes"}}
		for _, c := range inProc {
			rows = append(rows, []string{c.what, usec(c.d), fmt.Sprint(c.allocs), thousands(int(c.bytes))})
		}
		var t strings.Builder
		markdownTable(&t, rows)
		notes = append(notes, "The hook alone, called in the bench process after the runs (`testing.Benchmark`; the record a create "+
			"hands it, no HTTP, no SQL; `script.NewRunner(4)` for pooled, `Fresh = true` for fresh):\n\n"+t.String()+
			"\nThe script package's own benchmarks (`go test -run '^$' -bench 'BenchmarkPooledHook|BenchmarkFreshRuntime' "+
			"-benchmem ./engine/script/`, run by the bench after the runs; their script adds two decimals):\n\n```\n"+goBench+"\n```")
	}
	names := make([]string, len(variants))
	for i, v := range variants {
		names[i] = v.profile
	}
	if rows := e.perRequestCPU(names, hookShow, shortFrame); len(rows) > 1 {
		var t strings.Builder
		markdownTable(&t, rows)
		notes = append(notes, "CPU profiles of the last run of each variant (`-cpuprofile`; all four profiled), cumulative CPU "+
			"per request (warm-up included) in the frames that separate them:\n\n"+t.String())
		hookFrame := `tessera/engine\.\(\*Engine\)\.hook$`
		if js, gh := e.frameCPU("hooks-goja", hookFrame), e.frameCPU("hooks-go", hookFrame); js >= 0 && gh >= 0 {
			extra, inHook := total(pooled)-total(goHook), js-gh
			notes = append(notes, fmt.Sprintf("So the pooled goja variant used %s more CPU per request than the Go hook (bench + "+
				"PostgreSQL, best runs). The hook itself (`engine.(*Engine).hook`: script lookup, call context, the run) took %s "+
				"per request in the profiled run against %s for the Go hook, %s more; the other %s is outside the hook, mostly "+
				"the transaction's BEGIN and COMMIT (PostgreSQL alone used %s more per request).",
				ms(extra), usec(js), usec(gh), usec(inHook), ms(extra-inHook), ms(pgCPU(pooled)-pgCPU(goHook))))
		}
	}
	for _, v := range []side{"Go hook", "goja pooled"} {
		if st := stmtsOf[v]; len(st) > 0 {
			notes = append(notes, fmt.Sprintf("One create with the %s (sent alone, after a first one loaded the definition "+
				"and the script) sends:\n\n%s", v, statementList(st)))
		}
	}
	return notes
}

// shortFrame drops the module path from a profile frame.
func shortFrame(name string) string {
	for _, p := range []string{"github.com/tessera/tessera/", "github.com/valyala/", "github.com/dop251/", "github.com/jackc/"} {
		name = strings.TrimPrefix(name, p)
	}
	return name
}
