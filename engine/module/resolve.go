package module

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// DependencyError refuses an install or upgrade: a dependency is missing, in an
// incompatible version, or the dependencies form a cycle.
type DependencyError struct{ Message string }

func (e *DependencyError) Error() string { return e.Message }

// resolve returns the modules to install for target, dependencies first, and the
// dependency closure of target (every module it depends on, directly or not, as the
// catalog or the installed set provides it).
//
// A dependency already installed must satisfy the range; one not installed is taken
// from the catalog if its version does, and installed before target.
func resolve(target *Module, catalog map[string]*Module, installed map[string]string) (order []*Module, deps map[string]*Module, err error) {
	deps = map[string]*Module{}
	state := map[string]int{} // 1 visiting, 2 done
	var stack []string
	var visit func(m *Module) error
	visit = func(m *Module) error {
		name := m.Manifest.Name
		switch state[name] {
		case 1:
			i := indexOf(stack, name)
			return &DependencyError{Message: "dependency cycle: " + strings.Join(append(stack[i:], name), " → ")}
		case 2:
			return nil
		}
		state[name] = 1
		stack = append(stack, name)
		for _, dep := range slices.Sorted(maps.Keys(m.Manifest.Dependencies)) {
			rng := m.Manifest.Dependencies[dep]
			var next *Module
			if v, ok := installed[dep]; ok && dep != target.Manifest.Name {
				if err := check(name, dep, rng, v, "installed"); err != nil {
					return err
				}
				// The catalog's copy tells which entities the dependency defines.
				next = catalog[dep]
			} else if dep == target.Manifest.Name {
				next = target
			} else {
				c := catalog[dep]
				if c == nil {
					return &DependencyError{Message: fmt.Sprintf("module %s needs %s %s, which is neither installed nor available", name, dep, rng)}
				}
				if err := check(name, dep, rng, c.Manifest.Version, "available"); err != nil {
					return err
				}
				next = c
			}
			if next == nil {
				continue
			}
			deps[dep] = next
			if err := visit(next); err != nil {
				return err
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = 2
		if _, ok := installed[name]; !ok || m == target {
			order = append(order, m)
		}
		return nil
	}
	if err := visit(target); err != nil {
		return nil, nil, err
	}
	delete(deps, target.Manifest.Name)
	return order, deps, nil
}

func check(from, dep, rng, version, where string) error {
	v, err := ParseVersion(version)
	if err != nil {
		return &DependencyError{Message: fmt.Sprintf("module %s: dependency %s: %v", from, dep, err)}
	}
	ok, err := v.Satisfies(rng)
	if err != nil {
		return &DependencyError{Message: fmt.Sprintf("module %s: dependency %s: %v", from, dep, err)}
	}
	if !ok {
		return &DependencyError{Message: fmt.Sprintf("module %s needs %s %s, but version %s is %s", from, dep, rng, version, where)}
	}
	return nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return 0
}

// InstallOrder sorts modules so that every module comes after its dependencies;
// it fails on a cycle or a dependency missing from the set.
func InstallOrder(mods map[string]*Module) ([]*Module, error) {
	var out []*Module
	seen := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(mods)) {
		order, _, err := resolve(mods[name], mods, map[string]string{})
		if err != nil {
			return nil, err
		}
		for _, m := range order {
			if !seen[m.Manifest.Name] {
				seen[m.Manifest.Name] = true
				out = append(out, m)
			}
		}
	}
	return out, nil
}

// Dependencies returns every module m depends on, directly or not, from the catalog;
// an error names a missing or incompatible dependency or a cycle.
func Dependencies(m *Module, catalog map[string]*Module) (map[string]*Module, error) {
	_, deps, err := resolve(m, catalog, map[string]string{})
	return deps, err
}
