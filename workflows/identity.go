package workflows

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/workflows/dsl"
)

// serviceNamespace scopes the ids of workflows' service identities.
var serviceNamespace = uuid.MustParse("5b0e6f9e-3c1a-4f57-9a53-7c0d1e2f4a61")

// ServiceUserID is the user a workflow with runAs acts as. It derives from the name,
// so starting a run needs no lookup and every save of the definition updates the same
// user; the row itself is written when the definition is saved.
func ServiceUserID(workflow string) uuid.UUID {
	return uuid.NewSHA1(serviceNamespace, []byte("workflow:"+workflow))
}

// ServiceUserEmail is the (never deliverable, never signed-in) address of a workflow's
// service identity, unique like every user's.
func ServiceUserEmail(workflow string) string { return "workflow+" + workflow + "@service.local" }

// putServiceUser saves the identity a runAs definition declares, holding exactly its
// roles, in the transaction that saves the definition. Roles must exist: a typo would
// otherwise leave the process without rights until it fails at run time.
func putServiceUser(ctx context.Context, tx pgx.Tx, def *dsl.Definition) error {
	if def.RunAs == nil {
		return nil
	}
	rows, err := tx.Query(ctx, `SELECT name FROM tessera.roles WHERE name = ANY ($1)`, def.RunAs.Roles)
	if err != nil {
		return fmt.Errorf("load roles of runAs: %w", err)
	}
	known, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return fmt.Errorf("load roles of runAs: %w", err)
	}
	var problems []schema.Problem
	for i, role := range def.RunAs.Roles {
		if !slices.Contains(known, role) {
			problems = append(problems, schema.Problem{Path: fmt.Sprintf("/runAs/roles/%d", i), Code: "relation", Message: fmt.Sprintf("no role %q", role)})
		}
	}
	if len(problems) > 0 {
		return &schema.DefinitionError{Problems: problems}
	}
	err = auth.PutServiceUser(ctx, tx, auth.ServiceUser{
		ID: ServiceUserID(def.Name), Email: ServiceUserEmail(def.Name), Name: "Workflow " + def.Name, Roles: def.RunAs.Roles,
	})
	if errors.Is(err, auth.ErrEmailTaken) {
		return &schema.DefinitionError{Problems: []schema.Problem{{Path: "/runAs", Code: "unique",
			Message: fmt.Sprintf("the workflow's service identity needs the email %s, which another user has", ServiceUserEmail(def.Name))}}}
	}
	return err
}

// actAs sets whom a run acts as: the user who triggered or started it, or the
// workflow's service identity when the definition declares runAs. user is kept as
// StartedBy either way, so the definition ($run.actor) and the run's page still know it.
func (in *RunInput) actAs(def *dsl.Definition, user string) {
	in.Actor, in.StartedBy, in.RunAs = user, user, false
	if def.RunAs != nil {
		in.Actor, in.RunAs = ServiceUserID(def.Name).String(), true
	}
}

// startedBy is who triggered or started the run, also for histories from before
// StartedBy existed.
func (in *RunInput) startedBy() string {
	if in.RunAs || in.StartedBy != "" {
		return in.StartedBy
	}
	return in.Actor
}
