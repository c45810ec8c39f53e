package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/tessera/tessera/schemas"
)

var printer = message.NewPrinter(language.English)

// decimalPattern accepts the exact decimals the engine stores in numeric columns.
var decimalPattern = regexp.MustCompile(`^-?(0|[1-9][0-9]{0,27})(\.[0-9]{1,12})?$`)

var phonePattern = regexp.MustCompile(`^\+?[0-9 ()./-]{3,32}$`)

func stringFormat(name string, re *regexp.Regexp, want string) *jsonschema.Format {
	return &jsonschema.Format{Name: name, Validate: func(v any) error {
		s, ok := v.(string)
		if !ok || re.MatchString(s) {
			return nil
		}
		return fmt.Errorf("must be %s", want)
	}}
}

func newCompiler() *jsonschema.Compiler {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	exact := `an exact decimal written as a string, such as "12.50"`
	c.RegisterFormat(stringFormat("decimal", decimalPattern, exact))
	c.RegisterFormat(stringFormat("money", decimalPattern, exact))
	c.RegisterFormat(stringFormat("percent", decimalPattern, exact))
	c.RegisterFormat(stringFormat("phone", phonePattern, "a phone number"))
	return c
}

var (
	metaOnce   sync.Once
	metaSchema *jsonschema.Schema
	metaErr    error
)

func entityMetaSchema() (*jsonschema.Schema, error) {
	metaOnce.Do(func() {
		data, err := schemas.FS.ReadFile("entity.schema.json")
		if err != nil {
			metaErr = err
			return
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
		if err != nil {
			metaErr = err
			return
		}
		c := newCompiler()
		if err := c.AddResource(schemas.EntityURL, doc); err != nil {
			metaErr = err
			return
		}
		metaSchema, metaErr = c.Compile(schemas.EntityURL)
	})
	return metaSchema, metaErr
}

func validateDefinition(definition []byte) []Problem {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(definition))
	if err != nil {
		return []Problem{{Path: "", Code: "json", Message: "not valid JSON: " + err.Error()}}
	}
	meta, err := entityMetaSchema()
	if err != nil {
		return []Problem{{Path: "", Message: "entity meta-schema: " + err.Error()}}
	}
	return toProblems(meta.Validate(doc))
}

// Validator checks records of one entity version.
type Validator struct{ schema *jsonschema.Schema }

// Compile builds the record validator of the entity. The record schema is the
// definition with additionalProperties closed (unknown fields are rejected, not
// dropped), removed fields taken out, and engine-filled fields (autonumbers, computed)
// not required from the client.
func (e *Entity) Compile() (*Validator, error) {
	var doc map[string]any
	dec := json.NewDecoder(bytes.NewReader(e.Definition))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	closeObject(doc, e.Fields, false)
	delete(doc, "$schema")
	delete(doc, "$id")
	url := fmt.Sprintf("mem://tessera/entities/%s/%d.json", e.Name, e.Version)
	c := newCompiler()
	if err := c.AddResource(url, doc); err != nil {
		return nil, definitionErr(err)
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, definitionErr(err)
	}
	return &Validator{schema: s}, nil
}

func closeObject(obj map[string]any, fields []*Field, isChild bool) {
	obj["additionalProperties"] = false
	props, _ := obj["properties"].(map[string]any)
	var required []any
	if req, ok := obj["required"].([]any); ok {
		required = req
	}
	for _, f := range fields {
		if f.Removed {
			delete(props, f.Name)
			continue
		}
		if f.ReadOnly {
			required = slices.DeleteFunc(required, func(v any) bool { return v == f.Name })
		}
		if f.Child != nil {
			prop, _ := props[f.Name].(map[string]any)
			items, _ := prop["items"].(map[string]any)
			closeObject(items, f.Child.Fields, true)
		}
	}
	if isChild {
		// Lines carry their id so an update keeps them.
		props["id"] = map[string]any{"type": "string", "format": "uuid"}
	}
	if required != nil {
		obj["required"] = required
	}
}

func definitionErr(err error) error {
	var se *jsonschema.SchemaValidationError
	if errors.As(err, &se) {
		var ve *jsonschema.ValidationError
		if errors.As(se.Err, &ve) {
			return &DefinitionError{Problems: toProblems(ve)}
		}
	}
	return &DefinitionError{Problems: []Problem{{Path: "", Message: err.Error()}}}
}

// Validate checks a record decoded with json.Number (see DecodeRecord); the problems'
// paths are JSON pointers into the record.
func (v *Validator) Validate(record any) []Problem {
	return toProblems(v.schema.Validate(record))
}

func toProblems(err error) []Problem {
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []Problem{{Path: "", Message: err.Error()}}
	}
	var out []Problem
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
		out = append(out, Problem{Path: pointer(e.InstanceLocation), Code: code, Message: e.ErrorKind.LocalizedString(printer)})
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
