// Package identity runs customers' identity checks with Credas: invite,
// hosted link, results by webhook (a hint only: results are always re-read
// from Credas with the API key) and a poll for webhooks that never came.
package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/fleetpilot/gateway/gateway/clients/credas"
	"github.com/fleetpilot/gateway/gateway/clients/tasks"
	"github.com/fleetpilot/gateway/gateway/domain/quota"
	"github.com/fleetpilot/gateway/gateway/domain/sweep"
	"github.com/fleetpilot/gateway/supabase"
)

// Errors of the endpoints.
var (
	ErrCustomerNotFound = errors.New("identity: customer not found")
	ErrCheckNotFound    = errors.New("identity: check not found")
	ErrContactMissing   = errors.New("identity: the customer has no email or phone for this contact mode")
	ErrCheckClosed      = errors.New("identity: the check is finished")
	ErrNotReconciled    = errors.New("identity: the check's creation is unconfirmed")
	ErrProviderRefused  = errors.New("identity: the provider refused the check")
)

// Provider is the identity-verification service (credas.Client).
type Provider interface {
	CreateProcess(ctx context.Context, title, webhookURL string, p credas.Person, c credas.Contact, correlationID string) (credas.Process, error)
	MagicLink(ctx context.Context, p credas.Process, correlationID string) (string, error)
	Result(ctx context.Context, p credas.Process, correlationID string) (credas.Outcome, json.RawMessage, error)
}

// Config of the service. The env tags are relative to the CREDAS_ prefix
// the gateway's configuration gives this section.
type Config struct {
	// WebhookBaseURL is the gateway's public URL; Credas calls {it}/webhooks/credas.
	WebhookBaseURL string         `env:"WEBHOOK_BASE_URL"`
	DefaultContact credas.Contact `env:"CONTACT_MODE" envDefault:"email"`
	// PollAfter is how long an open check waits before the poll asks Credas.
	PollAfter time.Duration `env:"POLL_AFTER" envDefault:"6h"`
	// PollBatch bounds the checks one poll call plans (oldest first).
	PollBatch int
	// PollRate is the most Credas reads a second one instance's poll makes;
	// across instances the queue's rate bounds them.
	PollRate float64 `env:"POLL_RATE" envDefault:"5"`
	// TaskSize is how many checks one poll task reads.
	TaskSize int
	// Queue is the Cloud Tasks queue of the poll tasks.
	Queue string `env:"TASKS_QUEUE" envDefault:"credas-poll"`
	// DailyInviteQuota is the checks a tenant may start a UTC day, on every
	// instance together (CREDAS_DAILY_INVITE_QUOTA); zero means no quota.
	DailyInviteQuota int `env:"DAILY_INVITE_QUOTA" envDefault:"200"`
}

// Validate names each bad setting, one error per variable (keys without the prefix).
func (c Config) Validate() error {
	var p []error
	switch c.DefaultContact {
	case credas.ContactEmail, credas.ContactSMS, credas.ContactNone:
	default:
		p = append(p, errors.New("CONTACT_MODE: must be email, sms or none"))
	}
	if c.PollRate <= 0 || c.PollRate > 50 {
		p = append(p, errors.New("POLL_RATE: must be above 0 and at most 50 reads a second"))
	}
	if c.PollAfter < time.Minute {
		p = append(p, errors.New("POLL_AFTER: must be at least 1m"))
	}
	if c.DailyInviteQuota < 0 {
		p = append(p, errors.New("DAILY_INVITE_QUOTA: must be 0 (no quota) or more"))
	}
	return errors.Join(p...)
}

// Service runs checks.
type Service struct {
	db      *supabase.Client
	p       Provider
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	planner *sweep.Planner
	limiter *rate.Limiter
	quota   quota.Take
}

// WithQuota makes every new check (a paid invite) first take one unit of the
// tenant's allowance.
func (s *Service) WithQuota(take quota.Take) *Service {
	s.quota = take
	return s
}

// New builds the service; the poll's tasks go to d.
func New(cfg Config, db *supabase.Client, p Provider, d tasks.Dispatcher, log *slog.Logger) *Service {
	cfg.WebhookBaseURL = strings.TrimRight(cfg.WebhookBaseURL, "/")
	if cfg.DefaultContact == "" {
		cfg.DefaultContact = credas.ContactEmail
	}
	if cfg.PollAfter <= 0 {
		cfg.PollAfter = 6 * time.Hour
	}
	if cfg.PollRate <= 0 {
		cfg.PollRate = 5
	}
	if cfg.Queue == "" {
		cfg.Queue = "credas-poll"
	}
	return &Service{db: db, p: p, cfg: cfg, log: log, now: time.Now,
		planner: sweep.NewPlanner(sweep.Config{Kind: "credas", Queue: cfg.Queue, Path: TaskPath, TaskSize: cfg.TaskSize, Window: min(time.Hour, cfg.PollAfter/2), Max: cfg.PollBatch}, d),
		limiter: rate.NewLimiter(rate.Limit(cfg.PollRate), 1)}
}

const table = "identity_checks"

// CheckColumns are the fields of a check the API shows.
var CheckColumns = []supabase.Column{"id", "customer_id", "provider", "status", "last_checked_at", "completed_at", "created_at", "updated_at"}

var openStatuses = []string{"invited", "pending"}

// Create invites the tenant's customer, at most once per open check.
//
// The intent is recorded first: the check row exists, `creating`, before
// Credas is called (its webhook URL names it). A create whose outcome is
// unknown (timeout, 5xx) is never re-posted but marked needs_reconcile,
// since a second post could send a second invite. Once Credas has accepted,
// the answer is a success whatever happens to our own writes: failing would
// only invite a retry. A retry, or any create while the customer has an open
// check (creating, invited, pending), answers that check without calling
// Credas. created is false when no new invite was confirmed.
func (s *Service) Create(ctx context.Context, tenant supabase.TenantID, userID, customerID, contact, correlationID string) (_ json.RawMessage, created bool, _ error) {
	var cust []struct {
		FullName string  `json:"full_name"`
		Email    *string `json:"email"`
		Phone    *string `json:"phone"`
	}
	if err := s.db.From(tenant, "customers").Select("full_name", "email", "phone").Eq("id", customerID).Limit(1).Into(ctx, &cust); err != nil {
		return nil, false, err
	}
	if len(cust) == 0 {
		return nil, false, ErrCustomerNotFound
	}
	mode := s.cfg.DefaultContact
	if contact != "" {
		mode = credas.Contact(contact)
	}
	c := cust[0]
	if (mode == credas.ContactEmail && deref(c.Email) == "") || (mode == credas.ContactSMS && deref(c.Phone) == "") {
		return nil, false, ErrContactMissing
	}
	if open, err := s.openCheck(ctx, tenant, customerID); err != nil || open != nil {
		return open, false, err
	}
	// Only a new invite is paid for: the open check answered above is not counted.
	if err := s.quota.Spend(ctx, tenant); err != nil {
		return nil, false, err
	}
	token, hash, err := newToken()
	if err != nil {
		return nil, false, err
	}
	row := supabase.Row{"customer_id": customerID, "provider": "credas", "status": "creating", "webhook_token_hash": hash}
	if userID != "" {
		row["created_by"] = userID
	}
	ins, err := s.db.From(tenant, table).Select(CheckColumns...).Insert(ctx, row)
	if err != nil {
		return nil, false, err
	}
	var check map[string]any
	if err := json.Unmarshal(ins, &check); err != nil {
		return nil, false, err
	}
	checkID, _ := check["id"].(string)
	first, last, _ := strings.Cut(strings.TrimSpace(c.FullName), " ")
	hook := s.cfg.WebhookBaseURL + "/webhooks/credas?" + url.Values{"tenant": {tenant.String()}, "check": {checkID}, "token": {token}}.Encode()
	proc, perr := s.p.CreateProcess(ctx, "FleetPilot identity check", hook, credas.Person{
		FirstName: first, Surname: last, Email: deref(c.Email), Phone: deref(c.Phone), Reference: customerID,
	}, mode, correlationID)
	upd := supabase.Row{}
	switch {
	case perr == nil:
		upd["status"], upd["provider_reference"], upd["provider_entity_ref"] = "invited", proc.ProcessID, proc.EntityID
	case errors.Is(perr, credas.ErrAmbiguous):
		s.log.WarnContext(ctx, "credas create outcome unknown; check needs reconciling", "check_id", checkID, "err", perr)
		upd["status"] = "needs_reconcile"
	default:
		s.log.ErrorContext(ctx, "credas refused the check", "check_id", checkID, "err", perr)
		upd["status"], upd["completed_at"] = "error", s.stamp()
	}
	out, err := s.saveOutcome(ctx, tenant, checkID, upd)
	if perr != nil && !errors.Is(perr, credas.ErrAmbiguous) {
		// Refused: nothing was sent, so failing the request is safe; a
		// check that could not be marked error stays creating (unconfirmed).
		if err != nil {
			s.log.ErrorContext(ctx, "refused identity check not marked error", "check_id", checkID, "err", err)
		}
		return out, false, fmt.Errorf("%w: %w", ErrProviderRefused, perr)
	}
	if err != nil {
		// The invite may be out: never fail now (a retry finds this check,
		// creating, and sends nothing). The ids are logged so that the check
		// can be completed by hand; the poll counts it as unconfirmed.
		s.log.ErrorContext(ctx, "identity check not updated after the Credas create; answered with what is known", "check_id", checkID,
			"process_id", proc.ProcessID, "entity_id", proc.EntityID, "status", upd["status"], "credas_err", perr, "err", err)
		check["status"] = upd["status"]
		out, err = json.Marshal(check)
		if err != nil {
			return nil, false, err
		}
	}
	// The customer's status is a convenience copy: its failure is logged only.
	if _, err := s.db.From(tenant, "customers").Select("id").Eq("id", customerID).UpdateOne(ctx, supabase.Row{"identity_status": "pending"}); err != nil {
		s.log.ErrorContext(ctx, "customer identity_status not set to pending", "check_id", checkID, "customer_id", customerID, "err", err)
	}
	return out, perr == nil, nil
}

// openStates are the checks a new create answers instead of inviting again.
var openStates = []string{"creating", "invited", "pending"}

// openCheck returns the customer's newest open check, or nil.
func (s *Service) openCheck(ctx context.Context, tenant supabase.TenantID, customerID string) (json.RawMessage, error) {
	var rows []json.RawMessage
	err := s.db.From(tenant, table).Select(CheckColumns...).Eq("customer_id", customerID).In("status", openStates...).
		Order("created_at", true).Limit(1).Into(ctx, &rows)
	if err != nil || len(rows) == 0 {
		return nil, err
	}
	return rows[0], nil
}

// saveOutcome writes Credas' answer to the check. The write is tried up to
// three times (PostgREST writes are not retried by the client) within the
// request's deadline: after Credas accepted, losing it leaves the check
// without its process.
func (s *Service) saveOutcome(ctx context.Context, tenant supabase.TenantID, checkID string, upd supabase.Row) (json.RawMessage, error) {
	var err error
	for i := range 3 {
		if i > 0 {
			t := time.NewTimer(time.Duration(i) * 100 * time.Millisecond)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, errors.Join(err, ctx.Err())
			case <-t.C:
			}
		}
		var out json.RawMessage
		out, err = s.db.From(tenant, table).Select(CheckColumns...).Eq("id", checkID).Eq("status", "creating").UpdateOne(ctx, upd)
		if err == nil || errors.Is(err, supabase.ErrNotFound) {
			return out, err
		}
	}
	return nil, err
}

// List returns one page of the customer's checks; page sets the order and
// the paging (the caller's list conventions).
func (s *Service) List(ctx context.Context, tenant supabase.TenantID, customerID string, page func(*supabase.Query) *supabase.Query) (supabase.Page, error) {
	return page(s.db.From(tenant, table).Select(CheckColumns...).Eq("customer_id", customerID)).List(ctx)
}

type checkState struct {
	ID         string  `json:"id"`
	CustomerID string  `json:"customer_id"`
	Status     string  `json:"status"`
	Hash       string  `json:"webhook_token_hash"`
	ProcessID  *string `json:"provider_reference"`
	EntityID   *string `json:"provider_entity_ref"`
}

func (c checkState) process() (credas.Process, bool) {
	if c.ProcessID == nil || c.EntityID == nil {
		return credas.Process{}, false
	}
	return credas.Process{ProcessID: *c.ProcessID, EntityID: *c.EntityID}, true
}

func (s *Service) check(ctx context.Context, tenant supabase.TenantID, id string) (checkState, error) {
	var rows []checkState
	err := s.db.From(tenant, table).Select("id", "customer_id", "status", "webhook_token_hash", "provider_reference", "provider_entity_ref").
		Eq("id", id).Limit(1).Into(ctx, &rows)
	if err != nil {
		return checkState{}, err
	}
	if len(rows) == 0 {
		return checkState{}, ErrCheckNotFound
	}
	return rows[0], nil
}

// Link returns a fresh 30-minute hosted link for an open check. It is never stored.
func (s *Service) Link(ctx context.Context, tenant supabase.TenantID, checkID, correlationID string) (string, time.Time, error) {
	c, err := s.check(ctx, tenant, checkID)
	if err != nil {
		return "", time.Time{}, err
	}
	if c.Status == "needs_reconcile" || c.Status == "creating" {
		return "", time.Time{}, ErrNotReconciled
	}
	p, ok := c.process()
	if !ok || !slices.Contains(openStatuses, c.Status) {
		return "", time.Time{}, ErrCheckClosed
	}
	link, err := s.p.MagicLink(ctx, p, correlationID)
	if err != nil {
		return "", time.Time{}, err
	}
	return link, s.now().Add(30 * time.Minute), nil
}

// WebhookOutcome says what a webhook delivery did.
type WebhookOutcome string

// Webhook outcomes.
const (
	WebhookApplied  WebhookOutcome = "applied"
	WebhookIgnored  WebhookOutcome = "ignored"
	WebhookDeferred WebhookOutcome = "deferred"
)

// Webhook handles a Credas process webhook for (tenant, check, token). The
// token must match the stored hash (constant time); the payload is a hint:
// the result is re-read from Credas before anything changes. A failed read
// changes nothing (the poll retries). Duplicates are harmless.
func (s *Service) Webhook(ctx context.Context, tenantID, checkID, token string, payload []byte, correlationID string) (WebhookOutcome, error) {
	tenant, err := supabase.ParseTenantID(tenantID)
	if err != nil || checkID == "" || token == "" {
		return "", ErrCheckNotFound
	}
	c, err := s.check(ctx, tenant, checkID)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(token))
	if subtle.ConstantTimeCompare([]byte(hex.EncodeToString(sum[:])), []byte(c.Hash)) != 1 {
		return "", ErrCheckNotFound
	}
	var hint struct {
		ProcessID string `json:"ProcessId"`
	}
	_ = json.Unmarshal(payload, &hint)
	p, ok := c.process()
	if !ok || (hint.ProcessID != "" && !strings.EqualFold(hint.ProcessID, p.ProcessID)) {
		s.log.WarnContext(ctx, "credas webhook for an unknown process", "check_id", c.ID, "process_id", hint.ProcessID)
		return WebhookIgnored, nil
	}
	if !slices.Contains(openStatuses, c.Status) {
		return WebhookIgnored, nil // already settled: a duplicate delivery
	}
	outcome, raw, err := s.p.Result(ctx, p, correlationID)
	if err != nil {
		s.log.WarnContext(ctx, "credas result fetch failed; the poll will retry", "check_id", c.ID, "err", err)
		return WebhookDeferred, nil
	}
	if err := s.apply(ctx, tenant, c, outcome, raw); err != nil {
		return "", err
	}
	return WebhookApplied, nil
}

// apply records an outcome on the check and the customer. Only open checks
// change, so a duplicate or late delivery cannot overwrite a result.
func (s *Service) apply(ctx context.Context, tenant supabase.TenantID, c checkState, outcome credas.Outcome, raw json.RawMessage) error {
	now := s.stamp()
	upd := supabase.Row{"last_checked_at": now}
	if outcome == credas.Pending {
		upd["status"] = "pending"
	} else {
		upd["status"], upd["result"], upd["completed_at"] = string(outcome), raw, now
	}
	_, err := s.db.From(tenant, table).Select("id").Eq("id", c.ID).In("status", openStatuses...).UpdateOne(ctx, upd)
	if errors.Is(err, supabase.ErrNotFound) {
		return nil
	}
	if err != nil || outcome == credas.Pending {
		return err
	}
	_, err = s.db.From(tenant, "customers").Select("id").Eq("id", c.CustomerID).UpdateOne(ctx, supabase.Row{"identity_status": string(outcome)})
	if errors.Is(err, supabase.ErrNotFound) {
		return nil // customer archived meanwhile
	}
	return err
}

func newToken() (token, hash string, err error) {
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", "", err
	}
	token = base64.RawURLEncoding.EncodeToString(b[:])
	sum := sha256.Sum256([]byte(token))
	return token, hex.EncodeToString(sum[:]), nil
}

func (s *Service) stamp() string { return s.now().UTC().Format(time.RFC3339Nano) }

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}
