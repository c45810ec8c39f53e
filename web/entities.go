package web

import (
	"errors"

	"github.com/gofiber/fiber/v2"

	"github.com/tessera/tessera/engine"
)

type entityHandlers struct {
	engine *engine.Engine
	audit  auditFunc
}

// list shows the entities the user may read, as the user sees them.
func (h *entityHandlers) list(c *fiber.Ctx) error {
	ents, err := h.engine.ListEntities(c.UserContext())
	if err != nil {
		return err
	}
	visible := []*engine.EntityInfo{}
	for _, ent := range ents {
		if v := engine.VisibleEntity(actor(c), ent); v != nil {
			visible = append(visible, v)
		}
	}
	return c.JSON(listResponse(visible))
}

func (h *entityHandlers) get(c *fiber.Ctx) error {
	ent, err := h.engine.GetEntity(c.UserContext(), c.Params("name"))
	if err != nil {
		return err
	}
	v := engine.VisibleEntity(actor(c), ent)
	if v == nil {
		return notFound("entity " + c.Params("name") + " not found")
	}
	return c.JSON(v)
}

// put creates or migrates an entity. ?dryRun=1 answers the plan and changes nothing;
// destructive plans need ?confirm=1.
func (h *entityHandlers) put(c *fiber.Ctx) error {
	body, err := recordBody(c)
	if err != nil {
		return err
	}
	name := c.Params("name")
	if !engine.CanManage(actor(c), name) {
		return newError(fiber.StatusForbidden, "forbidden", "designing "+name+" needs the manage grant")
	}
	_, existsErr := h.engine.GetEntity(c.UserContext(), name)
	opts := engine.PutOptions{DryRun: c.QueryBool("dryRun"), Confirm: c.QueryBool("confirm")}
	plan, err := h.engine.PutEntity(c.UserContext(), actor(c), name, body, opts)
	if err != nil {
		return err
	}
	if opts.DryRun {
		return c.JSON(fiber.Map{"dry_run": true, "plan": plan})
	}
	ent, err := h.engine.GetEntity(c.UserContext(), name)
	if err != nil {
		return err
	}
	h.audit(c, "entity.put", name, map[string]any{"version": ent.Version, "steps": len(plan.Steps), "confirmed": opts.Confirm})
	status := fiber.StatusOK
	if errors.Is(existsErr, engine.ErrNotFound) {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(fiber.Map{"plan": plan, "entity": ent})
}
