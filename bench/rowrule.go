package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/url"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tessera/tessera/engine"
)

// The rowrule benchmark lists the same rows of a million-row table twice: as a sales rep
// whose role limits reads to `owner == $user.id`, and as an admin who asks for that
// owner's rows with an explicit filter. Same page, same index, so the ratio is the price
// of the row rule.

const ownedDealDef = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "x-entity": {"name": "bench_owned_deal", "label": {"en": "Owned deal"}, "titleField": "title",
    "indexes": [{"fields": ["owner", "-amount"]}]},
  "required": ["title", "status", "amount"],
  "properties": {
    "title":      {"type": "string", "maxLength": 200, "x-field-id": "o1"},
    "status":     {"enum": ["draft", "open", "won", "lost"], "default": "draft", "x-field-id": "o2"},
    "amount":     {"type": "string", "format": "money", "x-currency": "EUR", "x-field-id": "o3"},
    "owner":      {"type": "string", "format": "uuid", "x-field-id": "o4"},
    "close_date": {"type": "string", "format": "date", "x-field-id": "o5"},
    "team":       {"type": "string", "maxLength": 40, "x-field-id": "o6"}
  }
}`

const (
	ruleRole = "sales_rep"
	ruleText = "owner == $user.id"
	// ruleOthers are the other owners sharing the rest of the rows.
	ruleOthers = 98
)

var teams = []string{"north", "south", "east", "west", "central", "enterprise", "public", "partners"}

// ruleRep is one sales rep and the rows they own: every every-th row, from offset.
type ruleRep struct {
	email, password string
	every, offset   int
	id              string
	token           string
	rows            int
}

func (r *ruleRep) owns(i int) bool { return i%r.every == r.offset }

func (e *env) benchRowRule(ctx context.Context) (section, error) {
	progress("rowrule: setting up")
	const entity = "bench_owned_deal"
	if err := e.putEntity(ctx, entity, ownedDealDef); err != nil {
		return section{}, err
	}
	role, _ := json.Marshal(map[string]any{"entities": map[string]any{entity: map[string]any{"read": true, "rows": ruleText}}})
	if err := e.call(ctx, "PUT", e.tessera+"/api/v1/roles/"+ruleRole, role, "application/json", 200, nil); err != nil {
		return section{}, err
	}
	// Two reps, so each side of the total's exact-count threshold (engine.ExactCountLimit
	// = 10,000 estimated rows) is measured: 1% of a million rows would put the planner's
	// estimate right on it, and which side it falls on would change with ANALYZE's sample.
	reps := []*ruleRep{
		{email: "rep.small@bench.local", password: "small rep password", every: 200, offset: 0},
		{email: "rep.large@bench.local", password: "large rep password", every: 50, offset: 1},
	}
	n := e.cfg.rows
	for _, r := range reps {
		var u struct {
			ID string `json:"id"`
		}
		body, _ := json.Marshal(map[string]any{"email": r.email, "password": r.password, "roles": []string{ruleRole}})
		if err := e.call(ctx, "POST", e.tessera+"/api/v1/users", body, "application/json", 201, &u); err != nil {
			return section{}, err
		}
		r.id = u.ID
		var login struct {
			Token string `json:"token"`
		}
		body, _ = json.Marshal(map[string]string{"email": r.email, "password": r.password})
		if err := e.call(ctx, "POST", e.tessera+"/api/v1/auth/login", body, "application/json", 200, &login); err != nil {
			return section{}, err
		}
		r.token = login.Token
		r.rows = (n - r.offset + r.every - 1) / r.every
	}
	others := make([][16]byte, ruleOthers)
	for i := range others {
		others[i] = uuid.New()
	}
	repIDs := make([][16]byte, len(reps))
	for i, r := range reps {
		repIDs[i] = uuid.MustParse(r.id)
	}
	progress(fmt.Sprintf("rowrule: loading %d rows with COPY", n))
	loadTime, err := e.copyDeals(ctx, dealLoad{entity: entity, rows: n,
		owner: func(i int, rng *rand.Rand) [16]byte {
			for k, r := range reps {
				if r.owns(i) {
					return repIDs[k]
				}
			}
			return others[rng.IntN(len(others))]
		},
		team: func(_ int, rng *rand.Rand) string { return teams[rng.IntN(len(teams))] }})
	if err != nil {
		return section{}, fmt.Errorf("load: %w", err)
	}
	progress(fmt.Sprintf("rowrule: loaded, indexed and analyzed in %s", loadTime.Round(100*time.Millisecond)))

	base := e.tessera + "/api/v1/data/" + entity
	adminURL := func(r *ruleRep) string {
		return base + "?filter=" + url.QueryEscape(fmt.Sprintf("owner == %q", r.id)) + "&sort=-amount&limit=50"
	}
	repURL := base + "?sort=-amount&limit=50"
	get := func(target, token string) requestFunc {
		return func(ctx context.Context, _ int, _ *rand.Rand) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, "GET", target, nil)
			if err == nil {
				req.Header.Set("Authorization", "Bearer "+token)
			}
			return req, err
		}
	}
	// fetch gets one page alone, capturing its statements.
	fetch := func(target, token string) (listPage, time.Duration, []capturedStmt, error) {
		var p listPage
		var took time.Duration
		stmts, err := e.tesseraStmts.capture(func() error {
			req, err := http.NewRequestWithContext(ctx, "GET", target, nil)
			if err != nil {
				return err
			}
			req.Header.Set("Authorization", "Bearer "+token)
			t0 := time.Now()
			err = e.do(req, 200, &p)
			took = time.Since(t0)
			return err
		})
		return p, took, stmts, err
	}

	type regime struct {
		rep              *ruleRep
		label            string
		admin, repPage   listPage
		adminSt, repSt   []capturedStmt
		adminT, repT     time.Duration
		exact            int64
		adminRun, repRun result
	}
	var regimes []*regime
	for _, r := range reps {
		g := &regime{rep: r, label: fmt.Sprintf("%s rows", thousands(r.rows))}
		// Twice each: the first loads the definition, the plan cache, the pages.
		for range 2 {
			if g.admin, g.adminT, g.adminSt, err = fetch(adminURL(r), e.token); err != nil {
				return section{}, err
			}
			if g.repPage, g.repT, g.repSt, err = fetch(repURL, r.token); err != nil {
				return section{}, err
			}
		}
		if len(g.admin.Items) != min(50, r.rows) || !slices.Equal(g.admin.ids(), g.repPage.ids()) {
			return section{}, fmt.Errorf("%s: the admin's page (%d items) and the rep's (%d items) differ", g.label, len(g.admin.Items), len(g.repPage.Items))
		}
		if err := e.baselinePool.QueryRow(ctx, "SELECT count(*) FROM data."+entity+" WHERE deleted_at IS NULL AND owner = $1", r.id).Scan(&g.exact); err != nil {
			return section{}, err
		}
		if g.exact != int64(r.rows) {
			return section{}, fmt.Errorf("%s: %d rows stored", g.label, g.exact)
		}
		regimes = append(regimes, g)
	}

	const clients = 8
	warmup := min(time.Second, e.cfg.duration/5)
	var runs []result
	for _, g := range regimes {
		for round := 1; round <= e.cfg.rounds; round++ {
			for _, s := range []side{"admin", "rep"} {
				progress(fmt.Sprintf("rowrule %s round %d: %s", g.label, round, s))
				target, token := adminURL(g.rep), e.token
				if s == "rep" {
					target, token = repURL, g.rep.token
				}
				stopProfile := func() {}
				profile := fmt.Sprintf("rowrule-%s-%d", s, g.rep.rows)
				last := round == e.cfg.rounds
				if last {
					if stopProfile, err = e.profile(profile); err != nil {
						return section{}, err
					}
				}
				r, err := e.load(ctx, s, clients, warmup, e.cfg.duration, get(target, token), 200)
				stopProfile()
				if err != nil {
					return section{}, err
				}
				r.Label, r.Round = g.label, round
				if last {
					e.keepProfiled(profile, r)
				}
				if r.Errors > 0 {
					return section{}, fmt.Errorf("%s %s: %d of %d requests failed; first: %s", g.label, s, r.Errors, r.Errors+r.Requests, r.FirstErr)
				}
				runs = append(runs, r)
			}
		}
		g.adminRun, g.repRun = best(runs, "admin", g.label, true), best(runs, "rep", g.label, true)
	}

	s := section{
		Title: fmt.Sprintf("rowrule: a rep's list under a row rule vs an admin's filtered list, %s rows", thousands(n)),
		Intro: fmt.Sprintf("`%s` has %s rows loaded with COPY like `bench_deal` (same statuses, amounts and dates; plus a "+
			"`team`, one of %d) and the index declared in its definition, `{\"fields\": [\"owner\", \"-amount\"]}`, then VACUUM "+
			"ANALYZE (%s in all). Role `%s` is `PUT /api/v1/roles/%s` with `%s`; two users with that role (`POST /api/v1/users`) "+
			"own every 200th row (%s rows, 0.5%%) and every 50th row (%s rows, 2%%); %d other owners share the rest at random. "+
			"The rep lists `GET /api/v1/data/%s?sort=-amount&limit=50` (rows limited by the rule); the admin lists the same "+
			"rows with `?filter=owner == \"<rep's id>\"&sort=-amount&limit=50` (URL-encoded). Both answer the same 50 ids. "+
			"Two reps because 1%% of a million rows would put the planner's row estimate right on the list's exact-count threshold "+
			"(`engine.ExactCountLimit`, %s: a total estimated at no more is counted exactly, a larger one is the estimate), and "+
			"which side it lands on would change with ANALYZE's random sample. %d clients; admin and rep alternate, %s measured "+
			"per run after a %s warm-up, best of %d runs per side (lowest p99).",
			entity, thousands(n), len(teams), loadTime.Round(time.Second), ruleRole, ruleRole, string(role),
			thousands(reps[0].rows), thousands(reps[1].rows), ruleOthers, entity, thousands(engine.ExactCountLimit),
			clients, e.cfg.duration, warmup, e.cfg.rounds),
		Table: [][]string{{"rep's rows", "admin p50 / p99", "rep p50 / p99", "p50 ratio", "p99 ratio", "goal", "met? (p50 / p99)",
			"admin req/s", "rep req/s", "total (estimate?) admin / rep"}},
	}
	for _, g := range regimes {
		a, r := g.adminRun, g.repRun
		p50 := float64(r.Percentile(0.5)) / float64(a.Percentile(0.5))
		p99 := float64(r.Percentile(0.99)) / float64(a.Percentile(0.99))
		s.Table = append(s.Table, []string{thousands(g.rep.rows), ms(a.Percentile(0.5)) + " / " + ms(a.Percentile(0.99)),
			ms(r.Percentile(0.5)) + " / " + ms(r.Percentile(0.99)), fmt.Sprintf("%.2f", p50), fmt.Sprintf("%.2f", p99), "≤ 1.3",
			met(p50 <= 1.3) + " / " + met(p99 <= 1.3), fmt.Sprintf("%.0f", a.Throughput()), fmt.Sprintf("%.0f", r.Throughput()),
			fmt.Sprintf("%d (%t) / %d (%t)", g.admin.Total, g.admin.TotalIsEstimate, g.repPage.Total, g.repPage.TotalIsEstimate)})
		s.Summary = append(s.Summary, fmt.Sprintf("rowrule %s c=%d: admin p50 %s p99 %s, rep p50 %s p99 %s, ratio rep/admin p50 %.2f p99 %.2f (goal ≤ 1.3: %s / %s); "+
			"total admin %d (total_is_estimate %t), rep %d (total_is_estimate %t), exact %d",
			g.label, clients, ms(a.Percentile(0.5)), ms(a.Percentile(0.99)), ms(r.Percentile(0.5)), ms(r.Percentile(0.99)), p50, p99,
			met(p50 <= 1.3), met(p99 <= 1.3), g.admin.Total, g.admin.TotalIsEstimate, g.repPage.Total, g.repPage.TotalIsEstimate, g.exact))
	}
	s.Detail = detailRows(runs, "req/s")
	if len(regimes) == 2 && regimes[0].repPage.TotalIsEstimate != regimes[1].repPage.TotalIsEstimate {
		counted, estimated := regimes[0], regimes[1]
		if counted.repPage.TotalIsEstimate {
			counted, estimated = estimated, counted
		}
		_, cPG, _ := counted.repRun.perOp()
		_, ePG, _ := estimated.repRun.perOp()
		s.Notes = append(s.Notes, fmt.Sprintf("The two reps differ in what the total costs: %s's total is counted exactly "+
			"(%d rows), %s's is the planner's estimate (%d for %d rows). PostgreSQL spent %s per rep request in the first case and "+
			"%s in the second, and the rep's p50 was %s against %s (the page itself reads the first 51 index entries either "+
			"way). Whichever it is, the admin's list pays the same, so it moves both sides of the ratio.",
			counted.label, counted.repPage.Total, estimated.label, estimated.repPage.Total, estimated.exact, ms(cPG), ms(ePG),
			ms(counted.repRun.Percentile(0.5)), ms(estimated.repRun.Percentile(0.5))))
	}
	for _, g := range regimes {
		notes, err := e.ruleNotes(ctx, g.label, g.rep.rows, g.adminRun, g.repRun, g.adminSt, g.repSt, g.adminT, g.repT)
		if err != nil {
			return section{}, err
		}
		s.Notes = append(s.Notes, notes...)
	}
	return s, nil
}

// ruleShow picks the frames where the two lists could differ.
const ruleShow = `tessera/web\.\(\*recordHandlers\)\.list$|tessera/engine\.\(\*Engine\)\.list$|tessera/engine\.total$|` +
	`tessera/engine\.\(\*Engine\)\.compileList$|tessera/engine\.rowPredicate$|tessera/engine/auth\.\(\*Service\)\.Authenticate$|` +
	`tessera/engine/auth\.scanUserRow$|tessera/engine/query\.Parse$|pgx/v5\.\(\*Conn\)\.Query$|encoding/json\.(Marshal|Unmarshal)$`

func (e *env) ruleNotes(ctx context.Context, label string, rows int, a, r result, adminSt, repSt []capturedStmt, adminT, repT time.Duration) ([]string, error) {
	aGo, aPG, aStmts := a.perOp()
	rGo, rPG, rStmts := r.perOp()
	notes := []string{fmt.Sprintf("**%s.** Per request the admin's list sent %.1f SQL statements and the rep's %.1f; CPU per request: "+
		"%s in the bench process and %s in PostgreSQL for the admin, %s and %s for the rep; CPU busy (bench / PostgreSQL / "+
		"whole machine, of %d CPUs) %s for the admin, %s for the rep. One request alone, after the runs' warm-up of caches: "+
		"the admin's took %s, the rep's %s.",
		label, aStmts, rStmts, ms(aGo), ms(aPG), ms(rGo), ms(rPG), runtime.NumCPU(), a.busyText(), r.busyText(), ms(adminT), ms(repT))}
	// Little's law: with the clients always busy, mean time = clients ÷ throughput; on a
	// busy machine, throughput ≈ CPUs used ÷ CPU per request.
	for _, x := range []struct {
		who string
		r   result
	}{{"admin", a}, {"rep", r}} {
		g, p, _ := x.r.perOp()
		_, _, busy := x.r.busy()
		if p < 0 || busy < 0 {
			continue
		}
		notes = append(notes, fmt.Sprintf("The %s's requests (%s): %s of CPU each (bench + PostgreSQL) with the machine's %d CPUs "+
			"%s busy allow %.0f req/s, measured %.0f; %d clients ÷ %.0f req/s = %s mean per request, of which one request alone "+
			"takes about %s: the rest is queueing behind the other clients' requests.",
			x.who, label, ms(g+p), runtime.NumCPU(), pct(busy), busy*float64(runtime.NumCPU())/(g+p).Seconds(), x.r.Throughput(),
			x.r.Clients, x.r.Throughput(), ms(x.r.Mean()), ms(map[string]time.Duration{"admin": adminT, "rep": repT}[x.who])))
	}
	notes = append(notes, "The admin's list sends (one request alone; the total — EXPLAIN, then the count when the estimate "+
		"is small — runs on a second connection while the page is read):\n\n"+statementList(adminSt)+"\nThe rep's:\n\n"+statementList(repSt))
	// The server-side plans of the page query and the exact count, when there is one:
	// the rep's, and whether the admin's is the same.
	for _, kind := range []string{"page query", "exact count"} {
		rep, admin := listStatement(repSt, kind), listStatement(adminSt, kind)
		if rep == nil || admin == nil {
			continue
		}
		repPlan, err := explain(ctx, e, rep.SQL, rep.Args...)
		if err != nil {
			return nil, err
		}
		adminPlan, err := explain(ctx, e, admin.SQL, admin.Args...)
		if err != nil {
			return nil, err
		}
		same := "the admin's, with the owner from its filter instead of the rule, has the same plan"
		if planShape(repPlan) != planShape(adminPlan) {
			same = "the admin's differs:\n\n```\n" + adminPlan + "```"
		}
		notes = append(notes, fmt.Sprintf("EXPLAIN ANALYZE of the rep's %s (%s):\n\n```\n%s```\n\n%s.", kind, label, repPlan, same))
	}
	names := []string{fmt.Sprintf("rowrule-admin-%d", rows), fmt.Sprintf("rowrule-rep-%d", rows)}
	if tbl := e.perRequestCPU(names, ruleShow, shortFrame); len(tbl) > 1 {
		var t strings.Builder
		markdownTable(&t, tbl)
		notes = append(notes, fmt.Sprintf("CPU profiles of the last admin and rep runs (%s; `-cpuprofile`), cumulative CPU per "+
			"request (warm-up included) in the frames where the two could differ:\n\n%s", label, t.String()))
	}
	return notes, nil
}

// listStatement finds a list request's page query or exact count among its statements.
func listStatement(stmts []capturedStmt, kind string) *capturedStmt {
	for i, st := range stmts {
		switch {
		case kind == "page query" && strings.HasPrefix(st.SQL, "SELECT jsonb_build_object") && strings.Contains(st.SQL, " LIMIT "):
			return &stmts[i]
		case kind == "exact count" && strings.HasPrefix(st.SQL, "SELECT count(*)"):
			return &stmts[i]
		}
	}
	return nil
}

var planTimes = regexp.MustCompile(`\(actual [^)]*\)|(Planning|Execution) Time: .*|Memory: \S+`)

// planShape is a plan without its timings, to compare two plans.
func planShape(plan string) string {
	return planTimes.ReplaceAllString(plan, "")
}
