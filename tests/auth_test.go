package tests

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/supabase"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func ecJWK(kid string, k *ecdsa.PublicKey) map[string]any {
	pt, err := k.Bytes() // uncompressed: 0x04, then X and Y of 32 bytes each
	if err != nil {
		panic(err)
	}
	x, y := pt[1:33], pt[33:65]
	return map[string]any{"kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y), "kid": kid, "alg": "ES256", "use": "sig", "key_ops": []string{"verify"}}
}

func rsaJWK(kid string, k *rsa.PublicKey) map[string]any {
	return map[string]any{"kty": "RSA", "n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes()), "kid": kid, "alg": "RS256", "use": "sig"}
}

func signed(t *testing.T, m jwt.SigningMethod, kid string, key any, c jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func with(c jwt.MapClaims, kv ...any) jwt.MapClaims {
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(c, kv[i].(string))
			continue
		}
		c[kv[i].(string)] = kv[i+1]
	}
	return c
}

// TestAuth drives GET /incidents with every kind of token, through a verifier
// that has both the HS256 secret and a JWKS served by a real HTTP server.
func TestAuth(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherEC, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	jwks, _ := json.Marshal(map[string]any{"keys": []any{ecJWK("ec-1", &ecKey.PublicKey), rsaJWK("rsa-1", &rsaKey.PublicKey)}})
	var jwksHits atomic.Int32
	js := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		jwksHits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(jwks)
	}))
	defer js.Close()

	cfg := testConfig()
	v, err := supabase.NewVerifier(t.Context(), supabase.VerifierConfig{
		JWTSecret: jwtSecret, JWKSURL: js.URL + "/auth/v1/.well-known/jwks.json", Issuer: cfg.JWTIssuer(), CacheSize: -1,
	}, js.Client(), gateway.NewLogger(&syncBuffer{}, "error"))
	if err != nil {
		t.Fatal(err)
	}
	ecPub, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	jwkJSON, _ := json.Marshal(ecJWK("ec-1", &ecKey.PublicKey))
	now := time.Now()

	tests := []struct {
		name   string
		header string // full Authorization header; "" for none
		token  func() string
		ok     bool
	}{
		{name: "no header", header: "-"},
		{name: "wrong scheme", header: "Basic " + base64.StdEncoding.EncodeToString([]byte("u:p"))},
		{name: "bearer without token", header: "Bearer "},
		{name: "garbage", token: func() string { return "not.a.jwt" }},
		{name: "valid HS256", token: func() string { return tokenFor(t, tenantA) }, ok: true},
		{name: "scheme is case-insensitive", header: "bearer " + tokenFor(t, tenantA), ok: true},
		{name: "alg none", token: func() string {
			s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims(tenantA)).SignedString(jwt.UnsafeAllowNoneSignatureType)
			return s
		}},
		{name: "wrong HS256 secret", token: func() string { return hs256(t, claims(tenantA), "another-secret-with-at-least-32-characters") }},
		{name: "expired", token: func() string { return hs256(t, with(claims(tenantA), "exp", now.Add(-time.Minute).Unix()), jwtSecret) }},
		{name: "expired within the 30 s leeway", token: func() string {
			return hs256(t, with(claims(tenantA), "exp", now.Add(-10*time.Second).Unix()), jwtSecret)
		}, ok: true},
		{name: "no exp", token: func() string { return hs256(t, with(claims(tenantA), "exp", nil), jwtSecret) }},
		{name: "not yet valid", token: func() string { return hs256(t, with(claims(tenantA), "nbf", now.Add(2*time.Minute).Unix()), jwtSecret) }},
		{name: "wrong audience", token: func() string { return hs256(t, with(claims(tenantA), "aud", "anon"), jwtSecret) }},
		{name: "audience list containing authenticated", token: func() string {
			return hs256(t, with(claims(tenantA), "aud", []string{"other", "authenticated"}), jwtSecret)
		}, ok: true},
		{name: "wrong issuer", token: func() string {
			return hs256(t, with(claims(tenantA), "iss", "https://evil.supabase.co/auth/v1"), jwtSecret)
		}},
		{name: "role anon", token: func() string { return hs256(t, with(claims(tenantA), "role", "anon"), jwtSecret) }},
		{name: "role service_role", token: func() string { return hs256(t, with(claims(tenantA), "role", "service_role"), jwtSecret) }},
		{name: "sub not a UUID", token: func() string { return hs256(t, with(claims(tenantA), "sub", "admin"), jwtSecret) }},
		{name: "no tenant", token: func() string { return hs256(t, with(claims(tenantA), "tenant_id", nil), jwtSecret) }},
		{name: "non-UUID tenant", token: func() string { return hs256(t, with(claims(tenantA), "tenant_id", "acme"), jwtSecret) }},
		{name: "numeric tenant", token: func() string { return hs256(t, with(claims(tenantA), "tenant_id", 42), jwtSecret) }},
		{name: "tenant in app_metadata", token: func() string {
			return hs256(t, with(claims(tenantA), "tenant_id", nil, "app_metadata", map[string]any{"tenant_id": tenantA, "provider": "email"}), jwtSecret)
		}, ok: true},
		{name: "tenant only in user_metadata", token: func() string {
			return hs256(t, with(claims(tenantA), "tenant_id", nil, "user_metadata", map[string]any{"tenant_id": tenantA}), jwtSecret)
		}},
		{name: "anonymous user", token: func() string { return hs256(t, with(claims(tenantA), "is_anonymous", true), jwtSecret) }},
		{name: "valid ES256 from JWKS", token: func() string { return signed(t, jwt.SigningMethodES256, "ec-1", ecKey, claims(tenantA)) }, ok: true},
		{name: "valid RS256 from JWKS", token: func() string { return signed(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claims(tenantA)) }, ok: true},
		{name: "ES256 with unknown kid", token: func() string { return signed(t, jwt.SigningMethodES256, "unknown", otherEC, claims(tenantA)) }},
		{name: "ES256 signed by another key under a known kid", token: func() string { return signed(t, jwt.SigningMethodES256, "ec-1", otherEC, claims(tenantA)) }},
		{name: "RS256 token naming the EC key", token: func() string { return signed(t, jwt.SigningMethodRS256, "ec-1", rsaKey, claims(tenantA)) }},
		{name: "HS256 signed with the JWKS public key (DER)", token: func() string {
			return signed(t, jwt.SigningMethodHS256, "ec-1", ecPub, claims(tenantA))
		}},
		{name: "HS256 signed with the JWK JSON", token: func() string { return signed(t, jwt.SigningMethodHS256, "ec-1", jwkJSON, claims(tenantA)) }},
		{name: "HS384 with the right secret", token: func() string { return signed(t, jwt.SigningMethodHS384, "", []byte(jwtSecret), claims(tenantA)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{verifier: v})
			up.on(http.MethodGet, "incidents", 200, `[]`, "*/0")
			req := httptest.NewRequest(http.MethodGet, "/incidents", nil)
			switch {
			case tc.token != nil:
				req.Header.Set("Authorization", "Bearer "+tc.token())
			case tc.header != "-":
				req.Header.Set("Authorization", tc.header)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if tc.ok {
				wantStatus(t, rec, 200)
				if got := up.only("incidents").Query.Get("tenant_id"); got != "eq."+tenantA {
					t.Errorf("tenant filter = %q", got)
				}
				return
			}
			wantStatus(t, rec, 401)
			wantJSON(t, rec, `{"detail":"Invalid or expired token"}`)
			if got := rec.Header().Get("WWW-Authenticate"); got != "Bearer" {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			if n := len(up.requests()); n != 0 {
				t.Errorf("%d upstream requests for a refused token", n)
			}
		})
	}
	// One fetch at start-up, plus at most one refresh for the unknown kids: the
	// refresh is limited to one a minute.
	if n := jwksHits.Load(); n > 2 {
		t.Errorf("JWKS fetched %d times, want at most 2", n)
	}
}

// TestAuthNoSecretRefusesHS256: without SUPABASE_JWT_SECRET only JWKS keys
// verify, and an HS256 token signed with the public key is refused.
func TestAuthNoSecretRefusesHS256(t *testing.T) {
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	jwks, _ := json.Marshal(map[string]any{"keys": []any{ecJWK("ec-1", &ecKey.PublicKey)}})
	js := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write(jwks) }))
	defer js.Close()
	v, err := supabase.NewVerifier(t.Context(), supabase.VerifierConfig{
		JWKSURL: js.URL, Issuer: testConfig().JWTIssuer(),
	}, js.Client(), gateway.NewLogger(&syncBuffer{}, "error"))
	if err != nil {
		t.Fatal(err)
	}
	ecPub, _ := x509.MarshalPKIXPublicKey(&ecKey.PublicKey)
	for name, tok := range map[string]string{
		"HS256 with the public key": signed(t, jwt.SigningMethodHS256, "ec-1", ecPub, claims(tenantA)),
		"HS256 with the old secret": tokenFor(t, tenantA),
	} {
		if _, err := v.Verify(t.Context(), tok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := v.Verify(t.Context(), signed(t, jwt.SigningMethodES256, "ec-1", ecKey, claims(tenantA))); err != nil {
		t.Errorf("valid ES256 refused: %v", err)
	}
}

// TestAuthCacheHonoursExpiry: a cached token still expires.
func TestAuthCacheHonoursExpiry(t *testing.T) {
	now := time.Now()
	clock := func() time.Time { return now }
	v, err := supabase.NewVerifier(t.Context(), supabase.VerifierConfig{JWTSecret: jwtSecret, Issuer: testConfig().JWTIssuer(), Now: clock}, nil, gateway.NewLogger(&syncBuffer{}, "error"))
	if err != nil {
		t.Fatal(err)
	}
	tok := hs256(t, with(claims(tenantA), "exp", now.Add(-25*time.Second).Unix()), jwtSecret)
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("within leeway: %v", err)
	}
	now = now.Add(6 * time.Second) // past exp + 30 s leeway
	if _, err := v.Verify(t.Context(), tok); err == nil {
		t.Fatal("expired token accepted from the cache")
	}
}

// TestAuthIssuerOptional: with AllowMissingIssuer (development only), a token
// without iss passes, and a wrong iss still fails.
func TestAuthIssuerOptional(t *testing.T) {
	v, err := supabase.NewVerifier(t.Context(), supabase.VerifierConfig{JWTSecret: jwtSecret, Issuer: testConfig().JWTIssuer(), AllowMissingIssuer: true},
		nil, gateway.NewLogger(&syncBuffer{}, "error"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(t.Context(), hs256(t, with(claims(tenantA), "iss", nil), jwtSecret)); err != nil {
		t.Errorf("no iss refused: %v", err)
	}
	if _, err := v.Verify(t.Context(), hs256(t, with(claims(tenantA), "iss", "https://evil.supabase.co/auth/v1"), jwtSecret)); err == nil {
		t.Error("wrong iss accepted")
	}
	strict, _ := supabase.NewVerifier(t.Context(), supabase.VerifierConfig{JWTSecret: jwtSecret, Issuer: testConfig().JWTIssuer()}, nil, gateway.NewLogger(&syncBuffer{}, "error"))
	if _, err := strict.Verify(t.Context(), hs256(t, with(claims(tenantA), "iss", nil), jwtSecret)); err == nil {
		t.Error("no iss accepted by default")
	}
}
