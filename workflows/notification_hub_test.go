package workflows

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// hubWait is the generous deadline for anything a hub test waits for.
const hubWait = 15 * time.Second

// runHub starts a hub over the bundle's database; stop ends it (also at cleanup,
// before the pool closes).
func (b *bundle) runHub() (hub *NotificationHub, stop func()) {
	hub = NewNotificationHub(b.pool, slog.New(slog.NewTextHandler(testWriter{b.t}, nil)))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		hub.Run(ctx)
	}()
	stop = sync.OnceFunc(func() {
		cancel()
		<-done
	})
	b.t.Cleanup(stop)
	return hub, stop
}

func (b *bundle) subscribe(hub *NotificationHub, who string) *NotificationSub {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hubWait)
	defer cancel()
	id := b.bob.ID
	if who == "carol" {
		id = b.carol.ID
	}
	sub, err := hub.Subscribe(ctx, id)
	if err != nil {
		b.t.Fatal(err)
	}
	return sub
}

func (b *bundle) notifyUser(userID, title string) {
	b.t.Helper()
	if _, err := b.acts.notify(context.Background(), notification{seed: "test:" + title, userID: userID, title: title}); err != nil {
		b.t.Fatal(err)
	}
}

// receive returns the next notification's title, or "closed".
func receive(t *testing.T, sub *NotificationSub) string {
	t.Helper()
	select {
	case n, ok := <-sub.C:
		if !ok {
			return "closed"
		}
		return n.Title
	case <-time.After(hubWait):
		t.Fatal("nothing delivered in time")
	}
	return ""
}

// TestNotificationHubDropsSlowSubscriber: a subscriber that does not keep up is
// dropped after its buffer fills, and the others are not held up meanwhile.
func TestNotificationHubDropsSlowSubscriber(t *testing.T) {
	b := setup(t)
	hub, _ := b.runHub()
	slow := b.subscribe(hub, "bob")
	other := b.subscribe(hub, "carol")
	// One statement, one commit: the trigger announces every row.
	if _, err := b.pool.Exec(context.Background(), `INSERT INTO tessera.notifications (id, user_id, title)
		SELECT gen_random_uuid(), $1, 'n' || i FROM generate_series(1, $2) i`, b.bob.ID, notificationSubBuffer+1); err != nil {
		t.Fatal(err)
	}
	b.notifyUser(b.carol.ID.String(), "for carol")
	if got := receive(t, other); got != "for carol" {
		t.Fatalf("carol got %q", got)
	}
	// Announcements are handled in commit order, so bob's were all handled by now.
	for i := 1; i <= notificationSubBuffer; i++ {
		if got := receive(t, slow); got != fmt.Sprintf("n%d", i) {
			t.Fatalf("bob's %dth: %q", i, got)
		}
	}
	if got := receive(t, slow); got != "closed" {
		t.Fatalf("after a full buffer: %q, want the subscription closed", got)
	}
	slow.Close() // after the hub's drop: harmless
}

// TestNotificationHubReconnects: when the listening connection dies every subscriber
// is dropped (what was announced meanwhile is lost; they replay), and the hub listens
// again.
func TestNotificationHubReconnects(t *testing.T) {
	b := setup(t)
	hub, _ := b.runHub()
	sub := b.subscribe(hub, "bob")
	if _, err := b.pool.Exec(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN `+NotificationChannel+`'`); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, sub); got != "closed" {
		t.Fatalf("got %q, want the subscription closed", got)
	}
	again := b.subscribe(hub, "bob") // waits for the new connection
	b.notifyUser(b.bob.ID.String(), "after the reconnect")
	if got := receive(t, again); got != "after the reconnect" {
		t.Fatalf("got %q", got)
	}
}

// TestNotificationHubStops: when Run ends, subscriptions close and Subscribe fails.
func TestNotificationHubStops(t *testing.T) {
	b := setup(t)
	hub, stop := b.runHub()
	sub := b.subscribe(hub, "bob")
	stop()
	if got := receive(t, sub); got != "closed" {
		t.Fatalf("got %q, want the subscription closed", got)
	}
	if _, err := hub.Subscribe(context.Background(), b.bob.ID); !errors.Is(err, ErrHubStopped) {
		t.Fatalf("Subscribe after stop: %v", err)
	}
}
