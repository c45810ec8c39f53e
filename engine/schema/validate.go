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
	metaMu      sync.Mutex
	metaSchemas = map[string]*jsonschema.Schema{}
)

// metaSchema compiles one of the embedded meta-schemas (schemas/<file>) once.
func metaSchema(file string) (*jsonschema.Schema, error) {
	metaMu.Lock()
	defer metaMu.Unlock()
	if s := metaSchemas[file]; s != nil {
		return s, nil
	}
	data, err := schemas.FS.ReadFile(file)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	url := schemas.BaseURL + file
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	if err := c.AddResource(url, doc); err != nil {
		return nil, err
	}
	s, err := c.Compile(url)
	if err != nil {
		return nil, err
	}
	metaSchemas[file] = s
	return s, nil
}

// ValidateMeta checks a document against one of Tessera's meta-schemas (entity,
// workflow, module: schemas/<file>); problems are JSON pointers into the document.
func ValidateMeta(file string, document []byte) []Problem {
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(document))
	if err != nil {
		return []Problem{{Path: "", Code: "json", Message: "not valid JSON: " + err.Error()}}
	}
	meta, err := metaSchema(file)
	if err != nil {
		return []Problem{{Path: "", Message: file + ": " + err.Error()}}
	}
	return Problems(meta.Validate(doc))
}

func validateDefinition(definition []byte) []Problem {
	return ValidateMeta("entity.schema.json", definition)
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
			return &DefinitionError{Problems: Problems(ve)}
		}
	}
	return &DefinitionError{Problems: []Problem{{Path: "", Message: err.Error()}}}
}

// Validate checks a record decoded with json.Number (see DecodeRecord); the problems'
// paths are JSON pointers into the record.
func (v *Validator) Validate(record any) []Problem {
	return Problems(v.schema.Validate(record))
}

// Problems flattens a jsonschema validation error into one problem per failing leaf,
// located by a JSON pointer into the validated document.
func Problems(err error) []Problem {
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
		msg := e.ErrorKind.LocalizedString(printer)
		if msg == "false schema" {
			// What unevaluatedProperties/additionalProperties: false report for a key no
			// branch allows.
			code, msg = "unknown_property", "not a property of this object"
		}
		out = append(out, Problem{Path: Pointer(e.InstanceLocation), Code: code, Message: msg})
	}
	walk(ve)
	return out
}

// Pointer is the JSON pointer (RFC 6901) of a path of object keys and array indexes.
func Pointer(tokens []string) string {
	var sb strings.Builder
	for _, t := range tokens {
		sb.WriteByte('/')
		t = strings.ReplaceAll(t, "~", "~0")
		sb.WriteString(strings.ReplaceAll(t, "/", "~1"))
	}
	return sb.String()
}
