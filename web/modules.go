package web

import (
	"errors"
	"io"

	"github.com/gofiber/fiber/v2"

	"github.com/tessera/tessera/engine/module"
	"github.com/tessera/tessera/modules"
	"github.com/tessera/tessera/workflows"
)

// The workflow service is the module installer's workflow store.
var _ module.WorkflowInstaller = (*workflows.Service)(nil)

// moduleHandlers serve /modules: list, install, upgrade, uninstall, export, import,
// and packaging what was designed on this instance.
type moduleHandlers struct {
	mg    *module.Manager
	audit auditFunc
}

// mountModules mounts the module routes; only administrators manage modules.
func mountModules(r fiber.Router, d Deps, audit auditFunc) {
	mg := &module.Manager{Pool: d.Pool, Engine: d.Engine, Auth: d.Auth, Builtin: modules.FS, Log: d.Logger}
	if d.Workflows != nil {
		mg.Workflows = d.Workflows
	}
	h := &moduleHandlers{mg: mg, audit: audit}
	r.Get("/modules", requireAdmin, h.list)
	r.Post("/modules/import", requireAdmin, h.importArchive)
	r.Post("/modules/package", requireAdmin, h.pack)
	r.Post("/modules/:name/install", requireAdmin, h.install)
	r.Post("/modules/:name/upgrade", requireAdmin, h.upgrade)
	r.Post("/modules/:name/uninstall", requireAdmin, h.uninstall)
	r.Get("/modules/:name/export", requireAdmin, h.export)
}

func moduleOptions(c *fiber.Ctx) module.Options {
	return module.Options{DryRun: c.QueryBool("dryRun"), Confirm: c.QueryBool("confirm"), Demo: c.QueryBool("demo")}
}

func (h *moduleHandlers) list(c *fiber.Ctx) error {
	items, err := h.mg.List(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(listResponse(items))
}

func (h *moduleHandlers) install(c *fiber.Ctx) error {
	res, err := h.mg.Install(c.UserContext(), actor(c), c.Params("name"), moduleOptions(c))
	return h.answer(c, "module.install", res, err)
}

func (h *moduleHandlers) upgrade(c *fiber.Ctx) error {
	res, err := h.mg.Upgrade(c.UserContext(), actor(c), c.Params("name"), moduleOptions(c))
	return h.answer(c, "module.upgrade", res, err)
}

func (h *moduleHandlers) uninstall(c *fiber.Ctx) error {
	name := c.Params("name")
	purge := c.QueryBool("purge")
	if err := h.mg.Uninstall(c.UserContext(), name, purge); err != nil {
		return moduleError(err)
	}
	h.audit(c, "module.uninstall", name, map[string]any{"purge": purge})
	return c.JSON(fiber.Map{"name": name, "uninstalled": true, "purged": purge})
}

func (h *moduleHandlers) export(c *fiber.Ctx) error {
	name := c.Params("name")
	data, err := h.mg.Export(c.UserContext(), name)
	if err != nil {
		return moduleError(err)
	}
	c.Set(fiber.HeaderContentType, "application/gzip")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+name+`.tar.gz"`)
	return c.Send(data)
}

// pack answers a module archive of the entities, scripts, workflows and roles the
// body names (module.PackageSpec), as they are now; problems are a 422 with file and
// JSON pointer.
func (h *moduleHandlers) pack(c *fiber.Ctx) error {
	var spec module.PackageSpec
	if err := decodeJSON(c, &spec); err != nil {
		return err
	}
	data, err := h.mg.Package(c.UserContext(), spec)
	if err != nil {
		return moduleError(err)
	}
	c.Set(fiber.HeaderContentType, "application/gzip")
	c.Set(fiber.HeaderContentDisposition, `attachment; filename="`+spec.Name+"-"+spec.Version+`.tar.gz"`)
	return c.Send(data)
}

// importArchive installs (or upgrades to) the module of a .tar.gz body.
func (h *moduleHandlers) importArchive(c *fiber.Ctx) error {
	// limitBody leaves /import bodies unread; modules are small, so read at most
	// MaxBodyBytes here.
	var data []byte
	if c.Request().IsBodyStream() {
		var err error
		data, err = io.ReadAll(io.LimitReader(c.Context().RequestBodyStream(), MaxBodyBytes+1))
		if err != nil {
			return badRequest("could not read the request body: " + err.Error())
		}
	} else {
		data = c.Body()
	}
	if len(data) > MaxBodyBytes {
		return fiber.ErrRequestEntityTooLarge
	}
	res, err := h.mg.Import(c.UserContext(), actor(c), data, moduleOptions(c))
	return h.answer(c, "module.import", res, err)
}

func (h *moduleHandlers) answer(c *fiber.Ctx, action string, res *module.Result, err error) error {
	if err != nil {
		return moduleError(err)
	}
	if !res.DryRun {
		h.audit(c, action, c.Params("name"), map[string]any{"installed": res.Installed})
	}
	return c.JSON(res)
}

// moduleError maps the module package's errors to the API's error shape; the rest
// (definition, plan, script errors) are mapped as everywhere else.
func moduleError(err error) error {
	var (
		merr  *module.Error
		deps  *module.DependencyError
		state *module.StateError
	)
	switch {
	case errors.As(err, &merr):
		details := make([]Detail, len(merr.Problems))
		for i, p := range merr.Problems {
			details[i] = Detail{Path: p.File + "#" + p.Pointer, Code: "module", Message: p.Message}
		}
		return validationFailed("module "+merr.Module+" is not valid", details...)
	case errors.As(err, &deps):
		return newError(fiber.StatusConflict, "dependency", deps.Message)
	case errors.As(err, &state):
		return newError(fiber.StatusConflict, "conflict", state.Message)
	case errors.Is(err, module.ErrUnknown):
		return notFound(err.Error())
	}
	return err
}
