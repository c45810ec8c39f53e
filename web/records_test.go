package web

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/shopspring/decimal"
)

const accountDef = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "x-entity": {"name": "account", "label": {"en": "Account", "zh-CN": "客户"}, "titleField": "name",
    "indexes": [{"fields": ["industry", "-revenue"]}]},
  "required": ["name"],
  "properties": {
    "name":         {"type": "string", "minLength": 1, "maxLength": 200, "x-field-id": "a1", "x-label": {"en": "Name"}},
    "code":         {"type": "string", "x-unique": true, "x-field-id": "a2"},
    "notes":        {"type": "string", "x-ui": {"widget": "textarea"}, "x-field-id": "a3"},
    "employees":    {"type": "integer", "minimum": 0, "x-field-id": "a4"},
    "rating":       {"type": "string", "format": "decimal", "x-field-id": "a5"},
    "revenue":      {"type": "string", "format": "money", "x-currency": "EUR", "x-field-id": "a6"},
    "discount":     {"type": "string", "format": "percent", "x-field-id": "a7"},
    "active":       {"type": "boolean", "default": true, "x-field-id": "a8"},
    "founded":      {"type": "string", "format": "date", "x-field-id": "a9"},
    "last_contact": {"type": "string", "format": "date-time", "x-field-id": "a10"},
    "industry":     {"enum": ["tech", "retail", "manufacturing"], "x-field-id": "a11"},
    "tags":         {"type": "array", "items": {"enum": ["vip", "partner", "new"]}, "uniqueItems": true, "x-field-id": "a12"},
    "email":        {"type": "string", "format": "email", "x-field-id": "a13"},
    "phone":        {"type": "string", "format": "phone", "x-field-id": "a14"},
    "website":      {"type": "string", "format": "uri", "x-field-id": "a15"},
    "external_id":  {"type": "string", "format": "uuid", "x-field-id": "a16"},
    "meta":         {"type": "object", "x-field-id": "a17"}
  }
}`

const orderDef = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "x-entity": {"name": "sales_order", "label": {"en": "Sales order", "zh-CN": "销售订单"}, "titleField": "number",
    "autonumber": {"field": "number", "pattern": "SO-{YYYY}-{seq:5}"}},
  "required": ["customer"],
  "properties": {
    "number":   {"type": "string", "x-field-id": "o1"},
    "customer": {"type": "string", "format": "uuid", "x-relation": {"entity": "account", "onDelete": "restrict"}, "x-field-id": "o2"},
    "status":   {"enum": ["draft", "confirmed"], "default": "draft", "x-field-id": "o3"},
    "lines":    {"type": "array", "x-child": {"entity": "sales_order_line"}, "x-field-id": "o4",
      "items": {"type": "object", "required": ["qty", "amount"], "properties": {
        "product": {"type": "string", "x-field-id": "l1"},
        "qty":     {"type": "integer", "minimum": 1, "x-field-id": "l2"},
        "amount":  {"type": "string", "format": "money", "x-field-id": "l3"}}}}
  }
}`

func (b *testBundle) putEntity(def string) {
	b.t.Helper()
	var m struct {
		XEntity struct{ Name string } `json:"x-entity"`
	}
	if err := json.Unmarshal([]byte(def), &m); err != nil {
		b.t.Fatal(err)
	}
	b.expect("PUT", "/api/v1/entities/"+m.XEntity.Name, def, 201, nil)
}

// record reads one record as the bundle's user.
func (b *testBundle) record(entity string, id any) map[string]any {
	b.t.Helper()
	var out map[string]any
	b.expect("GET", fmt.Sprintf("/api/v1/data/%s/%v", entity, id), nil, 200, &out)
	return out
}

func (b *testBundle) create(entity string, rec any) map[string]any {
	b.t.Helper()
	var out map[string]any
	b.expect("POST", "/api/v1/data/"+entity, rec, 201, &out)
	return out
}

func TestFieldTypesRoundTrip(t *testing.T) {
	b := setup(t)
	b.putEntity(accountDef)
	in := map[string]any{
		"name": "ACME 株式会社", "code": "AC-1", "notes": "line one\nline two", "employees": 9007199254740993,
		"rating": "4.75", "revenue": "123456789012345678.12", "discount": "12.5", "active": false,
		"founded": "1999-12-31", "last_contact": "2026-11-28T10:30:00Z", "industry": "tech",
		"tags": []string{"vip", "partner"}, "email": "info@acme.example", "phone": "+49 30 1234567",
		"website": "https://acme.example/about", "external_id": "0193a7c2-5f1e-7a3b-9c4d-1e2f3a4b5c6d",
		"meta": map[string]any{"source": "fair", "score": 3},
	}
	created := b.create("account", in)
	var got map[string]json.RawMessage
	b.expect("GET", "/api/v1/data/account/"+created["id"].(string), nil, 200, &got)
	want, _ := json.Marshal(in)
	var wantFields map[string]json.RawMessage
	_ = json.Unmarshal(want, &wantFields)
	for k, v := range wantFields {
		if !jsonSame(t, v, got[k]) {
			t.Errorf("%s: stored %s, read back %s", k, v, got[k])
		}
	}
	if string(got["version"]) != "1" || got["created_at"] == nil || got["id"] == nil {
		t.Errorf("system fields missing: %s", got)
	}
	// Default applied when omitted.
	other := b.create("account", map[string]any{"name": "Other"})
	if other["active"] != true {
		t.Errorf("default not applied: %v", other["active"])
	}
}

func jsonSame(t *testing.T, a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return false
	}
	// Timestamps come back in PostgreSQL's rendering; compare them as instants.
	xs, ok1 := x.(string)
	ys, ok2 := y.(string)
	if ok1 && ok2 && strings.Contains(xs, "T") && strings.HasSuffix(xs, "Z") {
		return strings.HasPrefix(ys, strings.TrimSuffix(xs, "Z"))
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return string(xb) == string(yb)
}

func TestBadInput(t *testing.T) {
	b := setup(t)
	b.putEntity(accountDef)
	cases := []struct {
		name   string
		body   any
		status int
		path   string
	}{
		{"malformed json", `{"name": "x",`, 400, ""},
		{"not an object", `[1, 2]`, 422, ""},
		{"empty body", ``, 400, ""},
		{"trailing data", `{"name": "x"} {"name": "y"}`, 400, ""},
		{"unknown field", map[string]any{"name": "x", "nmae": "typo"}, 422, "/nmae"},
		{"system field", map[string]any{"name": "x", "version": 7}, 422, "/version"},
		{"missing required", map[string]any{"code": "x"}, 422, ""},
		{"bad enum", map[string]any{"name": "x", "industry": "space"}, 422, "/industry"},
		{"float for money", map[string]any{"name": "x", "revenue": 12.5}, 422, "/revenue"},
		{"bad decimal", map[string]any{"name": "x", "revenue": "12,50"}, 422, "/revenue"},
		{"bad date", map[string]any{"name": "x", "founded": "2026-02-30"}, 422, "/founded"},
		{"bad email", map[string]any{"name": "x", "email": "not-an-email"}, 422, "/email"},
		{"bad multi-select", map[string]any{"name": "x", "tags": []string{"vip", "gold"}}, 422, "/tags/1"},
		{"too long", map[string]any{"name": strings.Repeat("x", 201)}, 422, "/name"},
		{"deep nesting", `{"meta": ` + strings.Repeat(`{"a": `, 100) + `1` + strings.Repeat(`}`, 100) + `}`, 400, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var e apiError
			b.expect("POST", "/api/v1/data/account", tc.body, tc.status, &e)
			if tc.path != "" && !e.hasPath(tc.path) {
				t.Errorf("no detail at %s: %+v", tc.path, e.Error.Details)
			}
		})
	}
	// A 17 MB body is refused before it reaches a handler.
	huge := `{"name": "` + strings.Repeat("x", 17<<20) + `"}`
	if st := b.request("POST", "/api/v1/data/account", huge).Status; st != 413 {
		t.Errorf("huge body: status %d, want 413", st)
	}
	var n int
	if err := b.pool.QueryRow(context.Background(), "SELECT count(*) FROM data.account").Scan(&n); err != nil || n != 0 {
		t.Errorf("bad input changed the table: %d rows, %v", n, err)
	}
	b.token = ""
	b.expect("GET", "/api/v1/data/account", nil, 401, nil)
}

func TestUniqueRelationsAndLines(t *testing.T) {
	b := setup(t)
	b.putEntity(accountDef)
	b.putEntity(orderDef)
	acc := b.create("account", map[string]any{"name": "A", "code": "X1"})
	var e apiError
	b.expect("POST", "/api/v1/data/account", map[string]any{"name": "B", "code": "X1"}, 409, &e)
	if !e.hasPath("/code") {
		t.Errorf("409 without /code detail: %+v", e)
	}
	b.expect("POST", "/api/v1/data/sales_order", map[string]any{"customer": "0193a7c2-5f1e-7a3b-9c4d-1e2f3a4b5c6d"}, 422, &e)
	if !e.hasPath("/customer") {
		t.Errorf("missing relation without /customer detail: %+v", e)
	}
	b.expect("POST", "/api/v1/data/sales_order", map[string]any{"customer": acc["id"], "lines": []any{map[string]any{"qty": 0, "amount": "1"}}}, 422, &e)
	if !e.hasPath("/lines/0/qty") {
		t.Errorf("line error without /lines/0/qty: %+v", e)
	}

	order := b.create("sales_order", map[string]any{"customer": acc["id"], "lines": []any{
		map[string]any{"product": "P1", "qty": 2, "amount": "10.10"},
		map[string]any{"product": "P2", "qty": 1, "amount": "5.05"},
	}})
	if !strings.HasPrefix(order["number"].(string), "SO-") || order["status"] != "draft" {
		t.Errorf("autonumber/default: %v %v", order["number"], order["status"])
	}
	lines := order["lines"].([]any)
	if len(lines) != 2 || lines[0].(map[string]any)["amount"] != "10.10" {
		t.Fatalf("lines: %v", lines)
	}
	// Expand the customer in the same query.
	var expanded map[string]any
	b.expect("GET", "/api/v1/data/sales_order/"+order["id"].(string)+"?expand=customer", nil, 200, &expanded)
	if name := expanded["_expand"].(map[string]any)["customer"].(map[string]any)["name"]; name != "A" {
		t.Errorf("expand: %v", expanded["_expand"])
	}
	// Replace the lines, keeping the first one's id.
	first := lines[0].(map[string]any)
	var updated map[string]any
	b.expect("PATCH", "/api/v1/data/sales_order/"+order["id"].(string), map[string]any{"lines": []any{
		map[string]any{"id": first["id"], "product": "P1", "qty": 3, "amount": "30.30"},
	}}, 200, &updated)
	got := updated["lines"].([]any)
	if len(got) != 1 || got[0].(map[string]any)["id"] != first["id"] || got[0].(map[string]any)["qty"] != float64(3) {
		t.Errorf("lines after patch: %v", got)
	}
	// A stored line with an empty optional field does not block a later update.
	b.expect("PATCH", "/api/v1/data/sales_order/"+order["id"].(string), map[string]any{"lines": []any{
		map[string]any{"qty": 1, "amount": "1.00"},
	}}, 200, nil)
	b.expect("PATCH", "/api/v1/data/sales_order/"+order["id"].(string), map[string]any{"status": "confirmed"}, 200, nil)
	// The account cannot be deleted from under the order (restrict) … as a soft delete it can,
	// but a new order may not reference a deleted account.
	b.expect("DELETE", "/api/v1/data/account/"+acc["id"].(string), nil, 204, nil)
	b.expect("POST", "/api/v1/data/sales_order", map[string]any{"customer": acc["id"]}, 422, nil)
}

func TestMoneyIsExact(t *testing.T) {
	b := setup(t)
	b.putEntity(accountDef)
	b.putEntity(orderDef)
	acc := b.create("account", map[string]any{"name": "A"})
	lines := make([]any, 10000)
	for i := range lines {
		lines[i] = map[string]any{"qty": 1, "amount": "0.10"}
	}
	order := b.create("sales_order", map[string]any{"customer": acc["id"], "lines": lines})
	sum := decimal.Zero
	for _, l := range order["lines"].([]any) {
		sum = sum.Add(decimal.RequireFromString(l.(map[string]any)["amount"].(string)))
	}
	if sum.String() != "1000" {
		t.Errorf("sum of 10,000 × 0.10 = %s", sum)
	}
	var dbSum string
	if err := b.pool.QueryRow(context.Background(), "SELECT sum(amount)::text FROM data.sales_order_line").Scan(&dbSum); err != nil || dbSum != "1000.00" {
		t.Errorf("SQL sum = %s, %v", dbSum, err)
	}
}

func TestIfMatchAndHistory(t *testing.T) {
	b := setup(t)
	b.putEntity(accountDef)
	acc := b.create("account", map[string]any{"name": "A", "employees": 5})
	path := "/api/v1/data/account/" + acc["id"].(string)
	// Two writers read version 1; exactly one wins.
	var wg sync.WaitGroup
	statuses := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses[i] = b.request("PATCH", path, map[string]any{"employees": 10 + i}, "If-Match", `"1"`).Status
		}()
	}
	wg.Wait()
	if !(statuses[0] == 200 && statuses[1] == 412 || statuses[0] == 412 && statuses[1] == 200) {
		t.Fatalf("concurrent If-Match: %v, want one 200 and one 412", statuses)
	}
	resp := b.expect("PATCH", path, map[string]any{"name": "B", "notes": nil}, 200, nil, "If-Match", `"2"`)
	if resp.Header.Get("ETag") != `"3"` {
		t.Errorf("ETag %q", resp.Header.Get("ETag"))
	}
	b.expect("DELETE", path, nil, 412, nil, "If-Match", `"2"`)
	b.expect("DELETE", path, nil, 204, nil, "If-Match", `"3"`)
	b.expect("GET", path, nil, 404, nil)
	b.expect("PATCH", path, map[string]any{"name": "C"}, 409, nil)
	b.expect("POST", path+"/restore", nil, 200, nil)
	var hist struct {
		Items []struct {
			Version int
			Op      string
			Diff    map[string]map[string]any
		}
	}
	b.expect("GET", path+"/history", nil, 200, &hist)
	ops := []string{}
	for _, h := range hist.Items {
		ops = append(ops, h.Op)
	}
	if strings.Join(ops, ",") != "create,update,update,delete,restore" {
		t.Fatalf("history ops %v", ops)
	}
	if d := hist.Items[2].Diff["name"]; d["old"] != "A" || d["new"] != "B" {
		t.Errorf("field diff %v", hist.Items[2].Diff)
	}
	var outbox int
	if err := b.pool.QueryRow(context.Background(), "SELECT count(*) FROM tessera.outbox WHERE record_id = $1", acc["id"]).Scan(&outbox); err != nil || outbox != 5 {
		t.Errorf("outbox rows %d, %v", outbox, err)
	}
}

func TestAutonumberConcurrent(t *testing.T) {
	b := setup(t)
	b.putEntity(accountDef)
	b.putEntity(orderDef)
	acc := b.create("account", map[string]any{"name": "A"})
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		numbers = map[string]bool{}
	)
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp := b.request("POST", "/api/v1/data/sales_order", map[string]any{"customer": acc["id"]})
			var rec map[string]any
			_ = json.Unmarshal(resp.Body, &rec)
			mu.Lock()
			defer mu.Unlock()
			if resp.Status != 201 {
				t.Errorf("create: %d %s", resp.Status, resp.Body)
				return
			}
			numbers[rec["number"].(string)] = true
		}()
	}
	wg.Wait()
	for i := 1; i <= 20; i++ {
		var found bool
		for n := range numbers {
			found = found || strings.HasSuffix(n, fmt.Sprintf("-%05d", i))
		}
		if !found {
			t.Errorf("number %d missing: %v", i, numbers)
		}
	}
	if len(numbers) != 20 {
		t.Errorf("%d distinct numbers, want 20", len(numbers))
	}
}

func TestListFilterSortPaginate(t *testing.T) {
	b := setup(t)
	b.putEntity(accountDef)
	industries := []string{"tech", "retail", "manufacturing"}
	for i := range 57 {
		rec := map[string]any{"name": fmt.Sprintf("Company %02d", i), "employees": i % 10, "revenue": fmt.Sprintf("%d.50", i*100)}
		if i%7 != 0 {
			rec["industry"] = industries[i%3]
		}
		if i%5 == 0 {
			rec["notes"] = "bluebird logistics partner"
		}
		b.create("account", rec)
	}
	type page struct {
		Items []struct {
			Name      string
			Employees int
			Industry  *string
		}
		NextCursor      *string `json:"next_cursor"`
		Total           int
		TotalIsEstimate bool `json:"total_is_estimate"`
	}
	q := func(params url.Values) page {
		var p page
		b.expect("GET", "/api/v1/data/account?"+params.Encode(), nil, 200, &p)
		return p
	}
	// Walk every page of a multi-key sort with NULLs; nothing is repeated or missed.
	seen := map[string]bool{}
	params := url.Values{"sort": {"industry,-employees,name"}, "limit": {"8"}}
	var prev *struct {
		Industry  string
		Employees int
		Name      string
	}
	for pages := 0; ; pages++ {
		p := q(params)
		if p.Total != 57 || p.TotalIsEstimate {
			t.Fatalf("total %d estimate %v", p.Total, p.TotalIsEstimate)
		}
		for _, it := range p.Items {
			if seen[it.Name] {
				t.Fatalf("%s seen twice", it.Name)
			}
			seen[it.Name] = true
			ind := "~" // NULLs sort last ascending
			if it.Industry != nil {
				ind = *it.Industry
			}
			cur := &struct {
				Industry  string
				Employees int
				Name      string
			}{ind, it.Employees, it.Name}
			if prev != nil && (prev.Industry > cur.Industry || prev.Industry == cur.Industry && (prev.Employees < cur.Employees || prev.Employees == cur.Employees && prev.Name > cur.Name)) {
				t.Fatalf("order broken: %+v before %+v", prev, cur)
			}
			prev = cur
		}
		if p.NextCursor == nil {
			break
		}
		params.Set("cursor", *p.NextCursor)
	}
	if len(seen) != 57 {
		t.Fatalf("walked %d records, want 57", len(seen))
	}
	p := q(url.Values{"filter": {`industry == "tech" && employees >= 5 && revenue > "1000"`}, "limit": {"100"}})
	for _, it := range p.Items {
		if it.Industry == nil || *it.Industry != "tech" || it.Employees < 5 {
			t.Errorf("filter let through %+v", it)
		}
	}
	if p.Total != len(p.Items) || p.Total == 0 {
		t.Errorf("filtered total %d, items %d", p.Total, len(p.Items))
	}
	if p := q(url.Values{"q": {"blue"}}); p.Total != 12 {
		t.Errorf("search 'blue' found %d, want 12", p.Total)
	}
	var projected struct{ Items []map[string]any }
	b.expect("GET", "/api/v1/data/account?fields=name&limit=1", nil, 200, &projected)
	if _, ok := projected.Items[0]["employees"]; ok {
		t.Errorf("fields=name returned %v", projected.Items[0])
	}
}

func TestHostileQueries(t *testing.T) {
	b := setup(t)
	b.putEntity(accountDef)
	b.create("account", map[string]any{"name": "A"})
	hostile := []url.Values{
		{"filter": {`name == "x" || 1 == 1`}},
		{"filter": {`name == "'; DROP TABLE data.account; --"`}},
		{"filter": {`name; DROP TABLE data.account`}},
		{"filter": {`employees > "abc"`}},
		{"filter": {`nosuchfield == 1`}},
		{"filter": {strings.Repeat("(", 200) + "name == 'a'" + strings.Repeat(")", 200)}},
		{"sort": {"name; DROP TABLE data.account"}},
		{"sort": {`name"--`}},
		{"fields": {`name, (SELECT 1)`}},
		{"expand": {`name`}},
		{"cursor": {`eyJzIjoiIiwidiI6WyInOyBEUk9QIFRBQkxFIn1dfQ`}},
		{"limit": {"-1"}},
		{"limit": {"100000"}},
		{"q": {"!!!"}},
	}
	for _, params := range hostile {
		resp := b.request("GET", "/api/v1/data/account?"+params.Encode(), nil)
		if resp.Status != 200 && resp.Status != 400 {
			t.Errorf("%v: status %d %s", params, resp.Status, resp.Body)
		}
		if resp.Status == 200 && params.Has("filter") {
			var p struct{ Items []any }
			_ = json.Unmarshal(resp.Body, &p)
			if len(p.Items) != 0 {
				t.Errorf("%v matched %d rows", params, len(p.Items))
			}
		}
	}
	var n int
	if err := b.pool.QueryRow(context.Background(), "SELECT count(*) FROM data.account").Scan(&n); err != nil || n != 1 {
		t.Fatalf("table damaged: %d, %v", n, err)
	}
}
