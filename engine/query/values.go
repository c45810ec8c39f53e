package query

import (
	"cmp"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/shopspring/decimal"
)

// Kind is the storage type of a field; it decides how values are coerced,
// which operators are allowed and which SQL cast a bind parameter gets.
type Kind int

// The kinds of field an expression can reference.
const (
	KindText      Kind = iota // text column; also email/phone/url/enum
	KindDecimal               // numeric column; record value is a JSON string like "12.50" (exact, compare with shopspring/decimal)
	KindInteger               // bigint column; record value json.Number / int64 / float64 / int
	KindBool                  // boolean
	KindDate                  // date column; record value "2026-01-31"
	KindDateTime              // timestamptz; record value RFC 3339 string
	KindUUID                  // uuid column; record value string
	KindTextArray             // text[] column (multi-select); record value []any of strings or []string
)

// String names the kind the way error messages talk to users.
func (k Kind) String() string {
	switch k {
	case KindText:
		return "text"
	case KindDecimal:
		return "decimal"
	case KindInteger:
		return "integer"
	case KindBool:
		return "boolean"
	case KindDate:
		return "date"
	case KindDateTime:
		return "date-time"
	case KindUUID:
		return "UUID"
	case KindTextArray:
		return "multi-select"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// noun is used in "x: <value> is not <noun>" errors.
func (k Kind) noun() string {
	switch k {
	case KindText, KindTextArray:
		return "a string"
	case KindDecimal:
		return "a decimal"
	case KindInteger:
		return "an integer"
	case KindBool:
		return "a boolean (true or false)"
	case KindDate:
		return "a date (YYYY-MM-DD)"
	case KindDateTime:
		return "a date-time (RFC 3339, e.g. 2026-01-31T09:00:00Z)"
	case KindUUID:
		return "a UUID"
	}
	return "a " + k.String()
}

// ordered reports whether < <= > >= make sense for the kind; for booleans,
// UUIDs and multi-selects an order would be an accident of the encoding.
func (k Kind) ordered() bool {
	switch k {
	case KindText, KindDecimal, KindInteger, KindDate, KindDateTime:
		return true
	}
	return false
}

// Field is what a name in an expression resolves to.
type Field struct {
	Name   string // name as written in expressions
	Column string // SQL expression for the column, already quoted by the caller, e.g. `t."amount"`; inserted verbatim
	Kind   Kind
}

// Fields resolves a name; false means unknown (or hidden from this user) and
// compile/eval must fail with an error naming the field.
type Fields func(name string) (Field, bool)

// Params are the `$name` values, e.g.
// Params{"user": map[string]any{"id": "…", "teams": []any{"a","b"}}, "now": "2026-…"}.
type Params map[string]any

// normalize converts a value (a literal, a parameter or a record value) to the
// one Go representation used for its kind: string, decimal.Decimal, int64,
// bool, time.Time (UTC; midnight for dates, microseconds for date-times) or
// [16]byte. SQL binds are rendered from this same value, which is what makes
// SQL and Eval agree. ok is false when v cannot represent a value of kind k.
func normalize(k Kind, v any) (any, bool) {
	switch k {
	case KindText, KindTextArray:
		s, ok := v.(string)
		if !ok || checkText(s) != nil {
			return nil, false
		}
		return s, true
	case KindDecimal:
		d, ok := toDecimal(v)
		return d, ok
	case KindInteger:
		i, ok := toInt64(v)
		return i, ok
	case KindBool:
		switch b := v.(type) {
		case bool:
			return b, true
		case string:
			switch b {
			case "true":
				return true, true
			case "false":
				return false, true
			}
		}
		return nil, false
	case KindDate:
		t, ok := toDate(v)
		return t, ok
	case KindDateTime:
		t, ok := toDateTime(v)
		return t, ok
	case KindUUID:
		u, ok := toUUID(v)
		return u, ok
	}
	return nil, false
}

var decimalStrRe = regexp.MustCompile(`^[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)$`)

func toDecimal(v any) (decimal.Decimal, bool) {
	switch x := v.(type) {
	case decimal.Decimal:
		// Same bound as parseDecimal: PostgreSQL numeric allows at most
		// 16383 digits after the point, and nobody needs this many anyway.
		if x.Exponent() < -1000 || x.NumDigits()+int(x.Exponent()) > 1000 {
			return decimal.Decimal{}, false
		}
		return x, true
	case string:
		return parseDecimal(x)
	case json.Number:
		return parseDecimal(string(x))
	case float64:
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return decimal.Decimal{}, false
		}
		return decimal.NewFromFloat(x), true
	case float32:
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return decimal.Decimal{}, false
		}
		return decimal.NewFromFloat32(x), true
	}
	if s, ok := intString(v); ok {
		return decimal.RequireFromString(s), true
	}
	return decimal.Decimal{}, false
}

// parseDecimal accepts plain decimal notation only: exponents would let a
// short string expand into a value with a million digits.
func parseDecimal(s string) (decimal.Decimal, bool) {
	if len(s) > 1000 || !decimalStrRe.MatchString(s) {
		return decimal.Decimal{}, false
	}
	d, err := decimal.NewFromString(s)
	return d, err == nil
}

// intString formats any Go integer type, or reports false.
func intString(v any) (string, bool) {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(rv.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return strconv.FormatUint(rv.Uint(), 10), true
	}
	return "", false
}

func toInt64(v any) (int64, bool) {
	switch x := v.(type) {
	case string:
		i, err := strconv.ParseInt(x, 10, 64)
		return i, err == nil
	case json.Number:
		i, err := strconv.ParseInt(string(x), 10, 64)
		return i, err == nil
	case float64:
		// 2^63 itself is representable as float64 but not as int64.
		if x != math.Trunc(x) || x < -(1<<63) || x >= 1<<63 {
			return 0, false
		}
		return int64(x), true
	case float32:
		return toInt64(float64(x))
	case decimal.Decimal:
		if !x.IsInteger() || x.LessThan(decimal.NewFromInt(math.MinInt64)) || x.GreaterThan(decimal.NewFromInt(math.MaxInt64)) {
			return 0, false
		}
		return x.IntPart(), true
	}
	if s, ok := intString(v); ok {
		i, err := strconv.ParseInt(s, 10, 64)
		return i, err == nil
	}
	return 0, false
}

const (
	dateLayout = "2006-01-02"
	// dateTimeBind always writes the zone as Z and at most 6 fraction digits,
	// the precision of timestamptz, so PostgreSQL reads back exactly our value.
	dateTimeBind = "2006-01-02T15:04:05.999999Z07:00"
)

// dateTimeLayouts are RFC 3339 and the two spellings PostgreSQL itself prints.
var dateTimeLayouts = []string{time.RFC3339, "2006-01-02 15:04:05Z07:00", "2006-01-02 15:04:05Z07"}

func parseDateTime(s string) (time.Time, bool) {
	for _, l := range dateTimeLayouts {
		if t, err := time.Parse(l, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// toDate keeps the calendar date as written: for a date-time value that is the
// date in the value's own offset, so `$now` sent as local time means "today"
// for that user.
func toDate(v any) (time.Time, bool) {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case string:
		if d, err := time.Parse(dateLayout, x); err == nil {
			t = d
		} else if dt, ok := parseDateTime(x); ok {
			t = dt
		} else {
			return time.Time{}, false
		}
	default:
		return time.Time{}, false
	}
	y, m, d := t.Date()
	if y < 1 || y > 9999 {
		return time.Time{}, false
	}
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC), true
}

// toDateTime treats a bare date as midnight UTC, independent of the database
// session time zone, so Eval and SQL see the same instant.
func toDateTime(v any) (time.Time, bool) {
	var t time.Time
	switch x := v.(type) {
	case time.Time:
		t = x
	case string:
		if d, err := time.Parse(dateLayout, x); err == nil {
			t = d
		} else if dt, ok := parseDateTime(x); ok {
			t = dt
		} else {
			return time.Time{}, false
		}
	default:
		return time.Time{}, false
	}
	t = t.UTC().Round(time.Microsecond)
	if y := t.Year(); y < 1 || y > 9999 {
		return time.Time{}, false
	}
	return t, true
}

func toUUID(v any) ([16]byte, bool) {
	var u [16]byte
	if s, ok := v.(string); ok {
		var h string
		switch {
		case len(s) == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-':
			h = s[0:8] + s[9:13] + s[14:18] + s[19:23] + s[24:]
		case len(s) == 32:
			h = s
		default:
			return u, false
		}
		if _, err := hex.Decode(u[:], []byte(h)); err != nil {
			return u, false
		}
		return u, true
	}
	// [16]byte and named types over it such as google/uuid.UUID, or what pgx scans a uuid into.
	rv := reflect.ValueOf(v)
	if rv.Kind() == reflect.Array && rv.Len() == 16 && rv.Type().Elem().Kind() == reflect.Uint8 {
		for i := range 16 {
			u[i] = byte(rv.Index(i).Uint())
		}
		return u, true
	}
	return u, false
}

func uuidString(u [16]byte) string {
	h := hex.EncodeToString(u[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// compareValues orders two normalized values of kind k. For unordered kinds
// it only distinguishes equal (0) from different (1).
func compareValues(k Kind, a, b any) int {
	switch k {
	case KindText:
		return strings.Compare(a.(string), b.(string))
	case KindDecimal:
		return a.(decimal.Decimal).Cmp(b.(decimal.Decimal))
	case KindInteger:
		return cmp.Compare(a.(int64), b.(int64))
	case KindDate, KindDateTime:
		return a.(time.Time).Compare(b.(time.Time))
	case KindBool, KindUUID:
		if a == b {
			return 0
		}
		return 1
	}
	panic("query: compareValues on " + k.String())
}

// castOf is the cast a bind parameter of kind k gets so PostgreSQL knows its
// type even where it cannot infer one; pgx then sends strings as text.
func castOf(k Kind) string {
	switch k {
	case KindDecimal:
		return "::numeric"
	case KindInteger:
		return "::bigint"
	case KindBool:
		return "::boolean"
	case KindDate:
		return "::date"
	case KindDateTime:
		return "::timestamptz"
	case KindUUID:
		return "::uuid"
	}
	return "" // text: the column type is enough
}

// bindValue renders a normalized value as a bind argument.
func bindValue(k Kind, v any) any {
	switch k {
	case KindText:
		return v.(string)
	case KindDecimal:
		return decimalString(v.(decimal.Decimal))
	case KindInteger:
		return v.(int64)
	case KindBool:
		return v.(bool)
	case KindDate:
		return v.(time.Time).Format(dateLayout)
	case KindDateTime:
		return v.(time.Time).Format(dateTimeBind)
	case KindUUID:
		return uuidString(v.([16]byte))
	}
	panic("query: bindValue on " + k.String())
}

// decimalString keeps the scale as written ("12.50", not "12.5") so logged
// SQL arguments look like what the user typed; the value is the same either way.
func decimalString(d decimal.Decimal) string {
	if d.Exponent() < 0 {
		return d.StringFixed(-d.Exponent())
	}
	return d.String()
}

// bindList renders a list of normalized values as one array argument, so a
// list costs one placeholder however long it is.
func bindList(k Kind, vals []any) (arg any, cast string) {
	switch k {
	case KindText:
		out := make([]string, len(vals))
		for i, v := range vals {
			out[i] = v.(string)
		}
		return out, "::text[]"
	case KindInteger:
		out := make([]int64, len(vals))
		for i, v := range vals {
			out[i] = v.(int64)
		}
		return out, "::bigint[]"
	case KindBool:
		out := make([]bool, len(vals))
		for i, v := range vals {
			out[i] = v.(bool)
		}
		return out, "::boolean[]"
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i] = bindValue(k, v).(string)
	}
	return out, castOf(k) + "[]"
}

// describe shows a value in an error message without echoing megabytes back.
func describe(v any) string {
	var s string
	switch x := v.(type) {
	case string:
		s = strconv.Quote(x)
	case nil:
		s = "nil"
	default:
		s = fmt.Sprintf("%v", x)
	}
	if len(s) > 60 {
		cut := 57
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "..."
	}
	return s
}
