package module

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/internal/testpool"
	"github.com/tessera/tessera/workflows"
)

// The tests of this file install modules into a real database, with the real workflow
// store (without Temporal) plugged in as web plugs it in.

var admin = engine.Actor{IsAdmin: true}

type atomicBundle struct {
	t    *testing.T
	ctx  context.Context
	pool *pgxpool.Pool
	eng  *engine.Engine
	mg   *Manager
}

// setupAtomic is a migrated database with a manager whose catalog holds the base
// module, the dependency of the modules these tests install.
func setupAtomic(t *testing.T) *atomicBundle {
	t.Helper()
	ctx := context.Background()
	pool := testpool.New(t)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	eng := engine.New(pool, log)
	builtin := fstest.MapFS{}
	for name, data := range baseModule {
		builtin["base/"+name] = &fstest.MapFile{Data: []byte(data)}
	}
	mg := &Manager{Pool: pool, Engine: eng, Auth: auth.NewService(pool), Builtin: builtin, Log: log,
		Workflows: workflowStore{&workflows.Service{Pool: pool, Engine: eng, Log: log}}}
	return &atomicBundle{t: t, ctx: ctx, pool: pool, eng: eng, mg: mg}
}

type workflowStore struct{ s *workflows.Service }

func (w workflowStore) PutWorkflow(ctx context.Context, name string, def []byte) error {
	_, _, err := w.s.PutDefinition(ctx, admin, name, def)
	return err
}

func (w workflowStore) GetWorkflow(ctx context.Context, name string) ([]byte, error) {
	return w.s.GetWorkflow(ctx, name)
}

var baseModule = map[string]string{
	"module.json": `{"name": "base", "version": "1.0.0", "label": {"en": "Base"},
		"entities": ["entities/tag.json"], "roles": ["roles/tagger.json"]}`,
	"entities/tag.json": `{"type": "object", "x-entity": {"name": "tag"}, "properties": {
		"name": {"type": "string", "x-field-id": "t1"}}}`,
	"roles/tagger.json": `{"label": {"en": "Tagger"}, "entities": {"tag": {"read": true}}}`,
}

// shopFiles is the module under test at a version. Each version changes both
// entities, the script, the role and the workflow; v2 adds a field to each entity.
// seed and demo are the contents of its data files.
func shopFiles(version, seed, demo string) *Module {
	v2 := strings.HasPrefix(version, "2.")
	extra := func(prop string) string {
		if v2 {
			return ", " + prop
		}
		return ""
	}
	suffix, grant, message := "", "", "v1"
	if v2 {
		suffix, grant, message = ` + "!"`, `, "create": true`, "v2"
	}
	return mem(map[string]string{
		"module.json": `{"name": "shop", "version": "` + version + `", "label": {"en": "Shop"}, "dependencies": {"base": "^1.0.0"},
			"entities": ["entities/item.json", "entities/item_note.json"], "scripts": ["scripts/upper.js"],
			"roles": ["roles/clerk.json"], "workflows": ["workflows/item_flow.json"],
			"seed": [{"entity": "item", "file": "seed/items.json"}], "demo": [{"entity": "item", "file": "demo/items.json"}]}`,
		"entities/item.json": `{"type": "object", "x-entity": {"name": "item", "hooks": {"beforeSave": "scripts/upper.js"}},
			"required": ["name"], "properties": {
			"name": {"type": "string", "x-field-id": "i1"},
			"size": {"type": "string", "x-field-id": "i2"},
			"tag":  {"type": "string", "format": "uuid", "x-relation": {"entity": "tag"}, "x-field-id": "i3"}` +
			extra(`"color": {"type": "string", "x-field-id": "i4"}`) + `}}`,
		"entities/item_note.json": `{"type": "object", "x-entity": {"name": "item_note"}, "properties": {
			"item": {"type": "string", "format": "uuid", "x-relation": {"entity": "item"}, "x-field-id": "n1"},
			"text": {"type": "string", "x-field-id": "n2"}` + extra(`"stars": {"type": "integer", "x-field-id": "n3"}`) + `}}`,
		"scripts/upper.js": `if (record.name) record.name = record.name.toUpperCase()` + suffix + `;`,
		"roles/clerk.json": `{"label": {"en": "Clerk"}, "entities": {"item": {"read": true` + grant + `}}}`,
		"workflows/item_flow.json": `{"name": "item_flow", "trigger": {"type": "record", "entity": "item", "on": ["create"]},
			"steps": [{"id": "x", "type": "fail", "message": "` + message + `"}]}`,
		"seed/items.json": seed,
		"demo/items.json": demo,
	})
}

const goodSeed = `[{"id": "0190d1a0-0000-7000-8000-000000000001", "name": "seeded", "size": "big"}]`

// count runs a SELECT count(*)… (or any one-integer query).
func (b *atomicBundle) count(sql string, args ...any) int {
	b.t.Helper()
	var n int
	if err := b.pool.QueryRow(b.ctx, sql, args...).Scan(&n); err != nil {
		b.t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func (b *atomicBundle) text(sql string, args ...any) string {
	b.t.Helper()
	var s string
	if err := b.pool.QueryRow(b.ctx, sql, args...).Scan(&s); err != nil {
		b.t.Fatalf("%s: %v", sql, err)
	}
	return s
}

// itemVersion is the version of item the engine serves (from its cache, if there).
func (b *atomicBundle) itemVersion() int {
	b.t.Helper()
	ent, err := b.eng.GetEntity(b.ctx, "item")
	if err != nil {
		b.t.Fatal(err)
	}
	return ent.Version
}

// A fresh install whose seed data fails (the last thing written) leaves nothing of
// the module nor of the dependency installed with it.
func TestModuleFailedInstallLeavesNothing(t *testing.T) {
	b := setupAtomic(t)
	badSeed := `[{"id": "0190d1a0-0000-7000-8000-000000000001", "name": "seeded", "size": "big"}, {"size": 5}]`
	_, err := b.mg.InstallModule(b.ctx, admin, shopFiles("1.0.0", badSeed, `[]`), Options{})
	var verr *engine.ValidationError
	if !errors.As(err, &verr) || !strings.Contains(err.Error(), "seed/items.json: record 1") {
		t.Fatalf("install: %v", err)
	}
	for what, sql := range map[string]string{
		"tables in schema data": `SELECT count(*) FROM pg_tables WHERE schemaname = 'data'`,
		"entities":              `SELECT count(*) FROM tessera.entities`,
		"modules":               `SELECT count(*) FROM tessera.modules`,
		"scripts":               `SELECT count(*) FROM tessera.scripts`,
		"roles":                 `SELECT count(*) FROM tessera.roles WHERE module <> ''`,
		"workflows":             `SELECT count(*) FROM tessera.workflows`,
		"history":               `SELECT count(*) FROM tessera.record_history`,
	} {
		if n := b.count(sql); n != 0 {
			t.Errorf("%d %s after the failed install", n, what)
		}
	}
	if _, err := b.eng.GetEntity(b.ctx, "item"); !errors.Is(err, engine.ErrNotFound) {
		t.Errorf("the engine still knows item: %v", err)
	}
	// The same module with good data installs.
	if _, err := b.mg.InstallModule(b.ctx, admin, shopFiles("1.0.0", goodSeed, `[]`), Options{}); err != nil {
		t.Fatal(err)
	}
}

// An upgrade whose demo data fails after every entity, script, role and workflow was
// changed leaves the previous version intact, its data included, and the engine's
// caches with it; the same upgrade with good data then applies, keeping the data.
func TestModuleFailedUpgradeLeavesPreviousVersion(t *testing.T) {
	b := setupAtomic(t)
	if _, err := b.mg.InstallModule(b.ctx, admin, shopFiles("1.0.0", goodSeed, `[]`), Options{}); err != nil {
		t.Fatal(err)
	}
	// Writing a record also loads item and the hook script into the engine's caches.
	mine, err := b.eng.Create(b.ctx, admin, "item", []byte(`{"name": "mine", "size": "12"}`))
	if err != nil {
		t.Fatal(err)
	}
	var mineRec struct{ ID string }
	_ = json.Unmarshal(mine, &mineRec)

	_, err = b.mg.UpgradeModule(b.ctx, admin, shopFiles("2.0.0", goodSeed, `[{"name": "demo", "size": 7}]`), Options{Demo: true})
	var verr *engine.ValidationError
	if !errors.As(err, &verr) || !strings.Contains(err.Error(), "demo/items.json: record 0") {
		t.Fatalf("upgrade: %v", err)
	}
	for what, c := range map[string]struct {
		sql  string
		want int
	}{
		"item.color column":      {`SELECT count(*) FROM information_schema.columns WHERE table_schema = 'data' AND table_name = 'item' AND column_name = 'color'`, 0},
		"item_note.stars column": {`SELECT count(*) FROM information_schema.columns WHERE table_schema = 'data' AND table_name = 'item_note' AND column_name = 'stars'`, 0},
		"item version":           {`SELECT current_version FROM tessera.entities WHERE name = 'item'`, 1},
		"item_note version":      {`SELECT current_version FROM tessera.entities WHERE name = 'item_note'`, 1},
		"entity versions":        {`SELECT count(*) FROM tessera.entity_versions`, 3},
		"script version":         {`SELECT current_version FROM tessera.scripts WHERE name = $1`, 1},
		"workflow version":       {`SELECT current_version FROM tessera.workflows WHERE name = 'item_flow'`, 1},
		"clerk grants create":    {`SELECT count(*) FROM tessera.roles WHERE name = 'clerk' AND definition->'entities'->'item' ? 'create'`, 0},
		"demo loaded":            {`SELECT count(*) FROM tessera.modules WHERE name = 'shop' AND demo_loaded`, 0},
		"items":                  {`SELECT count(*) FROM data.item`, 2},
	} {
		var args []any
		if strings.Contains(c.sql, "$1") {
			args = append(args, ScriptName("shop", "scripts/upper.js"))
		}
		if n := b.count(c.sql, args...); n != c.want {
			t.Errorf("%s: %d, want %d", what, n, c.want)
		}
	}
	if v := b.text(`SELECT version FROM tessera.modules WHERE name = 'shop'`); v != "1.0.0" {
		t.Errorf("module row at %s", v)
	}
	if name := b.text(`SELECT name FROM data.item WHERE id = $1`, mineRec.ID); name != "MINE" {
		t.Errorf("mine is now %q", name)
	}
	if v := b.itemVersion(); v != 1 {
		t.Errorf("the engine serves item v%d", v)
	}
	if _, err := b.eng.Create(b.ctx, admin, "item", []byte(`{"name": "x", "color": "red"}`)); err == nil {
		t.Error("the rolled-back field color is writable")
	}

	// While the upgrade's transaction is open, another request (no transaction in its
	// context) still sees version 1, and caches it: the commit must drop it.
	outside := 0
	b.eng.OnHook("item", engine.HookBeforeSave, func(ctx context.Context, ev *engine.HookEvent) error {
		if ev.Record["name"] == "demo" {
			ent, err := b.eng.GetEntity(context.Background(), "item")
			if err != nil {
				return err
			}
			outside = ent.Version
		}
		return nil
	})
	res, err := b.mg.UpgradeModule(b.ctx, admin, shopFiles("2.0.0", goodSeed, `[{"name": "demo", "size": "7"}]`), Options{Demo: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != 1 || outside != 1 {
		t.Fatalf("records %d; version seen outside during the upgrade: %d", res.Records, outside)
	}
	if v := b.itemVersion(); v != 2 {
		t.Fatalf("the engine serves item v%d after the upgrade", v)
	}
	if s, err := b.eng.GetScript(b.ctx, ScriptName("shop", "scripts/upper.js")); err != nil || s.Version != 2 {
		t.Fatalf("the engine serves the script (%v) after the upgrade: %+v", err, s)
	}
	// The demo record ran the new script, read in the transaction.
	if n := b.count(`SELECT count(*) FROM data.item WHERE name = 'DEMO!'`); n != 1 {
		t.Errorf("%d demo records through the new hook", n)
	}
	rec, err := b.eng.Update(b.ctx, admin, "item", uuid.MustParse(mineRec.ID), []byte(`{"color": "red"}`), nil)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	_ = json.Unmarshal(rec, &got)
	if got["size"] != "12" || got["color"] != "red" {
		t.Errorf("after the upgrade: %v", got)
	}
	if v := b.text(`SELECT version FROM tessera.modules WHERE name = 'shop'`); v != "2.0.0" {
		t.Errorf("module row at %s", v)
	}
	if n := b.count(`SELECT current_version FROM tessera.workflows WHERE name = 'item_flow'`); n != 2 {
		t.Errorf("workflow at version %d", n)
	}
}
