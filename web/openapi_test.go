package web

import (
	"bytes"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/schema"
)

// oasSchemaID is the $id of schemas/testdata/openapi-3.1-schema.json, the official
// OpenAPI 3.1 schema (see schemas/testdata/README.md for where it came from).
const oasSchemaID = "https://spec.openapis.org/oas/3.1/schema/2022-10-07"

// oasValidator compiles the official OpenAPI 3.1 schema from the vendored file, so the
// test runs offline.
func oasValidator(t *testing.T) *jsonschema.Schema {
	t.Helper()
	data, err := os.ReadFile("../schemas/testdata/openapi-3.1-schema.json")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource(oasSchemaID, doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile(oasSchemaID)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// openAPIApp mounts the handlers on an app of their own, so these tests do not depend
// on how server.go wires them; the engine reads the bundle's database.
func openAPIApp(b *testBundle) *fiber.App {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	app := fiber.New(fiber.Config{ErrorHandler: errorHandler(log)})
	app.Get("/api/v1/openapi.json", openAPIHandler(engine.New(b.pool, log)))
	app.Get("/api/docs", docsPage)
	return app
}

func get(t *testing.T, app *fiber.App, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := app.Test(httptest.NewRequest("GET", path, nil), -1)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func fetchOpenAPI(t *testing.T, app *fiber.App) ([]byte, map[string]any) {
	t.Helper()
	resp, body := get(t, app, "/api/v1/openapi.json")
	if resp.StatusCode != 200 {
		t.Fatalf("openapi.json: status %d: %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type %q", ct)
	}
	var doc map[string]any
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	return body, doc
}

// at walks a decoded document by keys; it fails the test when a key is missing.
func at(t *testing.T, doc any, keys ...string) any {
	t.Helper()
	cur := doc
	for i, k := range keys {
		m, ok := cur.(map[string]any)
		if !ok {
			t.Fatalf("%s: not an object", strings.Join(keys[:i], "/"))
		}
		if cur, ok = m[k]; !ok {
			t.Fatalf("missing %s", strings.Join(keys[:i+1], "/"))
		}
	}
	return cur
}

// pointer resolves a local $ref ("#/components/schemas/X") in doc.
func pointer(doc any, ref string) (any, bool) {
	if !strings.HasPrefix(ref, "#/") {
		return nil, false
	}
	cur := doc
	for _, tok := range strings.Split(ref[2:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[tok]; !ok {
			return nil, false
		}
	}
	return cur, true
}

// walk calls fn for every object member of v, with the JSON pointer of the object.
func walk(v any, path string, fn func(path, key string, value any)) {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			fn(path, k, val)
			walk(val, path+"/"+k, fn)
		}
	case []any:
		for _, val := range x {
			walk(val, path+"/[]", fn)
		}
	}
}

func TestOpenAPIDocument(t *testing.T) {
	b := setup(t)
	b.putEntity(accountDef)
	b.putEntity(orderDef)
	app := openAPIApp(b)
	body, doc := fetchOpenAPI(t, app)

	// (a) The official OpenAPI 3.1 schema accepts the document…
	oas := oasValidator(t)
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if err := oas.Validate(inst); err != nil {
		t.Fatalf("the document is not valid OpenAPI 3.1: %#v", err)
	}
	// …and is strict enough to reject a broken one, so the check above means something.
	broken := map[string]any{}
	_ = json.Unmarshal(body, &broken)
	broken["components"].(map[string]any)["schemas"].(map[string]any)["not a name"] = map[string]any{}
	if err := oas.Validate(broken); err == nil {
		t.Error("the OpenAPI schema accepted a component name with spaces")
	}

	if at(t, doc, "openapi") != "3.1.0" || at(t, doc, "info", "title") != "Tessera API" || at(t, doc, "info", "version") == "" {
		t.Errorf("info: %v", doc["info"])
	}
	if url := at(t, doc, "servers").([]any)[0].(map[string]any)["url"]; url != "/api/v1" {
		t.Errorf("server url %v", url)
	}
	if at(t, doc, "components", "securitySchemes", "bearerAuth", "scheme") != "bearer" {
		t.Error("no bearer security scheme")
	}
	if sec := at(t, doc, "paths", "/auth/login", "post", "security").([]any); len(sec) != 0 {
		t.Errorf("login must not need a token: %v", sec)
	}
	for _, p := range []string{"/auth/login", "/auth/me", "/auth/logout", "/entities", "/entities/{name}"} {
		at(t, doc, "paths", p)
	}
	var putParams []string
	for _, p := range at(t, doc, "paths", "/entities/{name}", "put", "parameters").([]any) {
		putParams = append(putParams, p.(map[string]any)["name"].(string))
	}
	if !slices.Contains(putParams, "dryRun") || !slices.Contains(putParams, "confirm") {
		t.Errorf("PUT /entities/{name} parameters %v", putParams)
	}

	// (b) Every entity has its paths and components.
	for name, base := range map[string]string{"account": "Account", "sales_order": "SalesOrder"} {
		p := "/data/" + name
		at(t, doc, "paths", p, "get")
		at(t, doc, "paths", p, "post")
		at(t, doc, "paths", p+"/{id}", "get")
		at(t, doc, "paths", p+"/{id}", "patch")
		at(t, doc, "paths", p+"/{id}", "delete")
		at(t, doc, "paths", p+"/{id}/restore", "post")
		at(t, doc, "paths", p+"/{id}/history", "get")
		for _, suffix := range []string{"", "Input", "Patch", "List"} {
			at(t, doc, "components", "schemas", base+suffix)
		}
		if at(t, doc, "components", "schemas", base+"Input", "additionalProperties") != false {
			t.Errorf("%sInput is not closed", base)
		}
		if at(t, doc, "components", "schemas", base+"Patch", "additionalProperties") != false {
			t.Errorf("%sPatch is not closed", base)
		}
		var listParams []string
		for _, raw := range at(t, doc, "paths", p, "get", "parameters").([]any) {
			if ref, ok := raw.(map[string]any)["$ref"].(string); ok {
				raw, _ = pointer(doc, ref)
			}
			listParams = append(listParams, raw.(map[string]any)["name"].(string))
		}
		for _, want := range []string{"filter", "sort", "limit", "cursor", "q", "fields", "expand", "deleted"} {
			if !slices.Contains(listParams, want) {
				t.Errorf("GET %s: no %s parameter (has %v)", p, want, listParams)
			}
		}
		patch := at(t, doc, "paths", p+"/{id}", "patch").(map[string]any)
		at(t, patch, "requestBody", "content", "application/merge-patch+json")
		at(t, patch, "requestBody", "content", "application/json")
		for _, op := range []string{"patch", "delete"} {
			params := at(t, doc, "paths", p+"/{id}", op, "parameters").([]any)
			if !slices.ContainsFunc(params, func(v any) bool {
				return v.(map[string]any)["$ref"] == "#/components/parameters/IfMatch"
			}) {
				t.Errorf("%s %s/{id}: no If-Match", op, p)
			}
			at(t, doc, "paths", p+"/{id}", op, "responses", "412")
		}
	}
	inputProps := at(t, doc, "components", "schemas", "SalesOrderInput", "properties").(map[string]any)
	if _, ok := inputProps["number"]; ok {
		t.Error("the read-only autonumber is in SalesOrderInput")
	}
	if at(t, doc, "components", "schemas", "SalesOrder", "properties", "number", "readOnly") != true {
		t.Error("SalesOrder.number is not readOnly")
	}
	if req := at(t, doc, "components", "schemas", "SalesOrderInput", "required").([]any); !slices.Contains(req, any("customer")) {
		t.Errorf("SalesOrderInput.required = %v", req)
	}
	for _, s := range []string{"SalesOrder", "SalesOrderInput"} {
		if f := at(t, doc, "components", "schemas", s, "properties", "customer", "format"); f != "uuid" {
			t.Errorf("%s.customer format %v", s, f)
		}
	}
	revenue := at(t, doc, "components", "schemas", "AccountInput", "properties", "revenue").(map[string]any)
	if revenue["type"] != "string" || revenue["format"] != "money" {
		t.Errorf("AccountInput.revenue = %v", revenue)
	}
	line := at(t, doc, "components", "schemas", "SalesOrderInput", "properties", "lines", "items").(map[string]any)
	if line["additionalProperties"] != false || at(t, line, "properties", "amount", "format") != "money" {
		t.Errorf("SalesOrderInput line = %v", line)
	}
	if at(t, doc, "components", "schemas", "SalesOrder", "properties", "lines", "items", "properties", "id", "format") != "uuid" {
		t.Error("lines of SalesOrder carry no id")
	}
	if at(t, doc, "components", "schemas", "Account", "title") != "Account" {
		t.Error("Account has not the entity label as title")
	}

	// Tessera's x- keywords stay out of the document.
	walk(doc, "", func(path, key string, _ any) {
		if strings.HasPrefix(key, "x-") {
			t.Errorf("%s/%s: x- keyword in the document", path, key)
		}
	})

	// (c) Every $ref resolves, and operation ids are unique.
	ids := map[string]bool{}
	walk(doc, "", func(path, key string, value any) {
		if key == "$ref" {
			ref, _ := value.(string)
			if _, ok := pointer(doc, ref); !ok {
				t.Errorf("%s: $ref %q does not resolve", path, ref)
			}
		}
		if key == "operationId" {
			id := value.(string)
			if ids[id] {
				t.Errorf("operationId %q twice", id)
			}
			ids[id] = true
		}
	})

	// (d) The schemas describe what the API really accepts and answers.
	schemas := componentValidators(t, body)
	accountIn := map[string]any{
		"name": "ACME", "revenue": "1234.50", "industry": "tech", "tags": []string{"vip"},
		"founded": "1999-12-31", "employees": 12, "active": true, "meta": map[string]any{"a": 1},
	}
	mustValidate(t, schemas, "AccountInput", accountIn)
	account := b.create("account", accountIn)
	mustValidate(t, schemas, "Account", account)
	order := map[string]any{"customer": account["id"], "lines": []any{
		map[string]any{"product": "Bolt", "qty": 2, "amount": "3.10"},
	}}
	mustValidate(t, schemas, "SalesOrderInput", order)
	created := b.create("sales_order", order)
	mustValidate(t, schemas, "SalesOrder", created)

	var list, history, expanded any
	b.expect("GET", "/api/v1/data/sales_order?expand=customer", nil, 200, &list)
	mustValidate(t, schemas, "SalesOrderList", list)
	b.expect("GET", "/api/v1/data/sales_order/"+created["id"].(string)+"?expand=customer", nil, 200, &expanded)
	mustValidate(t, schemas, "SalesOrder", expanded)
	patch := map[string]any{"status": "confirmed", "lines": nil}
	mustValidate(t, schemas, "SalesOrderPatch", patch)
	var patched any
	b.expect("PATCH", "/api/v1/data/sales_order/"+created["id"].(string), patch, 200, &patched,
		"Content-Type", "application/merge-patch+json", "If-Match", `"1"`)
	mustValidate(t, schemas, "SalesOrder", patched)
	b.expect("GET", "/api/v1/data/sales_order/"+created["id"].(string)+"/history", nil, 200, &history)
	mustValidate(t, schemas, "HistoryList", history)
	var problem any
	b.expect("POST", "/api/v1/data/account", map[string]any{"name": "x", "nmae": "typo"}, 422, &problem)
	mustValidate(t, schemas, "Error", problem)

	// Closed inputs reject what the engine rejects.
	for _, bad := range []struct {
		schema string
		value  any
	}{
		{"AccountInput", map[string]any{"name": "x", "nmae": "typo"}},
		{"AccountInput", map[string]any{"code": "no name"}},
		{"SalesOrderInput", map[string]any{"customer": account["id"], "number": "SO-1"}},
		{"SalesOrderInput", map[string]any{"customer": account["id"], "lines": []any{map[string]any{"qty": 1}}}},
		{"SalesOrderPatch", map[string]any{"version": 3}},
	} {
		if err := schemas[bad.schema].Validate(roundTrip(t, bad.value)); err == nil {
			t.Errorf("%s accepted %v", bad.schema, bad.value)
		}
	}
}

// componentValidators compiles every component schema of the document with a JSON
// Schema 2020-12 validator (which also proves they are valid schemas whose $refs
// resolve).
func componentValidators(t *testing.T, body []byte) map[string]*jsonschema.Schema {
	t.Helper()
	const url = "mem://tessera/openapi.json"
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(url, doc); err != nil {
		t.Fatal(err)
	}
	out := map[string]*jsonschema.Schema{}
	for name := range doc.(map[string]any)["components"].(map[string]any)["schemas"].(map[string]any) {
		s, err := c.Compile(url + "#/components/schemas/" + name)
		if err != nil {
			t.Fatalf("component %s: %v", name, err)
		}
		out[name] = s
	}
	return out
}

// roundTrip turns a Go value into what the validator expects (JSON numbers).
func roundTrip(t *testing.T, v any) any {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return inst
}

func mustValidate(t *testing.T, schemas map[string]*jsonschema.Schema, name string, v any) {
	t.Helper()
	s := schemas[name]
	if s == nil {
		t.Fatalf("no component %s", name)
	}
	if err := s.Validate(roundTrip(t, v)); err != nil {
		data, _ := json.Marshal(v)
		t.Errorf("%s does not describe %s: %v", name, data, err)
	}
}

func TestOpenAPIDeterministic(t *testing.T) {
	b := setup(t)
	b.putEntity(zoneDef)
	b.putEntity(accountDef)
	b.putEntity(orderDef)
	app := openAPIApp(b)
	first, doc := fetchOpenAPI(t, app)
	second, _ := fetchOpenAPI(t, app)
	if !bytes.Equal(first, second) {
		t.Fatal("two requests answered different documents")
	}
	version := at(t, doc, "info", "version")

	// A changed definition shows in the next document, with a new version.
	changed := strings.Replace(accountDef, `"meta":`, `"fax": {"type": "string", "x-field-id": "a18"}, "meta":`, 1)
	b.expect("PUT", "/api/v1/entities/account", changed, 200, nil)
	// A new app: openAPIApp's engine is not the one that made the change, and its
	// cache learns of changes only through Listen, which the test does not run.
	_, doc = fetchOpenAPI(t, openAPIApp(b))
	if at(t, doc, "info", "version") == version {
		t.Error("the version did not change with the definition")
	}
	at(t, doc, "components", "schemas", "AccountInput", "properties", "fax")
}

// zoneDef is created first but sorts last, so the document's order is seen not to
// follow creation order.
const zoneDef = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "x-entity": {"name": "zone", "label": {"en": "Zone"}},
  "properties": {"code": {"type": "string", "x-field-id": "z1"}}
}`

// infoFor builds what ListEntities returns for a definition, without a database.
func infoFor(t *testing.T, def string) *engine.EntityInfo {
	t.Helper()
	ent, err := schema.Parse([]byte(def))
	if err != nil {
		t.Fatal(err)
	}
	return &engine.EntityInfo{Name: ent.Name, Label: ent.Label, Version: 1, Definition: ent.Definition, Fields: ent.LiveFields()}
}

func TestOpenAPIComponentNames(t *testing.T) {
	bases := componentBases([]string{"error", "user", "account_input", "account", "a_b", "a__b", "sales_order"})
	want := map[string]string{
		"error": "ErrorRecord", "user": "UserRecord", "account": "Account", "account_input": "AccountInputRecord",
		"a__b": "AB", "a_b": "ABRecord", "sales_order": "SalesOrder",
	}
	for name, base := range want {
		if bases[name] != base {
			t.Errorf("%s: base %q, want %q", name, bases[name], base)
		}
	}

	// Entities named like the fixed tags and schemas still give a valid document with
	// unique names.
	var ents []*engine.EntityInfo
	for _, name := range []string{"auth", "entities", "error", "users"} {
		ents = append(ents, infoFor(t, `{"type": "object", "x-entity": {"name": "`+name+`"},
			"properties": {"title": {"type": "string", "x-field-id": "t1"}}}`))
	}
	doc, err := buildOpenAPI(ents)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := json.Marshal(doc)
	if err := oasValidator(t).Validate(roundTrip(t, doc)); err != nil {
		t.Fatalf("not valid OpenAPI 3.1: %#v", err)
	}
	var decoded map[string]any
	_ = json.Unmarshal(body, &decoded)
	tags := map[string]bool{}
	for _, tag := range decoded["tags"].([]any) {
		name := tag.(map[string]any)["name"].(string)
		if tags[name] {
			t.Errorf("tag %q twice", name)
		}
		tags[name] = true
	}
	if at(t, decoded, "components", "schemas", "Error", "title") != "Error" {
		t.Error("the entity named error replaced the Error schema")
	}
	at(t, decoded, "components", "schemas", "ErrorRecordInput")
}

func TestOpenAPIRemovedFieldsAndLabels(t *testing.T) {
	const hostile = `<img src=x onerror=alert(1)>`
	def := `{"type": "object",
	  "x-entity": {"name": "note", "label": {"en": "` + hostile + `", "de": "Notiz"}},
	  "required": ["body"],
	  "properties": {
	    "body":  {"type": "string", "maxLength": 500, "x-field-id": "n1", "x-label": {"en": "Body"}, "x-ui": {"widget": "textarea"}},
	    "old":   {"type": "string", "x-field-id": "n2", "x-removed": true},
	    "total": {"type": "string", "format": "decimal", "x-computed": "1", "x-field-id": "n3"},
	    "meta":  {"type": "object", "properties": {"x-not-a-keyword": {"type": "string"}}, "x-field-id": "n4"},
	    "kind":  {"enum": ["a", "b"], "default": "a", "x-field-id": "n5"}
	  }}`
	doc, err := buildOpenAPI([]*engine.EntityInfo{infoFor(t, def)})
	if err != nil {
		t.Fatal(err)
	}
	body, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(body, []byte("<img")) {
		t.Error("the label is written unescaped")
	}
	var decoded map[string]any
	_ = json.Unmarshal(body, &decoded)
	if at(t, decoded, "components", "schemas", "Note", "title") != hostile {
		t.Error("the label is not the title")
	}
	for _, s := range []string{"Note", "NoteInput", "NotePatch"} {
		if _, ok := at(t, decoded, "components", "schemas", s, "properties").(map[string]any)["old"]; ok {
			t.Errorf("%s has the removed field", s)
		}
	}
	if _, ok := at(t, decoded, "components", "schemas", "NoteInput", "properties").(map[string]any)["total"]; ok {
		t.Error("NoteInput has the computed field")
	}
	body1 := at(t, decoded, "components", "schemas", "NoteInput", "properties", "body").(map[string]any)
	if body1["title"] != "Body" || body1["maxLength"] != float64(500) || body1["type"] != "string" {
		t.Errorf("NoteInput.body = %v", body1)
	}
	// A property named like an x- keyword inside a json field is data, not a keyword.
	at(t, decoded, "components", "schemas", "NoteInput", "properties", "meta", "properties", "x-not-a-keyword")
	// Records answer null for unset optional fields; a patch may send null.
	if k := at(t, decoded, "components", "schemas", "Note", "properties", "kind", "enum").([]any); k[len(k)-1] != nil {
		t.Errorf("Note.kind enum %v has no null", k)
	}
	if _, ok := at(t, decoded, "components", "schemas", "NotePatch", "properties", "kind").(map[string]any)["default"]; ok {
		t.Error("NotePatch.kind keeps the create default")
	}
	if err := oasValidator(t).Validate(roundTrip(t, doc)); err != nil {
		t.Fatalf("not valid OpenAPI 3.1: %#v", err)
	}
}

func TestOpenAPIDocsPage(t *testing.T) {
	app := fiber.New()
	app.Get("/api/docs", docsPage)
	resp, body := get(t, app, "/api/docs")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Errorf("Content-Type %q", ct)
	}
	page := string(body)
	if !strings.Contains(strings.ToLower(page), "<!doctype html>") || !strings.Contains(page, "tessera.token") || !strings.Contains(page, "/v1/openapi.json") {
		t.Error("not the API reference page")
	}
	// Offline: nothing is loaded from elsewhere; the script and style are inline.
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`(?i)<script[^>]*\bsrc\s*=`),
		regexp.MustCompile(`(?i)<link\b`),
		regexp.MustCompile(`(?i)https?://`),
		regexp.MustCompile(`(?i)@import|url\(`),
	} {
		if loc := re.FindStringIndex(page); loc != nil {
			t.Errorf("the page loads from elsewhere: %q", page[loc[0]:min(loc[1]+40, len(page))])
		}
	}
	// Data is inserted as text only.
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(page, sink) {
			t.Errorf("the page uses %s", sink)
		}
	}
	csp := resp.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'sha256-", "style-src 'sha256-", "connect-src 'self'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("Content-Security-Policy %q lacks %q", csp, want)
		}
	}
}
