package query

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/shopspring/decimal"
)

var testFieldMap = map[string]Field{
	"name":     {Name: "name", Column: `t."name"`, Kind: KindText},
	"code":     {Name: "code", Column: `t."code"`, Kind: KindText},
	"amount":   {Name: "amount", Column: `t."amount"`, Kind: KindDecimal},
	"amount2":  {Name: "amount2", Column: `t."amount2"`, Kind: KindDecimal},
	"qty":      {Name: "qty", Column: `t."qty"`, Kind: KindInteger},
	"qty2":     {Name: "qty2", Column: `t."qty2"`, Kind: KindInteger},
	"active":   {Name: "active", Column: `t."active"`, Kind: KindBool},
	"due":      {Name: "due", Column: `t."due"`, Kind: KindDate},
	"due2":     {Name: "due2", Column: `t."due2"`, Kind: KindDate},
	"created":  {Name: "created", Column: `t."created"`, Kind: KindDateTime},
	"created2": {Name: "created2", Column: `t."created2"`, Kind: KindDateTime},
	"owner_id": {Name: "owner_id", Column: `t."owner_id"`, Kind: KindUUID},
	"owner2":   {Name: "owner2", Column: `t."owner2"`, Kind: KindUUID},
	"tags":     {Name: "tags", Column: `t."tags"`, Kind: KindTextArray},
}

func testFields(name string) (Field, bool) {
	f, ok := testFieldMap[name]
	return f, ok
}

const userID = "0190a3c4-0000-7000-8000-000000000001"

var testParams = Params{
	"user": map[string]any{
		"id":       userID,
		"teams":    []any{"sales", "ops"},
		"is_admin": false,
		"manager":  nil,
		"limit":    json.Number("1000.50"),
		"profile":  map[string]any{"region": "eu"},
		"bad":      "\xff",
	},
	"now":   "2026-03-10T23:30:00-05:00",
	"today": "2026-03-10",
	"empty": []string{},
	"ids":   []string{userID, "0190A3C40000700080000000000000FF"},
}

func TestSQL(t *testing.T) {
	tests := []struct {
		src  string
		sql  string
		args []any
	}{
		{`name == "x"`, `t."name" = $1`, []any{"x"}},
		{`name == 'x'`, `t."name" = $1`, []any{"x"}},
		{`name != "x"`, `t."name" <> $1`, []any{"x"}},
		{`"x" == name`, `t."name" = $1`, []any{"x"}},
		{`name < "m"`, `t."name" COLLATE "C" < $1`, []any{"m"}},
		{`"m" < name`, `t."name" COLLATE "C" > $1`, []any{"m"}},
		{`name >= code`, `t."name" COLLATE "C" >= t."code" COLLATE "C"`, nil},
		{`name == code`, `t."name" = t."code"`, nil},
		{`amount > 12.50`, `t."amount" > $1::numeric`, []any{"12.50"}},
		{`amount > 0.1`, `t."amount" > $1::numeric`, []any{"0.1"}},
		{`amount == -0.10`, `t."amount" = $1::numeric`, []any{"-0.10"}},
		{`amount <= 5`, `t."amount" <= $1::numeric`, []any{"5"}},
		{`amount == "12.345"`, `t."amount" = $1::numeric`, []any{"12.345"}},
		{`amount < 123456789012345678901234567890.123456789`, `t."amount" < $1::numeric`, []any{"123456789012345678901234567890.123456789"}},
		{`amount > $user.limit`, `t."amount" > $1::numeric`, []any{"1000.50"}},
		{`qty > 3`, `t."qty" > $1::bigint`, []any{int64(3)}},
		{`qty == -3`, `t."qty" = $1::bigint`, []any{int64(-3)}},
		{`qty == 5.0`, `t."qty" = $1::bigint`, []any{int64(5)}},
		{`qty == "42"`, `t."qty" = $1::bigint`, []any{int64(42)}},
		{`qty < qty2`, `t."qty" < t."qty2"`, nil},
		{`active`, `t."active"`, nil},
		{`!active`, `NOT (t."active")`, nil},
		{`active == true`, `t."active" = $1::boolean`, []any{true}},
		{`active != false`, `t."active" <> $1::boolean`, []any{false}},
		{`true`, `$1::boolean`, []any{true}},
		{`$user.is_admin || owner_id == $user.id`, `($1::boolean OR t."owner_id" = $2::uuid)`, []any{false, userID}},
		{`due < "2026-01-31"`, `t."due" < $1::date`, []any{"2026-01-31"}},
		{`due <= $now`, `t."due" <= $1::date`, []any{"2026-03-10"}},
		{`due == $today`, `t."due" = $1::date`, []any{"2026-03-10"}},
		{`created >= "2026-01-31T10:00:00+01:00"`, `t."created" >= $1::timestamptz`, []any{"2026-01-31T09:00:00Z"}},
		{`created < $now`, `t."created" < $1::timestamptz`, []any{"2026-03-11T04:30:00Z"}},
		{`created < "2026-01-31"`, `t."created" < $1::timestamptz`, []any{"2026-01-31T00:00:00Z"}},
		{`created > "2026-01-31T10:00:00.1234567Z"`, `t."created" > $1::timestamptz`, []any{"2026-01-31T10:00:00.123457Z"}},
		{`owner_id == $user.id`, `t."owner_id" = $1::uuid`, []any{userID}},
		{`owner_id != "0190A3C4-0000-7000-8000-000000000001"`, `t."owner_id" <> $1::uuid`, []any{userID}},
		{`owner_id == owner2`, `t."owner_id" = t."owner2"`, nil},
		{`name == nil`, `t."name" IS NULL`, nil},
		{`nil != name`, `t."name" IS NOT NULL`, nil},
		{`tags == null`, `t."tags" IS NULL`, nil},
		{`owner_id == $user.manager`, `t."owner_id" IS NULL`, nil},
		{`name in ["a", "b"]`, `t."name" = ANY($1::text[])`, []any{[]string{"a", "b"}}},
		{`name not in ["a"]`, `NOT (t."name" = ANY($1::text[]))`, []any{[]string{"a"}}},
		{`name in []`, `t."name" = ANY($1::text[])`, []any{[]string{}}},
		{`name in $user.teams`, `t."name" = ANY($1::text[])`, []any{[]string{"sales", "ops"}}},
		{`name in ["a", $user.profile.region]`, `t."name" = ANY($1::text[])`, []any{[]string{"a", "eu"}}},
		{`amount in [1, 2.50, "-3"]`, `t."amount" = ANY($1::numeric[])`, []any{[]string{"1", "2.50", "-3"}}},
		{`qty in [1, 2]`, `t."qty" = ANY($1::bigint[])`, []any{[]int64{1, 2}}},
		{`active in [true]`, `t."active" = ANY($1::boolean[])`, []any{[]bool{true}}},
		{`due in ["2026-01-01"]`, `t."due" = ANY($1::date[])`, []any{[]string{"2026-01-01"}}},
		{`created in ["2026-01-01T00:00:00Z"]`, `t."created" = ANY($1::timestamptz[])`, []any{[]string{"2026-01-01T00:00:00Z"}}},
		{`owner_id in $ids`, `t."owner_id" = ANY($1::uuid[])`, []any{[]string{userID, "0190a3c4-0000-7000-8000-0000000000ff"}}},
		{`owner_id in $empty`, `t."owner_id" = ANY($1::uuid[])`, []any{[]string{}}},
		{`"vip" in tags`, `t."tags" @> $1::text[]`, []any{[]string{"vip"}}},
		{`$user.profile.region in tags`, `t."tags" @> $1::text[]`, []any{[]string{"eu"}}},
		{`not ("vip" in tags)`, `NOT (t."tags" @> $1::text[])`, []any{[]string{"vip"}}},
		{`name contains "ab"`, `strpos(t."name", $1) > 0`, []any{"ab"}},
		{`name startsWith "ab"`, `starts_with(t."name", $1)`, []any{"ab"}},
		{`name endsWith "ab"`, `right(t."name", length($1::text)) = $1::text`, []any{"ab"}},
		{`name not contains "%_"`, `NOT (strpos(t."name", $1) > 0)`, []any{"%_"}},
		{`name == "a" && qty > 1 && amount < 2`, `(t."name" = $1 AND t."qty" > $2::bigint AND t."amount" < $3::numeric)`, []any{"a", int64(1), "2"}},
		{`name == "a" and (qty > 1 or qty < 0)`, `(t."name" = $1 AND (t."qty" > $2::bigint OR t."qty" < $3::bigint))`, []any{"a", int64(1), int64(0)}},
		{`name == "a" || qty > 1 && amount < 2`, `(t."name" = $1 OR (t."qty" > $2::bigint AND t."amount" < $3::numeric))`, []any{"a", int64(1), "2"}},
		{`!(name == "a" || qty > 1)`, `NOT (t."name" = $1 OR t."qty" > $2::bigint)`, []any{"a", int64(1)}},
		{`not (name == "a")`, `NOT (t."name" = $1)`, []any{"a"}},
		{`1 < qty < 5`, `(t."qty" > $1::bigint AND t."qty" < $2::bigint)`, []any{int64(1), int64(5)}},
		{"name == `raw`", `t."name" = $1`, []any{"raw"}},
		{`name == "é\u00e9\n"`, `t."name" = $1`, []any{"éé\n"}},
	}
	for _, tc := range tests {
		e, err := Parse(tc.src)
		if err != nil {
			t.Errorf("Parse(%q): %v", tc.src, err)
			continue
		}
		args := &Args{}
		got, err := e.SQL(testFields, testParams, args)
		if err != nil {
			t.Errorf("SQL(%q): %v", tc.src, err)
			continue
		}
		if got != tc.sql {
			t.Errorf("SQL(%q)\n got: %s\nwant: %s", tc.src, got, tc.sql)
		}
		if !reflect.DeepEqual(args.Values, tc.args) {
			t.Errorf("SQL(%q) args\n got: %#v\nwant: %#v", tc.src, args.Values, tc.args)
		}
	}
}

func TestArgsContinueNumbering(t *testing.T) {
	args := &Args{Values: []any{"tenant"}}
	got, err := MustParse(`name == "a" || qty == 2`).SQL(testFields, nil, args)
	if err != nil {
		t.Fatal(err)
	}
	if want := `(t."name" = $2 OR t."qty" = $3::bigint)`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	if len(args.Values) != 3 {
		t.Errorf("args: %#v", args.Values)
	}
	// A failing compile must not leave half the arguments behind.
	if _, err := MustParse(`name == "a" || qty == "x"`).SQL(testFields, nil, args); err == nil {
		t.Fatal("expected error")
	}
	if len(args.Values) != 3 {
		t.Errorf("args changed on error: %#v", args.Values)
	}
	if _, err := MustParse(`name == "a"`).SQL(testFields, nil, nil); err == nil {
		t.Error("nil args: expected error")
	}
}

func TestNamesAndString(t *testing.T) {
	src := `name == "a" || (qty > 1 && name != code && "x" in tags) || $user.id == owner_id`
	e := MustParse(src)
	if e.String() != src {
		t.Errorf("String() = %q", e.String())
	}
	want := []string{"code", "name", "owner_id", "qty", "tags"}
	if got := e.Names(); !reflect.DeepEqual(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	e.Names()[0] = "changed"
	if e.Names()[0] != "code" {
		t.Error("Names() exposes internal slice")
	}
}

func TestErrors(t *testing.T) {
	deep := strings.Repeat("!(", 33) + "active" + strings.Repeat(")", 33)
	okDeep := strings.Repeat("!(", 31) + "active" + strings.Repeat(")", 31)
	manyNodes := "qty == 1" + strings.Repeat(" || qty == 1", 70)
	bigList := "qty in [" + strings.TrimSuffix(strings.Repeat("1,", 1001), ",") + "]"
	tests := []struct {
		src   string
		msg   string // substring of Message
		field string
		pos   int // -2: don't check
	}{
		{``, "empty", "", 0},
		{strings.Repeat(" ", 4097), "too long", "", -1},
		{"name == \"" + strings.Repeat("x", 4090) + "\"", "too long", "", -1},
		{deep, "nested too deeply", "", -2},
		{manyNodes, "too complex", "", -2},
		{bigList, "list has 1001 items", "", -2},
		{`name ==`, "syntax error", "", -2},
		{`name = "x"`, "use == to compare", "", 5},
		{`(name == "x"`, "syntax error", "", -2},
		{`unknown == 1`, `unknown field "unknown"`, "unknown", 0},
		{`secret != nil`, `unknown field "secret"`, "secret", 0},
		{`amount > "abc"`, `amount: "abc" is not a decimal`, "amount", 9},
		{`amount > true`, `amount: true is not a decimal`, "amount", -2},
		{`qty > 1.5`, `qty: 1.5 is not an integer`, "qty", -2},
		{`qty > 99999999999999999999`, `syntax error`, "", -2},
		{`name == 5`, `name: 5 is not a string`, "name", -2},
		{`due > "31/01/2026"`, `due: "31/01/2026" is not a date`, "due", -2},
		{`due > "2026-02-30"`, `is not a date`, "due", -2},
		{`created > "yesterday"`, `is not a date-time`, "created", -2},
		{`owner_id == "42"`, `owner_id: "42" is not a UUID`, "owner_id", -2},
		{`active == "yes"`, `is not a boolean`, "active", -2},
		{`amount > $user.id`, `amount: $user.id ("0190a3c4`, "amount", -2},
		{`amount * 2 > 1`, "operator * is not supported in filters", "", 7},
		{`amount + 1 > 1`, "operator + is not supported in filters", "", -2},
		{`name matches "a.*"`, "operator matches is not supported in filters", "", 5},
		{`(name ?? "x") == "x"`, "operator ?? is not supported", "", -2},
		{`qty in 1..3`, "operator .. is not supported", "", -2},
		{`len(name) > 1`, "function len() is not supported", "", 0},
		{`lower(name) == "a"`, "function lower() is not supported", "", 0},
		{`name.x == "a"`, "only supported on $parameters", "", -2},
		{`$user?.id == owner_id`, "?. is not supported", "", -2},
		{`active ? true : false`, "conditional expressions", "", -2},
		{`let x = 1; qty == x`, "let is not supported", "", -2},
		{`{a: 1}`, "maps are not supported", "", -2},
		{`qty == 1; qty == 2`, "; is not supported", "", -2},
		{`name`, "name is a text field, not a condition", "name", 0},
		{`"x"`, "is not a condition", "", 0},
		{`nil`, "nil is not a condition", "", 0},
		{`!qty == 1`, "add parentheses", "", 0},
		{`qty < nil`, "cannot be used with nil", "qty", -2},
		{`qty == qty2 + 1`, "operator + is not supported", "", -2},
		{`amount == name`, "cannot compare amount (decimal) with name (text)", "name", -2},
		{`active < true`, "operator < is not supported for boolean fields", "active", -2},
		{`owner_id > $user.id`, "operator > is not supported for UUID fields", "owner_id", -2},
		{`tags == "a"`, `use "value" in tags`, "tags", -2},
		{`tags == tags`, "cannot be compared", "tags", -2},
		{`tags contains "a"`, `use "value" in tags`, "tags", -2},
		{`qty contains "1"`, "only supported on text fields", "qty", -2},
		{`name contains code`, "must be a string or a $parameter", "", -2},
		{`"a" contains name`, "needs a text field on the left", "", -2},
		{`name in name`, "not a multi-select", "name", -2},
		{`name in tags`, "must be a value", "tags", -2},
		{`tags in ["a"]`, `test one value with "value" in tags`, "tags", -2},
		{`"a" in ["a"]`, "in needs a field on the left", "", -2},
		{`name in ["a", nil]`, "nil is not allowed in a list", "name", -2},
		{`name in ["a", name]`, "not fields", "", -2},
		{`name in [["a"]]`, "nested lists", "", -2},
		{`name in "abc"`, "right side of in must be a list", "", -2},
		{`nil in tags`, "nil cannot be looked up", "tags", -2},
		{`name == ["a"]`, "a list can only be used with in", "", -2},
		{`1 == 1`, "needs a field", "", -2},
		{`$user.id == 5`, "cannot compare", "", -2},
		{`$user.teams == "a"`, "a list can only be used with in", "", -2},
		{`$user.limit < nil`, "cannot be used with nil", "", -2},
		{`$user.is_admin > false`, "operator > is not supported for boolean", "", -2},
		{`$user.id contains name`, "must be a string or a $parameter", "", -2},
		{`$user.limit contains "1"`, "needs strings on both sides", "", -2},
		{`$user.profile == "eu"`, "cannot compare", "", -2},
		{`owner_id == $missing`, "unknown parameter $missing", "", 12},
		{`owner_id == $user.missing`, "unknown parameter $user.missing", "", -2},
		{`owner_id == $now.x`, "$now is not an object", "", -2},
		{`name in $now`, "not a list", "", -2},
		{`$user.teams`, "not a boolean condition", "", -2},
		{`name == "a\x00b"`, "NUL", "", -2},
		{`name == "\xff"`, "", "", -3}, // expr decodes \xff as U+00FF
		{`name == $user.bad`, "is not a string", "name", -2},
		{`b"x" == name`, "byte strings", "", -2},
		{`amount > 1e5`, "is not supported: write decimals", "", -2},
		{`amount > 0x10`, "", "", -3}, // hex integers are accepted
		{`naïve == "x"`, "invalid field name", "naïve", 0},
		{`a$b == "x"`, "invalid field name", "a$b", 0},
		{`$1 == name`, "invalid parameter name", "", 0},
		{`é == 1 && name == "x"`, "invalid field name", "é", 0},
		{`name == "é" && unknown == 1`, `unknown field "unknown"`, "unknown", 16},
		{okDeep, "", "", -3},
		{"name == \"" + strings.Repeat("x", maxSourceLen-10) + "\"", "", "", -3},
	}
	for _, tc := range tests {
		err := compileErr(tc.src)
		if tc.pos == -3 {
			if err != nil {
				t.Errorf("%.60q: unexpected error %v", tc.src, err)
			}
			continue
		}
		var qe *Error
		if !errors.As(err, &qe) {
			t.Errorf("%.60q: want *Error, got %v", tc.src, err)
			continue
		}
		if !strings.Contains(qe.Message, tc.msg) {
			t.Errorf("%.60q: message %q does not contain %q", tc.src, qe.Message, tc.msg)
		}
		if qe.Field != tc.field {
			t.Errorf("%.60q: field %q, want %q", tc.src, qe.Field, tc.field)
		}
		if tc.pos != -2 && qe.Position != tc.pos {
			t.Errorf("%.60q: position %d, want %d (%s)", tc.src, qe.Position, tc.pos, qe.Message)
		}
		if !strings.Contains(qe.Error(), qe.Message) {
			t.Errorf("Error() %q lacks message", qe.Error())
		}
	}
}

// compileErr runs Parse, SQL and Eval and checks SQL and Eval agree on the error.
func compileErr(src string) error {
	e, err := Parse(src)
	if err != nil {
		return err
	}
	_, sqlErr := e.SQL(testFields, testParams, &Args{})
	_, evalErr := e.Eval(map[string]any{}, testFields, testParams)
	if (sqlErr == nil) != (evalErr == nil) || (sqlErr != nil && sqlErr.Error() != evalErr.Error()) {
		return errors.New("SQL and Eval disagree: " + errString(sqlErr) + " / " + errString(evalErr))
	}
	return sqlErr
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

func TestMustParsePanics(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("MustParse did not panic")
		}
	}()
	MustParse("name ==")
}

// Hostile input must either be rejected or end up only in the bind arguments.
func TestInjection(t *testing.T) {
	payloads := []string{
		`x' OR 1=1 --`,
		`"); DROP TABLE t; --`,
		`'; DELETE FROM users; --`,
		`$1`,
		`\'; SELECT pg_sleep(10); --`,
		`t."name"`,
		"a\nb\r\nc",
		`%_\`,
	}
	for _, p := range payloads {
		for _, tmpl := range []string{
			`name == %s`,
			`name in [%s, "b"]`,
			`name contains %s`,
			`name endsWith %s`,
			`%s in tags`,
			`name == $user.evil && %s != name`,
		} {
			compile := func(v string) (string, []any) {
				src := strings.ReplaceAll(tmpl, "%s", quoteExpr(v))
				e, err := Parse(src)
				if err != nil {
					t.Fatalf("Parse(%q): %v", src, err)
				}
				args := &Args{}
				sql, err := e.SQL(testFields, Params{"user": map[string]any{"evil": v}}, args)
				if err != nil {
					t.Fatalf("SQL(%q): %v", src, err)
				}
				return sql, args.Values
			}
			benign, _ := compile("x")
			sql, args := compile(p)
			// The SQL text must not depend on the value at all.
			if sql != benign {
				t.Errorf("%s with %q: SQL %q differs from benign %q", tmpl, p, sql, benign)
			}
			found := false
			for _, a := range args {
				switch a := a.(type) {
				case string:
					found = found || a == p
				case []string:
					found = found || (len(a) > 0 && a[0] == p)
				}
			}
			if !found {
				t.Errorf("%s with %q: value not in args %#v", tmpl, p, args)
			}
		}
	}
	rejected := []string{
		`name; drop`,
		`name == "x"; DROP TABLE t`,
		`name == "x" -- comment`,
		`name == "x" /* c */ || 1`,
		`name == x' OR 1=1 --`,
		`name == "x" OR 1=1`,
		`drop table t`,
		`name == 'x'' OR ''1''=''1'`,
		`t."name" == "x"`,
		`name == "x" union select 1`,
		"name == \"x\" \x00",
	}
	for _, src := range rejected {
		e, err := Parse(src)
		if err == nil {
			_, err = e.SQL(testFields, testParams, &Args{})
		}
		var qe *Error
		if !errors.As(err, &qe) {
			t.Errorf("%q: want *Error, got %v", src, err)
		}
	}
	// A field's Column is inserted verbatim by contract, but a name used in an
	// expression is never copied into SQL: only Column is.
	evil := func(name string) (Field, bool) {
		return Field{Name: name, Column: `t."safe"`, Kind: KindText}, true
	}
	sql, err := MustParse(`DROP_TABLE == "x"`).SQL(evil, nil, &Args{})
	if err != nil || sql != `t."safe" = $1` {
		t.Errorf("got %q %v", sql, err)
	}
}

func quoteExpr(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestEvalBasics(t *testing.T) {
	rec := map[string]any{
		"name":     "Alice",
		"code":     "alice",
		"amount":   "12.50",
		"amount2":  json.Number("12.5"),
		"qty":      float64(3),
		"qty2":     json.Number("4"),
		"active":   true,
		"due":      "2026-01-31",
		"created":  "2026-01-31T10:00:00+01:00",
		"owner_id": strings.ToUpper(userID),
		"tags":     []any{"vip", nil, "eu"},
	}
	tests := []struct {
		src  string
		want bool
	}{
		{`name == "Alice"`, true},
		{`name < code`, true}, // byte order: 'A' < 'a'
		{`amount == amount2`, true},
		{`amount == 12.5`, true},
		{`amount > -0.10`, true},
		{`qty < qty2`, true},
		{`qty == 3`, true},
		{`active`, true},
		{`!active`, false},
		{`due < "2026-02-01"`, true},
		{`created == "2026-01-31T09:00:00Z"`, true},
		{`created < "2026-01-31"`, false},
		{`owner_id == $user.id`, true},
		{`"vip" in tags`, true},
		{`"x" in tags`, false},
		{`name in ["Bob", "Alice"]`, true},
		{`name in []`, false},
		{`name not in []`, true},
		{`missing_field_is_null == nil`, true},
		{`name contains "lic"`, true},
		{`name startsWith "Al"`, true},
		{`name endsWith "ce"`, true},
		{`name endsWith ""`, true},
		{`$user.is_admin`, false},
		{`$user.is_admin || name == "Alice"`, true},
	}
	fields := func(n string) (Field, bool) {
		if n == "missing_field_is_null" {
			return Field{Name: n, Column: "x", Kind: KindText}, true
		}
		return testFields(n)
	}
	for _, tc := range tests {
		got, err := MustParse(tc.src).Eval(rec, fields, testParams)
		if err != nil {
			t.Errorf("Eval(%q): %v", tc.src, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Eval(%q) = %v, want %v", tc.src, got, tc.want)
		}
	}
}

// Three-valued logic, checked against the SQL truth tables.
func TestEvalNullLogic(t *testing.T) {
	rec := map[string]any{"name": nil, "qty": int64(1), "tags": nil}
	tests := []struct {
		src  string
		want bool
	}{
		{`name == "a"`, false},
		{`name != "a"`, false},
		{`!(name == "a")`, false},
		{`!(name != "a")`, false},
		{`name == nil`, true},
		{`name != nil`, false},
		{`name == "a" || qty == 1`, true},  // unknown OR true = true
		{`name == "a" && qty == 2`, false}, // unknown AND false = false
		{`!(name == "a" && qty == 2)`, true},
		{`!(name == "a" && qty == 1)`, false}, // NOT unknown = unknown
		{`!(name == "a" || qty == 2)`, false},
		{`name in ["a"]`, false},
		{`name not in ["a"]`, false},
		{`name not in []`, true}, // NOT (NULL = ANY('{}')) = NOT false
		{`!("a" in tags)`, false},
		{`name contains ""`, false},
		{`!(name contains "")`, false},
		{`$user.manager || qty == 1`, true}, // a nil parameter is unknown
		{`$user.manager && qty == 1`, false},
	}
	for _, tc := range tests {
		e := MustParse(tc.src)
		got, err := e.Eval(rec, testFields, testParams)
		if err != nil {
			t.Errorf("Eval(%q): %v", tc.src, err)
			continue
		}
		if got != tc.want {
			t.Errorf("Eval(%q) = %v, want %v", tc.src, got, tc.want)
		}
	}
}

func TestEvalRecordTypes(t *testing.T) {
	ts := time.Date(2026, 1, 31, 9, 0, 0, 0, time.UTC)
	good := []map[string]any{
		{"amount": decimal.RequireFromString("12.50"), "qty": 3, "due": ts, "created": ts, "owner_id": [16]byte{1}},
		{"amount": 12.5, "qty": int32(3), "due": "2026-01-31", "created": "2026-01-31 09:00:00+00", "owner_id": "01000000000000000000000000000000"},
		{"amount": json.Number("12.5"), "qty": json.Number("3"), "due": "2026-01-31T23:00:00-05:00", "created": "2026-01-31T09:00:00.000000Z", "owner_id": "01000000-0000-0000-0000-000000000000"},
	}
	e := MustParse(`amount == 12.5 && qty == 3 && due == "2026-01-31" && created == "2026-01-31T09:00:00Z" && owner_id == "01000000-0000-0000-0000-000000000000"`)
	for i, rec := range good {
		ok, err := e.Eval(rec, testFields, nil)
		if err != nil || !ok {
			t.Errorf("record %d: %v %v", i, ok, err)
		}
	}
	tagsE := MustParse(`"a" in tags`)
	for _, tags := range []any{[]string{"a"}, []any{nil, "a"}, []*string{nil, new(string("a"))}} {
		ok, err := tagsE.Eval(map[string]any{"tags": tags}, testFields, nil)
		if err != nil || !ok {
			t.Errorf("tags %#v: %v %v", tags, ok, err)
		}
	}
	bad := []map[string]any{
		{"amount": "abc"},
		{"amount": []any{1}},
		{"qty": 1.5},
		{"qty": "x"},
		{"due": "2026-13-01"},
		{"created": 12},
		{"owner_id": "nope"},
		{"active": "maybe"},
		{"tags": "a"},
		{"tags": []any{1}},
		{"name": 5},
	}
	all := MustParse(`amount > 0 || qty > 0 || due > "2000-01-01" || created > "2000-01-01" || owner_id != $user.id || active || "a" in tags || name != ""`)
	for _, rec := range bad {
		_, err := all.Eval(rec, testFields, testParams)
		var qe *Error
		if !errors.As(err, &qe) || qe.Field == "" {
			t.Errorf("record %v: want field error, got %v", rec, err)
		}
	}
}

func TestParseSort(t *testing.T) {
	keys, err := ParseSort("-amount,name, -created_at")
	want := []SortKey{{"amount", true}, {"name", false}, {"created_at", true}}
	if err != nil || !reflect.DeepEqual(keys, want) {
		t.Errorf("got %v %v", keys, err)
	}
	if keys, err := ParseSort(""); err != nil || keys != nil {
		t.Errorf("empty: %v %v", keys, err)
	}
	bad := map[string]string{
		"a,b,c,d,e,f,g,h,i": "at most 8",
		"name,-name":        "twice",
		"Name":              "invalid field name",
		"1abc":              "invalid field name",
		"na-me":             "invalid field name",
		"name;drop":         "invalid field name",
		`t."x"`:             "invalid field name",
		"a,,b":              "empty key",
		"--a":               "invalid field name",
		"-":                 "invalid field name",
	}
	for s, msg := range bad {
		_, err := ParseSort(s)
		var qe *Error
		if !errors.As(err, &qe) || !strings.Contains(qe.Message, msg) {
			t.Errorf("ParseSort(%q): %v, want %q", s, err, msg)
		}
	}
	_, err = ParseSort("a, b,b")
	var qe *Error
	if errors.As(err, &qe) && (qe.Position != 5 || qe.Field != "b") {
		t.Errorf("position/field: %+v", qe)
	}
	if keys, err := ParseSort("a,b,c,d,e,f,g,h"); err != nil || len(keys) != 8 {
		t.Errorf("8 keys: %v %v", keys, err)
	}
}
