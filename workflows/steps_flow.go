package workflows

import (
	"fmt"
	"maps"
	"slices"

	"go.temporal.io/sdk/workflow"

	"github.com/tessera/tessera/workflows/dsl"
)

// set assigns $vars.<name> from mappings.
func (r *run) set(s *dsl.Step, sc dsl.Scope) (map[string]any, error) {
	vals, err := sc.ResolveMap(s.Vars)
	if err != nil {
		return nil, err
	}
	for _, k := range slices.Sorted(maps.Keys(vals)) {
		r.vars[k] = vals[k]
	}
	return map[string]any{"vars": vals}, nil
}

// condition runs then or else.
func (r *run) condition(ctx workflow.Context, s *dsl.Step, f frame, sc dsl.Scope) (map[string]any, error) {
	ok, err := sc.Cond(s.If)
	if err != nil {
		return nil, err
	}
	branch, steps := "then", s.Then
	if !ok {
		branch, steps = "else", s.Else
	}
	if err := r.exec(ctx, steps, f.nested()); err != nil {
		return nil, err
	}
	return map[string]any{"branch": branch}, nil
}

// switchStep runs the steps of the first case whose condition holds, else default.
func (r *run) switchStep(ctx workflow.Context, s *dsl.Step, f frame, sc dsl.Scope) (map[string]any, error) {
	for i, c := range s.Cases {
		ok, err := sc.Cond(c.When)
		if err != nil {
			return nil, fmt.Errorf("case %d: %w", i, err)
		}
		if ok {
			if err := r.exec(ctx, c.Steps, f.nested()); err != nil {
				return nil, err
			}
			return map[string]any{"case": i}, nil
		}
	}
	if err := r.exec(ctx, s.Default, f.nested()); err != nil {
		return nil, err
	}
	return map[string]any{"case": "default"}, nil
}

// parallel runs its branches concurrently. mode all (the default) waits for every
// branch and fails when one fails, cancelling the others; mode first completes with
// the first branch that succeeds and cancels the rest.
func (r *run) parallel(ctx workflow.Context, s *dsl.Step, f frame) (map[string]any, error) {
	bctx, cancel := workflow.WithCancel(ctx)
	defer cancel()
	n := len(s.Branches)
	errs := make([]error, n)
	finished, winner := 0, -1
	for i, b := range s.Branches {
		workflow.Go(bctx, func(gctx workflow.Context) {
			errs[i] = r.exec(gctx, b.Steps, f.nested())
			finished++
			switch {
			case errs[i] == nil && winner < 0:
				winner = i
				if s.Mode == "first" {
					cancel()
				}
			case errs[i] != nil && s.Mode != "first":
				cancel()
			}
		})
	}
	// Wait for every branch, cancelled ones included, so none outlives the step.
	if err := workflow.Await(ctx, func() bool { return finished == n }); err != nil {
		return nil, err
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	if s.Mode == "first" && winner >= 0 {
		return map[string]any{"winner": winner, "branch": s.Branches[winner].Name}, nil
	}
	// The first real failure in branch order; the other branches were cancelled
	// because of it.
	for _, err := range errs {
		if err != nil && !isCancelErr(err) {
			return nil, err
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return map[string]any{"branches": n}, nil
}

// foreach runs its steps once per item, with $item, $index and $<as>. At the top
// level of a definition a long loop continues as new before its history grows large.
func (r *run) foreach(ctx workflow.Context, s *dsl.Step, f frame, sc dsl.Scope) (map[string]any, error) {
	items, start := []any(nil), 0
	if f.top && r.loopItems != nil {
		items, start = r.loopItems, r.loop
	} else {
		v, err := sc.Resolve(s.Items)
		if err != nil {
			return nil, err
		}
		if v != nil {
			list, ok := v.([]any)
			if !ok {
				return nil, fmt.Errorf("items is %s, not a list", dsl.Text(v))
			}
			items = list
		}
	}
	as := s.As
	if as == "" {
		as = "item"
	}
	for i := start; i < len(items); i++ {
		vars := map[string]any{}
		for k, v := range f.vars {
			vars[k] = v
		}
		vars["item"], vars["index"], vars[as] = items[i], i, items[i]
		fr := frame{prefix: fmt.Sprintf("%s%s.%d.", f.prefix, s.ID, i), vars: vars}
		if err := r.exec(ctx, s.Steps, fr); err != nil {
			return nil, err
		}
		if f.top && i+1 < len(items) && r.historyFull(ctx) {
			r.loopItems = items
			return nil, &continueAsNew{loop: i + 1}
		}
	}
	return map[string]any{"count": len(items)}, nil
}

// historyFull says it is time to continue as new.
func (r *run) historyFull(ctx workflow.Context) bool {
	info := workflow.GetInfo(ctx)
	limit := r.in.HistoryLimit
	if limit <= 0 {
		limit = DefaultHistoryLimit
	}
	return info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= limit
}
