package web

import (
	"context"
	"strings"
	"testing"
)

const itemV1 = `{"type": "object", "x-entity": {"name": "item"}, "required": ["title"], "properties": {
  "title": {"type": "string", "x-field-id": "i1"},
  "qty":   {"type": "string", "x-field-id": "i2"},
  "price": {"type": "string", "format": "decimal", "x-field-id": "i3"},
  "note":  {"type": "string", "x-field-id": "i4"}}}`

type planResponse struct {
	DryRun bool `json:"dry_run"`
	Plan   struct {
		Steps []struct {
			Op          string
			Target      string
			Destructive bool
			FailingRows int `json:"failing_rows"`
		}
		Destructive bool
		Blocked     bool
	}
}

func (p planResponse) ops() string {
	var ops []string
	for _, s := range p.Plan.Steps {
		ops = append(ops, s.Op)
	}
	return strings.Join(ops, ",")
}

func columns(t *testing.T, b *testBundle, table string) string {
	t.Helper()
	var cols string
	err := b.pool.QueryRow(context.Background(), `SELECT string_agg(column_name || ':' || data_type, ',' ORDER BY ordinal_position)
		FROM information_schema.columns WHERE table_schema = 'data' AND table_name = $1`, table).Scan(&cols)
	if err != nil {
		t.Fatal(err)
	}
	return cols
}

func TestEntityMigrations(t *testing.T) {
	b := setup(t)
	b.putEntity(itemV1)
	b.create("item", map[string]any{"title": "bolt", "qty": "12", "price": "1.50", "note": "keep me"})
	b.create("item", map[string]any{"title": "nut", "qty": "many", "price": "2.00"})

	// Rename by field id and add a column: safe, previewed, then applied with data kept.
	v2 := strings.Replace(itemV1, `"title": {"type": "string", "x-field-id": "i1"}`, `"name": {"type": "string", "x-field-id": "i1"}`, 1)
	v2 = strings.Replace(v2, `"required": ["title"]`, `"required": ["name"]`, 1)
	v2 = strings.Replace(v2, `"note":`, `"color": {"type": "string", "x-field-id": "i5"}, "note":`, 1)
	before := columns(t, b, "item")
	var plan planResponse
	b.expect("PUT", "/api/v1/entities/item?dryRun=1", v2, 200, &plan)
	if !plan.DryRun || !strings.Contains(plan.ops(), "rename_column") || !strings.Contains(plan.ops(), "add_column") {
		t.Fatalf("dry run plan: %s", plan.ops())
	}
	if columns(t, b, "item") != before {
		t.Fatal("dry run changed the table")
	}
	b.expect("PUT", "/api/v1/entities/item", v2, 200, nil)
	var list struct{ Items []map[string]any }
	b.expect("GET", "/api/v1/data/item?sort=name", nil, 200, &list)
	if list.Items[0]["name"] != "bolt" || list.Items[0]["note"] != "keep me" {
		t.Fatalf("after rename: %v", list.Items[0])
	}

	// Narrowing qty text → integer fails on "many": refused with the row count, nothing changes.
	v3 := strings.Replace(v2, `"qty":   {"type": "string", "x-field-id": "i2"}`, `"qty": {"type": "integer", "x-field-id": "i2"}`, 1)
	before = columns(t, b, "item")
	var refused apiError
	b.expect("PUT", "/api/v1/entities/item?confirm=1", v3, 409, &refused)
	if !strings.Contains(refused.Error.Details[0].Message, "1 existing rows") {
		t.Errorf("refusal should count the failing row: %+v", refused.Error.Details)
	}
	if columns(t, b, "item") != before {
		t.Fatal("refused migration changed the table")
	}
	var ent struct{ Version int }
	b.expect("GET", "/api/v1/entities/item", nil, 200, &ent)
	if ent.Version != 2 {
		t.Fatalf("refused migration changed the definition: version %d", ent.Version)
	}

	// Fix the row; the narrowing is then destructive-but-possible: needs ?confirm=1.
	b.expect("PATCH", "/api/v1/data/item/"+list.Items[1]["id"].(string), map[string]any{"qty": "7"}, 200, nil)
	b.expect("PUT", "/api/v1/entities/item", v3, 409, nil)
	b.expect("PUT", "/api/v1/entities/item?confirm=1", v3, 200, nil)
	if cols := columns(t, b, "item"); !strings.Contains(cols, "qty:bigint") {
		t.Fatalf("qty not narrowed: %s", cols)
	}
	b.expect("GET", "/api/v1/data/item?sort=name", nil, 200, &list)
	if list.Items[0]["qty"] != float64(12) {
		t.Fatalf("qty after cast: %v", list.Items[0]["qty"])
	}

	// Dropping a field from the definition soft-removes it: hidden from the API, data kept.
	v4 := strings.Replace(v3, `"note":  {"type": "string", "x-field-id": "i4"}`, `"size": {"type": "string", "x-field-id": "i6"}`, 1)
	b.expect("PUT", "/api/v1/entities/item", v4, 200, nil)
	list.Items = nil // json.Unmarshal merges into the maps already there
	b.expect("GET", "/api/v1/data/item?sort=name", nil, 200, &list)
	if _, ok := list.Items[0]["note"]; ok {
		t.Errorf("removed field still returned: %v", list.Items[0])
	}
	b.expect("POST", "/api/v1/data/item", map[string]any{"name": "x", "note": "y"}, 422, nil)
	var kept string
	if err := b.pool.QueryRow(context.Background(), `SELECT note FROM data.item WHERE name = 'bolt'`).Scan(&kept); err != nil || kept != "keep me" {
		t.Errorf("soft-removed data: %q %v", kept, err)
	}
}

func TestEntityDefinitionErrors(t *testing.T) {
	b := setup(t)
	var e apiError
	b.expect("PUT", "/api/v1/entities/thing", `{"type": "object", "x-entity": {"name": "thing"}, "properties": {"a": {"type": "number", "x-field-id": "1"}, "B": {"type": "string"}}}`, 422, &e)
	if !e.hasPath("/properties/a") {
		t.Errorf("no pointer to /properties/a: %+v", e.Error.Details)
	}
	b.expect("PUT", "/api/v1/entities/other", `{"type": "object", "x-entity": {"name": "thing"}, "properties": {"a": {"type": "string", "x-field-id": "1"}}}`, 422, &e)
	b.expect("PUT", "/api/v1/entities/thing", `{"type": "object", "x-entity": {"name": "thing"}, "properties": {"c": {"type": "string", "format": "uuid", "x-relation": {"entity": "ghost"}, "x-field-id": "1"}}}`, 422, &e)
	if !e.hasPath("/properties/c/x-relation/entity") {
		t.Errorf("missing relation target: %+v", e.Error.Details)
	}
	b.expect("PUT", "/api/v1/entities/thing", `{not json`, 400, nil)
	b.expect("GET", "/api/v1/entities/thing", nil, 404, nil)
	b.expect("GET", "/api/v1/data/thing", nil, 404, nil)

	// Only administrators design entities.
	b.expect("POST", "/api/v1/users", map[string]any{"email": "rep@example.com", "password": "another long one"}, 201, nil)
	var out struct{ Token string }
	b.expect("POST", "/api/v1/auth/login", map[string]string{"email": "rep@example.com", "password": "another long one"}, 200, &out)
	b.token = out.Token
	b.expect("PUT", "/api/v1/entities/thing", itemV1, 403, nil)
}
