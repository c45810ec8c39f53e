package module

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/query"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/engine/script"
)

// checker compiles scripts for validation only; one runtime is enough.
var checker = script.NewRunner(1)

// Parsed is a module with its definitions parsed: what Validate found usable.
type Parsed struct {
	Module   *Module
	Entities map[string]*schema.Entity // by entity name
	// EntityFile maps an entity name to its file, for messages.
	EntityFile map[string]string
	Roles      []auth.Role
	RoleFile   map[string]string
}

// Validate checks a module and returns every problem found, each with its file and
// a JSON pointer into it. deps holds the modules this one depends on (directly or
// not), by name: relations and role grants may name their entities.
func Validate(m *Module, deps map[string]*Module) (*Parsed, []Problem) {
	v := &validator{m: m, deps: deps, p: &Parsed{Module: m, Entities: map[string]*schema.Entity{},
		EntityFile: map[string]string{}, RoleFile: map[string]string{}}}
	v.manifest()
	v.entities()
	v.scripts()
	v.references()
	v.roles()
	v.opaque()
	v.data(m.Manifest.Seed, "/seed")
	v.data(m.Manifest.Demo, "/demo")
	return v.p, v.problems
}

type validator struct {
	m        *Module
	deps     map[string]*Module
	p        *Parsed
	problems []Problem
}

func (v *validator) add(file, pointer, format string, args ...any) {
	v.problems = append(v.problems, Problem{File: file, Pointer: pointer, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) manifest() {
	for _, p := range schema.ValidateMeta("module.schema.json", v.m.Raw) {
		v.add(ManifestFile, p.Path, "%s", p.Message)
	}
	mf := &v.m.Manifest
	for _, dep := range slices.Sorted(maps.Keys(mf.Dependencies)) {
		if dep == mf.Name {
			v.add(ManifestFile, "/dependencies/"+dep, "a module cannot depend on itself")
		}
	}
	check := func(list []string, ptr string) {
		for i, f := range list {
			if _, ok := v.m.Files[f]; !ok {
				v.add(ManifestFile, fmt.Sprintf("%s/%d", ptr, i), "file %s not found in the module", f)
			}
		}
	}
	check(mf.Entities, "/entities")
	check(mf.Scripts, "/scripts")
	check(mf.Roles, "/roles")
	check(mf.Workflows, "/workflows")
	check(mf.Forms, "/forms")
	check(mf.Views, "/views")
	check(mf.Reports, "/reports")
	for i, d := range mf.Seed {
		check([]string{d.File}, fmt.Sprintf("/seed/%d/file", i))
	}
	for i, d := range mf.Demo {
		check([]string{d.File}, fmt.Sprintf("/demo/%d/file", i))
	}
}

func (v *validator) entities() {
	for _, file := range v.m.Manifest.Entities {
		data, ok := v.m.Files[file]
		if !ok {
			continue
		}
		ent, err := schema.Parse(data)
		if err != nil {
			var de *schema.DefinitionError
			if errors.As(err, &de) {
				for _, p := range de.Problems {
					v.add(file, p.Path, "%s", p.Message)
				}
			} else {
				v.add(file, "", "%v", err)
			}
			continue
		}
		if ent.Module != "" && ent.Module != v.m.Manifest.Name {
			v.add(file, "/x-entity/module", "is %q but the module is %q", ent.Module, v.m.Manifest.Name)
		}
		if other, dup := v.p.EntityFile[ent.Name]; dup {
			v.add(file, "/x-entity/name", "entity %q is also defined in %s", ent.Name, other)
			continue
		}
		v.p.Entities[ent.Name] = ent
		v.p.EntityFile[ent.Name] = file
	}
}

func (v *validator) scripts() {
	for _, file := range v.m.Manifest.Scripts {
		src, ok := v.m.Files[file]
		if !ok {
			continue
		}
		if err := checker.Check(ScriptName(v.m.Manifest.Name, file), string(src), script.ModeHook); err != nil {
			var se *script.Error
			if errors.As(err, &se) {
				v.add(file, fmt.Sprintf("/line/%d/column/%d", se.Line, se.Column), "%s", se.Message)
			} else {
				v.add(file, "", "%v", err)
			}
		}
	}
}

// knownEntity reports whether an entity is defined by this module or a dependency.
func (v *validator) knownEntity(name string) bool {
	if _, ok := v.p.Entities[name]; ok {
		return true
	}
	// An entity of this module that did not parse is reported once, in its own
	// file, not again at every reference to it.
	for _, file := range v.m.Manifest.Entities {
		if entityName(v.m.Files[file]) == name {
			return true
		}
	}
	for _, d := range v.deps {
		for _, file := range d.Manifest.Entities {
			if entityName(d.Files[file]) == name {
				return true
			}
		}
	}
	return false
}

// knownScript reports whether a hook's value names a script of this module (by path
// or stored name) or of a dependency (by stored name).
func (v *validator) knownScript(name string) bool {
	mf := &v.m.Manifest
	for _, f := range mf.Scripts {
		if f == name || ScriptName(mf.Name, f) == name {
			return true
		}
	}
	for _, d := range v.deps {
		for _, f := range d.Manifest.Scripts {
			if ScriptName(d.Manifest.Name, f) == name {
				return true
			}
		}
	}
	return false
}

// entityName reads x-entity.name without a full parse.
func entityName(def []byte) string {
	var doc struct {
		X struct {
			Name string `json:"name"`
		} `json:"x-entity"`
	}
	_ = json.Unmarshal(def, &doc)
	return doc.X.Name
}

func (v *validator) references() {
	for _, name := range slices.Sorted(maps.Keys(v.p.Entities)) {
		ent, file := v.p.Entities[name], v.p.EntityFile[name]
		check := func(f *schema.Field, ptr string) {
			if f.Relation != nil && !f.Removed && !v.knownEntity(f.Relation.Entity) {
				v.add(file, ptr+"/x-relation/entity", "entity %q is neither in module %s nor in a module it depends on", f.Relation.Entity, v.m.Manifest.Name)
			}
		}
		for _, f := range ent.Fields {
			check(f, "/properties/"+f.Name)
			if f.Child != nil {
				for _, cf := range f.Child.Fields {
					check(cf, "/properties/"+f.Name+"/items/properties/"+cf.Name)
				}
			}
		}
		for _, hook := range slices.Sorted(maps.Keys(ent.Hooks)) {
			if s := ent.Hooks[hook]; !v.knownScript(s) {
				v.add(file, "/x-entity/hooks/"+hook, "script %q is not among the module's scripts", s)
			}
		}
	}
}

func (v *validator) roles() {
	for _, file := range v.m.Manifest.Roles {
		data, ok := v.m.Files[file]
		if !ok {
			continue
		}
		r, err := parseRoleFile(file, data)
		if err != nil {
			var fe *auth.FieldError
			if errors.As(err, &fe) {
				v.add(file, fe.Field, "%s", fe.Message)
			} else {
				v.add(file, "", "%v", err)
			}
			continue
		}
		for _, name := range slices.Sorted(maps.Keys(r.Entities)) {
			g := r.Entities[name]
			base := "/entities/" + name
			if name == auth.AnyEntity {
				continue
			}
			if !v.knownEntity(name) {
				v.add(file, base, "entity %q is neither in module %s nor in a module it depends on", name, v.m.Manifest.Name)
				continue
			}
			if ent := v.p.Entities[name]; ent != nil {
				for _, field := range slices.Sorted(maps.Keys(g.Fields)) {
					if ent.Field(field) == nil {
						v.add(file, base+"/fields/"+field, "%s has no field %q", name, field)
					}
				}
			}
			if g.Rows != "" {
				if _, err := query.Parse(g.Rows); err != nil {
					v.add(file, base+"/rows", "%v", err)
				}
			}
		}
		v.p.Roles = append(v.p.Roles, r)
		v.p.RoleFile[r.Name] = file
	}
}

// parseRoleFile reads a role; its name is the file's "name" or the file name.
func parseRoleFile(file string, data []byte) (auth.Role, error) {
	var head struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(data, &head)
	name := head.Name
	if name == "" {
		name = strings.TrimSuffix(path.Base(file), ".json")
	}
	return auth.ParseRole(name, data)
}

// opaque checks that workflows, forms, views and reports are JSON objects: they are
// stored as they are (workflows are checked again by the workflow store).
func (v *validator) opaque() {
	mf := &v.m.Manifest
	for _, list := range [][]string{mf.Workflows, mf.Forms, mf.Views, mf.Reports} {
		for _, file := range list {
			data, ok := v.m.Files[file]
			if !ok {
				continue
			}
			var obj map[string]json.RawMessage
			if err := json.Unmarshal(data, &obj); err != nil {
				v.add(file, "", "not a JSON object: %v", err)
				continue
			}
			if slices.Contains(mf.Workflows, file) {
				var name string
				if json.Unmarshal(obj["name"], &name) != nil || name == "" {
					v.add(file, "/name", "a workflow needs a name")
				}
			}
		}
	}
}

func (v *validator) data(files []DataFile, ptr string) {
	for i, d := range files {
		if !v.knownEntity(d.Entity) {
			v.add(ManifestFile, fmt.Sprintf("%s/%d/entity", ptr, i), "entity %q is neither in module %s nor in a module it depends on", d.Entity, v.m.Manifest.Name)
		}
		data, ok := v.m.Files[d.File]
		if !ok {
			continue
		}
		if _, err := Records(data); err != nil {
			v.add(d.File, "", "%v", err)
		}
	}
}

// Records decodes a data file: a JSON array of objects, or one object a line (NDJSON).
// Numbers stay json.Number so decimals are not rounded through float64.
func Records(data []byte) ([]map[string]any, error) {
	data = bytes.TrimSpace(data)
	if len(data) == 0 {
		return nil, nil
	}
	if data[0] == '[' {
		var out []map[string]any
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		if err := dec.Decode(&out); err != nil {
			return nil, fmt.Errorf("not a JSON array of records: %w", err)
		}
		return out, nil
	}
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var rec map[string]any
		dec := json.NewDecoder(bytes.NewReader(text))
		dec.UseNumber()
		if err := dec.Decode(&rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		out = append(out, rec)
	}
	return out, sc.Err()
}
