// Package internalauth authenticates the callers of the internal endpoints:
// Cloud Tasks and Cloud Scheduler, by the Google-signed OIDC token they send
// for a configured service account, or by the static shared secret, which
// stays for development and as an explicit fallback.
package internalauth

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"strings"
	"time"

	"google.golang.org/api/idtoken"
	"google.golang.org/api/option"
)

// Errors of Authenticate.
var (
	// ErrNotConfigured: neither OIDC nor a secret is set; nobody is let in.
	ErrNotConfigured = errors.New("internalauth: no OIDC audience and no secret configured")
	// ErrRefused: the caller is not one of the configured callers.
	ErrRefused = errors.New("internalauth: caller refused")
)

// Config of the internal callers. The env tags are relative to the
// INTERNAL_ prefix the gateway's configuration gives this section; the
// secret itself is INTERNAL_SECRET (read by the HTTP edge and the task
// queue, which sends it).
type Config struct {
	// Audience is the `aud` the callers' OIDC tokens must carry: the
	// audience given to Cloud Tasks and Cloud Scheduler (the gateway's URL).
	// Empty turns OIDC off.
	Audience string `env:"OIDC_AUDIENCE"`
	// ServiceAccounts are the emails whose tokens are accepted.
	ServiceAccounts []string `env:"OIDC_SERVICE_ACCOUNTS" envSeparator:","`
	// SecretFallback also accepts X-Internal-Secret while OIDC is on (for a
	// migration from the secret, or a caller that cannot send a token).
	SecretFallback bool `env:"SECRET_FALLBACK" envDefault:"false"`
	// CertsTimeout bounds one fetch of Google's signing certificates; zero means 10 s.
	CertsTimeout time.Duration
}

// OIDC reports whether tokens are checked.
func (c Config) OIDC() bool { return c.Audience != "" }

// Validate names each bad setting, one error per variable (keys without the prefix).
func (c Config) Validate() error {
	var p []error
	if c.Audience != "" && len(c.ServiceAccounts) == 0 {
		p = append(p, errors.New("OIDC_SERVICE_ACCOUNTS: required with INTERNAL_OIDC_AUDIENCE: the service accounts Cloud Tasks and Cloud Scheduler sign as"))
	}
	if c.Audience == "" && len(c.ServiceAccounts) > 0 {
		p = append(p, errors.New("OIDC_AUDIENCE: required with INTERNAL_OIDC_SERVICE_ACCOUNTS: the audience the tokens carry (the gateway's URL)"))
	}
	for _, e := range c.ServiceAccounts {
		if a, err := mail.ParseAddress(strings.TrimSpace(e)); err != nil || a.Address != strings.TrimSpace(e) {
			p = append(p, fmt.Errorf("OIDC_SERVICE_ACCOUNTS: %q is not an email address", e))
		}
	}
	if c.SecretFallback && c.Audience == "" {
		p = append(p, errors.New("SECRET_FALLBACK: only meaningful with INTERNAL_OIDC_AUDIENCE (without it the secret is the only way in)"))
	}
	return errors.Join(p...)
}

// googleIssuers are the issuers of Google-signed ID tokens. Google's
// library checks signature, audience and expiry only.
var googleIssuers = map[string]bool{"accounts.google.com": true, "https://accounts.google.com": true}

// Authenticator checks internal callers. It is safe for concurrent use.
type Authenticator struct {
	cfg       Config
	secret    string
	validator *idtoken.Validator
	emails    map[string]bool
}

// New builds an authenticator; Google's certificates are fetched (and
// cached as their Cache-Control says) over hc, nil meaning a default client.
func New(ctx context.Context, cfg Config, secret string, hc *http.Client) (*Authenticator, error) {
	a := &Authenticator{cfg: cfg, secret: secret, emails: map[string]bool{}}
	if !cfg.OIDC() {
		return a, nil
	}
	if hc == nil {
		hc = &http.Client{}
	}
	timeout := cfg.CertsTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	hc = &http.Client{Transport: hc.Transport, Timeout: timeout}
	v, err := idtoken.NewValidator(ctx, option.WithHTTPClient(hc))
	if err != nil {
		return nil, fmt.Errorf("internalauth: %w", err)
	}
	a.validator = v
	for _, e := range cfg.ServiceAccounts {
		a.emails[strings.ToLower(strings.TrimSpace(e))] = true
	}
	return a, nil
}

// Authenticate lets r in, or says why not (wrapping ErrRefused or
// ErrNotConfigured; the reason is for the log only). With OIDC on, a
// bearer token is required unless the secret fallback is on; without OIDC,
// the secret is.
func (a *Authenticator) Authenticate(r *http.Request) error {
	secretOK := a.secret != "" && (!a.cfg.OIDC() || a.cfg.SecretFallback)
	if !a.cfg.OIDC() && !secretOK {
		return ErrNotConfigured
	}
	refused := fmt.Errorf("%w: no bearer token", ErrRefused)
	if a.cfg.OIDC() {
		if token, ok := bearer(r); ok {
			refused = a.checkToken(r.Context(), token)
			if refused == nil {
				return nil
			}
		}
	}
	if secretOK {
		got := r.Header.Get("X-Internal-Secret")
		if got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(a.secret)) == 1 {
			return nil
		}
		if !a.cfg.OIDC() {
			refused = fmt.Errorf("%w: wrong or missing X-Internal-Secret", ErrRefused)
		}
	}
	return refused
}

func (a *Authenticator) checkToken(ctx context.Context, token string) error {
	p, err := a.validator.Validate(ctx, token, a.cfg.Audience)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrRefused, err)
	}
	if !googleIssuers[p.Issuer] {
		return fmt.Errorf("%w: issuer %q is not Google", ErrRefused, p.Issuer)
	}
	email, _ := p.Claims["email"].(string)
	if !a.emails[strings.ToLower(email)] {
		return fmt.Errorf("%w: email %q is not an allowed service account", ErrRefused, email)
	}
	if verified, _ := p.Claims["email_verified"].(bool); !verified {
		return fmt.Errorf("%w: email %q is not verified", ErrRefused, email)
	}
	return nil
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "Bearer ") {
		return "", false
	}
	t := strings.TrimSpace(h[7:])
	return t, t != ""
}
