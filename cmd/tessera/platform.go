package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.temporal.io/sdk/client"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/store"
	"github.com/tessera/tessera/internal/pgserver"
	"github.com/tessera/tessera/workflows"
	"github.com/tessera/tessera/workflows/devserver"
)

// minPoolConns is the connection pool size unless DATABASE_URL sets pool_max_conns.
const minPoolConns = 32

// platformConfig says where PostgreSQL and Temporal are; empty URLs mean "start
// private ones under DataDir".
type platformConfig struct {
	DataDir           string
	DatabaseURL       string
	TemporalAddress   string
	TemporalNamespace string
	TemporalListen    string
}

func platformConfigFromEnv(dataDir, temporalListen string) platformConfig {
	return platformConfig{
		DataDir:           dataDir,
		DatabaseURL:       os.Getenv("DATABASE_URL"),
		TemporalAddress:   os.Getenv("TEMPORAL_ADDRESS"),
		TemporalNamespace: envOr("TEMPORAL_NAMESPACE", "default"),
		TemporalListen:    temporalListen,
	}
}

// platform is the set of running dependencies; close stops them in reverse order of start.
type platform struct {
	log      *slog.Logger
	pool     *pgxpool.Pool
	temporal client.Client
	closers  []func()
}

func (p *platform) onClose(f func()) { p.closers = append(p.closers, f) }

func (p *platform) close() {
	for i := len(p.closers) - 1; i >= 0; i-- {
		p.closers[i]()
	}
	p.closers = nil
}

// startPlatform brings up PostgreSQL (private or external), applies the system
// migrations, opens the pool and connects to Temporal (embedded or external).
func startPlatform(ctx context.Context, cfg platformConfig, log *slog.Logger) (_ *platform, err error) {
	p := &platform{log: log}
	defer func() {
		if err != nil {
			p.close()
		}
	}()

	dbURL := cfg.DatabaseURL
	if dbURL == "" {
		pg, err := pgserver.Start(ctx, pgserver.Options{DataDir: cfg.DataDir, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("private PostgreSQL: %w", err)
		}
		p.onClose(func() {
			if err := pg.Stop(); err != nil {
				log.Error("stop postgres", "err", err)
			}
			log.Info("postgres stopped")
		})
		dbURL = pg.URL()
	}

	version, err := store.Migrate(ctx, dbURL)
	if err != nil {
		return nil, err
	}
	log.Info("system schema ready", "version", version)

	poolCfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	if poolCfg.MaxConns < minPoolConns && !strings.Contains(dbURL, "pool_max_conns") {
		// pgx defaults to max(4, CPUs), too few for an API server whose requests each
		// hold a transaction; pool_max_conns in the URL still wins.
		poolCfg.MaxConns = minPoolConns
	}
	p.pool, err = pgxpool.NewWithConfig(ctx, poolCfg)
	if err != nil {
		return nil, fmt.Errorf("open database pool: %w", err)
	}
	p.onClose(p.pool.Close)

	address := cfg.TemporalAddress
	if address == "" {
		srv, err := devserver.Start(devserver.Options{
			DBPath:     filepath.Join(cfg.DataDir, "temporal.db"),
			Listen:     cfg.TemporalListen,
			Namespaces: []string{cfg.TemporalNamespace},
		})
		if err != nil {
			return nil, fmt.Errorf("embedded Temporal: %w", err)
		}
		p.onClose(func() {
			if err := srv.Stop(); err != nil {
				log.Error("stop temporal", "err", err)
			}
			log.Info("temporal stopped")
		})
		address = srv.Addr()
		log.Info("embedded temporal started", "address", address, "namespace", cfg.TemporalNamespace)
	}
	dialCtx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	p.temporal, err = workflows.Dial(dialCtx, address, cfg.TemporalNamespace, log)
	if err != nil {
		return nil, err
	}
	p.onClose(p.temporal.Close)
	return p, nil
}

// startWorker starts the Temporal worker and the outbox dispatcher that starts
// record-triggered workflows, and registers their stop.
func (p *platform) startWorker(eng *engine.Engine, users *auth.Service) error {
	acts := &workflows.Activities{Engine: eng, Users: users, Pool: p.pool, Log: p.log}
	w := workflows.NewWorker(p.temporal, acts)
	if err := w.Start(); err != nil {
		return fmt.Errorf("start worker: %w", err)
	}
	p.onClose(func() {
		w.Stop()
		p.log.Info("worker stopped")
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	d := &workflows.Dispatcher{Pool: p.pool, Engine: eng, Temporal: p.temporal, Log: p.log}
	go func() {
		defer close(done)
		d.Run(ctx)
	}()
	p.onClose(func() {
		cancel()
		<-done
		p.log.Info("dispatcher stopped")
	})
	p.log.Info("worker started", "task_queue", workflows.TaskQueue)
	return nil
}
