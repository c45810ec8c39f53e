// Package workflows runs Tessera's business processes on Temporal: the client, the
// worker and the workflows and activities it hosts.
package workflows

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"go.temporal.io/sdk/client"
	sdklog "go.temporal.io/sdk/log"
	"go.temporal.io/sdk/worker"
)

// TaskQueue is the queue every Tessera worker polls.
const TaskQueue = "tessera"

// Dial connects to Temporal, retrying until ctx ends: in a scaled deployment the API
// nodes and workers may start before the Temporal server is up.
func Dial(ctx context.Context, address, namespace string, log *slog.Logger) (client.Client, error) {
	opts := client.Options{HostPort: address, Namespace: namespace, Logger: sdklog.NewStructuredLogger(log)}
	for delay := 200 * time.Millisecond; ; delay = min(delay*2, 5*time.Second) {
		c, err := client.DialContext(ctx, opts)
		if err == nil {
			return c, nil
		}
		log.Warn("temporal not reachable yet", "address", address, "err", err)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("connect to temporal at %s: %w", address, err)
		case <-time.After(delay):
		}
	}
}

// CheckHealth is a readiness check for the Temporal frontend.
func CheckHealth(c client.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := c.CheckHealth(ctx, &client.CheckHealthRequest{})
		return err
	}
}

// NewWorker returns a worker with every Tessera workflow and activity registered:
// the smoke test and the DSL interpreter with its activities. The caller starts and
// stops it.
func NewWorker(c client.Client, acts *Activities) worker.Worker {
	w := worker.New(c, TaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(Ping, workflowOptions(PingWorkflow))
	w.RegisterActivityWithOptions(PingActivity, activityOptions(PingWorkflow))
	w.RegisterWorkflowWithOptions(Interpret, workflowOptions(InterpreterWorkflow))
	acts.Register(w)
	return w
}
