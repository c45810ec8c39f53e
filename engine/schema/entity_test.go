package schema

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

const orderDef = `{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "title": "Sales order",
  "type": "object",
  "x-entity": {"name": "sales_order", "label": {"en": "Sales order", "zh-CN": "销售订单"},
    "titleField": "number", "autonumber": {"field": "number", "pattern": "SO-{YYYY}-{seq:5}"},
    "indexes": [{"fields": ["status", "-created_at"]}]},
  "required": ["number", "customer_name", "lines"],
  "properties": {
    "number": {"type": "string", "x-field-id": "f1"},
    "customer_name": {"type": "string", "maxLength": 100, "x-field-id": "f2"},
    "status": {"enum": ["draft", "confirmed"], "default": "draft", "x-field-id": "f3"},
    "total": {"type": "string", "format": "money", "x-field-id": "f4"},
    "tags": {"type": "array", "items": {"enum": ["a", "b"]}, "uniqueItems": true, "x-field-id": "f5"},
    "lines": {"type": "array", "x-child": {"entity": "sales_order_line"}, "x-field-id": "f6",
      "items": {"type": "object", "required": ["qty"], "properties": {
        "qty": {"type": "integer", "minimum": 1, "x-field-id": "l1"},
        "price": {"type": "string", "format": "decimal", "x-field-id": "l2"}}}}
  }
}`

func TestParseTypes(t *testing.T) {
	e, err := Parse([]byte(orderDef))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]Type{"number": TypeAutonumber, "customer_name": TypeText, "status": TypeEnum,
		"total": TypeMoney, "tags": TypeMultiSelect, "lines": TypeChild}
	var order []string
	for _, f := range e.Fields {
		order = append(order, f.Name)
		if want[f.Name] != f.Type {
			t.Errorf("%s: type %s, want %s", f.Name, f.Type, want[f.Name])
		}
	}
	if got := strings.Join(order, ","); got != "number,customer_name,status,total,tags,lines" {
		t.Errorf("field order %s", got)
	}
	if c := e.Field("lines").Child; c.Table != "sales_order_line" || len(c.Fields) != 2 {
		t.Errorf("child %+v", c)
	}
}

func TestValidateRecord(t *testing.T) {
	e, err := Parse([]byte(orderDef))
	if err != nil {
		t.Fatal(err)
	}
	v, err := e.Compile()
	if err != nil {
		t.Fatal(err)
	}
	rec, err := DecodeRecord([]byte(`{"customer_name": "ACME", "lines": [{"qty": 0, "price": "1.5x"}], "bogus": 1, "total": "10.10"}`))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, p := range v.Validate(rec) {
		got[p.Path] = true
	}
	for _, path := range []string{"/lines/0/qty", "/lines/0/price", ""} {
		if !got[path] {
			t.Errorf("no problem reported at %q; got %v", path, got)
		}
	}
	ok, _ := DecodeRecord([]byte(`{"customer_name": "ACME", "lines": [{"qty": 2, "price": "1.50"}], "total": "10.10"}`))
	if probs := v.Validate(ok); len(probs) > 0 {
		t.Errorf("valid record rejected: %+v", probs)
	}
}

func TestParseRejects(t *testing.T) {
	cases := map[string]struct {
		mutate func(m map[string]any)
		path   string
	}{
		"float type": {func(m map[string]any) {
			props(m)["total"] = map[string]any{"type": "number", "x-field-id": "f4"}
		}, "/properties/total"},
		"missing field id": {func(m map[string]any) {
			props(m)["x"] = map[string]any{"type": "string"}
		}, "/properties/x"},
		"duplicate field id": {func(m map[string]any) {
			props(m)["x"] = map[string]any{"type": "string", "x-field-id": "f1"}
		}, "/properties/x/x-field-id"},
		"reserved name": {func(m map[string]any) {
			props(m)["version"] = map[string]any{"type": "string", "x-field-id": "z"}
		}, "/properties"},
		"bad index field": {func(m map[string]any) {
			m["x-entity"].(map[string]any)["indexes"] = []any{map[string]any{"fields": []any{"nope"}}}
		}, "/x-entity/indexes/0/fields/0"},
		"invalid json schema keyword": {func(m map[string]any) {
			props(m)["customer_name"] = map[string]any{"type": "string", "maxLength": "ten", "x-field-id": "f2"}
		}, "/properties/customer_name/maxLength"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var m map[string]any
			_ = json.Unmarshal([]byte(orderDef), &m)
			tc.mutate(m)
			data, _ := json.Marshal(m)
			_, err := Parse(data)
			var de *DefinitionError
			if !errors.As(err, &de) {
				t.Fatalf("want DefinitionError, got %v", err)
			}
			for _, p := range de.Problems {
				if strings.HasPrefix(p.Path, tc.path) {
					return
				}
			}
			t.Fatalf("no problem at %s: %+v", tc.path, de.Problems)
		})
	}
}

func props(m map[string]any) map[string]any { return m["properties"].(map[string]any) }
