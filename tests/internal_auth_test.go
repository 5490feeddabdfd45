package tests

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jarcoal/httpmock"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/internalauth"
)

const (
	// googleCertsURL is where Google publishes the keys of its OIDC tokens
	// (idtoken reads it; the mock transport answers it here).
	googleCertsURL = "https://www.googleapis.com/oauth2/v3/certs"
	schedulerSA    = "scheduler@proj.iam.gserviceaccount.com"
	internalAud    = "https://gw.example"
)

// googleKey is a stand-in for one of Google's OIDC signing keys.
type googleKey struct {
	key *rsa.PrivateKey
	kid string
}

func newGoogleKey(t *testing.T, kid string) googleKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return googleKey{key: k, kid: kid}
}

// serve publishes the key where Google publishes its certificates.
func (g googleKey) serve(u *upstream) {
	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "RSA", "alg": "RS256", "use": "sig", "kid": g.kid,
		"n": base64.RawURLEncoding.EncodeToString(g.key.N.Bytes()),
		"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(g.key.E)).Bytes()),
	}}})
	u.mt.RegisterResponder(http.MethodGet, googleCertsURL, func(r *http.Request) (*http.Response, error) {
		u.record(r)
		resp := httpmock.NewBytesResponse(200, jwks)
		resp.Header.Set("Cache-Control", "public, max-age=3600")
		return resp, nil
	})
}

// token is an ID token as Cloud Scheduler sends it, changed by edit.
func (g googleKey) token(t *testing.T, edit func(jwt.MapClaims)) string {
	t.Helper()
	now := time.Now()
	c := jwt.MapClaims{
		"iss": "https://accounts.google.com", "aud": internalAud, "azp": "1234567890",
		"email": schedulerSA, "email_verified": true, "sub": "1234567890",
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
	}
	if edit != nil {
		edit(c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = g.kid
	s, err := tok.SignedString(g.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestInternalOIDC: the internal endpoints take Google-signed OIDC tokens
// of the configured service accounts for the configured audience, checking
// issuer, email and email_verified beyond Google's library; the static
// secret only as the explicit fallback.
func TestInternalOIDC(t *testing.T) {
	google := newGoogleKey(t, "google-1")
	impostor := newGoogleKey(t, "google-1") // same key id, another key
	tests := []struct {
		name     string
		fallback bool
		auth     func(t *testing.T) (bearer, secret string)
		want     int
		reason   string
	}{
		{"good token", false, func(t *testing.T) (string, string) { return google.token(t, nil), "" }, 200, ""},
		{"issuer without scheme", false, func(t *testing.T) (string, string) {
			return google.token(t, func(c jwt.MapClaims) { c["iss"] = "accounts.google.com" }), ""
		}, 200, ""},
		{"wrong audience", false, func(t *testing.T) (string, string) {
			return google.token(t, func(c jwt.MapClaims) { c["aud"] = "https://other.example" }), ""
		}, 403, "audience"},
		{"wrong email", false, func(t *testing.T) (string, string) {
			return google.token(t, func(c jwt.MapClaims) { c["email"] = "someone@proj.iam.gserviceaccount.com" }), ""
		}, 403, "not an allowed service account"},
		{"email not verified", false, func(t *testing.T) (string, string) {
			return google.token(t, func(c jwt.MapClaims) { c["email_verified"] = false }), ""
		}, 403, "not verified"},
		{"no email", false, func(t *testing.T) (string, string) {
			return google.token(t, func(c jwt.MapClaims) { delete(c, "email") }), ""
		}, 403, "not an allowed service account"},
		{"issuer not Google", false, func(t *testing.T) (string, string) {
			return google.token(t, func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }), ""
		}, 403, "issuer"},
		{"expired", false, func(t *testing.T) (string, string) {
			return google.token(t, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), ""
		}, 403, "expired"},
		{"signed by another key", false, func(t *testing.T) (string, string) { return impostor.token(t, nil), "" }, 403, "verification error"},
		{"secret without fallback", false, func(t *testing.T) (string, string) { return "", internalKey }, 403, "no bearer token"},
		{"nothing", false, func(t *testing.T) (string, string) { return "", "" }, 403, "no bearer token"},
		{"secret as the explicit fallback", true, func(t *testing.T) (string, string) { return "", internalKey }, 200, ""},
		{"fallback with a wrong token and a wrong secret", true, func(t *testing.T) (string, string) {
			return google.token(t, func(c jwt.MapClaims) { c["aud"] = "x" }), "wrong-secret-wrong-secret-wrong-secret"
		}, 403, "audience"},
		{"fallback does not excuse a bad token with no secret", true, func(t *testing.T) (string, string) {
			return google.token(t, func(c jwt.MapClaims) { c["email_verified"] = false }), ""
		}, 403, "not verified"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, logs := newApp(t, appOpts{mutate: func(c *gateway.Config) {
				c.Internal = internalauth.Config{Audience: internalAud, ServiceAccounts: []string{"other@proj.iam.gserviceaccount.com", schedulerSA}, SecretFallback: tc.fallback}
			}})
			google.serve(up)
			up.on(http.MethodDelete, "idempotency_keys", 200, `[{"id":"k1"}]`)
			bearer, secret := tc.auth(t)
			req, _ := http.NewRequest(http.MethodPost, "/internal/jobs/idempotency-sweep", nil)
			if bearer != "" {
				req.Header.Set("Authorization", "Bearer "+bearer)
			}
			if secret != "" {
				req.Header.Set("X-Internal-Secret", secret)
			}
			rec := newRecorder()
			e.ServeHTTP(rec, req)
			wantStatus(t, rec, tc.want)
			deleted := count(up, http.MethodDelete, "/rest/v1/idempotency_keys")
			if tc.want == 200 {
				wantJSON(t, rec, `{"deleted":1}`)
				return
			}
			wantJSON(t, rec, `{"detail":"Forbidden"}`)
			if deleted != 0 {
				t.Error("a refused caller reached the sweep")
			}
			if !strings.Contains(logs.String(), "internal caller refused") || !strings.Contains(logs.String(), tc.reason) {
				t.Errorf("reason %q not logged: %s", tc.reason, logs)
			}
		})
	}
}

// TestInternalOIDCCertsCached: Google's certificates are fetched once and
// kept as their Cache-Control says, not on every call.
func TestInternalOIDCCertsCached(t *testing.T) {
	google := newGoogleKey(t, "google-1")
	e, up, _ := newApp(t, appOpts{mutate: func(c *gateway.Config) {
		c.Internal = internalauth.Config{Audience: internalAud, ServiceAccounts: []string{schedulerSA}}
	}})
	google.serve(up)
	up.on(http.MethodDelete, "idempotency_keys", 200, `[]`)
	for range 3 {
		req, _ := http.NewRequest(http.MethodPost, "/internal/jobs/idempotency-sweep", nil)
		req.Header.Set("Authorization", "Bearer "+google.token(t, nil))
		rec := newRecorder()
		e.ServeHTTP(rec, req)
		wantStatus(t, rec, 200)
	}
	if n := count(up, http.MethodGet, "/oauth2/v3/certs"); n != 1 {
		t.Errorf("certificates fetched %d times, want 1", n)
	}
}
