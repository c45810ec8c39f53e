package query

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/tessera/tessera/internal/testdb"
)

// foldParams look like workflow variables: JSON decoded, decimals as strings.
var foldParams = Params{
	"input": map[string]any{
		"amount":  json.Number("1200"),
		"price":   "1000.50",
		"ratio":   0.5,
		"count":   float64(3),
		"region":  "EU",
		"vip":     true,
		"due":     "2026-03-01",
		"missing": nil,
		"tags":    []any{"a", "b"},
		"owner":   userID,
	},
	"steps": map[string]any{
		"approve": map[string]any{"outcome": "approve", "data": map[string]any{"note": "ok"}},
	},
}

// TestFoldParamComparisons covers comparisons with no field: they become a
// constant that SQL and Eval both honour.
func TestFoldParamComparisons(t *testing.T) {
	tests := []struct {
		src  string
		want any // true, false or nil (unknown)
	}{
		{`$input.amount > 1000`, true},
		{`$input.amount > 1000.5`, true},
		{`$input.amount <= 1200`, true},
		{`1000 < $input.amount`, true},
		{`$input.price > 1000.49`, true},
		{`$input.price == 1000.5`, true},
		{`$input.price < $input.amount`, true},
		{`$input.ratio == 0.5`, true},
		{`$input.count == 3`, true},
		{`$input.region == "EU"`, true},
		{`$input.region != "EU"`, false},
		{`$input.region < "FR"`, true},
		{`$input.vip`, true},
		{`$input.vip == true`, true},
		{`$input.vip == "true"`, true},
		{`$input.due < "2026-04-01"`, true},
		{`$input.owner == $user.id`, true},
		{`$steps.approve.outcome == "approve"`, true},
		{`$steps.approve.data.note == "ok"`, true},
		{`$input.missing == nil`, true},
		{`$input.missing != nil`, false},
		{`nil == $input.region`, false},
		{`$input.missing == 1`, nil},
		{`!($input.missing == 1)`, nil},
		{`$input.missing == 1 || $input.vip`, true},
		{`$input.region in ["EU", "US"]`, true},
		{`$input.amount in [1, 2]`, false},
		{`"a" in $input.tags`, true},
		{`"c" in $input.tags`, false},
		{`$input.missing in ["EU"]`, nil},
		{`$input.region in $empty`, false},
		{`$input.region startsWith "E"`, true},
		{`$input.region contains "x"`, false},
		{`$input.region endsWith "U"`, true},
		{`$input.missing contains "x"`, nil},
		{`$input.amount > 1000 && name == "x"`, true},
	}
	rec := map[string]any{"name": "x"}
	for _, tc := range tests {
		params := Params{"user": testParams["user"], "empty": testParams["empty"]}
		for k, v := range foldParams {
			params[k] = v
		}
		e, err := Parse(tc.src)
		if err != nil {
			t.Errorf("%s: parse: %v", tc.src, err)
			continue
		}
		got, err := e.Eval(rec, testFields, params)
		if err != nil {
			t.Errorf("%s: eval: %v", tc.src, err)
			continue
		}
		if got != (tc.want == true) {
			t.Errorf("%s: Eval = %v, want %v", tc.src, got, tc.want)
		}
		root, err := e.bind(testFields, params, false)
		if err != nil {
			t.Fatal(err)
		}
		if res, _ := eval(root, rec); res != map[any]tri{true: triTrue, false: triFalse, nil: triUnknown}[tc.want] {
			t.Errorf("%s: three-valued result %v, want %v", tc.src, res, tc.want)
		}
		if _, err := e.SQL(testFields, params, &Args{}); err != nil {
			t.Errorf("%s: SQL: %v", tc.src, err)
		}
	}
}

// TestFoldSQLAgreesOnPostgres runs folded conditions on PostgreSQL: the
// constant is one boolean bind parameter and NULL stays unknown there too.
func TestFoldSQLAgreesOnPostgres(t *testing.T) {
	pool := testdb.NewPool(t)
	ctx := context.Background()
	for _, src := range []string{`$input.amount > 1000`, `$input.region == "US"`, `$input.missing == 1`, `!($input.missing == 1)`, `$input.region in ["EU"] && $input.vip`} {
		e := MustParse(src)
		args := &Args{}
		sql, err := e.SQL(testFields, foldParams, args)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		var got *bool
		if err := pool.QueryRow(ctx, "SELECT "+sql, args.Values...).Scan(&got); err != nil {
			t.Fatalf("%s: %s: %v", src, sql, err)
		}
		want, err := e.Eval(nil, testFields, foldParams)
		if err != nil {
			t.Fatal(err)
		}
		if (got != nil && *got) != want {
			t.Errorf("%s: PostgreSQL says %v, Eval %v", src, got, want)
		}
	}
}

func TestParamPaths(t *testing.T) {
	e := MustParse(`$input.amount > 1 && ($a == nil || name in [$b.c, "x"]) && !$flag && $s contains "q"`)
	got := e.ParamPaths()
	want := [][]string{{"input", "amount"}, {"a"}, {"b", "c"}, {"flag"}, {"s"}}
	if len(got) != len(want) {
		t.Fatalf("ParamPaths = %v, want %v", got, want)
	}
	for i := range want {
		if strings.Join(got[i], ".") != strings.Join(want[i], ".") {
			t.Fatalf("ParamPaths = %v, want %v", got, want)
		}
	}
}
