// Package module reads, checks, installs, upgrades, uninstalls, exports and imports
// Tessera modules: folders of metadata (entities, scripts, roles, workflows, data)
// described by a module.json manifest (schemas/module.schema.json).
package module

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// ManifestFile is the manifest's name at the root of a module.
const ManifestFile = "module.json"

// Manifest is module.json.
type Manifest struct {
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	Description  string            `json:"description,omitempty"`
	Label        map[string]string `json:"label"`
	Dependencies map[string]string `json:"dependencies,omitempty"`
	Entities     []string          `json:"entities,omitempty"`
	Scripts      []string          `json:"scripts,omitempty"`
	Roles        []string          `json:"roles,omitempty"`
	Workflows    []string          `json:"workflows,omitempty"`
	Forms        []string          `json:"forms,omitempty"`
	Views        []string          `json:"views,omitempty"`
	Reports      []string          `json:"reports,omitempty"`
	Seed         []DataFile        `json:"seed,omitempty"`
	Demo         []DataFile        `json:"demo,omitempty"`
}

// DataFile is a file of records for one entity: new records, or with Update, merge
// patches of existing ones named by their id.
type DataFile struct {
	Entity string `json:"entity"`
	File   string `json:"file"`
	Update bool   `json:"update,omitempty"`
}

// Title is the English label, or the name.
func (m *Manifest) Title() string {
	if t := m.Label["en"]; t != "" {
		return t
	}
	return m.Name
}

// Module is a loaded module: its manifest and the bytes of every file it lists.
type Module struct {
	Manifest Manifest
	// Raw is module.json as read, for schema validation and storage.
	Raw []byte
	// Files holds the listed files that could be read, by module-relative path.
	Files map[string][]byte
}

// Problem is one defect of a module, located by file and JSON pointer.
type Problem struct {
	File    string `json:"file"`
	Pointer string `json:"pointer"`
	Message string `json:"message"`
}

func (p Problem) String() string { return p.File + ": " + p.Pointer + ": " + p.Message }

// Error lists every problem found in a module.
type Error struct {
	Module   string
	Problems []Problem
}

func (e *Error) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.String()
	}
	return fmt.Sprintf("module %s: %s", e.Module, strings.Join(msgs, "; "))
}

// Load reads a module from the root of fsys. Only an unreadable or unparsable
// module.json is an error; listed files that are missing are reported by Validate,
// together with every other problem.
func Load(fsys fs.FS) (*Module, error) {
	raw, err := fs.ReadFile(fsys, ManifestFile)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ManifestFile, err)
	}
	m := &Module{Raw: raw, Files: map[string][]byte{}}
	if err := json.Unmarshal(raw, &m.Manifest); err != nil {
		return nil, &Error{Problems: []Problem{{File: ManifestFile, Pointer: "", Message: "not valid JSON: " + err.Error()}}}
	}
	m.Files[ManifestFile] = raw
	for _, p := range m.listed() {
		// A path escaping the module is refused by the schema; never read it.
		if !fs.ValidPath(p) {
			continue
		}
		data, err := fs.ReadFile(fsys, p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", p, err)
		}
		m.Files[p] = data
	}
	return m, nil
}

// listed is every file path the manifest names, in manifest order.
func (m *Module) listed() []string {
	mf := &m.Manifest
	var out []string
	for _, list := range [][]string{mf.Entities, mf.Scripts, mf.Roles, mf.Workflows, mf.Forms, mf.Views, mf.Reports} {
		out = append(out, list...)
	}
	for _, d := range append(append([]DataFile{}, mf.Seed...), mf.Demo...) {
		out = append(out, d.File)
	}
	return out
}

// ScriptName is the stored name of a module script file: scripts/totals.js in module
// sales is "sales.totals". Hooks may name a script by path inside the module; the
// installer rewrites them to these names, which is what the engine looks up.
func ScriptName(module, file string) string {
	return module + "." + strings.TrimSuffix(path.Base(file), ".js")
}

// LoadAll loads every module folder directly under the root of fsys (a catalog such
// as the embedded modules/ folder), by name.
func LoadAll(fsys fs.FS) (map[string]*Module, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, err
	}
	out := map[string]*Module{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sub, err := fs.Sub(fsys, e.Name())
		if err != nil {
			return nil, err
		}
		if _, err := fs.Stat(sub, ManifestFile); err != nil {
			continue
		}
		m, err := Load(sub)
		if err != nil {
			return nil, fmt.Errorf("module folder %s: %w", e.Name(), err)
		}
		out[m.Manifest.Name] = m
	}
	return out, nil
}
