package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/tessera/tessera/engine/store"
)

func migrateCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "migrate",
		Short: "Apply the system schema migrations to DATABASE_URL and exit",
		RunE: func(cmd *cobra.Command, _ []string) error {
			url := os.Getenv("DATABASE_URL")
			if url == "" {
				return errors.New("tessera migrate needs DATABASE_URL (serve migrates its private database by itself)")
			}
			v, err := store.Migrate(cmd.Context(), url)
			if err != nil {
				return err
			}
			fmt.Printf("system schema at version %d\n", v)
			return nil
		},
	}
}
