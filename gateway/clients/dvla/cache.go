package dvla

import (
	"container/list"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"
)

// Cache keeps lookups per registration (found for TTL, not found for
// NotFoundTTL) and makes concurrent lookups of one registration share one
// upstream call. Entries are kept in least-recently-stored order, so making
// room when full drops the oldest one in O(1) under the lock.
type Cache struct {
	c          *Client
	ttl, nfTTL time.Duration
	max        int
	now        func() time.Time
	mu         sync.Mutex
	entries    map[string]*list.Element // of *cacheEntry
	order      *list.List               // most recently stored at the front
	inflight   singleflight.Group
	hits, miss atomic.Int64
}

type cacheEntry struct {
	vrm   string
	v     Vehicle
	err   error // nil or ErrNotFound
	until time.Time
}

// NewCache wraps c. max bounds the number of registrations kept.
func NewCache(c *Client, ttl, notFoundTTL time.Duration, max int) *Cache {
	return &Cache{c: c, ttl: ttl, nfTTL: notFoundTTL, max: max, now: time.Now,
		entries: map[string]*list.Element{}, order: list.New()}
}

// Stats counts lookups answered from the cache (hits) and the others
// (misses, including fresh lookups and those that joined a running call).
func (k *Cache) Stats() (hits, misses int64) { return k.hits.Load(), k.miss.Load() }

// Lookup answers from the cache, or joins the lookup already running for
// vrm, or starts one. fresh skips the cache (but still shares a running call).
func (k *Cache) Lookup(ctx context.Context, vrm, correlationID string, fresh bool) (Vehicle, error) {
	if e, ok := k.cached(vrm); ok && !fresh {
		k.hits.Add(1)
		return e.v, e.err
	}
	k.miss.Add(1)
	// The shared call must not die with the first caller's request: it runs
	// on a detached context with its own deadline, and the result is stored
	// before the call is forgotten, so a later lookup finds it in the cache.
	ch := k.inflight.DoChan(vrm, func() (any, error) {
		// A call that finished between the look above and this one has
		// stored its answer: use it rather than ask DVLA again.
		if e, ok := k.cached(vrm); ok && !fresh {
			return e.v, e.err
		}
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), k.c.cfg.Timeout*time.Duration(k.c.cfg.Tries)+5*time.Second)
		defer cancel()
		v, err := k.c.Lookup(ctx, vrm, correlationID)
		k.mu.Lock()
		switch {
		case err == nil:
			k.store(vrm, cacheEntry{v: v, until: k.now().Add(k.ttl)})
		case errors.Is(err, ErrNotFound):
			k.store(vrm, cacheEntry{err: ErrNotFound, until: k.now().Add(k.nfTTL)})
		}
		k.mu.Unlock()
		return v, err
	})
	select {
	case r := <-ch:
		return r.Val.(Vehicle), r.Err
	case <-ctx.Done():
		return Vehicle{}, &UnavailableError{Err: ctx.Err()}
	}
}

// cached is vrm's entry while it is still valid.
func (k *Cache) cached(vrm string) (cacheEntry, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if el, ok := k.entries[vrm]; ok {
		if e := el.Value.(*cacheEntry); k.now().Before(e.until) {
			return *e, true
		}
	}
	return cacheEntry{}, false
}

// store adds e, replacing vrm's entry, and drops the oldest entries beyond
// max. Expired entries are not swept: they go when they are the oldest, or
// are replaced by the next lookup of their registration.
func (k *Cache) store(vrm string, e cacheEntry) {
	e.vrm = vrm
	if el, ok := k.entries[vrm]; ok {
		k.order.Remove(el)
	}
	k.entries[vrm] = k.order.PushFront(&e)
	for k.order.Len() > k.max {
		old := k.order.Back()
		k.order.Remove(old)
		delete(k.entries, old.Value.(*cacheEntry).vrm)
	}
}

// Len is the number of registrations held.
func (k *Cache) Len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.order.Len()
}
