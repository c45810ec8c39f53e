package dsl

import (
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/tessera/tessera/engine/schema"
)

func validateDocument(raw []byte) []schema.Problem {
	return schema.ValidateMeta("workflow.schema.json", raw)
}

// Form is a compiled JSON Schema: a run's input schema or a task's form.
type Form struct{ schema *jsonschema.Schema }

// CompileSchema compiles a JSON Schema document (draft 2020-12 unless it says
// otherwise). Problems of the schema itself come back with paths relative to it.
func CompileSchema(raw []byte, url string) (*Form, []schema.Problem) {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, []schema.Problem{{Path: "", Code: "json", Message: "not valid JSON: " + err.Error()}}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(url, doc); err != nil {
		return nil, []schema.Problem{{Path: "", Code: "schema", Message: err.Error()}}
	}
	s, err := c.Compile(url)
	if err != nil {
		var se *jsonschema.SchemaValidationError
		var ve *jsonschema.ValidationError
		if errors.As(err, &se) && errors.As(se.Err, &ve) {
			return nil, schema.Problems(ve)
		}
		return nil, []schema.Problem{{Path: "", Code: "schema", Message: err.Error()}}
	}
	return &Form{schema: s}, nil
}

// Validate checks a JSON document (as bytes) against the form; paths are JSON
// pointers into the document.
func (f *Form) Validate(doc []byte) []schema.Problem {
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(doc))
	if err != nil {
		return []schema.Problem{{Path: "", Code: "json", Message: "not valid JSON: " + err.Error()}}
	}
	return schema.Problems(f.schema.Validate(v))
}

func at(base string, tokens ...any) string {
	var sb strings.Builder
	sb.WriteString(base)
	for _, t := range tokens {
		fmt.Fprintf(&sb, "/%v", t)
	}
	return sb.String()
}
