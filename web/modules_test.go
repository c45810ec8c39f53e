package web

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tessera/tessera/engine/module"
)

// shopModule is a small test module; version and the gadget's extra properties vary
// per test.
func shopModule(t *testing.T, version, deps, extraProps string) []byte {
	t.Helper()
	return shopModuleWith(t, version, deps, `"name": {"type": "string", "x-field-id": "g1"},
			"size": {"type": "string", "x-field-id": "g2"}`+extraProps)
}

// shopModuleWith is the shop module with the gadget's properties given in full.
func shopModuleWith(t *testing.T, version, deps, gadgetProps string) []byte {
	t.Helper()
	return archive(t, map[string]string{
		"module.json": `{"name": "shop", "version": "` + version + `", "label": {"en": "Shop", "zh-CN": "商店"},
			"dependencies": ` + deps + `,
			"entities": ["entities/gadget.json", "entities/gadget_review.json"], "scripts": ["scripts/upper.js"],
			"roles": ["roles/shop_clerk.json"], "views": ["views/gadgets.json"],
			"seed": [{"entity": "gadget", "file": "seed/gadgets.json"}]}`,
		"entities/gadget.json": `{"type": "object", "x-entity": {"name": "gadget", "label": {"en": "Gadget", "zh-CN": "小工具"},
			"hooks": {"beforeSave": "scripts/upper.js"}}, "required": ["name"], "properties": {` + gadgetProps + `}}`,
		"entities/gadget_review.json": `{"type": "object", "x-entity": {"name": "gadget_review"}, "properties": {
			"gadget": {"type": "string", "format": "uuid", "x-relation": {"entity": "gadget"}, "x-field-id": "r1"},
			"stars":  {"type": "integer", "x-field-id": "r2"}}}`,
		"scripts/upper.js":      `if (record.name) record.name = record.name.toUpperCase();`,
		"roles/shop_clerk.json": `{"label": {"en": "Clerk"}, "entities": {"gadget": {"read": true, "create": true}}}`,
		"views/gadgets.json":    `{"entity": "gadget", "columns": ["name", "size"]}`,
		"seed/gadgets.json":     `[{"id": "0190d1a0-0000-7000-8000-000000000001", "name": "seeded", "size": "big"}]`,
	})
}

// archive packs a module's files as the export does.
func archive(t *testing.T, files map[string]string) []byte {
	t.Helper()
	raw := map[string][]byte{}
	for name, data := range files {
		raw[name] = []byte(data)
	}
	data, err := module.WriteArchive(raw)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// importModule posts an archive to /modules/import.
func (b *testBundle) importModule(archive []byte, query string, status int, out any) {
	b.t.Helper()
	b.expect("POST", "/api/v1/modules/import"+query, archive, status, out, "Content-Type", "application/gzip")
}

func (b *testBundle) moduleItems() map[string]module.Item {
	b.t.Helper()
	var out struct{ Items []module.Item }
	b.expect("GET", "/api/v1/modules", nil, 200, &out)
	items := map[string]module.Item{}
	for _, it := range out.Items {
		items[it.Name] = it
	}
	return items
}

func TestModuleLifecycle(t *testing.T) {
	b := setup(t)
	// Install: entities, the hook script, the role and the seed record exist.
	b.importModule(shopModule(t, "1.0.0", `{}`, ""), "", 200, nil)
	var gadget struct {
		Module     string
		Definition json.RawMessage
	}
	b.expect("GET", "/api/v1/entities/gadget", nil, 200, &gadget)
	if gadget.Module != "shop" || !strings.Contains(string(gadget.Definition), `"shop.upper"`) {
		t.Fatalf("gadget: %s %s", gadget.Module, gadget.Definition)
	}
	b.expect("GET", "/api/v1/roles/shop_clerk", nil, 200, nil)
	var seeded map[string]any
	b.expect("GET", "/api/v1/data/gadget/0190d1a0-0000-7000-8000-000000000001", nil, 200, &seeded)
	if seeded["name"] != "SEEDED" {
		t.Fatalf("seed through the hook: %v", seeded)
	}
	if it := b.moduleItems()["shop"]; !it.Installed || *it.InstalledVersion != "1.0.0" || it.Title != "Shop" {
		t.Fatalf("list: %+v", it)
	}
	mine := b.create("gadget", map[string]any{"name": "mine", "size": "12"})

	// Upgrade with a schema change: data kept, the new field usable.
	var res module.Result
	b.importModule(shopModule(t, "1.1.0", `{}`, `, "color": {"type": "string", "x-field-id": "g3"}`), "", 200, &res)
	if res.Plans["gadget"] == nil || len(res.Plans["gadget"].Steps) == 0 {
		t.Fatalf("upgrade plan: %+v", res)
	}
	var got map[string]any
	b.expect("PATCH", "/api/v1/data/gadget/"+mine["id"].(string), map[string]any{"color": "red"}, 200, &got)
	if got["name"] != "MINE" || got["size"] != "12" || got["color"] != "red" {
		t.Fatalf("after upgrade: %v", got)
	}

	// A narrowing upgrade that fails on existing rows ("big" is no integer): a dry
	// run shows the failing plan, the real one is refused, and 1.1.0 stays intact.
	narrowArchive := shopModuleWith(t, "2.0.0", `{}`, `"name": {"type": "string", "x-field-id": "g1"}, "size": {"type": "integer", "x-field-id": "g2"}, "color": {"type": "string", "x-field-id": "g3"}, "weight": {"type": "integer", "x-field-id": "g4"}`)
	var dry module.Result
	b.importModule(narrowArchive, "?dryRun=1", 200, &dry)
	if p := dry.Plans["gadget"]; p == nil || !p.Blocked {
		t.Fatalf("dry run plan: %+v", dry.Plans["gadget"])
	}
	var refused apiError
	b.importModule(narrowArchive, "", 409, &refused)
	if refused.Error.Code != "migration_refused" || !strings.Contains(refused.Error.Message, "gadget") {
		t.Fatalf("refusal: %+v", refused)
	}
	if it := b.moduleItems()["shop"]; *it.InstalledVersion != "1.1.0" {
		t.Fatalf("version after refused upgrade: %s", *it.InstalledVersion)
	}
	b.expect("GET", "/api/v1/entities/gadget", nil, 200, &gadget)
	if strings.Contains(string(gadget.Definition), "weight") {
		t.Fatal("the refused upgrade changed the entity")
	}

	// A dependant blocks uninstall; uninstalling it with purge drops its tables.
	dep := archive(t, map[string]string{
		"module.json": `{"name": "shopx", "version": "1.0.0", "label": {"en": "Shop extras"}, "dependencies": {"shop": "^1.0.0"},
			"entities": ["entities/gadget_tag.json"]}`,
		"entities/gadget_tag.json": `{"type": "object", "x-entity": {"name": "gadget_tag"}, "properties": {
			"gadget": {"type": "string", "format": "uuid", "x-relation": {"entity": "gadget"}, "x-field-id": "t1"}}}`,
	})
	b.importModule(dep, "", 200, nil)
	var blocked apiError
	b.expect("POST", "/api/v1/modules/shop/uninstall", nil, 409, &blocked)
	if !strings.Contains(blocked.Error.Message, "shopx") {
		t.Fatalf("uninstall with a dependant: %+v", blocked)
	}
	b.expect("POST", "/api/v1/modules/shopx/uninstall?purge=1", nil, 200, nil)
	if tableExists(t, b, "gadget_tag") {
		t.Fatal("purge kept the table")
	}
	// Without purge the data stays; the roles go and the module is no longer installed.
	b.expect("POST", "/api/v1/modules/shop/uninstall", nil, 200, nil)
	if !tableExists(t, b, "gadget") {
		t.Fatal("uninstall without purge dropped the table")
	}
	var n int
	if err := b.pool.QueryRow(context.Background(), "SELECT count(*) FROM data.gadget").Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows kept: %d, %v", n, err)
	}
	b.expect("GET", "/api/v1/roles/shop_clerk", nil, 404, nil)
	if b.moduleItems()["shop"].Installed {
		t.Fatal("still installed")
	}
	// Re-install picks the kept entity up (same module), then purge removes it all.
	b.expect("POST", "/api/v1/modules/shop/install", nil, 200, nil)
	b.expect("POST", "/api/v1/modules/shop/uninstall?purge=1", nil, 200, nil)
	if tableExists(t, b, "gadget") || tableExists(t, b, "gadget_review") {
		t.Fatal("purge kept tables")
	}
}

func TestModuleDependencyRefusals(t *testing.T) {
	b := setup(t)
	var e apiError
	b.importModule(shopModule(t, "1.0.0", `{"nothere": "^1.0.0"}`, ""), "", 409, &e)
	if !strings.Contains(e.Error.Message, "nothere ^1.0.0, which is neither installed nor available") {
		t.Fatalf("missing: %+v", e)
	}
	b.importModule(shopModule(t, "1.0.0", `{"crm": "^2.0.0"}`, ""), "", 409, &e)
	if !strings.Contains(e.Error.Message, "needs crm ^2.0.0, but version 1.1.0 is available") {
		t.Fatalf("incompatible: %+v", e)
	}
	b.importModule(shopModule(t, "1.0.0", `{"shop": "*"}`, ""), "", 409, &e)
	if !strings.Contains(e.Error.Message, "dependency cycle: shop → shop") {
		t.Fatalf("cycle: %+v", e)
	}
	if len(b.moduleItems()) != 10 {
		t.Fatal("a refused import was kept")
	}
	// A broken module: every problem with its file and pointer, nothing installed.
	broken := archive(t, map[string]string{
		"module.json": `{"name": "bad", "version": "1.0.0", "label": {"en": "Bad"}, "entities": ["e.json"]}`,
		"e.json":      `{"type": "object", "x-entity": {"name": "bad_thing"}, "properties": {"x": {"type": "number", "x-field-id": "x1"}}}`,
	})
	b.importModule(broken, "", 422, &e)
	if !e.hasPath("e.json#/properties/x") {
		t.Fatalf("broken: %+v", e)
	}
	b.expect("GET", "/api/v1/entities/bad_thing", nil, 404, nil)
}

func TestModuleExportImportKeepsFieldIDs(t *testing.T) {
	a := setup(t)
	a.importModule(shopModule(t, "1.0.0", `{}`, ""), "", 200, nil)
	// A field added in the browser travels with the export.
	var cur struct{ Definition json.RawMessage }
	a.expect("GET", "/api/v1/entities/gadget", nil, 200, &cur)
	def := strings.Replace(string(cur.Definition), `"properties":{`, `"properties":{"added":{"type":"string","x-field-id":"g9"},`, 1)
	if def == string(cur.Definition) {
		t.Fatalf("could not add a field to %s", cur.Definition)
	}
	a.expect("PUT", "/api/v1/entities/gadget", def, 200, nil)
	resp := a.expect("GET", "/api/v1/modules/shop/export", nil, 200, nil)
	if resp.Header.Get("Content-Type") != "application/gzip" {
		t.Fatalf("content type %s", resp.Header.Get("Content-Type"))
	}

	b := setup(t)
	b.importModule(resp.Body, "", 200, nil)
	for _, name := range []string{"gadget", "gadget_review"} {
		var x, y struct {
			Definition json.RawMessage
			Fields     []struct{ Name, ID string }
		}
		a.expect("GET", "/api/v1/entities/"+name, nil, 200, &x)
		b.expect("GET", "/api/v1/entities/"+name, nil, 200, &y)
		if !jsonSame(t, x.Definition, y.Definition) {
			t.Errorf("%s definitions differ:\n%s\n%s", name, x.Definition, y.Definition)
		}
		xf, _ := json.Marshal(x.Fields)
		yf, _ := json.Marshal(y.Fields)
		if string(xf) != string(yf) {
			t.Errorf("%s field ids differ: %s vs %s", name, xf, yf)
		}
	}
	b.expect("GET", "/api/v1/roles/shop_clerk", nil, 200, nil)
	// The hook script came along and runs on the other side.
	if got := b.create("gadget", map[string]any{"name": "abc", "added": "yes"}); got["name"] != "ABC" {
		t.Fatalf("hook after import: %v", got)
	}
}

func TestModuleBuiltinsInstallWithDemo(t *testing.T) {
	b := setup(t)
	items := b.moduleItems()
	for _, name := range []string{"crm", "sales", "inventory", "manufacturing", "purchasing", "delivery", "accounting", "hr", "projects", "order_to_cash"} {
		if _, ok := items[name]; !ok {
			t.Fatalf("no built-in module %s", name)
		}
	}
	// delivery pulls crm, inventory and sales in first.
	var res module.Result
	b.expect("POST", "/api/v1/modules/delivery/install?demo=1", nil, 200, &res)
	if strings.Join(res.Installed, ",") != "crm@1.1.0,inventory@1.1.0,sales@1.0.0,delivery@1.1.0" {
		t.Fatalf("installed: %v", res.Installed)
	}
	for _, name := range []string{"accounting", "hr", "manufacturing", "projects", "purchasing", "order_to_cash"} {
		b.expect("POST", "/api/v1/modules/"+name+"/install?demo=1", nil, 200, nil)
	}
	// Demo stock is posted as receipts: the ledger made the levels.
	var levels, boms, offers page
	b.expect("GET", "/api/v1/data/stock_level?limit=200", nil, 200, &levels)
	b.expect("GET", "/api/v1/data/bom?limit=50", nil, 200, &boms)
	b.expect("GET", "/api/v1/data/supplier_item?limit=50", nil, 200, &offers)
	if len(levels.Items) < 50 || len(boms.Items) < 5 || len(offers.Items) < 5 {
		t.Fatalf("demo: %d stock levels, %d BOMs, %d supplier items", len(levels.Items), len(boms.Items), len(offers.Items))
	}
	for name, it := range b.moduleItems() {
		if !it.Installed {
			t.Errorf("%s not installed", name)
		}
	}
	for _, role := range []string{"sales_rep", "sales_manager", "warehouse", "accountant", "hr"} {
		b.expect("GET", "/api/v1/roles/"+role, nil, 200, nil)
	}
	// Demo data: open opportunities at every stage, with exact expected amounts.
	var opps page
	b.expect("GET", "/api/v1/data/opportunity?limit=200", nil, 200, &opps)
	stages := map[any]bool{}
	for _, o := range opps.Items {
		stages[o["stage"]] = true
	}
	if len(opps.Items) < 30 || len(stages) != 6 {
		t.Fatalf("%d opportunities in %d stages", len(opps.Items), len(stages))
	}
	// The sales totals script computes exactly: 3 × 19.99 − 10% = 53.97, tax 19% = 10.25.
	var acc page
	b.expect("GET", "/api/v1/data/account?limit=1", nil, 200, &acc)
	order := b.create("sales_order", map[string]any{"account": acc.Items[0]["id"], "lines": []map[string]any{
		{"description": "x", "quantity": "3", "unit_price": "19.99", "discount_percent": "10", "tax_rate": "19"}}})
	if order["total"] != "64.22" || order["subtotal"] != "59.97" || order["discount_total"] != "6.00" || order["tax_total"] != "10.25" {
		t.Fatalf("order totals: %v", order)
	}
	// Invoices number themselves INV-{YYYY}-{seq:5}.
	inv := b.create("invoice", map[string]any{"account": acc.Items[0]["id"], "lines": []map[string]any{{"quantity": "1", "unit_price": "10.00"}}})
	if n, _ := inv["number"].(string); !strings.HasPrefix(n, "INV-") || len(n) != len("INV-2026-00001") {
		t.Fatalf("invoice number %q", n)
	}
	// Demo data is loaded once.
	b.expect("POST", "/api/v1/modules/crm/upgrade?demo=1", nil, 200, &res)
	if res.Records != 0 {
		t.Fatalf("demo loaded again: %d records", res.Records)
	}
}

func tableExists(t *testing.T, b *testBundle, name string) bool {
	t.Helper()
	var ok bool
	if err := b.pool.QueryRow(context.Background(), "SELECT to_regclass('data.' || $1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}
