package gateway

import (
	"container/list"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v5"
	"golang.org/x/time/rate"
)

// limiterMaxKeys bounds the buckets one limiter keeps. A bucket is about
// 200 bytes, so a limiter never holds more than a few tens of MiB however many
// addresses a flood comes from; past the bound the least recently seen bucket
// is dropped (that key starts again with a full bucket, which only forgets
// the quietest client).
const limiterMaxKeys = 100_000

// limiter is a set of token buckets keyed by client address or tenant, kept
// in least-recently-seen order: buckets idle for longer than it takes to
// refill are dropped from the back in O(1) each, and the count is capped.
// Limits are per instance: Cloud Run's instances do not share them (see
// docs/decisions.md).
type limiter struct {
	mu      sync.Mutex
	rate    rate.Limit
	burst   int
	idle    time.Duration
	max     int
	lru     *list.List // of *bucket, most recently seen at the front
	buckets map[string]*list.Element
	now     func() time.Time
}

type bucket struct {
	key  string
	l    *rate.Limiter
	seen time.Time
}

// newLimiter returns nil (no limit) when perSecond is not positive.
func newLimiter(perSecond float64, burst int) *limiter {
	if perSecond <= 0 {
		return nil
	}
	if burst < 1 {
		burst = int(math.Ceil(perSecond))
	}
	idle := time.Duration(float64(burst)/perSecond*float64(time.Second)) + time.Minute
	return &limiter{rate: rate.Limit(perSecond), burst: burst, idle: idle, max: limiterMaxKeys,
		lru: list.New(), buckets: map[string]*list.Element{}, now: time.Now}
}

// allow takes a token for key, or says how long until one is available.
func (l *limiter) allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	// A bucket idle this long is full again: dropping it changes nothing.
	for el := l.lru.Back(); el != nil && now.Sub(el.Value.(*bucket).seen) > l.idle; el = l.lru.Back() {
		l.remove(el)
	}
	el, ok := l.buckets[key]
	if ok {
		l.lru.MoveToFront(el)
	} else {
		if l.lru.Len() >= l.max {
			l.remove(l.lru.Back())
		}
		el = l.lru.PushFront(&bucket{key: key, l: rate.NewLimiter(l.rate, l.burst)})
		l.buckets[key] = el
	}
	b := el.Value.(*bucket)
	b.seen = now
	r := b.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func (l *limiter) remove(el *list.Element) {
	l.lru.Remove(el)
	delete(l.buckets, el.Value.(*bucket).key)
}

// size is the number of buckets held.
func (l *limiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}

func tooManyRequests(wait time.Duration) *Error {
	return &Error{Status: http.StatusTooManyRequests, Detail: "Too many requests",
		Header: http.Header{"Retry-After": {retryAfterSeconds(wait)}}}
}

// retryAfterSeconds renders wait as Retry-After: whole seconds, at least 1.
func retryAfterSeconds(wait time.Duration) string {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	return strconv.Itoa(secs)
}

// clientIP is the address the request came from: the connection's peer, or,
// behind a trusted proxy (Cloud Run's front end), the rightmost
// X-Forwarded-For entry across every X-Forwarded-For line, which that proxy
// appended and the client cannot forge (a client may send lines of its own,
// which come first).
func clientIP(r *http.Request, trustXFF bool) string {
	if trustXFF {
		if lines := r.Header.Values("X-Forwarded-For"); len(lines) > 0 {
			all := strings.Join(lines, ",")
			last := all[strings.LastIndexByte(all, ',')+1:]
			if ip := strings.TrimSpace(last); net.ParseIP(ip) != nil {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// ipKey is the bucket an address is charged to: the address itself for IPv4,
// its /64 network for IPv6, since one subscriber is given a whole /64 and can
// rotate through it at will.
func ipKey(addr string) string {
	ip := net.ParseIP(addr)
	if ip == nil {
		return addr
	}
	if v4 := ip.To4(); v4 != nil {
		return v4.String()
	}
	return (&net.IPNet{IP: ip.Mask(net.CIDRMask(64, 128)), Mask: net.CIDRMask(64, 128)}).String()
}

// ipLimit charges requests to the caller's address bucket.
type ipLimit struct {
	l        *limiter
	trustXFF bool
}

// charge takes a token from the request's address bucket.
func (il ipLimit) charge(r *http.Request) error {
	if ok, wait := il.l.allow(ipKey(clientIP(r, il.trustXFF))); !ok {
		return tooManyRequests(wait)
	}
	return nil
}

// limitByIP guards public routes (webhooks, readiness): they have no token,
// so the caller's address is all there is to charge.
func limitByIP(il ipLimit) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			if err := il.charge(c.Request()); err != nil {
				return err
			}
			return next(c)
		}
	}
}
