package gateway

import (
	"context"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
)

// GetHealth answers GET /health: the process is up. It checks nothing else,
// so a database outage does not make Cloud Run restart healthy instances.
func (s *server) GetHealth(c *echo.Context) error {
	return c.JSON(http.StatusOK, api.Health{Status: "healthy", Timestamp: s.now().UTC()})
}

// GetReady answers GET /ready: PostgREST answers a query within 2 s.
func (s *server) GetReady(c *echo.Context) error {
	ctx, cancel := context.WithTimeout(c.Request().Context(), 2*time.Second)
	defer cancel()
	if err := s.db.Ping(ctx); err != nil {
		return newError(http.StatusServiceUnavailable, "Not ready", err)
	}
	return c.JSON(http.StatusOK, api.Health{Status: "ready", Timestamp: s.now().UTC()})
}
