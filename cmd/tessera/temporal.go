package main

import (
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/tessera/tessera/workflows/devserver"
)

// temporalCmd serves only the embedded Temporal server, so a multi-process deployment
// on one machine (or the topology test) has a Temporal without installing one.
func temporalCmd() *cobra.Command {
	var dataDir, listen string
	cmd := &cobra.Command{
		Use:   "temporal",
		Short: "Run only the embedded Temporal dev server (SQLite under --data-dir)",
		RunE: func(cmd *cobra.Command, _ []string) error {
			log := newLogger()
			if err := os.MkdirAll(dataDir, 0o755); err != nil {
				return err
			}
			srv, err := devserver.Start(devserver.Options{
				DBPath:     filepath.Join(dataDir, "temporal.db"),
				Listen:     listen,
				Namespaces: []string{envOr("TEMPORAL_NAMESPACE", "default")},
			})
			if err != nil {
				return err
			}
			log.Info("temporal serving", "address", srv.Addr())
			<-cmd.Context().Done()
			return srv.Stop()
		},
	}
	cmd.Flags().StringVar(&dataDir, "data-dir", envOr("TESSERA_DATA_DIR", "data"), "directory for temporal.db")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7233", "frontend gRPC address")
	return cmd
}
