package e2e

import (
	"testing"

	"github.com/tessera/tessera/internal/testdb"
)

// TestScaledTopology runs the docker-compose topology as processes: one PostgreSQL,
// one Temporal, two API nodes without workers and one worker.
func TestScaledTopology(t *testing.T) {
	dbURL := testdb.New(t)
	temporalAddr := freeAddr(t)
	temporal := start(t, "temporal", nil, "temporal", "--data-dir", dataDir(t), "--listen", temporalAddr)

	env := []string{"DATABASE_URL=" + dbURL, "TEMPORAL_ADDRESS=" + temporalAddr,
		"TESSERA_ADMIN_EMAIL=" + adminEmail, "TESSERA_ADMIN_PASSWORD=" + adminPassword}
	addrA, addrB := freeAddr(t), freeAddr(t)
	nodeA := start(t, "api-a", env, "serve", "--no-worker", "--addr", addrA)
	nodeB := start(t, "api-b", env, "serve", "--no-worker", "--addr", addrB)
	worker := start(t, "worker", env, "worker")
	nodeA.waitReady(addrA)
	nodeB.waitReady(addrB)

	a, b := newClient(t, addrA), newClient(t, addrB)
	a.login(adminEmail, adminPassword)
	b.login(adminEmail, adminPassword)
	newUser := map[string]any{"email": "rep@example.com", "name": "Sales Rep", "password": "a long password", "roles": []string{"sales_rep"}}
	if st := a.do("POST", "/api/v1/users", newUser, nil); st != 201 {
		t.Fatalf("create user on node A: %d", st)
	}
	var users struct {
		Items []struct{ Email string }
	}
	if st := b.do("GET", "/api/v1/users", nil, &users); st != 200 {
		t.Fatalf("list users on node B: %d", st)
	}
	found := false
	for _, u := range users.Items {
		found = found || u.Email == "rep@example.com"
	}
	if !found || len(users.Items) != 2 {
		t.Fatalf("node B sees %+v, want the admin and the user created on node A", users.Items)
	}

	// Only the worker process polls the task queue, so it must be the one answering.
	res := runPing(t, temporalAddr)
	if res.PID != worker.cmd.Process.Pid {
		t.Fatalf("ping answered by pid %d, want the worker's pid %d", res.PID, worker.cmd.Process.Pid)
	}

	nodeA.stop()
	nodeB.stop()
	worker.stop()
	temporal.stop()
}
