package module

import (
	"os"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/tessera/tessera/modules"
)

func TestModuleValidateReportsFileAndPointer(t *testing.T) {
	m, err := Load(os.DirFS("testdata/broken"))
	if err != nil {
		t.Fatal(err)
	}
	catalog, err := LoadAll(modules.FS)
	if err != nil {
		t.Fatal(err)
	}
	deps, err := Dependencies(m, catalog)
	if err != nil {
		t.Fatal(err)
	}
	_, problems := Validate(m, deps)
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	t.Log(strings.Join(got, "\n"))
	want := []string{
		"module.json: /version: ",
		"module.json: /entities/1: file entities/missing.json not found",
		"entities/thing.json: /properties/price: floating-point",
		"entities/thing.json: /properties/account/x-field-id: x-field-id \"t1\" is already used",
		"scripts/bad.js: /line/1/column/",
		"roles/viewer.json: /entities/phantom: entity \"phantom\"",
	}
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("no problem starting with %q", w)
		}
	}
}

func TestModuleValidateReferences(t *testing.T) {
	m := mem(map[string]string{
		"module.json": `{"name": "refs", "version": "1.0.0", "label": {"en": "Refs"}, "entities": ["e.json"], "roles": ["r.json"]}`,
		"e.json": `{"type": "object", "x-entity": {"name": "thing", "hooks": {"beforeSave": "scripts/nope.js"}}, "properties": {
			"owner": {"type": "string", "format": "uuid", "x-relation": {"entity": "ghost"}, "x-field-id": "t1"}}}`,
		"r.json": `{"entities": {"thing": {"read": true, "fields": {"colour": "hidden"}, "rows": "owner =="}}}`,
	})
	_, problems := Validate(m, nil)
	var got []string
	for _, p := range problems {
		got = append(got, p.String())
	}
	for _, w := range []string{
		"e.json: /properties/owner/x-relation/entity: entity \"ghost\"",
		"e.json: /x-entity/hooks/beforeSave: script \"scripts/nope.js\"",
		"r.json: /entities/thing/fields/colour: thing has no field \"colour\"",
		"r.json: /entities/thing/rows: ",
	} {
		if !slices.ContainsFunc(got, func(g string) bool { return strings.HasPrefix(g, w) }) {
			t.Errorf("no problem starting with %q in\n%s", w, strings.Join(got, "\n"))
		}
	}
}

func TestModuleBuiltinsValidate(t *testing.T) {
	catalog, err := LoadAll(modules.FS)
	if err != nil {
		t.Fatal(err)
	}
	if len(catalog) < 9 {
		t.Fatalf("%d built-in modules", len(catalog))
	}
	for name, m := range catalog {
		deps, err := Dependencies(m, catalog)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if _, problems := Validate(m, deps); len(problems) > 0 {
			t.Errorf("%s: %v", name, problems)
		}
	}
	order, err := InstallOrder(catalog)
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, m := range order {
		pos[m.Manifest.Name] = i
	}
	for _, m := range order {
		for dep := range m.Manifest.Dependencies {
			if pos[dep] > pos[m.Manifest.Name] {
				t.Errorf("%s installed before its dependency %s", m.Manifest.Name, dep)
			}
		}
	}
}

func TestModuleDependencyErrors(t *testing.T) {
	mk := func(name, version, deps string) *Module {
		return mem(map[string]string{"module.json": `{"name": "` + name + `", "version": "` + version + `", "label": {"en": "x"}, "dependencies": ` + deps + `}`})
	}
	catalog := map[string]*Module{
		"a": mk("a", "1.0.0", `{"b": "^1.0.0"}`),
		"b": mk("b", "1.2.0", `{"c": "~2.0.0"}`),
		"c": mk("c", "2.0.5", `{"a": ">=1.0.0"}`),
		"d": mk("d", "1.0.0", `{"e": "^1.0.0"}`),
		"f": mk("f", "1.0.0", `{"b": "^2.0.0"}`),
	}
	for name, want := range map[string]string{
		"a": "dependency cycle: a → b → c → a",
		"d": "module d needs e ^1.0.0, which is neither installed nor available",
		"f": "module f needs b ^2.0.0, but version 1.2.0 is available",
	} {
		_, err := Dependencies(catalog[name], catalog)
		if err == nil || err.Error() != want {
			t.Errorf("%s: got %v, want %q", name, err, want)
		}
	}
	// An installed dependency in the wrong version is refused too.
	_, _, err := resolve(mk("g", "1.0.0", `{"b": "^1.3.0"}`), catalog, map[string]string{"b": "1.2.0"})
	if err == nil || !strings.Contains(err.Error(), "version 1.2.0 is installed") {
		t.Errorf("installed incompatible: %v", err)
	}
}

func TestModuleSemver(t *testing.T) {
	for _, c := range []struct {
		v, rng string
		ok     bool
	}{
		{"1.2.3", "^1.0.0", true}, {"2.0.0", "^1.0.0", false}, {"0.2.5", "^0.2.1", true}, {"0.3.0", "^0.2.1", false},
		{"1.2.9", "~1.2.3", true}, {"1.3.0", "~1.2.3", false}, {"1.0.0", ">=1.0.0", true}, {"0.9.9", ">=1.0.0", false},
		{"1.2.3", "1.2.3", true}, {"1.2.4", "1.2.3", false}, {"1.5.0", ">=1.0.0 <2.0.0", true}, {"2.0.0", ">=1.0.0 <2.0.0", false},
		{"3.1.4", "*", true},
	} {
		v, err := ParseVersion(c.v)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := v.Satisfies(c.rng)
		if err != nil || ok != c.ok {
			t.Errorf("%s in %q: %v, %v; want %v", c.v, c.rng, ok, err, c.ok)
		}
	}
	if _, err := ParseVersion("1.0"); err == nil {
		t.Error("1.0 parsed")
	}
}

func TestModuleArchiveRoundTrip(t *testing.T) {
	files := map[string][]byte{"module.json": []byte(`{"name": "x", "version": "1.0.0", "label": {"en": "X"}, "entities": ["entities/a.json"]}`),
		"entities/a.json": []byte(`{}`)}
	data, err := WriteArchive(files)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ReadArchive(data)
	if err != nil {
		t.Fatal(err)
	}
	if m.Manifest.Name != "x" || string(m.Files["entities/a.json"]) != "{}" {
		t.Fatalf("%+v", m)
	}
}

func mem(files map[string]string) *Module {
	fsys := fstest.MapFS{}
	for name, data := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(data)}
	}
	m, err := Load(fsys)
	if err != nil {
		panic(err)
	}
	return m
}
