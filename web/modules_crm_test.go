package web

import (
	"encoding/json"
	"io/fs"
	"slices"
	"strings"
	"testing"

	"github.com/tessera/tessera/modules"
)

// crmCounts is how many accounts, contacts and opportunities there are, as the admin sees them.
func (b *testBundle) crmCounts() [3]int {
	b.t.Helper()
	var out [3]int
	for i, entity := range []string{"account", "contact", "opportunity"} {
		var p page
		b.expect("GET", "/api/v1/data/"+entity+"?limit=200", nil, 200, &p)
		out[i] = len(p.Items)
	}
	return out
}

// convertRefused converts a lead (or creates one converted) and expects a 422 at path.
func (b *testBundle) convertRefused(method, path string, body map[string]any, at, says string) {
	b.t.Helper()
	var e apiError
	b.expect(method, path, body, 422, &e)
	if !e.hasPath(at) || !strings.Contains(strings.ToLower(fmtDetails(e)), says) {
		b.t.Fatalf("%s %s %v: want a problem at %s saying %q, got %+v", method, path, body, at, says, e)
	}
}

func fmtDetails(e apiError) string {
	var parts []string
	for _, d := range e.Error.Details {
		parts = append(parts, d.Path+": "+d.Message)
	}
	return strings.Join(parts, "; ")
}

// TestCrmLeadConversion: a sales rep converts their own lead into an account, a contact
// and an opportunity in one write, all theirs; existing accounts are reused (named, or by
// exact company name); reconverting, reopening, converting without a company or a name,
// and converting another rep's lead are refused, and a refusal creates nothing.
func TestCrmLeadConversion(t *testing.T) {
	b := setup(t)
	b.expect("POST", "/api/v1/modules/sales/install", nil, 200, nil) // crm, inventory and the sales roles
	rep := b.signedIn("rep@example.com", "sales_rep")
	repID := b.userID("rep@example.com")
	other := b.signedIn("other@example.com", "sales_rep")
	otherID := b.userID("other@example.com")
	manager := b.signedIn("manager@example.com", "sales_manager")

	// The rep converts a qualified lead: account, contact and opportunity, exact amount, theirs.
	lead := rep.create("lead", map[string]any{"name": "Chen Zhang", "company": "Zhang Robotics", "email": "chen@zhang.example",
		"phone": "+86 21 5555 0101", "source": "event", "status": "qualified", "estimated_value": "12500.55", "owner": repID})
	if lead["create_opportunity"] != true || lead["converted_account"] != nil {
		t.Fatalf("new lead: %v", lead)
	}
	before := b.crmCounts()
	var conv map[string]any
	rep.expect("PATCH", "/api/v1/data/lead/"+lead["id"].(string), map[string]any{"status": "converted"}, 200, &conv)
	if conv["status"] != "converted" || conv["converted_account"] == nil || conv["converted_contact"] == nil ||
		conv["converted_opportunity"] == nil || conv["converted_at"] == nil {
		t.Fatalf("converted lead: %v", conv)
	}
	if after := b.crmCounts(); after != [3]int{before[0] + 1, before[1] + 1, before[2] + 1} {
		t.Fatalf("records %v → %v; want one more of each", before, after)
	}
	acc := rep.record("account", conv["converted_account"])
	if acc["name"] != "Zhang Robotics" || acc["owner"] != repID {
		t.Fatalf("account: %v", acc)
	}
	contact := rep.record("contact", conv["converted_contact"])
	if contact["first_name"] != "Chen" || contact["last_name"] != "Zhang" || contact["email"] != "chen@zhang.example" ||
		contact["phone"] != "+86 21 5555 0101" || contact["account"] != acc["id"] || contact["owner"] != repID {
		t.Fatalf("contact: %v", contact)
	}
	opp := rep.record("opportunity", conv["converted_opportunity"])
	if opp["amount"] != "12500.55" || opp["stage"] != "prospecting" || opp["account"] != acc["id"] || opp["contact"] != contact["id"] ||
		opp["owner"] != repID || opp["name"] != "Zhang Robotics – Chen Zhang" || opp["expected_amount"] != "1250.06" {
		t.Fatalf("opportunity: %v", opp)
	}
	// The rep's own lists show them (row rules owner == $user.id); the other rep's don't.
	for _, entity := range []string{"account", "contact", "opportunity"} {
		var mine, theirs page
		rep.expect("GET", "/api/v1/data/"+entity+"?limit=50", nil, 200, &mine)
		other.expect("GET", "/api/v1/data/"+entity+"?limit=50", nil, 200, &theirs)
		if len(mine.Items) != 1 || len(theirs.Items) != 0 {
			t.Fatalf("%s: the rep sees %d, the other rep %d", entity, len(mine.Items), len(theirs.Items))
		}
	}

	// Converted is final: no reconversion, no way back, no edits; the links are the system's.
	leadPath := "/api/v1/data/lead/" + lead["id"].(string)
	counts := b.crmCounts()
	rep.convertRefused("PATCH", leadPath, map[string]any{"status": "converted"}, "/status", "already converted")
	rep.convertRefused("PATCH", leadPath, map[string]any{"status": "qualified"}, "/status", "cannot go back")
	b.convertRefused("PATCH", leadPath, map[string]any{"status": "new"}, "/status", "cannot go back")
	rep.convertRefused("PATCH", leadPath, map[string]any{"phone": "+86 21 5555 0199"}, "/phone", "cannot be changed")
	rep.convertRefused("PATCH", leadPath, map[string]any{"converted_account": nil}, "/converted_account", "set by the system")
	rep.convertRefused("POST", "/api/v1/data/lead", map[string]any{"name": "X", "converted_contact": contact["id"], "owner": repID},
		"/converted_contact", "set by the system")
	if got := b.crmCounts(); got != counts {
		t.Fatalf("refusals created records: %v → %v", counts, got)
	}
	if again := rep.record("lead", lead["id"]); again["converted_at"] != conv["converted_at"] || again["version"] != conv["version"] {
		t.Fatalf("refusals changed the lead: %v", again)
	}

	// Converting into a named account reuses it; name and amount may be overridden.
	globex := rep.create("account", map[string]any{"name": "Globex Ltd", "type": "customer", "owner": repID})
	lead2 := rep.create("lead", map[string]any{"name": "Dora Garcia", "company": "Globex (Paris office)", "estimated_value": "9000.00", "owner": repID})
	counts = b.crmCounts()
	rep.expect("PATCH", "/api/v1/data/lead/"+lead2["id"].(string), map[string]any{"status": "converted", "convert_to_account": globex["id"],
		"opportunity_name": "Globex – Paris rollout", "opportunity_amount": "7777.77"}, 200, &conv)
	if conv["converted_account"] != globex["id"] {
		t.Fatalf("named account not used: %v", conv)
	}
	if got := b.crmCounts(); got != [3]int{counts[0], counts[1] + 1, counts[2] + 1} {
		t.Fatalf("records %v → %v; want the account reused", counts, got)
	}
	if c := rep.record("contact", conv["converted_contact"]); c["account"] != globex["id"] || c["first_name"] != "Dora" || c["last_name"] != "Garcia" {
		t.Fatalf("contact at named account: %v", c)
	}
	if o := rep.record("opportunity", conv["converted_opportunity"]); o["name"] != "Globex – Paris rollout" || o["amount"] != "7777.77" || o["account"] != globex["id"] {
		t.Fatalf("opportunity with overrides: %v", o)
	}

	// An account named exactly like the company is reused, not duplicated; "INITECH" is
	// another name. Without an opportunity, none is made.
	initech := rep.create("account", map[string]any{"name": "Initech", "owner": repID})
	lead3 := rep.create("lead", map[string]any{"name": "Peter Gibbons", "company": "Initech", "estimated_value": "500.00",
		"create_opportunity": false, "owner": repID})
	counts = b.crmCounts()
	rep.expect("PATCH", "/api/v1/data/lead/"+lead3["id"].(string), map[string]any{"status": "converted"}, 200, &conv)
	if conv["converted_account"] != initech["id"] || conv["converted_opportunity"] != nil {
		t.Fatalf("company match: %v", conv)
	}
	if got := b.crmCounts(); got != [3]int{counts[0], counts[1] + 1, counts[2]} {
		t.Fatalf("records %v → %v; want only a contact", counts, got)
	}
	var named page
	b.expect("GET", "/api/v1/data/account?filter="+urlQuery(`name == "Initech"`), nil, 200, &named)
	if len(named.Items) != 1 {
		t.Fatalf("%d accounts named Initech", len(named.Items))
	}
	lead4 := rep.create("lead", map[string]any{"name": "Milton", "company": "INITECH", "owner": repID})
	rep.expect("PATCH", "/api/v1/data/lead/"+lead4["id"].(string), map[string]any{"status": "converted"}, 200, &conv)
	if conv["converted_account"] == initech["id"] {
		t.Fatal("INITECH matched Initech")
	}
	if c := rep.record("contact", conv["converted_contact"]); c["last_name"] != "Milton" || c["first_name"] != nil {
		t.Fatalf("one-word name: %v", c)
	}
	if o := rep.record("opportunity", conv["converted_opportunity"]); o["amount"] != nil {
		t.Fatalf("opportunity without an estimated value: %v", o)
	}

	// No company and no account named: refused at /company, nothing created, lead unchanged.
	bare := rep.create("lead", map[string]any{"name": "Anna Rossi", "email": "anna@example.org", "status": "qualified", "owner": repID})
	counts = b.crmCounts()
	rep.convertRefused("PATCH", "/api/v1/data/lead/"+bare["id"].(string), map[string]any{"status": "converted"}, "/company", "needs a company")
	rep.convertRefused("PATCH", "/api/v1/data/lead/"+bare["id"].(string), map[string]any{"status": "converted", "company": "  "}, "/company", "needs a company")
	// A lead without a name (required, or only blanks) converts into nothing.
	// (a missing required field is reported at the record, by name)
	rep.convertRefused("POST", "/api/v1/data/lead", map[string]any{"company": "Nameless", "status": "converted", "owner": repID}, "", "property 'name'")
	rep.convertRefused("POST", "/api/v1/data/lead", map[string]any{"name": "   ", "company": "Nameless", "status": "converted", "owner": repID}, "/name", "needs a name")
	// An account the rep may not see can't be named.
	hidden := other.create("account", map[string]any{"name": "Other's account", "owner": otherID})
	rep.convertRefused("PATCH", "/api/v1/data/lead/"+bare["id"].(string), map[string]any{"status": "converted", "convert_to_account": hidden["id"]},
		"/convert_to_account", "no such account")
	if got := b.crmCounts(); got != [3]int{counts[0] + 1, counts[1], counts[2]} { // + the other rep's account
		t.Fatalf("refused conversions created records: %v → %v", counts, got)
	}
	if l := rep.record("lead", bare["id"]); l["status"] != "qualified" || l["converted_account"] != nil || l["version"] != bare["version"] {
		t.Fatalf("refused lead changed: %v", l)
	}

	// Another rep's lead is not theirs to convert: not found, nothing created.
	theirs := other.create("lead", map[string]any{"name": "Ben Smith", "company": "Smith & Co", "owner": otherID})
	counts = b.crmCounts()
	rep.expect("PATCH", "/api/v1/data/lead/"+theirs["id"].(string), map[string]any{"status": "converted"}, 404, nil)
	if got := b.crmCounts(); got != counts {
		t.Fatalf("converting another rep's lead created records: %v → %v", counts, got)
	}

	// A manager (no row rules) converts it: the records belong to the lead's owner, who sees them.
	manager.expect("PATCH", "/api/v1/data/lead/"+theirs["id"].(string), map[string]any{"status": "converted"}, 200, &conv)
	for entity, field := range map[string]string{"account": "converted_account", "contact": "converted_contact", "opportunity": "converted_opportunity"} {
		if r := other.record(entity, conv[field]); r["owner"] != otherID {
			t.Fatalf("%s converted by the manager: %v", entity, r)
		}
		rep.expect("GET", "/api/v1/data/"+entity+"/"+conv[field].(string), nil, 404, nil)
	}

	// Converting as the lead is created works too, in one write.
	counts = b.crmCounts()
	quick := rep.create("lead", map[string]any{"name": "Fang Liu", "company": "Liu Trading", "status": "converted", "estimated_value": "0.10", "owner": repID})
	if quick["converted_account"] == nil || quick["converted_contact"] == nil || quick["converted_opportunity"] == nil {
		t.Fatalf("created converted: %v", quick)
	}
	if got := b.crmCounts(); got != [3]int{counts[0] + 1, counts[1] + 1, counts[2] + 1} {
		t.Fatalf("records %v → %v", counts, got)
	}
}

// crmBeforeConversion is the crm module as it was at 1.0.0, before leads converted: the
// built-in files without the conversion fields, the "converted" status and the hook.
func crmBeforeConversion(t *testing.T) []byte {
	t.Helper()
	files := map[string]string{}
	err := fs.WalkDir(modules.FS, "crm", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(modules.FS, path)
		files[strings.TrimPrefix(path, "crm/")] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	delete(files, "scripts/lead_convert.js")
	var manifest map[string]any
	if err := json.Unmarshal([]byte(files["module.json"]), &manifest); err != nil {
		t.Fatal(err)
	}
	manifest["version"] = "1.0.0"
	manifest["scripts"] = slices.DeleteFunc(manifest["scripts"].([]any), func(s any) bool { return s == "scripts/lead_convert.js" })
	var lead map[string]any
	if err := json.Unmarshal([]byte(files["entities/lead.json"]), &lead); err != nil {
		t.Fatal(err)
	}
	delete(lead["x-entity"].(map[string]any), "hooks")
	props := lead["properties"].(map[string]any)
	for _, f := range []string{"convert_to_account", "create_opportunity", "opportunity_name", "opportunity_amount",
		"converted_account", "converted_contact", "converted_opportunity", "converted_at"} {
		if props[f] == nil {
			t.Fatalf("lead has no field %s", f)
		}
		delete(props, f)
	}
	status := props["status"].(map[string]any)
	status["enum"] = slices.DeleteFunc(status["enum"].([]any), func(v any) bool { return v == "converted" })
	for name, v := range map[string]any{"module.json": manifest, "entities/lead.json": lead} {
		data, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		files[name] = string(data)
	}
	return archive(t, files)
}

// TestCrmLeadConversionAfterUpgrade: leads stored by crm 1.0.0 survive the upgrade to
// 1.1.0 and convert (with an opportunity: they have no create_opportunity value); a lead
// nobody owns gives what it converts into to the user converting it.
func TestCrmLeadConversionAfterUpgrade(t *testing.T) {
	b := setup(t)
	var res struct{ Installed []string }
	b.importModule(crmBeforeConversion(t), "", 200, &res)
	if strings.Join(res.Installed, ",") != "crm@1.0.0" {
		t.Fatalf("installed %v", res.Installed)
	}
	lead := b.create("lead", map[string]any{"name": "Greta Novak", "company": "Novak Logistics", "status": "qualified", "estimated_value": "21000.00"})
	var e apiError
	b.expect("PATCH", "/api/v1/data/lead/"+lead["id"].(string), map[string]any{"status": "converted"}, 422, &e)
	if !e.hasPath("/status") {
		t.Fatalf("1.0.0 knows no converted status: %+v", e)
	}
	b.expect("POST", "/api/v1/modules/crm/upgrade", nil, 200, nil)
	if v := b.moduleItems()["crm"].InstalledVersion; v == nil || *v != "1.1.0" {
		t.Fatalf("crm %v after the upgrade", v)
	}
	var conv map[string]any
	b.expect("PATCH", "/api/v1/data/lead/"+lead["id"].(string), map[string]any{"status": "converted"}, 200, &conv)
	opp := b.record("opportunity", conv["converted_opportunity"])
	acc := b.record("account", conv["converted_account"])
	if acc["name"] != "Novak Logistics" || opp["amount"] != "21000.00" || opp["account"] != acc["id"] || opp["owner"] != b.userID(testAdmin) {
		t.Fatalf("after the upgrade: lead %v, account %v, opportunity %v", conv, acc, opp)
	}
}
