package web

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/engine/auth"
	"github.com/tessera/tessera/workflows"
)

// streamWait is the generous deadline for anything a stream test waits for.
const streamWait = 15 * time.Second

// streamBundle serves the app on a real listener (app.Test buffers whole bodies) with
// a running notification hub, and writes notifications as the workflow activity does.
type streamBundle struct {
	*testBundle
	base     string
	acts     *workflows.Activities
	stopHub  func()
	shutdown func() error
}

func setupStream(t *testing.T) *streamBundle {
	b := setup(t)
	log := slog.New(slog.NewTextHandler(testLogWriter{t}, nil))
	eng := engine.New(b.pool, log)
	users := auth.NewService(b.pool)
	hub := workflows.NewNotificationHub(b.pool, log)
	ctx, cancel := context.WithCancel(context.Background())
	hubDone := make(chan struct{})
	go func() {
		defer close(hubDone)
		hub.Run(ctx)
	}()
	b.app = New(Deps{Pool: b.pool, Auth: users, Engine: eng, Logger: log, Registry: prometheus.NewRegistry(),
		Workflows: &workflows.Service{Pool: b.pool, Engine: eng, Log: log}, Notifications: hub})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &streamBundle{testBundle: b, base: "http://" + ln.Addr().String(),
		acts: &workflows.Activities{Engine: eng, Users: users, Pool: b.pool, Log: log}}
	s.stopHub = sync.OnceFunc(func() {
		cancel()
		<-hubDone
	})
	served := make(chan error, 1)
	s.shutdown = sync.OnceValue(func() error {
		err := b.app.ShutdownWithTimeout(streamWait)
		<-served
		return err
	})
	go func() { served <- b.app.Listener(ln) }()
	// Cleanups run last-in first-out: the server and the hub let go of their connections
	// before setup's cleanup closes the pool.
	t.Cleanup(func() {
		if err := s.shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		s.stopHub()
	})
	return s
}

// notify writes a notification through the workflow activity.
func (s *streamBundle) notify(run, userID, role, title string) {
	s.t.Helper()
	in := workflows.NotifyInput{Call: workflows.Call{Run: run, Key: "alert"}, UserID: userID, Role: role, Title: title, Body: "Stock is short for " + title}
	if _, err := s.acts.Notify(context.Background(), in); err != nil {
		s.t.Fatal(err)
	}
}

// get is a GET over the real listener.
func (s *streamBundle) get(path, token string) []byte {
	s.t.Helper()
	req, _ := http.NewRequest("GET", s.base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		s.t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
	}
	return body
}

// sseEvent is one dispatched block of a stream.
type sseEvent struct{ ID, Event, Data, Retry string }

// sseStream is an open stream whose blocks a goroutine reads into events.
type sseStream struct {
	t      *testing.T
	resp   *http.Response
	events chan sseEvent
	close  context.CancelFunc
}

// open connects to the stream; auth sets the credentials. It returns once the first
// block, the retry hint, arrived: from then on the stream misses nothing.
func (s *streamBundle) open(path string, auth func(*http.Request)) *sseStream {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	s.t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", s.base+path, nil)
	auth(req)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		body, _ := io.ReadAll(resp.Body)
		s.t.Fatalf("GET %s: %d %s %s", path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	st := &sseStream{t: s.t, resp: resp, events: make(chan sseEvent, 256), close: cancel}
	go st.read(ctx)
	if first := st.next(); first.Retry != "3000" || first.ID != "" {
		s.t.Fatalf("first block %+v, want the retry hint", first)
	}
	return st
}

func (st *sseStream) read(ctx context.Context) {
	defer close(st.events)
	defer st.resp.Body.Close()
	r := bufio.NewReader(st.resp.Body)
	var ev sseEvent
	var has bool
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case line == "":
			if has {
				select {
				case st.events <- ev:
				case <-ctx.Done():
					return
				}
			}
			ev, has = sseEvent{}, false
		case strings.HasPrefix(line, ":"): // a comment: the keep-alive
		default:
			field, value, _ := strings.Cut(line, ":")
			value = strings.TrimPrefix(value, " ")
			switch field {
			case "id":
				ev.ID = value
			case "event":
				ev.Event = value
			case "data":
				ev.Data = value
			case "retry":
				ev.Retry = value
			default:
				st.t.Errorf("unknown field in %q", line)
			}
			has = true
		}
	}
}

// next returns the next block, failing if the stream ends or nothing comes in time.
func (st *sseStream) next() sseEvent {
	st.t.Helper()
	select {
	case ev, ok := <-st.events:
		if !ok {
			st.t.Fatal("the stream ended")
		}
		return ev
	case <-time.After(streamWait):
		st.t.Fatal("no event in time")
	}
	return sseEvent{}
}

// nextTitle returns the title of the next notification event.
func (st *sseStream) nextTitle() string {
	st.t.Helper()
	ev := st.next()
	var n workflows.Notification
	if ev.Event != "notification" || json.Unmarshal([]byte(ev.Data), &n) != nil || n.ID.String() != ev.ID {
		st.t.Fatalf("event %+v", ev)
	}
	return n.Title
}

// expectEnd waits for the server to end the stream.
func (st *sseStream) expectEnd() {
	st.t.Helper()
	deadline := time.After(streamWait)
	for {
		select {
		case _, ok := <-st.events:
			if !ok {
				return
			}
		case <-deadline:
			st.t.Fatal("the stream did not end")
		}
	}
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

func sessionCookieAuth(token string) func(*http.Request) {
	return func(r *http.Request) { r.AddCookie(&http.Cookie{Name: sessionCookie, Value: token}) }
}

// TestNotificationStream: a notification written by the workflow activity reaches its
// user's stream (bearer token or the browser's cookie) as the list endpoint shows it,
// once, and no one else's.
func TestNotificationStream(t *testing.T) {
	s := setupStream(t)
	bob := s.signedIn("bob@example.com", "sales")
	carol := s.signedIn("carol@example.com", "sales")
	bobID, carolID := s.userID("bob@example.com"), s.userID("carol@example.com")

	bobStream := s.open("/api/v1/notifications/stream", bearer(bob.token))
	carolStream := s.open("/api/v1/notifications/stream", sessionCookieAuth(carol.token))

	s.notify("order-1", bobID, "", "Order SO-1: stock short")
	ev := bobStream.next()
	if ev.Event != "notification" || ev.ID == "" {
		t.Fatalf("event %+v", ev)
	}
	var list struct{ Items []json.RawMessage }
	if err := json.Unmarshal(s.get("/api/v1/notifications", bob.token), &list); err != nil || len(list.Items) != 1 {
		t.Fatalf("list %+v, %v", list, err)
	}
	var streamed, listed map[string]any
	_ = json.Unmarshal([]byte(ev.Data), &streamed)
	_ = json.Unmarshal(list.Items[0], &listed)
	if !reflect.DeepEqual(streamed, listed) || listed["id"] != ev.ID {
		t.Fatalf("streamed %v, listed %v (event id %s)", streamed, listed, ev.ID)
	}

	// A retried activity writes nothing new, so nothing is streamed twice; carol's
	// first event is her own, so bob's never reached her (one listener delivers in
	// commit order).
	s.notify("order-1", bobID, "", "Order SO-1: stock short")
	s.notify("order-2", carolID, "", "Order SO-2: stock short")
	if got := carolStream.nextTitle(); got != "Order SO-2: stock short" {
		t.Fatalf("carol got %q", got)
	}
	s.notify("order-3", "", "sales", "Order SO-3: stock short")
	if got := bobStream.nextTitle(); got != "Order SO-3: stock short" {
		t.Fatalf("bob got %q after the retry", got)
	}
	if got := carolStream.nextTitle(); got != "Order SO-3: stock short" {
		t.Fatalf("carol got %q", got)
	}
}

// TestNotificationStreamReplay: a client that reconnects with the last id it saw gets
// what it missed, in order, then the live ones; an id that is not the user's replays
// nothing.
func TestNotificationStreamReplay(t *testing.T) {
	s := setupStream(t)
	bob := s.signedIn("bob@example.com")
	carol := s.signedIn("carol@example.com")
	bobID, carolID := s.userID("bob@example.com"), s.userID("carol@example.com")

	first := s.open("/api/v1/notifications/stream", bearer(bob.token))
	s.notify("r1", bobID, "", "one")
	seen := first.next()
	first.close()

	s.notify("r2", bobID, "", "two")
	s.notify("r3", bobID, "", "three")
	s.notify("r4", carolID, "", "carol's")
	missed := []string{"two", "three"}

	for _, resume := range []struct {
		name string
		path string
		auth func(*http.Request)
	}{
		{"header", "/api/v1/notifications/stream", func(r *http.Request) { bearer(bob.token)(r); r.Header.Set("Last-Event-ID", seen.ID) }},
		{"query", "/api/v1/notifications/stream?lastEventId=" + seen.ID, sessionCookieAuth(bob.token)},
	} {
		st := s.open(resume.path, resume.auth)
		for _, want := range missed {
			if got := st.nextTitle(); got != want {
				t.Fatalf("%s: replayed %q, want %q of %q", resume.name, got, want, missed)
			}
		}
		s.notify("live-"+resume.name, bobID, "", "live "+resume.name)
		if got := st.nextTitle(); got != "live "+resume.name {
			t.Fatalf("%s: after the replay: %q", resume.name, got)
		}
		st.close()
		// The next reconnection (from the same point) has missed this one too.
		missed = append(missed, "live "+resume.name)
	}

	// Carol's notification id in bob's Last-Event-ID replays nothing of anyone's.
	var carolList struct{ Items []workflows.Notification }
	_ = json.Unmarshal(s.get("/api/v1/notifications", carol.token), &carolList)
	st := s.open("/api/v1/notifications/stream", func(r *http.Request) {
		bearer(bob.token)(r)
		r.Header.Set("Last-Event-ID", carolList.Items[0].ID.String())
	})
	s.notify("r5", bobID, "", "five")
	if got := st.nextTitle(); got != "five" {
		t.Fatalf("got %q, want only the live one", got)
	}
}

func TestNotificationStreamUnauthenticated(t *testing.T) {
	s := setupStream(t)
	for name, auth := range map[string]func(*http.Request){
		"none":       func(*http.Request) {},
		"bad token":  bearer("nope"),
		"bad cookie": sessionCookieAuth("nope"),
	} {
		req, _ := http.NewRequest("GET", s.base+"/api/v1/notifications/stream", nil)
		auth(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 {
			t.Errorf("%s: status %d, want 401", name, resp.StatusCode)
		}
	}
}

// TestNotificationStreamShutdown: open streams end when the server shuts down, so
// Shutdown completes instead of waiting for the clients.
func TestNotificationStreamShutdown(t *testing.T) {
	s := setupStream(t)
	st := s.open("/api/v1/notifications/stream", bearer(s.token))
	if err := s.shutdown(); err != nil {
		t.Fatalf("shutdown with an open stream: %v", err)
	}
	st.expectEnd()
}

// TestNotificationStreamHubStops: when the hub stops (the server's context ended, as
// in tessera serve) the streams end too.
func TestNotificationStreamHubStops(t *testing.T) {
	s := setupStream(t)
	st := s.open("/api/v1/notifications/stream", bearer(s.token))
	s.stopHub()
	st.expectEnd()
}
