package localstack

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Local-only credentials, as the Supabase CLI's local stack has them. They
// protect nothing: the stack listens on 127.0.0.1 only.
const (
	JWTSecret      = "super-secret-jwt-token-with-at-least-32-characters-long"
	SecretKey      = "sb_secret_N7UND0UgjKTVK-Uodkm0Hg_xSvEMPvz"
	PublishableKey = "sb_publishable_ACJWlzQHlZjBrEguHvfOxg_3BJgxAaH"
	signingKID     = "fleetpilot-local-es256"
)

// Keys are the stack's API keys and the ES256 key that signs user tokens.
type Keys struct {
	SigningKey     *ecdsa.PrivateKey
	ServiceRoleJWT string // legacy service_role key (HS256)
	AnonJWT        string // legacy anon key (HS256)
}

// LoadKeys reads the signing key from dir (creating it on first use, so that
// tokens printed before a restart stay valid) and mints the legacy keys.
func LoadKeys(dir string) (Keys, error) {
	var k Keys
	path := filepath.Join(dir, "signing-key.pem")
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		blk, _ := pem.Decode(b)
		if blk == nil {
			return k, fmt.Errorf("localstack: %s is not PEM", path)
		}
		if k.SigningKey, err = x509.ParseECPrivateKey(blk.Bytes); err != nil {
			return k, fmt.Errorf("localstack: %s: %w", path, err)
		}
	case errors.Is(err, os.ErrNotExist):
		if k.SigningKey, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader); err != nil {
			return k, err
		}
		der, err := x509.MarshalECPrivateKey(k.SigningKey)
		if err != nil {
			return k, err
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return k, err
		}
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
			return k, err
		}
	default:
		return k, err
	}
	exp := time.Now().AddDate(10, 0, 0).Unix()
	for role, dst := range map[string]*string{"service_role": &k.ServiceRoleJWT, "anon": &k.AnonJWT} {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "supabase-demo", "role": role, "exp": exp}).SignedString([]byte(JWTSecret))
		if err != nil {
			return k, err
		}
		*dst = s
	}
	return k, nil
}

// JWKS is the public half of the signing key, as Supabase Auth publishes it.
func (k Keys) JWKS() []byte {
	// The uncompressed point is 0x04, then X and Y of 32 bytes each.
	pt, _ := k.SigningKey.PublicKey.Bytes()
	x, y := pt[1:33], pt[33:65]
	b, _ := json.Marshal(map[string]any{"keys": []any{map[string]any{
		"kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "key_ops": []string{"verify"}, "kid": signingKID,
		"x": base64.RawURLEncoding.EncodeToString(x), "y": base64.RawURLEncoding.EncodeToString(y),
	}}})
	return b
}

// UserToken signs an access token like Supabase Auth's for a user of tenant
// (tenant in app_metadata, as an admin would set it).
func (k Keys) UserToken(issuer, userID, tenantID, email string, ttl time.Duration) (string, error) {
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodES256, jwt.MapClaims{
		"iss": issuer, "aud": "authenticated", "sub": userID, "role": "authenticated",
		"email": email, "phone": "", "aal": "aal1", "session_id": userID, "is_anonymous": false,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(),
		"app_metadata":  map[string]any{"provider": "email", "tenant_id": tenantID},
		"user_metadata": map[string]any{},
	})
	t.Header["kid"] = signingKID
	return t.SignedString(k.SigningKey)
}
