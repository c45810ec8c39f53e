package query

import (
	"reflect"
	"strings"
)

// tri is an SQL truth value: NULL (unknown) is a third state, not false.
type tri int8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

// Eval reports whether record matches, with the exact semantics of the SQL
// that Expr.SQL produces: a missing or nil record value is NULL, comparisons
// with NULL are unknown, and only a true result matches. Record values are
// looked up by field name. A record value that cannot be read as its field's
// kind is an error, not a mismatch, so bad data is noticed.
func (e *Expr) Eval(record map[string]any, fields Fields, params Params) (bool, error) {
	root, err := e.bind(fields, params, false)
	if err != nil {
		return false, err
	}
	t, err := eval(root, record)
	return t == triTrue, err
}

// eval does not short-circuit: every branch is evaluated so a bad record
// value is reported no matter how the other branches turn out.
func eval(n bnode, rec map[string]any) (tri, error) {
	switch n := n.(type) {
	case *bAnd:
		res := triTrue
		for _, k := range n.kids {
			t, err := eval(k, rec)
			if err != nil {
				return triFalse, err
			}
			if t == triFalse || res == triFalse {
				res = triFalse
			} else if t == triUnknown {
				res = triUnknown
			}
		}
		return res, nil
	case *bOr:
		res := triFalse
		for _, k := range n.kids {
			t, err := eval(k, rec)
			if err != nil {
				return triFalse, err
			}
			if t == triTrue || res == triTrue {
				res = triTrue
			} else if t == triUnknown {
				res = triUnknown
			}
		}
		return res, nil
	case *bNot:
		t, err := eval(n.kid, rec)
		if err != nil {
			return triFalse, err
		}
		switch t {
		case triTrue:
			return triFalse, nil
		case triFalse:
			return triTrue, nil
		}
		return triUnknown, nil
	case *bConst:
		if n.val == nil {
			return triUnknown, nil
		}
		return triOf(n.val.(bool)), nil
	case *bTruth:
		v, null, err := recordValue(rec, n.r)
		if err != nil || null {
			return triUnknown, err
		}
		return triOf(v.(bool)), nil
	case *bNull:
		_, null, err := recordValue(rec, n.r)
		if err != nil {
			return triFalse, err
		}
		return triOf(null != n.not), nil
	case *bCmp:
		v, null, err := recordValue(rec, n.r)
		if err != nil || null {
			return triUnknown, err
		}
		return triOf(holds(n.op, compareValues(n.r.f.Kind, v, n.val))), nil
	case *bCmpFields:
		a, nullA, err := recordValue(rec, n.a)
		if err != nil {
			return triFalse, err
		}
		b, nullB, err := recordValue(rec, n.b)
		if err != nil || nullA || nullB {
			return triUnknown, err
		}
		return triOf(holds(n.op, compareValues(n.a.f.Kind, a, b))), nil
	case *bIn:
		v, null, err := recordValue(rec, n.r)
		if err != nil {
			return triFalse, err
		}
		// x = ANY('{}') is false even when x is NULL.
		if len(n.vals) == 0 {
			return triFalse, nil
		}
		if null {
			return triUnknown, nil
		}
		for _, item := range n.vals {
			if compareValues(n.r.f.Kind, v, item) == 0 {
				return triTrue, nil
			}
		}
		return triFalse, nil
	case *bHas:
		v, null, err := recordValue(rec, n.r)
		if err != nil || null {
			return triUnknown, err
		}
		for _, s := range v.([]*string) {
			if s != nil && *s == n.val {
				return triTrue, nil
			}
		}
		return triFalse, nil
	case *bStr:
		v, null, err := recordValue(rec, n.r)
		if err != nil || null {
			return triUnknown, err
		}
		s := v.(string)
		switch n.op {
		case "contains":
			return triOf(strings.Contains(s, n.val)), nil
		case "startsWith":
			return triOf(strings.HasPrefix(s, n.val)), nil
		case "endsWith":
			return triOf(strings.HasSuffix(s, n.val)), nil
		}
	}
	panic("query: unknown bound node")
}

func holds(op string, c int) bool {
	switch op {
	case "==":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	case ">=":
		return c >= 0
	}
	panic("query: unknown operator " + op)
}

// recordValue reads and normalizes a record value. null is true for a missing
// key, nil, or a nil slice (pgx stores a nil slice as NULL too). Multi-select
// values come back as []*string with nil for NULL elements.
func recordValue(rec map[string]any, r ref) (v any, null bool, err error) {
	raw, ok := rec[r.name]
	if !ok || raw == nil {
		return nil, true, nil
	}
	if r.f.Kind == KindTextArray {
		return textArray(raw, r)
	}
	if rv := reflect.ValueOf(raw); rv.Kind() == reflect.Pointer {
		if rv.IsNil() {
			return nil, true, nil
		}
		raw = rv.Elem().Interface()
	}
	nv, ok := normalize(r.f.Kind, raw)
	if !ok {
		return nil, false, fieldErr(-1, r.name, "%s: record value %s is not %s", r.name, describe(raw), r.f.Kind.noun())
	}
	return nv, false, nil
}

func textArray(raw any, r ref) (any, bool, error) {
	bad := func() (any, bool, error) {
		return nil, false, fieldErr(-1, r.name, "%s: record value %s is not a list of strings", r.name, describe(raw))
	}
	rv := reflect.ValueOf(raw)
	if rv.Kind() != reflect.Slice {
		return bad()
	}
	if rv.IsNil() {
		return nil, true, nil
	}
	out := make([]*string, rv.Len())
	for i := range rv.Len() {
		ev := rv.Index(i)
		for ev.Kind() == reflect.Interface || ev.Kind() == reflect.Pointer {
			if ev.IsNil() {
				break
			}
			ev = ev.Elem()
		}
		if (ev.Kind() == reflect.Interface || ev.Kind() == reflect.Pointer) && ev.IsNil() {
			continue // NULL element
		}
		if ev.Kind() != reflect.String {
			return bad()
		}
		s := ev.String()
		out[i] = &s
	}
	return out, false, nil
}
