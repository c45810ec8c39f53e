package module

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"path"
	"slices"
	"strings"
	"testing/fstest"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine"
)

// MaxArchiveBytes bounds an archive's unpacked size: modules are metadata, not data.
const MaxArchiveBytes = 64 << 20

// Export packs an installed module as it is now in this database: the current
// definitions of its entities (with their x-field-ids, and fields users added), its
// scripts, roles and workflows, and its forms, views and reports, under a manifest at
// the installed version. Seed and demo data are not exported (they are the original
// package's).
func (mg *Manager) Export(ctx context.Context, name string) ([]byte, error) {
	var raw, opaqueRaw []byte
	err := mg.Pool.QueryRow(ctx, `SELECT manifest, files FROM tessera.modules WHERE name = $1`, name).Scan(&raw, &opaqueRaw)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("module %q is not installed: %w", name, ErrUnknown)
	}
	if err != nil {
		return nil, err
	}
	var mf Manifest
	if err := json.Unmarshal(raw, &mf); err != nil {
		return nil, err
	}
	out := Manifest{Name: mf.Name, Version: mf.Version, Description: mf.Description, Label: mf.Label,
		Dependencies: mf.Dependencies, Forms: mf.Forms, Views: mf.Views, Reports: mf.Reports}
	files := map[string][]byte{}

	rows, err := mg.Pool.Query(ctx, `SELECT s.name, v.source FROM tessera.scripts s
		JOIN tessera.script_versions v ON v.name = s.name AND v.version = s.current_version
		WHERE s.module = $1 ORDER BY s.name`, name)
	if err != nil {
		return nil, err
	}
	var sname, source string
	if _, err := pgx.ForEachRow(rows, []any{&sname, &source}, func() error {
		file := "scripts/" + strings.TrimPrefix(sname, name+".") + ".js"
		out.Scripts = append(out.Scripts, file)
		files[file] = []byte(source)
		return nil
	}); err != nil {
		return nil, err
	}

	ents, err := mg.Engine.ListEntities(ctx)
	if err != nil {
		return nil, err
	}
	for _, e := range ents {
		if e.Module != name {
			continue
		}
		def, err := moduleDefinition(name, out.Scripts, e.Definition)
		if err != nil {
			return nil, fmt.Errorf("entity %s: %w", e.Name, err)
		}
		file := "entities/" + e.Name + ".json"
		out.Entities = append(out.Entities, file)
		files[file] = def
	}

	roles, err := mg.Auth.ListRoles(ctx)
	if err != nil {
		return nil, err
	}
	for _, r := range roles {
		if r.Module != name {
			continue
		}
		r.Module = ""
		data, _ := json.MarshalIndent(r, "", "  ")
		file := "roles/" + r.Name + ".json"
		out.Roles = append(out.Roles, file)
		files[file] = data
	}

	var opaque map[string]json.RawMessage
	_ = json.Unmarshal(opaqueRaw, &opaque)
	for file, data := range opaque {
		files[file] = data
	}
	workflows, err := mg.currentWorkflows(ctx, mf, opaque)
	if err != nil {
		return nil, err
	}
	for _, file := range mf.Workflows {
		if data, ok := workflows[file]; ok {
			out.Workflows = append(out.Workflows, file)
			files[file] = data
		}
	}
	manifest, _ := json.MarshalIndent(out, "", "  ")
	files[ManifestFile] = manifest
	return WriteArchive(files)
}

// currentWorkflows maps a module's workflow files to the workflows' current
// definitions in the workflow store. A workflow's name is read from the copy kept at
// install or, for a module installed before copies were kept, from the catalog's copy
// of the module; a workflow the store does not have (or every one, without a store)
// keeps that copy. A file whose name cannot be found is left out.
func (mg *Manager) currentWorkflows(ctx context.Context, mf Manifest, kept map[string]json.RawMessage) (map[string][]byte, error) {
	out := map[string][]byte{}
	var catalog map[string]*Module
	for _, file := range mf.Workflows {
		data := []byte(kept[file])
		if data == nil {
			if catalog == nil {
				var err error
				if catalog, err = mg.Catalog(ctx); err != nil {
					return nil, err
				}
			}
			if m := catalog[mf.Name]; m != nil {
				data = m.Files[file]
			}
		}
		name := workflowName(data)
		if name == "" {
			continue
		}
		if mg.Workflows != nil {
			cur, err := mg.Workflows.GetWorkflow(ctx, name)
			switch {
			case err == nil:
				data = cur
			case !errors.Is(err, engine.ErrNotFound):
				return nil, fmt.Errorf("export workflow %s: %w", name, err)
			}
		}
		out[file] = data
	}
	return out, nil
}

// workflowName reads a workflow definition's "name" without a full parse.
func workflowName(def []byte) string {
	var head struct {
		Name string `json:"name"`
	}
	_ = json.Unmarshal(def, &head)
	return head.Name
}

// WriteArchive packs files (module-relative path → bytes) as a .tar.gz, in path
// order so the same module gives the same archive.
func WriteArchive(files map[string][]byte) ([]byte, error) {
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	for _, name := range slices.Sorted(maps.Keys(files)) {
		data := files[name]
		hdr := &tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}
		if err := tw.WriteHeader(hdr); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	if err := gz.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ModuleFiles is every file of a loaded module, for WriteArchive.
func ModuleFiles(m *Module) map[string][]byte { return m.Files }

// ReadArchive loads a module from a .tar.gz made by Export or WriteArchive (one
// leading folder, as `tar czf m.tgz crm/` makes, is accepted).
func ReadArchive(data []byte) (*Module, error) {
	gz, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("module archive: not a .tar.gz: %w", err)
	}
	tr := tar.NewReader(io.LimitReader(gz, MaxArchiveBytes))
	fsys := fstest.MapFS{}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("module archive: %w", err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if strings.HasPrefix(name, "../") || strings.HasPrefix(name, "/") {
			return nil, fmt.Errorf("module archive: path %s leaves the module", hdr.Name)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("module archive: %w", err)
		}
		fsys[name] = &fstest.MapFile{Data: body, Mode: 0o644}
	}
	if _, ok := fsys[ManifestFile]; !ok {
		// Accept one leading folder.
		for name := range fsys {
			if dir, rest, ok := strings.Cut(name, "/"); ok && rest == ManifestFile {
				sub := fstest.MapFS{}
				for n, f := range fsys {
					if r, ok := strings.CutPrefix(n, dir+"/"); ok {
						sub[r] = f
					}
				}
				fsys = sub
				break
			}
		}
	}
	return Load(fsys)
}

// StorePackage keeps an uploaded archive so the catalog offers its module (for an
// upgrade or a re-install after uninstall).
func (mg *Manager) StorePackage(ctx context.Context, m *Module, archive []byte) error {
	_, err := mg.Pool.Exec(ctx, `INSERT INTO tessera.module_packages (name, version, archive) VALUES ($1, $2, $3)
		ON CONFLICT (name, version) DO UPDATE SET archive = EXCLUDED.archive, uploaded_at = now()`,
		m.Manifest.Name, m.Manifest.Version, archive)
	return err
}

// Import installs an archive's module, or upgrades to it when the module is
// installed. The archive is kept in the catalog only when the operation succeeds
// (a dry run keeps nothing).
func (mg *Manager) Import(ctx context.Context, actor engine.Actor, archive []byte, opts Options) (*Result, error) {
	m, err := ReadArchive(archive)
	if err != nil {
		return nil, err
	}
	if _, err := ParseVersion(m.Manifest.Version); err != nil {
		return nil, &Error{Module: m.Manifest.Name, Problems: []Problem{{File: ManifestFile, Pointer: "/version", Message: err.Error()}}}
	}
	installed, err := mg.Installed(ctx)
	if err != nil {
		return nil, err
	}
	var res *Result
	if _, ok := installed[m.Manifest.Name]; ok {
		res, err = mg.UpgradeModule(ctx, actor, m, opts)
	} else {
		res, err = mg.InstallModule(ctx, actor, m, opts)
	}
	if err != nil || opts.DryRun {
		return res, err
	}
	return res, mg.StorePackage(ctx, m, archive)
}
