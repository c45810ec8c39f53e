package store

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine/schema"
)

// DataSchema holds one table per entity (and per child lines set).
const DataSchema = "data"

// Table is the quoted name of an entity's (or lines') table.
func Table(name string) string { return pgx.Identifier{DataSchema, name}.Sanitize() }

// Ident quotes a column or constraint name.
func Ident(name string) string { return pgx.Identifier{name}.Sanitize() }

// Literal quotes a string as an SQL literal. Only for DDL, where bind parameters are not
// allowed (CHECK lists, comments); data always travels as parameters.
func Literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// objectName builds a constraint or index name within PostgreSQL's 63-byte limit,
// hashing the tail when it would be cut so two long names never collide.
func objectName(parts ...string) string {
	name := strings.Join(parts, "_")
	if len(name) <= 63 {
		return name
	}
	sum := sha256.Sum256([]byte(name))
	return name[:54] + "_" + hex.EncodeToString(sum[:4])
}

// columnDef is the column definition of a field (without NOT NULL, added as a constraint
// step so it can be checked against existing rows).
func columnDef(f *schema.Field) string {
	return Ident(f.Name) + " " + f.Column()
}

func checkName(table string, f *schema.Field) string { return objectName(table, f.Name, "check") }
func fkName(table string, f *schema.Field) string    { return objectName(table, f.Name, "fkey") }

// checkExpr is the CHECK constraint a field needs, or "".
func checkExpr(f *schema.Field) string {
	if len(f.Enum) == 0 {
		return ""
	}
	vals := make([]string, len(f.Enum))
	for i, v := range f.Enum {
		vals[i] = Literal(v)
	}
	if f.Type == schema.TypeMultiSelect {
		return fmt.Sprintf("%s <@ ARRAY[%s]::text[]", Ident(f.Name), strings.Join(vals, ", "))
	}
	return fmt.Sprintf("%s IN (%s)", Ident(f.Name), strings.Join(vals, ", "))
}

func fkExpr(f *schema.Field) string {
	return fmt.Sprintf("FOREIGN KEY (%s) REFERENCES %s (id) ON DELETE %s",
		Ident(f.Name), Table(f.Relation.Entity), strings.ToUpper(f.Relation.OnDelete))
}

// searchExpr is the generated tsvector over the searchable fields. The 'simple'
// configuration does no stemming, so it works the same for every language.
func searchExpr(fields []*schema.Field) string {
	var parts []string
	for _, f := range fields {
		if f.Searchable() {
			parts = append(parts, fmt.Sprintf("coalesce(%s, '')", Ident(f.Name)))
		}
	}
	if len(parts) == 0 {
		return "to_tsvector('simple'::regconfig, '')"
	}
	return "to_tsvector('simple'::regconfig, " + strings.Join(parts, " || ' ' || ") + ")"
}

func label(l map[string]string, fallback string) string {
	if s := l["en"]; s != "" {
		return s
	}
	for _, s := range l {
		return s
	}
	return fallback
}

// IndexName names an index by its table and columns.
func IndexName(table string, fields []string, unique bool) string {
	cols := make([]string, len(fields))
	for i, f := range fields {
		cols[i] = strings.Replace(f, "-", "desc_", 1)
	}
	suffix := "idx"
	if unique {
		suffix = "key"
	}
	return objectName(append(append([]string{table}, cols...), suffix)...)
}

func indexSQL(table string, fields []string, unique bool) string {
	cols := make([]string, len(fields))
	for i, f := range fields {
		if name, desc := strings.CutPrefix(f, "-"); desc {
			cols[i] = Ident(name) + " DESC"
		} else {
			cols[i] = Ident(f)
		}
	}
	if unique {
		// Unique over every row: a soft-deleted record keeps its value, so restoring it
		// can never collide, and imports can match on the column (ON CONFLICT).
		return fmt.Sprintf("CREATE UNIQUE INDEX %s ON %s (%s)", Ident(IndexName(table, fields, true)), Table(table), strings.Join(cols, ", "))
	}
	// Reads only ever look at live rows: a partial index is smaller, and lets a count
	// of live rows be answered from the index alone.
	return fmt.Sprintf("CREATE INDEX %s ON %s (%s) WHERE deleted_at IS NULL", Ident(IndexName(table, fields, false)), Table(table), strings.Join(cols, ", "))
}

// wantedIndexes are every index an entity's definition asks for, keyed by name.
func wantedIndexes(e *schema.Entity) map[string]string {
	out := map[string]string{}
	add := func(fields []string, unique bool) {
		out[IndexName(e.Name, fields, unique)] = indexSQL(e.Name, fields, unique)
	}
	for _, f := range e.LiveFields() {
		switch {
		case f.Unique:
			add([]string{f.Name}, true)
		case f.Index || f.Type == schema.TypeRelation:
			// Relations are indexed: expands, deletes of the target and lists by parent use them.
			add([]string{f.Name}, false)
		}
	}
	for _, idx := range e.Indexes {
		add(idx.Fields, idx.Unique)
	}
	return out
}

// createTable is the plan for a new entity: its table, its lines tables, constraints,
// indexes and comments.
func createTable(e *schema.Entity) []Step {
	var cols []string
	cols = append(cols,
		"id uuid PRIMARY KEY",
		"version integer NOT NULL DEFAULT 1",
		"created_at timestamptz NOT NULL DEFAULT now()",
		"created_by uuid",
		"updated_at timestamptz NOT NULL DEFAULT now()",
		"updated_by uuid",
		"deleted_at timestamptz")
	var constraints, comments []string
	var children []Step
	for _, f := range e.Fields {
		if f.Type == schema.TypeChild {
			children = append(children, createChildTable(e.Name, f)...)
			continue
		}
		col := columnDef(f)
		if f.Required && !f.ReadOnly {
			col += " NOT NULL"
		}
		cols = append(cols, col)
		if c := checkExpr(f); c != "" {
			constraints = append(constraints, fmt.Sprintf("CONSTRAINT %s CHECK (%s)", Ident(checkName(e.Name, f)), c))
		}
		if f.Relation != nil {
			constraints = append(constraints, fmt.Sprintf("CONSTRAINT %s %s", Ident(fkName(e.Name, f)), fkExpr(f)))
		}
		comments = append(comments, fmt.Sprintf("COMMENT ON COLUMN %s.%s IS %s", Table(e.Name), Ident(f.Name), Literal(label(f.Label, f.Name))))
	}
	cols = append(cols, fmt.Sprintf("search tsvector GENERATED ALWAYS AS (%s) STORED", searchExpr(e.Fields)))
	sql := []string{
		fmt.Sprintf("CREATE TABLE %s (\n  %s\n)", Table(e.Name), strings.Join(append(cols, constraints...), ",\n  ")),
		fmt.Sprintf("COMMENT ON TABLE %s IS %s", Table(e.Name), Literal(label(e.Label, e.Name))),
		fmt.Sprintf("CREATE INDEX %s ON %s USING gin (search)", Ident(objectName(e.Name, "search_idx")), Table(e.Name)),
	}
	sql = append(sql, comments...)
	for _, name := range slices.Sorted(maps.Keys(wantedIndexes(e))) {
		sql = append(sql, wantedIndexes(e)[name])
	}
	steps := []Step{{Op: OpCreateTable, Target: e.Name, Description: fmt.Sprintf("create table %s.%s", DataSchema, e.Name), SQL: sql}}
	return append(steps, children...)
}

func createChildTable(parent string, f *schema.Field) []Step {
	table := f.Child.Table
	cols := []string{
		"id uuid PRIMARY KEY",
		fmt.Sprintf("parent_id uuid NOT NULL REFERENCES %s (id) ON DELETE CASCADE", Table(parent)),
		"position integer NOT NULL",
	}
	var constraints, comments []string
	for _, cf := range f.Child.Fields {
		col := columnDef(cf)
		if cf.Required && !cf.ReadOnly {
			col += " NOT NULL"
		}
		cols = append(cols, col)
		if c := checkExpr(cf); c != "" {
			constraints = append(constraints, fmt.Sprintf("CONSTRAINT %s CHECK (%s)", Ident(checkName(table, cf)), c))
		}
		if cf.Relation != nil {
			constraints = append(constraints, fmt.Sprintf("CONSTRAINT %s %s", Ident(fkName(table, cf)), fkExpr(cf)))
		}
		comments = append(comments, fmt.Sprintf("COMMENT ON COLUMN %s.%s IS %s", Table(table), Ident(cf.Name), Literal(label(cf.Label, cf.Name))))
	}
	sql := []string{
		fmt.Sprintf("CREATE TABLE %s (\n  %s\n)", Table(table), strings.Join(append(cols, constraints...), ",\n  ")),
		fmt.Sprintf("CREATE INDEX %s ON %s (parent_id, position)", Ident(objectName(table, "parent_idx")), Table(table)),
		fmt.Sprintf("COMMENT ON TABLE %s IS %s", Table(table), Literal(fmt.Sprintf("Lines of %s.%s", parent, f.Name))),
	}
	sql = append(sql, comments...)
	return []Step{{Op: OpCreateTable, Target: table, Description: fmt.Sprintf("create lines table %s.%s for %s", DataSchema, table, f.Name), SQL: sql}}
}
