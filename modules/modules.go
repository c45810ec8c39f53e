// Package modules holds Tessera's built-in modules as data: one folder per module with
// its module.json manifest (schemas/module.schema.json), entities, scripts, roles and
// seed/demo data. No Go code here knows what any of them means.
package modules

import "embed"

// FS holds every built-in module folder.
//
//go:embed all:*
var FS embed.FS
