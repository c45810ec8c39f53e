package engine

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/engine/query"
	"github.com/tessera/tessera/engine/schema"
	"github.com/tessera/tessera/engine/store"
)

// ForbiddenError refuses an action; Problems locate refused fields.
type ForbiddenError struct {
	Message  string
	Problems []schema.Problem
}

func (e *ForbiddenError) Error() string { return e.Message }

func forbidden(format string, args ...any) *ForbiddenError {
	return &ForbiddenError{Message: fmt.Sprintf(format, args...)}
}

// access is an actor's policy resolved for one entity.
func (a Actor) access(ent *schema.Entity) *auth.Access {
	if a.IsAdmin {
		return &auth.Access{Admin: true}
	}
	return a.Policy.For(ent.Name)
}

// authorize checks that the actor may perform the action on the entity at all.
func authorize(a Actor, ent *schema.Entity, action auth.Action) (*auth.Access, error) {
	acc := a.access(ent)
	if ok, _ := acc.Allowed(action); !ok {
		return nil, forbidden("your roles do not allow %s on %s", action, ent.Name)
	}
	return acc, nil
}

// userParams are the $user values row rules may use.
func userParams(a Actor) query.Params {
	teams := make([]any, len(a.Teams))
	for i, t := range a.Teams {
		teams[i] = t
	}
	roles := make([]any, len(a.Roles))
	for i, r := range a.Roles {
		roles[i] = r
	}
	return query.Params{"user": map[string]any{"id": a.UserID.String(), "email": a.Email, "teams": teams, "roles": roles}}
}

var parsedRules sync.Map // rule source → *query.Expr

func parseRule(rule string) (*query.Expr, error) {
	if x, ok := parsedRules.Load(rule); ok {
		return x.(*query.Expr), nil
	}
	expr, err := query.Parse(rule)
	if err != nil {
		return nil, err
	}
	parsedRules.Store(rule, expr)
	return expr, nil
}

// rowPredicate is the SQL predicate (over alias) limiting an action to the rows the
// actor's roles reach: "" when unrestricted, else the OR of the granting roles' rules.
// It is part of every statement, so counts, pages and aggregates are computed on the
// allowed rows only: nothing is fetched and then filtered.
func rowPredicate(a Actor, acc *auth.Access, action auth.Action, ent *schema.Entity, alias string, args *query.Args) (string, error) {
	rules, all := acc.RowRules(action)
	if all {
		return "", nil
	}
	if len(rules) == 0 {
		return "false", nil
	}
	params := userParams(a)
	parts := make([]string, 0, len(rules))
	for _, r := range rules {
		expr, err := parseRule(r.Rule)
		if err != nil {
			return "", fmt.Errorf("row rule of role %s on %s: %w", r.Role, ent.Name, err)
		}
		sql, err := expr.SQL(queryFields(ent, alias, nil), params, args)
		if err != nil {
			return "", fmt.Errorf("row rule of role %s on %s: %w", r.Role, ent.Name, err)
		}
		parts = append(parts, "("+sql+")")
	}
	return "(" + strings.Join(parts, " OR ") + ")", nil
}

// visibleFields are the live fields the actor may see.
func visibleFields(acc *auth.Access, ent *schema.Entity) []string {
	var out []string
	for _, f := range ent.LiveFields() {
		if !acc.Hidden(f.Name) {
			out = append(out, f.Name)
		}
	}
	return out
}

// checkWritable refuses input touching hidden or read-only fields, naming each path.
func checkWritable(acc *auth.Access, ent *schema.Entity, rec map[string]any, action auth.Action) error {
	if acc.Admin {
		return nil
	}
	var problems []schema.Problem
	for key := range rec {
		switch {
		case acc.Hidden(key):
			problems = append(problems, schema.Problem{Path: "/" + key, Code: "forbidden", Message: "you may not set this field"})
		case acc.ReadOnly(key, action):
			problems = append(problems, schema.Problem{Path: "/" + key, Code: "read_only", Message: "this field is read-only for your roles"})
		}
	}
	if len(problems) > 0 {
		return &ForbiddenError{Message: fmt.Sprintf("you may not write these fields of %s", ent.Name), Problems: problems}
	}
	return nil
}

// rowAllowed checks, inside tx, that a row satisfies the actor's rules for an action.
func rowAllowed(ctx context.Context, db querier, a Actor, acc *auth.Access, action auth.Action, ent *schema.Entity, id any) (bool, error) {
	args := &query.Args{Values: []any{id}}
	pred, err := rowPredicate(a, acc, action, ent, "t", args)
	if err != nil || pred == "" {
		return err == nil, err
	}
	var ok bool
	err = db.QueryRow(ctx, fmt.Sprintf("SELECT EXISTS (SELECT 1 FROM %s t WHERE t.id = $1 AND %s)", store.Table(ent.Name), pred), args.Values...).Scan(&ok)
	return ok, err
}

// CanManage tells whether the actor may design the entity (PUT its definition).
func CanManage(a Actor, entity string) bool {
	if a.IsAdmin {
		return true
	}
	ok, _ := a.Policy.For(entity).Allowed(auth.Manage)
	return ok
}

// VisibleEntity is an entity as the actor may see it: nil without read access, and
// without hidden fields; the raw definition is only for those who manage it.
func VisibleEntity(a Actor, info *EntityInfo) *EntityInfo {
	if CanManage(a, info.Name) {
		return info
	}
	acc := a.Policy.For(info.Name)
	if ok, _ := acc.Allowed(auth.Read); !ok {
		return nil
	}
	out := *info
	out.Definition = nil
	out.Fields = nil
	for _, f := range info.Fields {
		if !acc.Hidden(f.Name) {
			out.Fields = append(out.Fields, f)
		}
	}
	return &out
}
