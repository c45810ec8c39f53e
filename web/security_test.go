package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
)

const companyDef = `{"type": "object", "x-entity": {"name": "company"}, "required": ["name"], "properties": {
  "name":         {"type": "string", "x-field-id": "c1"},
  "region":       {"enum": ["EU", "US"], "x-field-id": "c2"},
  "credit_limit": {"type": "string", "format": "money", "x-field-id": "c3"}}}`

const dealDef = `{"type": "object", "x-entity": {"name": "deal"}, "required": ["name"], "properties": {
  "name":        {"type": "string", "x-field-id": "d1"},
  "amount":      {"type": "string", "format": "money", "x-field-id": "d2"},
  "margin":      {"type": "string", "format": "decimal", "x-field-id": "d3"},
  "owner":       {"type": "string", "format": "uuid", "x-field-id": "d4"},
  "team":        {"type": "string", "x-field-id": "d5"},
  "secret_note": {"type": "string", "x-field-id": "d6"},
  "customer":    {"type": "string", "format": "uuid", "x-relation": {"entity": "company"}, "x-field-id": "d7"}}}`

const salesRep = `{"entities": {
  "deal": {"read": true, "create": true, "update": true, "rows": "owner == $user.id || team in $user.teams",
           "fields": {"margin": "hidden", "secret_note": "hidden", "amount": "read_only"}},
  "company": {"read": true, "rows": "region == \"EU\"", "fields": {"credit_limit": "hidden"}}}}`

const salesManager = `{"entities": {"*": {"read": true, "update": true, "delete": true, "export": true}}}`

// as returns a bundle signed in as another user.
func (b *testBundle) as(email, password string) *testBundle {
	b.t.Helper()
	other := &testBundle{t: b.t, app: b.app, pool: b.pool}
	var out struct{ Token string }
	other.expect("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": password}, 200, &out)
	other.token = out.Token
	return other
}

type securityFixture struct {
	admin, rep, manager *testBundle
	repID               string
	deals               map[string]string // name → id
}

func setupSecurity(t *testing.T) *securityFixture {
	b := setup(t)
	b.putEntity(companyDef)
	b.putEntity(dealDef)
	b.expect("PUT", "/api/v1/roles/sales_rep", salesRep, 200, nil)
	b.expect("PUT", "/api/v1/roles/sales_manager", salesManager, 200, nil)
	var rep1, rep2 map[string]any
	b.expect("POST", "/api/v1/users", map[string]any{"email": "rep1@example.com", "password": "rep1 password!", "roles": []string{"sales_rep"}, "teams": []string{"north"}}, 201, &rep1)
	b.expect("POST", "/api/v1/users", map[string]any{"email": "rep2@example.com", "password": "rep2 password!", "roles": []string{"sales_rep"}, "teams": []string{"south"}}, 201, &rep2)
	b.expect("POST", "/api/v1/users", map[string]any{"email": "boss@example.com", "password": "boss password!", "roles": []string{"sales_manager"}}, 201, nil)
	eu := b.create("company", map[string]any{"name": "EuroCo", "region": "EU", "credit_limit": "50000.00"})
	us := b.create("company", map[string]any{"name": "USCo", "region": "US", "credit_limit": "90000.00"})
	f := &securityFixture{admin: b, repID: rep1["id"].(string), deals: map[string]string{}}
	for _, d := range []map[string]any{
		{"name": "own", "amount": "100.00", "margin": "0.30", "owner": rep1["id"], "team": "east", "secret_note": "magicword", "customer": eu["id"]},
		{"name": "team", "amount": "200.00", "margin": "0.20", "owner": rep2["id"], "team": "north", "customer": us["id"]},
		{"name": "other", "amount": "300.00", "margin": "0.10", "owner": rep2["id"], "team": "south", "secret_note": "magicword"},
		{"name": "boss", "amount": "400.00", "margin": "0.50", "team": "none"},
	} {
		f.deals[d["name"].(string)] = b.create("deal", d)["id"].(string)
	}
	f.rep = b.as("rep1@example.com", "rep1 password!")
	f.manager = b.as("boss@example.com", "boss password!")
	return f
}

type page struct {
	Items []map[string]any
	Total int
}

func names(p page) string {
	var out []string
	for _, it := range p.Items {
		out = append(out, it["name"].(string))
	}
	return strings.Join(out, ",")
}

// TestPermissionMatrix walks every door with a restricted user: no row, field or total
// outside the rules leaks.
func TestPermissionMatrix(t *testing.T) {
	f := setupSecurity(t)
	rep := f.rep
	var p page
	q := func(params url.Values) page {
		var p page
		rep.expect("GET", "/api/v1/data/deal?"+params.Encode(), nil, 200, &p)
		return p
	}

	t.Run("get", func(t *testing.T) {
		var d map[string]any
		rep.expect("GET", "/api/v1/data/deal/"+f.deals["own"], nil, 200, &d)
		if _, ok := d["margin"]; ok || d["secret_note"] != nil {
			t.Errorf("hidden fields returned: %v", d)
		}
		rep.expect("GET", "/api/v1/data/deal/"+f.deals["other"], nil, 404, nil)
		rep.expect("GET", "/api/v1/data/deal/"+f.deals["boss"], nil, 404, nil)
	})
	t.Run("list and count", func(t *testing.T) {
		p = q(url.Values{"sort": {"name"}})
		if names(p) != "own,team" || p.Total != 2 {
			t.Errorf("list: %s total %d", names(p), p.Total)
		}
		for _, it := range p.Items {
			if _, ok := it["margin"]; ok {
				t.Errorf("margin in list item %v", it)
			}
		}
	})
	t.Run("search cannot see hidden text", func(t *testing.T) {
		if p := q(url.Values{"q": {"magicword"}}); p.Total != 0 {
			t.Errorf("search found %d rows through a hidden field", p.Total)
		}
		var all page
		f.admin.expect("GET", "/api/v1/data/deal?q=magicword", nil, 200, &all)
		if all.Total != 2 {
			t.Errorf("admin search: %d", all.Total)
		}
	})
	t.Run("hidden field in filter, sort, fields, expand", func(t *testing.T) {
		for _, params := range []url.Values{
			{"filter": {`margin > "0.25"`}}, {"filter": {`secret_note == "magicword"`}},
			{"sort": {"margin"}}, {"sort": {"-secret_note"}}, {"fields": {"name,margin"}},
		} {
			rep.expect("GET", "/api/v1/data/deal?"+params.Encode(), nil, 400, nil)
		}
		// Filtering by other users' rows finds nothing beyond the rules.
		if p := q(url.Values{"filter": {`team == "south"`}}); p.Total != 0 {
			t.Errorf("filter reached a row outside the rules: %d", p.Total)
		}
	})
	t.Run("expand", func(t *testing.T) {
		p := q(url.Values{"expand": {"customer"}, "sort": {"name"}})
		own := p.Items[0]["_expand"].(map[string]any)["customer"].(map[string]any)
		if own["name"] != "EuroCo" || own["credit_limit"] != nil {
			t.Errorf("expanded EU company: %v", own)
		}
		if us := p.Items[1]["_expand"].(map[string]any)["customer"]; us != nil {
			t.Errorf("expanded a company outside the rules: %v", us)
		}
	})
	t.Run("export", func(t *testing.T) {
		rep.expect("GET", "/api/v1/data/deal/export", nil, 403, nil)
		resp := f.manager.expect("GET", "/api/v1/data/deal/export?sort=name", nil, 200, nil)
		if !strings.Contains(string(resp.Body), "margin") || strings.Count(string(resp.Body), "\n") != 5 {
			t.Errorf("manager export:\n%s", resp.Body)
		}
	})
	t.Run("report", func(t *testing.T) {
		var r struct{ Items []map[string]any }
		rep.expect("POST", "/api/v1/reports/query", map[string]any{"entity": "deal",
			"measures": []any{map[string]any{"op": "sum", "field": "amount", "as": "total"}, map[string]any{"op": "count", "as": "n"}}}, 200, &r)
		if r.Items[0]["total"] != "300.00" || r.Items[0]["n"] != float64(2) {
			t.Errorf("report over visible rows: %v", r.Items)
		}
		rep.expect("POST", "/api/v1/reports/query", map[string]any{"entity": "deal",
			"measures": []any{map[string]any{"op": "sum", "field": "margin", "as": "m"}}}, 400, nil)
		rep.expect("POST", "/api/v1/reports/query", map[string]any{"entity": "deal", "groupBy": []any{map[string]any{"field": "secret_note"}},
			"measures": []any{map[string]any{"op": "count", "as": "n"}}}, 400, nil)
	})
	t.Run("script db", func(t *testing.T) {
		f.admin.putScript("deal_probe", `return {n: db.list("deal", "", {}).length, other: db.find("deal", "name == \"other\""), one: db.get("deal", request.query.id)}`,
			map[string]any{"module": "crm", "methods": []string{"GET"}})
		var out map[string]any
		rep.expect("GET", "/api/v1/x/crm/deal_probe?id="+f.deals["boss"], nil, 200, &out)
		if out["n"] != float64(2) || out["other"] != nil || out["one"] != nil {
			t.Errorf("script saw beyond the rules: %v", out)
		}
	})
	t.Run("history", func(t *testing.T) {
		rep.expect("GET", "/api/v1/data/deal/"+f.deals["other"]+"/history", nil, 404, nil)
		var h struct {
			Items []struct{ Diff map[string]any }
		}
		rep.expect("GET", "/api/v1/data/deal/"+f.deals["own"]+"/history", nil, 200, &h)
		if _, ok := h.Items[0].Diff["margin"]; ok {
			t.Errorf("history shows a hidden field: %v", h.Items[0].Diff)
		}
	})
	t.Run("writes", func(t *testing.T) {
		var e apiError
		rep.expect("PATCH", "/api/v1/data/deal/"+f.deals["own"], map[string]any{"amount": "1.00"}, 403, &e)
		if !e.hasPath("/amount") {
			t.Errorf("read-only detail: %+v", e)
		}
		rep.expect("PATCH", "/api/v1/data/deal/"+f.deals["own"], map[string]any{"margin": "0.99"}, 403, nil)
		rep.expect("PATCH", "/api/v1/data/deal/"+f.deals["own"], map[string]any{"name": "own renamed"}, 200, nil)
		rep.expect("PATCH", "/api/v1/data/deal/"+f.deals["other"], map[string]any{"name": "x"}, 404, nil)
		rep.expect("PATCH", "/api/v1/data/deal/"+f.deals["team"], map[string]any{"team": "south"}, 403, nil)
		rep.expect("POST", "/api/v1/data/deal", map[string]any{"name": "elsewhere", "team": "south"}, 403, nil)
		rep.expect("POST", "/api/v1/data/deal", map[string]any{"name": "mine", "owner": f.repID}, 201, nil)
		rep.expect("DELETE", "/api/v1/data/deal/"+f.deals["own"], nil, 403, nil)
		rep.expect("POST", "/api/v1/data/company", map[string]any{"name": "x"}, 403, nil)
		rep.expect("POST", "/api/v1/data/deal/import?key=name", "name\nx\n", 403, nil)
		rep.expect("PUT", "/api/v1/roles/sales_rep", salesManager, 403, nil)
		var n int
		if err := f.admin.pool.QueryRow(context.Background(), "SELECT count(*) FROM data.deal").Scan(&n); err != nil || n != 5 {
			t.Errorf("deals after writes: %d %v", n, err)
		}
	})
	t.Run("metadata", func(t *testing.T) {
		var ent struct {
			Definition any
			Fields     []struct{ Name string }
		}
		rep.expect("GET", "/api/v1/entities/deal", nil, 200, &ent)
		for _, f := range ent.Fields {
			if f.Name == "margin" || f.Name == "secret_note" {
				t.Errorf("entity metadata shows hidden field %s", f.Name)
			}
		}
		if ent.Definition != nil {
			t.Error("raw definition shown to a non-designer")
		}
		rep.expect("PUT", "/api/v1/entities/deal", dealDef, 403, nil)
		rep.expect("GET", "/api/v1/openapi.json", nil, 403, nil)
	})
	t.Run("manager sees everything", func(t *testing.T) {
		var p page
		f.manager.expect("GET", "/api/v1/data/deal", nil, 200, &p)
		if _, ok := p.Items[0]["margin"]; p.Total != 5 || !ok {
			t.Errorf("manager list: %d %v", p.Total, p.Items[0])
		}
	})
	t.Run("explain", func(t *testing.T) {
		var ex struct {
			Decision string
			Actions  map[string]struct {
				Allowed   bool
				Rows      string
				MatchedBy []struct{ Role, Rule string } `json:"matched_by"`
			}
			Fields map[string]struct{ Hidden bool }
		}
		f.admin.expect("GET", "/api/v1/explain?user=rep1@example.com&entity=deal&id="+f.deals["team"], nil, 200, &ex)
		if !ex.Actions["read"].Allowed || ex.Actions["read"].MatchedBy[0].Role != "sales_rep" || !ex.Fields["margin"].Hidden || ex.Actions["delete"].Allowed {
			t.Errorf("explain team deal: %+v", ex)
		}
		f.admin.expect("GET", "/api/v1/explain?user=rep1@example.com&entity=deal&id="+f.deals["other"], nil, 200, &ex)
		if ex.Actions["read"].Allowed || !strings.Contains(ex.Decision, "no row rule matches") {
			t.Errorf("explain other deal: %+v", ex)
		}
	})
}

func TestRoleValidation(t *testing.T) {
	b := setup(t)
	b.putEntity(companyDef)
	b.putEntity(dealDef)
	var e apiError
	b.expect("PUT", "/api/v1/roles/bad", `{"entities": {"deal": {"read": true, "rows": "nosuch == 1", "fields": {"ghost": "hidden"}}, "nope": {"read": true}}}`, 422, &e)
	for _, path := range []string{"/entities/deal/rows", "/entities/deal/fields/ghost", "/entities/nope"} {
		if !e.hasPath(path) {
			t.Errorf("no problem at %s: %+v", path, e.Error.Details)
		}
	}
	b.expect("PUT", "/api/v1/roles/bad", `{"entities": {"deal": {"read": true, "fields": {"name": "invisible"}}}}`, 422, nil)
	b.expect("PUT", "/api/v1/roles/bad", `{"entities": {"deal": {"reed": true}}}`, 422, nil)
}

func TestAttacks(t *testing.T) {
	f := setupSecurity(t)
	b := f.admin
	ctx := context.Background()

	t.Run("tokens", func(t *testing.T) {
		anon := &testBundle{t: t, app: b.app, pool: b.pool}
		anon.expect("GET", "/api/v1/data/deal", nil, 401, nil)
		anon.token = "tss_forged"
		anon.expect("GET", "/api/v1/data/deal", nil, 401, nil)
		expired := b.as("rep1@example.com", "rep1 password!")
		if _, err := b.pool.Exec(ctx, "UPDATE tessera.sessions SET expires_at = now() - interval '1 second' WHERE token_hash = sha256($1::bytea)", expired.token); err != nil {
			t.Fatal(err)
		}
		expired.expect("GET", "/api/v1/data/deal", nil, 401, nil)

		var key struct {
			Key    string
			APIKey struct{ ID string } `json:"api_key"`
		}
		f.rep.expect("POST", "/api/v1/api-keys", map[string]any{"name": "crm sync"}, 201, &key)
		integration := &testBundle{t: t, app: b.app, pool: b.pool, token: key.Key}
		var p page
		integration.expect("GET", "/api/v1/data/deal", nil, 200, &p)
		if p.Total != 2 {
			t.Errorf("api key acts as its user: %d rows", p.Total)
		}
		f.rep.expect("DELETE", "/api/v1/api-keys/"+key.APIKey.ID, nil, 204, nil)
		integration.expect("GET", "/api/v1/data/deal", nil, 401, nil)
		var stored int
		_ = b.pool.QueryRow(ctx, "SELECT count(*) FROM tessera.api_keys WHERE key_hash = sha256($1::bytea)", key.Key).Scan(&stored)
		if stored != 1 {
			t.Errorf("api key not stored as a hash")
		}
	})

	t.Run("cookie session needs CSRF", func(t *testing.T) {
		login := httptest.NewRequest("POST", "/api/v1/auth/login", strings.NewReader(`{"email": "rep1@example.com", "password": "rep1 password!"}`))
		login.Header.Set("Content-Type", "application/json")
		resp, err := b.app.Test(login, -1)
		if err != nil {
			t.Fatal(err)
		}
		var out struct {
			CSRF string `json:"csrf_token"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&out)
		var cookie string
		for _, c := range resp.Cookies() {
			if c.Name == sessionCookie {
				cookie = c.Name + "=" + c.Value
				if !c.HttpOnly {
					t.Error("session cookie is not HttpOnly")
				}
			}
		}
		browser := &testBundle{t: t, app: b.app, pool: b.pool}
		browser.expect("GET", "/api/v1/data/deal", nil, 200, nil, "Cookie", cookie)
		body := map[string]any{"name": "csrf", "owner": f.repID}
		browser.expect("POST", "/api/v1/data/deal", body, 403, nil, "Cookie", cookie)
		browser.expect("POST", "/api/v1/data/deal", body, 403, nil, "Cookie", cookie, csrfHeader, "wrong")
		browser.expect("POST", "/api/v1/data/deal", body, 201, nil, "Cookie", cookie, csrfHeader, out.CSRF)
	})

	t.Run("injection as a restricted user", func(t *testing.T) {
		var visible page
		f.rep.expect("GET", "/api/v1/data/deal", nil, 200, &visible)
		for _, params := range []url.Values{
			{"filter": {`name == "x" || true`}}, {"filter": {`owner == $user.id || 1 == 1`}},
			{"filter": {`name == "') OR 1=1 --"`}}, {"sort": {"name;DELETE FROM data.deal"}},
			{"fields": {"name,(SELECT margin)"}}, {"expand": {"customer;DROP TABLE data.deal"}},
		} {
			resp := f.rep.request("GET", "/api/v1/data/deal?"+params.Encode(), nil)
			if resp.Status == 200 {
				var p page
				_ = json.Unmarshal(resp.Body, &p)
				if p.Total > visible.Total {
					t.Errorf("%v widened the rows to %d", params, p.Total)
				}
			} else if resp.Status != 400 {
				t.Errorf("%v: %d %s", params, resp.Status, resp.Body)
			}
		}
	})

	t.Run("body limits", func(t *testing.T) {
		huge := `{"name": "` + strings.Repeat("a", 50<<20) + `"}`
		b.expect("POST", "/api/v1/data/deal", huge, 413, nil)
		deep := strings.Repeat(`{"a":`, 10000) + "1" + strings.Repeat("}", 10000)
		b.expect("POST", "/api/v1/data/deal", deep, 400, nil)
	})

	t.Run("login flood", func(t *testing.T) {
		anon := &testBundle{t: t, app: b.app, pool: b.pool}
		limited := 0
		retry := ""
		for i := range 1000 {
			resp := anon.request("POST", "/api/v1/auth/login", map[string]string{"email": "rep1@example.com", "password": fmt.Sprintf("guess %d", i)})
			switch resp.Status {
			case 401:
			case 429:
				limited++
				retry = resp.Header.Get(fiber.HeaderRetryAfter)
			default:
				t.Fatalf("attempt %d: %d %s", i, resp.Status, resp.Body)
			}
		}
		if limited < 990 || retry == "" {
			t.Fatalf("rate limited %d of 1000, Retry-After %q", limited, retry)
		}
		var seconds int
		fmt.Sscan(retry, &seconds)
		if seconds > 15*60+1 {
			t.Errorf("lockout of %d s exceeds the 15 minute cap", seconds)
		}
		// The lock expires by itself: once it has, the real user signs in.
		if _, err := b.pool.Exec(ctx, "UPDATE tessera.login_attempts SET locked_until = now() - interval '1 second'"); err != nil {
			t.Fatal(err)
		}
		b.as("rep1@example.com", "rep1 password!")
	})

	t.Run("audit", func(t *testing.T) {
		var ev struct {
			Items []struct{ Action, Actor, Target string }
		}
		b.expect("GET", "/api/v1/audit?limit=500", nil, 200, &ev)
		seen := map[string]bool{}
		for _, e := range ev.Items {
			seen[e.Action] = true
		}
		for _, action := range []string{"login", "login_failed", "role.put", "entity.put", "user.create", "api_key.create", "api_key.revoke"} {
			if !seen[action] {
				t.Errorf("no %s event in the audit log", action)
			}
		}
		f.rep.expect("GET", "/api/v1/audit", nil, 403, nil)
		if _, err := b.pool.Exec(ctx, "DELETE FROM tessera.audit_log"); err == nil {
			t.Error("the audit log accepted a DELETE")
		}
	})
}
