package query

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"time"

	"github.com/shopspring/decimal"
)

// Folding: a comparison with no field on either side but at least one
// $parameter (`$input.amount > 1000`, `$steps.approve.outcome == "approve"`,
// `$a.x == $b.y`) is decided at bind time and becomes a boolean constant:
// bConst, which SQL sends as one bind parameter and Eval reads back, so the
// two paths still agree by construction. Workflow conditions are built from
// such comparisons; permission rules may use them too ($user.is_admin).
//
// A parameter has no declared kind, so the kind is inferred from the two
// values: JSON numbers are integers or decimals, strings stay text unless the
// other side is a number, boolean, date… that the string spells (JSON carries
// decimals and dates as strings). Literal-only comparisons (`1 == 1`) remain
// an error: they are almost always a typo for a field name.

// hasParam reports whether any operand is a $parameter.
func hasParam(ops ...operand) bool {
	for _, o := range ops {
		if _, ok := o.(*paramRef); ok {
			return true
		}
	}
	return false
}

// isNilLiteral reports whether o is the literal nil (or null).
func isNilLiteral(o operand) bool {
	l, ok := o.(*literal)
	return ok && l.val == nil
}

// foldCmp decides `const op const`.
func (b *binder) foldCmp(n *cmpNode) (bnode, error) {
	a, shownA, err := b.constant(n.left)
	if err != nil {
		return nil, err
	}
	c, shownC, err := b.constant(n.right)
	if err != nil {
		return nil, err
	}
	// `$p == nil` tests for absence, like `field == nil` (IS NULL).
	if isNilLiteral(n.left) || isNilLiteral(n.right) {
		v := a
		if isNilLiteral(n.left) {
			v = c
		}
		switch n.op {
		case "==":
			return &bConst{val: v == nil}, nil
		case "!=":
			return &bConst{val: v != nil}, nil
		}
		return nil, errAt(n.at, "operator %s cannot be used with nil; use == nil or != nil", n.op)
	}
	if isList(a) || isList(c) {
		return nil, errAt(n.at, "a list can only be used with in, e.g. $x in [\"a\", \"b\"]")
	}
	// A missing value compared with anything is unknown, as NULL is in SQL.
	if a == nil || c == nil {
		return &bConst{val: nil}, nil
	}
	k, ok := unifyKinds(a, c)
	if !ok {
		return nil, errAt(n.at, "cannot compare %s with %s", shownA, shownC)
	}
	if isOrdering(n.op) && !k.ordered() {
		return nil, errAt(n.at, "operator %s is not supported for %s values (%s)", n.op, k, shownA)
	}
	na, _ := normalize(k, a)
	nc, _ := normalize(k, c)
	return &bConst{val: holds(n.op, compareValues(k, na, nc))}, nil
}

// foldIn decides `const in [consts]` and `const in $list`.
func (b *binder) foldIn(n *inNode) (bnode, error) {
	needle, shown, err := b.constant(n.needle)
	if err != nil {
		return nil, err
	}
	var items []any
	switch list := n.list.(type) {
	case *listLit:
		for _, item := range list.items {
			v, _, err := b.constant(item)
			if err != nil {
				return nil, err
			}
			items = append(items, v)
		}
	case *paramRef:
		v, err := b.param(list)
		if err != nil {
			return nil, err
		}
		if v != nil {
			rv := reflect.ValueOf(v)
			if rv.Kind() != reflect.Slice || rv.Type().Elem().Kind() == reflect.Uint8 {
				return nil, errAt(list.at, "%s is %s, not a list", list, describe(v))
			}
			for i := range rv.Len() {
				items = append(items, rv.Index(i).Interface())
			}
		}
	default:
		return nil, errAt(n.list.pos(), "the right side of in must be a list or a $parameter list")
	}
	// x = ANY('{}') is false even when x is NULL; otherwise NULL in … is unknown.
	if len(items) == 0 {
		return &bConst{val: false}, nil
	}
	if needle == nil {
		return &bConst{val: nil}, nil
	}
	for _, item := range items {
		if item == nil {
			continue
		}
		k, ok := unifyKinds(needle, item)
		if !ok {
			return nil, errAt(n.at, "cannot look up %s in a list holding %s", shown, describe(item))
		}
		na, _ := normalize(k, needle)
		ni, _ := normalize(k, item)
		if compareValues(k, na, ni) == 0 {
			return &bConst{val: true}, nil
		}
	}
	return &bConst{val: false}, nil
}

// foldStr decides contains / startsWith / endsWith on a $parameter.
func (b *binder) foldStr(n *strNode) (bnode, error) {
	switch n.right.(type) {
	case *fieldRef, *listLit:
		return nil, errAt(n.right.pos(), "the right side of %s must be a string or a $parameter", n.op)
	}
	a, shownA, err := b.constant(n.left)
	if err != nil {
		return nil, err
	}
	c, shownC, err := b.constant(n.right)
	if err != nil {
		return nil, err
	}
	if a == nil || c == nil {
		return &bConst{val: nil}, nil
	}
	s, ok1 := a.(string)
	sub, ok2 := c.(string)
	if !ok1 || !ok2 {
		return nil, errAt(n.at, "operator %s needs strings on both sides, not %s and %s", n.op, shownA, shownC)
	}
	switch n.op {
	case "contains":
		return &bConst{val: strings.Contains(s, sub)}, nil
	case "startsWith":
		return &bConst{val: strings.HasPrefix(s, sub)}, nil
	}
	return &bConst{val: strings.HasSuffix(s, sub)}, nil
}

func isList(v any) bool {
	if v == nil {
		return false
	}
	rv := reflect.ValueOf(v)
	return rv.Kind() == reflect.Slice && rv.Type().Elem().Kind() != reflect.Uint8
}

// inferKind is the kind a raw value most naturally has; ok is false for
// values no kind can hold (maps, lists).
func inferKind(v any) (Kind, bool) {
	switch x := v.(type) {
	case string:
		return KindText, true
	case bool:
		return KindBool, true
	case decimal.Decimal:
		return KindDecimal, true
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return KindInteger, true
		}
		return KindDecimal, true
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return KindInteger, true
		}
		return KindDecimal, true
	case float32:
		return inferKind(float64(x))
	case time.Time:
		return KindDateTime, true
	}
	if _, ok := intString(v); ok {
		return KindInteger, true
	}
	if _, ok := toUUID(v); ok {
		return KindUUID, true
	}
	return 0, false
}

// unifyKinds picks the kind two values are compared as, and checks both can
// be read as it. Numbers widen to decimal; a string takes the other side's
// kind when it spells a value of it ("12.50" vs 10, "true" vs false).
func unifyKinds(a, b any) (Kind, bool) {
	ka, ok := inferKind(a)
	if !ok {
		return 0, false
	}
	kb, ok := inferKind(b)
	if !ok {
		return 0, false
	}
	k := ka
	switch {
	case ka == kb:
	case isNumber(ka) && isNumber(kb):
		k = KindDecimal
	case ka == KindText:
		k = kb
	case kb == KindText:
		k = ka
	default:
		return 0, false
	}
	if k == KindInteger {
		// An integer that one side spells as "12.5" still compares exactly.
		if _, ok := normalize(k, a); !ok {
			k = KindDecimal
		}
		if _, ok := normalize(k, b); !ok {
			k = KindDecimal
		}
	}
	if _, ok := normalize(k, a); !ok {
		return 0, false
	}
	if _, ok := normalize(k, b); !ok {
		return 0, false
	}
	return k, true
}

func isNumber(k Kind) bool { return k == KindInteger || k == KindDecimal }

// ParamPaths lists the $parameter paths the expression reads ($input.amount →
// ["input", "amount"]), in source order. Callers whose parameters are sparse
// documents (workflow variables) use it to supply nil for absent optional keys,
// which Eval otherwise reports as unknown parameters.
func (e *Expr) ParamPaths() [][]string {
	var out [][]string
	var operands func(ops ...operand)
	operands = func(ops ...operand) {
		for _, o := range ops {
			switch o := o.(type) {
			case *paramRef:
				out = append(out, append([]string(nil), o.path...))
			case *listLit:
				operands(o.items...)
			}
		}
	}
	var walk func(n node)
	walk = func(n node) {
		switch n := n.(type) {
		case *andNode:
			for _, k := range n.kids {
				walk(k)
			}
		case *orNode:
			for _, k := range n.kids {
				walk(k)
			}
		case *notNode:
			walk(n.kid)
		case *cmpNode:
			operands(n.left, n.right)
		case *inNode:
			operands(n.needle, n.list)
		case *strNode:
			operands(n.left, n.right)
		case *truthNode:
			operands(n.val)
		}
	}
	walk(e.root)
	return out
}
