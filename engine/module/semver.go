package module

import (
	"fmt"
	"strconv"
	"strings"
)

// Version is a semantic version without pre-release or build parts: modules are
// released, not previewed.
type Version struct{ Major, Minor, Patch int }

// ParseVersion reads "1.2.3".
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 3 {
		return Version{}, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", s)
	}
	var n [3]int
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil || v < 0 || (len(p) > 1 && p[0] == '0') {
			return Version{}, fmt.Errorf("version %q is not MAJOR.MINOR.PATCH", s)
		}
		n[i] = v
	}
	return Version{n[0], n[1], n[2]}, nil
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// Compare is -1, 0 or 1.
func (v Version) Compare(o Version) int {
	for _, d := range [3]int{v.Major - o.Major, v.Minor - o.Minor, v.Patch - o.Patch} {
		if d < 0 {
			return -1
		}
		if d > 0 {
			return 1
		}
	}
	return 0
}

// Satisfies reports whether v is in the range: "*", an exact "1.2.3" or "=1.2.3",
// "^1.2.3" (same major; for 0.x same minor), "~1.2.3" (same major.minor), and the
// comparisons >=, >, <=, <. Space-separated terms must all hold (">=1.0.0 <2.0.0").
func (v Version) Satisfies(rng string) (bool, error) {
	terms := strings.Fields(rng)
	if len(terms) == 0 {
		return false, fmt.Errorf("empty version range")
	}
	for _, t := range terms {
		ok, err := v.satisfiesTerm(t)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

func (v Version) satisfiesTerm(t string) (bool, error) {
	if t == "*" {
		return true, nil
	}
	op := ""
	for _, p := range []string{">=", "<=", "^", "~", ">", "<", "="} {
		if strings.HasPrefix(t, p) {
			op = p
			break
		}
	}
	base, err := ParseVersion(t[len(op):])
	if err != nil {
		return false, fmt.Errorf("version range %q: %w", t, err)
	}
	c := v.Compare(base)
	switch op {
	case "", "=":
		return c == 0, nil
	case ">=":
		return c >= 0, nil
	case ">":
		return c > 0, nil
	case "<=":
		return c <= 0, nil
	case "<":
		return c < 0, nil
	case "~":
		return c >= 0 && v.Major == base.Major && v.Minor == base.Minor, nil
	default: // "^": changes that do not modify the left-most non-zero part
		if c < 0 || v.Major != base.Major {
			return false, nil
		}
		if base.Major == 0 {
			return v.Minor == base.Minor, nil
		}
		return true, nil
	}
}
