package workflows

import (
	"context"
	"errors"
	"fmt"

	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/workflows/dsl"
)

// scheduleID names the Temporal schedule of a workflow with a schedule trigger.
func scheduleID(workflow string) string { return "tessera-workflow-" + workflow }

// syncSchedule makes the Temporal schedule match a new version: a schedule trigger
// (re)creates it to start that version; any other trigger removes it. Scheduled runs
// act as the administrator who saved the version (a schedule has no triggering user),
// or as the workflow's service identity when it declares runAs.
func (s *Service) syncSchedule(ctx context.Context, def *dsl.Definition, v *Version, actor engine.Actor) error {
	id := scheduleID(def.Name)
	sc := s.Temporal.ScheduleClient()
	if err := sc.GetHandle(ctx, id).Delete(ctx); err != nil {
		var notFound *serviceerror.NotFound
		if !errors.As(err, &notFound) {
			return fmt.Errorf("remove old schedule: %w", err)
		}
	}
	if def.Trigger.Type != dsl.TriggerSchedule {
		return nil
	}
	in := RunInput{Workflow: def.Name, Version: v.Version, Definition: v.Definition, Input: def.Trigger.Input}
	in.actAs(def, actorID(actor))
	_, err := sc.Create(ctx, client.ScheduleOptions{
		ID:   id,
		Spec: client.ScheduleSpec{CronExpressions: []string{def.Trigger.Cron}},
		Action: &client.ScheduleWorkflowAction{
			// Temporal appends the scheduled time, so each run has its own id.
			ID: def.Name + ":schedule", Workflow: InterpreterWorkflow, Args: []any{in}, TaskQueue: TaskQueue,
		},
	})
	if err != nil {
		return fmt.Errorf("create schedule: %w", err)
	}
	return nil
}
