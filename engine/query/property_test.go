package query

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
	"github.com/tessera/tessera/internal/testdb"
)

// The property test stores random records in a real PostgreSQL table, runs
// random filters both as SQL and through Eval, and requires the same rows.
// Set QUERY_SEED to replay a failure; QUERY_CASES to run more expressions.

const defaultSeed = 20260131

var (
	poolText = []string{
		"", "a", "A", "b", "B", "ab", "abc", "Abc", "ABC", "a b", " a", "a ", "é", "e\u0301", "z", "Z",
		"😀", "a😀b", "x' OR 1=1 --", "%", "_", "a%b", "a_b", `\`, `a\b`, "100", "10", "9", "ß", "ä", "İ",
		"a\tb", "sales", "ops", "eu", "Ω",
	}
	poolDecimal = []string{
		"-0.10", "-0.1", "0", "0.00", "-0", "0.1", "0.10", "1", "1.0", "12.50", "12.5", "-12.5", "3", "-3",
		"99999999999999.99", "-99999999999999.99", "0.0000001", "123456789012345678901234567890.5", "1000.50",
	}
	poolInt  = []int64{0, -1, 1, 3, 42, 1000, -1000, math.MaxInt64, math.MinInt64, 1 << 53, -(1 << 53)}
	poolDate = []string{
		"2026-01-31", "2026-02-01", "2024-02-29", "0001-01-01", "9999-12-31", "2026-03-10", "1970-01-01", "2026-01-30",
	}
	poolDateTime = []string{
		"2026-01-31T10:00:00Z", "2026-01-31T11:00:00+01:00", "2026-01-31T10:00:00.000001Z", "2026-01-31T09:59:59.999999Z",
		"1970-01-01T00:00:00Z", "2026-03-11T04:30:00Z", "2026-01-31T00:00:00Z", "0001-01-01T00:00:00Z",
		"9999-12-31T23:59:59.999999Z", "2026-01-30T19:00:00-05:00", "2026-01-31T10:00:00.0000006Z",
	}
	poolUUID = []string{
		"0190a3c4-0000-7000-8000-000000000001", "0190A3C4-0000-7000-8000-000000000001", "0190a3c4-0000-7000-8000-000000000002",
		"00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff", "7d444840-9dc0-11d1-b245-5ffdce74fad2",
	}
	poolTag = []string{"a", "b", "A", "vip", "eu", "", "x' OR 1=1 --", "é"}
)

// propColumns lists the table: one column per kind, two for kinds that can be
// compared field with field.
var propColumns = []struct {
	name string
	kind Kind
	sql  string
}{
	{"name", KindText, "text"},
	{"code", KindText, "text"},
	{"amount", KindDecimal, "numeric"},
	{"amount2", KindDecimal, "numeric"},
	{"qty", KindInteger, "bigint"},
	{"qty2", KindInteger, "bigint"},
	{"active", KindBool, "boolean"},
	{"due", KindDate, "date"},
	{"due2", KindDate, "date"},
	{"created", KindDateTime, "timestamptz"},
	{"created2", KindDateTime, "timestamptz"},
	{"owner_id", KindUUID, "uuid"},
	{"owner2", KindUUID, "uuid"},
	{"tags", KindTextArray, "text[]"},
}

func propFields(name string) (Field, bool) {
	for _, c := range propColumns {
		if c.name == name {
			return Field{Name: name, Column: `t."` + name + `"`, Kind: c.kind}, true
		}
	}
	return Field{}, false
}

func seedFromEnv(t *testing.T) uint64 {
	if s := os.Getenv("QUERY_SEED"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("QUERY_SEED: %v", err)
		}
		return v
	}
	return defaultSeed
}

func TestPropertySQLMatchesEval(t *testing.T) {
	seed := seedFromEnv(t)
	cases := 1000
	if s := os.Getenv("QUERY_CASES"); s != "" {
		cases, _ = strconv.Atoi(s)
	}
	rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	pool := testdb.NewPool(t)
	ctx := context.Background()

	// A linguistic collation on the text columns makes sure ordering only
	// matches Go byte order because of the COLLATE "C" the compiler emits.
	textCollation := ""
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM pg_collation WHERE collname = 'en-x-icu'`).Scan(&n); err == nil && n > 0 {
		textCollation = ` COLLATE "en-x-icu"`
	} else {
		t.Log("ICU collation en-x-icu not available; text columns use the database default")
	}
	var ddl strings.Builder
	ddl.WriteString("CREATE TABLE t (id int PRIMARY KEY")
	for _, c := range propColumns {
		coll := ""
		if c.kind == KindText || c.kind == KindTextArray {
			coll = textCollation
		}
		fmt.Fprintf(&ddl, `, "%s" %s%s`, c.name, c.sql, coll)
	}
	ddl.WriteString(")")
	if _, err := pool.Exec(ctx, ddl.String()); err != nil {
		t.Fatal(err)
	}

	const nRecords = 300
	records := make([]map[string]any, nRecords)
	for i := range records {
		rec, dbVals := randomRecord(rnd)
		records[i] = rec
		var cols, ph []string
		args := []any{i}
		for j, c := range propColumns {
			cols = append(cols, `"`+c.name+`"`)
			cast := ""
			switch c.kind {
			case KindDecimal:
				cast = "::numeric"
			case KindDate:
				cast = "::date"
			case KindDateTime:
				cast = "::timestamptz"
			case KindUUID:
				cast = "::uuid"
			}
			ph = append(ph, fmt.Sprintf("$%d%s", j+2, cast))
			args = append(args, dbVals[j])
		}
		q := fmt.Sprintf("INSERT INTO t (id, %s) VALUES ($1, %s)", strings.Join(cols, ", "), strings.Join(ph, ", "))
		if _, err := pool.Exec(ctx, q, args...); err != nil {
			t.Fatalf("insert record %d %v: %v", i, rec, err)
		}
	}

	// The same records as pgx returns them (time.Time, [16]byte, []any with
	// nils...), so Eval is also checked on database-native values.
	sel := []string{"id"}
	for _, c := range propColumns {
		if c.kind == KindDecimal {
			sel = append(sel, `"`+c.name+`"::text`)
		} else {
			sel = append(sel, `"`+c.name+`"`)
		}
	}
	rows, err := pool.Query(ctx, "SELECT "+strings.Join(sel, ", ")+" FROM t ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	dbRecords := make([]map[string]any, nRecords)
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		rec := map[string]any{}
		for j, c := range propColumns {
			rec[c.name] = vals[j+1]
		}
		dbRecords[vals[0].(int32)] = rec
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}

	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d (rerun with QUERY_SEED=%d): %s", seed, seed, fmt.Sprintf(format, args...))
	}
	var nonTrivial, checked int
	for i := range cases {
		// Sizes cycle from a single leaf upwards, so the first failure tends
		// to be small enough to read.
		g := &gen{rnd: rnd, params: Params{}, maxDepth: i % 5}
		src := g.expr(0)
		for _, s := range []string{src, "!(" + src + ")"} {
			e, err := Parse(s)
			if err != nil {
				fail("case %d: Parse(%q): %v", i, s, err)
			}
			args := &Args{}
			where, err := e.SQL(propFields, g.params, args)
			if err != nil {
				fail("case %d: SQL(%q): %v", i, s, err)
			}
			rows, err := pool.Query(ctx, "SELECT id FROM t WHERE "+where+" ORDER BY id", args.Values...)
			if err != nil {
				fail("case %d: query %q: %v", i, where, err)
			}
			var fromSQL []int
			for rows.Next() {
				var id int
				if err := rows.Scan(&id); err != nil {
					fail("scan: %v", err)
				}
				fromSQL = append(fromSQL, id)
			}
			if err := rows.Err(); err != nil {
				fail("case %d: query %q args %#v: %v", i, where, args.Values, err)
			}
			for variant, recs := range [][]map[string]any{records, dbRecords} {
				var fromEval []int
				for id, rec := range recs {
					ok, err := e.Eval(rec, propFields, g.params)
					if err != nil {
						fail("case %d: Eval(%q) on %v: %v", i, s, rec, err)
					}
					if ok {
						fromEval = append(fromEval, id)
					}
				}
				if !slices.Equal(fromSQL, fromEval) {
					onlySQL, onlyEval := diff(fromSQL, fromEval)
					var detail strings.Builder
					for _, id := range append(onlySQL, onlyEval...) {
						fmt.Fprintf(&detail, "\n  record %d: %#v", id, recs[id])
						if len(detail.String()) > 3000 {
							break
						}
					}
					fail("case %d (records variant %d): %s\nSQL: %s\nargs: %#v\nparams: %#v\nonly SQL: %v\nonly Eval: %v%s",
						i, variant, s, where, args.Values, g.params, onlySQL, onlyEval, detail.String())
				}
			}
			if len(fromSQL) > 0 && len(fromSQL) < nRecords {
				nonTrivial++
			}
			checked++
		}
	}
	t.Logf("seed %d: %d records, %d expressions checked (%d with a non-trivial result)", seed, nRecords, checked, nonTrivial)
	if nonTrivial < checked/4 {
		t.Errorf("generator too weak: only %d of %d expressions select some but not all rows", nonTrivial, checked)
	}
}

func diff(a, b []int) (onlyA, onlyB []int) {
	for _, x := range a {
		if !slices.Contains(b, x) {
			onlyA = append(onlyA, x)
		}
	}
	for _, x := range b {
		if !slices.Contains(a, x) {
			onlyB = append(onlyB, x)
		}
	}
	return onlyA, onlyB
}

func pick[T any](r *rand.Rand, s []T) T { return s[r.IntN(len(s))] }

// randomRecord returns the record as Eval sees it (JSON-like values, in
// varying representations) and the values to insert, in propColumns order.
func randomRecord(r *rand.Rand) (map[string]any, []any) {
	rec := map[string]any{}
	var db []any
	for _, c := range propColumns {
		if r.IntN(5) == 0 {
			if r.IntN(2) == 0 {
				rec[c.name] = nil
			} // else: key missing, also NULL
			db = append(db, nil)
			continue
		}
		switch c.kind {
		case KindText:
			s := randomText(r)
			rec[c.name], db = s, append(db, s)
		case KindDecimal:
			s := randomDecimal(r)
			db = append(db, s)
			switch r.IntN(3) {
			case 0:
				rec[c.name] = s
			case 1:
				rec[c.name] = json.Number(s)
			default:
				rec[c.name] = decimal.RequireFromString(s)
			}
		case KindInteger:
			v := randomInt(r)
			db = append(db, v)
			switch r.IntN(4) {
			case 0:
				rec[c.name] = v
			case 1:
				rec[c.name] = json.Number(strconv.FormatInt(v, 10))
			case 2:
				if v > -(1<<53) && v < 1<<53 {
					rec[c.name] = float64(v)
				} else {
					rec[c.name] = v
				}
			default:
				rec[c.name] = int(v)
			}
		case KindBool:
			v := r.IntN(2) == 0
			rec[c.name], db = v, append(db, v)
		case KindDate:
			s := randomDate(r)
			rec[c.name], db = s, append(db, s)
		case KindDateTime:
			s := randomDateTime(r)
			rec[c.name], db = s, append(db, s)
		case KindUUID:
			s := randomUUID(r)
			rec[c.name], db = s, append(db, s)
		case KindTextArray:
			n := r.IntN(4)
			arr := make([]any, 0, n)
			dbArr := make([]*string, 0, n)
			for range n {
				if r.IntN(6) == 0 {
					arr = append(arr, nil)
					dbArr = append(dbArr, nil)
					continue
				}
				s := pick(r, poolTag)
				arr = append(arr, s)
				dbArr = append(dbArr, &s)
			}
			if r.IntN(2) == 0 && !slices.Contains(arr, nil) {
				strs := make([]string, len(arr))
				for i, a := range arr {
					strs[i] = a.(string)
				}
				rec[c.name] = strs
			} else {
				rec[c.name] = arr
			}
			db = append(db, dbArr)
		}
	}
	return rec, db
}

func randomText(r *rand.Rand) string {
	if r.IntN(4) > 0 {
		return pick(r, poolText)
	}
	alphabet := []string{"a", "b", "A", "é", "%", "_", " ", "😀", "'", `"`, `\`, "z"}
	var sb strings.Builder
	for range r.IntN(5) {
		sb.WriteString(pick(r, alphabet))
	}
	return sb.String()
}

func randomDecimal(r *rand.Rand) string {
	if r.IntN(3) > 0 {
		return pick(r, poolDecimal)
	}
	s := strconv.Itoa(r.IntN(2000) - 1000)
	if r.IntN(2) == 0 {
		s += "." + strconv.Itoa(r.IntN(100))
	}
	return s
}

func randomInt(r *rand.Rand) int64 {
	if r.IntN(3) > 0 {
		return pick(r, poolInt)
	}
	return int64(r.IntN(200) - 100)
}

func randomDate(r *rand.Rand) string {
	if r.IntN(3) > 0 {
		return pick(r, poolDate)
	}
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).AddDate(0, 0, r.IntN(120)-60).Format(dateLayout)
}

func randomDateTime(r *rand.Rand) string {
	if r.IntN(3) > 0 {
		return pick(r, poolDateTime)
	}
	t := time.Date(2026, 1, 31, 10, 0, 0, 0, time.UTC).Add(time.Duration(r.IntN(7200)-3600) * time.Second)
	if r.IntN(2) == 0 {
		t = t.In(time.FixedZone("", (r.IntN(24)-12)*3600))
	}
	return t.Format(time.RFC3339)
}

func randomUUID(r *rand.Rand) string {
	if r.IntN(3) > 0 {
		return pick(r, poolUUID)
	}
	var b [16]byte
	b[15] = byte(r.IntN(3))
	return uuidString(b)
}

// gen builds random expression source text; constants go either inline as
// literals or into params as $p.vN.
type gen struct {
	rnd      *rand.Rand
	params   Params
	n        int
	maxDepth int
}

func (g *gen) expr(depth int) string {
	r := g.rnd
	if depth < g.maxDepth && r.IntN(4) > 0 {
		switch r.IntN(5) {
		case 0, 1:
			return g.join(depth, pick(r, []string{" && ", " and "}))
		case 2, 3:
			return g.join(depth, pick(r, []string{" || ", " or "}))
		default:
			return pick(r, []string{"!", "not ", "!"}) + "(" + g.expr(depth+1) + ")"
		}
	}
	return g.leaf()
}

func (g *gen) join(depth int, op string) string {
	n := 2 + g.rnd.IntN(2)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = "(" + g.expr(depth+1) + ")"
	}
	return strings.Join(parts, op)
}

func (g *gen) column(kinds ...Kind) (string, Kind) {
	var names []string
	for _, c := range propColumns {
		if slices.Contains(kinds, c.kind) {
			names = append(names, c.name)
		}
	}
	name := pick(g.rnd, names)
	f, _ := propFields(name)
	return name, f.Kind
}

func (g *gen) leaf() string {
	r := g.rnd
	scalar := []Kind{KindText, KindDecimal, KindInteger, KindBool, KindDate, KindDateTime, KindUUID}
	switch r.IntN(10) {
	case 0, 1, 2: // field op value
		name, k := g.column(scalar...)
		op := g.op(k)
		v := g.value(k)
		if r.IntN(4) == 0 {
			return v + " " + flipped[op] + " " + name
		}
		return name + " " + op + " " + v
	case 3: // field op field
		name, k := g.column(KindText, KindDecimal, KindInteger, KindDate, KindDateTime, KindUUID, KindBool)
		other, _ := g.column(k)
		return name + " " + g.op(k) + " " + other
	case 4: // nil checks
		name, _ := g.column(append(scalar, KindTextArray)...)
		op := pick(r, []string{"==", "!="})
		nilWord := pick(r, []string{"nil", "null"})
		if r.IntN(5) == 0 {
			g.n++
			key := "v" + strconv.Itoa(g.n)
			g.paramMap()[key] = nil
			nilWord = "$p." + key
		}
		if r.IntN(3) == 0 {
			return nilWord + " " + op + " " + name
		}
		return name + " " + op + " " + nilWord
	case 5: // in list
		name, k := g.column(scalar...)
		not := pick(r, []string{" in ", " in ", " not in "})
		n := r.IntN(5)
		if r.IntN(4) == 0 {
			list := make([]any, n)
			for i := range list {
				list[i] = g.rawValue(k)
			}
			g.n++
			key := "v" + strconv.Itoa(g.n)
			if n == 0 && r.IntN(2) == 0 {
				g.paramMap()[key] = nil
			} else {
				g.paramMap()[key] = list
			}
			return name + not + "$p." + key
		}
		items := make([]string, n)
		for i := range items {
			items[i] = g.value(k)
		}
		return name + not + "[" + strings.Join(items, ", ") + "]"
	case 6: // string operators
		name, _ := g.column(KindText)
		op := pick(r, []string{"contains", "startsWith", "endsWith", "not contains", "not startsWith", "not endsWith"})
		s := randomText(r)
		if s != "" && r.IntN(2) == 0 {
			runes := []rune(s)
			i := r.IntN(len(runes))
			j := i + r.IntN(len(runes)-i+1)
			s = string(runes[i:j])
		}
		return name + " " + op + " " + g.constant(s, strconv.Quote(s))
	case 7: // multi-select membership
		tag := pick(r, poolTag)
		if r.IntN(5) == 0 {
			tag = randomText(r)
		}
		return g.constant(tag, strconv.Quote(tag)) + pick(r, []string{" in ", " in ", " not in "}) + "tags"
	case 8: // booleans
		switch r.IntN(4) {
		case 0:
			return "active"
		case 1:
			return "!active"
		case 2:
			return pick(r, []string{"true", "false"})
		default:
			g.n++
			key := "v" + strconv.Itoa(g.n)
			g.paramMap()[key] = pick(r, []any{true, false, nil})
			return "$p." + key
		}
	default: // ordering on the kinds where it matters most
		name, k := g.column(KindText, KindDecimal, KindDateTime)
		return name + " " + pick(r, []string{"<", "<=", ">", ">="}) + " " + g.value(k)
	}
}

func (g *gen) paramMap() map[string]any {
	m, ok := g.params["p"].(map[string]any)
	if !ok {
		m = map[string]any{}
		g.params["p"] = m
	}
	return m
}

func (g *gen) op(k Kind) string {
	if k.ordered() {
		return pick(g.rnd, []string{"==", "!=", "<", "<=", ">", ">="})
	}
	return pick(g.rnd, []string{"==", "!="})
}

// constant renders raw either as the given literal or as a new parameter.
func (g *gen) constant(raw any, lit string) string {
	if g.rnd.IntN(4) == 0 {
		g.n++
		key := "v" + strconv.Itoa(g.n)
		g.paramMap()[key] = raw
		return "$p." + key
	}
	return lit
}

// value returns a random value of kind k as expression text.
func (g *gen) value(k Kind) string {
	raw := g.rawValue(k)
	return g.constant(raw, g.literal(k, raw))
}

// rawValue returns a value as a caller might pass it in Params.
func (g *gen) rawValue(k Kind) any {
	r := g.rnd
	switch k {
	case KindText:
		return randomText(r)
	case KindDecimal:
		s := randomDecimal(r)
		switch r.IntN(4) {
		case 0:
			return json.Number(s)
		case 1:
			return decimal.RequireFromString(s)
		case 2:
			f, _ := strconv.ParseFloat(s, 64)
			return f
		}
		return s
	case KindInteger:
		v := randomInt(r)
		switch r.IntN(3) {
		case 0:
			return json.Number(strconv.FormatInt(v, 10))
		case 1:
			return int(v)
		}
		return v
	case KindBool:
		return r.IntN(2) == 0
	case KindDate:
		s := randomDate(r)
		if r.IntN(4) == 0 {
			t, _ := time.Parse(dateLayout, s)
			return t
		}
		if r.IntN(4) == 0 {
			return pick(r, poolDateTime) // date part in its own offset
		}
		return s
	case KindDateTime:
		s := randomDateTime(r)
		switch r.IntN(5) {
		case 0:
			t, _ := time.Parse(time.RFC3339, s)
			if t.Year() < 9999 {
				t = t.Add(time.Duration(r.IntN(2000)) * time.Nanosecond) // rounded to µs
			}
			return t
		case 1:
			return pick(r, poolDate) // midnight UTC
		}
		return s
	case KindUUID:
		s := randomUUID(r)
		if r.IntN(4) == 0 {
			u, _ := toUUID(s)
			return u
		}
		if r.IntN(3) == 0 {
			return strings.ToUpper(s)
		}
		return s
	}
	panic("no raw value for " + k.String())
}

// number writes a numeric literal, quoting what expr cannot read as a number
// literal (integers beyond int64).
func number(s string) string {
	if !strings.Contains(s, ".") && len(strings.TrimPrefix(s, "-")) > 18 {
		return strconv.Quote(s)
	}
	return s
}

// literal writes raw as expression source.
func (g *gen) literal(k Kind, raw any) string {
	switch v := raw.(type) {
	case string:
		if k == KindDecimal && g.rnd.IntN(2) == 0 {
			return number(v) // unquoted, negative via unary minus
		}
		return strconv.Quote(v)
	case json.Number:
		return number(string(v))
	case decimal.Decimal:
		return number(decimalString(v))
	case float64:
		return number(strconv.FormatFloat(v, 'f', -1, 64))
	case int64:
		if v == math.MinInt64 {
			return strconv.Quote(strconv.FormatInt(v, 10))
		}
		return strconv.FormatInt(v, 10)
	case int:
		if v == math.MinInt64 {
			return strconv.Quote(strconv.Itoa(v))
		}
		return strconv.Itoa(v)
	case bool:
		return strconv.FormatBool(v)
	case time.Time:
		if k == KindDate {
			return strconv.Quote(v.Format(dateLayout))
		}
		return strconv.Quote(v.Format(time.RFC3339Nano))
	case [16]byte:
		return strconv.Quote(uuidString(v))
	}
	panic(fmt.Sprintf("no literal for %T", raw))
}
