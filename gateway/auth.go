package gateway

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/internalauth"
	"github.com/fleetpilot/gateway/supabase"
)

// TokenVerifier checks a user access token (supabase.Verifier in production).
type TokenVerifier interface {
	Verify(ctx context.Context, token string) (supabase.Principal, error)
}

// requireUser authenticates the Bearer token and records the principal for
// principalFrom. Every failure is the same 401, so the answer tells an
// attacker nothing; the reason goes to the log at reasonLevel (info in
// development, where the developer needs it; debug in production, where it
// is noise any caller can make).
//
// A valid token is charged to its tenant's bucket only. A failed
// authentication is charged to the caller's address bucket (429 once it is
// empty): in production every user request comes from the web server's few
// addresses, so charging good requests there would let one flood of bad
// tokens throttle every tenant. Checking a token first costs a cache lookup or
// one signature check, which is what the address bucket then bounds.
func requireUser(v TokenVerifier, perTenant *limiter, byIP ipLimit, reasonLevel slog.Level) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			ctx := c.Request().Context()
			refuse := func() error {
				if err := byIP.charge(c.Request()); err != nil {
					return err
				}
				return errInvalidToken
			}
			h := c.Request().Header.Get("Authorization")
			scheme, token, ok := strings.Cut(h, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
				requestLogger(ctx).Log(ctx, reasonLevel, "token refused", "err", "no Bearer token in Authorization")
				return refuse()
			}
			p, err := v.Verify(ctx, strings.TrimSpace(token))
			if err != nil {
				requestLogger(ctx).Log(ctx, reasonLevel, "token refused", "err", err)
				return refuse()
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

// requireInternal guards Cloud Tasks and Cloud Scheduler endpoints: a
// Google-signed OIDC token of a configured service account, or the shared
// secret (internalauth decides which it accepts). Why a caller was refused
// is logged, never answered.
func requireInternal(auth *internalauth.Authenticator) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c *echo.Context) error {
			err := auth.Authenticate(c.Request())
			switch {
			case errors.Is(err, internalauth.ErrNotConfigured):
				return notConfigured("Internal endpoints")
			case err != nil:
				requestLogger(c.Request().Context()).WarnContext(c.Request().Context(), "internal caller refused", "reason", err.Error())
				return errForbidden
			}
			return next(c)
		}
	}
}
