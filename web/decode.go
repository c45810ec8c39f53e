package web

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/gofiber/fiber/v2"
)

// maxJSONDepth bounds nesting so a hostile body cannot exhaust the stack or the CPU.
const maxJSONDepth = 64

// decodeJSON strictly decodes the request body into v: malformed JSON, trailing data,
// unknown fields and excessive nesting are 400s that name the problem.
func decodeJSON(c *fiber.Ctx, v any) error {
	body := c.Body()
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("the request body is empty; send a JSON document")
	}
	if err := checkDepth(body); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return badRequest("the request body has data after the JSON document")
	}
	return nil
}

func jsonError(err error) error {
	var (
		syntaxErr *json.SyntaxError
		typeErr   *json.UnmarshalTypeError
	)
	switch {
	case errors.As(err, &syntaxErr):
		return badRequest(fmt.Sprintf("malformed JSON at byte %d: %v", syntaxErr.Offset, syntaxErr))
	case errors.As(err, &typeErr):
		return badRequest(fmt.Sprintf("field %q must be %s", typeErr.Field, typeErr.Type))
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("malformed JSON: unexpected end of input")
	}
	return badRequest("invalid JSON: " + err.Error())
}

// checkDepth scans the raw bytes once, counting nesting outside strings.
func checkDepth(body []byte) error {
	depth, inString, escaped := 0, false, false
	for _, b := range body {
		switch {
		case escaped:
			escaped = false
		case inString && b == '\\':
			escaped = true
		case b == '"':
			inString = !inString
		case inString:
		case b == '{' || b == '[':
			depth++
			if depth > maxJSONDepth {
				return badRequest(fmt.Sprintf("JSON nested deeper than %d levels", maxJSONDepth))
			}
		case b == '}' || b == ']':
			depth--
		}
	}
	return nil
}

// listResponse is the list shape every collection endpoint answers with.
func listResponse[T any](items []T) fiber.Map {
	if items == nil {
		items = []T{}
	}
	return fiber.Map{"items": items, "next_cursor": nil, "total": len(items), "total_is_estimate": false}
}
