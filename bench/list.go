package main

import (
	"context"
	"fmt"
	"math"
	"math/big"
	"math/rand/v2"
	"net/http"
	"net/url"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

const dealDef = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "x-entity": {"name": "bench_deal", "label": {"en": "Deal"}, "titleField": "title",
    "indexes": [{"fields": ["status", "-amount"]}]},
  "required": ["title", "status", "amount"],
  "properties": {
    "title":      {"type": "string", "maxLength": 200, "x-field-id": "d1"},
    "status":     {"enum": ["draft", "open", "won", "lost"], "default": "draft", "x-field-id": "d2"},
    "amount":     {"type": "string", "format": "money", "x-currency": "EUR", "x-field-id": "d3"},
    "owner":      {"type": "string", "format": "uuid", "x-field-id": "d4"},
    "close_date": {"type": "string", "format": "date", "x-field-id": "d5"}
  }
}`

const (
	listFilter = `status == "open" && amount > "100"`
	listSort   = "-amount"
	listLimit  = 50
)

// listPage is Tessera's list answer.
type listPage struct {
	Items []struct {
		ID     string `json:"id"`
		Amount string `json:"amount"`
	} `json:"items"`
	NextCursor      *string `json:"next_cursor"`
	Total           int64   `json:"total"`
	TotalIsEstimate bool    `json:"total_is_estimate"`
}

func (p listPage) ids() []string {
	var out []string
	for _, it := range p.Items {
		out = append(out, it.ID)
	}
	return out
}

func (e *env) benchList(ctx context.Context) (section, error) {
	progress("list: setting up")
	if err := e.putEntity(ctx, "bench_deal", dealDef); err != nil {
		return section{}, err
	}
	progress(fmt.Sprintf("list: loading %d rows with COPY", e.cfg.rows))
	loadTime, err := e.loadDeals(ctx, e.cfg.rows)
	if err != nil {
		return section{}, fmt.Errorf("load: %w", err)
	}
	progress(fmt.Sprintf("list: loaded, indexed and analyzed in %s", loadTime.Round(100*time.Millisecond)))

	listPath := "/api/v1/data/bench_deal?filter=" + url.QueryEscape(listFilter) + "&sort=" + url.QueryEscape(listSort) +
		fmt.Sprintf("&limit=%d", listLimit)
	tesseraURL := e.tessera + listPath
	baselineURL := e.baseline + "/deals?status=open&min=100"

	// Both sides answer the same page; the cursor leads to the next one.
	var page1 listPage
	listStmts, err := e.tesseraStmts.capture(func() error {
		return e.call(ctx, "GET", tesseraURL, nil, "", 200, &page1)
	})
	if err != nil {
		return section{}, err
	}
	var basePage struct {
		Items []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := e.call(ctx, "GET", baselineURL, nil, "", 200, &basePage); err != nil {
		return section{}, err
	}

	var baseIDs []string
	for _, it := range basePage.Items {
		baseIDs = append(baseIDs, it.ID)
	}
	if len(page1.Items) != listLimit || !slices.Equal(page1.ids(), baseIDs) {
		return section{}, fmt.Errorf("Tessera's first page (%d items: %v) differs from the baseline's (%d items: %v)",
			len(page1.Items), page1.Items[:min(3, len(page1.Items))], len(baseIDs), baseIDs[:min(3, len(baseIDs))])
	}
	if page1.NextCursor == nil {
		return section{}, fmt.Errorf("no next_cursor on the first page of %d matching rows", page1.Total)
	}
	var page2 listPage
	t0 := time.Now()
	if err := e.call(ctx, "GET", tesseraURL+"&cursor="+url.QueryEscape(*page1.NextCursor), nil, "", 200, &page2); err != nil {
		return section{}, err
	}
	page2Time := time.Since(t0)
	want2, err := e.offsetPage(ctx, listLimit)
	if err != nil {
		return section{}, err
	}
	page2OK := slices.Equal(page2.ids(), want2)
	var exact int64
	if err := e.baselinePool.QueryRow(ctx, `SELECT count(*) FROM data.bench_deal WHERE deleted_at IS NULL AND status = 'open' AND amount > 100`).Scan(&exact); err != nil {
		return section{}, err
	}

	get := func(target string) requestFunc {
		return func(ctx context.Context, _ int, _ *rand.Rand) (*http.Request, error) {
			return http.NewRequestWithContext(ctx, "GET", target, nil)
		}
	}
	targets := map[side]string{tesseraSide: tesseraURL, baselineSide: baselineURL}
	const clients = 8
	label := fmt.Sprintf("c=%d", clients)
	warmup := min(time.Second, e.cfg.duration/5)
	var runs []result
	for round := 1; round <= e.cfg.rounds; round++ {
		for _, s := range []side{baselineSide, tesseraSide} {
			progress(fmt.Sprintf("list round %d: %s", round, s))
			stopProfile := func() {}
			if s == tesseraSide && round == e.cfg.rounds {
				if stopProfile, err = e.profile("list"); err != nil {
					return section{}, err
				}
			}
			r, err := e.load(ctx, s, clients, warmup, e.cfg.duration, get(targets[s]), 200)
			stopProfile()
			if err != nil {
				return section{}, err
			}
			r.Label, r.Round = label, round
			if r.Errors > 0 {
				return section{}, fmt.Errorf("%s: %d of %d requests failed; first: %s", s, r.Errors, r.Errors+r.Requests, r.FirstErr)
			}
			runs = append(runs, r)
		}
	}
	t, b := best(runs, tesseraSide, label, true), best(runs, baselineSide, label, true)
	ratio := float64(t.Percentile(0.99)) / float64(b.Percentile(0.99))
	s := section{
		Title: fmt.Sprintf("list: filtered, sorted page over %s rows vs the same SELECT", thousands(e.cfg.rows)),
		Intro: fmt.Sprintf("`bench_deal` has %s rows loaded with COPY (status draft 10%% / open 30%% / won 30%% / lost 30%%, "+
			"amounts log-uniform 1.00–100000.00, created_at spread over three years, UUIDv7 ids, 50 owners) and the index "+
			"declared in its definition, `{\"fields\": [\"status\", \"-amount\"]}`, then VACUUM ANALYZE (%s in all). "+
			"Tessera: `GET /api/v1/data/bench_deal?filter=%s&sort=-amount&limit=50` (URL-encoded). Baseline: `GET /deals` running "+
			"`SELECT … FROM data.bench_deal WHERE deleted_at IS NULL AND status = $1 AND amount > $2 ORDER BY amount DESC, id LIMIT 50` "+
			"and encoding the rows as JSON. Both answer the same 50 ids. %d clients, %s measured per run after a %s warm-up; "+
			"best of %d runs per side (lowest p99).",
			thousands(e.cfg.rows), loadTime.Round(time.Second), listFilter, clients, e.cfg.duration, warmup, e.cfg.rounds),
		Table: [][]string{{"clients", "Tessera p50 / p99", "baseline p50 / p99", "p99 ratio", "goal", "met?", "Tessera req/s", "baseline req/s"},
			{fmt.Sprint(clients), ms(t.Percentile(0.5)) + " / " + ms(t.Percentile(0.99)), ms(b.Percentile(0.5)) + " / " + ms(b.Percentile(0.99)),
				fmt.Sprintf("%.2f", ratio), "≤ 2", met(ratio <= 2), fmt.Sprintf("%.0f", t.Throughput()), fmt.Sprintf("%.0f", b.Throughput())}},
	}
	s.Summary = append(s.Summary,
		fmt.Sprintf("list c=%d: tessera p50 %s p99 %s, baseline p50 %s p99 %s, p99 ratio %.2f (goal ≤ 2: %s)",
			clients, ms(t.Percentile(0.5)), ms(t.Percentile(0.99)), ms(b.Percentile(0.5)), ms(b.Percentile(0.99)), ratio, met(ratio <= 2)),
		fmt.Sprintf("list page 2 via next_cursor: %d items in %s, same rows as OFFSET 50: %t; total %d (total_is_estimate %t; exact count %d)",
			len(page2.Items), ms(page2Time), page2OK, page1.Total, page1.TotalIsEstimate, exact))
	s.Detail = detailRows(runs, "req/s")
	notes, err := e.listNotes(ctx, t, b, listStmts)
	if err != nil {
		return section{}, err
	}
	s.Notes = notes
	return s, nil
}

// offsetPage is the page after the first n rows, by OFFSET, to check keyset paging.
func (e *env) offsetPage(ctx context.Context, offset int) ([]string, error) {
	rows, err := e.baselinePool.Query(ctx, `SELECT id::text FROM data.bench_deal WHERE deleted_at IS NULL AND status = 'open' AND amount > 100
		ORDER BY amount DESC, id LIMIT 50 OFFSET $1`, offset)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (e *env) listNotes(ctx context.Context, t, b result, stmts []capturedStmt) ([]string, error) {
	tGo, tPG, tStmts := t.perOp()
	bGo, bPG, bStmts := b.perOp()
	tWait, tWaited := t.poolWait()
	bWait, bWaited := b.poolWait()
	notes := []string{fmt.Sprintf("Tessera sent %.1f SQL statements per list request where the baseline sent %.1f. "+
		"CPU per request: %s in the bench process and %s in PostgreSQL for Tessera, %s and %s for the baseline. "+
		"CPU busy (bench process / PostgreSQL / whole machine, of %d CPUs): %s during Tessera's run, %s during the baseline's. "+
		"Wait for a pool connection per acquisition: %s for Tessera (%s found none idle), %s (%s) for the baseline.",
		tStmts, bStmts, ms(tGo), ms(tPG), ms(bGo), ms(bPG), runtime.NumCPU(), t.busyText(), b.busyText(),
		ms(tWait), pct(tWaited), ms(bWait), pct(bWaited))}
	if v := cpuVerdict(t, b, "request"); v != "" {
		notes = append(notes, v)
	}
	notes = append(notes, e.profileNote("list")...)
	notes = append(notes, "One Tessera list request sends:\n\n"+statementList(stmts))
	// The plans and server-side times of the page query of each side.
	var page *capturedStmt
	for i := range stmts {
		if strings.Contains(stmts[i].SQL, "ORDER BY") {
			page = &stmts[i]
		}
	}
	if page != nil {
		tPlan, err := explain(ctx, e, page.SQL, page.Args...)
		if err != nil {
			return nil, err
		}
		bPlan, err := explain(ctx, e, baselineListSQL, "open", "100")
		if err != nil {
			return nil, err
		}
		notes = append(notes, "EXPLAIN ANALYZE of Tessera's page query:\n\n```\n"+tPlan+"```\n\nand of the baseline's:\n\n```\n"+bPlan+"```")
	}
	return notes, nil
}

// explain runs EXPLAIN ANALYZE once to warm up and again to report.
func explain(ctx context.Context, e *env, sql string, args ...any) (string, error) {
	var plan strings.Builder
	for range 2 {
		plan.Reset()
		rows, err := e.baselinePool.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, SUMMARY ON) "+sql, args...)
		if err != nil {
			return "", err
		}
		lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return "", err
		}
		for _, l := range lines {
			plan.WriteString(l + "\n")
		}
	}
	return plan.String(), nil
}

// loadDeals fills data.bench_deal by COPY (50 owners), with the secondary indexes
// dropped during the load and rebuilt after it (as any bulk load does), then VACUUM
// ANALYZE.
func (e *env) loadDeals(ctx context.Context, n int) (time.Duration, error) {
	owners := make([][16]byte, 50)
	for i := range owners {
		owners[i] = uuid.New()
	}
	return e.copyDeals(ctx, dealLoad{entity: "bench_deal", rows: n,
		owner: func(_ int, rng *rand.Rand) [16]byte { return owners[rng.IntN(len(owners))] }})
}

// dealLoad is a COPY load of a table shaped like bench_deal.
type dealLoad struct {
	entity string
	rows   int
	// owner is the owner of row i; it draws from rng after the row's other values.
	owner func(i int, rng *rand.Rand) [16]byte
	// team, when set, fills the entity's team column too (after the owner).
	team func(i int, rng *rand.Rand) string
}

// copyDeals fills a deal-shaped table by COPY, with the secondary indexes dropped during
// the load and rebuilt after it, then VACUUM ANALYZE.
func (e *env) copyDeals(ctx context.Context, l dealLoad) (time.Duration, error) {
	start := time.Now()
	n := l.rows
	table := pgx.Identifier{"data", l.entity}
	conn, err := e.baselinePool.Acquire(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Release()
	rows, err := conn.Query(ctx, `SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
		FROM pg_index i WHERE i.indrelid = $1::regclass AND NOT i.indisprimary`, table.Sanitize())
	if err != nil {
		return 0, err
	}
	type index struct{ name, def string }
	indexes, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (index, error) {
		var ix index
		err := r.Scan(&ix.name, &ix.def)
		return ix, err
	})
	if err != nil {
		return 0, err
	}
	for _, ix := range indexes {
		if _, err := conn.Exec(ctx, "DROP INDEX "+ix.name); err != nil {
			return 0, err
		}
	}

	rng := rand.New(rand.NewPCG(1, 2))
	span := 3 * 365 * 24 * time.Hour
	first := time.Now().Add(-span).Truncate(time.Millisecond)
	step := span / time.Duration(n)
	lo, hi := math.Log(100), math.Log(10_000_000) // amounts in cents: 1.00 … 100000.00
	i := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if i == n || ctx.Err() != nil {
			return nil, ctx.Err()
		}
		created := first.Add(time.Duration(i)*step + time.Duration(rng.Int64N(int64(max(step, 1)))))
		var status string
		switch p := rng.IntN(100); {
		case p < 10:
			status = "draft"
		case p < 40:
			status = "open"
		case p < 70:
			status = "won"
		default:
			status = "lost"
		}
		cents := int64(math.Exp(lo + rng.Float64()*(hi-lo)))
		closeDate := created.AddDate(0, 0, rng.IntN(120)).Truncate(24 * time.Hour)
		title := words[rng.IntN(len(words))] + " " + products[rng.IntN(len(products))] + fmt.Sprintf(" #%d", i)
		id := uuidV7(created, rng)
		row := []any{id, int32(1), created, created, title, status,
			pgtype.Numeric{Int: big.NewInt(cents), Exp: -2, Valid: true}, l.owner(i, rng), closeDate}
		if l.team != nil {
			row = append(row, l.team(i, rng))
		}
		i++
		return row, nil
	})
	cols := []string{"id", "version", "created_at", "updated_at", "title", "status", "amount", "owner", "close_date"}
	if l.team != nil {
		cols = append(cols, "team")
	}
	if _, err := conn.CopyFrom(ctx, table, cols, src); err != nil {
		return 0, err
	}
	if _, err := conn.Exec(ctx, "SET maintenance_work_mem = '256MB'"); err != nil {
		return 0, err
	}
	for _, ix := range indexes {
		if _, err := conn.Exec(ctx, ix.def); err != nil {
			return 0, err
		}
	}
	if _, err := conn.Exec(ctx, "RESET maintenance_work_mem"); err != nil {
		return 0, err
	}
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) "+table.Sanitize()); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}

// uuidV7 is a version 7 UUID for the instant t (RFC 9562: 48-bit Unix milliseconds,
// then random bits), so ids sort like the records' creation times.
func uuidV7(t time.Time, rng *rand.Rand) [16]byte {
	var u [16]byte
	msec := uint64(t.UnixMilli())
	for k := range 6 {
		u[k] = byte(msec >> (40 - 8*k))
	}
	r1, r2 := rng.Uint64(), rng.Uint64()
	for k := 6; k < 16; k++ {
		if k < 11 {
			u[k] = byte(r1 >> (8 * (k - 6)))
		} else {
			u[k] = byte(r2 >> (8 * (k - 11)))
		}
	}
	u[6] = 0x70 | u[6]&0x0f
	u[8] = 0x80 | u[8]&0x3f
	return u
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
