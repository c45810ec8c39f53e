package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/dbtx"
	"github.com/tessera/tessera/engine/store"
)

// WorkflowInstaller stores a workflow definition as a new version, and reads a
// workflow's current definition back for export and packaging (an error wrapping
// engine.ErrNotFound when there is none). The engine knows nothing of Temporal, so
// the workflow store is handed in by the layer that has it (workflows.Service); nil
// installs no workflows and says so in the result.
type WorkflowInstaller interface {
	PutWorkflow(ctx context.Context, name string, definition []byte) error
	GetWorkflow(ctx context.Context, name string) ([]byte, error)
}

// Manager installs, upgrades and uninstalls modules in one database.
type Manager struct {
	Pool      *pgxpool.Pool
	Engine    *engine.Engine
	Auth      *auth.Service
	Builtin   fs.FS // folders of built-in modules (modules.FS); nil for none
	Workflows WorkflowInstaller
	Log       *slog.Logger
}

// Options control an install or upgrade.
type Options struct {
	// DryRun validates, resolves and computes every changed entity's migration plan,
	// and changes nothing.
	DryRun bool
	// Confirm allows destructive migration steps.
	Confirm bool
	// Demo loads the modules' demo data too.
	Demo bool
}

// Result tells what an install or upgrade did (or would do, for a dry run).
type Result struct {
	DryRun    bool                   `json:"dry_run,omitempty"`
	Installed []string               `json:"installed"` // modules, dependencies first, as name@version
	Plans     map[string]*store.Plan `json:"plans"`     // entity → migration plan
	Records   int                    `json:"records"`   // seed and demo records written
	Skipped   []string               `json:"skipped,omitempty"`
}

// Item is one module as GET /modules lists it.
type Item struct {
	Name             string            `json:"name"`
	Version          string            `json:"version"`
	Title            string            `json:"title"`
	Label            map[string]string `json:"label,omitempty"`
	Description      string            `json:"description,omitempty"`
	Depends          map[string]string `json:"depends"`
	Installed        bool              `json:"installed"`
	InstalledVersion *string           `json:"installed_version"`
}

// StateError refuses an operation the module's state does not allow (install of an
// installed module, uninstall while dependants are installed…).
type StateError struct{ Message string }

func (e *StateError) Error() string { return e.Message }

// ErrUnknown is returned for a module neither available nor installed.
var ErrUnknown = errors.New("unknown module")

// Catalog is every module available to install: the built-in ones and uploaded
// packages; for a name offered by both, the higher version.
func (mg *Manager) Catalog(ctx context.Context) (map[string]*Module, error) {
	out := map[string]*Module{}
	if mg.Builtin != nil {
		b, err := LoadAll(mg.Builtin)
		if err != nil {
			return nil, err
		}
		out = b
	}
	rows, err := mg.Pool.Query(ctx, `SELECT archive FROM tessera.module_packages`)
	if err != nil {
		return nil, err
	}
	archives, err := pgx.CollectRows(rows, pgx.RowTo[[]byte])
	if err != nil {
		return nil, err
	}
	for _, a := range archives {
		m, err := ReadArchive(a)
		if err != nil {
			return nil, err
		}
		if cur := out[m.Manifest.Name]; cur == nil || newer(m, cur) {
			out[m.Manifest.Name] = m
		}
	}
	return out, nil
}

func newer(a, b *Module) bool {
	va, _ := ParseVersion(a.Manifest.Version)
	vb, _ := ParseVersion(b.Manifest.Version)
	return va.Compare(vb) > 0
}

// Installed maps each installed module to its version.
func (mg *Manager) Installed(ctx context.Context) (map[string]string, error) {
	rows, err := mg.Pool.Query(ctx, `SELECT name, version FROM tessera.modules`)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	var name, version string
	_, err = pgx.ForEachRow(rows, []any{&name, &version}, func() error { out[name] = version; return nil })
	return out, err
}

// installedManifests maps each installed module to the manifest it was installed from.
func (mg *Manager) installedManifests(ctx context.Context) (map[string]Manifest, error) {
	rows, err := mg.Pool.Query(ctx, `SELECT name, manifest FROM tessera.modules`)
	if err != nil {
		return nil, err
	}
	out := map[string]Manifest{}
	var (
		name string
		raw  []byte
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &raw}, func() error {
		var mf Manifest
		if err := json.Unmarshal(raw, &mf); err != nil {
			return err
		}
		out[name] = mf
		return nil
	})
	return out, err
}

// List answers GET /modules: available and installed modules, by name.
func (mg *Manager) List(ctx context.Context) ([]Item, error) {
	catalog, err := mg.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	manifests, err := mg.installedManifests(ctx)
	if err != nil {
		return nil, err
	}
	items := map[string]*Item{}
	add := func(mf Manifest) *Item {
		deps := mf.Dependencies
		if deps == nil {
			deps = map[string]string{}
		}
		return &Item{Name: mf.Name, Version: mf.Version, Title: mf.Title(), Label: mf.Label, Description: mf.Description, Depends: deps}
	}
	for name, m := range catalog {
		items[name] = add(m.Manifest)
	}
	for name, mf := range manifests {
		it := items[name]
		if it == nil {
			it = add(mf)
			items[name] = it
		}
		v := mf.Version
		it.Installed, it.InstalledVersion = true, &v
	}
	out := make([]Item, 0, len(items))
	for _, name := range slices.Sorted(maps.Keys(items)) {
		out = append(out, *items[name])
	}
	return out, nil
}

// Install installs a module from the catalog, with the dependencies it needs that
// are not installed yet.
func (mg *Manager) Install(ctx context.Context, actor engine.Actor, name string, opts Options) (*Result, error) {
	m, err := mg.fromCatalog(ctx, name)
	if err != nil {
		return nil, err
	}
	return mg.InstallModule(ctx, actor, m, opts)
}

// fromCatalog finds a built-in or uploaded module by name.
func (mg *Manager) fromCatalog(ctx context.Context, name string) (*Module, error) {
	catalog, err := mg.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	m := catalog[name]
	if m == nil {
		return nil, fmt.Errorf("module %q: %w", name, ErrUnknown)
	}
	return m, nil
}

// InstallModule installs the given module (from a folder or an archive) and the
// catalog dependencies it needs.
func (mg *Manager) InstallModule(ctx context.Context, actor engine.Actor, m *Module, opts Options) (*Result, error) {
	installed, err := mg.Installed(ctx)
	if err != nil {
		return nil, err
	}
	if v, ok := installed[m.Manifest.Name]; ok {
		return nil, &StateError{Message: fmt.Sprintf("module %s %s is already installed; upgrade it instead", m.Manifest.Name, v)}
	}
	return mg.apply(ctx, actor, m, installed, opts)
}

// Upgrade moves an installed module to the catalog's version of it.
func (mg *Manager) Upgrade(ctx context.Context, actor engine.Actor, name string, opts Options) (*Result, error) {
	m, err := mg.fromCatalog(ctx, name)
	if err != nil {
		return nil, err
	}
	return mg.UpgradeModule(ctx, actor, m, opts)
}

// UpgradeModule moves an installed module to the given version of it. A lower version
// is refused, and so is one that an installed dependant's range does not accept.
func (mg *Manager) UpgradeModule(ctx context.Context, actor engine.Actor, m *Module, opts Options) (*Result, error) {
	name := m.Manifest.Name
	installed, err := mg.Installed(ctx)
	if err != nil {
		return nil, err
	}
	cur, ok := installed[name]
	if !ok {
		return nil, &StateError{Message: fmt.Sprintf("module %s is not installed; install it first", name)}
	}
	from, err := ParseVersion(cur)
	if err != nil {
		return nil, err
	}
	to, err := ParseVersion(m.Manifest.Version)
	if err != nil {
		return nil, &Error{Module: name, Problems: []Problem{{File: ManifestFile, Pointer: "/version", Message: err.Error()}}}
	}
	if to.Compare(from) < 0 {
		return nil, &StateError{Message: fmt.Sprintf("module %s %s is installed; %s is older (downgrades are not supported)", name, cur, m.Manifest.Version)}
	}
	manifests, err := mg.installedManifests(ctx)
	if err != nil {
		return nil, err
	}
	for _, other := range slices.Sorted(maps.Keys(manifests)) {
		if rng, ok := manifests[other].Dependencies[name]; ok {
			if err := check(other, name, rng, m.Manifest.Version, "the upgrade's"); err != nil {
				return nil, err
			}
		}
	}
	return mg.apply(ctx, actor, m, installed, opts)
}

// apply installs or upgrades target and the dependencies it needs, dependencies first.
//
// A failed install or upgrade leaves the previous version intact. Every module is
// validated and every entity change is planned (a dry run against the live rows)
// first, so invalid definitions, missing dependencies and migrations that would fail
// on existing rows or need confirmation are refused with a plan before anything is
// written. Then everything of every module (scripts, entities and their tables,
// roles, workflows, the module rows, seed and demo data) is written in one
// transaction: an error at any point, say a seed record that does not validate or a
// lost connection, rolls all of it back. Other requests see none of it until the
// commit: the engine keeps uncommitted definitions out of its caches, and requests on
// a table being changed wait for the commit (DDL locks the table). Only Temporal
// schedules of the modules' workflows are synced after the commit; a failure there
// is returned, with the modules installed.
func (mg *Manager) apply(ctx context.Context, actor engine.Actor, target *Module, installed map[string]string, opts Options) (_ *Result, err error) {
	// One module operation at a time across nodes: two installs interleaving their
	// entity changes would each plan against a state the other is changing.
	if !opts.DryRun {
		conn, err := mg.Pool.Acquire(ctx)
		if err != nil {
			return nil, err
		}
		defer conn.Release()
		if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock(hashtext('tessera.modules'))"); err != nil {
			return nil, err
		}
		defer conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock(hashtext('tessera.modules'))")
		// What is installed may have changed while we waited.
		if installed, err = mg.Installed(ctx); err != nil {
			return nil, err
		}
	}
	catalog, err := mg.Catalog(ctx)
	if err != nil {
		return nil, err
	}
	order, _, err := resolve(target, catalog, installed)
	if err != nil {
		return nil, err
	}
	res := &Result{DryRun: opts.DryRun, Installed: []string{}, Plans: map[string]*store.Plan{}}
	var steps []*installStep
	// Validate and plan every module before writing anything.
	for _, m := range order {
		_, deps, err := resolve(m, catalog, installed)
		if err != nil {
			return nil, err
		}
		step, err := mg.prepare(ctx, actor, m, deps, opts)
		if err != nil {
			return nil, err
		}
		_, wasInstalled := installed[m.Manifest.Name]
		step.fresh = !wasInstalled
		for name, p := range step.plans {
			res.Plans[name] = p
		}
		steps = append(steps, step)
	}
	for _, s := range steps {
		res.Installed = append(res.Installed, s.m.Manifest.Name+"@"+s.m.Manifest.Version)
	}
	if opts.DryRun {
		return res, nil
	}
	err = dbtx.Run(ctx, mg.Pool, func(ctx context.Context) error {
		for _, s := range steps {
			if err := mg.write(ctx, actor, s, opts, res); err != nil {
				return err
			}
		}
		return nil
	})
	return res, err
}

// Uninstall removes an installed module. Its roles go; its entities, their tables
// and data and its scripts stay (a later install picks them up again) unless purge,
// which drops the tables and the definitions. Refused while an installed module
// depends on it.
func (mg *Manager) Uninstall(ctx context.Context, name string, purge bool) error {
	manifests, err := mg.installedManifests(ctx)
	if err != nil {
		return err
	}
	if _, ok := manifests[name]; !ok {
		return &StateError{Message: fmt.Sprintf("module %s is not installed", name)}
	}
	var dependants []string
	for _, other := range slices.Sorted(maps.Keys(manifests)) {
		if _, ok := manifests[other].Dependencies[name]; ok {
			dependants = append(dependants, other)
		}
	}
	if len(dependants) > 0 {
		return &StateError{Message: fmt.Sprintf("module %s is needed by installed modules %v; uninstall them first", name, dependants)}
	}
	tx, err := mg.Pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, `DELETE FROM tessera.roles WHERE module = $1`, name); err != nil {
		return err
	}
	if purge {
		if err := purgeEntities(ctx, tx, name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tessera.scripts WHERE module = $1`, name); err != nil {
			return err
		}
	}
	if _, err := tx.Exec(ctx, `DELETE FROM tessera.modules WHERE name = $1`, name); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// purgeEntities drops the module's tables (with their lines tables) and their
// definitions, in the caller's transaction: all or nothing. A table another module's
// or a user's entity still refers to makes the purge fail rather than cascade.
func purgeEntities(ctx context.Context, tx pgx.Tx, module string) error {
	rows, err := tx.Query(ctx, `SELECT e.name, v.definition FROM tessera.entities e
		JOIN tessera.entity_versions v ON v.entity = e.name AND v.version = e.current_version
		WHERE e.module = $1 ORDER BY e.name`, module)
	if err != nil {
		return err
	}
	type ent struct {
		name string
		def  []byte
	}
	ents, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (ent, error) {
		var e ent
		err := r.Scan(&e.name, &e.def)
		return e, err
	})
	if err != nil {
		return err
	}
	var tables []string
	for _, e := range ents {
		tables = append(tables, childTables(e.def)...)
	}
	for _, e := range ents {
		tables = append(tables, e.name)
	}
	if len(tables) > 0 {
		// One statement: references among the dropped tables do not block it, and
		// a reference from any other table does (no CASCADE).
		quoted := make([]string, len(tables))
		for i, t := range tables {
			quoted[i] = store.Table(t)
		}
		if _, err := tx.Exec(ctx, "DROP TABLE IF EXISTS "+strings.Join(quoted, ", ")); err != nil {
			return fmt.Errorf("purge %s: %w", module, err)
		}
	}
	for _, e := range ents {
		if _, err := tx.Exec(ctx, `DELETE FROM tessera.entities WHERE name = $1`, e.name); err != nil {
			return err
		}
		if _, err := tx.Exec(ctx, `DELETE FROM tessera.autonumbers WHERE entity = $1`, e.name); err != nil {
			return err
		}
		// Other nodes (and this one, through Engine.Listen) drop their cached copy.
		if _, err := tx.Exec(ctx, "SELECT pg_notify('tessera_entities', $1)", e.name); err != nil {
			return err
		}
	}
	return nil
}

// childTables are the lines tables of a definition, read from its x-child keywords.
func childTables(def []byte) []string {
	var doc struct {
		Properties map[string]struct {
			Child *struct {
				Entity string `json:"entity"`
			} `json:"x-child"`
		} `json:"properties"`
	}
	_ = json.Unmarshal(def, &doc)
	var out []string
	for _, p := range doc.Properties {
		if p.Child != nil {
			out = append(out, p.Child.Entity)
		}
	}
	sort.Strings(out)
	return out
}
