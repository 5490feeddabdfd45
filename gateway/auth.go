package gateway

import (
	"context"
	"crypto/subtle"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/supabase"
)

// TokenVerifier checks a user access token (supabase.Verifier in production).
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (supabase.Principal, error)
}

// requireUser authenticates the Bearer token and records the principal for
// principalFrom. Every failure is the same 401, so the answer tells an
// attacker nothing; the reason goes to the log.
func requireUser(v TokenVerifier, perTenant *limiter) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			ctx := c.Request().Context()
			h := c.Request().Header.Get("Authorization")
			scheme, token, ok := strings.Cut(h, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
				return errInvalidToken
			}
			p, err := v.Verify(ctx, strings.TrimSpace(token))
			if err != nil {
				requestLogger(ctx).DebugContext(ctx, "token refused", "err", err)
				return errInvalidToken
			}
			ri := reqInfoFrom(ctx)
			ri.principal, ri.authed, ri.logger = p, true, nil
			if ok, wait := perTenant.allow(p.Tenant.String()); !ok {
				return tooManyRequests(wait)
			}
			return next(c)
		}
	}
}

// requireInternal guards Cloud Tasks and Cloud Scheduler endpoints with the
// shared secret, compared in constant time.
func requireInternal(secret string) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			if secret == "" {
				return notConfigured("Internal endpoints")
			}
			got := c.Request().Header.Get("X-Internal-Secret")
			if subtle.ConstantTimeCompare([]byte(got), []byte(secret)) != 1 {
				return errForbidden
			}
			return next(c)
		}
	}
}
