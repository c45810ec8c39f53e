package schema

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
)

// DecodeRecord decodes a JSON record keeping numbers as json.Number, so integers and
// decimals are never rounded through float64.
func DecodeRecord(data []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var rec map[string]any
	if err := dec.Decode(&rec); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("data after the JSON document")
	}
	if rec == nil {
		return nil, errors.New("the record must be a JSON object")
	}
	return rec, nil
}

// DecodeValue decodes one JSON value keeping numbers as json.Number.
func DecodeValue(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	err := dec.Decode(&v)
	return v, err
}
