package module

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/google/uuid"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/dbtx"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/engine/store"
)

// installStep is one module, validated and planned, ready to write.
type installStep struct {
	m      *Module
	parsed *Parsed
	// entities are the definitions to PUT, rewritten for this instance, in relation order.
	entities []preparedEntity
	plans    map[string]*store.Plan
	fresh    bool
}

type preparedEntity struct {
	name, file string
	def        []byte
}

// prepare validates a module and plans every entity change against the live database
// without writing: a dry run of each existing entity's migration (new entities cannot
// fail on rows), refusing blocked or unconfirmed destructive plans.
func (mg *Manager) prepare(ctx context.Context, actor engine.Actor, m *Module, deps map[string]*Module, opts Options) (*installStep, error) {
	parsed, problems := Validate(m, deps)
	if len(problems) > 0 {
		return nil, &Error{Module: m.Manifest.Name, Problems: problems}
	}
	ordered, err := relationOrder(parsed)
	if err != nil {
		return nil, err
	}
	step := &installStep{m: m, parsed: parsed, plans: map[string]*store.Plan{}}
	for _, name := range ordered {
		file := parsed.EntityFile[name]
		def, err := instanceDefinition(m, m.Files[file])
		if err != nil {
			return nil, &Error{Module: m.Manifest.Name, Problems: []Problem{{File: file, Message: err.Error()}}}
		}
		step.entities = append(step.entities, preparedEntity{name: name, file: file, def: def})
		cur, err := mg.Engine.GetEntity(ctx, name)
		if errors.Is(err, engine.ErrNotFound) {
			// A new entity cannot fail on rows. A dry run shows its plan when the
			// entities it relates to exist already; when they are new too, it cannot
			// be planned before they are created, and the definition was checked above.
			if opts.DryRun {
				if plan, err := mg.Engine.PutEntity(ctx, actor, name, def, engine.PutOptions{DryRun: true}); err == nil {
					step.plans[name] = plan
				}
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		if cur.Module != "" && cur.Module != m.Manifest.Name {
			return nil, &StateError{Message: fmt.Sprintf("%s: entity %s belongs to module %s", file, name, cur.Module)}
		}
		plan, err := mg.Engine.PutEntity(ctx, actor, name, def, engine.PutOptions{DryRun: true})
		if err != nil {
			return nil, fmt.Errorf("module %s, %s: %w", m.Manifest.Name, file, err)
		}
		step.plans[name] = plan
		if opts.DryRun {
			continue
		}
		if plan.Blocked {
			return nil, &engine.PlanError{Plan: plan, Reason: fmt.Sprintf("module %s, entity %s: the migration would fail on existing rows; nothing was changed", m.Manifest.Name, name)}
		}
		if plan.Destructive && !opts.Confirm {
			return nil, &engine.PlanError{Plan: plan, Reason: fmt.Sprintf("module %s, entity %s: the migration can lose data; review the plan (?dryRun=1) and repeat with ?confirm=1; nothing was changed", m.Manifest.Name, name)}
		}
	}
	return step, nil
}

// write applies a prepared module: scripts, entities in relation order, roles,
// workflows, then the module row and, on a first install, its seed data. Every write
// joins the transaction ctx carries (apply's).
func (mg *Manager) write(ctx context.Context, actor engine.Actor, s *installStep, opts Options, res *Result) error {
	mf := &s.m.Manifest
	for _, file := range mf.Scripts {
		name := ScriptName(mf.Name, file)
		if _, err := mg.Engine.PutScript(ctx, actor, name, engine.ScriptInput{Source: string(s.m.Files[file]), Module: mf.Name}); err != nil {
			return fmt.Errorf("module %s, %s: %w", mf.Name, file, err)
		}
	}
	for _, e := range s.entities {
		plan, err := mg.Engine.PutEntity(ctx, actor, e.name, e.def, engine.PutOptions{Confirm: opts.Confirm})
		if err != nil {
			return fmt.Errorf("module %s, %s (entity %s): %w", mf.Name, e.file, e.name, err)
		}
		res.Plans[e.name] = plan
	}
	for _, r := range s.parsed.Roles {
		r.Module = mf.Name
		if err := mg.Engine.CheckRole(ctx, r); err != nil {
			return fmt.Errorf("module %s, %s: %w", mf.Name, s.parsed.RoleFile[r.Name], err)
		}
		if err := mg.Auth.PutRole(ctx, r); err != nil {
			return err
		}
	}
	for _, file := range mf.Workflows {
		if mg.Workflows == nil {
			res.Skipped = append(res.Skipped, mf.Name+"/"+file+": no workflow store configured")
			continue
		}
		if err := mg.Workflows.PutWorkflow(ctx, workflowName(s.m.Files[file]), s.m.Files[file]); err != nil {
			return fmt.Errorf("module %s, %s: %w", mf.Name, file, err)
		}
	}
	// Workflow files are kept with the opaque ones: export reads the workflows' names
	// from them (and falls back to them when the store has none).
	opaque := map[string]json.RawMessage{}
	for _, list := range [][]string{mf.Workflows, mf.Forms, mf.Views, mf.Reports} {
		for _, file := range list {
			opaque[file] = s.m.Files[file]
		}
	}
	opaqueJSON, _ := json.Marshal(opaque)
	if _, err := dbtx.Of(ctx, mg.Pool).Exec(ctx, `INSERT INTO tessera.modules (name, version, manifest, files) VALUES ($1, $2, $3, $4)
		ON CONFLICT (name) DO UPDATE SET version = EXCLUDED.version, manifest = EXCLUDED.manifest, files = EXCLUDED.files, updated_at = now()`,
		mf.Name, mf.Version, s.m.Raw, opaqueJSON); err != nil {
		return err
	}
	if s.fresh {
		n, err := mg.loadData(ctx, actor, s.m, mf.Seed)
		res.Records += n
		if err != nil {
			return err
		}
	}
	if opts.Demo {
		n, err := mg.LoadDemo(ctx, actor, s.m)
		res.Records += n
		if err != nil {
			return err
		}
	}
	return nil
}

// LoadDemo loads a module's demo data once: a second call finds it loaded and does
// nothing. It joins the transaction ctx carries, if any.
func (mg *Manager) LoadDemo(ctx context.Context, actor engine.Actor, m *Module) (int, error) {
	db := dbtx.Of(ctx, mg.Pool)
	var loaded bool
	err := db.QueryRow(ctx, `SELECT demo_loaded FROM tessera.modules WHERE name = $1`, m.Manifest.Name).Scan(&loaded)
	if err != nil {
		return 0, fmt.Errorf("module %s: %w", m.Manifest.Name, err)
	}
	if loaded || len(m.Manifest.Demo) == 0 {
		return 0, nil
	}
	n, err := mg.loadData(ctx, actor, m, m.Manifest.Demo)
	if err != nil {
		return n, err
	}
	_, err = db.Exec(ctx, `UPDATE tessera.modules SET demo_loaded = true WHERE name = $1`, m.Manifest.Name)
	return n, err
}

// loadData writes data files through the one write path (hooks, validation,
// autonumbers, record triggers). A record with an "id" keeps it (CreateWithID, so
// loading twice writes nothing twice), which lets other files refer to it. An update
// file patches the records it names.
func (mg *Manager) loadData(ctx context.Context, actor engine.Actor, m *Module, files []DataFile) (int, error) {
	n := 0
	for _, d := range files {
		recs, err := Records(m.Files[d.File])
		if err != nil {
			return n, fmt.Errorf("module %s, %s: %w", m.Manifest.Name, d.File, err)
		}
		for i, rec := range recs {
			idText, _ := rec["id"].(string)
			delete(rec, "id")
			body, _ := json.Marshal(rec)
			var id uuid.UUID
			if idText != "" {
				if id, err = uuid.Parse(idText); err != nil {
					return n, fmt.Errorf("module %s, %s: record %d: id: %w", m.Manifest.Name, d.File, i, err)
				}
			}
			switch {
			case d.Update && id == uuid.Nil:
				return n, fmt.Errorf("module %s, %s: record %d: an update names the record it changes by its id", m.Manifest.Name, d.File, i)
			case d.Update:
				_, err = mg.Engine.Update(ctx, actor, d.Entity, id, body, nil)
			case id != uuid.Nil:
				_, _, err = mg.Engine.CreateWithID(ctx, actor, d.Entity, id, body)
			default:
				_, err = mg.Engine.Create(ctx, actor, d.Entity, body)
			}
			if err != nil {
				return n, fmt.Errorf("module %s, %s: record %d: %w", m.Manifest.Name, d.File, i, err)
			}
			n++
		}
	}
	return n, nil
}

// instanceDefinition rewrites a module's entity definition for storage: x-entity.module
// is the module, and hooks naming a script by its path name the stored script.
// Properties are kept byte for byte: their order is the column order.
func instanceDefinition(m *Module, def []byte) ([]byte, error) {
	return rewriteEntity(def, func(x map[string]json.RawMessage, hooks map[string]string) {
		x["module"], _ = json.Marshal(m.Manifest.Name)
		for hook, s := range hooks {
			if slices.Contains(m.Manifest.Scripts, s) {
				hooks[hook] = ScriptName(m.Manifest.Name, s)
			}
		}
	})
}

// moduleDefinition is the reverse, for export: hooks naming one of the module's stored
// scripts name its file again.
func moduleDefinition(module string, scripts []string, def []byte) ([]byte, error) {
	return rewriteEntity(def, func(_ map[string]json.RawMessage, hooks map[string]string) {
		for hook, s := range hooks {
			for _, file := range scripts {
				if ScriptName(module, file) == s {
					hooks[hook] = file
				}
			}
		}
	})
}

func rewriteEntity(def []byte, fn func(x map[string]json.RawMessage, hooks map[string]string)) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(def, &doc); err != nil {
		return nil, err
	}
	var x map[string]json.RawMessage
	if err := json.Unmarshal(doc["x-entity"], &x); err != nil {
		return nil, fmt.Errorf("x-entity: %w", err)
	}
	hooks := map[string]string{}
	if raw, ok := x["hooks"]; ok {
		if err := json.Unmarshal(raw, &hooks); err != nil {
			return nil, fmt.Errorf("x-entity/hooks: %w", err)
		}
	}
	fn(x, hooks)
	if len(hooks) > 0 {
		x["hooks"], _ = json.Marshal(hooks)
	}
	var err error
	if doc["x-entity"], err = json.Marshal(x); err != nil {
		return nil, err
	}
	return json.Marshal(doc)
}

// relationOrder sorts a module's entities so that every entity comes after the
// entities of the module it relates to (itself excepted): the engine refuses a
// relation to an entity that does not exist yet.
func relationOrder(p *Parsed) ([]string, error) {
	state := map[string]int{}
	var out []string
	var visit func(name string, path []string) error
	visit = func(name string, path []string) error {
		switch state[name] {
		case 1:
			return &Error{Module: p.Module.Manifest.Name, Problems: []Problem{{File: p.EntityFile[name], Pointer: "/properties",
				Message: "relations form a cycle: " + strings.Join(append(path, name), " → ") + "; make one of them a plain uuid field"}}}
		case 2:
			return nil
		}
		state[name] = 1
		for _, target := range relationTargets(p.Entities[name]) {
			if _, ours := p.Entities[target]; ours && target != name {
				if err := visit(target, append(path, name)); err != nil {
					return err
				}
			}
		}
		state[name] = 2
		out = append(out, name)
		return nil
	}
	for _, name := range slices.Sorted(maps.Keys(p.Entities)) {
		if err := visit(name, nil); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func relationTargets(e *schema.Entity) []string {
	var out []string
	for _, f := range e.Fields {
		if f.Relation != nil {
			out = append(out, f.Relation.Entity)
		}
		if f.Child != nil {
			for _, cf := range f.Child.Fields {
				if cf.Relation != nil {
					out = append(out, cf.Relation.Entity)
				}
			}
		}
	}
	return out
}
