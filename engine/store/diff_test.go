package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/internal/testdb"
)

// entityDef is a definition of entity name with the given properties (JSON object
// members) and required field names.
func entityDef(name string, required []string, props ...string) string {
	req, _ := json.Marshal(append([]string{}, required...))
	return fmt.Sprintf(`{"type": "object", "x-entity": {"name": %q}, "required": %s, "properties": {%s}}`,
		name, req, strings.Join(props, ", "))
}

func parseDef(t *testing.T, def string, version int) *schema.Entity {
	t.Helper()
	e, err := schema.Parse([]byte(def))
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, def)
	}
	e.Version = version
	return e
}

type fixture struct {
	t    *testing.T
	ctx  context.Context
	pool *pgxpool.Pool
}

func newFixture(t *testing.T) *fixture {
	fx := &fixture{t: t, ctx: context.Background(), pool: testdb.NewPool(t)}
	fx.exec("CREATE SCHEMA data")
	return fx
}

func (fx *fixture) exec(sql string, args ...any) {
	fx.t.Helper()
	if _, err := fx.pool.Exec(fx.ctx, sql, args...); err != nil {
		fx.t.Fatalf("%s: %v", sql, err)
	}
}

// execErr runs sql expecting it to fail with the SQLSTATE code.
func (fx *fixture) execErr(code, sql string, args ...any) {
	fx.t.Helper()
	_, err := fx.pool.Exec(fx.ctx, sql, args...)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != code {
		fx.t.Fatalf("%s: got %v, want SQLSTATE %s", sql, err, code)
	}
}

func (fx *fixture) text(sql string, args ...any) string {
	fx.t.Helper()
	var s *string
	if err := fx.pool.QueryRow(fx.ctx, sql, args...).Scan(&s); err != nil {
		fx.t.Fatalf("%s: %v", sql, err)
	}
	if s == nil {
		return "<null>"
	}
	return *s
}

func (fx *fixture) count(sql string, args ...any) int64 {
	fx.t.Helper()
	var n int64
	if err := fx.pool.QueryRow(fx.ctx, sql, args...).Scan(&n); err != nil {
		fx.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// columns describes a table's columns as name:type:nullable.
func (fx *fixture) columns(table string) string {
	return fx.text(`SELECT string_agg(column_name || ':' || data_type || ':' || is_nullable, ' ' ORDER BY ordinal_position)
		FROM information_schema.columns WHERE table_schema = 'data' AND table_name = $1`, table)
}

func (fx *fixture) comment(table, column string) string {
	return fx.text(`SELECT col_description(attrelid, attnum) FROM pg_attribute
		WHERE attrelid = ('data.' || quote_ident($1))::regclass AND attname = $2`, table, column)
}

func (fx *fixture) hasIndex(name string) bool {
	return fx.count("SELECT count(*) FROM pg_indexes WHERE schemaname = 'data' AND indexname = $1", name) == 1
}

// migrate plans old → next in a transaction like the engine does and, unless the plan
// is blocked, applies it and commits.
func (fx *fixture) migrate(old, next *schema.Entity) *Plan {
	fx.t.Helper()
	tx, err := fx.pool.Begin(fx.ctx)
	if err != nil {
		fx.t.Fatal(err)
	}
	defer tx.Rollback(fx.ctx)
	p, err := PlanMigration(fx.ctx, tx, old, next)
	if err != nil {
		fx.t.Fatalf("plan: %v", err)
	}
	if p.Blocked {
		return p
	}
	if err := p.Apply(fx.ctx, tx); err != nil {
		fx.t.Fatalf("apply: %v\n%s", err, dumpPlan(p))
	}
	if err := tx.Commit(fx.ctx); err != nil {
		fx.t.Fatal(err)
	}
	return p
}

// mustApply is migrate for a plan that must go through.
func (fx *fixture) mustApply(old, next *schema.Entity) *Plan {
	fx.t.Helper()
	p := fx.migrate(old, next)
	if p.Blocked {
		fx.t.Fatalf("plan blocked:\n%s", dumpPlan(p))
	}
	return p
}

func dumpPlan(p *Plan) string {
	var sb strings.Builder
	for _, s := range p.Steps {
		fmt.Fprintf(&sb, "%s %s failing=%d destructive=%v problem=%q: %s\n", s.Op, s.Target, s.FailingRows, s.Destructive, s.Problem, s.Description)
		if s.Check != "" {
			fmt.Fprintf(&sb, "    check: %s\n", s.Check)
		}
		for _, q := range s.SQL {
			fmt.Fprintf(&sb, "    %s\n", q)
		}
	}
	return sb.String()
}

func ops(steps []Step) string {
	var out []string
	for _, s := range steps {
		out = append(out, s.Op)
	}
	return strings.Join(out, ",")
}

func stepOf(t *testing.T, p *Plan, op, target string) Step {
	t.Helper()
	for _, s := range p.Steps {
		if s.Op == op && s.Target == target {
			return s
		}
	}
	t.Fatalf("no step %s %s in plan:\n%s", op, target, dumpPlan(p))
	return Step{}
}

const (
	nameProp  = `"name": {"type": "string", "x-field-id": "f1"}`
	orderJSON = `{
  "type": "object",
  "x-entity": {"name": "sales_order", "label": {"en": "Sales order"},
    "titleField": "number", "autonumber": {"field": "number", "pattern": "SO-{seq:5}"},
    "indexes": [{"fields": ["status", "-created_at"]}]},
  "required": ["number", "customer", "lines"],
  "properties": {
    "number": {"type": "string", "x-field-id": "f1"},
    "customer": {"type": "string", "format": "uuid", "x-relation": {"entity": "customer"}, "x-field-id": "f2"},
    "status": {"enum": ["draft", "confirmed"], "default": "draft", "x-field-id": "f3"},
    "total": {"type": "string", "format": "money", "x-field-id": "f4"},
    "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "uniqueItems": true, "x-field-id": "f5"},
    "old_note": {"type": "string", "x-field-id": "f7", "x-removed": true},
    "lines": {"type": "array", "x-child": {"entity": "sales_order_line"}, "x-field-id": "f6",
      "items": {"type": "object", "required": ["qty"], "properties": {
        "qty": {"type": "integer", "minimum": 1, "x-field-id": "l1"},
        "price": {"type": "string", "format": "decimal", "x-index": true, "x-field-id": "l2"}}}}
  }
}`
)

func TestDiffIdenticalHasNoSteps(t *testing.T) {
	a := parseDef(t, orderJSON, 1)
	b := parseDef(t, orderJSON, 2)
	if steps := diff(a, b); len(steps) != 0 {
		t.Fatalf("identical definitions gave steps: %s", ops(steps))
	}
}

func TestAddColumn(t *testing.T) {
	fx := newFixture(t)
	v1 := parseDef(t, entityDef("customer", []string{"name"}, nameProp), 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.customer (id, name) VALUES (gen_random_uuid(), 'Ada'), (gen_random_uuid(), 'Bob')`)
	fx.exec(`UPDATE data.customer SET deleted_at = now() WHERE name = 'Bob'`)

	// An optional indexed field: column, index and comment.
	v2 := parseDef(t, entityDef("customer", []string{"name"}, nameProp,
		`"phone": {"type": "string", "format": "phone", "x-index": true, "x-label": {"en": "Phone"}, "x-field-id": "f2"}`), 2)
	p := fx.mustApply(v1, v2)
	if got := ops(p.Steps); got != "add_column,add_index,rebuild_search" {
		t.Errorf("steps %s", got)
	}
	if got := fx.columns("customer"); !strings.Contains(got, "phone:text:YES") {
		t.Errorf("columns %s", got)
	}
	if !fx.hasIndex("customer_phone_idx") {
		t.Error("phone index missing")
	}
	if got := fx.comment("customer", "phone"); got != "Phone" {
		t.Errorf("comment %q", got)
	}

	// A required field without default on a non-empty table: every row (the deleted one
	// too) would violate NOT NULL.
	v3 := parseDef(t, entityDef("customer", []string{"name", "code"}, nameProp,
		`"phone": {"type": "string", "format": "phone", "x-index": true, "x-label": {"en": "Phone"}, "x-field-id": "f2"}`,
		`"code": {"type": "string", "x-field-id": "f3"}`), 3)
	p = fx.migrate(v2, v3)
	if !p.Blocked || stepOf(t, p, OpAddConstraint, "customer.code").FailingRows != 2 {
		t.Fatalf("want blocked with 2 failing rows:\n%s", dumpPlan(p))
	}
	if got := fx.columns("customer"); strings.Contains(got, "code") {
		t.Errorf("refused plan changed the table: %s", got)
	}

	// With a default the existing rows are filled and the column becomes NOT NULL.
	v3 = parseDef(t, entityDef("customer", []string{"name", "status"}, nameProp,
		`"phone": {"type": "string", "format": "phone", "x-index": true, "x-label": {"en": "Phone"}, "x-field-id": "f2"}`,
		`"status": {"enum": ["new", "active"], "default": "new", "x-field-id": "f3"}`), 3)
	p = fx.mustApply(v2, v3)
	if got := ops(p.Steps); got != "add_column,add_constraint,rebuild_search" {
		t.Errorf("steps %s", got)
	}
	if got := fx.text(`SELECT string_agg(status, ',') FROM data.customer`); got != "new,new" {
		t.Errorf("statuses %s", got)
	}
	if got := fx.columns("customer"); !strings.Contains(got, "status:text:NO") {
		t.Errorf("columns %s", got)
	}
	if got := fx.text(`SELECT column_default FROM information_schema.columns WHERE table_schema = 'data' AND table_name = 'customer' AND column_name = 'status'`); got != "<null>" {
		t.Errorf("the default stayed on the column: %s", got)
	}
	fx.execErr("23514", `INSERT INTO data.customer (id, name, status) VALUES (gen_random_uuid(), 'Cy', 'bogus')`)
	fx.execErr("23502", `INSERT INTO data.customer (id, name) VALUES (gen_random_uuid(), 'Cy')`)
}

func TestRenameKeepsData(t *testing.T) {
	fx := newFixture(t)
	v1 := parseDef(t, entityDef("contact", nil, nameProp,
		`"email": {"type": "string", "format": "email", "x-unique": true, "x-field-id": "f2"}`), 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.contact (id, name, email) VALUES (gen_random_uuid(), 'Ada Lovelace', 'ada@example.com')`)

	v2 := parseDef(t, entityDef("contact", nil,
		`"full_name": {"type": "string", "x-field-id": "f1"}`,
		`"mail": {"type": "string", "format": "email", "x-unique": true, "x-field-id": "f2"}`), 2)
	p := fx.mustApply(v1, v2)
	if got := ops(p.Steps); got != "rename_column,rename_column,drop_index,add_index,set_comment,set_comment,rebuild_search" {
		t.Errorf("steps %s\n%s", got, dumpPlan(p))
	}
	if got := fx.text(`SELECT full_name || ' ' || mail FROM data.contact`); got != "Ada Lovelace ada@example.com" {
		t.Errorf("data %q", got)
	}
	if fx.hasIndex("contact_email_key") || !fx.hasIndex("contact_mail_key") {
		t.Error("unique index not renamed")
	}
	if n := fx.count(`SELECT count(*) FROM data.contact WHERE search @@ to_tsquery('simple', 'lovelace')`); n != 1 {
		t.Errorf("search after rename found %d", n)
	}

	// Two fields swapping names go through a temporary name; values follow their ids.
	v3 := parseDef(t, entityDef("contact", nil,
		`"mail": {"type": "string", "x-field-id": "f1"}`,
		`"full_name": {"type": "string", "format": "email", "x-unique": true, "x-field-id": "f2"}`), 3)
	fx.mustApply(v2, v3)
	if got := fx.text(`SELECT mail || ' ' || full_name FROM data.contact`); got != "Ada Lovelace ada@example.com" {
		t.Errorf("data after swap %q", got)
	}
}

func TestWidenIntegerToDecimal(t *testing.T) {
	fx := newFixture(t)
	v1 := parseDef(t, entityDef("item", nil, `"qty": {"type": "integer", "x-field-id": "f1"}`), 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.item (id, qty) VALUES (gen_random_uuid(), 42), (gen_random_uuid(), -7), (gen_random_uuid(), NULL)`)
	v2 := parseDef(t, entityDef("item", nil, `"qty": {"type": "string", "format": "decimal", "x-field-id": "f1"}`), 2)
	p := fx.mustApply(v1, v2)
	if got := ops(p.Steps); got != "alter_type" || p.Destructive {
		t.Errorf("steps %s destructive %v", got, p.Destructive)
	}
	if got := fx.columns("item"); !strings.Contains(got, "qty:numeric:YES") {
		t.Errorf("columns %s", got)
	}
	if got := fx.text(`SELECT string_agg(coalesce(qty::text, 'null'), ',' ORDER BY qty) FROM data.item`); got != "-7,42,null" {
		t.Errorf("values %s", got)
	}
}

func TestNarrowTextToIntegerRefused(t *testing.T) {
	fx := newFixture(t)
	v1 := parseDef(t, entityDef("item", nil, `"code": {"type": "string", "x-field-id": "f1"}`), 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.item (id, code) VALUES (gen_random_uuid(), '12'), (gen_random_uuid(), 'abc'), (gen_random_uuid(), '-5'), (gen_random_uuid(), NULL)`)
	columnsBefore := fx.columns("item")
	dataBefore := fx.text(`SELECT string_agg(coalesce(code, 'null'), ',' ORDER BY code) FROM data.item`)

	v2 := parseDef(t, entityDef("item", nil, `"code": {"type": "integer", "x-field-id": "f1"}`), 2)
	p := fx.migrate(v1, v2)
	s := stepOf(t, p, OpAlterType, "item.code")
	if !p.Blocked || !p.Destructive || !s.Destructive || s.FailingRows != 1 {
		t.Fatalf("want a blocked destructive plan with 1 failing row:\n%s", dumpPlan(p))
	}
	// Even applied regardless, the cast fails and the rollback leaves the table alone.
	tx, err := fx.pool.Begin(fx.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Apply(fx.ctx, tx); err == nil {
		t.Error("forced apply succeeded")
	}
	_ = tx.Rollback(fx.ctx)
	if got := fx.columns("item"); got != columnsBefore {
		t.Errorf("columns changed:\n%s\n%s", columnsBefore, got)
	}
	if got := fx.text(`SELECT string_agg(coalesce(code, 'null'), ',' ORDER BY code) FROM data.item`); got != dataBefore {
		t.Errorf("data changed: %s → %s", dataBefore, got)
	}
	// Without the bad row it goes through.
	fx.exec(`DELETE FROM data.item WHERE code = 'abc'`)
	fx.mustApply(v1, v2)
	if got := fx.text(`SELECT string_agg(code::text, ',' ORDER BY code) FROM data.item`); got != "-5,12" {
		t.Errorf("values %s", got)
	}
}

func TestNarrowDecimalToInteger(t *testing.T) {
	fx := newFixture(t)
	v1 := parseDef(t, entityDef("item", nil, `"amount": {"type": "string", "format": "decimal", "x-field-id": "f1"}`), 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.item (id, amount) VALUES (gen_random_uuid(), 3.00), (gen_random_uuid(), 4), (gen_random_uuid(), NULL)`)
	v2 := parseDef(t, entityDef("item", nil, `"amount": {"type": "integer", "x-field-id": "f1"}`), 2)
	p := fx.mustApply(v1, v2)
	if s := stepOf(t, p, OpAlterType, "item.amount"); !s.Destructive || s.FailingRows != 0 || !p.Destructive {
		t.Errorf("step %+v", s)
	}
	if got := fx.text(`SELECT string_agg(amount::text, ',' ORDER BY amount) FROM data.item`); got != "3,4" {
		t.Errorf("values %s", got)
	}
	if got := fx.columns("item"); !strings.Contains(got, "amount:bigint:YES") {
		t.Errorf("columns %s", got)
	}
}

// TestTypeChangeChecks runs each checked type change against values that convert
// exactly and values that do not: the check must count exactly the latter, and once
// they are gone the change must apply (so the check misses nothing the cast rejects).
func TestTypeChangeChecks(t *testing.T) {
	fx := newFixture(t)
	cases := []struct {
		name, from, to string
		good, bad      []string
		problem        bool
	}{
		{"text_integer", `{"type": "string"}`, `{"type": "integer"}`,
			[]string{"0", "-12", "9223372036854775807", "-9223372036854775808"},
			[]string{"abc", "1.5", "", "007", " 1", "9223372036854775808", "-0x1"}, false},
		{"text_decimal", `{"type": "string"}`, `{"type": "string", "format": "decimal"}`,
			[]string{"1.50", "-0.5", "0", "123456789012"},
			[]string{"1e3", ".5", "abc", "01", "1.", "NaN"}, false},
		{"text_boolean", `{"type": "string"}`, `{"type": "boolean"}`,
			[]string{"true", "f"}, []string{"yes", "TRUE", "1"}, false},
		{"text_date", `{"type": "string"}`, `{"type": "string", "format": "date"}`,
			[]string{"2024-02-29", "1999-12-31", "0001-01-01"},
			[]string{"2023-02-29", "2024-13-01", "0000-01-01", "24-01-01", "2024-1-1", "2024-04-31", "today", "2024-01-01x"}, false},
		{"text_datetime", `{"type": "string"}`, `{"type": "string", "format": "date-time"}`,
			[]string{"2024-01-15T10:00:00Z", "2024-01-15 10:00", "2024-01-15T10:00:00.123456+05:30", "2024-02-29T23:59:59-08"},
			[]string{"2024-01-15", "2024-02-30T10:00:00Z", "2024-01-15T25:00:00Z", "nope", "2024-01-15T10:00:00.1234567Z"}, false},
		{"text_uuid", `{"type": "string"}`, `{"type": "string", "format": "uuid"}`,
			[]string{"0b5e9a4e-6a7c-4c1e-9d0a-3f2b1c4d5e6f"}, []string{"abc", "{0b5e9a4e-6a7c-4c1e-9d0a-3f2b1c4d5e6f}"}, false},
		{"decimal_integer", `{"type": "string", "format": "decimal"}`, `{"type": "integer"}`,
			[]string{"3.00", "-9223372036854775808"}, []string{"2.5", "9223372036854775808", "-0.001"}, false},
		{"datetime_date", `{"type": "string", "format": "date-time"}`, `{"type": "string", "format": "date"}`,
			[]string{"2024-01-15 00:00"}, []string{"2024-01-15 10:00"}, false},
		{"multi_text", `{"type": "array", "items": {"enum": ["a", "b"]}}`, `{"type": "string"}`,
			nil, []string{"{a}", "{}"}, false},
		{"json_integer", `{"type": "object"}`, `{"type": "integer"}`,
			nil, []string{"{}", "1"}, false},
		{"boolean_date", `{"type": "boolean"}`, `{"type": "string", "format": "date"}`,
			nil, []string{"true"}, true},
		{"integer_uuid", `{"type": "integer"}`, `{"type": "string", "format": "uuid"}`,
			nil, []string{"1"}, true},
	}
	prop := func(schemaJSON string) string {
		return `"v": ` + strings.Replace(schemaJSON, "{", `{"x-field-id": "f2", `, 1)
	}
	bad := `"bad": {"type": "boolean", "x-field-id": "f1"}`
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fx := &fixture{t: t, ctx: fx.ctx, pool: fx.pool}
			v1 := parseDef(t, entityDef(c.name, nil, bad, prop(c.from)), 1)
			v2 := parseDef(t, entityDef(c.name, nil, bad, prop(c.to)), 2)
			fx.mustApply(nil, v1)
			col := v1.Field("v").Column()
			insert := fmt.Sprintf("INSERT INTO %s (id, bad, v) VALUES (gen_random_uuid(), $1, $2::text::%s)", Table(c.name), col)
			for _, v := range c.good {
				fx.exec(insert, false, v)
			}
			for _, v := range c.bad {
				fx.exec(insert, true, v)
			}
			fx.exec(insert, false, nil)
			p := fx.migrate(v1, v2)
			s := stepOf(t, p, OpAlterType, c.name+".v")
			if s.FailingRows != int64(len(c.bad)) || !s.Destructive || (s.Problem != "") != c.problem {
				t.Fatalf("failing %d, want %d; destructive %v; problem %q\n%s", s.FailingRows, len(c.bad), s.Destructive, s.Problem, dumpPlan(p))
			}
			fx.exec(fmt.Sprintf("DELETE FROM %s WHERE bad", Table(c.name)))
			fx.mustApply(v1, v2)
			if n := fx.count("SELECT count(*) FROM " + Table(c.name)); n != int64(len(c.good)+1) {
				t.Errorf("%d rows after the change", n)
			}
			// Every value converted came out as the same text (where that is how it was written).
			if c.name == "text_integer" || c.name == "text_decimal" || c.name == "text_uuid" || c.name == "text_date" {
				got := fx.count(fmt.Sprintf("SELECT count(*) FROM %s WHERE v::text = ANY($1)", Table(c.name)), c.good)
				if got != int64(len(c.good)) {
					t.Errorf("%d of %d values kept their text", got, len(c.good))
				}
			}
		})
	}
}

func TestSelectToMultiSelect(t *testing.T) {
	fx := newFixture(t)
	v1 := parseDef(t, entityDef("deal", nil, `"stage": {"enum": ["a", "b", "c"], "x-field-id": "f1"}`), 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.deal (id, stage) VALUES (gen_random_uuid(), 'a'), (gen_random_uuid(), 'c'), (gen_random_uuid(), NULL)`)
	v2 := parseDef(t, entityDef("deal", nil, `"stage": {"type": "array", "items": {"enum": ["a", "b"]}, "x-field-id": "f1"}`), 2)
	p := fx.migrate(v1, v2)
	// The type change is safe; the value "c" is outside the new list.
	if p.Destructive || !p.Blocked || stepOf(t, p, OpAddConstraint, "deal.stage").FailingRows != 1 {
		t.Fatalf("plan:\n%s", dumpPlan(p))
	}
	fx.exec(`UPDATE data.deal SET stage = 'b' WHERE stage = 'c'`)
	fx.mustApply(v1, v2)
	if got := fx.text(`SELECT string_agg(coalesce(stage::text, 'null'), ' ' ORDER BY stage) FROM data.deal`); got != "{a} {b} null" {
		t.Errorf("values %s", got)
	}
}

func TestEnumValueRemoved(t *testing.T) {
	fx := newFixture(t)
	v1 := parseDef(t, entityDef("deal", nil,
		`"stage": {"enum": ["new", "won", "lost"], "x-field-id": "f1"}`,
		`"tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "x-field-id": "f2"}`), 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.deal (id, stage, tags) VALUES
		(gen_random_uuid(), 'new', '{a,b}'), (gen_random_uuid(), 'won', '{c}'), (gen_random_uuid(), 'won', '{a}'), (gen_random_uuid(), NULL, NULL)`)

	v2 := parseDef(t, entityDef("deal", nil,
		`"stage": {"enum": ["new", "lost"], "x-field-id": "f1"}`,
		`"tags": {"type": "array", "items": {"enum": ["a", "b"]}, "x-field-id": "f2"}`), 2)
	p := fx.migrate(v1, v2)
	if !p.Blocked || p.Destructive {
		t.Fatalf("want blocked, not destructive:\n%s", dumpPlan(p))
	}
	if n := stepOf(t, p, OpAddConstraint, "deal.stage").FailingRows; n != 2 {
		t.Errorf("stage: %d failing rows, want 2", n)
	}
	if n := stepOf(t, p, OpAddConstraint, "deal.tags").FailingRows; n != 1 {
		t.Errorf("tags: %d failing rows, want 1", n)
	}

	// Removing values nobody uses goes through, and the new list is enforced.
	v3 := parseDef(t, entityDef("deal", nil,
		`"stage": {"enum": ["new", "won"], "x-field-id": "f1"}`,
		`"tags": {"type": "array", "items": {"enum": ["a", "b", "c"]}, "x-field-id": "f2"}`), 3)
	p = fx.mustApply(v1, v3)
	if got := ops(p.Steps); got != "drop_constraint,add_constraint" {
		t.Errorf("steps %s", got)
	}
	fx.execErr("23514", `INSERT INTO data.deal (id, stage) VALUES (gen_random_uuid(), 'lost')`)
	fx.exec(`INSERT INTO data.deal (id, stage) VALUES (gen_random_uuid(), 'won')`)
}

func TestAddUniqueWithDuplicates(t *testing.T) {
	fx := newFixture(t)
	v1 := parseDef(t, entityDef("contact", nil, `"email": {"type": "string", "x-field-id": "f1"}`), 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.contact (id, email) VALUES (gen_random_uuid(), 'a@x'), (gen_random_uuid(), 'a@x'),
		(gen_random_uuid(), 'a@x'), (gen_random_uuid(), 'b@x'), (gen_random_uuid(), NULL), (gen_random_uuid(), NULL)`)
	v2 := parseDef(t, entityDef("contact", nil, `"email": {"type": "string", "x-unique": true, "x-field-id": "f1"}`), 2)
	p := fx.migrate(v1, v2)
	if s := stepOf(t, p, OpAddIndex, "contact_email_key"); !p.Blocked || s.FailingRows != 1 {
		t.Fatalf("want blocked by 1 duplicated value:\n%s", dumpPlan(p))
	}
	if fx.hasIndex("contact_email_key") {
		t.Error("index created by a refused plan")
	}
	fx.exec(`UPDATE data.contact SET email = NULL WHERE email = 'a@x' AND id <> (SELECT min(id::text)::uuid FROM data.contact WHERE email = 'a@x')`)
	fx.mustApply(v1, v2)
	fx.execErr("23505", `INSERT INTO data.contact (id, email) VALUES (gen_random_uuid(), 'b@x')`)
}

func TestIndexAddDrop(t *testing.T) {
	fx := newFixture(t)
	v1 := parseDef(t, entityDef("item", nil, `"sku": {"type": "string", "x-field-id": "f1"}`, `"qty": {"type": "integer", "x-field-id": "f2"}`), 1)
	fx.mustApply(nil, v1)
	withIndexes := `{"type": "object", "x-entity": {"name": "item", "indexes": [{"fields": ["qty", "-created_at"]}]},
		"properties": {"sku": {"type": "string", "x-index": true, "x-field-id": "f1"}, "qty": {"type": "integer", "x-field-id": "f2"}}}`
	v2 := parseDef(t, withIndexes, 2)
	p := fx.mustApply(v1, v2)
	if got := ops(p.Steps); got != "add_index,add_index" {
		t.Errorf("steps %s", got)
	}
	if !fx.hasIndex("item_sku_idx") || !fx.hasIndex("item_qty_desc_created_at_idx") {
		t.Error("indexes missing")
	}
	v3 := parseDef(t, entityDef("item", nil, `"sku": {"type": "string", "x-field-id": "f1"}`, `"qty": {"type": "integer", "x-field-id": "f2"}`), 3)
	p = fx.mustApply(v2, v3)
	if got := ops(p.Steps); got != "drop_index,drop_index" {
		t.Errorf("steps %s", got)
	}
	if fx.hasIndex("item_sku_idx") || fx.hasIndex("item_qty_desc_created_at_idx") {
		t.Error("indexes not dropped")
	}
}

func TestRequiredToggle(t *testing.T) {
	fx := newFixture(t)
	v1 := parseDef(t, entityDef("item", nil, `"sku": {"type": "string", "x-field-id": "f1"}`), 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.item (id, sku) VALUES (gen_random_uuid(), 'a'), (gen_random_uuid(), NULL)`)
	v2 := parseDef(t, entityDef("item", []string{"sku"}, `"sku": {"type": "string", "x-field-id": "f1"}`), 2)
	p := fx.migrate(v1, v2)
	if !p.Blocked || stepOf(t, p, OpAddConstraint, "item.sku").FailingRows != 1 {
		t.Fatalf("plan:\n%s", dumpPlan(p))
	}
	fx.exec(`DELETE FROM data.item WHERE sku IS NULL`)
	fx.mustApply(v1, v2)
	if got := fx.columns("item"); !strings.Contains(got, "sku:text:NO") {
		t.Errorf("columns %s", got)
	}
	p = fx.mustApply(v2, v1)
	if got := ops(p.Steps); got != "drop_constraint" {
		t.Errorf("steps %s", got)
	}
	if got := fx.columns("item"); !strings.Contains(got, "sku:text:YES") {
		t.Errorf("columns %s", got)
	}
}

func TestRelationChange(t *testing.T) {
	fx := newFixture(t)
	fx.mustApply(nil, parseDef(t, entityDef("customer", nil, nameProp), 1))
	fx.mustApply(nil, parseDef(t, entityDef("supplier", nil, nameProp), 1))
	rel := func(entity, onDelete string) string {
		return fmt.Sprintf(`"party": {"type": "string", "format": "uuid", "x-relation": {"entity": %q, "onDelete": %q}, "x-field-id": "f1"}`, entity, onDelete)
	}
	v1 := parseDef(t, entityDef("invoice", nil, rel("customer", "restrict")), 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.customer (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'Ada')`)
	fx.exec(`INSERT INTO data.invoice (id, party) VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001')`)

	v2 := parseDef(t, entityDef("invoice", nil, rel("customer", "cascade")), 2)
	p := fx.mustApply(v1, v2)
	if got := ops(p.Steps); got != "drop_constraint,add_constraint" || stepOf(t, p, OpAddConstraint, "invoice.party").Check != "" {
		t.Errorf("steps %s\n%s", got, dumpPlan(p))
	}
	if got := fx.text(`SELECT confdeltype::text FROM pg_constraint WHERE conname = 'invoice_party_fkey'`); got != "c" {
		t.Errorf("on delete %s", got)
	}

	// A new target: the existing value has no supplier row.
	v3 := parseDef(t, entityDef("invoice", nil, rel("supplier", "restrict")), 3)
	p = fx.migrate(v2, v3)
	if !p.Blocked || stepOf(t, p, OpAddConstraint, "invoice.party").FailingRows != 1 {
		t.Fatalf("plan:\n%s", dumpPlan(p))
	}

	// A removed relation neither cascades nor restricts: the invoice and its hidden value
	// survive the customer's deletion, and restoring the field counts the dangling value.
	v4JSON, err := MergeRemoved(v2, []byte(entityDef("invoice", nil, `"number": {"type": "string", "x-field-id": "f2"}`)))
	if err != nil {
		t.Fatal(err)
	}
	v4 := parseDef(t, string(v4JSON), 4)
	p = fx.mustApply(v2, v4)
	if got := ops(p.Steps); got != "soft_remove_column,add_column,rebuild_search" {
		t.Errorf("steps %s\n%s", got, dumpPlan(p))
	}
	fx.exec(`DELETE FROM data.customer`)
	if n := fx.count(`SELECT count(*) FROM data.invoice WHERE party IS NOT NULL`); n != 1 {
		t.Errorf("%d invoices keep their party", n)
	}
	v5 := parseDef(t, entityDef("invoice", nil, rel("customer", "cascade"), `"number": {"type": "string", "x-field-id": "f2"}`), 5)
	p = fx.migrate(v4, v5)
	if s := stepOf(t, p, OpAddConstraint, "invoice.party"); !p.Blocked || s.FailingRows != 1 {
		t.Fatalf("plan:\n%s", dumpPlan(p))
	}
	stepOf(t, p, OpRestoreColumn, "invoice.party")
	fx.exec(`INSERT INTO data.customer (id, name) VALUES ('00000000-0000-0000-0000-000000000001', 'Ada again')`)
	fx.mustApply(v4, v5)
}

func TestUniqueIndexOverRetypedColumn(t *testing.T) {
	fx := newFixture(t)
	v1 := parseDef(t, entityDef("price", nil, `"amount": {"type": "string", "x-unique": true, "x-field-id": "f1"}`), 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.price (id, amount) VALUES (gen_random_uuid(), '1.50'), (gen_random_uuid(), '1.5'), (gen_random_uuid(), '2')`)
	// Distinct as text, equal as decimals: the rebuilt unique index would fail.
	v2 := parseDef(t, entityDef("price", nil, `"amount": {"type": "string", "format": "decimal", "x-unique": true, "x-field-id": "f1"}`), 2)
	p := fx.migrate(v1, v2)
	if s := stepOf(t, p, OpAddIndex, "price_amount_key"); !p.Blocked || s.FailingRows != 1 || stepOf(t, p, OpAlterType, "price.amount").FailingRows != 0 {
		t.Fatalf("plan:\n%s", dumpPlan(p))
	}
	fx.exec(`DELETE FROM data.price WHERE amount = '1.5'`)
	p = fx.mustApply(v1, v2)
	if got := ops(p.Steps); got != "drop_index,alter_type,add_index,rebuild_search" {
		t.Errorf("steps %s", got)
	}
	fx.execErr("23505", `INSERT INTO data.price (id, amount) VALUES (gen_random_uuid(), 2.0)`)
}

func TestSoftRemoveAndRestore(t *testing.T) {
	fx := newFixture(t)
	v1JSON := entityDef("contact", []string{"name", "code", "stage"}, nameProp,
		`"code": {"type": "string", "x-unique": true, "x-field-id": "f2"}`,
		`"stage": {"enum": ["lead", "client"], "x-label": {"en": "Stage"}, "x-field-id": "f3"}`)
	v1 := parseDef(t, v1JSON, 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.contact (id, name, code, stage) VALUES (gen_random_uuid(), 'Ada', 'C1', 'client')`)

	// The admin deletes code and stage; MergeRemoved keeps them as removed fields.
	merged, err := MergeRemoved(v1, []byte(entityDef("contact", []string{"name"}, nameProp)))
	if err != nil {
		t.Fatal(err)
	}
	v2 := parseDef(t, string(merged), 2)
	if f := v2.Fields[1]; f.Name != "code" || !f.Removed {
		t.Fatalf("merged fields: %+v", v2.Fields)
	}
	p := fx.mustApply(v1, v2)
	if got := ops(p.Steps); got != "soft_remove_column,soft_remove_column,rebuild_search" {
		t.Errorf("steps %s\n%s", got, dumpPlan(p))
	}
	if got := fx.text(`SELECT code || ' ' || stage FROM data.contact`); got != "C1 client" {
		t.Errorf("data %q", got)
	}
	// Inserts that never set the removed columns succeed, twice (no unique index left).
	fx.exec(`INSERT INTO data.contact (id, name) VALUES (gen_random_uuid(), 'Bob'), (gen_random_uuid(), 'Cy')`)
	if fx.hasIndex("contact_code_key") {
		t.Error("unique index of a removed field kept")
	}
	if got := fx.comment("contact", "stage"); got != "Stage (removed)" {
		t.Errorf("comment %q", got)
	}
	// Diffing the merged definition with itself is quiet.
	if steps := diff(v2, parseDef(t, string(merged), 3)); len(steps) != 0 {
		t.Errorf("steps %s", ops(steps))
	}

	// A new field cannot take a removed field's name; reusing the id restores it.
	clash, err := MergeRemoved(v2, []byte(entityDef("contact", []string{"name"}, nameProp, `"code": {"type": "integer", "x-field-id": "f9"}`)))
	if err != nil {
		t.Fatal(err)
	}
	p = fx.migrate(v2, parseDef(t, string(clash), 3))
	if s := stepOf(t, p, OpAddColumn, "contact.code"); !p.Blocked || !strings.Contains(s.Problem, "x-field-id f2") {
		t.Fatalf("plan:\n%s", dumpPlan(p))
	}

	// Restoring: the rows inserted while removed have no code, so NOT NULL is refused.
	v3 := parseDef(t, v1JSON, 3)
	p = fx.migrate(v2, v3)
	if !p.Blocked || stepOf(t, p, OpAddConstraint, "contact.code").FailingRows != 2 {
		t.Fatalf("plan:\n%s", dumpPlan(p))
	}
	stepOf(t, p, OpRestoreColumn, "contact.stage")
	fx.exec(`UPDATE data.contact SET code = name, stage = 'lead' WHERE code IS NULL`)
	fx.mustApply(v2, v3)
	if !fx.hasIndex("contact_code_key") {
		t.Error("unique index not restored")
	}
	fx.execErr("23514", `INSERT INTO data.contact (id, name, code, stage) VALUES (gen_random_uuid(), 'Di', 'D1', 'bogus')`)
	fx.execErr("23502", `INSERT INTO data.contact (id, name, stage) VALUES (gen_random_uuid(), 'Di', 'lead')`)
	if got := fx.comment("contact", "stage"); got != "Stage" {
		t.Errorf("comment %q", got)
	}
	if n := fx.count(`SELECT count(*) FROM data.contact WHERE search @@ to_tsquery('simple', 'client')`); n != 1 {
		t.Errorf("restored field not searchable: %d", n)
	}
}

func TestRebuildSearch(t *testing.T) {
	fx := newFixture(t)
	v1 := parseDef(t, entityDef("note", nil, nameProp), 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.note (id, name) VALUES (gen_random_uuid(), 'first')`)
	v2 := parseDef(t, entityDef("note", nil, nameProp,
		`"body": {"type": "string", "x-ui": {"widget": "textarea"}, "x-field-id": "f2"}`,
		`"count": {"type": "integer", "x-field-id": "f3"}`), 2)
	p := fx.mustApply(v1, v2)
	if s := stepOf(t, p, OpRebuildSearch, "note"); !strings.Contains(s.Description, "name, body") {
		t.Errorf("rebuild: %s", s.Description)
	}
	fx.exec(`INSERT INTO data.note (id, name, body) VALUES (gen_random_uuid(), 'second', 'hello world')`)
	if n := fx.count(`SELECT count(*) FROM data.note WHERE search @@ to_tsquery('simple', 'hello')`); n != 1 {
		t.Errorf("found %d", n)
	}
	if n := fx.count(`SELECT count(*) FROM data.note WHERE search @@ to_tsquery('simple', 'first')`); n != 1 {
		t.Errorf("found %d", n)
	}
	if !fx.hasIndex("note_search_idx") {
		t.Error("search index missing")
	}
	// Changing a searchable column's type drops the search column first.
	v3 := parseDef(t, entityDef("note", nil, nameProp,
		`"body": {"type": "integer", "x-field-id": "f2"}`, `"count": {"type": "integer", "x-field-id": "f3"}`), 3)
	fx.exec(`UPDATE data.note SET body = NULL`)
	fx.mustApply(v2, v3)
	if n := fx.count(`SELECT count(*) FROM data.note WHERE search @@ to_tsquery('simple', 'second')`); n != 1 {
		t.Errorf("found %d", n)
	}
}

func TestChildLines(t *testing.T) {
	fx := newFixture(t)
	orderDef := func(lineProps string, required string) string {
		return `{"type": "object", "x-entity": {"name": "sales_order"}, "properties": {
			"number": {"type": "string", "x-field-id": "f1"},
			"lines": {"type": "array", "x-child": {"entity": "sales_order_line"}, "x-field-id": "f2",
				"items": {"type": "object", "required": ` + required + `, "properties": {` + lineProps + `}}}}}`
	}
	qty := `"qty": {"type": "integer", "x-field-id": "l1"}`
	v1 := parseDef(t, orderDef(qty, `["qty"]`), 1)
	fx.mustApply(nil, v1)
	fx.exec(`INSERT INTO data.sales_order (id, number) VALUES ('00000000-0000-0000-0000-000000000001', 'SO-1')`)
	fx.exec(`INSERT INTO data.sales_order_line (id, parent_id, position, qty) VALUES
		(gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 1, 2), (gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 2, 5)`)

	// A required line field: every existing line would be NULL.
	v2 := parseDef(t, orderDef(qty+`, "sku": {"type": "string", "x-field-id": "l2"}`, `["qty", "sku"]`), 2)
	p := fx.migrate(v1, v2)
	if !p.Blocked || stepOf(t, p, OpAddConstraint, "sales_order_line.sku").FailingRows != 2 {
		t.Fatalf("plan:\n%s", dumpPlan(p))
	}
	// Optional, and qty renamed and widened; the data stays.
	v2 = parseDef(t, orderDef(`"quantity": {"type": "string", "format": "decimal", "x-field-id": "l1"}, "sku": {"type": "string", "x-field-id": "l2"}`, `["quantity"]`), 2)
	p = fx.mustApply(v1, v2)
	if got := ops(p.Steps); got != "rename_column,alter_type,add_column,set_comment" {
		t.Errorf("steps %s\n%s", got, dumpPlan(p))
	}
	if got := fx.columns("sales_order_line"); !strings.Contains(got, "quantity:numeric:NO sku:text:YES") {
		t.Errorf("columns %s", got)
	}
	if got := fx.text(`SELECT string_agg(quantity::text, ',' ORDER BY position) FROM data.sales_order_line`); got != "2,5" {
		t.Errorf("values %s", got)
	}

	// New child lines: a new table.
	v3JSON := strings.Replace(orderDef(`"quantity": {"type": "string", "format": "decimal", "x-field-id": "l1"}, "sku": {"type": "string", "x-field-id": "l2"}`, `["quantity"]`),
		`"number": {"type": "string", "x-field-id": "f1"},`,
		`"number": {"type": "string", "x-field-id": "f1"},
		"payments": {"type": "array", "x-child": {"entity": "sales_order_payment"}, "x-field-id": "f3",
			"items": {"type": "object", "properties": {"amount": {"type": "string", "format": "money", "x-field-id": "p1"}}}},`, 1)
	v3 := parseDef(t, v3JSON, 3)
	p = fx.mustApply(v2, v3)
	if got := ops(p.Steps); got != "create_table" {
		t.Errorf("steps %s", got)
	}
	fx.exec(`INSERT INTO data.sales_order_payment (id, parent_id, position, amount) VALUES (gen_random_uuid(), '00000000-0000-0000-0000-000000000001', 1, 10.50)`)

	// Deleted line fields are kept by MergeRemoved inside items.properties.
	merged, err := MergeRemoved(v3, []byte(strings.Replace(v3JSON, `, "sku": {"type": "string", "x-field-id": "l2"}`, "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	v4 := parseDef(t, string(merged), 4)
	p = fx.mustApply(v3, v4)
	if got := ops(p.Steps); got != "soft_remove_column" {
		t.Errorf("steps %s\n%s", got, dumpPlan(p))
	}
	if got := fx.columns("sales_order_line"); !strings.Contains(got, "sku:text:YES") {
		t.Errorf("columns %s", got)
	}
}

func TestComments(t *testing.T) {
	fx := newFixture(t)
	v1 := parseDef(t, `{"type": "object", "x-entity": {"name": "deal", "label": {"en": "Deal"}},
		"properties": {"title": {"type": "string", "x-label": {"en": "Title"}, "x-field-id": "f1"}}}`, 1)
	fx.mustApply(nil, v1)
	v2 := parseDef(t, `{"type": "object", "x-entity": {"name": "deal", "label": {"en": "Opportunity"}},
		"properties": {"title": {"type": "string", "title": "Subject", "x-field-id": "f1"}}}`, 2)
	p := fx.mustApply(v1, v2)
	if got := ops(p.Steps); got != "set_comment,set_comment" {
		t.Errorf("steps %s", got)
	}
	if got := fx.text(`SELECT obj_description('data.deal'::regclass, 'pg_class')`); got != "Opportunity" {
		t.Errorf("table comment %q", got)
	}
	if got := fx.comment("deal", "title"); got != "Subject" {
		t.Errorf("column comment %q", got)
	}
}

func TestMergeRemovedKeepsOrder(t *testing.T) {
	old := parseDef(t, `{"type": "object", "x-entity": {"name": "deal"},
  "properties": {
    "title": {"type": "string", "x-field-id": "f1"},
    "amount": {"type": "string", "format": "money", "x-field-id": "f2"},
    "legacy": {"type": "string", "x-field-id": "f4", "x-removed": false, "x-label": {"en": "Legacy"}},
    "lines": {"type": "array", "x-child": {"entity": "deal_line"}, "x-field-id": "f5",
      "items": {"type": "object", "properties": {"a": {"type": "integer", "x-field-id": "l1"}, "b": {"type": "integer", "x-field-id": "l2"}}}},
    "stage": {"enum": ["x", "y"], "x-field-id": "f3"}
  }
}`, 1)
	// The author reorders, renames amount, deletes legacy, stage and the line field b.
	next := `{
  "x-entity": {"name": "deal"},
  "type": "object",
  "properties": {
    "lines": {"type": "array", "x-child": {"entity": "deal_line"}, "x-field-id": "f5",
      "items": {"type": "object", "properties": {"a": {"type": "integer", "x-field-id": "l1"}}}},
    "value": {"type": "string", "format": "money", "x-field-id": "f2"},
    "title": {"type": "string", "x-field-id": "f1"}
  },
  "required": ["title"]
}`
	want := `{
  "x-entity": {"name": "deal"},
  "type": "object",
  "properties": {
    "lines": {"type": "array", "x-child": {"entity": "deal_line"}, "x-field-id": "f5",
      "items": {"type": "object", "properties": {"a": {"type": "integer", "x-field-id": "l1"}, "b": {"type": "integer", "x-field-id": "l2", "x-removed": true}}}},
    "value": {"type": "string", "format": "money", "x-field-id": "f2"},
    "title": {"type": "string", "x-field-id": "f1"}, "legacy": {"type": "string", "x-field-id": "f4", "x-removed": true, "x-label": {"en": "Legacy"}}, "stage": {"enum": ["x", "y"], "x-field-id": "f3", "x-removed": true}
  },
  "required": ["title"]
}`
	got, err := MergeRemoved(old, []byte(next))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Fatalf("got\n%s\nwant\n%s", got, want)
	}
	e := parseDef(t, string(got), 2)
	var names []string
	for _, f := range e.Fields {
		names = append(names, fmt.Sprintf("%s:%v", f.Name, f.Removed))
	}
	if s := strings.Join(names, " "); s != "lines:false value:false title:false legacy:true stage:true" {
		t.Errorf("fields %s", s)
	}
	// Nothing deleted: the document comes back unchanged.
	again, err := MergeRemoved(e, got)
	if err != nil || string(again) != string(got) {
		t.Errorf("second merge changed the document (%v):\n%s", err, again)
	}
	// Compact documents work too.
	compact, err := MergeRemoved(old, []byte(`{"type":"object","x-entity":{"name":"deal"},"properties":{"title":{"type":"string","x-field-id":"f1"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	if e := parseDef(t, string(compact), 2); len(e.Fields) != 5 || e.Fields[0].Name != "title" || !e.Fields[4].Removed {
		t.Errorf("compact merge: %s", compact)
	}
}
