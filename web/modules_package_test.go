package web

import (
	"context"
	"encoding/json"
	"io/fs"
	"strings"
	"testing"

	"github.com/tessera/tessera/engine/module"
	"github.com/tessera/tessera/engine/store"
	"github.com/tessera/tessera/modules"
)

// What an administrator designs on instance A, outside any module: a deal with its
// notes, a hook, a role, and a workflow that scores won deals with a stored script.
const (
	designedDeal = `{"type": "object", "x-entity": {"name": "deal", "label": {"en": "Deal"},
		"hooks": {"beforeSave": "deal_rules"}}, "required": ["title"], "properties": {
		"title":  {"type": "string", "x-field-id": "dl1"},
		"amount": {"type": "string", "format": "decimal", "x-field-id": "dl2"},
		"stage":  {"type": "string", "enum": ["open", "won", "lost"], "x-field-id": "dl3"}}}`
	designedNote = `{"type": "object", "x-entity": {"name": "deal_note"}, "properties": {
		"deal": {"type": "string", "format": "uuid", "x-relation": {"entity": "deal"}, "x-field-id": "dn1"},
		"text": {"type": "string", "x-field-id": "dn2"}}}`
	designedRole     = `{"label": {"en": "Deal desk"}, "entities": {"deal": {"read": true, "update": true}, "deal_note": {"read": true}}}`
	designedWorkflow = `{"name": "deal_won", "title": "Deal won",
		"trigger": {"type": "record", "entity": "deal", "on": ["update"], "when": "stage == \"won\""},
		"runAs": {"roles": ["deal_desk"]},
		"steps": [
			{"id": "score", "type": "script", "script": "deal_score", "with": {"amount": "$trigger.record.amount"}},
			{"id": "note", "type": "create", "entity": "deal_note", "data": {"deal": "$trigger.id", "text": "won"}}]}`
)

// packageBody is the request that packs the design as custom_sales at a version.
func packageBody(version string) map[string]any {
	return map[string]any{"name": "custom_sales", "version": version, "label": map[string]string{"en": "Custom sales"},
		"entities": []string{"deal", "deal_note"}, "scripts": []string{"deal_rules", "deal_score"},
		"workflows": []string{"deal_won"}, "roles": []string{"deal_desk"}}
}

// designOnA builds the design through the API, as the browser does.
func designOnA(b *testBundle) {
	b.t.Helper()
	b.putScript("deal_rules", `if (record.title) record.title = record.title.trim().toUpperCase();`)
	b.putScript("deal_score", `return {score: Number(args.amount || 0) > 1000 ? "big" : "small"};`)
	b.putEntity(designedDeal)
	b.putEntity(designedNote)
	b.expect("PUT", "/api/v1/roles/deal_desk", designedRole, 200, nil)
	b.expect("PUT", "/api/v1/workflows/deal_won", designedWorkflow, 201, nil)
}

// entityFields is an entity's definition and its fields' names and ids.
func (b *testBundle) entityFields(name string) (string, string) {
	b.t.Helper()
	var e struct {
		Module string
		Fields []struct{ Name, ID string }
	}
	b.expect("GET", "/api/v1/entities/"+name, nil, 200, &e)
	f, _ := json.Marshal(e.Fields)
	return e.Module, string(f)
}

func (b *testBundle) workflowDefinition(name string) json.RawMessage {
	b.t.Helper()
	var w struct{ Definition json.RawMessage }
	b.expect("GET", "/api/v1/workflows/"+name, nil, 200, &w)
	return w.Definition
}

func (b *testBundle) tables() int {
	b.t.Helper()
	var n int
	if err := b.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE schemaname = 'data'`).Scan(&n); err != nil {
		b.t.Fatal(err)
	}
	return n
}

func TestModulePackagePromotesDesign(t *testing.T) {
	a := setupWorkflows(t)
	designOnA(a)
	won := a.create("deal", map[string]any{"title": " first ", "amount": "1500", "stage": "open"})
	if won["title"] != "FIRST" {
		t.Fatalf("hook on A: %v", won)
	}
	a.create("deal_note", map[string]any{"deal": won["id"], "text": "call back"})

	resp := a.expect("POST", "/api/v1/modules/package", packageBody("1.0.0"), 200, nil)
	if resp.Header.Get("Content-Type") != "application/gzip" || !strings.Contains(resp.Header.Get("Content-Disposition"), "custom_sales-1.0.0.tar.gz") {
		t.Fatalf("headers: %v", resp.Header)
	}
	pkg, err := module.ReadArchive(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(pkg.Manifest.Scripts, ",") != "scripts/deal_rules.js,scripts/deal_score.js" ||
		strings.Join(pkg.Manifest.Workflows, ",") != "workflows/deal_won.json" {
		t.Fatalf("manifest: %s", pkg.Raw)
	}
	if deal := string(pkg.Files["entities/deal.json"]); !strings.Contains(deal, `"module": "custom_sales"`) || !strings.Contains(deal, `"beforeSave": "scripts/deal_rules.js"`) {
		t.Fatalf("packed deal: %s", deal)
	}
	// The workflow's script step names the script as the module installs it.
	wantWorkflow := strings.Replace(designedWorkflow, `"script": "deal_score"`, `"script": "custom_sales.deal_score"`, 1)
	if !jsonSame(t, pkg.Files["workflows/deal_won.json"], json.RawMessage(wantWorkflow)) {
		t.Fatalf("packed workflow: %s", pkg.Files["workflows/deal_won.json"])
	}

	// Instance B: the same field ids, the hook runs, the workflow and role exist.
	b := setupWorkflows(t)
	b.importModule(resp.Body, "", 200, nil)
	for _, name := range []string{"deal", "deal_note"} {
		_, af := a.entityFields(name)
		mod, bf := b.entityFields(name)
		if mod != "custom_sales" || af != bf {
			t.Fatalf("%s on B: module %q, fields %s; on A %s", name, mod, bf, af)
		}
	}
	dealB := b.create("deal", map[string]any{"title": "second ", "amount": "200", "stage": "open"})
	if dealB["title"] != "SECOND" {
		t.Fatalf("hook on B: %v", dealB)
	}
	if !jsonSame(t, b.workflowDefinition("deal_won"), json.RawMessage(wantWorkflow)) {
		t.Fatalf("workflow on B: %s", b.workflowDefinition("deal_won"))
	}
	var role struct{ Module string }
	b.expect("GET", "/api/v1/roles/deal_desk", nil, 200, &role)
	if role.Module != "custom_sales" {
		t.Fatalf("role on B: %+v", role)
	}

	// On A the admin renames amount to value (same x-field-id) and adds a field.
	v2 := strings.Replace(designedDeal, `"amount": {"type": "string", "format": "decimal", "x-field-id": "dl2"}`,
		`"value": {"type": "string", "format": "decimal", "x-field-id": "dl2"},
		"source": {"type": "string", "x-field-id": "dl4"}`, 1)
	a.expect("PUT", "/api/v1/entities/deal", v2, 200, nil)
	next := a.expect("POST", "/api/v1/modules/package", packageBody("1.1.0"), 200, nil).Body

	// B's upgrade renames the column: a dry run shows it, the data stays in it.
	var dry module.Result
	b.importModule(next, "?dryRun=1", 200, &dry)
	plan := dry.Plans["deal"]
	if plan == nil || plan.Destructive || !hasOp(plan, store.OpRenameColumn) || !hasOp(plan, store.OpAddColumn) || hasOp(plan, store.OpSoftRemoveColumn) {
		t.Fatalf("dry-run plan: %+v", plan)
	}
	b.importModule(next, "", 200, nil)
	var got map[string]any
	b.expect("GET", "/api/v1/data/deal/"+dealB["id"].(string), nil, 200, &got)
	if got["value"] != "200" || got["amount"] != nil {
		t.Fatalf("after upgrade on B: %v", got)
	}
	if it := b.moduleItems()["custom_sales"]; *it.InstalledVersion != "1.1.0" {
		t.Fatalf("B version: %s", *it.InstalledVersion)
	}

	// Installed on A itself, the package adopts the design: no new table, nothing
	// destructive, the entities and role now belong to the module, the data stays.
	tables := a.tables()
	a.importModule(next, "?dryRun=1", 200, &dry)
	for name, p := range dry.Plans {
		if p.Destructive || len(p.Steps) > 0 {
			t.Fatalf("adoption plan for %s: %+v", name, p)
		}
	}
	a.importModule(next, "", 200, nil)
	if mod, _ := a.entityFields("deal"); mod != "custom_sales" || a.tables() != tables {
		t.Fatalf("adoption on A: module %q, %d tables (was %d)", mod, a.tables(), tables)
	}
	a.expect("GET", "/api/v1/data/deal/"+won["id"].(string), nil, 200, &got)
	if got["title"] != "FIRST" || got["value"] != "1500" {
		t.Fatalf("A's deal after adoption: %v", got)
	}
	if again := a.create("deal", map[string]any{"title": "third"}); again["title"] != "THIRD" {
		t.Fatalf("hook on A after adoption: %v", again)
	}
}

func hasOp(p *store.Plan, op string) bool {
	for _, s := range p.Steps {
		if s.Op == op {
			return true
		}
	}
	return false
}

func TestModulePackageProblems(t *testing.T) {
	a := setupWorkflows(t)
	designOnA(a)
	tests := []struct {
		name  string
		edit  func(body map[string]any)
		paths []string
		text  string
	}{
		{"unknown names", func(body map[string]any) {
			body["entities"] = []string{"deal", "deal_note", "ghost"}
			body["workflows"] = []string{"deal_won", "phantom"}
		}, []string{"module.json#/entities/2", "module.json#/workflows/1"}, `entity "ghost" does not exist`},
		{"hook script left out", func(body map[string]any) {
			body["scripts"] = []string{"deal_score"}
		}, []string{"entities/deal.json#/x-entity/hooks/beforeSave"}, `"deal_rules"`},
		{"workflow script left out", func(body map[string]any) {
			body["scripts"] = []string{"deal_rules"}
		}, []string{"workflows/deal_won.json#/steps/0/script"}, `"deal_score"`},
		{"related entity and runAs role left out", func(body map[string]any) {
			body["entities"] = []string{"deal_note"}
			body["roles"] = []string{}
		}, []string{"entities/deal_note.json#/properties/deal/x-relation/entity", "workflows/deal_won.json#/trigger/entity",
			"workflows/deal_won.json#/runAs/roles/0"}, `entity "deal"`},
		{"bad version", func(body map[string]any) { body["version"] = "1.0" }, []string{"module.json#/version"}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			body := packageBody("1.0.0")
			tc.edit(body)
			var e apiError
			a.expect("POST", "/api/v1/modules/package", body, 422, &e)
			for _, p := range tc.paths {
				if !e.hasPath(p) {
					t.Errorf("no problem at %s: %+v", p, e.Error.Details)
				}
			}
			if raw, _ := json.Marshal(e); !strings.Contains(string(raw), strings.ReplaceAll(tc.text, `"`, `\"`)) {
				t.Errorf("no mention of %s: %s", tc.text, raw)
			}
		})
	}
	a.expect("POST", "/api/v1/modules/package", `{"name": "x", "version": "1.0.0", "entitys": ["deal"]}`, 400, nil)
	a.signedIn("designer@example.com").expect("POST", "/api/v1/modules/package", packageBody("1.0.0"), 403, nil)
}

func TestModuleExportIncludesWorkflows(t *testing.T) {
	b := setupWorkflows(t)
	b.expect("POST", "/api/v1/modules/hr/install", nil, 200, nil)
	builtin, err := fs.ReadFile(modules.FS, "hr/workflows/leave_approval.json")
	if err != nil {
		t.Fatal(err)
	}
	exported := func() *module.Module {
		t.Helper()
		m, err := module.ReadArchive(b.expect("GET", "/api/v1/modules/hr/export", nil, 200, nil).Body)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	m := exported()
	if strings.Join(m.Manifest.Workflows, ",") != "workflows/leave_approval.json" || !jsonSame(t, m.Files["workflows/leave_approval.json"], builtin) {
		t.Fatalf("export: %s\n%s", m.Raw, m.Files["workflows/leave_approval.json"])
	}
	// The export carries the workflow as it is now, not as it was installed.
	edited := strings.Replace(string(builtin), `"title": "Leave approval"`, `"title": "Leave approval (edited)"`, 1)
	b.expect("PUT", "/api/v1/workflows/leave_approval", edited, 201, nil)
	if got := exported().Files["workflows/leave_approval.json"]; !strings.Contains(string(got), "(edited)") {
		t.Fatalf("export after edit: %s", got)
	}
}
