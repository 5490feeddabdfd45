package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/labstack/echo/v5"
	"strings"
	"sync"
	"testing"
	"time"
)

func validEnv() map[string]string {
	return map[string]string{
		"SUPABASE_URL":         "https://proj.supabase.co",
		"SUPABASE_SERVICE_KEY": "sb_secret_x",
		"INTERNAL_SECRET":      strings.Repeat("s", 32),
	}
}

func TestLoadConfigDefaults(t *testing.T) {
	cfg, err := LoadConfig(validEnv())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Port != 8080 || cfg.MaxBodyBytes != 1<<20 || cfg.RequestTimeout != 30*time.Second || !cfg.Production() {
		t.Errorf("defaults: %+v", cfg)
	}
	if cfg.JWTIssuer() != "https://proj.supabase.co/auth/v1" || cfg.JWKSURL() != "https://proj.supabase.co/auth/v1/.well-known/jwks.json" {
		t.Errorf("issuer %q, jwks %q", cfg.JWTIssuer(), cfg.JWKSURL())
	}
}

func TestLoadConfigNamesEveryProblem(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		wants []string
	}{
		{"nothing set", map[string]string{}, []string{"SUPABASE_URL", "SUPABASE_SERVICE_KEY", "INTERNAL_SECRET"}},
		{"malformed values", map[string]string{
			"SUPABASE_URL": "proj.supabase.co/rest/v1", "SUPABASE_SERVICE_KEY": "k", "PORT": "eighty",
			"LOG_LEVEL": "loud", "SUPABASE_JWT_SECRET": "short", "INTERNAL_SECRET": "short",
			"CORS_ALLOWED_ORIGINS": "https://ok.example,not an origin", "REQUEST_TIMEOUT": "soon", "APP_ENV": "staging",
		}, []string{"SUPABASE_URL", "PORT", "LOG_LEVEL", "SUPABASE_JWT_SECRET", "INTERNAL_SECRET", "CORS_ALLOWED_ORIGINS", "REQUEST_TIMEOUT", "APP_ENV"}},
		{"port out of range", merge(validEnv(), map[string]string{"PORT": "70000"}), []string{"PORT"}},
		{"OIDC audience without service accounts", merge(validEnv(), map[string]string{"INTERNAL_OIDC_AUDIENCE": "https://gw.example"}), []string{"INTERNAL_OIDC_SERVICE_ACCOUNTS"}},
		{"OIDC service account not an email", merge(validEnv(), map[string]string{"INTERNAL_OIDC_AUDIENCE": "https://gw.example", "INTERNAL_OIDC_SERVICE_ACCOUNTS": "scheduler"}), []string{"INTERNAL_OIDC_SERVICE_ACCOUNTS"}},
		{"secret fallback without a secret", map[string]string{"SUPABASE_URL": "https://proj.supabase.co", "SUPABASE_SERVICE_KEY": "sb_secret_x",
			"INTERNAL_OIDC_AUDIENCE": "https://gw.example", "INTERNAL_OIDC_SERVICE_ACCOUNTS": "s@p.iam.gserviceaccount.com", "INTERNAL_SECRET_FALLBACK": "true"}, []string{"INTERNAL_SECRET"}},
		{"OIDC on but tasks without a token", merge(validEnv(), map[string]string{"GCP_PROJECT_ID": "proj", "TASKS_TARGET_BASE_URL": "https://gw.example",
			"INTERNAL_OIDC_AUDIENCE": "https://gw.example", "INTERNAL_OIDC_SERVICE_ACCOUNTS": "s@p.iam.gserviceaccount.com"}), []string{"TASKS_SERVICE_ACCOUNT"}},
		{"tasks' account not accepted", merge(validEnv(), map[string]string{"GCP_PROJECT_ID": "proj", "TASKS_TARGET_BASE_URL": "https://gw.example", "TASKS_SERVICE_ACCOUNT": "tasks@p.iam.gserviceaccount.com",
			"INTERNAL_OIDC_AUDIENCE": "https://gw.example", "INTERNAL_OIDC_SERVICE_ACCOUNTS": "s@p.iam.gserviceaccount.com"}), []string{"INTERNAL_OIDC_SERVICE_ACCOUNTS"}},
		{"telemetry addresses not host:port", merge(validEnv(), map[string]string{"TELEMETRY_OTLP_COLLECTOR": "collector", "TELEMETRY_METRICS_ADDR": "9464"}),
			[]string{"TELEMETRY_OTLP_COLLECTOR", "TELEMETRY_METRICS_ADDR"}},
		{"stuck-after not longer than the internal deadline", merge(validEnv(), map[string]string{"PCN_STUCK_AFTER": "5m", "INTERNAL_REQUEST_TIMEOUT": "5m"}), []string{"PCN_STUCK_AFTER"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadConfig(tc.env)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.wants {
				if !strings.Contains(err.Error(), w+":") {
					t.Errorf("error does not name %s:\n%v", w, err)
				}
			}
		})
	}
}

func TestInternalSecretOptionalInDevelopment(t *testing.T) {
	env := validEnv()
	delete(env, "INTERNAL_SECRET")
	env["APP_ENV"] = "development"
	if _, err := LoadConfig(env); err != nil {
		t.Fatal(err)
	}
}

// TestInternalSecretOptionalWithOIDC: production verifying OIDC tokens
// needs no static secret.
func TestInternalSecretOptionalWithOIDC(t *testing.T) {
	env := validEnv()
	delete(env, "INTERNAL_SECRET")
	env["INTERNAL_OIDC_AUDIENCE"] = "https://gw.example"
	env["INTERNAL_OIDC_SERVICE_ACCOUNTS"] = "scheduler@proj.iam.gserviceaccount.com, tasks@proj.iam.gserviceaccount.com"
	cfg, err := LoadConfig(env)
	if err != nil {
		t.Fatal(err)
	}
	if !cfg.Internal.OIDC() || len(cfg.Internal.ServiceAccounts) != 2 || cfg.Internal.SecretFallback {
		t.Errorf("internal callers %+v", cfg.Internal)
	}
}

func merge(a, b map[string]string) map[string]string {
	for k, v := range b {
		a[k] = v
	}
	return a
}

func TestLogWriter(t *testing.T) {
	var out strings.Builder
	var mu sync.Mutex
	w := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return out.Write(p) })
	lw := NewLogWriter(w, time.Hour)
	log := NewLogger(lw, "info")
	log.Info("one")
	mu.Lock()
	if out.Len() != 0 {
		t.Error("info line written at once")
	}
	mu.Unlock()
	log.Error("two")
	mu.Lock()
	if !strings.Contains(out.String(), `"message":"one"`) || !strings.Contains(out.String(), `"severity":"ERROR"`) {
		t.Errorf("an error line did not flush: %q", out.String())
	}
	mu.Unlock()
	log.Warn("three")
	_ = lw.Close()
	if !strings.Contains(out.String(), `"severity":"WARNING","message":"three"`) {
		t.Errorf("Close did not flush: %q", out.String())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestRecoverPanic(t *testing.T) {
	var logs strings.Builder
	log := NewLogger(&logs, "info")
	h := requestContext(log, "", time.Second, time.Second)(recoverPanic(func(c *echo.Context) error { panic("boom in handler") }))
	e := echo.New()
	e.HTTPErrorHandler = handleError
	rec := httptest.NewRecorder()
	c := e.NewContext(httptest.NewRequest(http.MethodGet, "/x", nil), rec)
	if err := h(c); err != nil {
		t.Fatal(err)
	}
	if rec.Code != 500 || strings.TrimSpace(rec.Body.String()) != `{"detail":"Internal server error"}` {
		t.Errorf("answer %d %s", rec.Code, rec.Body.String())
	}
	if !strings.Contains(logs.String(), "boom in handler") || !strings.Contains(logs.String(), `"stack"`) {
		t.Errorf("panic not logged with its stack: %s", logs.String())
	}
}

// Every variable keeps its name now that each module owns its section.
func TestLoadConfigReadsEveryVariable(t *testing.T) {
	sa := `{"client_email":"sa@p.iam.gserviceaccount.com","private_key":"k"}`
	cfg, err := LoadConfig(merge(validEnv(), map[string]string{
		"PORT": "9000", "APP_ENV": "development", "LOG_LEVEL": "warning", "CORS_ALLOWED_ORIGINS": "https://a.example",
		"MAX_BODY_BYTES": "2048", "REQUEST_TIMEOUT": "7s", "INTERNAL_REQUEST_TIMEOUT": "100s", "GCP_PROJECT_ID": "proj",
		"RATE_LIMIT_TENANT_PER_SECOND": "5", "RATE_LIMIT_TENANT_BURST": "6", "RATE_LIMIT_IP_PER_SECOND": "7", "RATE_LIMIT_IP_BURST": "8",
		"TRUST_PROXY_HEADERS": "true",
		"SUPABASE_JWT_SECRET": strings.Repeat("j", 32), "SUPABASE_JWT_ISSUER": "https://iss.example", "SUPABASE_TIMEOUT": "3s",
		"SUPABASE_MAX_CONNS": "4", "SUPABASE_JWT_REQUIRE_ISSUER": "false",
		"GCS_BUCKET": "b", "GCS_SERVICE_ACCOUNT_JSON": sa, "GCS_SIGNER_EMAIL": "s@x", "GCS_MAX_UPLOAD_BYTES": "100",
		"GCS_UPLOAD_URL_TTL": "2m", "GCS_DOWNLOAD_URL_TTL": "20s",
		"TASKS_LOCATION": "loc", "TASKS_QUEUE": "q", "TASKS_TARGET_BASE_URL": "https://gw.example", "TASKS_SERVICE_ACCOUNT": "t@x",
		"LOCAL_TASK_WORKERS": "3",
		"ANTHROPIC_API_KEY":  "ak", "ANTHROPIC_MODEL": "m", "ANTHROPIC_BASE_URL": "https://an.example", "ANTHROPIC_TIMEOUT": "9s",
		"ANTHROPIC_MAX_RETRIES": "2", "PCN_MAX_ATTEMPTS": "4", "PCN_STUCK_AFTER": "11m",
		"DVLA_VES_API_KEY": "dk", "DVLA_VES_BASE_URL": "https://dvla.example", "DVLA_VES_TIMEOUT": "4s", "DVLA_VES_CACHE_TTL": "1h",
		"DVLA_VES_NOT_FOUND_TTL": "2m", "DVLA_VES_RATE": "3", "DVLA_REFRESH_BATCH": "50",
		"CREDAS_API_KEY": "ck", "CREDAS_BASE_URL": "https://credas.example", "CREDAS_JOURNEY_ID": "j", "CREDAS_ACTOR_ID": "5",
		"CREDAS_CONTACT_MODE": "sms", "CREDAS_WEBHOOK_BASE_URL": "https://gw.example", "CREDAS_POLL_AFTER": "2h", "CREDAS_TIMEOUT": "6s",
	}))
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprintf("%d %s %s %v %d %s %s %s %g %d %g %d %t|%s %s %s %d %t|%s %s %s %d %s %s|%s %s %s %s %s %s %d|%s %s %s %s %d %d %s|%s %s %s %s %s %g %d|%s %s %s %d %s %s %s %s",
		cfg.Port, cfg.AppEnv, cfg.LogLevel, cfg.CORSAllowedOrigins, cfg.MaxBodyBytes, cfg.RequestTimeout, cfg.InternalRequestTimeout, cfg.GCPProjectID,
		cfg.RateLimitTenantPerSecond, cfg.RateLimitTenantBurst, cfg.RateLimitIPPerSecond, cfg.RateLimitIPBurst, cfg.TrustProxyHeaders,
		cfg.Supabase.JWTSecret[:1], cfg.Supabase.JWTIssuer, cfg.Supabase.Timeout, cfg.Supabase.MaxConns, cfg.Supabase.JWTRequireIssuer,
		cfg.GCS.Bucket, cfg.GCS.ServiceAccountJSON[:1], cfg.GCS.SignerEmail, cfg.GCS.MaxUploadBytes, cfg.GCS.UploadURLTTL, cfg.GCS.DownloadURLTTL,
		cfg.Tasks.ProjectID, cfg.Tasks.Location, cfg.Tasks.Queue, cfg.Tasks.TargetBaseURL, cfg.Tasks.ServiceAccount, cfg.Tasks.InternalSecret[:1], cfg.Tasks.LocalWorkers,
		cfg.Claude.APIKey, cfg.Claude.Model, cfg.Claude.BaseURL, cfg.Claude.Timeout, cfg.Claude.MaxRetries, cfg.PCN.MaxAttempts, cfg.PCN.StuckAfter,
		cfg.DVLA.APIKey, cfg.DVLA.BaseURL, cfg.DVLA.Timeout, cfg.DVLA.CacheTTL, cfg.DVLA.NotFoundTTL, cfg.Fleet.Rate, cfg.Fleet.Batch,
		cfg.Credas.APIKey, cfg.Credas.BaseURL, cfg.Credas.JourneyID, cfg.Credas.ActorID, cfg.Identity.DefaultContact, cfg.Identity.WebhookBaseURL, cfg.Identity.PollAfter, cfg.Credas.Timeout)
	want := "9000 development warning [https://a.example] 2048 7s 1m40s proj 5 6 7 8 true|j https://iss.example 3s 4 false|" +
		"b { s@x 100 2m0s 20s|proj loc q https://gw.example t@x s 3|ak m https://an.example 9s 2 4 11m0s|" +
		"dk https://dvla.example 4s 1h0m0s 2m0s 3 50|ck https://credas.example j 5 sms https://gw.example 2h0m0s 6s"
	if got != want {
		t.Errorf("read\n %s\nwant\n %s", got, want)
	}
}

// A malformed value in a module's section is named by its full variable,
// once, and the range checks of the other sections still run.
func TestLoadConfigSectionProblems(t *testing.T) {
	_, err := LoadConfig(merge(validEnv(), map[string]string{
		"DVLA_VES_TIMEOUT": "soon", "CREDAS_TIMEOUT": "later", "PCN_MAX_ATTEMPTS": "99", "GCS_UPLOAD_URL_TTL": "1s",
		"CREDAS_API_KEY": "k", "CREDAS_ACTOR_ID": "x",
	}))
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	for _, w := range []string{"DVLA_VES_TIMEOUT: cannot be read", "CREDAS_TIMEOUT: cannot be read", "PCN_MAX_ATTEMPTS: must be between",
		"GCS_UPLOAD_URL_TTL: must be between", "CREDAS_ACTOR_ID: cannot be read", "CREDAS_JOURNEY_ID: required", "CREDAS_WEBHOOK_BASE_URL: required"} {
		if !strings.Contains(msg, w) {
			t.Errorf("error does not say %q:\n%s", w, msg)
		}
	}
	if strings.Count(msg, "DVLA_VES_TIMEOUT") != 1 || strings.Count(msg, "CREDAS_ACTOR_ID") != 1 {
		t.Errorf("an unreadable variable is reported twice:\n%s", msg)
	}
}
