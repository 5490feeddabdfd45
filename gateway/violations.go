package gateway

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/gateway/domain/pcn"
	"github.com/fleetpilot/gateway/supabase"
)

// PCNService is the PCN pipeline (pcn.Service).
type PCNService interface {
	Scan(ctx context.Context, tenant supabase.TenantID, userID, documentID string) (job json.RawMessage, created bool, err error)
	Job(ctx context.Context, tenant supabase.TenantID, jobID string) (json.RawMessage, error)
	Retry(ctx context.Context, tenant supabase.TenantID, jobID string) (json.RawMessage, error)
	Process(ctx context.Context, tenant supabase.TenantID, jobID string) (pcn.Result, error)
	ResetStuck(ctx context.Context) (pcn.ResetResult, error)
}

const (
	errJobNotFound = "Scan job not found"
	featurePCN     = "PCN scanning"
)

// ScanViolation answers POST /violations/scan.
// The Idempotency-Key header is handled by the idempotency middleware.
func (s *server) ScanViolation(c *echo.Context, _ api.ScanViolationParams) error {
	ctx := c.Request().Context()
	svc, err := configured(s.pcn, featurePCN)
	if err != nil {
		return err
	}
	in, err := s.bodyProps(c, "ScanRequest", "document_id")
	if err != nil {
		return err
	}
	p, _ := principalFrom(ctx)
	job, created, err := svc.Scan(ctx, p.Tenant, p.UserID, in[0])
	if err != nil {
		return upstream("Failed to queue the scan", err)
	}
	if !created {
		return c.JSONBlob(http.StatusOK, job) // the document's scan, already queued or done
	}
	return c.JSONBlob(http.StatusAccepted, job)
}

// GetScanJob answers GET /violations/scan/{job_id}.
func (s *server) GetScanJob(c *echo.Context, jobID string) error {
	return s.scanJob(c, jobID, PCNService.Job, http.StatusOK, "Failed to fetch the scan job")
}

// RetryScanJob answers POST /violations/scan/{job_id}/retry.
// The Idempotency-Key header is handled by the idempotency middleware.
func (s *server) RetryScanJob(c *echo.Context, jobID string, _ api.RetryScanJobParams) error {
	return s.scanJob(c, jobID, PCNService.Retry, http.StatusAccepted, "Failed to re-queue the scan job")
}

// scanJob answers a route on one of the tenant's scan jobs with what call returns.
func (s *server) scanJob(c *echo.Context, rawID string,
	call func(PCNService, context.Context, supabase.TenantID, string) (json.RawMessage, error), status int, detail string) error {
	ctx := c.Request().Context()
	svc, id, err := need(s.pcn, featurePCN, rawID, errJobNotFound)
	if err != nil {
		return err
	}
	job, err := call(svc, ctx, tenantFrom(ctx), id)
	if err != nil {
		return upstream(detail, err)
	}
	return c.JSONBlob(status, job)
}
