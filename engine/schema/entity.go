// Package schema parses entity definitions (JSON Schema 2020-12 plus Tessera's x-
// keywords) into the engine's field model and compiles record validators.
package schema

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strings"
)

// Entity is a parsed entity definition.
type Entity struct {
	Name       string            `json:"name"`
	Module     string            `json:"module,omitempty"`
	Label      map[string]string `json:"label,omitempty"`
	TitleField string            `json:"title_field,omitempty"`
	Autonumber *Autonumber       `json:"autonumber,omitempty"`
	Indexes    []Index           `json:"indexes,omitempty"`
	Hooks      map[string]string `json:"hooks,omitempty"`
	// Fields in document order, including removed ones.
	Fields []*Field `json:"fields"`
	// Definition is the document as submitted (after validation).
	Definition json.RawMessage `json:"-"`
	// Version is the stored version this was parsed from; 0 before it is stored.
	Version int `json:"version"`
}

// Autonumber fills a text field from a pattern such as "SO-{YYYY}-{seq:5}".
type Autonumber struct {
	Field   string `json:"field"`
	Pattern string `json:"pattern"`
}

// Index is a composite index; a leading "-" on a field means descending.
type Index struct {
	Fields []string `json:"fields"`
	Unique bool     `json:"unique,omitempty"`
}

// Problem is one defect of a definition, located by a JSON pointer into it.
type Problem struct {
	Path    string `json:"path"`
	Code    string `json:"code,omitempty"`
	Message string `json:"message"`
}

// DefinitionError lists every problem found in a definition.
type DefinitionError struct{ Problems []Problem }

func (e *DefinitionError) Error() string {
	msgs := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		msgs[i] = p.Path + ": " + p.Message
	}
	return "invalid entity definition: " + strings.Join(msgs, "; ")
}

// Field returns the live (not removed) field with the name, or nil.
func (e *Entity) Field(name string) *Field {
	for _, f := range e.Fields {
		if f.Name == name && !f.Removed {
			return f
		}
	}
	return nil
}

// LiveFields are the fields the API reads and writes.
func (e *Entity) LiveFields() []*Field {
	var out []*Field
	for _, f := range e.Fields {
		if !f.Removed {
			out = append(out, f)
		}
	}
	return out
}

// rawProperty is the part of a property schema the engine reads.
type rawProperty struct {
	Type     any               `json:"type"`
	Format   string            `json:"format"`
	Enum     []string          `json:"enum"`
	ReadOnly bool              `json:"readOnly"`
	FieldID  string            `json:"x-field-id"`
	Label    map[string]string `json:"x-label"`
	Title    string            `json:"title"`
	Relation *struct {
		Entity   string `json:"entity"`
		OnDelete string `json:"onDelete"`
	} `json:"x-relation"`
	Child *struct {
		Entity string `json:"entity"`
	} `json:"x-child"`
	Computed string          `json:"x-computed"`
	Index    bool            `json:"x-index"`
	Unique   bool            `json:"x-unique"`
	Currency string          `json:"x-currency"`
	Removed  bool            `json:"x-removed"`
	UI       map[string]any  `json:"x-ui"`
	Items    json.RawMessage `json:"items"`
	Default  json.RawMessage `json:"default"`
}

type rawEntity struct {
	Required   []string        `json:"required"`
	Properties json.RawMessage `json:"properties"`
	XEntity    struct {
		Name       string            `json:"name"`
		Module     string            `json:"module"`
		Label      map[string]string `json:"label"`
		TitleField string            `json:"titleField"`
		Autonumber *Autonumber       `json:"autonumber"`
		Indexes    []Index           `json:"indexes"`
		Hooks      map[string]string `json:"hooks"`
	} `json:"x-entity"`
}

// Parse validates a definition against the entity meta-schema and the engine's own
// rules, and returns the field model. Every problem found is reported, each with a JSON
// pointer into the definition.
func Parse(definition []byte) (*Entity, error) {
	// The meta-schema's problems and the engine's own are reported together, so an
	// author fixes a definition in one round.
	problems := validateDefinition(definition)
	var raw rawEntity
	if err := json.Unmarshal(definition, &raw); err != nil {
		return nil, &DefinitionError{Problems: append(problems, Problem{Path: "", Message: err.Error()})}
	}
	e := &Entity{
		Name: raw.XEntity.Name, Module: raw.XEntity.Module, Label: raw.XEntity.Label,
		TitleField: raw.XEntity.TitleField, Autonumber: raw.XEntity.Autonumber,
		Indexes: raw.XEntity.Indexes, Hooks: raw.XEntity.Hooks,
		Definition: json.RawMessage(definition),
	}
	fields, probs := parseProperties(raw.Properties, raw.Required, "/properties", e.Name, true)
	e.Fields = fields
	problems = append(problems, probs...)
	problems = append(problems, checkEntity(e)...)
	if len(problems) > 0 {
		return nil, &DefinitionError{Problems: problems}
	}
	// The definition must also be a valid JSON Schema for records (e.g. "minimum": "x").
	if _, err := e.Compile(); err != nil {
		return nil, err
	}
	return e, nil
}

// parseProperties reads properties in document order: column order in the table and
// field order in generated forms follow the author's order.
func parseProperties(props json.RawMessage, required []string, base, entity string, allowChild bool) ([]*Field, []Problem) {
	names, values, err := orderedObject(props)
	if err != nil {
		return nil, []Problem{{Path: base, Message: err.Error()}}
	}
	var (
		fields   []*Field
		problems []Problem
	)
	for i, name := range names {
		path := base + "/" + name
		var p rawProperty
		if err := json.Unmarshal(values[i], &p); err != nil {
			problems = append(problems, Problem{Path: path, Message: err.Error()})
			continue
		}
		f := &Field{
			Name: name, ID: p.FieldID, Label: p.Label, ReadOnly: p.ReadOnly,
			Index: p.Index, Unique: p.Unique, Removed: p.Removed, Currency: p.Currency,
			Computed: p.Computed, Required: slices.Contains(required, name), Default: p.Default,
		}
		if f.Label == nil && p.Title != "" {
			f.Label = map[string]string{"en": p.Title}
		}
		typ, msg := fieldType(p)
		if msg != "" {
			problems = append(problems, Problem{Path: path, Code: "type", Message: msg})
			continue
		}
		f.Type = typ
		switch typ {
		case TypeEnum:
			f.Enum = p.Enum
		case TypeMultiSelect:
			var items struct {
				Enum []string `json:"enum"`
			}
			_ = json.Unmarshal(p.Items, &items)
			f.Enum = items.Enum
		case TypeRelation:
			f.Relation = &Relation{Entity: p.Relation.Entity, OnDelete: p.Relation.OnDelete}
			if f.Relation.OnDelete == "" {
				f.Relation.OnDelete = "restrict"
			}
		case TypeChild:
			if !allowChild {
				problems = append(problems, Problem{Path: path, Code: "x-child", Message: "child lines cannot be nested inside child lines"})
				continue
			}
			var items struct {
				Type       string          `json:"type"`
				Required   []string        `json:"required"`
				Properties json.RawMessage `json:"properties"`
			}
			if err := json.Unmarshal(p.Items, &items); err != nil || items.Type != "object" || len(items.Properties) == 0 {
				problems = append(problems, Problem{Path: path + "/items", Code: "x-child", Message: `child lines need "items": {"type": "object", "properties": {…}}`})
				continue
			}
			childFields, probs := parseProperties(items.Properties, items.Required, path+"/items/properties", p.Child.Entity, false)
			problems = append(problems, probs...)
			f.Child = &Child{Table: p.Child.Entity, Fields: childFields}
		}
		fields = append(fields, f)
	}
	return fields, problems
}

// fieldType derives the engine type from the JSON Schema keywords; a message explains
// a combination the engine cannot store.
func fieldType(p rawProperty) (Type, string) {
	typ, _ := p.Type.(string)
	switch {
	case p.Relation != nil:
		if typ != "string" || p.Format != "uuid" {
			return "", `a relation is {"type": "string", "format": "uuid", "x-relation": {…}}`
		}
		return TypeRelation, ""
	case p.Child != nil:
		if typ != "array" {
			return "", `child lines are {"type": "array", "x-child": {…}, "items": {…}}`
		}
		return TypeChild, ""
	case len(p.Enum) > 0:
		if typ != "" && typ != "string" {
			return "", "enum values must be strings"
		}
		return TypeEnum, ""
	}
	switch typ {
	case "string":
		switch p.Format {
		case "decimal":
			return TypeDecimal, ""
		case "money":
			return TypeMoney, ""
		case "percent":
			return TypePercent, ""
		case "date":
			return TypeDate, ""
		case "date-time":
			return TypeDateTime, ""
		case "email":
			return TypeEmail, ""
		case "phone":
			return TypePhone, ""
		case "uri":
			return TypeURL, ""
		case "uuid":
			return TypeUUID, ""
		}
		if w, _ := p.UI["widget"].(string); w == "textarea" {
			return TypeLongText, ""
		}
		return TypeText, ""
	case "integer":
		return TypeInteger, ""
	case "number":
		return "", `floating-point numbers are not stored; use {"type": "string", "format": "decimal"} for exact values or "integer"`
	case "boolean":
		return TypeBoolean, ""
	case "array":
		var items struct {
			Type string   `json:"type"`
			Enum []string `json:"enum"`
		}
		_ = json.Unmarshal(p.Items, &items)
		if len(items.Enum) > 0 {
			return TypeMultiSelect, ""
		}
		return TypeJSON, ""
	case "object":
		return TypeJSON, ""
	}
	return "", `"type" is required: string, integer, boolean, array or object`
}

var seqPattern = regexp.MustCompile(`\{seq(?::([1-9][0-9]?))?\}`)

// checkEntity applies the rules a meta-schema cannot express: unique field ids,
// references between parts of the definition.
func checkEntity(e *Entity) []Problem {
	var problems []Problem
	ids := map[string]string{}
	var checkIDs func(fields []*Field, base string)
	checkIDs = func(fields []*Field, base string) {
		for _, f := range fields {
			if slices.Contains(reservedNames, f.Name) {
				problems = append(problems, Problem{Path: base + "/" + f.Name, Code: "reserved",
					Message: fmt.Sprintf("%q is a system column; choose another name", f.Name)})
			}
			if other, dup := ids[f.ID]; dup {
				problems = append(problems, Problem{Path: base + "/" + f.Name + "/x-field-id", Code: "unique",
					Message: fmt.Sprintf("x-field-id %q is already used by %s", f.ID, other)})
			}
			ids[f.ID] = f.Name
			if f.Child != nil {
				checkIDs(f.Child.Fields, base+"/"+f.Name+"/items/properties")
			}
		}
	}
	checkIDs(e.Fields, "/properties")
	if e.TitleField != "" && e.Field(e.TitleField) == nil {
		problems = append(problems, Problem{Path: "/x-entity/titleField", Message: fmt.Sprintf("no field %q", e.TitleField)})
	}
	if a := e.Autonumber; a != nil {
		f := e.Field(a.Field)
		switch {
		case f == nil:
			problems = append(problems, Problem{Path: "/x-entity/autonumber/field", Message: fmt.Sprintf("no field %q", a.Field)})
		case f.Type != TypeText:
			problems = append(problems, Problem{Path: "/x-entity/autonumber/field", Message: fmt.Sprintf("field %q must be a plain string", a.Field)})
		default:
			f.Type = TypeAutonumber
			f.ReadOnly = true
			f.Unique = true
		}
		if len(seqPattern.FindAllString(a.Pattern, -1)) != 1 {
			problems = append(problems, Problem{Path: "/x-entity/autonumber/pattern", Message: "the pattern needs exactly one {seq} or {seq:N}"})
		}
	}
	for i, idx := range e.Indexes {
		for j, name := range idx.Fields {
			name = strings.TrimPrefix(name, "-")
			if e.Field(name) == nil && !slices.Contains(SystemColumns, name) {
				problems = append(problems, Problem{Path: fmt.Sprintf("/x-entity/indexes/%d/fields/%d", i, j), Message: fmt.Sprintf("no field %q", name)})
			} else if f := e.Field(name); f != nil && f.Type == TypeChild {
				problems = append(problems, Problem{Path: fmt.Sprintf("/x-entity/indexes/%d/fields/%d", i, j), Message: "child lines cannot be indexed"})
			}
		}
	}
	for _, f := range e.Fields {
		if f.Computed != "" {
			f.ReadOnly = true
		}
		if f.Type == TypeChild && f.Child.Table == e.Name {
			problems = append(problems, Problem{Path: "/properties/" + f.Name + "/x-child/entity", Message: "the lines table needs its own name"})
		}
	}
	return problems
}

// SystemColumns exist on every entity table and are maintained by the engine.
var SystemColumns = []string{"id", "version", "created_at", "created_by", "updated_at", "updated_by", "deleted_at"}

// reservedNames cannot be field names: system columns, the lines' own columns and the
// search column.
var reservedNames = append(slices.Clone(SystemColumns), "parent_id", "position", "search")

// orderedObject splits a JSON object into its keys in document order and raw values.
func orderedObject(data json.RawMessage) ([]string, []json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil || tok != json.Delim('{') {
		return nil, nil, fmt.Errorf("must be an object")
	}
	var (
		keys   []string
		values []json.RawMessage
	)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		keys = append(keys, tok.(string))
		values = append(values, v)
	}
	return keys, values, nil
}
