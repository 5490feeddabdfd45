// Package dvla looks vehicles up in the DVLA Vehicle Enquiry Service.
package dvla

import (
	"github.com/fleetpilot/gateway/gateway/telemetry"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Errors of a lookup.
var (
	// ErrNotFound is DVLA's 404: no vehicle with that registration.
	ErrNotFound = errors.New("dvla: vehicle not found")
	// ErrInvalid is DVLA's 400: the registration is not one it accepts.
	ErrInvalid = errors.New("dvla: invalid registration")
	// ErrRejected is a 401/403: the API key is wrong or revoked.
	ErrRejected = errors.New("dvla: request rejected")
)

// UnavailableError is a lookup that failed after its retries: DVLA was rate
// limiting (RateLimited), down or slow. RetryAfter is DVLA's hint, if any.
type UnavailableError struct {
	RateLimited bool
	RetryAfter  time.Duration
	Err         error
}

func (e *UnavailableError) Error() string { return "dvla: unavailable: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// Config of the client and its cache. The env tags are relative to the
// DVLA_VES_ prefix the gateway's configuration gives this section.
type Config struct {
	// APIKey enables lookups; without it the vehicle endpoints answer 503.
	APIKey string `env:"API_KEY"`
	// BaseURL is e.g. https://driver-vehicle-licensing.api.gov.uk/vehicle-enquiry.
	BaseURL string `env:"BASE_URL" envDefault:"https://driver-vehicle-licensing.api.gov.uk/vehicle-enquiry"`
	// Timeout bounds each attempt; zero means 10 s.
	Timeout time.Duration `env:"TIMEOUT" envDefault:"10s"`
	// CacheTTL keeps a found vehicle, NotFoundTTL a registration DVLA does not know.
	CacheTTL    time.Duration `env:"CACHE_TTL" envDefault:"24h"`
	NotFoundTTL time.Duration `env:"NOT_FOUND_TTL" envDefault:"10m"`
	// Tries is the number of attempts on 429/5xx/timeouts; zero means 3.
	Tries int
	// Backoff is the base wait between attempts; zero means 500 ms.
	Backoff time.Duration
}

// Validate names each bad setting, one error per variable (keys without the prefix).
func (c Config) Validate() error {
	var p []error
	if u, err := url.Parse(c.BaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		p = append(p, errors.New("BASE_URL: must be an http(s) URL"))
	}
	if c.Timeout <= 0 {
		p = append(p, errors.New("TIMEOUT: must be a positive duration"))
	}
	if c.CacheTTL < 0 {
		p = append(p, errors.New("CACHE_TTL: must not be negative"))
	}
	if c.NotFoundTTL < 0 {
		p = append(p, errors.New("NOT_FOUND_TTL: must not be negative"))
	}
	return errors.Join(p...)
}

// Client calls the VES API. Safe for concurrent use.
type Client struct {
	hc  *http.Client
	cfg Config
	url string
}

// New builds a client over hc.
func New(cfg Config, hc *http.Client) (*Client, error) {
	if cfg.APIKey == "" || cfg.BaseURL == "" {
		return nil, errors.New("dvla: API key and base URL are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.Tries <= 0 {
		cfg.Tries = 3
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 500 * time.Millisecond
	}
	return &Client{hc: hc, cfg: cfg, url: strings.TrimRight(cfg.BaseURL, "/") + "/v1/vehicles"}, nil
}

// Vehicle is DVLA's answer, in the gateway's snake_case. Months stay YYYY-MM.
type Vehicle struct {
	Registration             string  `json:"registration"`
	Make                     *string `json:"make"`
	Colour                   *string `json:"colour"`
	FuelType                 *string `json:"fuel_type"`
	YearOfManufacture        *int    `json:"year_of_manufacture"`
	EngineCapacity           *int    `json:"engine_capacity"`
	CO2Emissions             *int    `json:"co2_emissions"`
	TaxStatus                *string `json:"tax_status"`
	TaxDueDate               *string `json:"tax_due_date"`
	MOTStatus                *string `json:"mot_status"`
	MOTExpiryDate            *string `json:"mot_expiry_date"`
	MonthOfFirstRegistration *string `json:"month_of_first_registration"`
	MarkedForExport          *bool   `json:"marked_for_export"`
	TypeApproval             *string `json:"type_approval"`
	Wheelplan                *string `json:"wheelplan"`
	RevenueWeight            *int    `json:"revenue_weight"`
	EuroStatus               *string `json:"euro_status"`
	DateOfLastV5CIssued      *string `json:"date_of_last_v5c_issued"`
}

type wire struct {
	RegistrationNumber       string  `json:"registrationNumber"`
	Make                     *string `json:"make"`
	Colour                   *string `json:"colour"`
	FuelType                 *string `json:"fuelType"`
	YearOfManufacture        *int    `json:"yearOfManufacture"`
	EngineCapacity           *int    `json:"engineCapacity"`
	CO2Emissions             *int    `json:"co2Emissions"`
	TaxStatus                *string `json:"taxStatus"`
	TaxDueDate               *string `json:"taxDueDate"`
	MOTStatus                *string `json:"motStatus"`
	MOTExpiryDate            *string `json:"motExpiryDate"`
	MonthOfFirstRegistration *string `json:"monthOfFirstRegistration"`
	MarkedForExport          *bool   `json:"markedForExport"`
	TypeApproval             *string `json:"typeApproval"`
	Wheelplan                *string `json:"wheelplan"`
	RevenueWeight            *int    `json:"revenueWeight"`
	EuroStatus               *string `json:"euroStatus"`
	DateOfLastV5CIssued      *string `json:"dateOfLastV5CIssued"`
}

// Lookup asks DVLA about a normalised registration. correlationID goes in
// X-Correlation-Id so that DVLA support can find the call. 429, 5xx and
// timeouts are retried with backoff within ctx's deadline.
func (c *Client) Lookup(ctx context.Context, vrm, correlationID string) (Vehicle, error) {
	body, _ := json.Marshal(map[string]string{"registrationNumber": vrm})
	var last *UnavailableError
	for try := 0; try < c.cfg.Tries; try++ {
		if try > 0 {
			wait := c.cfg.Backoff<<(try-1) + rand.N(c.cfg.Backoff)
			if last.RetryAfter > wait {
				wait = last.RetryAfter
			}
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				break // no time left for another try
			}
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return Vehicle{}, last
			case <-t.C:
			}
		}
		v, err := c.once(telemetry.WithResend(ctx, try), body, correlationID)
		var ue *UnavailableError
		if !errors.As(err, &ue) {
			return v, err
		}
		last = ue
		if ctx.Err() != nil {
			break
		}
	}
	return Vehicle{}, last
}

func (c *Client) once(ctx context.Context, body []byte, correlationID string) (Vehicle, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return Vehicle{}, err
	}
	req.Header.Set("x-api-key", c.cfg.APIKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	if correlationID != "" {
		req.Header.Set("X-Correlation-Id", correlationID)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return Vehicle{}, &UnavailableError{Err: err}
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if err != nil {
		return Vehicle{}, &UnavailableError{Err: err}
	}
	switch {
	case res.StatusCode == http.StatusOK:
		var w wire
		if err := json.Unmarshal(raw, &w); err != nil || w.RegistrationNumber == "" {
			return Vehicle{}, &UnavailableError{Err: fmt.Errorf("unexpected answer: %.200s", raw)}
		}
		return w.vehicle(), nil
	case res.StatusCode == http.StatusNotFound:
		return Vehicle{}, ErrNotFound
	case res.StatusCode == http.StatusBadRequest:
		return Vehicle{}, fmt.Errorf("%w: %.200s", ErrInvalid, raw)
	case res.StatusCode == http.StatusUnauthorized || res.StatusCode == http.StatusForbidden:
		return Vehicle{}, fmt.Errorf("%w: status %d: %.200s", ErrRejected, res.StatusCode, raw)
	default:
		return Vehicle{}, &UnavailableError{
			RateLimited: res.StatusCode == http.StatusTooManyRequests,
			RetryAfter:  retryAfter(res.Header.Get("Retry-After")),
			Err:         fmt.Errorf("status %d: %.200s", res.StatusCode, raw),
		}
	}
}

func (w wire) vehicle() Vehicle {
	return Vehicle{
		Registration: w.RegistrationNumber, Make: w.Make, Colour: w.Colour, FuelType: w.FuelType,
		YearOfManufacture: w.YearOfManufacture, EngineCapacity: w.EngineCapacity, CO2Emissions: w.CO2Emissions,
		TaxStatus: w.TaxStatus, TaxDueDate: w.TaxDueDate, MOTStatus: w.MOTStatus, MOTExpiryDate: w.MOTExpiryDate,
		MonthOfFirstRegistration: w.MonthOfFirstRegistration, MarkedForExport: w.MarkedForExport,
		TypeApproval: w.TypeApproval, Wheelplan: w.Wheelplan, RevenueWeight: w.RevenueWeight,
		EuroStatus: w.EuroStatus, DateOfLastV5CIssued: w.DateOfLastV5CIssued,
	}
}

func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return time.Until(t)
	}
	return 0
}
