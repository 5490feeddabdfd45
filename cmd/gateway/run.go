package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"github.com/joho/godotenv"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/claude"
	"github.com/fleetpilot/gateway/gateway/gcs"
	"github.com/fleetpilot/gateway/gateway/pcn"
	"github.com/fleetpilot/gateway/gateway/tasks"
	"github.com/fleetpilot/gateway/supabase"
)

// shutdownGrace is what Cloud Run allows between SIGTERM and SIGKILL.
const shutdownGrace = 10 * time.Second

// run loads the configuration (.env first, when present, for local work),
// wires the clients and serves until ctx ends, then drains in-flight requests
// and in-process jobs.
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

	var files *gcs.Store
	if cfg.DocumentsEnabled() {
		gcfg := gcs.Config{Bucket: cfg.GCSBucket, ServiceAccountJSON: cfg.GCSServiceAccountJSON, SignerEmail: cfg.GCSSignerEmail}
		client, err := gcs.NewClient(ctx, gcfg)
		if err != nil {
			return fmt.Errorf("gcs client: %w", err)
		}
		defer client.Close()
		if files, err = gcs.New(gcfg, client); err != nil {
			return err
		}
		deps.Files = files
	} else {
		log.Warn("document storage is not configured (GCS_SERVICE_ACCOUNT_JSON or GCS_SIGNER_EMAIL): document endpoints answer 503")
	}

	var extractor pcn.Extractor
	if cfg.AnthropicAPIKey != "" {
		if extractor, err = claude.New(claude.Config{APIKey: cfg.AnthropicAPIKey, Model: cfg.AnthropicModel, BaseURL: cfg.AnthropicBaseURL,
			Timeout: cfg.AnthropicTimeout, MaxRetries: cfg.AnthropicMaxRetries}, supabase.NewHTTPClient()); err != nil {
			return err
		}
	} else {
		log.Warn("ANTHROPIC_API_KEY is not set: PCN scans are accepted and end needs_attention (extraction_unavailable)")
	}
	var reader pcn.ObjectReader
	if files != nil {
		reader = files
	}

	pcnCfg := pcn.Config{MaxAttempts: cfg.PCNMaxAttempts, StuckAfter: cfg.PCNStuckAfter, MaxDocBytes: cfg.GCSMaxUploadBytes}
	var svc *pcn.Service
	var local *tasks.Local
	if cfg.GCPProjectID != "" {
		tc, err := cloudtasks.NewClient(ctx)
		if err != nil {
			return fmt.Errorf("cloud tasks client: %w", err)
		}
		defer tc.Close()
		queue, err := tasks.NewCloudTasks(tasks.Config{ProjectID: cfg.GCPProjectID, Location: cfg.TasksLocation, Queue: cfg.TasksQueue,
			TargetBaseURL: cfg.TasksTargetBaseURL, InternalSecret: cfg.InternalSecret, ServiceAccount: cfg.TasksServiceAccount}, tc)
		if err != nil {
			return err
		}
		svc = pcn.New(pcnCfg, db, reader, extractor, queue, log)
	} else {
		log.Warn("GCP_PROJECT_ID is not set: PCN jobs run in-process", "workers", cfg.LocalTaskWorkers)
		local = tasks.NewLocal(cfg.LocalTaskWorkers, 1000, func(ctx context.Context, j tasks.Job) error { return svc.RunTask(ctx, j) }, log)
		svc = pcn.New(pcnCfg, db, reader, extractor, local, log)
	}
	deps.PCN = svc

	e, err := gateway.New(cfg, deps)
	if err != nil {
		return err
	}
	srv := gateway.NewHTTPServer(cfg, e)
	log.Info("gateway starting", "port", cfg.Port, "env", cfg.AppEnv, "supabase_url", cfg.SupabaseURL,
		"hs256", cfg.SupabaseJWTSecret != "", "documents", files != nil, "claude", extractor != nil, "cloud_tasks", cfg.GCPProjectID != "")
	var drained sync.WaitGroup
	stopped, stop := context.WithCancel(ctx)
	defer stop()
	if local != nil {
		// In-process jobs drain alongside in-flight requests, within the same grace period.
		drained.Go(func() {
			<-stopped.Done()
			dctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			defer cancel()
			if cerr := local.Close(dctx); cerr != nil {
				log.Warn("in-process jobs did not finish in time; reset-stuck will requeue them", "err", cerr)
			}
		})
	}
	err = gateway.Serve(ctx, srv, log, shutdownGrace)
	stop() // also when Serve failed without a signal
	drained.Wait()
	return err
}
