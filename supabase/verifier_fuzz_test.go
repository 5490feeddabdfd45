package supabase

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

const fuzzSecret = "fuzz-secret-with-at-least-32-characters!"

// FuzzVerify: no input panics the verifier, and whatever it accepts carries
// exactly the claims that were signed (a mutation can only be refused).
func FuzzVerify(f *testing.F) {
	claims := jwt.MapClaims{"iss": "https://p.supabase.co/auth/v1", "aud": "authenticated", "sub": "11111111-0000-4000-8000-000000000001",
		"role": "authenticated", "exp": time.Now().Add(time.Hour).Unix(), "tenant_id": tenant}
	valid, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(fuzzSecret))
	for _, s := range []string{valid, "", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", valid + "x", valid[:len(valid)-2]} {
		f.Add(s)
	}
	v, err := NewVerifier(context.Background(), VerifierConfig{JWTSecret: fuzzSecret, Issuer: "https://p.supabase.co/auth/v1", CacheSize: -1},
		nil, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, token string) {
		p, err := v.Verify(context.Background(), token)
		if err != nil {
			return
		}
		if p.Tenant.String() != tenant || p.UserID != "11111111-0000-4000-8000-000000000001" {
			t.Fatalf("accepted %q as %+v", token, p)
		}
	})
}
