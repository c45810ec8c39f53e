package engine

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

var seqToken = regexp.MustCompile(`\{seq(?::([1-9][0-9]?))?\}`)

// nextNumber renders an autonumber such as "SO-{YYYY}-{seq:5}" → "SO-2026-00042".
// The counter row of the period is incremented inside the record's transaction: its
// row lock serializes concurrent creators, and a rolled-back create gives its number
// back, so numbers are unique and gap-free.
func nextNumber(ctx context.Context, tx pgx.Tx, entity, pattern string, now time.Time) (string, error) {
	dated := strings.NewReplacer(
		"{YYYY}", now.Format("2006"), "{YY}", now.Format("06"),
		"{MM}", now.Format("01"), "{DD}", now.Format("02"),
	).Replace(pattern)
	// The period is everything but the sequence: a pattern with {YYYY} restarts yearly.
	period := seqToken.ReplaceAllString(dated, "")
	var seq int64
	err := tx.QueryRow(ctx, `INSERT INTO tessera.autonumbers (entity, period, value) VALUES ($1, $2, 1)
		ON CONFLICT (entity, period) DO UPDATE SET value = tessera.autonumbers.value + 1
		RETURNING value`, entity, period).Scan(&seq)
	if err != nil {
		return "", fmt.Errorf("autonumber: %w", err)
	}
	return seqToken.ReplaceAllStringFunc(dated, func(tok string) string {
		width := 1
		if m := seqToken.FindStringSubmatch(tok); m[1] != "" {
			width, _ = strconv.Atoi(m[1])
		}
		return fmt.Sprintf("%0*d", width, seq)
	}), nil
}
