package web

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/schema"
)

// The OpenAPI document is generated from the live entity definitions on every request:
// an entity changed through PUT /entities/{name} is in the next document, with no
// build step and no cache to invalidate across nodes.

// obj keeps the document-building code short; encoding/json writes map keys sorted,
// which is what makes the output deterministic and diffable.
type obj = map[string]any

// openAPIHandler answers GET /api/v1/openapi.json with an OpenAPI 3.1 document for the
// API as it is now: the fixed endpoints plus the record endpoints of every entity.
func openAPIHandler(eng *engine.Engine) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ents, err := eng.ListEntities(c.UserContext())
		if err != nil {
			return err
		}
		doc, err := buildOpenAPI(ents)
		if err != nil {
			return err
		}
		body, err := json.MarshalIndent(doc, "", "  ")
		if err != nil {
			return err
		}
		info := doc["info"].(obj)
		c.Set(fiber.HeaderETag, `"`+info["version"].(string)+`"`)
		// Definitions change at run time: clients must revalidate rather than cache.
		c.Set(fiber.HeaderCacheControl, "no-cache")
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
		return c.Send(body)
	}
}

//go:embed docs.html
var docsHTML []byte

// docsCSP allows exactly the page's own inline script and style (by hash) and requests
// to this origin, so the page loads nothing from elsewhere and an injected script or
// handler attribute would not run even if one got into the DOM.
var docsCSP = "default-src 'none'; script-src " + inlineHash(docsHTML, "script") +
	"; style-src " + inlineHash(docsHTML, "style") +
	"; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// inlineHash is the CSP source expression for the first inline <tag> element of page.
func inlineHash(page []byte, tag string) string {
	open := []byte("<" + tag + ">")
	start := bytes.Index(page, open)
	if start < 0 {
		return "'none'"
	}
	start += len(open)
	end := bytes.Index(page[start:], []byte("</"+tag+">"))
	if end < 0 {
		return "'none'"
	}
	sum := sha256.Sum256(page[start : start+end])
	return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
}

// docsPage serves the self-contained API reference at /api/docs. The page carries no
// data; it fetches the OpenAPI document with the token the user gives it.
func docsPage(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	c.Set(fiber.HeaderContentSecurityPolicy, docsCSP)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(docsHTML)
}

// systemSchemas are the component names of the fixed endpoints; entity schemas must
// not take them.
var systemSchemas = []string{
	"EntityField", "EntityInfo", "EntityList", "EntityPutResult", "Error", "HistoryEntry",
	"HistoryList", "LoginRequest", "LoginResponse", "MigrationPlan", "MigrationStep",
	"NewUser", "User", "UserList",
}

// entitySuffixes name the components generated for each entity.
var entitySuffixes = []string{"", "Input", "Patch", "List"}

// pascalCase turns an entity name (^[a-z][a-z0-9_]*$) into a component name.
func pascalCase(name string) string {
	var sb strings.Builder
	for _, part := range strings.Split(name, "_") {
		if part == "" {
			continue
		}
		sb.WriteString(strings.ToUpper(part[:1]))
		sb.WriteString(part[1:])
	}
	return sb.String()
}

// componentBases picks each entity's component base name: PascalCase when free, else
// with a "Record" suffix, else "Entity_<name>", which cannot clash (entity names are
// unique and no other component name has an underscore). Entities are taken in name
// order, so the choice is deterministic.
func componentBases(names []string) map[string]string {
	taken := map[string]bool{}
	for _, n := range systemSchemas {
		taken[n] = true
	}
	sorted := append([]string(nil), names...)
	sort.Strings(sorted)
	out := map[string]string{}
	for _, name := range sorted {
		p := pascalCase(name)
		for _, base := range []string{p, p + "Record", "Entity_" + name} {
			free := true
			for _, s := range entitySuffixes {
				if taken[base+s] {
					free = false
				}
			}
			if !free {
				continue
			}
			for _, s := range entitySuffixes {
				taken[base+s] = true
			}
			out[name] = base
			break
		}
	}
	return out
}

// labelText picks the English label, else the first locale's in sorted order.
func labelText(label map[string]string) string {
	if s := label["en"]; s != "" {
		return s
	}
	keys := make([]string, 0, len(label))
	for k := range label {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if label[k] != "" {
			return label[k]
		}
	}
	return ""
}

// definitionVersion identifies the set of entity versions the document was built from:
// it changes whenever any entity is created or changed.
func definitionVersion(ents []*engine.EntityInfo) string {
	h := sha256.New()
	for _, e := range ents {
		fmt.Fprintf(h, "%s@%d\n", e.Name, e.Version)
	}
	return "1." + hex.EncodeToString(h.Sum(nil))[:16]
}

// buildOpenAPI assembles the whole document.
func buildOpenAPI(ents []*engine.EntityInfo) (obj, error) {
	ents = append([]*engine.EntityInfo(nil), ents...)
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name < ents[j].Name })
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name
	}
	bases := componentBases(names)

	paths := obj{}
	schemas := systemComponentSchemas()
	tags := []any{
		obj{"name": "auth", "description": "Sign in and out; who am I."},
		obj{"name": "users", "description": "User accounts (administrators only)."},
		obj{"name": "entities", "description": "Entity definitions: JSON Schema documents with x- keywords; PUT migrates the tables."},
		obj{"name": "meta", "description": "This document."},
		obj{"name": "notifications", "description": "In-app notifications from workflows."},
	}
	addFixedPaths(paths)

	for _, e := range ents {
		doc, err := newEntityDoc(e, bases)
		if err != nil {
			return nil, err
		}
		tags = append(tags, obj{"name": doc.base, "description": doc.label + " records (entity " + e.Name + ", version " + fmt.Sprint(e.Version) + ")."})
		schemas[doc.base] = doc.recordSchema()
		schemas[doc.base+"Input"] = doc.inputSchema(false)
		schemas[doc.base+"Patch"] = doc.inputSchema(true)
		schemas[doc.base+"List"] = listSchema(schemaRef(doc.base), doc.label+" list")
		doc.addPaths(paths)
	}

	return obj{
		"openapi": "3.1.0",
		"info": obj{
			"title":       "Tessera API",
			"version":     definitionVersion(ents),
			"description": "Generated from the entity definitions at request time; the version changes whenever an entity is created or changed. Every error answers the Error shape; lists answer {items, next_cursor, total, total_is_estimate}.",
		},
		"servers":  []any{obj{"url": "/api/v1"}},
		"security": []any{obj{"bearerAuth": []any{}}},
		"tags":     tags,
		"paths":    paths,
		"components": obj{
			"schemas":    schemas,
			"responses":  errorResponses(),
			"parameters": sharedParameters(),
			"headers":    obj{"ETag": obj{"description": `The record version, quoted ("3"); send it back in If-Match.`, "schema": obj{"type": "string"}}},
			"securitySchemes": obj{
				"bearerAuth": obj{"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <token>, with a session token from POST /auth/login or an API key."},
				"cookieAuth": obj{"type": "apiKey", "in": "cookie", "name": sessionCookie, "description": "The browser's session cookie set by POST /auth/login; unsafe methods also need the X-CSRF-Token header."},
			},
		},
	}, nil
}

func schemaRef(name string) obj { return obj{"$ref": "#/components/schemas/" + name} }

func jsonContent(s any) obj { return obj{"application/json": obj{"schema": s}} }

// errorStatuses maps each error status to its shared response component.
var errorStatuses = map[int]struct{ name, description string }{
	400: {"BadRequest", "Malformed request: bad JSON, bad query parameter."},
	401: {"Unauthorized", "No valid identity: send Authorization: Bearer <token>."},
	403: {"Forbidden", "Not allowed for this user."},
	404: {"NotFound", "No such entity or record."},
	409: {"Conflict", "Conflict: a unique value is taken, the record is deleted, or a migration was refused (the plan is in error.plan)."},
	412: {"PreconditionFailed", "If-Match does not name the current version: read the record again."},
	413: {"PayloadTooLarge", "The request body is too large."},
	422: {"ValidationFailed", "Validation failed; error.details holds one entry per problem, with a JSON pointer into the submitted document."},
}

func errorResponses() obj {
	out := obj{}
	for _, e := range errorStatuses {
		out[e.name] = obj{"description": e.description, "content": jsonContent(schemaRef("Error"))}
	}
	return out
}

// responses builds an operation's responses: the success ones given plus a reference
// to the shared error response for each status in errs.
func responses(success obj, errs ...int) obj {
	out := obj{}
	for k, v := range success {
		out[k] = v
	}
	for _, code := range errs {
		out[fmt.Sprint(code)] = obj{"$ref": "#/components/responses/" + errorStatuses[code].name}
	}
	return out
}

func okJSON(description string, s any) obj {
	return obj{"description": description, "content": jsonContent(s)}
}

func jsonBody(s any, description string) obj {
	return obj{"required": true, "description": description, "content": jsonContent(s)}
}

func sharedParameters() obj {
	return obj{
		"RecordId": obj{"name": "id", "in": "path", "required": true, "description": "The record id.",
			"schema": obj{"type": "string", "format": "uuid"}},
		"IfMatch": obj{"name": "If-Match", "in": "header", "required": false,
			"description": `The version you read (the ETag, e.g. "3"); the change is refused with 412 if the record changed since.`,
			"schema":      obj{"type": "string"}},
		"Filter": obj{"name": "filter", "in": "query", "description": `A filter expression over the entity's fields, e.g. status = "draft" and total > 100.`,
			"schema": obj{"type": "string"}},
		"Sort": obj{"name": "sort", "in": "query", "description": "Comma-separated fields, a leading - for descending, e.g. -created_at,name. Default: newest first.",
			"schema": obj{"type": "string"}},
		"Limit": obj{"name": "limit", "in": "query", "description": "Page size.",
			"schema": obj{"type": "integer", "minimum": 1, "maximum": engine.MaxLimit, "default": engine.DefaultLimit}},
		"Cursor": obj{"name": "cursor", "in": "query", "description": "next_cursor of the previous page, with the same sort.",
			"schema": obj{"type": "string"}},
		"Q": obj{"name": "q", "in": "query", "description": "Full-text search over the text fields (prefix match per word).",
			"schema": obj{"type": "string"}},
		"Deleted": obj{"name": "deleted", "in": "query", "description": "true: soft-deleted records instead of live ones.",
			"schema": obj{"type": "boolean", "default": false}},
	}
}

func paramRef(name string) obj { return obj{"$ref": "#/components/parameters/" + name} }

// listSchema is the list shape every collection endpoint answers with.
func listSchema(item any, title string) obj {
	return obj{
		"type":     "object",
		"title":    title,
		"required": []any{"items", "next_cursor", "total", "total_is_estimate"},
		"properties": obj{
			"items":             obj{"type": "array", "items": item},
			"next_cursor":       obj{"type": []any{"string", "null"}, "description": "Pass as cursor for the next page; null on the last page."},
			"total":             obj{"type": "integer", "minimum": 0, "description": "Matching records (all pages)."},
			"total_is_estimate": obj{"type": "boolean", "description": "true when total is the planner's estimate (large results)."},
		},
	}
}

func uuidSchema(description string) obj {
	return obj{"type": "string", "format": "uuid", "description": description}
}

func nullableUUID(description string) obj {
	return obj{"type": []any{"string", "null"}, "format": "uuid", "description": description}
}

// systemComponentSchemas are the schemas of the fixed endpoints.
func systemComponentSchemas() obj {
	stringMap := obj{"type": "object", "additionalProperties": obj{"type": "string"}}
	fieldTypes := []any{}
	for _, t := range []schema.Type{schema.TypeText, schema.TypeLongText, schema.TypeInteger, schema.TypeDecimal,
		schema.TypeMoney, schema.TypePercent, schema.TypeBoolean, schema.TypeDate, schema.TypeDateTime, schema.TypeEnum,
		schema.TypeMultiSelect, schema.TypeEmail, schema.TypePhone, schema.TypeURL, schema.TypeUUID, schema.TypeRelation,
		schema.TypeChild, schema.TypeJSON, schema.TypeAutonumber} {
		fieldTypes = append(fieldTypes, string(t))
	}
	return obj{
		"Error": obj{
			"type":     "object",
			"title":    "Error",
			"required": []any{"error"},
			"properties": obj{"error": obj{
				"type":     "object",
				"required": []any{"code", "message"},
				"properties": obj{
					"code":    obj{"type": "string", "description": "Stable machine-readable code, e.g. validation_failed, not_found, version_mismatch."},
					"message": obj{"type": "string"},
					"details": obj{"type": "array", "items": obj{
						"type":     "object",
						"required": []any{"path", "message"},
						"properties": obj{
							"path":    obj{"type": "string", "description": "JSON pointer into the submitted document, e.g. /lines/0/qty."},
							"code":    obj{"type": "string", "description": "The failing rule, e.g. minimum, required, unique."},
							"message": obj{"type": "string"},
						},
					}},
					"plan": schemaRef("MigrationPlan"),
				},
			}},
		},
		"User": obj{
			"type":     "object",
			"title":    "User",
			"required": []any{"id", "email", "name", "roles", "is_admin", "created_at"},
			"properties": obj{
				"id":         uuidSchema(""),
				"email":      obj{"type": "string", "format": "email"},
				"name":       obj{"type": "string"},
				"roles":      obj{"type": []any{"array", "null"}, "items": obj{"type": "string"}},
				"is_admin":   obj{"type": "boolean"},
				"service":    obj{"type": "boolean", "description": "a workflow's service identity (runAs): it never signs in"},
				"created_at": obj{"type": "string", "format": "date-time"},
			},
		},
		"UserList": listSchema(schemaRef("User"), "User list"),
		"NewUser": obj{
			"type":                 "object",
			"title":                "New user",
			"additionalProperties": false,
			"required":             []any{"email", "password"},
			"properties": obj{
				"email":    obj{"type": "string", "format": "email"},
				"name":     obj{"type": "string"},
				"password": obj{"type": "string", "writeOnly": true},
				"roles":    obj{"type": "array", "items": obj{"type": "string"}},
				"is_admin": obj{"type": "boolean", "default": false},
			},
		},
		"LoginRequest": obj{
			"type":                 "object",
			"title":                "Login",
			"additionalProperties": false,
			"required":             []any{"email", "password"},
			"properties": obj{
				"email":    obj{"type": "string", "format": "email"},
				"password": obj{"type": "string", "writeOnly": true},
			},
		},
		"LoginResponse": obj{
			"type":     "object",
			"title":    "Session",
			"required": []any{"token", "user"},
			"properties": obj{
				"token": obj{"type": "string", "description": "Send as Authorization: Bearer <token>."},
				"user":  schemaRef("User"),
			},
		},
		"EntityField": obj{
			"type":     "object",
			"title":    "Entity field",
			"required": []any{"name", "id", "type"},
			"properties": obj{
				"name":      obj{"type": "string"},
				"id":        obj{"type": "string", "description": "The stable x-field-id."},
				"type":      obj{"enum": fieldTypes},
				"label":     stringMap,
				"required":  obj{"type": "boolean"},
				"read_only": obj{"type": "boolean"},
				"index":     obj{"type": "boolean"},
				"unique":    obj{"type": "boolean"},
				"removed":   obj{"type": "boolean"},
				"enum":      obj{"type": "array", "items": obj{"type": "string"}},
				"currency":  obj{"type": "string"},
				"computed":  obj{"type": "string"},
				"default":   obj{"description": "The JSON Schema default, any JSON value."},
				"relation": obj{"type": "object", "properties": obj{
					"entity":    obj{"type": "string"},
					"on_delete": obj{"enum": []any{"restrict", "cascade", "set null"}},
				}},
				"child": obj{"type": "object", "properties": obj{
					"table":  obj{"type": "string"},
					"fields": obj{"type": "array", "items": schemaRef("EntityField")},
				}},
			},
		},
		"EntityInfo": obj{
			"type":     "object",
			"title":    "Entity",
			"required": []any{"name", "version", "definition", "fields"},
			"properties": obj{
				"name":       obj{"type": "string", "pattern": "^[a-z][a-z0-9_]{0,47}$"},
				"module":     obj{"type": "string"},
				"label":      stringMap,
				"version":    obj{"type": "integer", "minimum": 1},
				"definition": obj{"type": "object", "description": "The JSON Schema document as stored (draft 2020-12 with x- keywords)."},
				"fields":     obj{"type": "array", "items": schemaRef("EntityField")},
			},
		},
		"EntityList": listSchema(schemaRef("EntityInfo"), "Entity list"),
		"MigrationStep": obj{
			"type":     "object",
			"required": []any{"op", "target", "description", "sql"},
			"properties": obj{
				"op":           obj{"type": "string"},
				"target":       obj{"type": "string"},
				"description":  obj{"type": "string"},
				"destructive":  obj{"type": "boolean", "description": "Can lose data; applied only with ?confirm=1."},
				"failing_rows": obj{"type": "integer", "description": "Existing rows the step would fail on."},
				"problem":      obj{"type": "string"},
				"sql":          obj{"type": []any{"array", "null"}, "items": obj{"type": "string"}},
			},
		},
		"MigrationPlan": obj{
			"type":     "object",
			"title":    "Migration plan",
			"required": []any{"entity", "from_version", "to_version", "steps", "destructive", "blocked"},
			"properties": obj{
				"entity":       obj{"type": "string"},
				"from_version": obj{"type": "integer"},
				"to_version":   obj{"type": "integer"},
				"steps":        obj{"type": []any{"array", "null"}, "items": schemaRef("MigrationStep")},
				"destructive":  obj{"type": "boolean"},
				"blocked":      obj{"type": "boolean", "description": "Some step fails on existing rows; the plan cannot be applied."},
			},
		},
		"EntityPutResult": obj{
			"type":     "object",
			"title":    "Entity change",
			"required": []any{"plan"},
			"properties": obj{
				"dry_run": obj{"type": "boolean", "description": "Present (true) on a dry run, which changes nothing."},
				"plan":    schemaRef("MigrationPlan"),
				"entity":  schemaRef("EntityInfo"),
			},
		},
		"HistoryEntry": obj{
			"type":     "object",
			"title":    "History entry",
			"required": []any{"version", "op", "changed_by", "changed_at", "diff"},
			"properties": obj{
				"version":    obj{"type": "integer"},
				"op":         obj{"enum": []any{"create", "update", "delete", "restore"}},
				"changed_by": nullableUUID("The user who made the change."),
				"changed_at": obj{"type": "string", "format": "date-time"},
				"diff":       obj{"type": []any{"object", "null"}, "description": "The changed fields."},
			},
		},
		"HistoryList": listSchema(schemaRef("HistoryEntry"), "History"),
	}
}

// addFixedPaths adds the endpoints that do not depend on the entities.
func addFixedPaths(paths obj) {
	paths["/auth/login"] = obj{"post": obj{
		"tags": []any{"auth"}, "operationId": "auth.login", "summary": "Sign in",
		"description": "Exchanges email and password for a bearer token.",
		"security":    []any{},
		"requestBody": jsonBody(schemaRef("LoginRequest"), "The credentials."),
		"responses":   responses(obj{"200": okJSON("Signed in.", schemaRef("LoginResponse"))}, 400, 401, 413, 422),
	}}
	paths["/auth/logout"] = obj{"post": obj{
		"tags": []any{"auth"}, "operationId": "auth.logout", "summary": "Sign out",
		"description": "Revokes the token used for this request.",
		"responses":   responses(obj{"204": obj{"description": "Signed out."}}, 401),
	}}
	paths["/auth/me"] = obj{"get": obj{
		"tags": []any{"auth"}, "operationId": "auth.me", "summary": "The signed-in user",
		"responses": responses(obj{"200": okJSON("The user.", schemaRef("User"))}, 401),
	}}
	paths["/users"] = obj{
		"get": obj{
			"tags": []any{"users"}, "operationId": "users.list", "summary": "List users",
			"responses": responses(obj{"200": okJSON("The users.", schemaRef("UserList"))}, 401, 403),
		},
		"post": obj{
			"tags": []any{"users"}, "operationId": "users.create", "summary": "Create a user",
			"requestBody": jsonBody(schemaRef("NewUser"), "The new user."),
			"responses":   responses(obj{"201": okJSON("Created.", schemaRef("User"))}, 400, 401, 403, 409, 413, 422),
		},
	}
	paths["/entities"] = obj{"get": obj{
		"tags": []any{"entities"}, "operationId": "entities.list", "summary": "List entity definitions",
		"responses": responses(obj{"200": okJSON("Every entity's current definition.", schemaRef("EntityList"))}, 401),
	}}
	paths["/entities/{name}"] = obj{
		"parameters": []any{obj{"name": "name", "in": "path", "required": true, "description": "The entity name.",
			"schema": obj{"type": "string", "pattern": "^[a-z][a-z0-9_]{0,47}$"}}},
		"get": obj{
			"tags": []any{"entities"}, "operationId": "entities.get", "summary": "Get an entity definition",
			"responses": responses(obj{"200": okJSON("The current definition.", schemaRef("EntityInfo"))}, 401, 404),
		},
		"put": obj{
			"tags": []any{"entities"}, "operationId": "entities.put", "summary": "Create or migrate an entity",
			"description": "Stores a new version of the definition and migrates the tables in one transaction. " +
				"With dryRun the migration plan is returned and nothing changes; a plan with destructive steps needs confirm. " +
				"A refused plan answers 409 with the plan in error.plan.",
			"parameters": []any{
				obj{"name": "dryRun", "in": "query", "description": "Return the plan (with failing row counts) and change nothing.", "schema": obj{"type": "boolean", "default": false}},
				obj{"name": "confirm", "in": "query", "description": "Allow steps that can lose data.", "schema": obj{"type": "boolean", "default": false}},
			},
			"requestBody": jsonBody(obj{"type": "object", "description": "A JSON Schema (draft 2020-12) document with x-entity and x-field-id keywords."}, "The entity definition."),
			"responses": responses(obj{
				"200": okJSON("Migrated, unchanged, or the dry-run plan.", schemaRef("EntityPutResult")),
				"201": okJSON("Created.", schemaRef("EntityPutResult")),
			}, 400, 401, 403, 409, 413, 422),
		},
	}
	paths["/reports/query"] = obj{"post": obj{
		"tags": []any{"meta"}, "operationId": "reports.query", "summary": "Aggregate records",
		"description": "Group by fields (dates by day, week, month, quarter or year) and measure count, sum, avg, min, max; " +
			"row rules apply and hidden fields cannot be used. Decimals are exact strings.",
		"requestBody": jsonBody(obj{"type": "object", "required": []any{"entity", "measures"}, "properties": obj{
			"entity": obj{"type": "string"}, "filter": obj{"type": "string"}, "sort": obj{"type": "string"}, "limit": obj{"type": "integer"},
			"groupBy":  obj{"type": "array", "items": obj{"type": "object", "properties": obj{"field": obj{"type": "string"}, "bucket": obj{"enum": []any{"day", "week", "month", "quarter", "year"}}}}},
			"measures": obj{"type": "array", "items": obj{"type": "object", "properties": obj{"op": obj{"enum": []any{"count", "sum", "avg", "min", "max"}}, "field": obj{"type": "string"}, "as": obj{"type": "string"}}}},
		}}, "The report."),
		"responses": responses(obj{"200": okJSON("One item per group.", obj{"type": "object", "properties": obj{"items": obj{"type": "array", "items": obj{"type": "object"}}}})}, 400, 401, 403, 404),
	}}
	paths["/imports/{job}"] = obj{"get": obj{
		"tags": []any{"meta"}, "operationId": "imports.get", "summary": "Progress and report of an import",
		"parameters": []any{obj{"name": "job", "in": "path", "required": true, "schema": uuidSchema("The job id given to import.")}},
		"responses":  responses(obj{"200": okJSON("The job.", obj{"type": "object"})}, 401, 404),
	}}
	paths["/notifications/stream"] = obj{"get": obj{
		"tags": []any{"notifications"}, "operationId": "notifications.stream", "summary": "Stream new notifications",
		"description": "Server-Sent Events: each new notification of the signed-in user as `event: notification` with `id:` the notification id and " +
			"`data:` the notification object as GET /notifications lists it; `: ping` comments keep the connection alive. " +
			"Nothing old is sent unless Last-Event-ID (or lastEventId) names one of the user's notifications: then those created after it " +
			"(at most 100, the newest) come first. Works with the session cookie, since EventSource cannot set headers.",
		"security": []any{obj{"bearerAuth": []any{}}, obj{"cookieAuth": []any{}}},
		"parameters": []any{
			obj{"name": "Last-Event-ID", "in": "header", "description": "The id of the last event received; replays what came after it.", "schema": uuidSchema("A notification id.")},
			obj{"name": "lastEventId", "in": "query", "description": "Last-Event-ID for clients that reconnect by hand.", "schema": uuidSchema("A notification id.")},
		},
		"responses": responses(obj{"200": obj{"description": "The event stream; it ends when the server shuts down or the client falls behind, and the client reconnects with Last-Event-ID.",
			"content": obj{"text/event-stream": obj{"schema": obj{"type": "string"}}}}}, 401),
	}}
	paths["/openapi.json"] = obj{"get": obj{
		"tags": []any{"meta"}, "operationId": "meta.openapi", "summary": "This OpenAPI document",
		"responses": responses(obj{"200": okJSON("The document.", obj{"type": "object"})}, 401),
	}}
}

// entityDoc is one entity as the document describes it.
type entityDoc struct {
	info  *engine.EntityInfo
	base  string
	label string
	// props are the property schemas of the stored definition, by field name.
	props map[string]any
	// bases resolves related entities' component names.
	bases map[string]string
}

func newEntityDoc(e *engine.EntityInfo, bases map[string]string) (*entityDoc, error) {
	var def map[string]any
	dec := json.NewDecoder(bytes.NewReader(e.Definition))
	// Numbers stay as written (limits such as maximum must not be rounded).
	dec.UseNumber()
	if err := dec.Decode(&def); err != nil {
		return nil, fmt.Errorf("entity %q: definition: %w", e.Name, err)
	}
	props, _ := def["properties"].(map[string]any)
	label := labelText(e.Label)
	if label == "" {
		label, _ = def["title"].(string)
	}
	if label == "" {
		label = e.Name
	}
	return &entityDoc{info: e, base: bases[e.Name], label: label, props: props, bases: bases}, nil
}

// schemaKeywordsOne, schemaKeywordsList and schemaKeywordsMap are the JSON Schema
// keywords whose values are schemas; cleanSchema recurses only into those, so enum,
// const, default and examples values are copied as data, never edited.
var (
	schemaKeywordsOne = map[string]bool{
		"items": true, "additionalProperties": true, "contains": true, "not": true, "if": true, "then": true,
		"else": true, "propertyNames": true, "unevaluatedItems": true, "unevaluatedProperties": true, "contentSchema": true,
	}
	schemaKeywordsList = map[string]bool{"allOf": true, "anyOf": true, "oneOf": true, "prefixItems": true}
	schemaKeywordsMap  = map[string]bool{"properties": true, "patternProperties": true, "dependentSchemas": true}
)

// cleanSchema copies a property schema without Tessera's x- keywords and without
// references and identifiers: those point into the entity definition and would not
// resolve inside the OpenAPI document.
func cleanSchema(v any) any {
	m, ok := v.(map[string]any)
	if !ok {
		return v // booleans (true/false schemas)
	}
	out := obj{}
	for k, val := range m {
		switch {
		case strings.HasPrefix(k, "x-"), strings.HasPrefix(k, "$"):
			continue
		case schemaKeywordsOne[k]:
			out[k] = cleanSchema(val)
		case schemaKeywordsList[k]:
			list, _ := val.([]any)
			cleaned := make([]any, len(list))
			for i, s := range list {
				cleaned[i] = cleanSchema(s)
			}
			out[k] = cleaned
		case schemaKeywordsMap[k]:
			sub, _ := val.(map[string]any)
			cleaned := obj{}
			for name, s := range sub {
				cleaned[name] = cleanSchema(s)
			}
			out[k] = cleaned
		default:
			out[k] = val
		}
	}
	return out
}

// allowNull widens a schema to accept null: records answer null for unset fields, and
// a merge patch sends null to clear a field.
func allowNull(s obj) {
	switch t := s["type"].(type) {
	case string:
		if t != "null" {
			s["type"] = []any{t, "null"}
		}
	case []any:
		for _, x := range t {
			if x == "null" {
				return
			}
		}
		s["type"] = append(append([]any(nil), t...), "null")
	}
	if enum, ok := s["enum"].([]any); ok {
		for _, x := range enum {
			if x == nil {
				return
			}
		}
		s["enum"] = append(append([]any(nil), enum...), nil)
	}
}

// schemaMode says which document a field schema is for.
type schemaMode int

const (
	modeRecord schemaMode = iota // what the API answers
	modeInput                    // what POST accepts
	modePatch                    // what PATCH accepts
)

// fieldSchema is the schema of one live field in the given mode.
func (d *entityDoc) fieldSchema(raw any, f *schema.Field, mode schemaMode) obj {
	s, _ := cleanSchema(raw).(obj)
	if s == nil {
		s = obj{}
	}
	if _, ok := s["title"]; !ok {
		if l := labelText(f.Label); l != "" {
			s["title"] = l
		}
	}
	if _, ok := s["description"]; !ok {
		switch {
		case f.Relation != nil:
			s["description"] = "Id of the related " + f.Relation.Entity + " record."
		case f.Type == schema.TypeMoney && f.Currency != "":
			s["description"] = "Exact decimal as a string, in " + f.Currency + `, e.g. "12.50".`
		case f.Type == schema.TypeMoney || f.Type == schema.TypeDecimal || f.Type == schema.TypePercent:
			s["description"] = `Exact decimal as a string, e.g. "12.50".`
		case f.Type == schema.TypeAutonumber:
			s["description"] = "Numbered by the system."
		case f.Computed != "":
			s["description"] = "Computed by the system."
		}
	}
	if f.Type == schema.TypeChild && f.Child != nil {
		rawProp, _ := raw.(map[string]any)
		s["items"] = d.lineSchema(rawProp["items"], f.Child.Fields, mode)
	}
	switch mode {
	case modeRecord:
		if f.ReadOnly {
			s["readOnly"] = true
		}
		// Lines are always an array (empty when none) and autonumbers are always
		// filled; other unset fields are null.
		if f.Type != schema.TypeChild && f.Type != schema.TypeAutonumber && !f.Required {
			allowNull(s)
		}
	case modePatch:
		// Defaults apply when a record is created, not when a patch omits a field.
		delete(s, "default")
		// null clears a field, which a required field refuses anyway.
		if !f.Required {
			allowNull(s)
		}
	}
	return s
}

// lineSchema describes one child line. A patch replaces the lines as a whole, so
// lines in a patch are complete lines, as in an input.
func (d *entityDoc) lineSchema(rawItems any, fields []*schema.Field, mode schemaMode) obj {
	items, _ := rawItems.(map[string]any)
	rawProps, _ := items["properties"].(map[string]any)
	props := obj{"id": uuidSchema("The line id; send it back to keep the line on update.")}
	var required []any
	lineMode := mode
	if mode == modePatch {
		lineMode = modeInput
	}
	for _, cf := range fields {
		if cf.Removed || (lineMode == modeInput && cf.ReadOnly) {
			continue
		}
		props[cf.Name] = d.fieldSchema(rawProps[cf.Name], cf, lineMode)
		if lineMode == modeInput && cf.Required {
			required = append(required, cf.Name)
		}
	}
	out := obj{"type": "object", "properties": props}
	if lineMode == modeRecord {
		out["required"] = []any{"id"}
		props["id"].(obj)["readOnly"] = true
	} else {
		out["additionalProperties"] = false
	}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

// recordSchema is <Entity>: the record as the API answers it.
func (d *entityDoc) recordSchema() obj {
	props := obj{
		"id":         obj{"type": "string", "format": "uuid", "readOnly": true, "description": "Record id (UUIDv7, ordered by creation)."},
		"version":    obj{"type": "integer", "minimum": 1, "readOnly": true, "description": "Incremented by every change; send it in If-Match."},
		"created_at": obj{"type": "string", "format": "date-time", "readOnly": true},
		"created_by": nullableUUID("The user who created the record."),
		"updated_at": obj{"type": "string", "format": "date-time", "readOnly": true},
		"updated_by": nullableUUID("The user who last changed the record."),
		"deleted_at": obj{"type": []any{"string", "null"}, "format": "date-time", "readOnly": true, "description": "Set while the record is soft-deleted."},
	}
	for _, name := range []string{"created_by", "updated_by"} {
		props[name].(obj)["readOnly"] = true
	}
	expand := obj{}
	for _, f := range d.info.Fields {
		if f.Removed {
			continue
		}
		props[f.Name] = d.fieldSchema(d.props[f.Name], f, modeRecord)
		if f.Relation != nil {
			target := obj{"type": "object"}
			if base, ok := d.bases[f.Relation.Entity]; ok {
				target = schemaRef(base)
			}
			expand[f.Name] = obj{"anyOf": []any{target, obj{"type": "null"}},
				"description": "The related " + f.Relation.Entity + " record (without its lines)."}
		}
	}
	if len(expand) > 0 {
		props["_expand"] = obj{"type": "object", "readOnly": true, "properties": expand,
			"description": "Related records, by relation field, for the fields named in ?expand=."}
	}
	required := make([]any, len(schema.SystemColumns))
	for i, c := range schema.SystemColumns {
		required[i] = c
	}
	return obj{
		"type":        "object",
		"title":       d.label,
		"description": d.label + " record as the API answers it. With ?fields= only the named fields (and the system fields) are present.",
		"required":    required,
		"properties":  props,
	}
}

// inputSchema is <Entity>Input (POST) or, with patch, <Entity>Patch (PATCH): the live
// fields a client may write, closed like the engine's validator.
func (d *entityDoc) inputSchema(patch bool) obj {
	mode, title, description := modeInput, d.label+" (create)", "What POST accepts: every writable field; other fields are rejected."
	if patch {
		mode, title, description = modePatch, d.label+" (change)", "A JSON merge patch (RFC 7386): the fields to change; null clears an optional field; lines are replaced as a whole."
	}
	props := obj{}
	var required []any
	for _, f := range d.info.Fields {
		if f.Removed || f.ReadOnly {
			continue
		}
		props[f.Name] = d.fieldSchema(d.props[f.Name], f, mode)
		if !patch && f.Required {
			required = append(required, f.Name)
		}
	}
	out := obj{
		"type":                 "object",
		"title":                title,
		"description":          description,
		"additionalProperties": false,
		"properties":           props,
	}
	if len(required) > 0 {
		out["required"] = required
	}
	return out
}

// addPaths adds the record endpoints of the entity.
func (d *entityDoc) addPaths(paths obj) {
	tags := []any{d.base}
	base := "/data/" + d.info.Name
	record := schemaRef(d.base)
	recordResponse := func(description string) obj {
		return obj{"description": description, "headers": obj{"ETag": obj{"$ref": "#/components/headers/ETag"}}, "content": jsonContent(record)}
	}
	var fieldNames, relations []any
	for _, f := range d.info.Fields {
		if f.Removed {
			continue
		}
		fieldNames = append(fieldNames, f.Name)
		if f.Relation != nil {
			relations = append(relations, f.Name)
		}
	}
	fieldItems := obj{"type": "string"}
	if len(fieldNames) > 0 {
		fieldItems = obj{"enum": fieldNames}
	}
	fieldsParam := obj{"name": "fields", "in": "query", "style": "form", "explode": false,
		"description": "Comma-separated fields to return (system fields always are). Default: all.",
		"schema":      obj{"type": "array", "items": fieldItems}}
	expandItems := obj{"type": "string"}
	if len(relations) > 0 {
		expandItems = obj{"enum": relations}
	}
	expandParam := obj{"name": "expand", "in": "query", "style": "form", "explode": false,
		"description": "Comma-separated relation fields whose records to embed under _expand.",
		"schema":      obj{"type": "array", "items": expandItems}}
	patchBody := obj{"required": true, "description": "The fields to change.", "content": obj{
		"application/merge-patch+json": obj{"schema": schemaRef(d.base + "Patch")},
		"application/json":             obj{"schema": schemaRef(d.base + "Patch")},
	}}

	paths[base] = obj{
		"get": obj{
			"tags": tags, "operationId": d.base + ".list", "summary": d.label + ": list records",
			"parameters": []any{paramRef("Filter"), paramRef("Sort"), paramRef("Limit"), paramRef("Cursor"),
				paramRef("Q"), fieldsParam, expandParam, paramRef("Deleted")},
			"responses": responses(obj{"200": okJSON("One page of records.", schemaRef(d.base+"List"))}, 400, 401, 403, 404, 422),
		},
		"post": obj{
			"tags": tags, "operationId": d.base + ".create", "summary": d.label + ": create a record",
			"requestBody": jsonBody(schemaRef(d.base+"Input"), "The new record."),
			"responses":   responses(obj{"201": recordResponse("Created.")}, 400, 401, 403, 404, 409, 413, 422),
		},
	}
	paths[base+"/{id}"] = obj{
		"parameters": []any{paramRef("RecordId")},
		"get": obj{
			"tags": tags, "operationId": d.base + ".get", "summary": d.label + ": get a record",
			"parameters": []any{fieldsParam, expandParam, obj{"name": "deleted", "in": "query",
				"description": "true: also answer a soft-deleted record.", "schema": obj{"type": "boolean", "default": false}}},
			"responses": responses(obj{"200": recordResponse("The record.")}, 400, 401, 403, 404),
		},
		"patch": obj{
			"tags": tags, "operationId": d.base + ".update", "summary": d.label + ": change a record",
			"parameters":  []any{paramRef("IfMatch")},
			"requestBody": patchBody,
			"responses":   responses(obj{"200": recordResponse("The changed record.")}, 400, 401, 403, 404, 409, 412, 413, 422),
		},
		"delete": obj{
			"tags": tags, "operationId": d.base + ".delete", "summary": d.label + ": delete a record",
			"description": "Soft delete: the record leaves lists and reads and can be restored.",
			"parameters":  []any{paramRef("IfMatch")},
			"responses":   responses(obj{"204": obj{"description": "Deleted."}}, 400, 401, 403, 404, 409, 412),
		},
	}
	paths[base+"/{id}/restore"] = obj{
		"parameters": []any{paramRef("RecordId")},
		"post": obj{
			"tags": tags, "operationId": d.base + ".restore", "summary": d.label + ": restore a deleted record",
			"responses": responses(obj{"200": recordResponse("The restored record.")}, 401, 403, 404, 409),
		},
	}
	paths[base+"/{id}/history"] = obj{
		"parameters": []any{paramRef("RecordId")},
		"get": obj{
			"tags": tags, "operationId": d.base + ".history", "summary": d.label + ": history of a record",
			"description": "Every change, oldest first.",
			"responses":   responses(obj{"200": okJSON("The changes.", schemaRef("HistoryList"))}, 401, 403, 404),
		},
	}
	paths[base+"/import"] = obj{"post": obj{
		"tags": tags, "operationId": d.base + ".import", "summary": d.label + ": import CSV or NDJSON",
		"description": "Streams the body, validates every row like a create, upserts good rows by key (idempotent) " +
			"and reports rejected rows by line. Empty cells never erase stored values.",
		"parameters": []any{
			obj{"name": "key", "in": "query", "required": true, "description": "\"id\" or a unique field to match rows on.", "schema": obj{"type": "string"}},
			obj{"name": "format", "in": "query", "description": "csv (header row of field names) or ndjson; default from Content-Type.", "schema": obj{"enum": []any{"csv", "ndjson"}}},
			obj{"name": "job", "in": "query", "description": "A UUID chosen by the client to poll GET /imports/{job} for progress.", "schema": uuidSchema("Job id.")},
		},
		"requestBody": obj{"required": true, "content": obj{
			"text/csv":             obj{"schema": obj{"type": "string"}},
			"application/x-ndjson": obj{"schema": obj{"type": "string"}},
		}},
		"responses": responses(obj{"200": okJSON("The import report.", obj{"type": "object", "properties": obj{
			"job": uuidSchema("The import job."), "rows": obj{"type": "integer"}, "inserted": obj{"type": "integer"},
			"updated": obj{"type": "integer"}, "unchanged": obj{"type": "integer"}, "rejected": obj{"type": "integer"},
			"errors": obj{"type": "array", "items": obj{"type": "object", "properties": obj{"line": obj{"type": "integer"},
				"problems": obj{"type": "array", "items": obj{"type": "object"}}}}}}})}, 400, 401, 403, 404, 422),
	}}
	paths[base+"/export"] = obj{"get": obj{
		"tags": tags, "operationId": d.base + ".export", "summary": d.label + ": export CSV or XLSX",
		"description": "Streams every record matching the filter; hidden fields are left out.",
		"parameters": []any{paramRef("Filter"), paramRef("Sort"), paramRef("Q"), fieldsParam,
			obj{"name": "format", "in": "query", "schema": obj{"enum": []any{"csv", "xlsx"}, "default": "csv"}}},
		"responses": responses(obj{"200": obj{"description": "The file.", "content": obj{
			"text/csv": obj{"schema": obj{"type": "string"}},
			"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": obj{"schema": obj{"type": "string", "contentEncoding": "binary"}},
		}}}, 400, 401, 403, 404),
	}}
}
