// Package credas talks to Credas' identity-verification API (v2 "ci"):
// create a process (an invite to a journey), fetch a hosted magic link, and
// read a process's outcome.
//
// Credas' Swagger could not be read while this was written; the response
// shapes below follow its published help articles and are parsed leniently
// (see docs/decisions.md). Everything provider-specific stays in this package.
package credas

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Errors of a call.
var (
	// ErrAmbiguous: a create may or may not have happened (timeout, 5xx).
	// It must not be re-posted blindly: a second invite could go out.
	ErrAmbiguous = errors.New("credas: outcome unknown")
	// ErrRejected: Credas refused the request (400, 403 bad key, 404).
	ErrRejected = errors.New("credas: request rejected")
	// ErrUnavailable: a read failed (timeout, 429, 5xx); try again later.
	ErrUnavailable = errors.New("credas: unavailable")
)

// InvalidPersonError is Credas refusing the person's data (a 400 whose
// validation errors name the email address, phone number or name): the
// customer's record needs fixing, nothing is wrong with the service.
type InvalidPersonError struct {
	// Fields are the person's fields named: "email", "phone", "full_name".
	Fields []string
	err    error
}

func (e *InvalidPersonError) Error() string { return e.err.Error() }

// Unwrap makes it an ErrRejected too.
func (e *InvalidPersonError) Unwrap() error { return e.err }

// personFields finds the person's fields a validation answer names. The
// shape of Credas' validation errors is not documented; ASP.NET's problem
// details name the field as "ProcessEntities[0].EmailAddress" or similar, so
// the body is searched for the field names, case-insensitively.
func personFields(raw []byte) []string {
	body := strings.ToLower(string(raw))
	var out []string
	for _, f := range []struct{ name, key string }{{"emailaddress", "email"}, {"phonenumber", "phone"}, {"firstname", "full_name"}, {"surname", "full_name"}} {
		if strings.Contains(body, f.name) && (len(out) == 0 || out[len(out)-1] != f.key) {
			out = append(out, f.key)
		}
	}
	return out
}

// Contact is how Credas reaches the person.
type Contact string

// Contact modes: an emailed or texted invite, or none (the gateway hands out magic links).
const (
	ContactEmail Contact = "email"
	ContactSMS   Contact = "sms"
	ContactNone  Contact = "none"
)

// Config of the client. Keys, journeys and actors differ between the demo
// and production portals.
// The env tags are relative to the CREDAS_ prefix the gateway's
// configuration gives this section.
type Config struct {
	BaseURL string `env:"BASE_URL" envDefault:"https://portal.credas.com/api/v2/ci"`
	// APIKey enables identity checks; without it their endpoints answer 503.
	APIKey    string        `env:"API_KEY"`
	JourneyID string        `env:"JOURNEY_ID"`
	ActorID   int           `env:"ACTOR_ID"`
	Timeout   time.Duration `env:"TIMEOUT" envDefault:"20s"` // per call; zero means 20 s
}

// Validate names each bad setting, one error per variable (keys without the prefix).
func (c Config) Validate() error {
	if c.APIKey == "" {
		return nil
	}
	var p []error
	if c.JourneyID == "" {
		p = append(p, errors.New("JOURNEY_ID: required with CREDAS_API_KEY"))
	}
	if c.ActorID <= 0 {
		p = append(p, errors.New("ACTOR_ID: required with CREDAS_API_KEY (a positive number)"))
	}
	if u, err := url.Parse(c.BaseURL); err != nil || u.Scheme == "" || u.Host == "" {
		p = append(p, errors.New("BASE_URL: must be an http(s) URL"))
	}
	return errors.Join(p...)
}

// Client is safe for concurrent use.
type Client struct {
	hc   *http.Client
	cfg  Config
	base string
}

// New builds a client over hc.
func New(cfg Config, hc *http.Client) (*Client, error) {
	if cfg.BaseURL == "" || cfg.APIKey == "" || cfg.JourneyID == "" || cfg.ActorID == 0 {
		return nil, errors.New("credas: base URL, API key, journey id and actor id are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 20 * time.Second
	}
	return &Client{hc: hc, cfg: cfg, base: strings.TrimRight(cfg.BaseURL, "/")}, nil
}

// Person is who is invited.
type Person struct {
	FirstName, Surname, Email, Phone, Reference string
}

// Process identifies a created check.
type Process struct {
	ProcessID string
	EntityID  string
}

// CreateProcess invites p to the configured journey; Credas calls
// webhookURL when the process completes.
func (c *Client) CreateProcess(ctx context.Context, title, webhookURL string, p Person, contact Contact, correlationID string) (Process, error) {
	body := map[string]any{
		"title": title, "journeyId": c.cfg.JourneyID, "webhookUrl": webhookURL,
		"processEntities": []map[string]any{{
			"firstName": p.FirstName, "surname": p.Surname, "emailAddress": p.Email, "phoneNumber": p.Phone,
			"reference": p.Reference, "actorId": c.cfg.ActorID,
			"contactViaEmail": contact == ContactEmail, "contactViaSms": contact == ContactSMS, "inPerson": false,
		}},
	}
	raw, status, err := c.do(ctx, http.MethodPost, "/processes", body, correlationID)
	if err != nil {
		return Process{}, fmt.Errorf("%w: %v", ErrAmbiguous, err)
	}
	switch {
	case status >= 200 && status < 300:
	case status >= 400 && status < 500 && status != http.StatusRequestTimeout && status != http.StatusTooManyRequests:
		err := fmt.Errorf("%w: create process: status %d: %.300s", ErrRejected, status, raw)
		if f := personFields(raw); (status == http.StatusBadRequest || status == http.StatusUnprocessableEntity) && len(f) > 0 {
			return Process{}, &InvalidPersonError{Fields: f, err: err}
		}
		return Process{}, err
	default:
		return Process{}, fmt.Errorf("%w: create process: status %d: %.300s", ErrAmbiguous, status, raw)
	}
	var out struct {
		ID              string `json:"id"`
		ProcessID       string `json:"processId"`
		ProcessEntities []struct {
			ID       string `json:"id"`
			EntityID string `json:"entityId"`
		} `json:"processEntities"`
	}
	if err := json.Unmarshal(raw, &out); err != nil {
		return Process{}, fmt.Errorf("%w: create process: unexpected answer %.300s", ErrAmbiguous, raw)
	}
	pr := Process{ProcessID: first(out.ProcessID, out.ID)}
	if len(out.ProcessEntities) > 0 {
		pr.EntityID = first(out.ProcessEntities[0].EntityID, out.ProcessEntities[0].ID)
	}
	if pr.ProcessID == "" || pr.EntityID == "" {
		return Process{}, fmt.Errorf("%w: create process: no process or entity id in %.300s", ErrAmbiguous, raw)
	}
	return pr, nil
}

// MagicLink returns a fresh hosted link (valid 30 minutes) for the person.
func (c *Client) MagicLink(ctx context.Context, p Process, correlationID string) (string, error) {
	raw, err := c.get(ctx, "/processes/"+url.PathEscape(p.ProcessID)+"/entities/"+url.PathEscape(p.EntityID)+"/magic-link", correlationID)
	if err != nil {
		return "", err
	}
	var link string
	if json.Unmarshal(raw, &link) != nil {
		var obj struct {
			URL       string `json:"url"`
			MagicLink string `json:"magicLink"`
		}
		_ = json.Unmarshal(raw, &obj)
		link = first(obj.URL, obj.MagicLink)
	}
	if u, err := url.Parse(link); err != nil || u.Scheme != "https" {
		return "", fmt.Errorf("%w: magic link: unexpected answer %.200s", ErrUnavailable, raw)
	}
	return link, nil
}

// Outcome is a normalised result.
type Outcome string

// Outcomes. Pending means not finished yet.
const (
	Pending Outcome = "pending"
	Passed  Outcome = "passed"
	Refer   Outcome = "refer"
	Failed  Outcome = "failed"
	Expired Outcome = "expired"
	Error   Outcome = "error"
)

// Result reads the process and, once complete, the person's summary, and
// returns the normalised outcome with the raw documents for the record.
func (c *Client) Result(ctx context.Context, p Process, correlationID string) (Outcome, json.RawMessage, error) {
	details, err := c.get(ctx, "/processes/"+url.PathEscape(p.ProcessID)+"/details", correlationID)
	if err != nil {
		return "", nil, err
	}
	var d struct {
		Status            *int   `json:"status"`
		StatusDescription string `json:"statusDescription"`
	}
	if err := json.Unmarshal(details, &d); err != nil || d.Status == nil {
		return "", nil, fmt.Errorf("%w: process details: unexpected answer %.200s", ErrUnavailable, details)
	}
	switch *d.Status {
	case processComplete:
	case processExpired:
		return Expired, details, nil
	case processCancelled:
		return Error, details, nil
	default:
		return Pending, details, nil
	}
	summary, err := c.get(ctx, "/entities/"+url.PathEscape(p.EntityID)+"/summary", correlationID)
	if err != nil {
		return "", nil, err
	}
	var s struct {
		OverallResult json.RawMessage `json:"overallResult"`
	}
	_ = json.Unmarshal(summary, &s)
	out := overall(s.OverallResult)
	rec, _ := json.Marshal(map[string]json.RawMessage{"details": details, "summary": summary})
	return out, rec, nil
}

// Process status codes (Credas sends 2, Complete, in its process webhook).
const (
	processComplete  = 2
	processExpired   = 3
	processCancelled = 4
)

// overall maps the summary's overallResult, which is a name or a number.
func overall(raw json.RawMessage) Outcome {
	var name string
	if json.Unmarshal(raw, &name) == nil {
		switch strings.ToLower(strings.ReplaceAll(name, " ", "")) {
		case "pass", "passed", "autopass", "manualpass":
			return Passed
		case "refer", "referred", "manualrefer", "pendingmanualcheck":
			return Refer
		case "fail", "failed", "autofail", "manualfail":
			return Failed
		}
		return Error
	}
	var n int
	if json.Unmarshal(raw, &n) == nil {
		switch n { // as Credas' RTW/RTR result enum: 1 AutoPass, 2 AutoFail, 3 PendingManualCheck, 4 ManualPass, 5 ManualFail, 6 ManualRefer
		case 1, 4:
			return Passed
		case 2, 5:
			return Failed
		case 3, 6:
			return Refer
		}
	}
	return Error
}

func (c *Client) get(ctx context.Context, path, correlationID string) ([]byte, error) {
	raw, status, err := c.do(ctx, http.MethodGet, path, nil, correlationID)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	switch {
	case status == http.StatusOK:
		return raw, nil
	case status == http.StatusTooManyRequests || status >= 500:
		return nil, fmt.Errorf("%w: GET %s: status %d", ErrUnavailable, path, status)
	default:
		return nil, fmt.Errorf("%w: GET %s: status %d: %.200s", ErrRejected, path, status, raw)
	}
}

func (c *Client) do(ctx context.Context, method, path string, body any, correlationID string) ([]byte, int, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("X-API-KEY", c.cfg.APIKey)
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if correlationID != "" {
		req.Header.Set("X-Correlation-Id", correlationID)
	}
	res, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(res.Body, 4<<20))
	if err != nil {
		return nil, 0, err
	}
	return raw, res.StatusCode, nil
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
