//go:build bench

// The interpreter against a hand-written workflow, on the embedded Temporal server
// (linked only with -tags bench, so ordinary test runs do not link the server):
//
//	go test -tags bench -run '^$' -bench Workflow -benchtime 200x ./workflows/
//
// Both sides run the same five activities (create, update, get, query, notify) with
// the same inputs against the same PostgreSQL; the DSL side also keeps its run
// timeline (journal rows), which is part of what it costs.
package workflows

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/worker"
	"go.temporal.io/sdk/workflow"

	"github.com/tessera/tessera/workflows/devserver"
)

const benchDef = `{
  "name": "bench", "trigger": {"type": "manual"},
  "steps": [
    {"id": "make", "type": "create", "entity": "deal", "data": {"name": "$input.name", "amount": "100"}},
    {"id": "win", "type": "update", "entity": "deal", "record": "$steps.make.record.id", "data": {"stage": "won"}},
    {"id": "read", "type": "get", "entity": "deal", "record": "$steps.make.record.id"},
    {"id": "find", "type": "query", "entity": "deal", "filter": "name == $input.name", "limit": 5},
    {"id": "tell", "type": "notify", "to": {"user": "$input.owner"}, "title": "Deal {{ $input.name }} won"}
  ]}`

// handWritten is the baseline: the same activities, called from Go.
func handWritten(ctx workflow.Context, in RunInput) (RunOutput, error) {
	ctx = workflow.WithActivityOptions(ctx, workflow.ActivityOptions{StartToCloseTimeout: time.Minute})
	id := workflow.GetInfo(ctx).WorkflowExecution.ID
	call := func(key string) Call { return Call{Run: id, Key: key, Actor: in.Actor} }
	name := in.Input["name"].(string)
	var made, won, read, found RecordOutput
	if err := workflow.ExecuteActivity(ctx, ActCreate, RecordInput{Call: call("make"), Entity: "deal",
		ID: recordID(workflow.Now(ctx), id, "make").String(), Data: map[string]any{"name": name, "amount": "100"}}).Get(ctx, &made); err != nil {
		return RunOutput{}, err
	}
	dealID := made.Record["id"].(string)
	if err := workflow.ExecuteActivity(ctx, ActUpdate, RecordInput{Call: call("win"), Entity: "deal", ID: dealID,
		Data: map[string]any{"stage": "won"}}).Get(ctx, &won); err != nil {
		return RunOutput{}, err
	}
	if err := workflow.ExecuteActivity(ctx, ActGet, RecordInput{Call: call("read"), Entity: "deal", ID: dealID}).Get(ctx, &read); err != nil {
		return RunOutput{}, err
	}
	if err := workflow.ExecuteActivity(ctx, ActQuery, RecordInput{Call: call("find"), Entity: "deal",
		Filter: fmt.Sprintf("name == %q", name), Limit: 5}).Get(ctx, &found); err != nil {
		return RunOutput{}, err
	}
	err := workflow.ExecuteActivity(ctx, ActNotify, NotifyInput{Call: call("tell"), User: in.Input["owner"].(string),
		Title: "Deal " + name + " won"}).Get(ctx, nil)
	return RunOutput{}, err
}

const handWrittenWorkflow = "tessera.bench.handwritten"

// benchResult is one side's numbers.
type benchResult struct {
	perSecond, p50, p99 float64
}

var (
	benchMu      sync.Mutex
	benchResults = map[string]benchResult{}
)

// BenchmarkWorkflow runs b.N workflows per side, 8 at a time, and reports runs/s and
// p50/p99 start-to-complete; the dsl side prints its ratio to the go side.
func BenchmarkWorkflow(b *testing.B) {
	bb := setupBench(b)
	for _, side := range []struct{ name, workflow string }{{"go", handWrittenWorkflow}, {"dsl", InterpreterWorkflow}} {
		b.Run(side.name, func(b *testing.B) {
			res := bb.drive(b, side.workflow)
			benchMu.Lock()
			benchResults[side.name] = res
			base, ok := benchResults["go"]
			benchMu.Unlock()
			b.ReportMetric(res.perSecond, "runs/s")
			b.ReportMetric(res.p50, "p50-ms")
			b.ReportMetric(res.p99, "p99-ms")
			if side.name == "dsl" && ok && b.N > 1 {
				b.Logf("dsl/go: p50 %.2fx, p99 %.2fx, throughput %.2fx (goal: ≤ 1.25x)",
					res.p50/base.p50, res.p99/base.p99, base.perSecond/res.perSecond)
			}
		})
	}
}

type benchBundle struct {
	*bundle
	c client.Client
}

func setupBench(b *testing.B) *benchBundle {
	b.Helper()
	dir, err := os.MkdirTemp("", "tessera-bench")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	srv, err := devserver.Start(devserver.Options{DBPath: filepath.Join(dir, "temporal.db"), Listen: "127.0.0.1:0",
		Namespaces: []string{"default"}, LogLevel: "fatal"})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = srv.Stop() })
	c, err := client.Dial(client.Options{HostPort: srv.Addr(), Namespace: "default", Logger: nopLogger{}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	bb := &benchBundle{bundle: setupTB(b), c: c}
	w := worker.New(c, TaskQueue, worker.Options{})
	w.RegisterWorkflowWithOptions(Interpret, workflow.RegisterOptions{Name: InterpreterWorkflow})
	w.RegisterWorkflowWithOptions(handWritten, workflow.RegisterOptions{Name: handWrittenWorkflow})
	bb.acts.Register(w)
	if err := w.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(w.Stop)
	// Warm both sides up together (server caches, connections, compiled definitions),
	// so neither pays for starting the server.
	for i := range 20 {
		for _, wf := range []string{handWrittenWorkflow, InterpreterWorkflow} {
			bb.runOne(b, wf, fmt.Sprintf("warm-%d", i))
		}
	}
	return bb
}

// runOne runs one workflow to its end and returns how long that took.
func (bb *benchBundle) runOne(b *testing.B, wf, name string) time.Duration {
	ctx := context.Background()
	in := RunInput{Workflow: "bench", Version: 1, Definition: []byte(benchDef), Actor: bb.admin.ID.String(),
		Input: map[string]any{"name": name, "owner": "bob@example.com"}}
	start := time.Now()
	r, err := bb.c.ExecuteWorkflow(ctx, client.StartWorkflowOptions{ID: fmt.Sprintf("%s-%s-%d", wf, name, time.Now().UnixNano()), TaskQueue: TaskQueue}, wf, in)
	if err == nil {
		err = r.Get(ctx, nil)
	}
	if err != nil {
		b.Error(err)
	}
	return time.Since(start)
}

// drive runs b.N workflows, 8 in flight, and measures each from start to result.
func (bb *benchBundle) drive(b *testing.B, wf string) benchResult {
	run := func(i int) time.Duration { return bb.runOne(b, wf, fmt.Sprintf("%d-%d", b.N, i)) }
	const inFlight = 8
	lat := make([]time.Duration, b.N)
	next := make(chan int)
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range inFlight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				lat[i] = run(i)
			}
		}()
	}
	for i := range b.N {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return benchResult{perSecond: float64(b.N) / elapsed.Seconds(), p50: ms(lat[len(lat)/2]), p99: ms(lat[len(lat)*99/100])}
}
