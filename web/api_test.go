package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/internal/testpool"
)

const (
	testAdmin    = "admin@example.com"
	testPassword = "a long test password"
)

// testBundle is the app under test and what it was built from.
type testBundle struct {
	t     *testing.T
	app   *fiber.App
	pool  *pgxpool.Pool
	token string
}

func setup(t *testing.T) *testBundle {
	t.Helper()
	ctx := context.Background()
	pool := testpool.New(t)
	users := auth.NewService(pool)
	if _, _, err := users.Bootstrap(ctx, testAdmin, testPassword); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
	app := New(Deps{Pool: pool, Auth: users, Engine: engine.New(pool, log), Logger: log, Registry: prometheus.NewRegistry()})
	b := &testBundle{t: t, app: app, pool: pool}
	var out struct{ Token string }
	b.expect("POST", "/api/v1/auth/login", map[string]string{"email": testAdmin, "password": testPassword}, 200, &out)
	b.token = out.Token
	return b
}

// response is a decoded answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (b *testBundle) request(method, path string, body any, headers ...string) response {
	b.t.Helper()
	var r io.Reader
	switch v := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(v)
	case []byte:
		r = bytes.NewReader(v)
	default:
		data, err := json.Marshal(v)
		if err != nil {
			b.t.Fatal(err)
		}
		r = bytes.NewReader(data)
	}
	req := httptest.NewRequest(method, path, r)
	req.Header.Set("Content-Type", "application/json")
	if b.token != "" {
		req.Header.Set("Authorization", "Bearer "+b.token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := b.app.Test(req, -1)
	if err != nil {
		b.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{Status: resp.StatusCode, Header: resp.Header, Body: data}
}

// expect makes a request, checks the status and decodes the body into out.
func (b *testBundle) expect(method, path string, body any, status int, out any, headers ...string) response {
	b.t.Helper()
	resp := b.request(method, path, body, headers...)
	if resp.Status != status {
		b.t.Fatalf("%s %s: status %d, want %d; body: %s", method, path, resp.Status, status, resp.Body)
	}
	if out != nil {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			b.t.Fatalf("%s %s: decode %s: %v", method, path, resp.Body, err)
		}
	}
	return resp
}

// apiError is the error shape for assertions.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
		Details []struct {
			Path    string `json:"path"`
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"details"`
	} `json:"error"`
}

func (e apiError) hasPath(path string) bool {
	for _, d := range e.Error.Details {
		if d.Path == path {
			return true
		}
	}
	return false
}

func urlQuery(s string) string { return url.QueryEscape(s) }

// testLogWriter sends the server's log lines to the test log, shown on failure.
type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
