package workflows

import (
	"testing"

	"go.temporal.io/sdk/testsuite"
)

func TestPing(t *testing.T) {
	var suite testsuite.WorkflowTestSuite
	env := suite.NewTestWorkflowEnvironment()
	env.RegisterWorkflowWithOptions(Ping, workflowOptions(PingWorkflow))
	env.RegisterActivityWithOptions(PingActivity, activityOptions(PingWorkflow))
	env.ExecuteWorkflow(PingWorkflow, "hello")
	if err := env.GetWorkflowError(); err != nil {
		t.Fatal(err)
	}
	var res PingResult
	if err := env.GetWorkflowResult(&res); err != nil {
		t.Fatal(err)
	}
	if res.Message != "hello" || res.PID == 0 {
		t.Fatalf("unexpected result %+v", res)
	}
}
