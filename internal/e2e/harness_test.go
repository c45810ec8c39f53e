// Package e2e runs the built tessera binary as a user would: real processes, a private
// PostgreSQL, the embedded Temporal server, HTTP on loopback.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "tessera-e2e-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "tessera")
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	build := exec.Command("go", "build", "-o", binary, "./cmd/tessera")
	build.Dir = root
	build.Stdout, build.Stderr = os.Stdout, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build tessera:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// dataDir returns a fresh directory the unprivileged postgres user can reach
// (t.TempDir's parents are 0700).
func dataDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "tessera-e2e-data")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is one running tessera process with its output captured to a file.
type proc struct {
	t    *testing.T
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan error
}

func start(t *testing.T, name string, env []string, args ...string) *proc {
	t.Helper()
	logFile, err := os.Create(filepath.Join(t.TempDir(), name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, name: name, cmd: cmd, log: logFile, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if p.running() {
			_ = cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("---- %s output ----\n%s", name, p.output())
		}
	})
	return p
}

func (p *proc) running() bool { return p.cmd.ProcessState == nil }

func (p *proc) output() string {
	b, _ := os.ReadFile(p.log.Name())
	return string(b)
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("%s: signal: %v", p.name, err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			p.t.Fatalf("%s exited with %v\n%s", p.name, err, p.output())
		}
	case <-time.After(60 * time.Second):
		p.t.Fatalf("%s did not stop within 60s after SIGTERM\n%s", p.name, p.output())
	}
}

// waitExit waits for the process to end on its own and returns its error.
func (p *proc) waitExit(timeout time.Duration) error {
	p.t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(timeout):
		p.t.Fatalf("%s still running after %s", p.name, timeout)
		return nil
	}
}

// waitReady polls /readyz until it answers 200.
func (p *proc) waitReady(addr string) {
	p.t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for time.Now().Before(deadline) {
		select {
		case err := <-p.done:
			p.t.Fatalf("%s exited before ready: %v\n%s", p.name, err, p.output())
		default:
		}
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	p.t.Fatalf("%s not ready within 3 minutes\n%s", p.name, p.output())
}

// client speaks to one node's HTTP API.
type apiClient struct {
	t     *testing.T
	base  string
	token string
}

func newClient(t *testing.T, addr string) *apiClient {
	return &apiClient{t: t, base: "http://" + addr}
}

func (c *apiClient) do(method, path string, body any, out any) int {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			c.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, c.base+path, r)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, data, err)
		}
	}
	return resp.StatusCode
}

func (c *apiClient) login(email, password string) {
	c.t.Helper()
	var out struct{ Token string }
	if st := c.do("POST", "/api/v1/auth/login", map[string]string{"email": email, "password": password}, &out); st != 200 {
		c.t.Fatalf("login as %s: status %d", email, st)
	}
	c.token = out.Token
}

// postgresFor lists the pids of postgres processes whose command line names dir.
func postgresFor(dir string) []string {
	var pids []string
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		s := strings.ReplaceAll(string(cmdline), "\x00", " ")
		if strings.Contains(s, "postgres") && strings.Contains(s, dir) {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// records lists an entity's records matching a filter.
func (c *apiClient) records(entity, filter string) []map[string]any {
	c.t.Helper()
	var out struct{ Items []map[string]any }
	path := "/api/v1/data/" + entity + "?limit=500"
	if filter != "" {
		path += "&filter=" + urlEscape(filter)
	}
	c.expect("GET", path, nil, 200, &out)
	return out.Items
}

// one is the one record of an entity matching a filter.
func (c *apiClient) one(entity, filter string) map[string]any {
	c.t.Helper()
	items := c.records(entity, filter)
	if len(items) != 1 {
		c.t.Fatalf("%s where %s: %d records, want 1: %v", entity, filter, len(items), items)
	}
	return items[0]
}

// waitTask polls the user's inbox until the run's task at step (any step when empty)
// is open.
func (c *apiClient) waitTask(run, step string) string {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		var inbox struct {
			Items []struct{ ID, Run, Step, Title string }
		}
		c.expect("GET", "/api/v1/tasks?assignee=me&status=open", nil, 200, &inbox)
		for _, it := range inbox.Items {
			if it.Run == run && (step == "" || it.Step == step) {
				return it.ID
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("no open task %s for run %s", step, run)
	return ""
}

// notified waits until the user has a notification whose title contains text.
func (c *apiClient) notified(text string) string {
	c.t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var titles []string
	for time.Now().Before(deadline) {
		var out struct {
			Items []struct{ Title, Body string }
		}
		c.expect("GET", "/api/v1/notifications", nil, 200, &out)
		titles = titles[:0]
		for _, n := range out.Items {
			if strings.Contains(n.Title, text) {
				return n.Title + " / " + n.Body
			}
			titles = append(titles, n.Title)
		}
		time.Sleep(200 * time.Millisecond)
	}
	c.t.Fatalf("no notification %q; have %q", text, titles)
	return ""
}

// eventually polls cond until it holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func idOf(rec map[string]any) string { return fmt.Sprint(rec["id"]) }

// expectFields compares record fields with exact strings.
func expectFields(t *testing.T, what string, rec map[string]any, want map[string]string) {
	t.Helper()
	for k, v := range want {
		if got := fmt.Sprint(rec[k]); got != v {
			t.Errorf("%s: %s = %q, want %q (record %v)", what, k, got, v, rec)
		}
	}
}

// notificationStream opens the user's realtime notification stream and returns the data lines
// of its events as they arrive; the stream closes when the test ends.
func (c *apiClient) notificationStream() <-chan string {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	c.t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", c.base+"/api/v1/notifications/stream", nil)
	if err != nil {
		c.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		c.t.Fatalf("notification stream: %v %v", resp, err)
	}
	events := make(chan string, 100)
	go func() {
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
				events <- data
			}
		}
	}()
	return events
}

// kill ends the process at once (SIGKILL), as a crash would.
func (p *proc) kill() {
	p.t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		p.t.Fatalf("%s: kill: %v", p.name, err)
	}
	<-p.done
}
