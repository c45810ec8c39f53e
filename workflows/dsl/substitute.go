package dsl

import (
	"encoding/json"
	"fmt"
	"strings"
)

// Substitute writes the values of workflow references into a record filter as
// literals, so `customer == $trigger.id && amount > $input.min` becomes a plain filter
// the engine compiles as it compiles any other (every literal still becomes a bind
// parameter there). References whose root the scope does not hold ($user, which the
// engine supplies) are left as they are; text inside string literals is never touched.
func (s Scope) Substitute(filter string) (string, error) {
	var out strings.Builder
	for i := 0; i < len(filter); {
		c := filter[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			end := stringEnd(filter, i)
			out.WriteString(filter[i:end])
			i = end
		case c == '$':
			end := i + 1
			for end < len(filter) && (isWord(filter[end]) || (filter[end] == '.' && end+1 < len(filter) && isWord(filter[end+1]))) {
				end++
			}
			ref := filter[i:end]
			root, _, _ := strings.Cut(ref[1:], ".")
			if _, ok := s[root]; !ok || !IsReference(ref) {
				out.WriteString(ref)
				i = end
				continue
			}
			v, err := s.Lookup(ref)
			if err != nil {
				return "", err
			}
			lit, err := literal(v)
			if err != nil {
				return "", fmt.Errorf("%s: %w", ref, err)
			}
			out.WriteString(lit)
			i = end
		default:
			out.WriteByte(c)
			i++
		}
	}
	return out.String(), nil
}

func isWord(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// stringEnd returns the index after the string literal starting at i.
func stringEnd(s string, i int) int {
	quote := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && quote != '`':
			j++
		case s[j] == quote:
			return j + 1
		}
	}
	return len(s)
}

// literal renders a value in the expression language.
func literal(v any) (string, error) {
	switch x := v.(type) {
	case nil:
		return "nil", nil
	case string:
		b, err := json.Marshal(x) // a JSON string is a valid expression string literal
		return string(b), err
	case bool, json.Number, float64, float32, int, int64:
		b, err := json.Marshal(x)
		return string(b), err
	case []any:
		parts := make([]string, len(x))
		for i, item := range x {
			if _, nested := item.([]any); nested {
				return "", fmt.Errorf("nested lists cannot be used in a filter")
			}
			p, err := literal(item)
			if err != nil {
				return "", err
			}
			parts[i] = p
		}
		return "[" + strings.Join(parts, ", ") + "]", nil
	}
	return "", fmt.Errorf("a %T cannot be used in a filter; refer to one of its fields", v)
}
