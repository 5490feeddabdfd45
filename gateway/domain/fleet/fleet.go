// Package fleet keeps vehicles' DVLA details current: one vehicle on demand,
// or every tenant's stale vehicles in the daily sweep.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"time"

	"golang.org/x/time/rate"

	"github.com/fleetpilot/gateway/gateway/clients/dvla"
	"github.com/fleetpilot/gateway/gateway/clients/tasks"
	"github.com/fleetpilot/gateway/gateway/domain/quota"
	"github.com/fleetpilot/gateway/gateway/domain/sweep"
	"github.com/fleetpilot/gateway/supabase"
)

// ErrVehicleNotFound: no such vehicle in the tenant (or archived).
var ErrVehicleNotFound = errors.New("fleet: vehicle not found")

// Lookup is the DVLA lookup (dvla.Cache).
type Lookup interface {
	Lookup(ctx context.Context, vrm, correlationID string, fresh bool) (dvla.Vehicle, error)
}

// VehicleColumns are the fields of a vehicle the API shows.
var VehicleColumns = []supabase.Column{"id", "registration", "make", "model", "colour", "fuel_type", "year_of_manufacture",
	"tax_status", "tax_due_date", "mot_status", "mot_expiry_date", "dvla_checked_at", "created_at", "updated_at"}

// Config of the sweep. Its variables name DVLA without a common prefix, so
// the env tags are full names.
type Config struct {
	// Rate is the most DVLA lookups a second one instance makes (DVLA
	// publishes no limit); across instances the queue's rate bounds them.
	Rate float64 `env:"DVLA_VES_RATE" envDefault:"2"`
	// Batch bounds the vehicles one sweep call plans (oldest first).
	Batch int `env:"DVLA_REFRESH_BATCH" envDefault:"100000"`
	// TaskSize is how many vehicles one task refreshes.
	TaskSize int
	// Queue is the Cloud Tasks queue of the refresh tasks.
	Queue string `env:"DVLA_TASKS_QUEUE" envDefault:"dvla-refresh"`
	// StaleAfter is how old a check must be to be refreshed.
	StaleAfter time.Duration
	// AlertWithin flags tax or MOT ending this soon.
	AlertWithin time.Duration
	// DailyLookupQuota is the DVLA lookups and refreshes a tenant may ask
	// for a UTC day, on every instance together; zero means no quota. The
	// scheduled sweep is the gateway's own and is not counted.
	DailyLookupQuota int `env:"DVLA_DAILY_LOOKUP_QUOTA" envDefault:"2000"`
}

// Validate names each bad setting, one error per variable.
func (c Config) Validate() error {
	var p []error
	if c.Rate <= 0 || c.Rate > 50 {
		p = append(p, errors.New("DVLA_VES_RATE: must be above 0 and at most 50 lookups a second"))
	}
	if c.Batch < 1 || c.Batch > 1000000 {
		p = append(p, errors.New("DVLA_REFRESH_BATCH: must be between 1 and 1000000"))
	}
	if c.DailyLookupQuota < 0 {
		p = append(p, errors.New("DVLA_DAILY_LOOKUP_QUOTA: must be 0 (no quota) or more"))
	}
	return errors.Join(p...)
}

// Service refreshes vehicles.
type Service struct {
	db      *supabase.Client
	lookup  Lookup
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	planner *sweep.Planner
	limiter *rate.Limiter
	quota   quota.Take
}

// WithQuota makes every lookup and refresh a tenant asks for first take one
// unit of its DVLA allowance.
func (s *Service) WithQuota(take quota.Take) *Service {
	s.quota = take
	return s
}

// Lookup looks a registration up for a tenant (through the cache, which
// still counts against the tenant's allowance: what a lookup costs should
// not depend on what other tenants asked before).
func (s *Service) Lookup(ctx context.Context, tenant supabase.TenantID, vrm, correlationID string) (dvla.Vehicle, error) {
	if err := s.quota.Spend(ctx, tenant); err != nil {
		return dvla.Vehicle{}, err
	}
	return s.lookup.Lookup(ctx, vrm, correlationID, false)
}

// New builds the service; the sweep's tasks go to d.
func New(cfg Config, db *supabase.Client, lookup Lookup, d tasks.Dispatcher, log *slog.Logger) *Service {
	if cfg.Rate <= 0 {
		cfg.Rate = 2
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 24 * time.Hour
	}
	if cfg.AlertWithin <= 0 {
		cfg.AlertWithin = 30 * 24 * time.Hour
	}
	if cfg.Queue == "" {
		cfg.Queue = "dvla-refresh"
	}
	return &Service{db: db, lookup: lookup, cfg: cfg, log: log, now: time.Now,
		planner: sweep.NewPlanner(sweep.Config{Kind: "dvla", Queue: cfg.Queue, Path: TaskPath, TaskSize: cfg.TaskSize, Window: min(time.Hour, cfg.StaleAfter/2), Max: cfg.Batch}, d),
		limiter: rate.NewLimiter(rate.Limit(cfg.Rate), 1)}
}

// Refresh looks the tenant's vehicle up afresh and writes its DVLA columns.
func (s *Service) Refresh(ctx context.Context, tenant supabase.TenantID, vehicleID, correlationID string) (json.RawMessage, error) {
	var rows []struct {
		Registration string `json:"registration"`
	}
	if err := s.db.From(tenant, "vehicles").Select("registration").Eq("id", vehicleID).Limit(1).Into(ctx, &rows); err != nil {
		return nil, err
	}
	if len(rows) == 0 {
		return nil, ErrVehicleNotFound
	}
	if err := s.quota.Spend(ctx, tenant); err != nil {
		return nil, err
	}
	v, err := s.lookup.Lookup(ctx, rows[0].Registration, correlationID, true)
	if err != nil {
		return nil, err
	}
	out, err := s.db.From(tenant, "vehicles").Select(VehicleColumns...).Eq("id", vehicleID).UpdateOne(ctx, s.columns(v))
	if errors.Is(err, supabase.ErrNotFound) {
		return nil, ErrVehicleNotFound
	}
	return out, err
}

func (s *Service) columns(v dvla.Vehicle) supabase.Row {
	return supabase.Row{
		"make": v.Make, "colour": v.Colour, "fuel_type": v.FuelType, "year_of_manufacture": v.YearOfManufacture,
		"tax_status": v.TaxStatus, "tax_due_date": v.TaxDueDate, "mot_status": v.MOTStatus, "mot_expiry_date": v.MOTExpiryDate,
		"dvla_checked_at": s.now().UTC().Format(time.RFC3339Nano),
	}
}

// Alert is a vehicle whose tax or MOT has lapsed or ends soon.
type Alert struct {
	TenantID     string `json:"tenant_id"`
	VehicleID    string `json:"vehicle_id"`
	Registration string `json:"registration"`
	Kind         string `json:"kind"`
	Due          string `json:"due"`
	Lapsed       bool   `json:"lapsed"`
}

func (s *Service) alerts(tenant supabase.TenantID, vehicleID, reg string, v dvla.Vehicle) []Alert {
	var out []Alert
	today := s.now().UTC().Truncate(24 * time.Hour)
	for kind, due := range map[string]*string{"tax": v.TaxDueDate, "mot": v.MOTExpiryDate} {
		if due == nil {
			continue
		}
		d, err := time.Parse("2006-01-02", *due)
		if err != nil {
			continue
		}
		if d.Before(today) || d.Sub(today) <= s.cfg.AlertWithin {
			out = append(out, Alert{TenantID: tenant.String(), VehicleID: vehicleID, Registration: reg, Kind: kind, Due: *due, Lapsed: d.Before(today)})
		}
	}
	// SORN, untaxed or no valid MOT with no date at all also need attention.
	if v.TaxStatus != nil && (*v.TaxStatus == "Untaxed" || *v.TaxStatus == "SORN") && v.TaxDueDate == nil {
		out = append(out, Alert{TenantID: tenant.String(), VehicleID: vehicleID, Registration: reg, Kind: "tax", Lapsed: true})
	}
	return out
}
