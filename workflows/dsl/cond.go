package dsl

import (
	"errors"
	"fmt"

	"github.com/tessera/tessera/engine/query"
)

// noFields resolves no field: a workflow condition reads variables ($…), not columns.
func noFields(string) (query.Field, bool) { return query.Field{}, false }

// Cond evaluates a condition over the scope with the record filter language. A
// missing value compares as SQL NULL does (unknown, so not true).
func (s Scope) Cond(src string) (bool, error) {
	expr, err := query.Parse(src)
	if err != nil {
		return false, fmt.Errorf("condition %q: %w", src, err)
	}
	ok, err := expr.Eval(nil, noFields, FillParams(expr, query.Params(s)))
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) && qe.Field != "" {
			return false, fmt.Errorf("condition %q: %s; workflow conditions read variables such as $input.%s or $steps.<id>.outcome", src, qe.Message, qe.Field)
		}
		return false, fmt.Errorf("condition %q: %w", src, err)
	}
	return ok, nil
}

// FillParams returns params where every path the expression reads exists: a key
// missing under an existing object is supplied as nil, so `$input.discount == nil`
// works for optional input instead of failing as an unknown parameter. Unknown roots
// stay unknown (a typo such as $inptu still fails). The maps on a filled path are
// copied; params itself is not changed.
func FillParams(expr *query.Expr, params query.Params) query.Params {
	out := params
	copied := false
	for _, path := range expr.ParamPaths() {
		root, ok := params[path[0]]
		if !ok || len(path) == 1 {
			continue
		}
		filled, changed := fill(root, path[1:])
		if !changed {
			continue
		}
		if !copied {
			out = make(query.Params, len(params))
			for k, v := range params {
				out[k] = v
			}
			copied = true
		}
		out[path[0]] = filled
		params = out
	}
	return out
}

// fill returns v with path present (nil at the end), copying the maps it changes.
func fill(v any, path []string) (any, bool) {
	if len(path) == 0 {
		return v, false
	}
	var m map[string]any
	switch x := v.(type) {
	case map[string]any:
		m = x
	case nil:
		m = map[string]any{}
	default:
		return v, false
	}
	child, exists := m[path[0]]
	next, changed := fill(child, path[1:])
	if exists && !changed {
		return v, false
	}
	out := make(map[string]any, len(m)+1)
	for k, val := range m {
		out[k] = val
	}
	out[path[0]] = next
	return out, true
}
