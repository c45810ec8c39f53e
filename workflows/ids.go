package workflows

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
	"time"

	"github.com/google/uuid"
)

// stableID derives a UUIDv7-shaped id from the run's start and a name: the same run
// and step key always give the same id (so a retried activity finds what its first
// attempt wrote), and ids still sort by when their run started, like the engine's own
// UUIDv7 ids.
func stableID(epoch time.Time, parts ...string) uuid.UUID {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	sum := h.Sum(nil)
	var id uuid.UUID
	ms := uint64(epoch.UnixMilli())
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(id[0:6], ts[2:8])
	copy(id[6:], sum[:10])
	id[6] = 0x70 | (id[6] & 0x0f) // version 7
	id[8] = 0x80 | (id[8] & 0x3f) // RFC 4122 variant
	return id
}

// recordID is the id a create step gives its record: the same across activity
// retries and run retries.
func recordID(epoch time.Time, run, key string) uuid.UUID {
	return stableID(epoch, "record", run, key)
}

// taskID is a human task's id: new for every retry of the run.
func taskID(epoch time.Time, run string, attempt int, key string) uuid.UUID {
	return stableID(epoch, "task", run, strconv.Itoa(attempt), key)
}

// epochZero is the time part of ids that need no order (notifications).
var epochZero = time.Unix(0, 0)
