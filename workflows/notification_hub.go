package workflows

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// NotificationChannel is the PostgreSQL channel on which a trigger (migration 008)
// announces every new row of tessera.notifications as {"id", "user_id"}.
const NotificationChannel = "tessera_notifications"

// notificationSubBuffer is how far a subscriber may fall behind before it is dropped.
const notificationSubBuffer = 64

// ErrHubStopped is returned by Subscribe once the hub's Run has ended.
var ErrHubStopped = errors.New("notification hub stopped")

// NotificationHub hands new in-app notifications to the open streams of their users on
// this node. Whichever process writes a notification, the database announces it on
// NotificationChannel; the hub holds one listening connection for all of the node's
// streams, not one per client.
//
// Delivery never waits for a subscriber: one that falls behind is dropped. All
// subscribers are dropped when the listening connection is lost, since what was
// announced meanwhile is gone. Either way the subscription's channel closes, the client
// reconnects with the last id it saw, and replays what it missed from the table
// (Service.NotificationsAfter).
type NotificationHub struct {
	pool *pgxpool.Pool
	log  *slog.Logger

	mu   sync.Mutex
	subs map[uuid.UUID]map[*NotificationSub]struct{}
	// live is closed while the hub listens (and when it stops, to wake Subscribe);
	// losing the connection replaces it with an open one.
	live      chan struct{}
	listening bool
	stopped   bool
}

// NewNotificationHub returns a hub over the pool; Run makes it deliver.
func NewNotificationHub(pool *pgxpool.Pool, log *slog.Logger) *NotificationHub {
	return &NotificationHub{pool: pool, log: log, subs: map[uuid.UUID]map[*NotificationSub]struct{}{}, live: make(chan struct{})}
}

// NotificationSub is one stream's subscription to its user's new notifications.
type NotificationSub struct {
	// C delivers the notifications. It is closed when the hub drops the subscriber (it
	// fell behind, the listener was lost, the hub stopped) or Close is called.
	C    <-chan Notification
	c    chan Notification
	user uuid.UUID
	hub  *NotificationHub
}

// Subscribe registers a subscriber for the user's new notifications. It waits until
// the hub listens, so every notification committed after it returns is delivered
// (unless the subscriber is dropped); it fails when ctx ends first or the hub stopped.
func (h *NotificationHub) Subscribe(ctx context.Context, user uuid.UUID) (*NotificationSub, error) {
	for {
		h.mu.Lock()
		if h.stopped {
			h.mu.Unlock()
			return nil, ErrHubStopped
		}
		if h.listening {
			c := make(chan Notification, notificationSubBuffer)
			s := &NotificationSub{C: c, c: c, user: user, hub: h}
			if h.subs[user] == nil {
				h.subs[user] = map[*NotificationSub]struct{}{}
			}
			h.subs[user][s] = struct{}{}
			h.mu.Unlock()
			return s, nil
		}
		live := h.live
		h.mu.Unlock()
		select {
		case <-live:
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for the notification listener: %w", ctx.Err())
		}
	}
}

// Close ends the subscription; calling it again, or after the hub dropped it, is fine.
func (s *NotificationSub) Close() {
	s.hub.mu.Lock()
	s.hub.dropLocked(s)
	s.hub.mu.Unlock()
}

func (h *NotificationHub) dropLocked(s *NotificationSub) {
	set := h.subs[s.user]
	if _, ok := set[s]; !ok {
		return
	}
	delete(set, s)
	if len(set) == 0 {
		delete(h.subs, s.user)
	}
	close(s.c)
}

// Run listens and delivers until ctx ends, reconnecting with backoff when the
// connection is lost; then it drops every subscriber and Subscribe fails. Call it once.
func (h *NotificationHub) Run(ctx context.Context) {
	const minBackoff, maxBackoff = time.Second, 30 * time.Second
	backoff := minBackoff
	for {
		listened, err := h.listenOnce(ctx)
		if ctx.Err() != nil {
			h.stop()
			return
		}
		h.lost()
		if listened {
			backoff = minBackoff
		}
		h.log.Warn("notification listener restarting", "err", err, "backoff", backoff)
		select {
		case <-ctx.Done():
			h.stop()
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// listenOnce holds one listening connection until it fails or ctx ends; listened says
// whether LISTEN had succeeded.
func (h *NotificationHub) listenOnce(ctx context.Context) (listened bool, err error) {
	conn, err := h.pool.Acquire(ctx)
	if err != nil {
		return false, err
	}
	defer func() {
		// A connection that is (or may still be) listening must not go back to the pool,
		// where another user would collect its notifications.
		closeCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		conn.Conn().Close(closeCtx)
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "LISTEN "+NotificationChannel); err != nil {
		return false, err
	}
	h.setLive()
	for {
		n, err := conn.Conn().WaitForNotification(ctx)
		if err != nil {
			return true, err
		}
		if err := h.deliver(ctx, conn.Conn(), n.Payload); err != nil {
			return true, err
		}
	}
}

// deliver reads the announced notification, if its user has subscribers here, and
// hands it to each of them. An error means subscribers may have missed it: the caller
// drops them all so that they replay.
func (h *NotificationHub) deliver(ctx context.Context, conn *pgx.Conn, payload string) error {
	var ev struct {
		ID     uuid.UUID `json:"id"`
		UserID uuid.UUID `json:"user_id"`
	}
	if err := json.Unmarshal([]byte(payload), &ev); err != nil {
		h.log.Warn("notification announcement ignored", "payload", payload, "err", err)
		return nil
	}
	h.mu.Lock()
	wanted := len(h.subs[ev.UserID]) > 0
	h.mu.Unlock()
	if !wanted {
		return nil
	}
	// The payload holds only ids (NOTIFY payloads are limited to 8000 bytes); the row is
	// read once here, on the listening connection, for every subscriber of the user.
	rows, err := conn.Query(ctx, `SELECT `+notificationColumns+` FROM tessera.notifications WHERE id = $1`, ev.ID)
	if err != nil {
		return fmt.Errorf("read notification %s: %w", ev.ID, err)
	}
	n, err := pgx.CollectExactlyOneRow(rows, scanNotification)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // deleted since
	}
	if err != nil {
		return fmt.Errorf("read notification %s: %w", ev.ID, err)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.subs[ev.UserID] {
		select {
		case s.c <- n:
		default:
			h.log.Info("notification stream fell behind; dropped", "user", ev.UserID)
			h.dropLocked(s)
		}
	}
	return nil
}

func (h *NotificationHub) setLive() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.listening {
		h.listening = true
		close(h.live)
	}
}

// lost drops every subscriber and makes Subscribe wait for the next connection.
func (h *NotificationHub) lost() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropAllLocked()
	if h.listening {
		h.listening = false
		h.live = make(chan struct{})
	}
}

func (h *NotificationHub) stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.dropAllLocked()
	h.stopped = true
	if !h.listening {
		close(h.live) // wakes Subscribe, which then sees stopped
	}
	h.listening = false
}

func (h *NotificationHub) dropAllLocked() {
	for _, set := range h.subs {
		for s := range set {
			close(s.c)
		}
	}
	h.subs = map[uuid.UUID]map[*NotificationSub]struct{}{}
}
