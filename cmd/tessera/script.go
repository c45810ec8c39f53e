package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sort"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/engine/script"
)

func scriptCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "script", Short: "Work with script hooks"}
	var fixture, old, entity, hook string
	test := &cobra.Command{
		Use:   "test FILE",
		Short: "Run a script against a fixture record and print the result, its changes and its console; writes nothing",
		Long: `Run a script as a hook would, as a dry run.

With DATABASE_URL set, db.get/find/list/create/update work against that database inside a
transaction that is rolled back; without it, db.* is unavailable.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			in := engine.ScriptTest{Source: string(src), Entity: entity, Hook: hook}
			if in.Record, err = readFixture(fixture); err != nil {
				return err
			}
			if in.Old, err = readFixture(old); err != nil {
				return err
			}
			res, err := runScriptTest(cmd.Context(), args[0], in)
			if err != nil {
				return err
			}
			out, _ := json.MarshalIndent(map[string]any{
				"record": res.Record, "changes": recordChanges(in.Record, res.Record),
				"errors": res.Errors, "console": res.Console, "error": res.Error,
			}, "", "  ")
			fmt.Println(string(out))
			if res.Error != nil || len(res.Errors) > 0 {
				return errors.New("the script failed or rejected the record")
			}
			return nil
		},
	}
	test.Flags().StringVar(&fixture, "fixture", "", "JSON file with the record the script sees as `record`")
	test.Flags().StringVar(&old, "old", "", "JSON file with the stored version the script sees as `old`")
	test.Flags().StringVar(&entity, "entity", "", "entity the script belongs to (ctx.entity)")
	test.Flags().StringVar(&hook, "hook", "beforeSave", "hook point (ctx.hook)")
	cmd.AddCommand(test)
	return cmd
}

func readFixture(path string) (map[string]any, error) {
	if path == "" {
		return nil, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rec, err := schema.DecodeRecord(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

func runScriptTest(ctx context.Context, name string, in engine.ScriptTest) (*engine.ScriptTestResult, error) {
	if url := os.Getenv("DATABASE_URL"); url != "" {
		pool, err := pgxpool.New(ctx, url)
		if err != nil {
			return nil, err
		}
		defer pool.Close()
		return engine.New(pool, newLogger()).TestScript(ctx, engine.Actor{}, in)
	}
	if in.Record == nil {
		in.Record = map[string]any{}
	}
	res, err := script.NewRunner(1).Run(ctx, script.Call{Name: name, Source: in.Source, Record: in.Record, Old: in.Old,
		Context: map[string]any{"entity": in.Entity, "hook": in.Hook, "dryRun": true}})
	var se *script.Error
	if errors.As(err, &se) {
		return &engine.ScriptTestResult{Error: se, Console: se.Console}, nil
	}
	if err != nil {
		return nil, err
	}
	return &engine.ScriptTestResult{Record: res.Record, Errors: res.Errors, Console: res.Console}, nil
}

// recordChanges lists the fields the script set, changed or removed.
func recordChanges(before, after map[string]any) map[string]any {
	changes := map[string]any{}
	if after == nil {
		return changes
	}
	keys := map[string]bool{}
	for k := range before {
		keys[k] = true
	}
	for k := range after {
		keys[k] = true
	}
	names := make([]string, 0, len(keys))
	for k := range keys {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		a, hadA := before[k]
		b, hasB := after[k]
		if hadA == hasB && reflect.DeepEqual(a, b) {
			continue
		}
		change := map[string]any{}
		if hadA {
			change["old"] = a
		}
		if hasB {
			change["new"] = b
		}
		changes[k] = change
	}
	return changes
}
