package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/domain/pcn"
	"github.com/fleetpilot/gateway/supabase"
)

// PCNService is the PCN pipeline (pcn.Service).
type PCNService interface {
	Scan(ctx context.Context, tenant supabase.TenantID, userID, documentID string) (json.RawMessage, error)
	Job(ctx context.Context, tenant supabase.TenantID, jobID string) (json.RawMessage, error)
	Retry(ctx context.Context, tenant supabase.TenantID, jobID string) (json.RawMessage, error)
	Process(ctx context.Context, tenant supabase.TenantID, jobID string) (pcn.Result, error)
	ResetStuck(ctx context.Context) (reset, failed int, err error)
}

const errJobNotFound = "Scan job not found"

// ScanViolation answers POST /violations/scan.
func (s *server) ScanViolation(c *echo.Context) error {
	ctx := c.Request().Context()
	b, err := readJSONBody(c)
	if err != nil {
		return err
	}
	docID, _ := b.uuidField("document_id", true, false)
	if err := b.err(); err != nil {
		return err
	}
	p, _ := principalFrom(ctx)
	job, err := s.pcn.Scan(ctx, p.Tenant, p.UserID, docID)
	if err != nil {
		return pcnError(err, "Failed to queue the scan")
	}
	return c.JSONBlob(http.StatusAccepted, job)
}

// GetScanJob answers GET /violations/scan/{job_id}.
func (s *server) GetScanJob(c *echo.Context, jobID string) error {
	ctx := c.Request().Context()
	jobID, ok := parseUUID(jobID)
	if !ok {
		return notFound(errJobNotFound)
	}
	job, err := s.pcn.Job(ctx, tenantFrom(ctx), jobID)
	if err != nil {
		return pcnError(err, "Failed to fetch the scan job")
	}
	return c.JSONBlob(http.StatusOK, job)
}

// RetryScanJob answers POST /violations/scan/{job_id}/retry.
func (s *server) RetryScanJob(c *echo.Context, jobID string) error {
	ctx := c.Request().Context()
	jobID, ok := parseUUID(jobID)
	if !ok {
		return notFound(errJobNotFound)
	}
	job, err := s.pcn.Retry(ctx, tenantFrom(ctx), jobID)
	if err != nil {
		return pcnError(err, "Failed to re-queue the scan job")
	}
	return c.JSONBlob(http.StatusAccepted, job)
}

func pcnError(err error, detail string) error {
	var ge *Error
	switch {
	case errors.As(err, &ge):
		return err
	case errors.Is(err, pcn.ErrDocumentNotFound):
		return notFound(errDocumentNotFound)
	case errors.Is(err, pcn.ErrDocumentNotUploaded):
		return newError(http.StatusConflict, "Document is not uploaded yet", nil)
	case errors.Is(err, pcn.ErrUnsupportedType):
		return newError(http.StatusUnprocessableEntity, "Only PDF, JPEG, PNG and WebP documents can be scanned", nil)
	case errors.Is(err, pcn.ErrJobNotFound):
		return notFound(errJobNotFound)
	case errors.Is(err, pcn.ErrNotRetryable):
		return newError(http.StatusConflict, "Only jobs that need attention can be retried", nil)
	}
	return upstream(detail, err)
}

// unconfiguredPCN answers 503 when the gateway was built without the pipeline.
type unconfiguredPCN struct{}

var errPCNUnconfigured = newError(http.StatusServiceUnavailable, "PCN scanning is not configured", nil)

func (unconfiguredPCN) Scan(context.Context, supabase.TenantID, string, string) (json.RawMessage, error) {
	return nil, errPCNUnconfigured
}

func (unconfiguredPCN) Job(context.Context, supabase.TenantID, string) (json.RawMessage, error) {
	return nil, errPCNUnconfigured
}

func (unconfiguredPCN) Retry(context.Context, supabase.TenantID, string) (json.RawMessage, error) {
	return nil, errPCNUnconfigured
}

func (unconfiguredPCN) Process(context.Context, supabase.TenantID, string) (pcn.Result, error) {
	return pcn.Result{}, errPCNUnconfigured
}

func (unconfiguredPCN) ResetStuck(context.Context) (int, int, error) { return 0, 0, errPCNUnconfigured }
