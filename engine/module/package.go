package module

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
)

// PackageSpec names what an administrator designed on this instance, by stored name,
// to package as a new module (or a new version of one): POST /modules/package and
// `tessera module package`.
type PackageSpec struct {
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	Label        map[string]string `json:"label,omitempty"`
	Description  string            `json:"description,omitempty"`
	Dependencies map[string]string `json:"dependencies,omitempty"`
	Entities     []string          `json:"entities,omitempty"`
	Scripts      []string          `json:"scripts,omitempty"`
	Workflows    []string          `json:"workflows,omitempty"`
	Roles        []string          `json:"roles,omitempty"`
}

// Package packs the current definitions that spec names as a module archive, in the
// format Export writes, so that it installs elsewhere with the same x-field-ids and
// workflow definitions, and installs here by adopting what exists.
//
// Entities get x-entity.module set to the module, and hooks naming a packaged script
// name its file; a script s is packed as scripts/s.js (a name already prefixed with
// the module loses the prefix) and is installed as "<module>.s". A workflow's script
// step naming a packaged script is rewritten to that installed name; one naming a
// script that is neither packaged nor a dependency's is a problem, as is a record
// trigger or step on an entity, or a runAs role, that the module and its dependencies
// do not bring. Definitions that belong to another module are refused: package or
// export that module instead. The result is checked by Validate, the check of
// `tessera module validate`; every problem comes back in one *Error.
func (mg *Manager) Package(ctx context.Context, spec PackageSpec) ([]byte, error) {
	p := &packer{mg: mg, spec: spec, files: map[string][]byte{}, scriptFile: map[string]string{},
		refs: references{entities: map[string]bool{}, roles: map[string]bool{}, scripts: map[string]bool{}}}
	label := spec.Label
	if len(label) == 0 {
		label = map[string]string{"en": spec.Name}
	}
	p.mf = Manifest{Name: spec.Name, Version: spec.Version, Description: spec.Description, Label: label, Dependencies: spec.Dependencies}
	if err := p.scripts(ctx); err != nil {
		return nil, err
	}
	if err := p.entities(ctx); err != nil {
		return nil, err
	}
	if err := p.roles(ctx); err != nil {
		return nil, err
	}
	catalog, err := mg.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	deps, err := Dependencies(&Module{Manifest: p.mf}, catalog)
	if err != nil {
		p.add(ManifestFile, "/dependencies", "%v", err)
	}
	// Workflows come last: their references are checked against the packaged
	// entities, scripts and roles and those of the dependencies.
	if err := p.workflows(ctx, deps); err != nil {
		return nil, err
	}
	raw, _ := json.MarshalIndent(p.mf, "", "  ")
	p.files[ManifestFile] = raw
	m := &Module{Manifest: p.mf, Raw: raw, Files: p.files}
	_, more := Validate(m, deps)
	if problems := append(p.problems, more...); len(problems) > 0 {
		return nil, &Error{Module: spec.Name, Problems: problems}
	}
	return WriteArchive(m.Files)
}

// packer collects a package's files and problems.
type packer struct {
	mg       *Manager
	spec     PackageSpec
	mf       Manifest
	files    map[string][]byte
	problems []Problem
	// scriptFile maps a packaged script's stored name to its file.
	scriptFile map[string]string
	refs       references
}

func (p *packer) add(file, pointer, format string, args ...any) {
	p.problems = append(p.problems, Problem{File: file, Pointer: pointer, Message: fmt.Sprintf(format, args...)})
}

// foreign reports a definition that belongs to a module other than the one packaged.
func (p *packer) foreign(ptr, kind, name, module string) bool {
	if module == "" || module == p.spec.Name {
		return false
	}
	p.add(ManifestFile, ptr, "%s %q belongs to module %s; export that module instead", kind, name, module)
	return true
}

func (p *packer) scripts(ctx context.Context) error {
	for i, name := range p.spec.Scripts {
		ptr := fmt.Sprintf("/scripts/%d", i)
		s, err := p.mg.Engine.GetScript(ctx, name)
		if errors.Is(err, engine.ErrNotFound) {
			p.add(ManifestFile, ptr, "script %q does not exist", name)
			continue
		}
		if err != nil {
			return err
		}
		if p.foreign(ptr, "script", name, s.Module) {
			continue
		}
		file := "scripts/" + strings.TrimPrefix(name, p.spec.Name+".") + ".js"
		if _, dup := p.files[file]; dup {
			p.add(ManifestFile, ptr, "script %q would be packed as %s, which another listed script already is", name, file)
			continue
		}
		p.files[file] = []byte(s.Source)
		p.scriptFile[name] = file
		p.mf.Scripts = append(p.mf.Scripts, file)
	}
	return nil
}

func (p *packer) entities(ctx context.Context) error {
	for i, name := range p.spec.Entities {
		ptr := fmt.Sprintf("/entities/%d", i)
		e, err := p.mg.Engine.GetEntity(ctx, name)
		if errors.Is(err, engine.ErrNotFound) {
			p.add(ManifestFile, ptr, "entity %q does not exist", name)
			continue
		}
		if err != nil {
			return err
		}
		if p.foreign(ptr, "entity", name, e.Module) {
			continue
		}
		file := "entities/" + name + ".json"
		def, err := rewriteEntity(e.Definition, func(x map[string]json.RawMessage, hooks map[string]string) {
			x["module"], _ = json.Marshal(p.spec.Name)
			for hook, s := range hooks {
				if f, ok := p.scriptFile[s]; ok {
					hooks[hook] = f
				}
			}
		})
		if err != nil {
			p.add(file, "", "%v", err)
			continue
		}
		p.files[file] = indent(def)
		p.mf.Entities = append(p.mf.Entities, file)
		p.refs.entities[name] = true
	}
	return nil
}

func (p *packer) roles(ctx context.Context) error {
	for i, name := range p.spec.Roles {
		ptr := fmt.Sprintf("/roles/%d", i)
		r, err := p.mg.Auth.GetRole(ctx, name)
		if errors.Is(err, auth.ErrRoleNotFound) {
			p.add(ManifestFile, ptr, "role %q does not exist", name)
			continue
		}
		if err != nil {
			return err
		}
		if p.foreign(ptr, "role", name, r.Module) {
			continue
		}
		r.Module = ""
		data, _ := json.MarshalIndent(r, "", "  ")
		file := "roles/" + name + ".json"
		p.files[file] = data
		p.mf.Roles = append(p.mf.Roles, file)
		p.refs.roles[name] = true
	}
	return nil
}

func (p *packer) workflows(ctx context.Context, deps map[string]*Module) error {
	if len(p.spec.Workflows) > 0 && p.mg.Workflows == nil {
		p.add(ManifestFile, "/workflows", "this node has no workflow store to read workflows from")
		return nil
	}
	p.addDependencyReferences(deps)
	for i, name := range p.spec.Workflows {
		ptr := fmt.Sprintf("/workflows/%d", i)
		def, err := p.mg.Workflows.GetWorkflow(ctx, name)
		if errors.Is(err, engine.ErrNotFound) {
			p.add(ManifestFile, ptr, "workflow %q does not exist", name)
			continue
		}
		if err != nil {
			return err
		}
		file := "workflows/" + name + ".json"
		def, err = p.workflow(file, def)
		if err != nil {
			p.add(file, "", "%v", err)
			continue
		}
		p.files[file] = def
		p.mf.Workflows = append(p.mf.Workflows, file)
	}
	return nil
}

// references are the names a packaged workflow may use: the packaged entities and
// roles, and the entities, roles and scripts (by stored name) of the dependencies.
type references struct {
	entities, roles, scripts map[string]bool
}

func (p *packer) addDependencyReferences(deps map[string]*Module) {
	refs := p.refs
	for _, d := range deps {
		for _, f := range d.Manifest.Entities {
			refs.entities[entityName(d.Files[f])] = true
		}
		for _, f := range d.Manifest.Roles {
			if r, err := parseRoleFile(f, d.Files[f]); err == nil {
				refs.roles[r.Name] = true
			}
		}
		for _, f := range d.Manifest.Scripts {
			refs.scripts[ScriptName(d.Manifest.Name, f)] = true
		}
	}
}

// workflow checks a stored workflow definition's references and rewrites its script
// steps' packaged scripts to their installed names. A definition that needs no
// rewrite is packed byte for byte, as the author's key order was kept.
func (p *packer) workflow(file string, def []byte) ([]byte, error) {
	refs := p.refs
	dec := json.NewDecoder(bytes.NewReader(def))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if tr, ok := doc["trigger"].(map[string]any); ok {
		if e, ok := tr["entity"].(string); ok && e != "" && !refs.entities[e] {
			p.add(file, "/trigger/entity", "entity %q is neither packaged nor in a module %s depends on", e, p.spec.Name)
		}
	}
	if ra, ok := doc["runAs"].(map[string]any); ok {
		roles, _ := ra["roles"].([]any)
		for i, r := range roles {
			if name, _ := r.(string); !refs.roles[name] {
				p.add(file, fmt.Sprintf("/runAs/roles/%d", i), "role %q is neither packaged nor in a module %s depends on", name, p.spec.Name)
			}
		}
	}
	changed := false
	walkSteps(doc["steps"], "/steps", func(step map[string]any, ptr string) {
		if e, ok := step["entity"].(string); ok && e != "" && !refs.entities[e] {
			p.add(file, ptr+"/entity", "entity %q is neither packaged nor in a module %s depends on", e, p.spec.Name)
		}
		if step["type"] != "script" {
			return
		}
		s, ok := step["script"].(string)
		if !ok || s == "" {
			return
		}
		if f, ok := p.scriptFile[s]; ok {
			if installed := ScriptName(p.spec.Name, f); installed != s {
				step["script"] = installed
				changed = true
			}
			return
		}
		if !refs.scripts[s] {
			p.add(file, ptr+"/script", "script %q is neither packaged nor a script of a module %s depends on; add it to the package's scripts", s, p.spec.Name)
		}
	})
	if !changed {
		return def, nil
	}
	// Expressions keep their < and & readable.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// walkSteps calls fn on every step of a list, nested ones included (branches, cases,
// loops, compensations), with its JSON pointer.
func walkSteps(list any, ptr string, fn func(step map[string]any, ptr string)) {
	steps, _ := list.([]any)
	for i, s := range steps {
		step, ok := s.(map[string]any)
		if !ok {
			continue
		}
		at := fmt.Sprintf("%s/%d", ptr, i)
		fn(step, at)
		for _, key := range []string{"then", "else", "default", "steps", "compensate"} {
			walkSteps(step[key], at+"/"+key, fn)
		}
		for _, key := range []string{"cases", "branches"} {
			groups, _ := step[key].([]any)
			for j, g := range groups {
				if g, ok := g.(map[string]any); ok {
					walkSteps(g["steps"], fmt.Sprintf("%s/%s/%d/steps", at, key, j), fn)
				}
			}
		}
	}
}

// indent formats a JSON document for a module folder; invalid JSON is kept as is.
func indent(data []byte) []byte {
	var buf bytes.Buffer
	if json.Indent(&buf, data, "", "  ") != nil {
		return data
	}
	return buf.Bytes()
}
