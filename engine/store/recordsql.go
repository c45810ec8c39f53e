package store

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/tessera/tessera/engine/schema"
)

// systemJSON builds the system columns of a record's JSON object.
func systemJSON(alias string) []string {
	var parts []string
	for _, c := range schema.SystemColumns {
		parts = append(parts, Literal(c), alias+"."+c)
	}
	return parts
}

// valueExpr is the SQL producing a field's JSON value. Numerics are turned into text so
// money stays an exact decimal string end to end.
func valueExpr(alias string, f *schema.Field) string {
	col := alias + "." + Ident(f.Name)
	switch f.Column() {
	case "numeric":
		return col + "::text"
	}
	return col
}

// jsonObject joins key/value pairs into one jsonb object; jsonb_build_object takes at
// most 100 arguments, so wide entities are built in chunks and concatenated.
func jsonObject(pairs []string) string {
	if len(pairs) == 0 {
		return "'{}'::jsonb"
	}
	var chunks []string
	for len(pairs) > 0 {
		n := min(len(pairs), 100)
		chunks = append(chunks, "jsonb_build_object("+strings.Join(pairs[:n], ", ")+")")
		pairs = pairs[n:]
	}
	return strings.Join(chunks, " || ")
}

// RecordSelect describes what a record read returns.
type RecordSelect struct {
	Entity *schema.Entity
	// Fields limits the returned fields (nil: all live fields). System columns are always returned.
	Fields []string
	// Expand embeds related records under "_expand".
	Expand []Expansion
}

// Expansion is one relation whose target record is embedded.
type Expansion struct {
	Field  string
	Target *schema.Entity
	// Fields limits the target's fields (nil: all).
	Fields []string
	// Where is an extra predicate over alias x (the reader's row rules); "" for none.
	Where string
}

// RecordJSON is the SQL expression (over alias "t") that yields a record as jsonb,
// including its lines and expanded relations, in one statement: no N+1 queries.
func (s RecordSelect) RecordJSON() string {
	pairs := systemJSON("t")
	for _, f := range s.Entity.LiveFields() {
		if s.Fields != nil && !slices.Contains(s.Fields, f.Name) {
			continue
		}
		pairs = append(pairs, Literal(f.Name), fieldJSON("t", f))
	}
	if len(s.Expand) > 0 {
		var exp []string
		for _, x := range s.Expand {
			inner := append(systemJSON("x"), flatFields("x", x.Target, x.Fields)...)
			where := ""
			if x.Where != "" {
				where = " AND " + x.Where
			}
			exp = append(exp, Literal(x.Field), fmt.Sprintf("(SELECT %s FROM %s x WHERE x.id = t.%s AND x.deleted_at IS NULL%s)",
				jsonObject(inner), Table(x.Target.Name), Ident(x.Field), where))
		}
		pairs = append(pairs, "'_expand'", jsonObject(exp))
	}
	return jsonObject(pairs)
}

func flatFields(alias string, e *schema.Entity, only []string) []string {
	var pairs []string
	for _, f := range e.LiveFields() {
		if f.Type != schema.TypeChild && (only == nil || slices.Contains(only, f.Name)) {
			pairs = append(pairs, Literal(f.Name), valueExpr(alias, f))
		}
	}
	return pairs
}

func fieldJSON(alias string, f *schema.Field) string {
	if f.Type != schema.TypeChild {
		return valueExpr(alias, f)
	}
	pairs := []string{"'id'", "l.id"}
	for _, cf := range f.Child.Fields {
		if !cf.Removed {
			pairs = append(pairs, Literal(cf.Name), valueExpr("l", cf))
		}
	}
	return fmt.Sprintf("(SELECT coalesce(jsonb_agg(%s ORDER BY l.position), '[]'::jsonb) FROM %s l WHERE l.parent_id = %s.id)",
		jsonObject(pairs), Table(f.Child.Table), alias)
}

// Param converts a validated JSON value into a bind parameter and the SQL placeholder
// cast that turns it into the column's type. Every value travels as text (or text[]),
// so decimals are never rounded and nothing is interpolated into SQL.
func Param(f *schema.Field, v any, placeholder string) (any, string, error) {
	col := f.Column()
	if v == nil {
		return nil, placeholder + "::" + col, nil
	}
	switch col {
	case "text[]":
		items, ok := v.([]any)
		if !ok {
			return nil, "", fmt.Errorf("%s: expected a list", f.Name)
		}
		out := make([]string, len(items))
		for i, it := range items {
			s, ok := it.(string)
			if !ok {
				return nil, "", fmt.Errorf("%s: list items must be strings", f.Name)
			}
			out[i] = s
		}
		return out, placeholder + "::text[]", nil
	case "jsonb":
		b, err := json.Marshal(v)
		if err != nil {
			return nil, "", err
		}
		return string(b), placeholder + "::text::jsonb", nil
	}
	switch x := v.(type) {
	case string:
		return x, placeholder + "::text::" + col, nil
	case json.Number:
		return x.String(), placeholder + "::text::" + col, nil
	case bool:
		if x {
			return "true", placeholder + "::text::" + col, nil
		}
		return "false", placeholder + "::text::" + col, nil
	}
	return nil, "", fmt.Errorf("%s: unsupported value %T", f.Name, v)
}
