// Package gateway is the HTTP edge of FleetPilot: routing, authentication,
// validation and error rendering. Echo lives here and in cmd/ only.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/labstack/echo/v5"
	"github.com/labstack/echo/v5/middleware"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/gateway/internalauth"
	"github.com/fleetpilot/gateway/gateway/telemetry"
	"github.com/fleetpilot/gateway/supabase"
)

// Deps are the clients the gateway uses, built once by main.
type Deps struct {
	Logger   *slog.Logger
	DB       *supabase.Client
	Verifier TokenVerifier
	// Files signs document URLs; nil means document storage is not configured.
	Files FileStore
	// PCN is the PCN scanning pipeline; nil answers 503 on its endpoints.
	PCN PCNService
	// Vehicles is DVLA lookups; nil answers 503 on its endpoints.
	Vehicles VehicleService
	// Identity is Credas identity checks; nil answers 503 on its endpoints.
	Identity IdentityService
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Telemetry traces and counts requests; nil turns it off.
	Telemetry *telemetry.Telemetry
	// Internal authenticates /internal/* callers; nil builds one from the
	// configuration that fetches Google's certificates with a default client.
	Internal *internalauth.Authenticator
}

// server implements api.ServerInterface; one file per router holds its methods.
type server struct {
	cfg      Config
	db       *supabase.Client
	log      *slog.Logger
	spec     []byte
	rules    *api.Rules
	now      func() time.Time
	store    FileStore
	pcn      PCNService
	vehicles VehicleService
	identity IdentityService
	ready    *readiness
	keys     *idempotency
	metrics  *telemetry.Metrics
}

var _ api.ServerInterface = (*server)(nil)

// New builds the HTTP handler with every route of the OpenAPI document.
func New(cfg Config, deps Deps) (*echo.Echo, error) {
	if deps.Logger == nil || deps.DB == nil || deps.Verifier == nil {
		return nil, errors.New("gateway: Logger, DB and Verifier are required")
	}
	spec, err := api.SpecJSON()
	if err != nil {
		return nil, err
	}
	rules, err := api.LoadRules()
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, db: deps.DB, log: deps.Logger, spec: spec, rules: rules, now: deps.Now, store: deps.Files, pcn: deps.PCN, vehicles: deps.Vehicles, identity: deps.Identity,
		metrics: deps.Telemetry.Metrics()}
	if s.now == nil {
		s.now = time.Now
	}
	s.ready = &readiness{ping: deps.DB.Ping, now: s.now}
	// A key left in flight longer than a request can run belongs to a request that died.
	s.keys = &idempotency{db: deps.DB, staleAfter: cfg.RequestTimeout + writeTimeout, now: s.now}

	// HEAD is answered wherever GET is (same status and headers, no body):
	// every GET of this API is a read, so running it for HEAD changes nothing.
	e := echo.NewWithConfig(echo.Config{Router: echo.NewRouter(echo.RouterConfig{AutoHandleHEAD: true})})
	e.Logger = deps.Logger
	e.HTTPErrorHandler = handleError
	e.IPExtractor = echo.ExtractIPDirect()

	if deps.Telemetry != nil {
		// Outermost, so that the access log line and every log line of the
		// request carry its trace.
		e.Use(observeRequests(deps.Telemetry))
	}
	e.Use(requestContext(deps.Logger, cfg.GCPProjectID, cfg.RequestTimeout, cfg.InternalRequestTimeout))
	e.Use(recoverPanic)
	e.Use(securityHeaders)
	if len(cfg.CORSAllowedOrigins) > 0 {
		e.Use(middleware.CORSWithConfig(middleware.CORSConfig{
			AllowOrigins:  cfg.CORSAllowedOrigins,
			AllowMethods:  []string{http.MethodGet, http.MethodPost, http.MethodPatch, http.MethodDelete},
			AllowHeaders:  []string{"Authorization", "Content-Type", headerRequestID},
			ExposeHeaders: []string{headerTotal, headerTotalExact, headerNextCursor, headerLink, headerRequestID},
			MaxAge:        600,
		}))
	}
	e.Use(limitBody(cfg.MaxBodyBytes))

	// A valid token is limited per tenant; failed authentication and public
	// routes per client address. Internal endpoints (Cloud Tasks, Cloud
	// Scheduler) are not limited.
	ips := ipLimit{l: newLimiter(cfg.RateLimitIPPerSecond, cfg.RateLimitIPBurst), trustXFF: cfg.TrustProxyHeaders}
	byIP := limitByIP(ips)
	reasonLevel := slog.LevelDebug
	if cfg.AppEnv == "development" {
		reasonLevel = slog.LevelInfo
	}
	internal := deps.Internal
	if internal == nil {
		if internal, err = internalauth.New(context.Background(), cfg.Internal, cfg.InternalSecret, nil); err != nil {
			return nil, err
		}
	}
	user := requireUser(deps.Verifier, newLimiter(cfg.RateLimitTenantPerSecond, cfg.RateLimitTenantBurst), ips, reasonLevel)
	guards, err := operationGuards(map[string][]echo.MiddlewareFunc{
		"bearerAuth":     {user},
		"internalSecret": {requireInternal(internal)},
	}, byIP, s.keys.middleware)
	if err != nil {
		return nil, err
	}
	api.RegisterHandlersWithOptions(e, s, api.RegisterHandlersOptions{OperationMiddlewares: guards})
	return e, nil
}

// operationGuards derives each operation's auth middleware from the OpenAPI
// document's security requirements. Operations inherit the document default
// (bearerAuth), so a new route is authenticated unless the document says
// "security: []"; an unknown scheme stops start-up.
//
// Operations that declare the Idempotency-Key header get the idempotent
// middleware after authentication (keys belong to the caller's tenant).
func operationGuards(schemes map[string][]echo.MiddlewareFunc, public, idempotent echo.MiddlewareFunc) (map[string][]echo.MiddlewareFunc, error) {
	ops, err := api.Operations()
	if err != nil {
		return nil, err
	}
	guards := make(map[string][]echo.MiddlewareFunc, len(ops))
	for _, op := range ops {
		if len(op.Security) > 1 {
			return nil, fmt.Errorf("gateway: %s has several security schemes; choose one", op.ID)
		}
		for _, name := range op.Security {
			m, ok := schemes[name]
			if !ok {
				return nil, fmt.Errorf("gateway: %s uses unknown security scheme %q", op.ID, name)
			}
			guards[op.ID] = append(guards[op.ID], m...)
		}
		if len(op.Security) == 0 && (strings.HasPrefix(op.Path, "/webhooks/") || op.Path == "/ready") {
			// Public, but it does work per call: limited per client address.
			guards[op.ID] = append(guards[op.ID], public)
		}
		if op.Query {
			guards[op.ID] = append(guards[op.ID], validQuery)
		}
		if op.Idempotent {
			if len(op.Security) == 0 {
				return nil, fmt.Errorf("gateway: %s takes Idempotency-Key but is public; keys belong to a tenant", op.ID)
			}
			guards[op.ID] = append(guards[op.ID], idempotent)
		}
	}
	return guards, nil
}
