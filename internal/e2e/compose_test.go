package e2e

import (
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestComposeFile checks docker-compose.yml's structure, since no Docker engine runs here:
// it parses, every dependency names a service, and every tessera service is configured
// by env for an external PostgreSQL and Temporal.
func TestComposeFile(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	data, err := os.ReadFile(filepath.Join(filepath.Dir(file), "..", "..", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Image       string         `yaml:"image"`
			Build       any            `yaml:"build"`
			Command     []string       `yaml:"command"`
			Environment map[string]any `yaml:"environment"`
			DependsOn   map[string]any `yaml:"depends_on"`
		} `yaml:"services"`
		Volumes map[string]any `yaml:"volumes"`
	}
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	dec.KnownFields(false)
	if err := dec.Decode(&compose); err != nil {
		t.Fatalf("docker-compose.yml does not parse: %v", err)
	}
	for _, want := range []string{"postgres", "temporal", "temporal-ui", "api1", "api2", "worker"} {
		if _, ok := compose.Services[want]; !ok {
			t.Errorf("service %q missing", want)
		}
	}
	var apiNodes, workers int
	for name, svc := range compose.Services {
		if svc.Image == "" && svc.Build == nil {
			t.Errorf("service %q has neither image nor build", name)
		}
		for dep := range svc.DependsOn {
			if _, ok := compose.Services[dep]; !ok {
				t.Errorf("service %q depends on unknown service %q", name, dep)
			}
		}
		if svc.Build == nil {
			continue
		}
		for _, key := range []string{"DATABASE_URL", "TEMPORAL_ADDRESS"} {
			if svc.Environment[key] == nil {
				t.Errorf("tessera service %q lacks %s", name, key)
			}
		}
		switch {
		case len(svc.Command) > 0 && svc.Command[0] == "serve" && slices.Contains(svc.Command, "--no-worker"):
			apiNodes++
		case len(svc.Command) > 0 && svc.Command[0] == "worker":
			workers++
		default:
			t.Errorf("tessera service %q runs %v, want serve --no-worker or worker", name, svc.Command)
		}
	}
	if apiNodes != 2 || workers != 1 {
		t.Errorf("want 2 API nodes and 1 worker, got %d and %d", apiNodes, workers)
	}
}
