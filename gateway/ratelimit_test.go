package gateway

import (
	"fmt"
	"testing"
	"time"
)

// TestLimiterMemoryBounded: a flood from ever-new addresses cannot grow the
// limiter past its bound, and idle buckets are dropped.
func TestLimiterMemoryBounded(t *testing.T) {
	l := newLimiter(1, 1)
	l.max = 100
	clock := time.Unix(0, 0)
	l.now = func() time.Time { return clock }
	for i := range 10_000 {
		l.allow(fmt.Sprintf("198.51.%d.%d", i/256, i%256))
	}
	if n := l.size(); n != 100 {
		t.Errorf("buckets = %d, want the bound 100", n)
	}
	// The most recent key kept its bucket (it is limited now)...
	if ok, _ := l.allow("198.51.39.15"); ok {
		t.Error("the most recent bucket was dropped")
	}
	// ...and once every bucket has been idle past its refill time, they go.
	clock = clock.Add(l.idle + time.Second)
	l.allow("203.0.113.1")
	if n := l.size(); n != 1 {
		t.Errorf("buckets after idling = %d, want 1", n)
	}
}

func TestIPKey(t *testing.T) {
	for in, want := range map[string]string{
		"203.0.113.7":             "203.0.113.7",
		"::ffff:203.0.113.7":      "203.0.113.7",
		"2001:db8:1:2::1":         "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff:1:2:3": "2001:db8:1:2::/64",
		"not-an-address":          "not-an-address",
	} {
		if got := ipKey(in); got != want {
			t.Errorf("ipKey(%q) = %q, want %q", in, got, want)
		}
	}
}
