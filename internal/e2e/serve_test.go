package e2e

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"go.temporal.io/sdk/client"

	"github.com/tessera/tessera/workflows"
)

const (
	adminEmail    = "admin@example.com"
	adminPassword = "correct horse battery"
)

func adminEnv() []string {
	return []string{"TESSERA_ADMIN_EMAIL=" + adminEmail, "TESSERA_ADMIN_PASSWORD=" + adminPassword,
		"DATABASE_URL=", "TEMPORAL_ADDRESS="}
}

// serveWithModule starts serve on a fresh data dir with its embedded PostgreSQL and
// Temporal, signs the administrator in and installs a module (with its dependencies).
// It returns the process, the admin's client, the HTTP and the Temporal addresses.
func serveWithModule(t *testing.T, module string) (*proc, *apiClient, string, string) {
	t.Helper()
	httpAddr, temporalAddr := freeAddr(t), freeAddr(t)
	serve := start(t, "serve", adminEnv(), "serve", "--data-dir", dataDir(t), "--addr", httpAddr, "--temporal-listen", temporalAddr)
	serve.waitReady(httpAddr)
	admin := newClient(t, httpAddr)
	admin.login(adminEmail, adminPassword)
	admin.expect("POST", "/api/v1/modules/"+module+"/install", nil, 200, nil)
	return serve, admin, httpAddr, temporalAddr
}

// runPing starts the smoke-test workflow on the Temporal server at addr and waits for it.
func runPing(t *testing.T, addr string) workflows.PingResult {
	t.Helper()
	c, err := client.Dial(client.Options{HostPort: addr, Namespace: "default"})
	if err != nil {
		t.Fatalf("dial temporal %s: %v", addr, err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	run, err := c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{TaskQueue: workflows.TaskQueue}, workflows.PingWorkflow, "hello")
	if err != nil {
		t.Fatalf("start ping: %v", err)
	}
	var res workflows.PingResult
	if err := run.Get(ctx, &res); err != nil {
		t.Fatalf("ping workflow: %v", err)
	}
	if res.Message != "hello" {
		t.Fatalf("ping answered %+v", res)
	}
	return res
}

// TestServeEmbedded is the new user's path: an empty data dir, no configuration.
func TestServeEmbedded(t *testing.T) {
	dir := dataDir(t)
	httpAddr, temporalAddr := freeAddr(t), freeAddr(t)
	args := []string{"serve", "--data-dir", dir, "--addr", httpAddr, "--temporal-listen", temporalAddr}

	first := start(t, "serve-1", adminEnv(), args...)
	first.waitReady(httpAddr)
	api := newClient(t, httpAddr)
	api.login(adminEmail, adminPassword)
	var me struct{ Email string }
	if st := api.do("GET", "/api/v1/auth/me", nil, &me); st != 200 || me.Email != adminEmail {
		t.Fatalf("me: %d %+v", st, me)
	}
	runPing(t, temporalAddr)
	if len(postgresFor(dir)) == 0 {
		t.Fatal("no private postgres process found for the data dir")
	}

	// A second serve on the same data dir must refuse, not corrupt it.
	second := start(t, "serve-2", adminEnv(), "serve", "--data-dir", dir, "--addr", freeAddr(t), "--temporal-listen", freeAddr(t))
	if err := second.waitExit(2 * time.Minute); err == nil {
		t.Fatal("second serve on the same data dir exited 0")
	}
	if out := second.output(); !strings.Contains(out, "in use") {
		t.Fatalf("second serve should say the data dir is in use, said:\n%s", out)
	}

	first.stop()
	if pids := postgresFor(dir); len(pids) > 0 {
		t.Fatalf("postgres still running after SIGTERM: pids %v", pids)
	}
	if c, err := net.DialTimeout("tcp", temporalAddr, time.Second); err == nil {
		c.Close()
		t.Fatal("temporal frontend still listening after SIGTERM")
	}

	// The same data dir starts again with the same users and the same Temporal state.
	again := start(t, "serve-3", adminEnv(), args...)
	again.waitReady(httpAddr)
	api = newClient(t, httpAddr)
	api.login(adminEmail, adminPassword)
	runPing(t, temporalAddr)
	again.stop()
	if pids := postgresFor(dir); len(pids) > 0 {
		t.Fatalf("postgres still running after second SIGTERM: pids %v", pids)
	}
}
