package web

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/google/uuid"

	"github.com/tessera/tessera/engine"
	"github.com/tessera/tessera/workflows"
)

const (
	// streamPing is how often an idle stream sends a comment, so proxies keep the
	// connection open and a vanished client is noticed by a failed write.
	streamPing = 25 * time.Second
	// streamRetryMillis is the reconnection delay the stream asks EventSource to use.
	streamRetryMillis = 3000
	// streamSubscribeWait bounds the wait for the hub to listen (the database may be
	// unreachable); the stream then ends and the client tries again.
	streamSubscribeWait = 10 * time.Second
)

// streamNotifications answers GET /notifications/stream with Server-Sent Events: each
// new notification of the signed-in user as `event: notification`, its id as the event
// id and the list endpoint's JSON object as data. Nothing old is sent, except that a
// reconnecting client's Last-Event-ID (header, or ?lastEventId= for clients that
// reconnect by hand) first replays what was created after that notification.
//
// The response starts only once the hub listens, so a client that has received the
// first line misses nothing from then on.
func (h *workflowHandlers) streamNotifications(c *fiber.Ctx) error {
	last := c.Get("Last-Event-ID")
	if last == "" {
		last = c.Query("lastEventId")
	}
	// An id that is not a uuid cannot be one of ours: no replay, as for an unknown one.
	after, _ := uuid.Parse(last)
	act := actor(c)
	// fasthttp closes this when Shutdown begins; Shutdown waits for open responses, so
	// a stream that ignored it would hold the server up until its client left.
	shutdown := c.Context().Done()
	c.Set(fiber.HeaderContentType, "text/event-stream")
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set("X-Accel-Buffering", "no") // nginx would otherwise buffer the events
	// The writer runs after this handler returns: it must not touch c.
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-shutdown:
				cancel()
			case <-ctx.Done():
			}
		}()
		h.writeNotificationStream(ctx, w, act, after)
	})
	return nil
}

// writeNotificationStream writes the stream until ctx ends, the hub drops the
// subscriber, or a write fails (the client left).
func (h *workflowHandlers) writeNotificationStream(ctx context.Context, w *bufio.Writer, act engine.Actor, after uuid.UUID) {
	subCtx, cancel := context.WithTimeout(ctx, streamSubscribeWait)
	sub, err := h.hub.Subscribe(subCtx, act.UserID)
	cancel()
	if err != nil {
		return
	}
	defer sub.Close()
	// Subscribed before the replay is read: what is committed meanwhile arrives on
	// sub.C too, and is skipped there if the replay had it.
	replayed := map[uuid.UUID]bool{}
	var missed []workflows.Notification
	if after != uuid.Nil {
		if missed, err = h.svc.NotificationsAfter(ctx, act, after); err != nil {
			return
		}
	}
	fmt.Fprintf(w, "retry: %d\n\n", streamRetryMillis)
	for _, n := range missed {
		if writeNotificationEvent(w, n) != nil {
			return
		}
		replayed[n.ID] = true
	}
	if w.Flush() != nil {
		return
	}
	ping := time.NewTicker(streamPing)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case n, ok := <-sub.C:
			if !ok {
				return
			}
			if replayed[n.ID] {
				continue
			}
			if writeNotificationEvent(w, n) != nil {
				return
			}
		case <-ping.C:
			if _, err := w.WriteString(": ping\n\n"); err != nil {
				return
			}
		}
		if w.Flush() != nil {
			return
		}
	}
}

func writeNotificationEvent(w *bufio.Writer, n workflows.Notification) error {
	data, err := json.Marshal(n)
	if err != nil {
		return err
	}
	// JSON escapes newlines inside strings, so the object fits on one data line.
	_, err = fmt.Fprintf(w, "id: %s\nevent: notification\ndata: %s\n\n", n.ID, data)
	return err
}
