package dsl

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/schemas"
)

// SchemaURL is the $id of the workflow meta-schema.
const SchemaURL = "https://tessera.dev/schemas/workflow.schema.json"

var printer = message.NewPrinter(language.English)

var (
	metaOnce   sync.Once
	metaSchema *jsonschema.Schema
	metaErr    error
)

func workflowMetaSchema() (*jsonschema.Schema, error) {
	metaOnce.Do(func() {
		data, err := schemas.FS.ReadFile("workflow.schema.json")
		if err != nil {
			metaErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			metaErr = err
			return
		}
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		if err := c.AddResource(SchemaURL, doc); err != nil {
			metaErr = err
			return
		}
		metaSchema, metaErr = c.Compile(SchemaURL)
	})
	return metaSchema, metaErr
}

func validateDocument(raw []byte) []schema.Problem {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return []schema.Problem{{Path: "", Code: "json", Message: "not valid JSON: " + err.Error()}}
	}
	meta, err := workflowMetaSchema()
	if err != nil {
		return []schema.Problem{{Path: "", Message: "workflow meta-schema: " + err.Error()}}
	}
	return toProblems(meta.Validate(doc))
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
			return nil, toProblems(ve)
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
	return toProblems(f.schema.Validate(v))
}

func toProblems(err error) []schema.Problem {
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []schema.Problem{{Path: "", Message: err.Error()}}
	}
	var out []schema.Problem
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		kw := e.ErrorKind.KeywordPath()
		code := ""
		if len(kw) > 0 {
			code = kw[len(kw)-1]
		}
		msg := e.ErrorKind.LocalizedString(printer)
		if msg == "false schema" {
			// What unevaluatedProperties: false reports for a key no branch allows.
			code, msg = "unknown_property", "not a property of this object (or of this step type)"
		}
		out = append(out, schema.Problem{Path: pointer(e.InstanceLocation), Code: code, Message: msg})
	}
	walk(ve)
	return out
}

func pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		sb.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return sb.String()
}

func at(base string, tokens ...any) string {
	var sb strings.Builder
	sb.WriteString(base)
	for _, t := range tokens {
		fmt.Fprintf(&sb, "/%v", t)
	}
	return sb.String()
}
