package workflows

import (
	"go.temporal.io/sdk/workflow"
)

// compensate runs the saga backwards: the compensation steps of every completed step
// that declared some, newest first. One failing compensation does not stop the others;
// the first error is reported.
func (r *run) compensate(ctx workflow.Context) error {
	var first error
	for i := len(r.comp) - 1; i >= 0; i-- {
		c := r.comp[i]
		s := r.byID[c.Step]
		if s == nil {
			continue
		}
		f := frame{prefix: "compensate." + c.Key + ".", vars: c.Frame}
		if err := r.exec(ctx, s.Compensate, f); err != nil && first == nil {
			first = err
		}
	}
	r.comp = nil
	return first
}
