package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/caarlos0/env/v11"
)

// Config is every setting of the gateway, read once from the environment at
// start-up. .env.example lists each variable with a comment.
type Config struct {
	Port     int    `env:"PORT" envDefault:"8080"`
	AppEnv   string `env:"APP_ENV" envDefault:"production"`
	LogLevel string `env:"LOG_LEVEL" envDefault:"info"`

	SupabaseURL        string        `env:"SUPABASE_URL,required,notEmpty"`
	SupabaseServiceKey string        `env:"SUPABASE_SERVICE_KEY,required,notEmpty"`
	SupabaseJWTSecret  string        `env:"SUPABASE_JWT_SECRET"`
	SupabaseJWTIssuer  string        `env:"SUPABASE_JWT_ISSUER"`
	SupabaseTimeout    time.Duration `env:"SUPABASE_TIMEOUT" envDefault:"10s"`
	// SupabaseMaxConns caps connections to PostgREST (0: no cap).
	SupabaseMaxConns int `env:"SUPABASE_MAX_CONNS" envDefault:"16"`

	InternalSecret     string   `env:"INTERNAL_SECRET"`
	CORSAllowedOrigins []string `env:"CORS_ALLOWED_ORIGINS" envSeparator:","`
	MaxBodyBytes       int64    `env:"MAX_BODY_BYTES" envDefault:"1048576"`
	// RequestTimeout is the deadline of a whole request; every outbound call inherits it.
	RequestTimeout time.Duration `env:"REQUEST_TIMEOUT" envDefault:"30s"`
	// InternalRequestTimeout is the deadline of /internal/* calls: a PCN
	// extraction or a scheduler sweep takes minutes, within Cloud Tasks' and
	// Cloud Scheduler's 5-minute attempt deadlines.
	InternalRequestTimeout time.Duration `env:"INTERNAL_REQUEST_TIMEOUT" envDefault:"280s"`
	GCPProjectID           string        `env:"GCP_PROJECT_ID"`

	// Rate limits (token buckets, per instance). 0 turns a limit off.
	RateLimitTenantPerSecond float64 `env:"RATE_LIMIT_TENANT_PER_SECOND" envDefault:"50"`
	RateLimitTenantBurst     int     `env:"RATE_LIMIT_TENANT_BURST" envDefault:"200"`
	RateLimitIPPerSecond     float64 `env:"RATE_LIMIT_IP_PER_SECOND" envDefault:"100"`
	RateLimitIPBurst         int     `env:"RATE_LIMIT_IP_BURST" envDefault:"400"`
	// TrustProxyHeaders takes the client IP from the last X-Forwarded-For entry
	// (set it behind Cloud Run's front end, never when clients reach the gateway directly).
	TrustProxyHeaders bool `env:"TRUST_PROXY_HEADERS" envDefault:"false"`
	// SupabaseJWTRequireIssuer refuses tokens without iss. Only development may
	// turn it off (load tests with minimal tokens); a wrong iss is always refused.
	SupabaseJWTRequireIssuer bool `env:"SUPABASE_JWT_REQUIRE_ISSUER" envDefault:"true"`

	// Documents (Google Cloud Storage). Without a key or a signer email the
	// document endpoints answer 503.
	GCSBucket             string        `env:"GCS_BUCKET" envDefault:"saas-rental-492618-documents"`
	GCSServiceAccountJSON string        `env:"GCS_SERVICE_ACCOUNT_JSON"`
	GCSSignerEmail        string        `env:"GCS_SIGNER_EMAIL"`
	GCSMaxUploadBytes     int64         `env:"GCS_MAX_UPLOAD_BYTES" envDefault:"20971520"`
	GCSUploadURLTTL       time.Duration `env:"GCS_UPLOAD_URL_TTL" envDefault:"15m"`
	GCSDownloadURLTTL     time.Duration `env:"GCS_DOWNLOAD_URL_TTL" envDefault:"5m"`

	// PCN scanning. Without GCP_PROJECT_ID jobs run in-process (development).
	TasksLocation       string        `env:"TASKS_LOCATION" envDefault:"europe-west2"`
	TasksQueue          string        `env:"TASKS_QUEUE" envDefault:"pcn-extract"`
	TasksTargetBaseURL  string        `env:"TASKS_TARGET_BASE_URL"`
	TasksServiceAccount string        `env:"TASKS_SERVICE_ACCOUNT"`
	LocalTaskWorkers    int           `env:"LOCAL_TASK_WORKERS" envDefault:"2"`
	AnthropicAPIKey     string        `env:"ANTHROPIC_API_KEY"`
	AnthropicModel      string        `env:"ANTHROPIC_MODEL" envDefault:"claude-sonnet-5-5"`
	AnthropicBaseURL    string        `env:"ANTHROPIC_BASE_URL"`
	AnthropicTimeout    time.Duration `env:"ANTHROPIC_TIMEOUT" envDefault:"90s"`
	AnthropicMaxRetries int           `env:"ANTHROPIC_MAX_RETRIES" envDefault:"1"`
	PCNMaxAttempts      int           `env:"PCN_MAX_ATTEMPTS" envDefault:"3"`
	PCNStuckAfter       time.Duration `env:"PCN_STUCK_AFTER" envDefault:"10m"`

	// DVLA Vehicle Enquiry Service. Without a key the vehicle endpoints answer 503.
	DVLAAPIKey      string        `env:"DVLA_VES_API_KEY"`
	DVLABaseURL     string        `env:"DVLA_VES_BASE_URL" envDefault:"https://driver-vehicle-licensing.api.gov.uk/vehicle-enquiry"`
	DVLATimeout     time.Duration `env:"DVLA_VES_TIMEOUT" envDefault:"10s"`
	DVLACacheTTL    time.Duration `env:"DVLA_VES_CACHE_TTL" envDefault:"24h"`
	DVLANotFoundTTL time.Duration `env:"DVLA_VES_NOT_FOUND_TTL" envDefault:"10m"`
	DVLARate        float64       `env:"DVLA_VES_RATE" envDefault:"2"`
	DVLABatch       int           `env:"DVLA_REFRESH_BATCH" envDefault:"500"`

	// Credas identity checks. Without a key the identity endpoints answer 503.
	CredasAPIKey         string        `env:"CREDAS_API_KEY"`
	CredasBaseURL        string        `env:"CREDAS_BASE_URL" envDefault:"https://portal.credas.com/api/v2/ci"`
	CredasJourneyID      string        `env:"CREDAS_JOURNEY_ID"`
	CredasActorID        int           `env:"CREDAS_ACTOR_ID"`
	CredasContactMode    string        `env:"CREDAS_CONTACT_MODE" envDefault:"email"`
	CredasWebhookBaseURL string        `env:"CREDAS_WEBHOOK_BASE_URL"`
	CredasPollAfter      time.Duration `env:"CREDAS_POLL_AFTER" envDefault:"6h"`
	CredasTimeout        time.Duration `env:"CREDAS_TIMEOUT" envDefault:"20s"`
}

// DocumentsEnabled reports whether GCS signing is configured.
func (c Config) DocumentsEnabled() bool {
	return c.GCSServiceAccountJSON != "" || c.GCSSignerEmail != ""
}

// Production reports whether the gateway runs in production mode, where
// missing secrets are fatal rather than disabling a feature.
func (c Config) Production() bool { return c.AppEnv == "production" }

// JWTIssuer is the issuer tokens must carry.
func (c Config) JWTIssuer() string {
	if c.SupabaseJWTIssuer != "" {
		return c.SupabaseJWTIssuer
	}
	return strings.TrimRight(c.SupabaseURL, "/") + "/auth/v1"
}

// JWKSURL is where Supabase Auth publishes its asymmetric signing keys.
func (c Config) JWKSURL() string {
	return strings.TrimRight(c.SupabaseURL, "/") + "/auth/v1/.well-known/jwks.json"
}

// LoadConfig reads the configuration from environ (os.Environ() as a map when
// nil) and validates it. The error names every missing or malformed variable.
func LoadConfig(environ map[string]string) (Config, error) {
	opts := env.Options{}
	if environ != nil {
		opts.Environment = environ
	}
	cfg, err := env.ParseAsWithOptions[Config](opts)
	var problems []string
	if err != nil {
		problems = append(problems, envProblems(err)...)
	}
	problems = append(problems, cfg.validate(err != nil)...)
	if len(problems) > 0 {
		return Config{}, fmt.Errorf("invalid configuration:\n  %s", strings.Join(problems, "\n  "))
	}
	return cfg, nil
}

func (c Config) validate(parseFailed bool) []string {
	var p []string
	if c.SupabaseURL != "" {
		u, err := url.Parse(c.SupabaseURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
			p = append(p, "SUPABASE_URL: must be the project URL, such as https://<ref>.supabase.co")
		}
	}
	if !parseFailed && (c.Port < 1 || c.Port > 65535) {
		p = append(p, "PORT: must be between 1 and 65535")
	}
	switch c.AppEnv {
	case "production", "development":
	default:
		p = append(p, "APP_ENV: must be production or development")
	}
	switch strings.ToLower(c.LogLevel) {
	case "debug", "info", "warn", "warning", "error":
	default:
		p = append(p, "LOG_LEVEL: must be debug, info, warn or error")
	}
	if c.SupabaseJWTSecret != "" && len(c.SupabaseJWTSecret) < 32 {
		p = append(p, "SUPABASE_JWT_SECRET: must be at least 32 characters (Supabase's legacy JWT secret)")
	}
	if c.InternalSecret == "" && c.Production() {
		p = append(p, "INTERNAL_SECRET: required in production (APP_ENV=production)")
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
	if !parseFailed && c.MaxBodyBytes < 1024 {
		p = append(p, "MAX_BODY_BYTES: must be at least 1024")
	}
	if !parseFailed && c.RequestTimeout <= 0 {
		p = append(p, "REQUEST_TIMEOUT: must be positive, such as 30s")
	}
	if !parseFailed && (c.InternalRequestTimeout <= 0 || c.InternalRequestTimeout > 30*time.Minute) {
		p = append(p, "INTERNAL_REQUEST_TIMEOUT: must be positive and at most 30m")
	}
	if c.GCSServiceAccountJSON != "" {
		var sa struct {
			ClientEmail string `json:"client_email"`
			PrivateKey  string `json:"private_key"`
		}
		if json.Unmarshal([]byte(c.GCSServiceAccountJSON), &sa) != nil || sa.ClientEmail == "" || sa.PrivateKey == "" {
			p = append(p, "GCS_SERVICE_ACCOUNT_JSON: must be a service-account key (JSON with client_email and private_key)")
		}
	}
	if !parseFailed && (c.GCSMaxUploadBytes < 1 || c.GCSMaxUploadBytes > 5<<30) {
		p = append(p, "GCS_MAX_UPLOAD_BYTES: must be between 1 and 5 GiB")
	}
	if !parseFailed && (c.GCSUploadURLTTL < time.Minute || c.GCSUploadURLTTL > 7*24*time.Hour) {
		p = append(p, "GCS_UPLOAD_URL_TTL: must be between 1m and 168h")
	}
	if !parseFailed && (c.GCSDownloadURLTTL < 10*time.Second || c.GCSDownloadURLTTL > 7*24*time.Hour) {
		p = append(p, "GCS_DOWNLOAD_URL_TTL: must be between 10s and 168h")
	}
	if c.GCPProjectID != "" {
		if u, err := url.Parse(c.TasksTargetBaseURL); c.TasksTargetBaseURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p = append(p, "TASKS_TARGET_BASE_URL: required with GCP_PROJECT_ID: the gateway's public URL, such as https://gateway-xyz.a.run.app")
		}
		if c.InternalSecret == "" {
			p = append(p, "INTERNAL_SECRET: required with GCP_PROJECT_ID (Cloud Tasks sends it)")
		}
	}
	if c.AnthropicBaseURL != "" {
		if u, err := url.Parse(c.AnthropicBaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p = append(p, "ANTHROPIC_BASE_URL: must be an http(s) URL")
		}
	}
	if !parseFailed && (c.PCNMaxAttempts < 1 || c.PCNMaxAttempts > 20) {
		p = append(p, "PCN_MAX_ATTEMPTS: must be between 1 and 20")
	}
	if !parseFailed && c.PCNStuckAfter < time.Minute {
		p = append(p, "PCN_STUCK_AFTER: must be at least 1m")
	}
	if !parseFailed && (c.LocalTaskWorkers < 1 || c.LocalTaskWorkers > 64) {
		p = append(p, "LOCAL_TASK_WORKERS: must be between 1 and 64")
	}
	if !parseFailed && (c.AnthropicMaxRetries < 0 || c.AnthropicMaxRetries > 5) {
		p = append(p, "ANTHROPIC_MAX_RETRIES: must be between 0 and 5")
	}
	if u, err := url.Parse(c.DVLABaseURL); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		p = append(p, "DVLA_VES_BASE_URL: must be an http(s) URL")
	}
	if !parseFailed && (c.DVLARate <= 0 || c.DVLARate > 50) {
		p = append(p, "DVLA_VES_RATE: must be above 0 and at most 50 lookups a second")
	}
	if !parseFailed && (c.DVLABatch < 1 || c.DVLABatch > 10000) {
		p = append(p, "DVLA_REFRESH_BATCH: must be between 1 and 10000")
	}
	if !parseFailed && (c.DVLATimeout <= 0 || c.DVLACacheTTL < 0 || c.DVLANotFoundTTL < 0) {
		p = append(p, "DVLA_VES_TIMEOUT, DVLA_VES_CACHE_TTL, DVLA_VES_NOT_FOUND_TTL: must be positive durations")
	}
	if c.CredasAPIKey != "" {
		if c.CredasJourneyID == "" {
			p = append(p, "CREDAS_JOURNEY_ID: required with CREDAS_API_KEY")
		}
		if c.CredasActorID <= 0 && !parseFailed {
			p = append(p, "CREDAS_ACTOR_ID: required with CREDAS_API_KEY (a positive number)")
		}
		if u, err := url.Parse(c.CredasWebhookBaseURL); c.CredasWebhookBaseURL == "" || err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			p = append(p, "CREDAS_WEBHOOK_BASE_URL: required with CREDAS_API_KEY: the gateway's public URL")
		}
		if u, err := url.Parse(c.CredasBaseURL); err != nil || u.Scheme == "" || u.Host == "" {
			p = append(p, "CREDAS_BASE_URL: must be an http(s) URL")
		}
	}
	switch c.CredasContactMode {
	case "email", "sms", "none":
	default:
		p = append(p, "CREDAS_CONTACT_MODE: must be email, sms or none")
	}
	if !parseFailed && c.CredasPollAfter < time.Minute {
		p = append(p, "CREDAS_POLL_AFTER: must be at least 1m")
	}
	if !c.SupabaseJWTRequireIssuer && c.Production() {
		p = append(p, "SUPABASE_JWT_REQUIRE_ISSUER: may only be false with APP_ENV=development")
	}
	if !parseFailed && (c.RateLimitTenantPerSecond < 0 || c.RateLimitIPPerSecond < 0 || c.RateLimitTenantBurst < 0 || c.RateLimitIPBurst < 0) {
		p = append(p, "RATE_LIMIT_*: must not be negative")
	}
	if !parseFailed && (c.SupabaseMaxConns < 0 || c.SupabaseMaxConns > 1024) {
		p = append(p, "SUPABASE_MAX_CONNS: must be between 0 (no cap) and 1024")
	}
	if !parseFailed && c.SupabaseTimeout <= 0 {
		p = append(p, "SUPABASE_TIMEOUT: must be positive, such as 10s")
	}
	return p
}

// envProblems turns env's aggregate error into one line per variable.
func envProblems(err error) []string {
	var agg env.AggregateError
	errs := []error{err}
	if errors.As(err, &agg) {
		errs = agg.Errors
	}
	keys := envKeys()
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
			p = append(p, fmt.Sprintf("%s: cannot be read as %s", keys[parse.Name], parse.Type))
		default:
			p = append(p, e.Error())
		}
	}
	return p
}

// envKeys maps Config field names to their variable names, for messages.
func envKeys() map[string]string {
	t := reflect.TypeFor[Config]()
	m := make(map[string]string, t.NumField())
	for i := range t.NumField() {
		f := t.Field(i)
		m[f.Name] = strings.Split(f.Tag.Get("env"), ",")[0]
	}
	return m
}
