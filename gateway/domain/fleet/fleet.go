// Package fleet keeps vehicles' DVLA details current: one vehicle on demand,
// or every tenant's stale vehicles in the daily sweep.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"golang.org/x/time/rate"

	"github.com/fleetpilot/gateway/gateway/clients/dvla"
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
	// Rate is the most DVLA lookups a second the sweep makes (DVLA publishes no limit).
	Rate float64 `env:"DVLA_VES_RATE" envDefault:"2"`
	// Batch bounds the vehicles refreshed per sweep.
	Batch int `env:"DVLA_REFRESH_BATCH" envDefault:"500"`
	// StaleAfter is how old a check must be to be refreshed.
	StaleAfter time.Duration
	// AlertWithin flags tax or MOT ending this soon.
	AlertWithin time.Duration
}

// Validate names each bad setting, one error per variable.
func (c Config) Validate() error {
	var p []error
	if c.Rate <= 0 || c.Rate > 50 {
		p = append(p, errors.New("DVLA_VES_RATE: must be above 0 and at most 50 lookups a second"))
	}
	if c.Batch < 1 || c.Batch > 10000 {
		p = append(p, errors.New("DVLA_REFRESH_BATCH: must be between 1 and 10000"))
	}
	return errors.Join(p...)
}

// Service refreshes vehicles.
type Service struct {
	db     *supabase.Client
	lookup Lookup
	cfg    Config
	log    *slog.Logger
	now    func() time.Time
}

// New builds the service.
func New(cfg Config, db *supabase.Client, lookup Lookup, log *slog.Logger) *Service {
	if cfg.Rate <= 0 {
		cfg.Rate = 2
	}
	if cfg.Batch <= 0 {
		cfg.Batch = 500
	}
	if cfg.StaleAfter <= 0 {
		cfg.StaleAfter = 24 * time.Hour
	}
	if cfg.AlertWithin <= 0 {
		cfg.AlertWithin = 30 * 24 * time.Hour
	}
	return &Service{db: db, lookup: lookup, cfg: cfg, log: log, now: time.Now}
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

// SweepResult counts what a sweep did.
type SweepResult struct {
	Checked  int     `json:"checked"`
	Updated  int     `json:"updated"`
	NotFound int     `json:"not_found"`
	Failed   int     `json:"failed"`
	Alerts   []Alert `json:"alerts"`
}

// Sweep refreshes, tenant by tenant, vehicles whose DVLA check is missing or
// older than StaleAfter, paced at Rate lookups a second, at most Batch of
// them. A vehicle DVLA does not know is marked checked, so it is not asked
// about again until the next period.
func (s *Service) Sweep(ctx context.Context, correlationID string) (SweepResult, error) {
	res := SweepResult{Alerts: []Alert{}}
	tenants, err := s.db.TenantIDs(ctx)
	if err != nil {
		return res, err
	}
	limiter := rate.NewLimiter(rate.Limit(s.cfg.Rate), 1)
	cutoff := s.now().Add(-s.cfg.StaleAfter).UTC().Format(time.RFC3339Nano)
	for _, tenant := range tenants {
		if res.Checked >= s.cfg.Batch {
			break
		}
		var stale []struct {
			ID           string `json:"id"`
			Registration string `json:"registration"`
		}
		// Never checked first, then the oldest checks.
		for _, never := range []bool{true, false} {
			var page []struct {
				ID           string `json:"id"`
				Registration string `json:"registration"`
			}
			qq := s.db.From(tenant, "vehicles").Select("id", "registration").Limit(s.cfg.Batch - res.Checked - len(stale))
			if never {
				qq.IsNull("dvla_checked_at")
			} else {
				qq.Lt("dvla_checked_at", cutoff).Order("dvla_checked_at", false)
			}
			if err := qq.Into(ctx, &page); err != nil {
				return res, fmt.Errorf("fleet: stale vehicles of %s: %w", tenant, err)
			}
			stale = append(stale, page...)
		}
		for _, v := range stale {
			if err := limiter.Wait(ctx); err != nil {
				return res, err
			}
			res.Checked++
			dv, lerr := s.lookup.Lookup(ctx, v.Registration, correlationID, true)
			row := supabase.Row{"dvla_checked_at": s.now().UTC().Format(time.RFC3339Nano)}
			switch {
			case errors.Is(lerr, dvla.ErrNotFound), errors.Is(lerr, dvla.ErrInvalid):
				res.NotFound++
			case lerr != nil:
				res.Failed++
				s.log.WarnContext(ctx, "dvla refresh failed", "tenant_id", tenant.String(), "vehicle_id", v.ID, "err", lerr)
				continue
			default:
				row = s.columns(dv)
			}
			_, uerr := s.db.From(tenant, "vehicles").Select("id").Eq("id", v.ID).UpdateOne(ctx, row)
			switch {
			case errors.Is(uerr, supabase.ErrNotFound):
				continue // archived meanwhile
			case uerr != nil:
				res.Failed++
				s.log.WarnContext(ctx, "dvla refresh not saved", "tenant_id", tenant.String(), "vehicle_id", v.ID, "err", uerr)
				continue
			}
			if lerr == nil {
				res.Updated++
				res.Alerts = append(res.Alerts, s.alerts(tenant, v.ID, v.Registration, dv)...)
			}
		}
	}
	for _, a := range res.Alerts {
		s.log.InfoContext(ctx, "vehicle tax or MOT needs attention", "tenant_id", a.TenantID, "vehicle_id", a.VehicleID, "kind", a.Kind, "due", a.Due, "lapsed", a.Lapsed)
	}
	return res, nil
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
