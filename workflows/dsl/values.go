package dsl

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Scope is what conditions and mappings of a run can read: input, trigger, steps,
// vars, run, now, and inside a foreach item, index and the loop's own name. It is a
// plain JSON-like document so it travels through Temporal unchanged.
type Scope map[string]any

var referenceRe = regexp.MustCompile(`^\$[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*$`)

var templateRe = regexp.MustCompile(`\{\{\s*(\$[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)\s*\}\}`)

// IsReference reports whether s is a whole reference such as "$steps.order.record.id".
func IsReference(s string) bool { return referenceRe.MatchString(s) }

// Lookup reads a reference. An unknown root ($inptu) is an error, since it can only be
// a typo; a missing key further down is nil, since optional input is normal. Numeric
// segments index lists ($steps.q.records.0.id).
func (s Scope) Lookup(ref string) (any, error) {
	if !IsReference(ref) {
		return nil, fmt.Errorf("%q is not a reference such as $input.amount", ref)
	}
	path := strings.Split(ref[1:], ".")
	v, ok := s[path[0]]
	if !ok {
		return nil, fmt.Errorf("unknown reference %s: a reference starts with $input, $trigger, $steps, $vars, $run, $now or a foreach variable", ref)
	}
	for _, seg := range path[1:] {
		switch x := v.(type) {
		case map[string]any:
			v = x[seg]
		case []any:
			i, err := strconv.Atoi(seg)
			if err != nil || i < 0 || i >= len(x) {
				return nil, nil
			}
			v = x[i]
		default:
			return nil, nil
		}
	}
	return v, nil
}

// Resolve returns a copy of a mapping value with references replaced by their values
// and {{ $ref }} templates filled in. "$$…" is a literal string starting with "$".
func (s Scope) Resolve(v any) (any, error) {
	switch x := v.(type) {
	case string:
		switch {
		case strings.HasPrefix(x, "$$"):
			return x[1:], nil
		case IsReference(x):
			return s.Lookup(x)
		case strings.Contains(x, "{{"):
			return s.Interpolate(x)
		}
		return x, nil
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			r, err := s.Resolve(item)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			r, err := s.Resolve(item)
			if err != nil {
				return nil, fmt.Errorf("%d: %w", i, err)
			}
			out[i] = r
		}
		return out, nil
	}
	return v, nil
}

// ResolveMap is Resolve for a mapping object.
func (s Scope) ResolveMap(m map[string]any) (map[string]any, error) {
	if m == nil {
		return map[string]any{}, nil
	}
	v, err := s.Resolve(m)
	if err != nil {
		return nil, err
	}
	return v.(map[string]any), nil
}

// String resolves a string field: a whole reference becomes the value's text.
func (s Scope) String(v string) (string, error) {
	r, err := s.Resolve(v)
	if err != nil {
		return "", err
	}
	return Text(r), nil
}

// Interpolate fills the {{ $ref }} templates of a string.
func (s Scope) Interpolate(str string) (string, error) {
	var firstErr error
	out := templateRe.ReplaceAllStringFunc(str, func(m string) string {
		ref := templateRe.FindStringSubmatch(m)[1]
		v, err := s.Lookup(ref)
		if err != nil && firstErr == nil {
			firstErr = err
		}
		return Text(v)
	})
	return out, firstErr
}

// Text is how a value reads inside a string: strings as they are, nothing for nil,
// JSON for the rest.
func Text(v any) string {
	switch x := v.(type) {
	case nil:
		return ""
	case string:
		return x
	case json.Number:
		return x.String()
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// With returns a copy of the scope with extra roots (a foreach item).
func (s Scope) With(kv ...any) Scope {
	out := make(Scope, len(s)+len(kv)/2)
	for k, v := range s {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

var nameRe = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// IsName reports whether s is a valid workflow, step or signal name.
func IsName(s string) bool { return nameRe.MatchString(s) }
