package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// itemsCSV is the import file: a header of field names and n valid rows with unique skus.
func (e *env) itemsCSV(n int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	b := bytes.NewBufferString("sku,title,amount,quantity,status,due_date,paid,email,account\n")
	var line []byte
	for i := range n {
		cents := 100 + rng.IntN(10_000_000)
		line = line[:0]
		line = fmt.Appendf(line, "SKU-%07d,%s %s,%d.%02d,%d,%s,2026-%02d-%02d,%t,buyer%d@example.com,%s\n",
			i, words[rng.IntN(len(words))], products[rng.IntN(len(products))], cents/100, cents%100, 1+rng.IntN(500),
			statuses[rng.IntN(len(statuses))], 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(2) == 0, rng.IntN(100000),
			e.accounts[rng.IntN(len(e.accounts))])
		b.Write(line)
	}
	return b.Bytes()
}

// importReport is the part of Tessera's import answer the bench checks.
type importReport struct {
	Rows     int64 `json:"rows"`
	Inserted int64 `json:"inserted"`
	Rejected int64 `json:"rejected"`
}

func (e *env) benchImport(ctx context.Context) (section, error) {
	progress("import: setting up")
	if err := e.putEntity(ctx, "bench_item", orderDef("bench_item", true)); err != nil {
		return section{}, err
	}
	if err := cloneTable(ctx, e.baselinePool, "bench_item", map[string]string{"account": "account"}); err != nil {
		return section{}, err
	}
	// The CSV has no ids: Tessera makes UUIDv7s, the baseline's table a default.
	if _, err := e.baselinePool.Exec(ctx, "ALTER TABLE bench_baseline.bench_item ALTER COLUMN id SET DEFAULT gen_random_uuid()"); err != nil {
		return section{}, err
	}
	n := e.cfg.importRows
	csv := e.itemsCSV(n)
	targets := map[side]string{
		tesseraSide:  e.tessera + "/api/v1/data/bench_item/import?key=sku",
		baselineSide: e.baseline + "/items/import",
	}
	var (
		runs  []result
		stmts []capturedStmt
	)
	for round := 1; round <= e.cfg.rounds; round++ {
		for _, s := range []side{baselineSide, tesseraSide} {
			// Each run loads into empty tables, after a checkpoint so no run pays for the
			// previous one's dirty pages (a CHECKPOINT needs a superuser; without one the
			// runs just share the background writer's timing).
			if _, err := e.baselinePool.Exec(ctx, "TRUNCATE data.bench_item, bench_baseline.bench_item"); err != nil {
				return section{}, err
			}
			_, _ = e.baselinePool.Exec(ctx, "CHECKPOINT")
			progress(fmt.Sprintf("import round %d: %s, %d rows", round, s, n))
			stopProfile := func() {}
			last := s == tesseraSide && round == e.cfg.rounds
			if last {
				var err error
				if stopProfile, err = e.profile("import"); err != nil {
					return section{}, err
				}
			}
			var (
				r   result
				err error
			)
			if last {
				stmts, err = e.tesseraStmts.capture(func() error {
					r, err = e.importOnce(ctx, s, targets[s], csv, n)
					return err
				})
			} else {
				r, err = e.importOnce(ctx, s, targets[s], csv, n)
			}
			stopProfile()
			if err != nil {
				return section{}, fmt.Errorf("%s: %w", s, err)
			}
			r.Label, r.Round = "csv", round
			runs = append(runs, r)
		}
	}
	var stored int64
	if err := e.baselinePool.QueryRow(ctx, "SELECT count(*) FROM data.bench_item").Scan(&stored); err != nil {
		return section{}, err
	}
	if stored != int64(n) {
		return section{}, fmt.Errorf("Tessera's table holds %d rows after importing %d", stored, n)
	}
	t, b := best(runs, tesseraSide, "csv", false), best(runs, baselineSide, "csv", false)
	ratio := t.Throughput() / b.Throughput()
	s := section{
		Title: fmt.Sprintf("import: %s CSV rows through the API vs COPY", thousands(n)),
		Intro: fmt.Sprintf("The same %.1f MB CSV (sku, title, amount, quantity, status, due_date, paid, email, account) is posted to "+
			"Tessera's `POST /api/v1/data/bench_item/import?key=sku`, which validates every row, stages the rows with COPY and "+
			"upserts them by sku with their history and outbox rows in one transaction, and to the baseline's `POST /items/import`, "+
			"which streams the body into `COPY bench_baseline.bench_item (…) FROM STDIN WITH (FORMAT csv)` (a clone of the entity "+
			"table: same columns, indexes, CHECKs, generated search column and foreign key). Both tables are emptied and a "+
			"CHECKPOINT taken before each run; time is the whole HTTP request, client side; best of %d runs per side.",
			float64(len(csv))/1e6, e.cfg.rounds),
		Table: [][]string{{"rows", "Tessera rows/s", "baseline rows/s", "ratio", "goal", "met?", "Tessera time", "baseline time"},
			{thousands(n), fmt.Sprintf("%.0f", t.Throughput()), fmt.Sprintf("%.0f", b.Throughput()), fmt.Sprintf("%.2f", ratio),
				"≥ 0.3", met(ratio >= 0.3), t.Elapsed.Round(time.Millisecond).String(), b.Elapsed.Round(time.Millisecond).String()}},
		Summary: []string{fmt.Sprintf("import %d rows: tessera %.0f rows/s, baseline %.0f rows/s, ratio %.2f (goal ≥ 0.3: %s)",
			n, t.Throughput(), b.Throughput(), ratio, met(ratio >= 0.3))},
	}
	s.Detail = [][]string{{"side", "round", "time", "rows/s", "Go CPU", "PG CPU", "CPU busy bench / PG / machine", "SQL stmts"}}
	for _, r := range runs {
		s.Detail = append(s.Detail, []string{string(r.Side), strconv.Itoa(r.Round), r.Elapsed.Round(time.Millisecond).String(),
			fmt.Sprintf("%.0f", r.Throughput()), ms(r.Cost.GoCPU), ms(r.Cost.PGCPU), r.busyText(), fmt.Sprint(r.Cost.Stmts)})
	}
	s.Notes = []string{
		fmt.Sprintf("CPU for the %s rows: Tessera used %s in the bench process and %s in PostgreSQL, the baseline %s and %s. "+
			"CPU busy (bench process / PostgreSQL / whole machine, of %d CPUs): %s during Tessera's import, %s during the baseline's.",
			thousands(n), ms(t.Cost.GoCPU), ms(t.Cost.PGCPU), ms(b.Cost.GoCPU), ms(b.Cost.PGCPU), runtime.NumCPU(),
			t.busyText(), b.busyText()),
		cpuVerdict(t, b, "import"),
		importSplit(runs[len(runs)-1], runs[len(runs)-2], stmts),
		"The statements of Tessera's last import, with the time each took (the progress updates run on another " +
			"connection while the COPY streams):\n\n" + statementList(stmts),
	}
	s.Notes = append(s.Notes, e.profileNote("import")...)
	return s, nil
}

// importSplit says where the time of Tessera's last import (t, whose statements were
// captured) went; b is the baseline run before it.
func importSplit(t, b result, stmts []capturedStmt) string {
	var stage, upsert time.Duration
	for _, st := range stmts {
		switch {
		case strings.HasPrefix(st.SQL, "COPY"):
			stage += st.Duration
		case strings.Contains(st.SQL, "ON CONFLICT"):
			upsert += st.Duration
		}
	}
	if stage == 0 || upsert == 0 {
		return ""
	}
	return fmt.Sprintf("Both imports are one stream on one connection, so one PostgreSQL backend does the database work "+
		"(at most one of the %d CPUs). Of the %s Tessera's last import took, the COPY into its staging table (as long as "+
		"the server reads, parses and validates the CSV in Go and feeds it) took %s and the one set-based upsert that "+
		"writes the rows with their history and outbox rows %s; the baseline's COPY into the final table took %s in all "+
		"in the run before.",
		runtime.NumCPU(), ms(t.Elapsed), ms(stage), ms(upsert), ms(b.Elapsed))
}

// importOnce posts the CSV once and checks every row arrived.
func (e *env) importOnce(ctx context.Context, s side, target string, csv []byte, n int) (result, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", target, bytes.NewReader(csv))
	if err != nil {
		return result{}, err
	}
	req.Header.Set("Content-Type", "text/csv")
	report := &importReport{}
	before := e.sample(s)
	start := time.Now()
	err = e.do(req, 200, report)
	if s == baselineSide {
		report.Inserted = report.Rows // COPY answers the rows it loaded
	}
	elapsed := time.Since(start)
	after := e.sample(s)
	if err != nil {
		return result{}, err
	}
	if report.Inserted != int64(n) || report.Rejected != 0 {
		return result{}, fmt.Errorf("%d of %d rows inserted, %d rejected", report.Inserted, n, report.Rejected)
	}
	return result{Side: s, Clients: 1, Requests: 1, Elapsed: elapsed, Latency: []time.Duration{elapsed},
		Units: float64(n), Cost: after.minus(before)}, nil
}
