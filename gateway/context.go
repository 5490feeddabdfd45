package gateway

import (
	"context"
	"log/slog"

	"github.com/fleetpilot/gateway/supabase"
)

// reqInfo is the per-request state the middleware shares with handlers and
// the access log. One pointer on the request context, filled as the request
// goes through the chain, so authenticating costs no extra context copy.
type reqInfo struct {
	id        string
	base      *slog.Logger
	trace     []any
	principal supabase.Principal
	authed    bool
	logger    *slog.Logger
}

type ctxKey struct{}

func withReqInfo(ctx context.Context, ri *reqInfo) context.Context {
	return context.WithValue(ctx, ctxKey{}, ri)
}

func reqInfoFrom(ctx context.Context) *reqInfo {
	ri, _ := ctx.Value(ctxKey{}).(*reqInfo)
	return ri
}

// principalFrom is the one accessor handlers use for the caller's identity and
// tenant. ok is false on routes that are not authenticated.
func principalFrom(ctx context.Context) (supabase.Principal, bool) {
	ri := reqInfoFrom(ctx)
	if ri == nil || !ri.authed {
		return supabase.Principal{}, false
	}
	return ri.principal, true
}

// tenantFrom returns the verified tenant, or the zero TenantID, which the
// query builder refuses to use.
func tenantFrom(ctx context.Context) supabase.TenantID {
	p, _ := principalFrom(ctx)
	return p.Tenant
}

// requestLogger is the logger for this request: request id, trace and tenant.
func requestLogger(ctx context.Context) *slog.Logger {
	ri := reqInfoFrom(ctx)
	if ri == nil {
		return slog.Default()
	}
	if ri.logger == nil {
		attrs := append([]any{"request_id", ri.id}, ri.trace...)
		if ri.authed {
			attrs = append(attrs, "tenant_id", ri.principal.Tenant.String(), "user_id", ri.principal.UserID)
		}
		ri.logger = ri.base.With(attrs...)
	}
	return ri.logger
}
