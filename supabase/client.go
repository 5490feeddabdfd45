// Package supabase talks to Supabase's PostgREST with the service key and
// verifies Supabase user access tokens.
//
// The service key bypasses row-level security, so this package is where tenant
// isolation lives: every query on a tenant table is built from a TenantID (see
// From), carries tenant_id=eq.<tenant> and stamps tenant_id on inserted rows.
// Work that must span tenants says so with AcrossTenants, which is easy to grep.
package supabase

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-resty/resty/v2"

	"github.com/fleetpilot/gateway/gateway/telemetry"
)

// Config is the Supabase project: how to reach PostgREST and how to verify
// its access tokens. The env tags are relative to the SUPABASE_ prefix the
// gateway's configuration gives this section.
type Config struct {
	// URL is the project URL (https://<ref>.supabase.co); PostgREST is at /rest/v1.
	URL string `env:"URL,required,notEmpty"`
	// ServiceKey is a legacy service_role JWT or a new sb_secret_... key.
	ServiceKey string `env:"SERVICE_KEY,required,notEmpty"`
	// Timeout bounds every call (including retries) unless the caller's context
	// ends sooner. Zero means 10 s.
	Timeout time.Duration `env:"TIMEOUT" envDefault:"10s"`
	// MaxConns caps connections to PostgREST (0: no cap); see NewHTTPClient.
	MaxConns int `env:"MAX_CONNS" envDefault:"16"`
	// JWTSecret is the legacy HS256 project secret; empty disables HS256.
	JWTSecret string `env:"JWT_SECRET"`
	// JWTIssuer overrides the issuer tokens must carry ({URL}/auth/v1).
	JWTIssuer string `env:"JWT_ISSUER"`
	// JWTRequireIssuer refuses tokens without iss; a wrong iss is always refused.
	JWTRequireIssuer bool `env:"JWT_REQUIRE_ISSUER" envDefault:"true"`
	// RetryWait is the base of the jittered backoff between GET retries. Zero means 50 ms.
	RetryWait time.Duration
	// MaxRows is PostgREST's db-max-rows (Supabase's max_rows). An estimated
	// count up to it is exact. Zero means 1000, Supabase's default.
	MaxRows int `env:"MAX_ROWS" envDefault:"1000"`
}

// Issuer is the issuer tokens must carry.
func (c Config) Issuer() string {
	if c.JWTIssuer != "" {
		return c.JWTIssuer
	}
	return strings.TrimRight(c.URL, "/") + "/auth/v1"
}

// JWKSURL is where Supabase Auth publishes its asymmetric signing keys.
func (c Config) JWKSURL() string {
	return strings.TrimRight(c.URL, "/") + "/auth/v1/.well-known/jwks.json"
}

// Verifier is the token verifier's configuration for this project.
func (c Config) Verifier() VerifierConfig {
	return VerifierConfig{JWTSecret: c.JWTSecret, JWKSURL: c.JWKSURL(), Issuer: c.Issuer(), AllowMissingIssuer: !c.JWTRequireIssuer}
}

// Validate names each bad setting, one error per variable (keys without the prefix).
func (c Config) Validate() error {
	var p []error
	if c.URL != "" {
		u, err := url.Parse(c.URL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			p = append(p, errors.New("URL: must be the project URL, such as https://<ref>.supabase.co"))
		}
	}
	if c.JWTSecret != "" && len(c.JWTSecret) < 32 {
		p = append(p, errors.New("JWT_SECRET: must be at least 32 characters (Supabase's legacy JWT secret)"))
	}
	if c.MaxConns < 0 || c.MaxConns > 1024 {
		p = append(p, errors.New("MAX_CONNS: must be between 0 (no cap) and 1024"))
	}
	if c.Timeout <= 0 {
		p = append(p, errors.New("TIMEOUT: must be positive, such as 10s"))
	}
	if c.MaxRows < 0 {
		p = append(p, errors.New("MAX_ROWS: must be PostgREST's max_rows (Supabase's default is 1000)"))
	}
	return errors.Join(p...)
}

// Client is safe for concurrent use; build one per process and share it, so
// that connections to PostgREST are pooled.
type Client struct {
	rc        *resty.Client
	restURL   string
	key       string
	bearer    string // "" for sb_secret_ keys, which go in apikey only
	timeout   time.Duration
	retryWait time.Duration
	maxRows   int
	bufs      sync.Pool // *[]byte buffers that streamed answers are copied through
}

// New builds a client over hc, whose transport should keep connections alive
// (see NewHTTPClient). hc is used as given so that tests can inject a mock transport.
func New(cfg Config, hc *http.Client) *Client {
	rc := resty.NewWithClient(hc)
	rc.SetRetryCount(0) // retries are ours: resty would also retry writes on transport errors
	rc.SetHeader("User-Agent", "fleetpilot-gateway")
	c := &Client{
		rc:        rc,
		restURL:   strings.TrimRight(cfg.URL, "/") + "/rest/v1/",
		key:       cfg.ServiceKey,
		timeout:   cfg.Timeout,
		retryWait: cfg.RetryWait,
	}
	c.bufs.New = func() any { b := make([]byte, 32<<10); return &b }
	if !strings.HasPrefix(cfg.ServiceKey, "sb_secret_") {
		// Legacy service_role JWT: Supabase expects it in both headers.
		c.bearer = "Bearer " + cfg.ServiceKey
	}
	if c.timeout <= 0 {
		c.timeout = 10 * time.Second
	}
	if c.retryWait <= 0 {
		c.retryWait = 50 * time.Millisecond
	}
	c.maxRows = cfg.MaxRows
	if c.maxRows <= 0 {
		c.maxRows = 1000
	}
	return c
}

// NewHTTPClient returns an *http.Client tuned for one busy upstream: at most
// maxConns connections (0: no cap), all kept idle between bursts so that
// requests reuse them instead of opening new ones, and bounded dial, TLS and
// header waits. A cap near PostgREST's own database pool loses nothing:
// requests beyond it would only queue inside PostgREST instead.
func NewHTTPClient(maxConns int) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxConnsPerHost = maxConns
	t.MaxIdleConns = 256
	t.MaxIdleConnsPerHost = 256
	t.IdleConnTimeout = 90 * time.Second
	t.TLSHandshakeTimeout = 5 * time.Second
	t.ResponseHeaderTimeout = 30 * time.Second
	t.ExpectContinueTimeout = time.Second
	return &http.Client{Transport: t}
}

// Ping checks that PostgREST answers and reaches the database.
func (c *Client) Ping(ctx context.Context) error {
	res, err := c.send(ctx, request{method: http.MethodGet, table: "tenants", query: "select=id&limit=1", prefer: preferRepr})
	if err != nil {
		return err
	}
	if res.status != http.StatusOK {
		return decodeError(http.MethodGet, "tenants", res.status, res.body)
	}
	return nil
}

type request struct {
	method string
	table  string
	query  string
	body   []byte
	prefer string
	accept string
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// send performs one logical call and returns the whole answer.
func (c *Client) send(ctx context.Context, r request) (response, error) {
	return c.call(ctx, r, nil)
}

// stream performs a read like send, but hands a successful (200/206) body to
// consume unread, within the call's deadline, instead of holding it in
// memory. Failed answers are read and returned as for send.
func (c *Client) stream(ctx context.Context, r request, consume func(header http.Header, body io.Reader) error) (response, error) {
	return c.call(ctx, r, consume)
}

// call is the one retry loop. Reads are retried twice on transport errors
// and 502/503/504; writes never are, since a lost response does not mean a
// lost write. Every attempt shares the client's deadline.
func (c *Client) call(ctx context.Context, r request, consume func(header http.Header, body io.Reader) error) (response, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	attempts := 1
	if r.method == http.MethodGet || r.method == http.MethodHead {
		attempts = 3
	}
	var lastErr error
	for i := 0; i < attempts; i++ {
		if i > 0 {
			if err := sleep(ctx, backoff(c.retryWait, i)); err != nil {
				break
			}
		}
		// The resend count reaches the call's client span (telemetry transport).
		resp, err := c.execute(telemetry.WithResend(ctx, i), r, consume != nil)
		if err != nil {
			lastErr = fmt.Errorf("%w: %s %s: %w", ErrUnavailable, r.method, r.table, err)
			if ctx.Err() != nil {
				return response{}, lastErr
			}
			continue
		}
		res := response{status: resp.StatusCode(), header: resp.Header()}
		if consume == nil {
			res.body = resp.Body()
		} else {
			raw := resp.RawBody()
			if res.status == http.StatusOK || res.status == http.StatusPartialContent {
				err := consume(res.header, raw)
				raw.Close()
				if err != nil {
					return response{}, fmt.Errorf("%w: %s %s: reading the answer: %w", ErrUnavailable, r.method, r.table, err)
				}
				return res, nil
			}
			res.body, _ = io.ReadAll(io.LimitReader(raw, 1<<20))
			raw.Close()
		}
		if res.status != http.StatusBadGateway && res.status != http.StatusServiceUnavailable && res.status != http.StatusGatewayTimeout {
			return res, nil
		}
		lastErr = decodeError(r.method, r.table, res.status, res.body)
	}
	return response{}, lastErr
}

func (c *Client) execute(ctx context.Context, r request, raw bool) (*resty.Response, error) {
	req := c.rc.R().SetContext(ctx)
	if raw {
		req.SetDoNotParseResponse(true)
	}
	req.Header.Set("apikey", c.key)
	if c.bearer != "" {
		req.Header.Set("Authorization", c.bearer)
	}
	req.Header.Set("Content-Type", "application/json")
	if r.prefer != "" {
		req.Header.Set("Prefer", r.prefer)
	}
	if r.accept != "" {
		req.Header.Set("Accept", r.accept)
	}
	if r.body != nil {
		req.SetBody(r.body)
	}
	url := c.restURL + r.table
	if r.query != "" {
		url += "?" + r.query
	}
	return req.Execute(r.method, url)
}

// backoff is exponential with full jitter: attempt 1 waits up to base*2, attempt 2 up to base*4.
func backoff(base time.Duration, attempt int) time.Duration {
	limit := base << attempt
	return limit/2 + rand.N(limit/2+1)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// IsUpstream reports whether err came from PostgREST or the network (as opposed
// to a bug or a refused query), for logging and status mapping.
func IsUpstream(err error) bool {
	var e *Error
	return errors.As(err, &e) || errors.Is(err, ErrUnavailable)
}
