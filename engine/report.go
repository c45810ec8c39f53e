package engine

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/query"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/engine/store"
)

// ReportQuery is an aggregate over an entity's records.
type ReportQuery struct {
	Entity   string    `json:"entity"`
	Filter   string    `json:"filter"`
	GroupBy  []GroupBy `json:"groupBy"`
	Measures []Measure `json:"measures"`
	// Sort names group fields or measure aliases, "-" for descending: "-total,region".
	Sort  string `json:"sort"`
	Limit int    `json:"limit"`
}

// GroupBy is one grouping key; Bucket truncates dates: day, week, month, quarter, year.
type GroupBy struct {
	Field  string `json:"field"`
	Bucket string `json:"bucket,omitempty"`
}

// Measure is one aggregate: count (no field), sum, avg, min, max.
type Measure struct {
	Op    string `json:"op"`
	Field string `json:"field,omitempty"`
	As    string `json:"as"`
}

// Report limits.
const (
	DefaultReportRows = 1000
	MaxReportRows     = 10000
)

var reportAlias = regexp.MustCompile(`^[a-z][a-z0-9_]{0,47}$`)

// Report runs an aggregate query with the actor's permissions: row rules are part of
// the WHERE clause, hidden fields can be neither grouped, measured nor filtered.
// Decimals stay exact strings; a date bucket is named by its first day.
func (e *Engine) Report(ctx context.Context, actor Actor, rq ReportQuery) ([]json.RawMessage, error) {
	c, err := e.entity(ctx, e.pool, rq.Entity)
	if err != nil {
		return nil, err
	}
	ent := c.entity
	acc, err := authorize(actor, ent, auth.Read)
	if err != nil {
		return nil, err
	}
	if len(rq.Measures) == 0 {
		return nil, badQuery("/measures", "a report needs at least one measure, e.g. {\"op\": \"count\", \"as\": \"n\"}")
	}
	limit := rq.Limit
	if limit == 0 {
		limit = DefaultReportRows
	}
	if limit < 0 || limit > MaxReportRows {
		return nil, badQuery("/limit", fmt.Sprintf("limit must be between 1 and %d", MaxReportRows))
	}
	field := func(path, name string) (*schema.Field, error) {
		f := ent.Field(name)
		if f == nil || acc.Hidden(name) || f.Type == schema.TypeChild || f.Type == schema.TypeJSON {
			return nil, badQuery(path, fmt.Sprintf("%s has no field %q to report on", ent.Name, name))
		}
		return f, nil
	}
	args := &query.Args{}
	// The inner query computes typed columns c0…cn (so sorting is numeric, not textual);
	// the outer one renders them as a JSON object, numerics as exact strings.
	var inner, outer, groups []string
	column := map[string]string{}
	add := func(name, expr string, exact bool) {
		col := fmt.Sprintf("c%d", len(inner))
		inner = append(inner, expr+" AS "+col)
		value := "s." + col
		if exact {
			value += "::text"
		}
		outer = append(outer, store.Literal(name), value)
		column[name] = "s." + col
	}
	for i, g := range rq.GroupBy {
		path := fmt.Sprintf("/groupBy/%d", i)
		f, err := field(path+"/field", g.Field)
		if err != nil {
			return nil, err
		}
		if column[g.Field] != "" {
			return nil, badQuery(path+"/field", "each field can group once")
		}
		expr := "t." + store.Ident(f.Name)
		switch {
		case g.Bucket == "":
		case f.Type == schema.TypeDate || f.Type == schema.TypeDateTime:
			switch g.Bucket {
			case "day", "week", "month", "quarter", "year":
				expr = fmt.Sprintf("date_trunc(%s, %s)::date", store.Literal(g.Bucket), expr)
			default:
				return nil, badQuery(path+"/bucket", "bucket must be day, week, month, quarter or year")
			}
		default:
			return nil, badQuery(path+"/bucket", "only date and date-time fields have buckets")
		}
		groups = append(groups, expr)
		add(g.Field, expr, f.Column() == "numeric")
	}
	for i, m := range rq.Measures {
		path := fmt.Sprintf("/measures/%d", i)
		if !reportAlias.MatchString(m.As) || column[m.As] != "" {
			return nil, badQuery(path+"/as", "each measure needs a unique lower-case name in \"as\"")
		}
		switch m.Op {
		case "count":
			expr := "count(*)"
			if m.Field != "" {
				f, err := field(path+"/field", m.Field)
				if err != nil {
					return nil, err
				}
				expr = "count(t." + store.Ident(f.Name) + ")"
			}
			add(m.As, expr, false)
		case "sum", "avg", "min", "max":
			f, err := field(path+"/field", m.Field)
			if err != nil {
				return nil, err
			}
			col := "t." + store.Ident(f.Name)
			switch f.Column() {
			case "numeric", "bigint":
				// Aggregated as numeric and rendered as text: exact, never through float.
				add(m.As, fmt.Sprintf("%s(%s)::numeric", m.Op, col), true)
			case "date", "timestamptz":
				if m.Op != "min" && m.Op != "max" {
					return nil, badQuery(path+"/op", "dates have only min and max")
				}
				add(m.As, fmt.Sprintf("%s(%s)", m.Op, col), false)
			default:
				return nil, badQuery(path+"/field", fmt.Sprintf("%s is not a number", m.Field))
			}
		default:
			return nil, badQuery(path+"/op", "op must be count, sum, avg, min or max")
		}
	}
	where := []string{"t.deleted_at IS NULL"}
	pred, err := rowPredicate(actor, acc, auth.Read, ent, "t", args)
	if err != nil {
		return nil, err
	}
	if pred != "" {
		where = append(where, pred)
	}
	if rq.Filter != "" {
		expr, err := query.Parse(rq.Filter)
		if err != nil {
			return nil, filterError(err)
		}
		sql, err := expr.SQL(queryFields(ent, "t", acc), nil, args)
		if err != nil {
			return nil, filterError(err)
		}
		where = append(where, "("+sql+")")
	}
	sql := fmt.Sprintf("SELECT %s FROM %s t WHERE %s", strings.Join(inner, ", "), store.Table(ent.Name), strings.Join(where, " AND "))
	if len(groups) > 0 {
		sql += " GROUP BY " + strings.Join(groups, ", ")
	}
	sql = fmt.Sprintf("SELECT jsonb_build_object(%s) FROM (%s) s", strings.Join(outer, ", "), sql)
	if rq.Sort != "" {
		var keys []string
		for _, k := range strings.Split(rq.Sort, ",") {
			name, desc := strings.CutPrefix(strings.TrimSpace(k), "-")
			col := column[name]
			if col == "" {
				return nil, badQuery("/sort", fmt.Sprintf("sort by a group field or measure name, not %q", name))
			}
			if desc {
				col += " DESC"
			}
			keys = append(keys, col)
		}
		sql += " ORDER BY " + strings.Join(keys, ", ")
	}
	sql += fmt.Sprintf(" LIMIT %d", limit)
	rows, err := e.pool.Query(ctx, sql, args.Values...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	items := []json.RawMessage{}
	for rows.Next() {
		var item json.RawMessage
		if err := rows.Scan(&item); err != nil {
			return nil, err
		}
		items = append(items, item)
	}
	return items, rows.Err()
}
