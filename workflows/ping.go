package workflows

import (
	"context"
	"os"
	"time"

	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/workflow"
)

// PingWorkflow is the type name of the smoke-test workflow: it proves that a worker is
// polling and that a workflow and an activity complete, without touching business data.
const PingWorkflow = "tessera.ping"

// PingResult tells which worker process answered.
type PingResult struct {
	Message string `json:"message"`
	Host    string `json:"host"`
	PID     int    `json:"pid"`
}

// Ping runs PingActivity once and returns its answer.
func Ping(ctx workflow.Context, message string) (PingResult, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: 10 * time.Second})
	var res PingResult
	err := workflow.ExecuteActivity(ctx, PingWorkflow, message).Get(ctx, &res)
	return res, err
}

// PingActivity echoes the message with the identity of the worker process.
func PingActivity(ctx context.Context, message string) (PingResult, error) {
	host, _ := os.Hostname()
	return PingResult{Message: message, Host: host, PID: os.Getpid()}, nil
}

func workflowOptions(name string) workflow.RegisterOptions {
	return workflow.RegisterOptions{Name: name}
}

func activityOptions(name string) activity.RegisterOptions {
	return activity.RegisterOptions{Name: name}
}
