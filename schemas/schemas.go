// Package schemas embeds Tessera's meta-schemas: the JSON Schema documents that entity,
// workflow and module definitions are validated against.
package schemas

import "embed"

// FS holds the *.schema.json files of this directory.
//
//go:embed *.schema.json
var FS embed.FS

// BaseURL prefixes every meta-schema's $id: BaseURL + file name.
const BaseURL = "https://tessera.dev/schemas/"
