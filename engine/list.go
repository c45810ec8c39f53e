package engine

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/query"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/engine/store"
)

// Page sizes of lists.
const (
	DefaultLimit = 50
	MaxLimit     = 500
	// ExactCountLimit: below this many (estimated) matching rows the total is counted
	// exactly; above it the planner's estimate is returned and flagged as such, so a
	// list over a million rows never pays for a full count.
	ExactCountLimit = 10000
)

// ListOptions are the parameters of a record list.
type ListOptions struct {
	Filter string
	Sort   string
	Limit  int
	Cursor string
	Q      string
	Fields []string
	Expand []string
	// Deleted lists soft-deleted records instead of live ones.
	Deleted bool
}

// ListResult is one page of records.
type ListResult struct {
	Items           []json.RawMessage `json:"items"`
	NextCursor      *string           `json:"next_cursor"`
	Total           int64             `json:"total"`
	TotalIsEstimate bool              `json:"total_is_estimate"`
}

// sortKey is one resolved ORDER BY key.
type sortKey struct {
	column string // SQL expression over alias t
	cast   string // SQL type to cast cursor values back to
	desc   bool
}

// cursor is the position after the last row of a page: the sort values of that row.
type cursor struct {
	Sort   string    `json:"s"`
	Values []*string `json:"v"`
}

// listQuery is a compiled list request: what to select, which rows, in which order.
type listQuery struct {
	ent       *schema.Entity
	sel       store.RecordSelect
	where     []string
	args      *query.Args
	whereArgs int // how many of args the where clause uses
	keys      []sortKey
}

// compileList checks and compiles the filter, search, sort and projection of a list
// for the actor: hidden fields can be neither filtered, sorted, searched nor returned,
// and the row rules join the WHERE clause. Every value becomes a bind parameter.
func (e *Engine) compileList(ctx context.Context, db querier, actor Actor, action auth.Action, ent *schema.Entity, opts ListOptions) (*listQuery, error) {
	acc, err := authorize(actor, ent, action)
	if err != nil {
		return nil, err
	}
	if action != auth.Read {
		if _, err := authorize(actor, ent, auth.Read); err != nil {
			return nil, err
		}
	}
	q := &listQuery{ent: ent, args: &query.Args{}, where: []string{"t.deleted_at IS NULL"}}
	if opts.Deleted {
		q.where[0] = "t.deleted_at IS NOT NULL"
	}
	pred, err := rowPredicate(actor, acc, auth.Read, ent, "t", q.args)
	if err != nil {
		return nil, err
	}
	if pred != "" {
		q.where = append(q.where, pred)
	}
	if opts.Filter != "" {
		expr, err := query.Parse(opts.Filter)
		if err != nil {
			return nil, filterError(err)
		}
		sql, err := expr.SQL(queryFields(ent, "t", acc), nil, q.args)
		if err != nil {
			return nil, filterError(err)
		}
		q.where = append(q.where, "("+sql+")")
	}
	if opts.Q != "" {
		tsq := searchQuery(opts.Q)
		if tsq == "" {
			return nil, badQuery("/q", "the search has no letters or digits")
		}
		q.where = append(q.where, searchVector(ent, acc)+" @@ to_tsquery('simple', "+q.args.Add(tsq)+")")
	}
	// The WHERE clause's parameters come first, so the count can run on them alone; the
	// select list's (expanded relations' row rules) follow.
	q.whereArgs = len(q.args.Values)
	if q.sel, err = e.recordSelect(ctx, db, actor, acc, ent, opts.Fields, opts.Expand, q.args); err != nil {
		return nil, err
	}
	if q.keys, err = sortKeys(ent, acc, opts.Sort); err != nil {
		return nil, err
	}
	return q, nil
}

// searchVector is the indexed search column, unless the actor has hidden text fields:
// then the vector is built from the visible fields only, so a search cannot reveal a
// hidden value (slower: no index).
func searchVector(ent *schema.Entity, acc *auth.Access) string {
	var visible []string
	hiding := false
	for _, f := range ent.LiveFields() {
		if !f.Searchable() {
			continue
		}
		if acc.Hidden(f.Name) {
			hiding = true
			continue
		}
		visible = append(visible, fmt.Sprintf("coalesce(t.%s, '')", store.Ident(f.Name)))
	}
	if !hiding {
		return "t.search"
	}
	if len(visible) == 0 {
		return "to_tsvector('simple'::regconfig, '')"
	}
	return "to_tsvector('simple'::regconfig, " + strings.Join(visible, " || ' ' || ") + ")"
}

// sql renders the statement: records as jsonb plus the row's sort values as text[].
func (q *listQuery) sql(limit int) string {
	order := make([]string, len(q.keys))
	cursorCols := make([]string, len(q.keys))
	for i, k := range q.keys {
		order[i] = k.column
		if k.desc {
			order[i] += " DESC"
		}
		cursorCols[i] = k.column + "::text"
	}
	sql := fmt.Sprintf("SELECT %s, ARRAY[%s] FROM %s t WHERE %s ORDER BY %s",
		q.sel.RecordJSON(), strings.Join(cursorCols, ", "), store.Table(q.ent.Name),
		strings.Join(q.where, " AND "), strings.Join(order, ", "))
	if limit > 0 {
		sql += fmt.Sprintf(" LIMIT %d", limit)
	}
	return sql
}

// List returns a page of records: filtered, searched, sorted and paginated by keyset.
func (e *Engine) List(ctx context.Context, actor Actor, entity string, opts ListOptions) (*ListResult, error) {
	return e.list(ctx, e.pool, actor, entity, opts, true)
}

// querier is a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

func (e *Engine) list(ctx context.Context, db querier, actor Actor, entity string, opts ListOptions, withTotal bool) (*ListResult, error) {
	c, err := e.entity(ctx, db, entity)
	if err != nil {
		return nil, err
	}
	limit := opts.Limit
	switch {
	case limit == 0:
		limit = DefaultLimit
	case limit < 0 || limit > MaxLimit:
		return nil, badQuery("/limit", fmt.Sprintf("limit must be between 1 and %d", MaxLimit))
	}
	q, err := e.compileList(ctx, db, actor, auth.Read, c.entity, opts)
	if err != nil {
		return nil, err
	}
	res := &ListResult{Items: []json.RawMessage{}}
	// The total ignores the cursor: it counts the whole result, not what is left. On the
	// pool it runs on a second connection while the page is read.
	type counted struct {
		n        int64
		estimate bool
		err      error
	}
	totals := make(chan counted, 1)
	if withTotal {
		where, args := strings.Join(q.where, " AND "), q.args.Values[:q.whereArgs]
		count := func() {
			var c counted
			c.n, c.estimate, c.err = total(ctx, db, q.ent.Name, where, args)
			totals <- c
		}
		if db == querier(e.pool) {
			go count()
		} else {
			count()
		}
	}
	if opts.Cursor != "" {
		cond, err := keysetCondition(q.keys, opts.Sort, opts.Cursor, q.args)
		if err != nil {
			return nil, err
		}
		q.where = append(q.where, cond)
	}
	if err := e.readPage(ctx, db, q, opts.Sort, limit, res); err != nil {
		if withTotal {
			<-totals
		}
		return nil, err
	}
	if withTotal {
		c := <-totals
		if c.err != nil {
			return nil, c.err
		}
		res.Total, res.TotalIsEstimate = c.n, c.estimate
	}
	return res, nil
}

func (e *Engine) readPage(ctx context.Context, db querier, q *listQuery, sortSpec string, limit int, res *ListResult) error {
	rows, err := db.Query(ctx, q.sql(limit+1), q.args.Values...)
	if err != nil {
		return err
	}
	defer rows.Close()
	var last []*string
	for rows.Next() {
		var (
			// Raw bytes: PostgreSQL built valid JSON, no need to parse it again.
			rec  []byte
			vals []*string
		)
		if err := rows.Scan(&rec, &vals); err != nil {
			return err
		}
		if len(res.Items) == limit {
			next := encodeCursor(cursor{Sort: sortSpec, Values: last})
			res.NextCursor = &next
			break
		}
		res.Items = append(res.Items, rec)
		last = vals
	}
	return rows.Err()
}

// AppendJSON writes the page as JSON without re-encoding the records, which
// PostgreSQL already rendered.
func (r *ListResult) AppendJSON(buf []byte) []byte {
	buf = append(buf, `{"items":[`...)
	for i, it := range r.Items {
		if i > 0 {
			buf = append(buf, ',')
		}
		buf = append(buf, it...)
	}
	buf = append(buf, `],"next_cursor":`...)
	if r.NextCursor == nil {
		buf = append(buf, "null"...)
	} else {
		buf = strconv.AppendQuote(buf, *r.NextCursor)
	}
	buf = append(buf, `,"total":`...)
	buf = strconv.AppendInt(buf, r.Total, 10)
	buf = append(buf, `,"total_is_estimate":`...)
	buf = strconv.AppendBool(buf, r.TotalIsEstimate)
	return append(buf, '}')
}

func filterError(err error) error {
	var qe *query.Error
	if errors.As(err, &qe) {
		msg := qe.Message
		if qe.Position >= 0 {
			msg = fmt.Sprintf("%s (at character %d)", msg, qe.Position+1)
		}
		return badQuery("/filter", msg)
	}
	return err
}

// queryFields resolves expression names to the entity's columns over alias. Child
// lines and json fields cannot be filtered on, nor fields hidden by acc (nil: none).
func queryFields(ent *schema.Entity, alias string, acc *auth.Access) query.Fields {
	return func(name string) (query.Field, bool) {
		switch name {
		case "id", "created_by", "updated_by":
			return query.Field{Name: name, Column: alias + "." + name, Kind: query.KindUUID}, true
		case "created_at", "updated_at":
			return query.Field{Name: name, Column: alias + "." + name, Kind: query.KindDateTime}, true
		case "version":
			return query.Field{Name: name, Column: alias + ".version", Kind: query.KindInteger}, true
		}
		f := ent.Field(name)
		if f == nil || (acc != nil && acc.Hidden(name)) {
			return query.Field{}, false
		}
		kind, ok := queryKind(f)
		return query.Field{Name: name, Column: alias + "." + store.Ident(name), Kind: kind}, ok
	}
}

func queryKind(f *schema.Field) (query.Kind, bool) {
	switch f.Column() {
	case "text":
		return query.KindText, true
	case "numeric":
		return query.KindDecimal, true
	case "bigint":
		return query.KindInteger, true
	case "boolean":
		return query.KindBool, true
	case "date":
		return query.KindDate, true
	case "timestamptz":
		return query.KindDateTime, true
	case "uuid":
		return query.KindUUID, true
	case "text[]":
		return query.KindTextArray, true
	}
	return 0, false
}

func sortKeys(ent *schema.Entity, acc *auth.Access, spec string) ([]sortKey, error) {
	parsed, err := query.ParseSort(spec)
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return nil, badQuery("/sort", qe.Message)
		}
		return nil, badQuery("/sort", err.Error())
	}
	var keys []sortKey
	hasID := false
	for _, k := range parsed {
		col, cast := "", ""
		switch k.Field {
		case "id":
			col, cast, hasID = "t.id", "uuid", true
		case "created_at", "updated_at":
			col, cast = "t."+k.Field, "timestamptz"
		case "version":
			col, cast = "t.version", "integer"
		default:
			f := ent.Field(k.Field)
			if f == nil || acc.Hidden(k.Field) || f.Type == schema.TypeChild || f.Type == schema.TypeJSON || f.Type == schema.TypeMultiSelect {
				return nil, badQuery("/sort", fmt.Sprintf("cannot sort %s by %q", ent.Name, k.Field))
			}
			col, cast = "t."+store.Ident(f.Name), f.Column()
		}
		keys = append(keys, sortKey{column: col, cast: cast, desc: k.Desc})
	}
	if !hasID {
		// The id breaks ties so the keyset order is total; newest first by default
		// (ids are UUIDv7, ordered by creation time).
		keys = append(keys, sortKey{column: "t.id", cast: "uuid", desc: len(parsed) == 0})
	}
	return keys, nil
}

// keysetCondition selects the rows after the cursor in the sort order. NULLs sort last
// ascending and first descending (PostgreSQL's defaults, which indexes match).
func keysetCondition(keys []sortKey, sortSpec, raw string, args *query.Args) (string, error) {
	cur, err := decodeCursor(raw)
	if err != nil || cur.Sort != sortSpec || len(cur.Values) != len(keys) {
		return "", badQuery("/cursor", "the cursor is invalid or belongs to another sort order")
	}
	var ors []string
	for i, k := range keys {
		var ands []string
		for j := range i {
			ands = append(ands, equalCond(keys[j], cur.Values[j], args))
		}
		ands = append(ands, afterCond(k, cur.Values[i], args))
		ors = append(ors, "("+strings.Join(ands, " AND ")+")")
	}
	return "(" + strings.Join(ors, " OR ") + ")", nil
}

func equalCond(k sortKey, v *string, args *query.Args) string {
	if v == nil {
		return k.column + " IS NULL"
	}
	return fmt.Sprintf("%s = %s::text::%s", k.column, args.Add(*v), k.cast)
}

func afterCond(k sortKey, v *string, args *query.Args) string {
	switch {
	case v == nil && k.desc:
		return k.column + " IS NOT NULL"
	case v == nil:
		return "false"
	case k.desc:
		return fmt.Sprintf("%s < %s::text::%s", k.column, args.Add(*v), k.cast)
	}
	return fmt.Sprintf("(%s > %s::text::%s OR %s IS NULL)", k.column, args.Add(*v), k.cast, k.column)
}

func encodeCursor(c cursor) string {
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return c, err
	}
	err = json.Unmarshal(b, &c)
	return c, err
}

var searchToken = regexp.MustCompile(`[\p{L}\p{N}]+`)

// searchQuery turns free text into a prefix tsquery ("acme ind" → "acme:* & ind:*").
// Only letters and digits survive, so tsquery syntax can never be injected.
func searchQuery(q string) string {
	tokens := searchToken.FindAllString(strings.ToLower(q), 8)
	for i, t := range tokens {
		tokens[i] = t + ":*"
	}
	return strings.Join(tokens, " & ")
}

// total counts matching rows exactly when the planner expects few, and otherwise
// returns its estimate.
func total(ctx context.Context, db querier, entity, where string, args []any) (int64, bool, error) {
	from := fmt.Sprintf("FROM %s t WHERE %s", store.Table(entity), where)
	var plan []struct {
		Plan struct {
			Rows float64 `json:"Plan Rows"`
		} `json:"Plan"`
	}
	var raw []byte
	if err := db.QueryRow(ctx, "EXPLAIN (FORMAT JSON) SELECT 1 "+from, args...).Scan(&raw); err != nil {
		return 0, false, err
	}
	if err := json.Unmarshal(raw, &plan); err != nil || len(plan) == 0 {
		return 0, false, fmt.Errorf("read row estimate: %v", err)
	}
	if est := int64(plan[0].Plan.Rows); est > ExactCountLimit {
		return est, true, nil
	}
	var n int64
	err := db.QueryRow(ctx, "SELECT count(*) "+from, args...).Scan(&n)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	return n, false, err
}
