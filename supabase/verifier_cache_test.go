package supabase

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTokenCacheBoundedInBytes: tokens up to the header limit, with large
// claims, cannot make the cache hold more than its byte bound; tokens are
// kept by hash only.
func TestTokenCacheBoundedInBytes(t *testing.T) {
	const maxBytes = 1 << 20
	c := newTokenCache(10_000, maxBytes)
	until := time.Now().Add(time.Hour)
	bigToken := strings.Repeat("x", 60<<10)
	for i := range 200 {
		tok := bigToken + strconv.Itoa(i)
		c.put(tok, Principal{UserID: "u", Email: strings.Repeat("e", 30<<10)}, until)
	}
	if c.bytes > maxBytes {
		t.Errorf("cache holds %d bytes, bound %d", c.bytes, maxBytes)
	}
	if c.ll.Len() == 0 || c.ll.Len() >= 200 {
		t.Errorf("entries = %d, want some but not all", c.ll.Len())
	}
	// The newest is kept, the oldest evicted.
	if _, ok := c.get(bigToken+"199", time.Now()); !ok {
		t.Error("newest token not cached")
	}
	if _, ok := c.get(bigToken+"0", time.Now()); ok {
		t.Error("oldest token still cached past the byte bound")
	}
	// Entries' accounting returns to zero when they go.
	for el := c.ll.Back(); el != nil; el = c.ll.Back() {
		c.remove(el)
	}
	if c.bytes != 0 || len(c.items) != 0 {
		t.Errorf("after removing everything: bytes %d, items %d", c.bytes, len(c.items))
	}
}
