package supabase

import (
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"golang.org/x/time/rate"
)

// ErrInvalidToken is returned for every token that is refused; the reason is
// wrapped for the log, never shown to the client.
var ErrInvalidToken = errors.New("supabase: invalid token")

// Principal is who a verified access token speaks for.
type Principal struct {
	UserID    string
	Tenant    TenantID
	Email     string
	ExpiresAt time.Time
}

// VerifierConfig selects the keys a token may be signed with.
type VerifierConfig struct {
	// JWTSecret is the legacy HS256 project secret; empty disables HS256.
	JWTSecret string
	// JWKSURL is {SUPABASE_URL}/auth/v1/.well-known/jwks.json; empty disables ES256/RS256.
	JWKSURL string
	// Issuer must equal the token's iss exactly.
	Issuer string
	// CacheSize bounds the verified-token cache; zero means 10000, negative disables it.
	CacheSize int
	// CacheBytes bounds the memory the cache's entries hold; zero means 8 MiB.
	CacheBytes int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// AllowMissingIssuer accepts tokens without iss (development load tests
	// with minimal tokens). A token whose iss differs is refused regardless.
	AllowMissingIssuer bool
}

// Verifier checks Supabase access tokens. It is safe for concurrent use.
type Verifier struct {
	issuer        string
	allowNoIssuer bool
	secret        []byte
	jwks          keyfunc.Keyfunc
	parser        *jwt.Parser
	cache         *tokenCache
	nowFunc       func() time.Time
	hits, misses  atomic.Int64
}

const (
	leeway = 30 * time.Second // as PostgREST
	// jwksMaxAge is Supabase's guidance: do not cache the JWKS longer than 10 minutes.
	jwksMaxAge = 10 * time.Minute
)

// NewVerifier builds a verifier. The JWKS is fetched in the background with hc
// (never http.DefaultClient) until ctx ends; a fetch failure at start-up is
// logged, not fatal, so the gateway can start while Auth is briefly down.
func NewVerifier(ctx context.Context, cfg VerifierConfig, hc *http.Client, log *slog.Logger) (*Verifier, error) {
	if cfg.JWTSecret == "" && cfg.JWKSURL == "" {
		return nil, errors.New("supabase: verifier needs a JWT secret or a JWKS URL")
	}
	if cfg.Issuer == "" {
		return nil, errors.New("supabase: verifier needs an issuer")
	}
	v := &Verifier{nowFunc: cfg.Now, issuer: cfg.Issuer, allowNoIssuer: cfg.AllowMissingIssuer}
	if v.nowFunc == nil {
		v.nowFunc = time.Now
	}
	var methods []string
	if cfg.JWTSecret != "" {
		v.secret = []byte(cfg.JWTSecret)
		methods = append(methods, jwt.SigningMethodHS256.Alg())
	}
	if cfg.JWKSURL != "" {
		noErr := true
		k, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			Client:                    hc,
			HTTPTimeout:               5 * time.Second,
			NoErrorReturnFirstHTTPReq: &noErr,
			RefreshInterval:           jwksMaxAge,
			// An unknown kid (a rotated key) triggers at most one refresh a minute;
			// other tokens with unknown kids fail at once instead of queueing.
			RefreshUnknownKID: rate.NewLimiter(rate.Every(time.Minute), 1),
			RateLimitWaitMax:  3 * time.Second,
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(ctx context.Context, err error) {
					log.WarnContext(ctx, "jwks refresh failed", "url", u, "err", err)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("supabase: jwks: %w", err)
		}
		v.jwks = k
		methods = append(methods, jwt.SigningMethodES256.Alg(), jwt.SigningMethodRS256.Alg())
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(methods),
		jwt.WithAudience("authenticated"),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(func() time.Time { return v.nowFunc() }),
	}
	if !cfg.AllowMissingIssuer {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	v.parser = jwt.NewParser(opts...)
	size := cfg.CacheSize
	if size == 0 {
		size = 10000
	}
	if size > 0 {
		maxBytes := cfg.CacheBytes
		if maxBytes <= 0 {
			maxBytes = 8 << 20
		}
		v.cache = newTokenCache(size, maxBytes)
	}
	return v, nil
}

type claims struct {
	jwt.RegisteredClaims
	Role        string  `json:"role"`
	Email       string  `json:"email"`
	IsAnonymous bool    `json:"is_anonymous"`
	TenantID    *string `json:"tenant_id"`
	AppMetadata struct {
		TenantID *string `json:"tenant_id"`
	} `json:"app_metadata"`
	// user_metadata is deliberately not read: users can edit it.
}

// CacheStats counts verified-token cache hits and misses since start.
func (v *Verifier) CacheStats() (hits, misses int64) { return v.hits.Load(), v.misses.Load() }

// Verify checks the token and returns its principal. Any failure wraps ErrInvalidToken.
func (v *Verifier) Verify(ctx context.Context, token string) (Principal, error) {
	now := v.nowFunc()
	if v.cache != nil {
		if p, ok := v.cache.get(token, now); ok {
			v.hits.Add(1)
			return p, nil
		}
		v.misses.Add(1)
	}
	var c claims
	_, err := v.parser.ParseWithClaims(token, &c, func(t *jwt.Token) (any, error) {
		// The key is chosen by the algorithm, which the parser has already checked
		// against the allowed list: an HS256 token only ever meets the shared
		// secret, never a public key from the JWKS.
		switch t.Method.Alg() {
		case jwt.SigningMethodHS256.Alg():
			return v.secret, nil
		default:
			return v.jwks.KeyfuncCtx(ctx)(t)
		}
	})
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if v.allowNoIssuer && c.Issuer != "" && c.Issuer != v.issuer {
		return Principal{}, fmt.Errorf("%w: issuer %q", ErrInvalidToken, c.Issuer)
	}
	p, err := principal(&c)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	if v.cache != nil {
		// Keep a verified token no longer than it is valid, nor longer than the
		// JWKS may be cached, so a revoked signing key stops working in bounded time.
		until := p.ExpiresAt.Add(leeway)
		if m := now.Add(jwksMaxAge); m.Before(until) {
			until = m
		}
		v.cache.put(token, p, until)
	}
	return p, nil
}

func principal(c *claims) (Principal, error) {
	if c.Role != "authenticated" {
		return Principal{}, fmt.Errorf("role %q", c.Role)
	}
	if c.IsAnonymous {
		return Principal{}, errors.New("anonymous user")
	}
	if _, err := uuid.Parse(c.Subject); err != nil || len(c.Subject) != 36 {
		return Principal{}, errors.New("sub is not a UUID")
	}
	raw := c.TenantID
	if raw == nil {
		raw = c.AppMetadata.TenantID
	}
	if raw == nil {
		return Principal{}, errors.New("no tenant claim")
	}
	t, err := ParseTenantID(strings.ToLower(*raw))
	if err != nil {
		return Principal{}, err
	}
	return Principal{UserID: strings.ToLower(c.Subject), Tenant: t, Email: c.Email, ExpiresAt: c.ExpiresAt.Time}, nil
}

// tokenCache is a bounded LRU of verified tokens. Verifying an ES256 signature
// costs tens of microseconds; a hit costs a hash and a map lookup. Tokens are
// kept by their SHA-256, never whole: a token can be as large as the header
// limit (64 KiB), so keeping them would bound the cache by count but not by
// memory. Entries are bounded both in number and in bytes.
type tokenCache struct {
	mu       sync.Mutex
	max      int
	maxBytes int
	bytes    int
	ll       *list.List
	items    map[[sha256.Size]byte]*list.Element
}

type cacheEntry struct {
	key   [sha256.Size]byte
	p     Principal
	until time.Time
}

// entryOverhead approximates an entry's fixed cost: list element, map slot,
// key, Principal and time fields.
const entryOverhead = 256

func (e *cacheEntry) size() int { return entryOverhead + len(e.p.UserID) + len(e.p.Email) }

func newTokenCache(max, maxBytes int) *tokenCache {
	return &tokenCache{max: max, maxBytes: maxBytes, ll: list.New(), items: make(map[[sha256.Size]byte]*list.Element)}
}

func (c *tokenCache) get(token string, now time.Time) (Principal, bool) {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.items[key]
	if !ok {
		return Principal{}, false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.until) {
		c.remove(el)
		return Principal{}, false
	}
	c.ll.MoveToFront(el)
	return e.p, true
}

func (c *tokenCache) put(token string, p Principal, until time.Time) {
	key := sha256.Sum256([]byte(token))
	c.mu.Lock()
	defer c.mu.Unlock()
	if el, ok := c.items[key]; ok {
		el.Value.(*cacheEntry).until = until
		c.ll.MoveToFront(el)
		return
	}
	e := &cacheEntry{key: key, p: p, until: until}
	if e.size() > c.maxBytes {
		return
	}
	c.items[key] = c.ll.PushFront(e)
	c.bytes += e.size()
	for c.ll.Len() > c.max || c.bytes > c.maxBytes {
		c.remove(c.ll.Back())
	}
}

func (c *tokenCache) remove(el *list.Element) {
	e := el.Value.(*cacheEntry)
	c.ll.Remove(el)
	delete(c.items, e.key)
	c.bytes -= e.size()
}
