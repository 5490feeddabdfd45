package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/joho/godotenv"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/gcs"
	"github.com/fleetpilot/gateway/supabase"
)

// run loads the configuration (.env first, when present, for local work),
// wires the clients and serves until ctx ends, then drains in-flight requests.
func run(ctx context.Context) error {
	if err := godotenv.Load(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read .env: %w", err)
	}
	cfg, err := gateway.LoadConfig(nil)
	if err != nil {
		return err
	}
	log := gateway.NewLogger(os.Stdout, cfg.LogLevel)

	hc := supabase.NewHTTPClient()
	db := supabase.New(supabase.Config{URL: cfg.SupabaseURL, ServiceKey: cfg.SupabaseServiceKey, Timeout: cfg.SupabaseTimeout}, hc)
	verifier, err := supabase.NewVerifier(ctx, supabase.VerifierConfig{
		JWTSecret: cfg.SupabaseJWTSecret,
		JWKSURL:   cfg.JWKSURL(),
		Issuer:    cfg.JWTIssuer(),
	}, hc, log)
	if err != nil {
		return err
	}
	deps := gateway.Deps{Logger: log, DB: db, Verifier: verifier}
	if cfg.DocumentsEnabled() {
		gcfg := gcs.Config{Bucket: cfg.GCSBucket, ServiceAccountJSON: cfg.GCSServiceAccountJSON, SignerEmail: cfg.GCSSignerEmail}
		client, err := gcs.NewClient(ctx, gcfg)
		if err != nil {
			return fmt.Errorf("gcs client: %w", err)
		}
		defer client.Close()
		if deps.Files, err = gcs.New(gcfg, client); err != nil {
			return err
		}
	} else {
		log.Warn("document storage is not configured (GCS_SERVICE_ACCOUNT_JSON or GCS_SIGNER_EMAIL): document endpoints answer 503")
	}
	e, err := gateway.New(cfg, deps)
	if err != nil {
		return err
	}
	srv := gateway.NewHTTPServer(cfg, e)
	log.Info("gateway starting", "port", cfg.Port, "env", cfg.AppEnv, "supabase_url", cfg.SupabaseURL,
		"hs256", cfg.SupabaseJWTSecret != "", "cors_origins", cfg.CORSAllowedOrigins)
	return gateway.Serve(ctx, srv, log, 10*time.Second)
}
