package web

import (
	"errors"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/workflows"
	"github.com/tessera/tessera/workflows/dsl"
)

// workflowHandlers serve definitions, runs, human tasks, notifications and the
// credentials HTTP steps use.
type workflowHandlers struct {
	svc   *workflows.Service
	hub   *workflows.NotificationHub
	audit auditFunc
}

// mountWorkflows adds the workflow routes to the authenticated group; the
// notification stream only with a hub.
func mountWorkflows(authed fiber.Router, svc *workflows.Service, hub *workflows.NotificationHub, audit auditFunc) {
	if svc == nil {
		return
	}
	h := &workflowHandlers{svc: svc, hub: hub, audit: audit}
	authed.Get("/workflows", h.list)
	authed.Get("/workflows/:name", h.get)
	authed.Put("/workflows/:name", requireAdmin, h.put)
	authed.Post("/workflows/:name/runs", h.start)
	authed.Get("/runs", h.listRuns)
	authed.Get("/runs/:id", h.getRun)
	authed.Post("/runs/:id/cancel", h.cancel)
	authed.Post("/runs/:id/terminate", h.terminate)
	authed.Post("/runs/:id/retry", h.retry)
	authed.Post("/runs/:id/signal", h.signal)
	authed.Get("/tasks", h.listTasks)
	authed.Get("/tasks/:id", h.getTask)
	authed.Post("/tasks/:id/complete", h.taskAction(workflows.TaskComplete))
	authed.Post("/tasks/:id/claim", h.taskAction(workflows.TaskClaim))
	authed.Post("/tasks/:id/reassign", h.taskAction(workflows.TaskReassign))
	authed.Get("/notifications", h.listNotifications)
	if hub != nil {
		authed.Get("/notifications/stream", h.streamNotifications)
	}
	authed.Post("/notifications/:id/read", h.markRead)
	authed.Get("/credentials", requireAdmin, h.listCredentials)
	authed.Put("/credentials/:name", requireAdmin, h.putCredential)
}

// workflowError maps the workflow service's errors onto the API's error shape; the
// rest (validation, not found) the central mapping already knows.
func workflowError(err error) error {
	var (
		taskErr   *workflows.TaskError
		forbidden *workflows.Forbidden
		conflict  *workflows.Conflict
	)
	switch {
	case errors.As(err, &taskErr):
		switch taskErr.Kind {
		case workflows.ErrTaskForbidden:
			return newError(fiber.StatusForbidden, "forbidden", taskErr.Message)
		case workflows.ErrTaskInvalid:
			return validationFailed(taskErr.Message, problemDetails(taskErr.Problems)...)
		}
		return newError(fiber.StatusConflict, "conflict", taskErr.Message)
	case errors.As(err, &forbidden):
		return newError(fiber.StatusForbidden, "forbidden", forbidden.Message)
	case errors.As(err, &conflict):
		return newError(fiber.StatusConflict, "conflict", conflict.Message)
	case errors.Is(err, workflows.ErrNoTemporal):
		return newError(fiber.StatusServiceUnavailable, "unavailable", err.Error())
	}
	return err
}

func (h *workflowHandlers) list(c *fiber.Ctx) error {
	items, err := h.svc.ListDefinitions(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(listResponse(items))
}

// get answers the definition as written, with its version (?version=N for an older one).
func (h *workflowHandlers) get(c *fiber.Ctx) error {
	version := c.QueryInt("version", 0)
	v, err := h.svc.GetDefinition(c.UserContext(), c.Params("name"), version)
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"name": v.Name, "version": v.Version, "created_at": v.CreatedAt, "created_by": v.CreatedBy, "definition": v.Definition})
}

// put saves a new version: 201 when the definition changed, 200 when it equals the
// current version.
func (h *workflowHandlers) put(c *fiber.Ctx) error {
	body, err := recordBody(c)
	if err != nil {
		return err
	}
	v, created, err := h.svc.PutDefinition(c.UserContext(), actor(c), c.Params("name"), body)
	if err != nil {
		return workflowError(err)
	}
	if created {
		h.audit(c, "workflow.put", v.Name, map[string]any{"version": v.Version})
	}
	status := fiber.StatusOK
	if created {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(fiber.Map{"name": v.Name, "version": v.Version, "created": created})
}

func (h *workflowHandlers) start(c *fiber.Ctx) error {
	var in struct {
		Input map[string]any `json:"input"`
	}
	if len(c.Body()) > 0 {
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
	}
	run, err := h.svc.StartRun(c.UserContext(), actor(c), c.Params("name"), in.Input)
	if err != nil {
		return workflowError(err)
	}
	return c.Status(fiber.StatusCreated).JSON(run)
}

func (h *workflowHandlers) listRuns(c *fiber.Ctx) error {
	page, err := h.svc.ListRuns(c.UserContext(), actor(c), workflows.RunFilter{
		Workflow: c.Query("workflow"), Status: c.Query("status"), Limit: c.QueryInt("limit", 0), Cursor: c.Query("cursor"),
	})
	if err != nil {
		return err
	}
	return c.JSON(page)
}

func (h *workflowHandlers) getRun(c *fiber.Ctx) error {
	run, err := h.svc.GetRun(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return err
	}
	return c.JSON(run)
}

func (h *workflowHandlers) cancel(c *fiber.Ctx) error {
	run, err := h.svc.CancelRun(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return workflowError(err)
	}
	return c.Status(fiber.StatusAccepted).JSON(run)
}

func (h *workflowHandlers) terminate(c *fiber.Ctx) error {
	var in struct {
		Reason string `json:"reason"`
	}
	if len(c.Body()) > 0 {
		if err := decodeJSON(c, &in); err != nil {
			return err
		}
	}
	run, err := h.svc.TerminateRun(c.UserContext(), actor(c), c.Params("id"), in.Reason)
	if err != nil {
		return workflowError(err)
	}
	return c.JSON(run)
}

func (h *workflowHandlers) retry(c *fiber.Ctx) error {
	run, err := h.svc.RetryRun(c.UserContext(), actor(c), c.Params("id"))
	if err != nil {
		return workflowError(err)
	}
	return c.Status(fiber.StatusAccepted).JSON(run)
}

func (h *workflowHandlers) signal(c *fiber.Ctx) error {
	var in struct {
		Name string `json:"name"`
		Data any    `json:"data"`
	}
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if !dsl.IsName(in.Name) {
		return validationFailed("invalid signal", Detail{Path: "/name", Code: "pattern", Message: "the name of a wait_event step's signal"})
	}
	if err := h.svc.Signal(c.UserContext(), actor(c), c.Params("id"), in.Name, in.Data); err != nil {
		return workflowError(err)
	}
	return c.SendStatus(fiber.StatusAccepted)
}

// listTasks is the inbox: ?assignee=me (the default for everyone but administrators)
// and ?status=open|completed|cancelled.
func (h *workflowHandlers) listTasks(c *fiber.Ctx) error {
	tasks, err := h.svc.ListTasks(c.UserContext(), actor(c), workflows.TaskFilter{
		Mine: c.Query("assignee", "me") == "me", Status: c.Query("status"), Run: c.Query("run"), Limit: c.QueryInt("limit", 0),
	})
	if err != nil {
		return err
	}
	return c.JSON(listResponse(tasks))
}

func (h *workflowHandlers) getTask(c *fiber.Ctx) error {
	id, err := uuid.Parse(c.Params("id"))
	if err != nil {
		return notFound("no task " + c.Params("id"))
	}
	t, err := h.svc.GetTask(c.UserContext(), id)
	if err != nil {
		return err
	}
	return c.JSON(t)
}

// taskAction completes, claims or reassigns a task. The run decides; the answer
// comes when it has, with the task as it now is.
func (h *workflowHandlers) taskAction(action string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := uuid.Parse(c.Params("id"))
		if err != nil {
			return notFound("no task " + c.Params("id"))
		}
		var in struct {
			Outcome  string         `json:"outcome"`
			Data     map[string]any `json:"data"`
			Assignee *dsl.Assignee  `json:"assignee"`
		}
		if len(c.Body()) > 0 {
			if err := decodeJSON(c, &in); err != nil {
				return err
			}
		}
		t, err := h.svc.ActOnTask(c.UserContext(), actor(c), id, workflows.TaskAction{Action: action, Outcome: in.Outcome, Data: in.Data, To: in.Assignee})
		if err != nil {
			return workflowError(err)
		}
		return c.JSON(t)
	}
}

func (h *workflowHandlers) listNotifications(c *fiber.Ctx) error {
	items, err := h.svc.ListNotifications(c.UserContext(), actor(c), c.QueryBool("unread"), c.QueryInt("limit", 0))
	if err != nil {
		return err
	}
	return c.JSON(listResponse(items))
}

func (h *workflowHandlers) markRead(c *fiber.Ctx) error {
	id, err := uuid.Parse(c.Params("id"))
	if err != nil {
		return notFound("no notification " + c.Params("id"))
	}
	if err := h.svc.MarkRead(c.UserContext(), actor(c), id); err != nil {
		return err
	}
	return c.SendStatus(fiber.StatusNoContent)
}

func (h *workflowHandlers) listCredentials(c *fiber.Ctx) error {
	items, err := h.svc.ListCredentials(c.UserContext())
	if err != nil {
		return err
	}
	return c.JSON(listResponse(items))
}

// putCredential stores a secret; it is never answered back.
func (h *workflowHandlers) putCredential(c *fiber.Ctx) error {
	var in workflows.Credential
	if err := decodeJSON(c, &in); err != nil {
		return err
	}
	if err := h.svc.PutCredential(c.UserContext(), actor(c), c.Params("name"), in); err != nil {
		return err
	}
	h.audit(c, "credential.put", c.Params("name"), map[string]any{"type": in.Type})
	return c.Status(fiber.StatusOK).JSON(fiber.Map{"name": c.Params("name"), "type": in.Type})
}
