package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/spf13/cobra"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/module"
	"github.com/tessera/tessera/engine/store"
	"github.com/tessera/tessera/modules"
	"github.com/tessera/tessera/workflows"
)

func moduleCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "module", Short: "Validate, install and list modules"}
	validate := &cobra.Command{
		Use:   "validate DIR",
		Short: "Check a module folder; print every problem as `file: /pointer: message`",
		Long: `Check a module folder: the manifest against schemas/module.schema.json, every entity,
script and role, and the references between them. Dependencies are looked up among the
built-in modules and the folders next to DIR.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			problems, err := validateDir(args[0])
			if err != nil {
				return err
			}
			for _, p := range problems {
				fmt.Println(p.String())
			}
			if len(problems) > 0 {
				return fmt.Errorf("%d problems", len(problems))
			}
			fmt.Println("ok")
			return nil
		},
	}
	var opts module.Options
	install := &cobra.Command{
		Use:   "install DIR|FILE.tar.gz|NAME",
		Short: "Install (or upgrade to) a module from a folder, an exported archive, or the built-in catalog (DATABASE_URL)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withManager(cmd.Context(), func(mg *module.Manager) error {
				res, err := installArg(cmd.Context(), mg, args[0], opts)
				if err != nil {
					return err
				}
				out, _ := json.MarshalIndent(res, "", "  ")
				fmt.Println(string(out))
				return nil
			})
		},
	}
	install.Flags().BoolVar(&opts.DryRun, "dry-run", false, "validate and print the migration plans; change nothing")
	install.Flags().BoolVar(&opts.Confirm, "confirm", false, "allow destructive migration steps")
	install.Flags().BoolVar(&opts.Demo, "demo", false, "load the modules' demo data too")
	list := &cobra.Command{
		Use:   "list",
		Short: "List available and installed modules (DATABASE_URL)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withManager(cmd.Context(), func(mg *module.Manager) error {
				items, err := mg.List(cmd.Context())
				if err != nil {
					return err
				}
				for _, it := range items {
					state := "available"
					if it.Installed {
						state = "installed " + *it.InstalledVersion
					}
					fmt.Printf("%-15s %-8s %-22s %s\n", it.Name, it.Version, it.Title, state)
				}
				return nil
			})
		},
	}
	cmd.AddCommand(validate, install, list, packageCmd())
	return cmd
}

// packageCmd is `tessera module package`: what an administrator designed on an
// instance, packed as a module archive that `module install` or POST /modules/import
// installs elsewhere with the same ids.
func packageCmd() *cobra.Command {
	var (
		spec  module.PackageSpec
		label string
		out   string
	)
	cmd := &cobra.Command{
		Use:   "package --name N --version V [--entity E]... [--script S]... [--workflow W]... [--role R]... -o FILE.tar.gz",
		Short: "Pack entities, scripts, workflows and roles designed on an instance as a module archive (DATABASE_URL)",
		Long: `Pack the current definitions of the named entities (with their x-field-ids), scripts,
workflows and roles as a module archive. Hooks and workflow script steps are rewritten to
the module's scripts; every problem is printed as ` + "`file: /pointer: message`" + `.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if label != "" {
				spec.Label = map[string]string{"en": label}
			}
			if out == "" {
				out = spec.Name + "-" + spec.Version + ".tar.gz"
			}
			return withManager(cmd.Context(), func(mg *module.Manager) error {
				data, err := mg.Package(cmd.Context(), spec)
				var me *module.Error
				if errors.As(err, &me) {
					for _, p := range me.Problems {
						fmt.Println(p.String())
					}
					return fmt.Errorf("%d problems", len(me.Problems))
				}
				if err != nil {
					return err
				}
				if err := os.WriteFile(out, data, 0o644); err != nil {
					return err
				}
				fmt.Println(out)
				return nil
			})
		},
	}
	f := cmd.Flags()
	f.StringVar(&spec.Name, "name", "", "module name")
	f.StringVar(&spec.Version, "version", "", "module version (x.y.z)")
	f.StringVar(&label, "label", "", "English label (default: the name)")
	f.StringVar(&spec.Description, "description", "", "module description")
	f.StringToStringVar(&spec.Dependencies, "dependency", nil, "a module it depends on, as name=range (repeatable)")
	f.StringArrayVar(&spec.Entities, "entity", nil, "an entity to pack (repeatable)")
	f.StringArrayVar(&spec.Scripts, "script", nil, "a script to pack, by stored name (repeatable)")
	f.StringArrayVar(&spec.Workflows, "workflow", nil, "a workflow to pack (repeatable)")
	f.StringArrayVar(&spec.Roles, "role", nil, "a role to pack (repeatable)")
	f.StringVarP(&out, "output", "o", "", "archive to write (default NAME-VERSION.tar.gz)")
	_ = cmd.MarkFlagRequired("name")
	_ = cmd.MarkFlagRequired("version")
	return cmd
}

// validateDir loads and validates a module folder, resolving its dependencies from
// the built-in catalog and the folders beside it.
func validateDir(dir string) ([]module.Problem, error) {
	m, err := module.Load(os.DirFS(dir))
	if err != nil {
		var me *module.Error
		if errors.As(err, &me) {
			return me.Problems, nil
		}
		return nil, err
	}
	catalog, err := module.LoadAll(modules.FS)
	if err != nil {
		return nil, err
	}
	if siblings, err := module.LoadAll(os.DirFS(filepath.Dir(filepath.Clean(dir)))); err == nil {
		for name, s := range siblings {
			catalog[name] = s
		}
	}
	deps, err := module.Dependencies(m, catalog)
	var problems []module.Problem
	if err != nil {
		problems = append(problems, module.Problem{File: module.ManifestFile, Pointer: "/dependencies", Message: err.Error()})
	}
	_, more := module.Validate(m, deps)
	return append(problems, more...), nil
}

func installArg(ctx context.Context, mg *module.Manager, arg string, opts module.Options) (*module.Result, error) {
	actor := engine.Actor{IsAdmin: true}
	st, err := os.Stat(arg)
	switch {
	case err == nil && st.IsDir():
		m, err := module.Load(os.DirFS(arg))
		if err != nil {
			return nil, err
		}
		installed, err := mg.Installed(ctx)
		if err != nil {
			return nil, err
		}
		if _, ok := installed[m.Manifest.Name]; ok {
			return mg.UpgradeModule(ctx, actor, m, opts)
		}
		return mg.InstallModule(ctx, actor, m, opts)
	case err == nil:
		data, err := os.ReadFile(arg)
		if err != nil {
			return nil, err
		}
		return mg.Import(ctx, actor, data, opts)
	case !strings.ContainsAny(arg, "/."):
		return mg.Install(ctx, actor, arg, opts)
	}
	return nil, err
}

// withManager connects to DATABASE_URL, applies the system migrations and runs fn.
func withManager(ctx context.Context, fn func(mg *module.Manager) error) error {
	url := os.Getenv("DATABASE_URL")
	if url == "" {
		return errors.New("DATABASE_URL is not set")
	}
	if _, err := store.Migrate(ctx, url); err != nil {
		return err
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return err
	}
	defer pool.Close()
	log := newLogger()
	eng := engine.New(pool, log)
	// No Temporal client here: a schedule trigger a module brings is synced to Temporal
	// when its definition is next saved by a server.
	wf := &workflows.Service{Pool: pool, Engine: eng, Log: log}
	return fn(&module.Manager{Pool: pool, Engine: eng, Auth: auth.NewService(pool), Workflows: wf, Builtin: modules.FS, Log: log})
}

// installDemo installs every built-in module with its demo data on a database
// where no module is installed yet; on any other database it does nothing, so
// `serve --demo` can be given on every start.
func installDemo(ctx context.Context, mg *module.Manager) error {
	installed, err := mg.Installed(ctx)
	if err != nil {
		return err
	}
	if len(installed) > 0 {
		return nil
	}
	catalog, err := module.LoadAll(modules.FS)
	if err != nil {
		return err
	}
	order, err := module.InstallOrder(catalog)
	if err != nil {
		return err
	}
	for _, m := range order {
		if _, err := mg.InstallModule(ctx, engine.Actor{IsAdmin: true}, m, module.Options{Demo: true}); err != nil {
			return fmt.Errorf("demo: install %s: %w", m.Manifest.Name, err)
		}
	}
	return nil
}

// serveDemo is serve's --demo flag. It lives here, not in serve's signature, to keep
// the edit to serve.go to the flag and one call.
var serveDemo bool

// maybeDemo runs installDemo when --demo was given.
func maybeDemo(ctx context.Context, pool *pgxpool.Pool, eng *engine.Engine, users *auth.Service, wf *workflows.Service, log *slog.Logger) error {
	if !serveDemo {
		return nil
	}
	return installDemo(ctx, &module.Manager{Pool: pool, Engine: eng, Auth: users, Workflows: wf, Builtin: modules.FS, Log: log})
}
