// Package web is Tessera's HTTP layer: the REST API under /api/v1, health and metrics.
// It depends on engine/; the engine never depends on it.
package web

import (
	"context"
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/gofiber/fiber/v2/middleware/requestid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/workflows"
)

// MaxBodyBytes bounds every request body; larger bodies get 413 before any handler runs.
const MaxBodyBytes = 16 << 20

// Check reports whether one dependency is reachable; readyz runs them all.
type Check func(ctx context.Context) error

// Deps are what the HTTP layer serves from.
type Deps struct {
	Pool     *pgxpool.Pool
	Auth     *auth.Service
	Engine   *engine.Engine
	Logger   *slog.Logger
	Registry *prometheus.Registry
	// Checks are run by /readyz besides PostgreSQL, keyed by name (e.g. "temporal").
	Checks map[string]Check
	// Workflows serves definitions, runs, tasks and notifications; nil leaves them out.
	Workflows *workflows.Service
	// Notifications feeds GET /notifications/stream; nil leaves the stream out. The
	// caller runs it (go hub.Run(ctx)): when ctx ends, open streams end.
	Notifications *workflows.NotificationHub
}

// New builds the fiber app with every route mounted.
func New(d Deps) *fiber.App {
	app := fiber.New(fiber.Config{
		AppName: "tessera",
		// Bodies over 1 MB are streamed, not buffered; limitBody caps them per route.
		BodyLimit:         1 << 20,
		StreamRequestBody: true,
		// Params and queries are handed to the engine, which may keep them (cache
		// keys): they must not alias fasthttp's reused buffers.
		Immutable:             true,
		ErrorHandler:          errorHandler(d.Logger),
		DisableStartupMessage: true,
		ReadTimeout:           60 * time.Second,
		IdleTimeout:           120 * time.Second,
	})
	app.Use(recover.New())
	app.Use(requestid.New())
	app.Use(accessLog(d.Logger))
	metrics := newHTTPMetrics(d.Registry, d.Pool)
	app.Use(metrics.middleware)
	app.Use(limitBody)

	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", readyz(d))
	app.Get("/metrics", metrics.handler())
	app.Get("/api/docs", docsPage)

	api := app.Group("/api/v1")
	h := &authHandlers{auth: d.Auth}
	api.Post("/auth/login", h.login)
	authed := api.Group("", requireUser(d.Auth))
	authed.Post("/auth/logout", h.logout)
	authed.Get("/auth/me", h.me)
	authed.Get("/users", requireAdmin, h.listUsers)
	authed.Post("/users", requireAdmin, h.createUser)
	authed.Put("/users/:id/password", requireAdmin, h.setPassword)
	authed.Post("/api-keys", h.createAPIKey)
	authed.Get("/api-keys", h.listAPIKeys)
	authed.Delete("/api-keys/:id", h.revokeAPIKey)
	authed.Get("/audit", requireAdmin, h.listAudit)

	sec := &securityHandlers{auth: d.Auth, engine: d.Engine, audit: h.audit}
	authed.Get("/roles", requireAdmin, sec.listRoles)
	authed.Get("/roles/:name", requireAdmin, sec.getRole)
	authed.Put("/roles/:name", requireAdmin, sec.putRole)
	authed.Get("/explain", requireAdmin, sec.explain)
	authed.Post("/reports/query", sec.report)

	eh := &entityHandlers{engine: d.Engine, audit: h.audit}
	authed.Get("/entities", eh.list)
	authed.Get("/entities/:name", eh.get)
	authed.Put("/entities/:name", eh.put)

	rh := &recordHandlers{engine: d.Engine, audit: h.audit}
	authed.Get("/data/:entity", rh.list)
	authed.Post("/data/:entity", rh.create)
	authed.Post("/data/:entity/import", rh.importRecords)
	authed.Get("/data/:entity/export", rh.exportRecords)
	authed.Get("/imports/:job", rh.importStatus)
	authed.Get("/data/:entity/:id", rh.get)
	authed.Patch("/data/:entity/:id", rh.update)
	authed.Delete("/data/:entity/:id", rh.delete)
	authed.Post("/data/:entity/:id/restore", rh.restore)
	authed.Get("/data/:entity/:id/history", rh.history)
	// The document describes every field of every entity: for those who design them.
	authed.Get("/openapi.json", requireAdmin, openAPIHandler(d.Engine))

	sh := &scriptHandlers{engine: d.Engine, audit: h.audit}
	authed.Post("/scripts/test", requireAdmin, sh.test)
	authed.Put("/scripts/:name", requireAdmin, sh.put)
	authed.Get("/scripts/:name", requireAdmin, sh.get)
	authed.Get("/scripts/:name/logs", requireAdmin, sh.logs)
	authed.Get("/x/:module/:name", sh.endpoint)
	authed.Post("/x/:module/:name", sh.endpoint)

	mountWorkflows(authed, d.Workflows, d.Notifications, h.audit)
	mountModules(authed, d, h.audit)

	app.Use(func(c *fiber.Ctx) error { return notFound("no route for " + c.Method() + " " + c.Path()) })
	return app
}

func readyz(d Deps) fiber.Handler {
	return func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), 3*time.Second)
		defer cancel()
		status := fiber.Map{}
		ready := true
		check := func(name string, fn Check) {
			if err := fn(ctx); err != nil {
				status[name] = err.Error()
				ready = false
				return
			}
			status[name] = "ok"
		}
		check("postgres", d.Pool.Ping)
		for name, fn := range d.Checks {
			check(name, fn)
		}
		if !ready {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "checks": status})
		}
		return c.JSON(fiber.Map{"status": "ready", "checks": status})
	}
}

// accessLog writes one structured line per request, carrying the request id.
func accessLog(log *slog.Logger) fiber.Handler {
	return func(c *fiber.Ctx) error {
		start := time.Now()
		err := c.Next()
		status := c.Response().StatusCode()
		if err != nil {
			status = toAPIError(err).Status
		}
		log.Info("http", "request_id", requestID(c), "method", c.Method(), "path", c.Path(),
			"status", status, "duration_ms", float64(time.Since(start).Microseconds())/1000)
		return err
	}
}
