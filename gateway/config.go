package gateway

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"

	"github.com/fleetpilot/gateway/gateway/clients/claude"
	"github.com/fleetpilot/gateway/gateway/clients/credas"
	"github.com/fleetpilot/gateway/gateway/clients/dvla"
	"github.com/fleetpilot/gateway/gateway/clients/gcs"
	"github.com/fleetpilot/gateway/gateway/clients/tasks"
	"github.com/fleetpilot/gateway/gateway/domain/fleet"
	"github.com/fleetpilot/gateway/gateway/domain/identity"
	"github.com/fleetpilot/gateway/gateway/domain/pcn"
	"github.com/fleetpilot/gateway/gateway/internalauth"
	"github.com/fleetpilot/gateway/gateway/telemetry"
	"github.com/fleetpilot/gateway/supabase"
)

// Config is every setting of the gateway, read once from the environment at
// start-up. The HTTP edge's own settings are the top-level fields; each
// module owns its section (its Config type: env tags, defaults, Validate),
// read under the envPrefix written here. .env.example lists each variable.
type Config struct {
	Port     int    `env:"PORT" envDefault:"8080"`
	AppEnv   string `env:"APP_ENV" envDefault:"production"`
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`

	InternalSecret     string   `env:"INTERNAL_SECRET"`
	CORSAllowedOrigins []string `env:"CORS_ALLOWED_ORIGINS" envSeparator:","`
	MaxBodyBytes       int64    `env:"MAX_BODY_BYTES" envDefault:"1048576"`
	// RequestTimeout is the deadline of a whole request; every outbound call inherits it.
	RequestTimeout time.Duration `env:"REQUEST_TIMEOUT" envDefault:"30s"`
	// InternalRequestTimeout is the deadline of /internal/* calls: a PCN
	// extraction or a scheduler sweep takes minutes, within Cloud Tasks' and
	// Cloud Scheduler's 5-minute attempt deadlines.
	InternalRequestTimeout time.Duration `env:"INTERNAL_REQUEST_TIMEOUT" envDefault:"280s"`
	// GCPProjectID names the project in log trace fields (Tasks reads it too).
	GCPProjectID string `env:"GCP_PROJECT_ID"`

	// Rate limits (token buckets, per instance). 0 turns a limit off.
	RateLimitTenantPerSecond float64 `env:"RATE_LIMIT_TENANT_PER_SECOND" envDefault:"50"`
	RateLimitTenantBurst     int     `env:"RATE_LIMIT_TENANT_BURST" envDefault:"200"`
	RateLimitIPPerSecond     float64 `env:"RATE_LIMIT_IP_PER_SECOND" envDefault:"100"`
	RateLimitIPBurst         int     `env:"RATE_LIMIT_IP_BURST" envDefault:"400"`
	// TrustProxyHeaders takes the client IP from the last X-Forwarded-For entry
	// (set it behind Cloud Run's front end, never when clients reach the gateway directly).
	TrustProxyHeaders bool `env:"TRUST_PROXY_HEADERS" envDefault:"false"`

	// Module sections. env:"-" keeps the library from reading them with the
	// edge's fields: LoadConfig reads each on its own under its envPrefix, so
	// that a malformed value is reported under its full variable name.

	// Supabase: PostgREST and token verification (SUPABASE_*).
	Supabase supabase.Config `env:"-" envPrefix:"SUPABASE_"`
	// GCS: documents. Without a key or a signer email the document endpoints answer 503.
	GCS gcs.Config `env:"-" envPrefix:"GCS_"`
	// Tasks: PCN jobs on Cloud Tasks; without GCP_PROJECT_ID they run in-process.
	Tasks tasks.Config `env:"-" envPrefix:""`
	// Claude: PCN extraction (ANTHROPIC_*).
	Claude claude.Config `env:"-" envPrefix:"ANTHROPIC_"`
	// PCN: the scanning pipeline (PCN_*).
	PCN pcn.Config `env:"-" envPrefix:"PCN_"`
	// DVLA: Vehicle Enquiry Service lookups (DVLA_VES_*). Without a key the vehicle endpoints answer 503.
	DVLA dvla.Config `env:"-" envPrefix:"DVLA_VES_"`
	// Fleet: the daily vehicle refresh (DVLA_VES_RATE, DVLA_REFRESH_BATCH).
	Fleet fleet.Config `env:"-" envPrefix:""`
	// Credas: identity checks (CREDAS_*). Without a key the identity endpoints answer 503.
	Credas credas.Config `env:"-" envPrefix:"CREDAS_"`
	// Identity: the identity-check flow (CREDAS_WEBHOOK_BASE_URL, CREDAS_CONTACT_MODE, CREDAS_POLL_AFTER).
	Identity identity.Config `env:"-" envPrefix:"CREDAS_"`
	// Internal: who may call /internal/* (INTERNAL_OIDC_*, INTERNAL_SECRET_FALLBACK).
	Internal internalauth.Config `env:"-" envPrefix:"INTERNAL_"`
	// Telemetry: OpenTelemetry traces and metrics (TELEMETRY_*); see docs/observability.md.
	Telemetry telemetry.Config `env:"-" envPrefix:"TELEMETRY_"`
}

// DocumentsEnabled reports whether GCS signing is configured.
func (c Config) DocumentsEnabled() bool { return c.GCS.Enabled() }

// Production reports whether the gateway runs in production mode, where
// missing secrets are fatal rather than disabling a feature.
func (c Config) Production() bool { return c.AppEnv == "production" }

// JWTIssuer is the issuer tokens must carry.
func (c Config) JWTIssuer() string { return c.Supabase.Issuer() }

// JWKSURL is where Supabase Auth publishes its asymmetric signing keys.
func (c Config) JWKSURL() string { return c.Supabase.JWKSURL() }

// section is one module's part of the configuration.
type section struct {
	prefix string
	ptr    any // pointer to the module's Config
}

func (c *Config) sections() []section {
	v := reflect.ValueOf(c).Elem()
	t := v.Type()
	var s []section
	for i := range t.NumField() {
		f := t.Field(i)
		if prefix, ok := f.Tag.Lookup("envPrefix"); ok {
			s = append(s, section{prefix, v.Field(i).Addr().Interface()})
		}
	}
	return s
}

// LoadConfig reads the configuration from environ (os.Environ() as a map when
// nil) and validates it. The error names every missing or malformed variable.
func LoadConfig(environ map[string]string) (Config, error) {
	opts := env.Options{}
	if environ != nil {
		opts.Environment = environ
	}
	var cfg Config
	var problems []string
	parse := func(ptr any, prefix string) {
		o := opts
		o.Prefix = prefix
		if err := env.ParseWithOptions(ptr, o); err != nil {
			problems = append(problems, envProblems(err, reflect.TypeOf(ptr).Elem(), prefix)...)
		}
	}
	parse(&cfg, "")
	for _, s := range cfg.sections() {
		parse(s.ptr, s.prefix)
	}
	// A value that could not be read is reported once, as unreadable, not
	// again by the range checks that see its zero value.
	unreadable := map[string]bool{}
	for _, p := range problems {
		unreadable[problemKey(p)] = true
	}
	for _, p := range lines(cfg.Validate()) {
		if !unreadable[problemKey(p)] {
			problems = append(problems, p)
		}
	}
	if len(problems) > 0 {
		return Config{}, fmt.Errorf("invalid configuration:\n  %s", strings.Join(problems, "\n  "))
	}
	return cfg, nil
}

// Validate checks the edge's settings, every section (its problems prefixed
// with the section's envPrefix) and the few rules that span sections. Each
// line of the error names one variable.
func (c Config) Validate() error {
	var p []string
	if c.Port < 1 || c.Port > 65535 {
		p = append(p, "PORT: must be between 1 and 65535")
	}
	switch c.AppEnv {
	case "production", "development":
	default:
		p = append(p, "APP_ENV: must be production or development")
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		p = append(p, "LOG_LEVEL: must be debug, info, warn or error")
	}
	if c.InternalSecret == "" && !c.Internal.OIDC() && c.Production() {
		p = append(p, "INTERNAL_SECRET: required in production (APP_ENV=production) unless INTERNAL_OIDC_AUDIENCE is set")
	}
	if c.Internal.OIDC() && c.Tasks.ProjectID != "" {
		// Tasks must carry a token the gateway accepts: with OIDC on, the
		// secret is no longer taken from them.
		switch {
		case c.Tasks.ServiceAccount == "":
			p = append(p, "TASKS_SERVICE_ACCOUNT: required with GCP_PROJECT_ID and INTERNAL_OIDC_AUDIENCE (tasks authenticate with its OIDC token)")
		case !slices.ContainsFunc(c.Internal.ServiceAccounts, func(e string) bool { return strings.EqualFold(strings.TrimSpace(e), c.Tasks.ServiceAccount) }):
			p = append(p, "INTERNAL_OIDC_SERVICE_ACCOUNTS: must include TASKS_SERVICE_ACCOUNT, whose tokens Cloud Tasks sends")
		}
	}
	if c.InternalSecret == "" && c.Internal.SecretFallback {
		p = append(p, "INTERNAL_SECRET: required with INTERNAL_SECRET_FALLBACK=true")
	}
	if c.InternalSecret != "" && len(c.InternalSecret) < 32 {
		p = append(p, "INTERNAL_SECRET: must be at least 32 characters")
	}
	for _, o := range c.CORSAllowedOrigins {
		u, err := url.Parse(strings.TrimSpace(o))
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			p = append(p, fmt.Sprintf("CORS_ALLOWED_ORIGINS: %q is not an origin such as https://app.example.com", o))
		}
	}
	if c.MaxBodyBytes < 1024 {
		p = append(p, "MAX_BODY_BYTES: must be at least 1024")
	}
	if c.RequestTimeout <= 0 {
		p = append(p, "REQUEST_TIMEOUT: must be positive, such as 30s")
	}
	if c.InternalRequestTimeout <= 0 || c.InternalRequestTimeout > 30*time.Minute {
		p = append(p, "INTERNAL_REQUEST_TIMEOUT: must be positive and at most 30m")
	}
	for key, v := range map[string]float64{
		"RATE_LIMIT_TENANT_PER_SECOND": c.RateLimitTenantPerSecond, "RATE_LIMIT_TENANT_BURST": float64(c.RateLimitTenantBurst),
		"RATE_LIMIT_IP_PER_SECOND": c.RateLimitIPPerSecond, "RATE_LIMIT_IP_BURST": float64(c.RateLimitIPBurst),
	} {
		if v < 0 {
			p = append(p, key+": must not be negative")
		}
	}
	for _, s := range c.sections() {
		for _, line := range lines(s.ptr.(interface{ Validate() error }).Validate()) {
			p = append(p, s.prefix+line)
		}
	}
	// Rules across sections.
	if c.PCN.StuckAfter <= c.InternalRequestTimeout {
		// A delivery may legitimately run for INTERNAL_REQUEST_TIMEOUT; taking
		// its job back sooner would hand the job to a second delivery while
		// the first still works on it.
		p = append(p, "PCN_STUCK_AFTER: must be longer than INTERNAL_REQUEST_TIMEOUT")
	}
	if _, port, err := net.SplitHostPort(c.Telemetry.MetricsAddr); err == nil && port == strconv.Itoa(c.Port) {
		p = append(p, "TELEMETRY_METRICS_ADDR: must not be the API's PORT: the scrape stays off the public port")
	}
	if !c.Supabase.JWTRequireIssuer && c.Production() {
		p = append(p, "SUPABASE_JWT_REQUIRE_ISSUER: may only be false with APP_ENV=development")
	}
	if c.Credas.APIKey != "" {
		if u, err := url.Parse(c.Identity.WebhookBaseURL); c.Identity.WebhookBaseURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p = append(p, "CREDAS_WEBHOOK_BASE_URL: required with CREDAS_API_KEY: the gateway's public URL")
		}
	}
	if len(p) == 0 {
		return nil
	}
	return errors.New(strings.Join(p, "\n"))
}

// lines splits a joined validation error into its one-variable lines.
func lines(err error) []string {
	if err == nil {
		return nil
	}
	return strings.Split(err.Error(), "\n")
}

// problemKey is the variable a problem line names ("KEY: ...").
func problemKey(line string) string {
	k, _, _ := strings.Cut(line, ":")
	return k
}

// envProblems turns env's aggregate error into one line per variable; t is
// the struct read under prefix, to name a field that could not be parsed.
func envProblems(err error, t reflect.Type, prefix string) []string {
	var agg env.AggregateError
	errs := []error{err}
	if errors.As(err, &agg) {
		errs = agg.Errors
	}
	var p []string
	for _, e := range errs {
		var notSet env.VarIsNotSetError
		var empty env.EmptyVarError
		var parse env.ParseError
		switch {
		case errors.As(e, &notSet):
			p = append(p, notSet.Key+": required but not set")
		case errors.As(e, &empty):
			p = append(p, empty.Key+": required but empty")
		case errors.As(e, &parse):
			key := parse.Name
			if f, ok := t.FieldByName(parse.Name); ok {
				key = prefix + strings.Split(f.Tag.Get("env"), ",")[0]
			}
			p = append(p, fmt.Sprintf("%s: cannot be read as %s", key, parse.Type))
		default:
			p = append(p, e.Error())
		}
	}
	return p
}
