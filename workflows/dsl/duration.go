package dsl

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

var durationPart = regexp.MustCompile(`([0-9]+)(ms|s|m|h|d)`)
var durationFull = regexp.MustCompile(`^([0-9]+(ms|s|m|h|d))+$`)

// ParseDuration reads the DSL's durations: Go's units plus d for 24 hours ("2d",
// "1h30m", "45s").
func ParseDuration(s string) (time.Duration, error) {
	if !durationFull.MatchString(s) {
		return 0, fmt.Errorf("duration %q: write a number and a unit (ms, s, m, h, d), e.g. 30m or 1d12h", s)
	}
	var total time.Duration
	for _, m := range durationPart.FindAllStringSubmatch(s, -1) {
		n, err := strconv.ParseInt(m[1], 10, 64)
		if err != nil || n > 1<<31 {
			return 0, fmt.Errorf("duration %q is too long", s)
		}
		unit := map[string]time.Duration{"ms": time.Millisecond, "s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour}[m[2]]
		total += time.Duration(n) * unit
	}
	if total <= 0 {
		return 0, fmt.Errorf("duration %q must be positive", s)
	}
	return total, nil
}
