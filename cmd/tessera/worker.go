package main

import (
	"errors"

	"github.com/spf13/cobra"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
)

func workerCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "worker",
		Short: "Run only the Temporal worker, against DATABASE_URL and TEMPORAL_ADDRESS",
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg := platformConfigFromEnv("", "")
			if cfg.DatabaseURL == "" || cfg.TemporalAddress == "" {
				return errors.New("tessera worker needs DATABASE_URL and TEMPORAL_ADDRESS: workers join an existing deployment")
			}
			log := newLogger()
			p, err := startPlatform(cmd.Context(), cfg, log)
			if err != nil {
				return err
			}
			defer p.close()
			eng := engine.New(p.pool, log)
			go eng.Listen(cmd.Context())
			if err := p.startWorker(eng, auth.NewService(p.pool)); err != nil {
				return err
			}
			<-cmd.Context().Done()
			log.Info("shutting down")
			return nil
		},
	}
}
