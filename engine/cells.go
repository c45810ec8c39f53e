package engine

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"

	"github.com/tessera/tessera/engine/schema"
)

// The spreadsheet form of field values, shared by CSV/XLSX export and CSV import so a
// file exported from Tessera imports back unchanged.

// listSeparator joins multi-select values in one cell.
const listSeparator = ";"

var integerCell = regexp.MustCompile(`^-?[0-9]+$`)

// cellValue converts a spreadsheet cell to the JSON value of the field. A cell that
// does not parse is passed on as text, so validation reports it with the field's rules.
func cellValue(f *schema.Field, cell string) any {
	switch f.Type {
	case schema.TypeInteger:
		if integerCell.MatchString(cell) {
			return json.Number(cell)
		}
	case schema.TypeBoolean:
		switch strings.ToLower(cell) {
		case "true", "1", "yes":
			return true
		case "false", "0", "no":
			return false
		}
	case schema.TypeMultiSelect:
		var out []any
		for _, v := range strings.Split(cell, listSeparator) {
			if v = strings.TrimSpace(v); v != "" {
				out = append(out, v)
			}
		}
		return out
	case schema.TypeJSON:
		if v, err := schema.DecodeValue([]byte(cell)); err == nil {
			return v
		}
	}
	return cell
}

// cellText renders a JSON value (as read from the database) for a spreadsheet cell.
func cellText(f *schema.Field, raw json.RawMessage) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	switch f.Type {
	case schema.TypeMultiSelect:
		var items []string
		if json.Unmarshal(raw, &items) == nil {
			return strings.Join(items, listSeparator)
		}
	case schema.TypeJSON:
		return string(raw)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// exportFields are the columns of an export: the id, then the requested (or all) flat
// fields; child lines do not fit one row.
func exportFields(ent *schema.Entity, only []string) []*schema.Field {
	var out []*schema.Field
	for _, f := range ent.LiveFields() {
		if f.Type == schema.TypeChild || (only != nil && !slices.Contains(only, f.Name)) {
			continue
		}
		out = append(out, f)
	}
	return out
}
