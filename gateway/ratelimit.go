package gateway

import (
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

// limiter is a set of token buckets keyed by client IP or tenant. Buckets
// idle for longer than it takes to refill are dropped, so memory stays
// bounded by the number of recently active keys. Limits are per instance:
// Cloud Run's instances do not share them (see docs/decisions.md).
type limiter struct {
	mu        sync.Mutex
	rate      rate.Limit
	burst     int
	buckets   map[string]*bucket
	lastSweep time.Time
	now       func() time.Time
}

type bucket struct {
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
	return &limiter{rate: rate.Limit(perSecond), burst: burst, buckets: map[string]*bucket{}, now: time.Now}
}

// allow takes a token for key, or says how long until one is available.
func (l *limiter) allow(key string) (bool, time.Duration) {
	if l == nil {
		return true, 0
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.lastSweep) > time.Minute {
		idle := time.Duration(float64(l.burst)/float64(l.rate)*float64(time.Second)) + time.Minute
		for k, b := range l.buckets {
			if now.Sub(b.seen) > idle {
				delete(l.buckets, k)
			}
		}
		l.lastSweep = now
	}
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{l: rate.NewLimiter(l.rate, l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.l.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

func tooManyRequests(wait time.Duration) *Error {
	secs := int(math.Ceil(wait.Seconds()))
	if secs < 1 {
		secs = 1
	}
	return &Error{Status: http.StatusTooManyRequests, Detail: "Too many requests",
		Header: http.Header{"Retry-After": {strconv.Itoa(secs)}}}
}

// clientIP is the address the request came from: the connection's peer, or,
// behind a trusted proxy (Cloud Run's front end), the last X-Forwarded-For
// entry, which that proxy appended and the client cannot forge.
func clientIP(r *http.Request, trustXFF bool) string {
	if trustXFF {
		if xff := r.Header.Get("X-Forwarded-For"); xff != "" {
			parts := strings.Split(xff, ",")
			if ip := strings.TrimSpace(parts[len(parts)-1]); net.ParseIP(ip) != nil {
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

// limitByIP refuses a client that sends too many requests, before any token
// is verified, so that garbage tokens cannot burn CPU without bound.
func limitByIP(l *limiter, trustXFF bool) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			if ok, wait := l.allow(clientIP(c.Request(), trustXFF)); !ok {
				return tooManyRequests(wait)
			}
			return next(c)
		}
	}
}
