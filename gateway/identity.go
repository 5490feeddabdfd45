package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/gateway/clients/credas"
	"github.com/fleetpilot/gateway/gateway/domain/identity"
	"github.com/fleetpilot/gateway/gateway/domain/sweep"
	"github.com/fleetpilot/gateway/supabase"
)

// IdentityService runs Credas identity checks (identity.Service).
type IdentityService interface {
	Create(ctx context.Context, tenant supabase.TenantID, userID, customerID, contact, correlationID string) (json.RawMessage, bool, error)
	List(ctx context.Context, tenant supabase.TenantID, customerID string, page func(*supabase.Query) *supabase.Query) (supabase.Page, error)
	Link(ctx context.Context, tenant supabase.TenantID, checkID, correlationID string) (string, time.Time, error)
	Webhook(ctx context.Context, tenantID, checkID, token string, payload []byte, correlationID string) (identity.WebhookOutcome, error)
	Poll(ctx context.Context) (identity.PollPlan, error)
	RunTask(ctx context.Context, b sweep.Batch, correlationID string) (identity.PollResult, error)
}

const featureIdentity = "Identity verification"

// CreateIdentityCheck answers POST /customers/{id}/identity-checks.
// The Idempotency-Key header is handled by the idempotency middleware.
func (s *server) CreateIdentityCheck(c *echo.Context, id string, _ api.CreateIdentityCheckParams) error {
	ctx := c.Request().Context()
	svc, id, err := need(s.identity, featureIdentity, id, "Customer not found")
	if err != nil {
		return err
	}
	contact := ""
	b, err := readOptionalJSONBody(c)
	if err != nil {
		return err
	}
	if b != nil {
		contact, _ = b.prop(s.rules, "IdentityCheckRequest", "contact")
		if err := b.err(); err != nil {
			return err
		}
	}
	p, _ := principalFrom(ctx)
	check, created, err := svc.Create(ctx, p.Tenant, p.UserID, id, contact, reqInfoFrom(ctx).id)
	if err != nil {
		return upstream("Failed to create the identity check", err)
	}
	if !created {
		return c.JSONBlob(http.StatusAccepted, check)
	}
	return c.JSONBlob(http.StatusCreated, check)
}

// ListIdentityChecks answers GET /customers/{id}/identity-checks.
func (s *server) ListIdentityChecks(c *echo.Context, id string, p api.ListIdentityChecksParams) error {
	ctx := c.Request().Context()
	svc, err := configured(s.identity, featureIdentity)
	if err != nil {
		return err
	}
	// The customer is in the path: part of the list's name, so bound into the cursor.
	spec := listSpec{name: "identity_checks/" + id}
	return servePage(c, &ValidationError{}, spec, pageParams{p.Limit, p.Offset, p.Cursor}, "Failed to fetch identity checks",
		func(pr pageRequest) (supabase.Page, error) {
			id, ok := parseUUID(id)
			if !ok { // no customer has this id: an empty list
				return supabase.Page{Body: []byte("[]"), Total: 0, Exact: true}, nil
			}
			return svc.List(ctx, tenantFrom(ctx), id, pr.apply)
		})
}

// GetIdentityCheckLink answers GET /identity-checks/{id}/link.
func (s *server) GetIdentityCheckLink(c *echo.Context, id string) error {
	ctx := c.Request().Context()
	svc, id, err := need(s.identity, featureIdentity, id, "Identity check not found")
	if err != nil {
		return err
	}
	link, exp, err := svc.Link(ctx, tenantFrom(ctx), id, reqInfoFrom(ctx).id)
	switch {
	case errors.Is(err, credas.ErrUnavailable), errors.Is(err, credas.ErrRejected):
		return upstream("Failed to get a link from the identity provider", err)
	case err != nil:
		return upstream("Failed to fetch the identity check", err)
	}
	return c.JSON(http.StatusOK, api.IdentityCheckLink{Url: link, ExpiresAt: exp.UTC()})
}

// CredasWebhook answers POST /webhooks/credas.
func (s *server) CredasWebhook(c *echo.Context, p api.CredasWebhookParams) error {
	ctx := c.Request().Context()
	svc, err := configured(s.identity, featureIdentity)
	if err != nil {
		return err
	}
	payload, err := readRawBody(c)
	if err != nil {
		return err
	}
	checkID, _ := parseUUID(deref(p.Check))
	out, err := svc.Webhook(ctx, deref(p.Tenant), checkID, deref(p.Token), payload, reqInfoFrom(ctx).id)
	switch {
	case errors.Is(err, identity.ErrCheckNotFound):
		return notFound("Not Found") // the public webhook does not say which checks exist
	case err != nil:
		return upstream("Failed to record the result", err)
	}
	status := http.StatusOK
	if out == identity.WebhookDeferred {
		status = http.StatusAccepted
	}
	return c.JSON(status, api.WebhookResult{Status: api.WebhookResultStatus(out)})
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
