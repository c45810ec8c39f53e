package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/web"
	"github.com/tessera/tessera/workflows"
)

func serveCmd() *cobra.Command {
	var (
		addr, dataDir, temporalListen string
		noWorker                      bool
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the HTTP API, the workflow worker and, unless configured otherwise, private PostgreSQL and Temporal",
		Long: `Run Tessera.

With no DATABASE_URL a private PostgreSQL cluster is started under <data-dir>/pg from the
machine's PostgreSQL binaries; with no TEMPORAL_ADDRESS an embedded Temporal server keeps
its state in <data-dir>/temporal.db. Both are stopped on SIGINT/SIGTERM.

Environment: DATABASE_URL, TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE (default "default"),
TESSERA_ADMIN_EMAIL and TESSERA_ADMIN_PASSWORD (first admin), TESSERA_LOG_LEVEL.`,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), addr, platformConfigFromEnv(dataDir, temporalListen), noWorker)
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", envOr("TESSERA_ADDR", "127.0.0.1:8080"), "HTTP listen address (env TESSERA_ADDR)")
	f.StringVar(&dataDir, "data-dir", envOr("TESSERA_DATA_DIR", "data"), "directory for the private PostgreSQL and Temporal state (env TESSERA_DATA_DIR)")
	f.StringVar(&temporalListen, "temporal-listen", envOr("TESSERA_TEMPORAL_LISTEN", "127.0.0.1:7233"), "frontend address of the embedded Temporal server; port 0 picks a free one")
	f.BoolVar(&noWorker, "no-worker", false, "serve the API only; run workers with `tessera worker`")
	f.BoolVar(&serveDemo, "demo", false, "on a database with no module installed, install every built-in module with its demo data")
	return cmd
}

func serve(ctx context.Context, addr string, cfg platformConfig, noWorker bool) error {
	log := newLogger()
	if cfg.DatabaseURL == "" || cfg.TemporalAddress == "" {
		if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
			return fmt.Errorf("create data dir: %w", err)
		}
	}
	// Bind before starting anything so a taken port fails fast and cheaply.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	defer ln.Close()

	p, err := startPlatform(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer p.close()

	users := auth.NewService(p.pool)
	created, password, err := users.Bootstrap(ctx, os.Getenv("TESSERA_ADMIN_EMAIL"), os.Getenv("TESSERA_ADMIN_PASSWORD"))
	if err != nil {
		return err
	}
	eng := engine.New(p.pool, log)
	go eng.Listen(ctx)
	wf := &workflows.Service{Pool: p.pool, Engine: eng, Temporal: p.temporal, Log: log}
	if err := maybeDemo(ctx, p.pool, eng, users, wf, log); err != nil {
		return err
	}
	if !noWorker {
		if err := p.startWorker(eng, users); err != nil {
			return err
		}
	}

	// Streams of new notifications; they end when ctx does, so Shutdown below is not
	// held up by them.
	hub := workflows.NewNotificationHub(p.pool, log)
	go hub.Run(ctx)

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	app := web.New(web.Deps{
		Pool:          p.pool,
		Auth:          users,
		Engine:        eng,
		Logger:        log,
		Registry:      reg,
		Checks:        map[string]web.Check{"temporal": workflows.CheckHealth(p.temporal)},
		Workflows:     wf,
		Notifications: hub,
	})
	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	log.Info("tessera serving", "addr", ln.Addr().String(), "worker", !noWorker)
	if created {
		email := envOr("TESSERA_ADMIN_EMAIL", "admin@tessera.local")
		fmt.Fprintf(os.Stderr, "\n  First start: an administrator was created.\n  Sign in at http://%s with\n    email:    %s\n    password: %s\n  (shown once; set TESSERA_ADMIN_EMAIL/TESSERA_ADMIN_PASSWORD to choose them)\n\n",
			ln.Addr().String(), email, password)
	}

	select {
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	// Stop accepting and drain in-flight requests, then the deferred close stops the
	// worker, Temporal and PostgreSQL in that order.
	if err := app.ShutdownWithTimeout(30 * time.Second); err != nil && !errors.Is(err, context.Canceled) {
		log.Error("http shutdown", "err", err)
	}
	return nil
}
