// Package schemas embeds Tessera's meta-schemas: the JSON Schema documents that entity,
// workflow and module definitions are validated against.
package schemas

import "embed"

// FS holds the *.schema.json files of this directory.
//
//go:embed *.schema.json
var FS embed.FS

// EntityURL is the $id of the entity meta-schema.
const EntityURL = "https://tessera.dev/schemas/entity.schema.json"
