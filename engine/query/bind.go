package query

import (
	"reflect"
	"strings"
)

// The bound form: fields resolved, parameters substituted, every value
// normalized to its field's kind. SQL and Eval both walk this tree, so there
// is exactly one place where types and NULL handling are decided.
type bnode interface{ isBound() }

// ref is a resolved field together with the name it was written as.
type ref struct {
	name string
	f    Field
}

type bAnd struct{ kids []bnode }
type bOr struct{ kids []bnode }
type bNot struct{ kid bnode }

// bConst is a boolean constant; val is true, false or nil (unknown).
type bConst struct{ val any }

// bTruth is a bare boolean field used as a condition.
type bTruth struct{ r ref }

// bNull is `x == nil` (IS NULL) or, with not, `x != nil`.
type bNull struct {
	r   ref
	not bool
}

// bCmp compares a field with a normalized value; the field is always on the left.
type bCmp struct {
	r   ref
	op  string
	val any
}

// bCmpFields compares two fields of the same kind.
type bCmpFields struct {
	a, b ref
	op   string
}

// bIn is `field in list` with normalized, non-nil items.
type bIn struct {
	r    ref
	vals []any
}

// bHas is `"x" in tags` for a multi-select field.
type bHas struct {
	r   ref
	val string
}

// bStr is contains / startsWith / endsWith on a text field.
type bStr struct {
	r   ref
	op  string
	val string
}

func (*bAnd) isBound()       {}
func (*bOr) isBound()        {}
func (*bNot) isBound()       {}
func (*bConst) isBound()     {}
func (*bTruth) isBound()     {}
func (*bNull) isBound()      {}
func (*bCmp) isBound()       {}
func (*bCmpFields) isBound() {}
func (*bIn) isBound()        {}
func (*bHas) isBound()       {}
func (*bStr) isBound()       {}

type binder struct {
	fields Fields
	params Params
	forSQL bool
}

func (e *Expr) bind(fields Fields, params Params, forSQL bool) (bnode, error) {
	b := &binder{fields: fields, params: params, forSQL: forSQL}
	return b.cond(e.root)
}

func (b *binder) cond(n node) (bnode, error) {
	switch n := n.(type) {
	case *andNode, *orNode:
		var kids []node
		if a, ok := n.(*andNode); ok {
			kids = a.kids
		} else {
			kids = n.(*orNode).kids
		}
		out := make([]bnode, len(kids))
		for i, k := range kids {
			bk, err := b.cond(k)
			if err != nil {
				return nil, err
			}
			out[i] = bk
		}
		if _, ok := n.(*andNode); ok {
			return &bAnd{kids: out}, nil
		}
		return &bOr{kids: out}, nil
	case *notNode:
		k, err := b.cond(n.kid)
		if err != nil {
			return nil, err
		}
		return &bNot{kid: k}, nil
	case *truthNode:
		return b.truth(n)
	case *cmpNode:
		return b.cmp(n)
	case *inNode:
		return b.in(n)
	case *strNode:
		return b.str(n)
	}
	panic("query: unknown node")
}

func (b *binder) field(fr *fieldRef) (ref, error) {
	var f Field
	ok := false
	if b.fields != nil {
		f, ok = b.fields(fr.name)
	}
	if !ok {
		return ref{}, fieldErr(fr.at, fr.name, "unknown field %q", fr.name)
	}
	if f.Kind < KindText || f.Kind > KindTextArray {
		return ref{}, fieldErr(fr.at, fr.name, "field %q has an unsupported kind %d", fr.name, int(f.Kind))
	}
	if b.forSQL && strings.TrimSpace(f.Column) == "" {
		return ref{}, fieldErr(fr.at, fr.name, "field %q has no column", fr.name)
	}
	return ref{name: fr.name, f: f}, nil
}

// param looks up $a.b.c. A missing key is an error rather than nil, so a typo
// in a permission rule cannot silently turn into `owner_id IS NULL`.
func (b *binder) param(p *paramRef) (any, error) {
	v, ok := b.params[p.path[0]]
	if !ok {
		return nil, errAt(p.at, "unknown parameter $%s", p.path[0])
	}
	for i, seg := range p.path[1:] {
		rv := reflect.ValueOf(v)
		if rv.Kind() != reflect.Map || rv.Type().Key().Kind() != reflect.String {
			return nil, errAt(p.at, "parameter $%s is not an object", strings.Join(p.path[:i+1], "."))
		}
		mv := rv.MapIndex(reflect.ValueOf(seg).Convert(rv.Type().Key()))
		if !mv.IsValid() {
			return nil, errAt(p.at, "unknown parameter $%s", strings.Join(p.path[:i+2], "."))
		}
		v = mv.Interface()
	}
	return v, nil
}

// constant returns the raw value of a literal or parameter and how to show it
// in an error message.
func (b *binder) constant(o operand) (any, string, error) {
	switch o := o.(type) {
	case *literal:
		return o.val, o.text, nil
	case *paramRef:
		v, err := b.param(o)
		if err != nil {
			return nil, "", err
		}
		return v, o.String() + " (" + describe(v) + ")", nil
	}
	panic("query: constant on a non-value operand")
}

// coerce normalizes a non-nil raw value to r's kind or explains why it cannot.
func coerce(r ref, v any, shown string, at int) (any, error) {
	nv, ok := normalize(r.f.Kind, v)
	if !ok {
		return nil, fieldErr(at, r.name, "%s: %s is not %s", r.name, shown, r.f.Kind.noun())
	}
	return nv, nil
}

func (b *binder) truth(n *truthNode) (bnode, error) {
	switch o := n.val.(type) {
	case *fieldRef:
		r, err := b.field(o)
		if err != nil {
			return nil, err
		}
		if r.f.Kind != KindBool {
			return nil, fieldErr(o.at, o.name, "%s is a %s field, not a condition; compare it with a value, e.g. %s != nil", o.name, r.f.Kind, o.name)
		}
		return &bTruth{r: r}, nil
	case *paramRef:
		v, err := b.param(o)
		if err != nil {
			return nil, err
		}
		if _, ok := v.(bool); v != nil && !ok {
			return nil, errAt(o.at, "%s is %s, not a boolean condition", o, describe(v))
		}
		return &bConst{val: v}, nil
	case *literal:
		if v, ok := o.val.(bool); ok {
			return &bConst{val: v}, nil
		}
		return nil, errAt(o.at, "%s is not a condition", o.text)
	}
	panic("query: unknown operand")
}

var flipped = map[string]string{"==": "==", "!=": "!=", "<": ">", "<=": ">=", ">": "<", ">=": "<="}

func isOrdering(op string) bool { return op == "<" || op == "<=" || op == ">" || op == ">=" }

func (b *binder) cmp(n *cmpNode) (bnode, error) {
	for _, o := range []operand{n.left, n.right} {
		if l, ok := o.(*listLit); ok {
			return nil, errAt(l.at, "a list can only be used with in, e.g. status in [\"a\", \"b\"]")
		}
	}
	lf, lok := n.left.(*fieldRef)
	rf, rok := n.right.(*fieldRef)
	op, other := n.op, n.right
	switch {
	case lok && rok:
		a, err := b.field(lf)
		if err != nil {
			return nil, err
		}
		c, err := b.field(rf)
		if err != nil {
			return nil, err
		}
		if a.f.Kind != c.f.Kind {
			return nil, fieldErr(rf.at, rf.name, "cannot compare %s (%s) with %s (%s)", a.name, a.f.Kind, c.name, c.f.Kind)
		}
		if a.f.Kind == KindTextArray {
			return nil, fieldErr(lf.at, lf.name, "multi-select fields cannot be compared with each other")
		}
		if isOrdering(op) && !a.f.Kind.ordered() {
			return nil, fieldErr(n.at, lf.name, "operator %s is not supported for %s fields (%s)", op, a.f.Kind, lf.name)
		}
		return &bCmpFields{a: a, b: c, op: op}, nil
	case !lok && !rok:
		if hasParam(n.left, n.right) {
			return b.foldCmp(n)
		}
		return nil, errAt(n.at, "comparison needs a field on at least one side")
	case rok:
		// Keep the field on the left so SQL and Eval only handle one shape.
		lf, op, other = rf, flipped[op], n.left
	}
	r, err := b.field(lf)
	if err != nil {
		return nil, err
	}
	v, shown, err := b.constant(other)
	if err != nil {
		return nil, err
	}
	if v == nil {
		switch op {
		case "==":
			return &bNull{r: r}, nil
		case "!=":
			return &bNull{r: r, not: true}, nil
		}
		return nil, fieldErr(n.at, r.name, "%s: operator %s cannot be used with nil; use == nil or != nil", r.name, op)
	}
	if r.f.Kind == KindTextArray {
		return nil, fieldErr(n.at, r.name, "%s is a multi-select field: use \"value\" in %s, or %s == nil", r.name, r.name, r.name)
	}
	if isOrdering(op) && !r.f.Kind.ordered() {
		return nil, fieldErr(n.at, r.name, "operator %s is not supported for %s fields (%s)", op, r.f.Kind, r.name)
	}
	nv, err := coerce(r, v, shown, other.pos())
	if err != nil {
		return nil, err
	}
	return &bCmp{r: r, op: op, val: nv}, nil
}

func (b *binder) in(n *inNode) (bnode, error) {
	if _, ok := n.needle.(*listLit); ok {
		return nil, errAt(n.needle.pos(), "a list cannot be on the left of in")
	}
	switch list := n.list.(type) {
	case *fieldRef:
		r, err := b.field(list)
		if err != nil {
			return nil, err
		}
		if r.f.Kind != KindTextArray {
			return nil, fieldErr(list.at, r.name, "%s is a %s field, not a multi-select: use %s == value or a list, e.g. %s in [\"a\", \"b\"]", r.name, r.f.Kind, r.name, r.name)
		}
		if _, ok := n.needle.(*fieldRef); ok {
			return nil, fieldErr(n.needle.pos(), r.name, "the left side of in %s must be a value or a $parameter", r.name)
		}
		v, shown, err := b.constant(n.needle)
		if err != nil {
			return nil, err
		}
		if v == nil {
			return nil, fieldErr(n.needle.pos(), r.name, "%s: nil cannot be looked up in a multi-select; use %s == nil", r.name, r.name)
		}
		nv, err := coerce(r, v, shown, n.needle.pos())
		if err != nil {
			return nil, err
		}
		return &bHas{r: r, val: nv.(string)}, nil
	case *listLit, *paramRef:
		fr, ok := n.needle.(*fieldRef)
		if !ok && hasParam(n.needle, list) {
			return b.foldIn(n)
		}
		if !ok {
			return nil, errAt(n.at, "in needs a field on the left, e.g. status in [\"a\", \"b\"]")
		}
		r, err := b.field(fr)
		if err != nil {
			return nil, err
		}
		if r.f.Kind == KindTextArray {
			return nil, fieldErr(fr.at, r.name, "%s is a multi-select field: test one value with \"value\" in %s", r.name, r.name)
		}
		var vals []any
		if l, ok := list.(*listLit); ok {
			for _, item := range l.items {
				v, shown, err := b.constant(item)
				if err != nil {
					return nil, err
				}
				if v == nil {
					return nil, fieldErr(item.pos(), r.name, "%s: nil is not allowed in a list; use %s == nil", r.name, r.name)
				}
				nv, err := coerce(r, v, shown, item.pos())
				if err != nil {
					return nil, err
				}
				vals = append(vals, nv)
			}
		} else {
			p := list.(*paramRef)
			v, err := b.param(p)
			if err != nil {
				return nil, err
			}
			vals, err = b.paramList(r, p, v)
			if err != nil {
				return nil, err
			}
		}
		return &bIn{r: r, vals: vals}, nil
	}
	return nil, errAt(n.list.pos(), "the right side of in must be a list, a $parameter list or a multi-select field")
}

// paramList normalizes a list parameter. nil counts as an empty list: a user
// without teams simply matches no team.
func (b *binder) paramList(r ref, p *paramRef, v any) ([]any, error) {
	if v == nil {
		return nil, nil
	}
	rv := reflect.ValueOf(v)
	if rv.Kind() != reflect.Slice || rv.Type().Elem().Kind() == reflect.Uint8 {
		return nil, errAt(p.at, "%s is %s, not a list", p, describe(v))
	}
	if rv.Len() > maxListItems {
		return nil, errAt(p.at, "%s has %d items, the limit is %d", p, rv.Len(), maxListItems)
	}
	vals := make([]any, 0, rv.Len())
	for i := range rv.Len() {
		item := rv.Index(i).Interface()
		if item == nil {
			return nil, fieldErr(p.at, r.name, "%s: %s contains nil", r.name, p)
		}
		nv, err := coerce(r, item, p.String()+" item "+describe(item), p.at)
		if err != nil {
			return nil, err
		}
		vals = append(vals, nv)
	}
	return vals, nil
}

func (b *binder) str(n *strNode) (bnode, error) {
	fr, ok := n.left.(*fieldRef)
	if !ok && hasParam(n.left, n.right) {
		return b.foldStr(n)
	}
	if !ok {
		return nil, errAt(n.at, "%s needs a text field on the left, e.g. name %s \"abc\"", n.op, n.op)
	}
	r, err := b.field(fr)
	if err != nil {
		return nil, err
	}
	if r.f.Kind == KindTextArray {
		return nil, fieldErr(n.at, r.name, "%s is a multi-select field: use \"value\" in %s", r.name, r.name)
	}
	if r.f.Kind != KindText {
		return nil, fieldErr(n.at, r.name, "operator %s is only supported on text fields; %s is a %s field", n.op, r.name, r.f.Kind)
	}
	switch n.right.(type) {
	case *fieldRef, *listLit:
		return nil, errAt(n.right.pos(), "the right side of %s must be a string or a $parameter", n.op)
	}
	v, shown, err := b.constant(n.right)
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, fieldErr(n.at, r.name, "%s: operator %s cannot be used with nil", r.name, n.op)
	}
	nv, err := coerce(r, v, shown, n.right.pos())
	if err != nil {
		return nil, err
	}
	return &bStr{r: r, op: n.op, val: nv.(string)}, nil
}
