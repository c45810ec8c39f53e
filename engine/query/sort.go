package query

import (
	"regexp"
	"strings"
)

// maxSortKeys bounds ORDER BY size; more keys than this is never a real need.
const maxSortKeys = 8

// SortKey is one ORDER BY item. Field is a name as written in expressions; the
// caller resolves it through the same Fields as filters so hidden fields
// cannot be used to probe values by sorting.
type SortKey struct {
	Field string
	Desc  bool
}

var sortNameRe = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// ParseSort parses "-amount,name" (max 8 keys; names must match
// [a-z_][a-z0-9_]*; duplicates rejected). A leading '-' means descending.
// Spaces around keys are ignored; an empty string means no sort keys.
func ParseSort(s string) ([]SortKey, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var keys []SortKey
	seen := map[string]bool{}
	at := 0
	for _, part := range strings.Split(s, ",") {
		pos := at + len(part) - len(strings.TrimLeft(part, " \t"))
		at += len(part) + 1
		item := strings.TrimSpace(part)
		k := SortKey{Field: item}
		if name, ok := strings.CutPrefix(item, "-"); ok {
			k = SortKey{Field: name, Desc: true}
		}
		if item == "" {
			return nil, errAt(pos, "sort: empty key")
		}
		if !sortNameRe.MatchString(k.Field) {
			return nil, fieldErr(pos, k.Field, "sort: invalid field name %s", describe(k.Field))
		}
		if seen[k.Field] {
			return nil, fieldErr(pos, k.Field, "sort: field %s is listed twice", k.Field)
		}
		seen[k.Field] = true
		keys = append(keys, k)
		if len(keys) > maxSortKeys {
			return nil, errAt(pos, "sort: at most %d keys are allowed", maxSortKeys)
		}
	}
	return keys, nil
}
