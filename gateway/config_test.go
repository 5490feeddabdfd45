package gateway

import (
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
