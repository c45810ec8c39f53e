package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"time"
)

const accountDef = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "x-entity": {"name": "account", "label": {"en": "Account"}, "titleField": "name"},
  "required": ["name"],
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 200, "x-field-id": "a1"},
    "city": {"type": "string", "x-field-id": "a2"}
  }
}`

// orderDef is an entity with the eight field kinds of a typical business record: text,
// money, integer, enum, date, boolean, email and a relation. With sku it gets a unique
// key, which imports match rows on.
func orderDef(name string, sku bool) string {
	key, required := "", `"title", "amount", "status", "account"`
	if sku {
		key = `"sku": {"type": "string", "x-unique": true, "x-field-id": "b0"},
    `
		required = `"sku", ` + required
	}
	return fmt.Sprintf(`{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "x-entity": {"name": %q, "label": {"en": "Benchmark order"}, "titleField": "title"},
  "required": [%s],
  "properties": {
    %s"title":    {"type": "string", "minLength": 1, "maxLength": 200, "x-field-id": "b1"},
    "amount":   {"type": "string", "format": "money", "x-currency": "EUR", "x-field-id": "b2"},
    "quantity": {"type": "integer", "minimum": 0, "x-field-id": "b3"},
    "status":   {"enum": ["draft", "open", "won", "lost"], "default": "draft", "x-field-id": "b4"},
    "due_date": {"type": "string", "format": "date", "x-field-id": "b5"},
    "paid":     {"type": "boolean", "default": false, "x-field-id": "b6"},
    "email":    {"type": "string", "format": "email", "x-field-id": "b7"},
    "account":  {"type": "string", "format": "uuid", "x-relation": {"entity": "account"}, "x-field-id": "b8"}
  }
}`, name, required, key)
}

var (
	statuses = []string{"draft", "open", "won", "lost"}
	words    = []string{"Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Tyrell", "Soylent", "Cyberdyne",
		"Wonka", "Gringotts", "Vandelay", "Pied Piper", "Aperture", "Oscorp", "Nakatomi", "Monarch", "Dunder", "Prestige"}
	products = []string{"licences", "support renewal", "pumps", "spare parts", "steel coils", "consulting", "laptops", "pallets"}
)

// setupAccounts creates the small account entity orders refer to, through the API.
func (e *env) setupAccounts(ctx context.Context) error {
	if err := e.putEntity(ctx, "account", accountDef); err != nil {
		return err
	}
	for i := range 20 {
		var out struct {
			ID string `json:"id"`
		}
		body := fmt.Sprintf(`{"name": "%s %d", "city": "Berlin"}`, words[i%len(words)], i)
		if err := e.call(ctx, "POST", e.tessera+"/api/v1/data/account", []byte(body), "application/json", 201, &out); err != nil {
			return err
		}
		e.accounts = append(e.accounts, out.ID)
	}
	return nil
}

// orderJSON is one valid order; both sides get the same kind of body.
func (e *env) orderJSON(rng *rand.Rand) []byte {
	cents := 100 + rng.IntN(10_000_000)
	return fmt.Appendf(nil, `{"title": "%s %s", "amount": "%d.%02d", "quantity": %d, "status": "%s", "due_date": "2026-%02d-%02d", "paid": %t, "email": "buyer%d@example.com", "account": "%s"}`,
		words[rng.IntN(len(words))], products[rng.IntN(len(products))], cents/100, cents%100, 1+rng.IntN(500),
		statuses[rng.IntN(len(statuses))], 1+rng.IntN(12), 1+rng.IntN(28), rng.IntN(2) == 0, rng.IntN(100000),
		e.accounts[rng.IntN(len(e.accounts))])
}

func (e *env) benchCreate(ctx context.Context) (section, error) {
	progress("create: setting up")
	if err := e.putEntity(ctx, "bench_order", orderDef("bench_order", false)); err != nil {
		return section{}, err
	}
	if err := cloneTable(ctx, e.baselinePool, "bench_order", map[string]string{"account": "account"}); err != nil {
		return section{}, err
	}
	post := func(target string) requestFunc {
		return func(ctx context.Context, _ int, rng *rand.Rand) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, "POST", target, bytes.NewReader(e.orderJSON(rng)))
			if err == nil {
				req.Header.Set("Content-Type", "application/json")
			}
			return req, err
		}
	}
	targets := map[side]string{tesseraSide: e.tessera + "/api/v1/data/bench_order", baselineSide: e.baseline + "/orders"}
	// One create alone first loads the new definition into the engine's cache, so the runs
	// measure the steady state. It waits for the definition-change notification of the
	// PUT to reach the engine's listener first, or that would empty the cache again.
	select {
	case <-ctx.Done():
		return section{}, ctx.Err()
	case <-time.After(time.Second):
	}
	if err := e.call(ctx, "POST", targets[tesseraSide], e.orderJSON(rand.New(rand.NewPCG(7, 8))), "application/json", 201, nil); err != nil {
		return section{}, err
	}
	warmup := min(time.Second, e.cfg.duration/5)
	var runs []result
	concurrency := []int{8, 32}
	for _, c := range concurrency {
		label := fmt.Sprintf("c=%d", c)
		for round := 1; round <= e.cfg.rounds; round++ {
			for _, s := range []side{baselineSide, tesseraSide} {
				progress(fmt.Sprintf("create %s round %d: %s", label, round, s))
				stopProfile := func() {}
				if s == tesseraSide && round == e.cfg.rounds {
					var err error
					if stopProfile, err = e.profile(fmt.Sprintf("create-c%d", c)); err != nil {
						return section{}, err
					}
				}
				r, err := e.load(ctx, s, c, warmup, e.cfg.duration, post(targets[s]), 201)
				stopProfile()
				if err != nil {
					return section{}, err
				}
				r.Label, r.Round = label, round
				if r.Errors > 0 {
					return section{}, fmt.Errorf("%s %s: %d of %d requests failed; first: %s", s, label, r.Errors, r.Errors+r.Requests, r.FirstErr)
				}
				runs = append(runs, r)
			}
		}
	}

	// Every created record has its history and outbox row.
	var records, history, outbox int64
	if err := e.tesseraPool.QueryRow(ctx, `SELECT (SELECT count(*) FROM data.bench_order),
		(SELECT count(*) FROM tessera.record_history WHERE entity = 'bench_order'),
		(SELECT count(*) FROM tessera.outbox WHERE entity = 'bench_order')`).Scan(&records, &history, &outbox); err != nil {
		return section{}, err
	}
	if records != history || records != outbox {
		return section{}, fmt.Errorf("%d records but %d history and %d outbox rows", records, history, outbox)
	}

	s := section{
		Title: "create: POST one validated record vs plain INSERT",
		Intro: fmt.Sprintf("Tessera: `POST /api/v1/data/bench_order` (8 fields: text, money, integer, enum, date, boolean, email, relation "+
			"to `account`), which authenticates the bearer token, validates against the compiled JSON Schema, checks the relation, "+
			"inserts, writes its history and outbox rows and reads the record back — one SQL statement (`WITH … INSERT`), no explicit transaction. Baseline: `POST /orders` "+
			"decodes the same JSON and runs one `INSERT … RETURNING` into a clone of the entity table (same columns, CHECKs, "+
			"indexes, generated search column and foreign key). %s measured per run after a %s warm-up; best of %d runs per side "+
			"(highest req/s). All %d records Tessera created have their history and outbox rows.",
			e.cfg.duration, warmup, e.cfg.rounds, records),
		Table: [][]string{{"clients", "Tessera req/s", "baseline req/s", "ratio", "goal", "met?", "Tessera p50 / p99", "baseline p50 / p99"}},
	}
	for _, c := range concurrency {
		label := fmt.Sprintf("c=%d", c)
		t, b := best(runs, tesseraSide, label, false), best(runs, baselineSide, label, false)
		ratio := t.Throughput() / b.Throughput()
		s.Table = append(s.Table, []string{fmt.Sprint(c), fmt.Sprintf("%.0f", t.Throughput()), fmt.Sprintf("%.0f", b.Throughput()),
			fmt.Sprintf("%.2f", ratio), "≥ 0.7", met(ratio >= 0.7),
			ms(t.Percentile(0.5)) + " / " + ms(t.Percentile(0.99)), ms(b.Percentile(0.5)) + " / " + ms(b.Percentile(0.99))})
		s.Summary = append(s.Summary, fmt.Sprintf("create %s: tessera %.0f req/s, baseline %.0f req/s, ratio %.2f (goal ≥ 0.7: %s)",
			label, t.Throughput(), b.Throughput(), ratio, met(ratio >= 0.7)))
	}
	s.Detail = detailRows(runs, "req/s")
	s.Notes = e.createNotes(runs, concurrency)
	stmts, err := e.tesseraStmts.capture(func() error {
		return e.call(ctx, "POST", targets[tesseraSide], e.orderJSON(rand.New(rand.NewPCG(5, 6))), "application/json", 201, nil)
	})
	if err != nil {
		return section{}, err
	}
	s.Notes = append(s.Notes, "One Tessera create (sent alone, after the runs) sends:\n\n"+statementList(stmts))
	return s, nil
}

// createNotes states where the time of a create goes, from the measured costs.
func (e *env) createNotes(runs []result, concurrency []int) []string {
	var notes []string
	for _, c := range concurrency {
		label := fmt.Sprintf("c=%d", c)
		t, b := best(runs, tesseraSide, label, false), best(runs, baselineSide, label, false)
		tGo, tPG, tStmts := t.perOp()
		bGo, bPG, bStmts := b.perOp()
		tWait, tWaited := t.poolWait()
		bWait, bWaited := b.poolWait()
		notes = append(notes, fmt.Sprintf("At %s Tessera sent %.1f SQL statements per create where the baseline sent %.1f. "+
			"CPU per request: %s in the bench process and %s in PostgreSQL for Tessera, %s and %s for the baseline. "+
			"CPU busy (bench process / PostgreSQL / whole machine, of %d CPUs): %s during Tessera's run, %s during the baseline's. "+
			"Wait for a pool connection per acquisition: %s for Tessera (%s of acquisitions found none idle), %s (%s) for the baseline.",
			label, tStmts, bStmts, ms(tGo), ms(tPG), ms(bGo), ms(bPG), runtime.NumCPU(), t.busyText(), b.busyText(),
			ms(tWait), pct(tWaited), ms(bWait), pct(bWaited)))
		if v := cpuVerdict(t, b, "request"); v != "" {
			notes = append(notes, v)
		}
		notes = append(notes, e.profileNote(fmt.Sprintf("create-c%d", c))...)
	}
	return notes
}
