package schema

import "encoding/json"

// Type is the engine's field type, derived from a property's JSON Schema.
type Type string

// The field types of the entity dialect.
const (
	TypeText        Type = "text"
	TypeLongText    Type = "long_text"
	TypeInteger     Type = "integer"
	TypeDecimal     Type = "decimal"
	TypeMoney       Type = "money"
	TypePercent     Type = "percent"
	TypeBoolean     Type = "boolean"
	TypeDate        Type = "date"
	TypeDateTime    Type = "date_time"
	TypeEnum        Type = "enum"
	TypeMultiSelect Type = "multi_select"
	TypeEmail       Type = "email"
	TypePhone       Type = "phone"
	TypeURL         Type = "url"
	TypeUUID        Type = "uuid"
	TypeRelation    Type = "relation"
	TypeChild       Type = "child"
	TypeJSON        Type = "json"
	TypeAutonumber  Type = "autonumber"
)

// Field is one property of an entity as the engine sees it.
type Field struct {
	Name     string            `json:"name"`
	ID       string            `json:"id"`
	Type     Type              `json:"type"`
	Label    map[string]string `json:"label,omitempty"`
	Required bool              `json:"required,omitempty"`
	ReadOnly bool              `json:"read_only,omitempty"`
	Index    bool              `json:"index,omitempty"`
	Unique   bool              `json:"unique,omitempty"`
	// Removed fields keep their column (data is never silently dropped) but are
	// invisible to the API.
	Removed  bool     `json:"removed,omitempty"`
	Enum     []string `json:"enum,omitempty"`
	Currency string   `json:"currency,omitempty"`
	Computed string   `json:"computed,omitempty"`
	// Default is the JSON Schema "default", applied when a new record omits the field.
	Default  json.RawMessage `json:"default,omitempty"`
	Relation *Relation       `json:"relation,omitempty"`
	// Child describes the owned lines table for TypeChild.
	Child *Child `json:"child,omitempty"`
}

// Relation is a many-to-one reference to another entity.
type Relation struct {
	Entity   string `json:"entity"`
	OnDelete string `json:"on_delete"`
}

// Child is a one-to-many set of owned lines stored in their own table.
type Child struct {
	Table  string   `json:"table"`
	Fields []*Field `json:"fields"`
}

// Column is the SQL type of the field's column; "" for child fields, which have a table.
func (f *Field) Column() string {
	switch f.Type {
	case TypeInteger:
		return "bigint"
	case TypeDecimal, TypeMoney, TypePercent:
		return "numeric"
	case TypeBoolean:
		return "boolean"
	case TypeDate:
		return "date"
	case TypeDateTime:
		return "timestamptz"
	case TypeUUID, TypeRelation:
		return "uuid"
	case TypeMultiSelect:
		return "text[]"
	case TypeJSON:
		return "jsonb"
	case TypeChild:
		return ""
	}
	return "text"
}

// Searchable fields feed the full-text search column.
func (f *Field) Searchable() bool {
	switch f.Type {
	case TypeText, TypeLongText, TypeEmail, TypePhone, TypeEnum, TypeAutonumber:
		return !f.Removed
	}
	return false
}

// Widens reports whether changing a column from one SQL type to another never fails and
// never loses information, so the planner can tell a safe change from one that must be
// checked against existing rows and confirmed.
func Widens(from, to string) bool {
	if from == to {
		return true
	}
	switch to {
	case "text":
		return from != "jsonb" && from != "text[]"
	case "numeric":
		return from == "bigint"
	case "timestamptz":
		return from == "date"
	case "jsonb":
		return true
	}
	return false
}
