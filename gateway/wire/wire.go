// Package wire builds the gateway's clients from its configuration and runs
// it until shutdown. Both programs in cmd/ and the tests use it, so that the
// local stack and the tests run exactly the production wiring.
package wire

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	cloudtasks "cloud.google.com/go/cloudtasks/apiv2"
	"google.golang.org/api/option"
	"google.golang.org/grpc"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/clients/claude"
	"github.com/fleetpilot/gateway/gateway/clients/credas"
	"github.com/fleetpilot/gateway/gateway/clients/dvla"
	"github.com/fleetpilot/gateway/gateway/clients/gcs"
	"github.com/fleetpilot/gateway/gateway/clients/tasks"
	"github.com/fleetpilot/gateway/gateway/domain/fleet"
	"github.com/fleetpilot/gateway/gateway/domain/identity"
	"github.com/fleetpilot/gateway/gateway/domain/pcn"
	"github.com/fleetpilot/gateway/gateway/domain/quota"
	"github.com/fleetpilot/gateway/gateway/domain/sweep"
	"github.com/fleetpilot/gateway/gateway/internalauth"
	"github.com/fleetpilot/gateway/gateway/telemetry"
	"github.com/fleetpilot/gateway/supabase"
)

// ShutdownGrace is what Cloud Run allows between SIGTERM and SIGKILL.
const ShutdownGrace = 10 * time.Second

// Options replace what the configuration would build: the local stack passes
// its GCS emulator store; tests pass an HTTP client over a mock transport, a
// clock and fakes. The zero value builds everything from the configuration.
type Options struct {
	// Files is the document store (nil: built from cfg.GCS when it can sign).
	Files *gcs.Store
	// HTTPClient carries every outbound call (PostgREST, JWKS, Claude, DVLA,
	// Credas); nil gives PostgREST a pool capped at SUPABASE_MAX_CONNS and
	// each vendor its own client.
	HTTPClient *http.Client
	// Verifier replaces the Supabase token verifier.
	Verifier gateway.TokenVerifier
	// Queue replaces Cloud Tasks and the in-process workers for PCN jobs.
	Queue pcn.Queue
	// Sweeps replaces Cloud Tasks and the in-process pacer for sweep tasks.
	Sweeps tasks.Dispatcher
	// Now is the gateway's clock (nil: time.Now).
	Now func() time.Time
	// Telemetry replaces the providers built from cfg.Telemetry (tests use
	// in-memory exporters); the caller shuts it down.
	Telemetry *telemetry.Telemetry
}

// App is a wired gateway.
type App struct {
	Handler http.Handler
	// PCN is the scanning pipeline, for callers that drive jobs directly.
	PCN *pcn.Service
	// Metrics is the Prometheus scrape (nil unless TELEMETRY_METRICS_ADDR is
	// set); Serve runs it on its own listener.
	Metrics http.Handler
	cfg     gateway.Config
	log     *slog.Logger
	local   *tasks.Local
	sweeps  *tasks.Paced
	tel     *telemetry.Telemetry
	closers []func() error
}

// Build creates every client once and the HTTP handler over them.
func Build(ctx context.Context, cfg gateway.Config, log *slog.Logger, o Options) (_ *App, err error) {
	a := &App{cfg: cfg, log: log}
	defer func() {
		if err != nil {
			a.Close()
		}
	}()
	tcfg := cfg.Telemetry
	tcfg.ProjectID, tcfg.ServiceName, tcfg.ServiceVersion = cfg.Tasks.ProjectID, "fleetpilot-gateway", version()
	tel := o.Telemetry
	if tel == nil {
		if tel, err = telemetry.New(ctx, tcfg, log); err != nil {
			return nil, err
		}
		a.tel = tel
	}
	a.Metrics = tel.MetricsHandler()
	if tel != nil {
		log = slog.New(telemetry.LogHandler(log.Handler(), cfg.Tasks.ProjectID))
		a.log = log
	}
	hc, vendor := o.HTTPClient, o.HTTPClient
	if hc == nil {
		hc = supabase.NewHTTPClient(cfg.Supabase.MaxConns)
	}
	hc = tel.WrapClient(hc, telemetry.TransportOptions{Peers: supabasePeer, Propagate: true})
	db := supabase.New(cfg.Supabase, hc)
	verifier := o.Verifier
	if verifier == nil {
		v, err := supabase.NewVerifier(ctx, cfg.Supabase.Verifier(), hc, log)
		if err != nil {
			return nil, err
		}
		tel.Metrics().ObserveCache("token", v.CacheStats)
		verifier = v
	}
	deps := gateway.Deps{Logger: log, DB: db, Verifier: verifier, Now: o.Now, Telemetry: tel}
	vendorClient := func(peer string) *http.Client {
		c := vendor
		if c == nil {
			c = supabase.NewHTTPClient(0)
		}
		return tel.WrapClient(c, telemetry.TransportOptions{Peer: peer})
	}
	if deps.Internal, err = internalauth.New(ctx, cfg.Internal, cfg.InternalSecret, vendorClient(telemetry.PeerGoogleCerts)); err != nil {
		return nil, err
	}

	files := o.Files
	if files == nil && cfg.GCS.Enabled() {
		var wrap func(http.RoundTripper) http.RoundTripper
		if tel != nil {
			wrap = func(rt http.RoundTripper) http.RoundTripper {
				return tel.Transport(rt, telemetry.TransportOptions{Peers: googlePeer, Propagate: true})
			}
		}
		client, err := gcs.NewClient(ctx, cfg.GCS, wrap)
		if err != nil {
			return nil, fmt.Errorf("gcs client: %w", err)
		}
		a.closers = append(a.closers, client.Close)
		gcfg := cfg.GCS
		if wrap != nil && gcfg.SignerEmail != "" && len(gcfg.IAMOptions) == 0 {
			// signBlob through the same traced transport: its client span is a
			// child of the request's gcs.sign span.
			iam, err := gcs.AuthorizedClient(ctx, option.WithScopes("https://www.googleapis.com/auth/cloud-platform"))
			if err != nil {
				return nil, err
			}
			iam.Transport = wrap(iam.Transport)
			gcfg.IAMOptions = []option.ClientOption{option.WithHTTPClient(iam)}
		}
		if files, err = gcs.New(gcfg, client); err != nil {
			return nil, err
		}
	}
	var reader pcn.ObjectReader
	if files != nil {
		deps.Files, reader = files, files
	} else {
		log.Warn("document storage is not configured (GCS_SERVICE_ACCOUNT_JSON or GCS_SIGNER_EMAIL): document endpoints answer 503")
	}

	var extractor pcn.Extractor
	if cfg.Claude.APIKey != "" {
		if extractor, err = claude.New(cfg.Claude, vendorClient(telemetry.PeerAnthropic)); err != nil {
			return nil, err
		}
	} else {
		log.Warn("ANTHROPIC_API_KEY is not set: PCN scans are accepted and end needs_attention (extraction_unavailable)")
	}

	// Sweep tasks: on Cloud Tasks queues in production, in-process (paced by
	// the services' own rate limiters) without a Google Cloud project.
	sweeps := o.Sweeps
	var fleetSvc *fleet.Service
	var identitySvc *identity.Service
	if sweeps == nil && cfg.Tasks.ProjectID == "" {
		a.sweeps = tasks.NewPaced(2, 100_000, func(ctx context.Context, t tasks.Task) error {
			return runSweepTask(ctx, fleetSvc, identitySvc, tel.Metrics(), t)
		}, log)
		sweeps = a.sweeps
	}

	pcnCfg := cfg.PCN
	var svc *pcn.Service
	switch {
	case o.Queue != nil:
		svc = pcn.New(pcnCfg, db, reader, extractor, o.Queue, log, pcn.WithTelemetry(tel))
	case cfg.Tasks.ProjectID != "":
		tc, err := cloudtasks.NewClient(ctx, option.WithGRPCDialOption(grpc.WithChainUnaryInterceptor(tel.UnaryClientInterceptor(telemetry.PeerCloudTasks))))
		if err != nil {
			return nil, fmt.Errorf("cloud tasks client: %w", err)
		}
		a.closers = append(a.closers, tc.Close)
		queue, err := tasks.NewCloudTasks(cfg.Tasks, tc)
		if err != nil {
			return nil, err
		}
		svc = pcn.New(pcnCfg, db, reader, extractor, queue, log, pcn.WithTelemetry(tel))
		if sweeps == nil {
			sweeps = queue
		}
	default:
		log.Warn("GCP_PROJECT_ID is not set: PCN jobs run in-process", "workers", cfg.Tasks.LocalWorkers)
		a.local = tasks.NewLocal(cfg.Tasks.LocalWorkers, 1000, func(ctx context.Context, j tasks.Job) error { return svc.RunTask(ctx, j) }, log)
		svc = pcn.New(pcnCfg, db, reader, extractor, a.local, log, pcn.WithTelemetry(tel))
	}
	quotas := quota.New(db, o.Now)
	svc.WithQuota(quotas.Daily(quota.Scans, cfg.PCN.DailyScanQuota))
	deps.PCN, a.PCN = svc, svc

	if cfg.DVLA.APIKey != "" {
		dc, err := dvla.New(cfg.DVLA, vendorClient(telemetry.PeerDVLA))
		if err != nil {
			return nil, err
		}
		cache := dvla.NewCache(dc, cfg.DVLA.CacheTTL, cfg.DVLA.NotFoundTTL, 50000)
		tel.Metrics().ObserveCache("dvla", cache.Stats)
		fleetSvc = fleet.New(cfg.Fleet, db, cache, sweeps, log).WithQuota(quotas.Daily(quota.DVLALookups, cfg.Fleet.DailyLookupQuota))
		deps.Vehicles = fleetSvc
	} else {
		log.Warn("DVLA_VES_API_KEY is not set: vehicle lookups answer 503")
	}

	if cfg.Credas.APIKey != "" {
		cc, err := credas.New(cfg.Credas, vendorClient(telemetry.PeerCredas))
		if err != nil {
			return nil, err
		}
		identitySvc = identity.New(cfg.Identity, db, cc, sweeps, log).WithQuota(quotas.Daily(quota.IdentityInvites, cfg.Identity.DailyInviteQuota))
		deps.Identity = identitySvc
	} else {
		log.Warn("CREDAS_API_KEY is not set: identity check endpoints answer 503")
	}

	e, err := gateway.New(cfg, deps)
	if err != nil {
		return nil, err
	}
	a.Handler = e
	log.Info("gateway wired", "env", cfg.AppEnv, "supabase_url", cfg.Supabase.URL, "hs256", cfg.Supabase.JWTSecret != "",
		"documents", files != nil, "claude", extractor != nil, "cloud_tasks", cfg.Tasks.ProjectID != "", "dvla", cfg.DVLA.APIKey != "", "credas", cfg.Credas.APIKey != "")
	return a, nil
}

// version is the VCS revision the binary was built from, when known.
func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "dev"
}

// supabasePeer tells PostgREST from Supabase Auth (the JWKS) on their shared client.
func supabasePeer(r *http.Request) string {
	if strings.HasPrefix(r.URL.Path, "/auth/") {
		return telemetry.PeerSupabaseAuth
	}
	return telemetry.PeerPostgREST
}

// googlePeer tells IAM signBlob from storage calls on the storage client.
func googlePeer(r *http.Request) string {
	if strings.HasPrefix(r.URL.Host, "iamcredentials.") {
		return telemetry.PeerIAM
	}
	return telemetry.PeerGCS
}

// Serve runs the app on ln until ctx ends; then it stops accepting, and lets
// in-flight requests and in-process jobs finish within ShutdownGrace.
func (a *App) Serve(ctx context.Context, ln net.Listener) error {
	srv := gateway.NewHTTPServer(a.cfg, a.Handler)
	var drained sync.WaitGroup
	stopped, stop := context.WithCancel(ctx)
	defer stop()
	if a.sweeps != nil {
		drained.Go(func() {
			<-stopped.Done()
			dctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
			defer cancel()
			if err := a.sweeps.Close(dctx); err != nil {
				a.log.Warn("in-process sweep tasks did not finish in time; the next sweep plans them again", "err", err)
			}
		})
	}
	if a.local != nil {
		drained.Go(func() {
			<-stopped.Done()
			dctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
			defer cancel()
			if err := a.local.Close(dctx); err != nil {
				a.log.Warn("in-process jobs did not finish in time; reset-stuck will requeue them", "err", err)
			}
		})
	}
	if a.Metrics != nil {
		// Its own listener on TELEMETRY_METRICS_ADDR, never the API's port:
		// on Cloud Run only PORT is reachable from outside.
		mln, err := net.Listen("tcp", a.cfg.Telemetry.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics listener: %w", err)
		}
		msrv := &http.Server{Handler: a.Metrics, ReadHeaderTimeout: 5 * time.Second}
		drained.Go(func() { _ = msrv.Serve(mln) })
		drained.Go(func() { <-stopped.Done(); _ = msrv.Close() })
		a.log.Info("metrics listening", "url", "http://"+mln.Addr().String()+"/metrics")
	}
	err := gateway.ServeListener(ctx, srv, ln, a.log, ShutdownGrace)
	stop() // also when serving failed without a signal
	drained.Wait()
	return err
}

// runSweepTask runs an in-process sweep task as its endpoint would.
func runSweepTask(ctx context.Context, f *fleet.Service, id *identity.Service, m *telemetry.Metrics, t tasks.Task) error {
	b, err := sweep.ParseBatch(t.Body)
	if err != nil {
		return err
	}
	var left int
	switch {
	case t.Path == fleet.TaskPath && f != nil:
		res, err := f.RunTask(ctx, b, t.ID)
		if err != nil {
			return err
		}
		done, skipped, failed := res.Outcomes()
		m.Sweep(ctx, telemetry.SweepDVLARefresh, 0, done, skipped, failed)
		left = res.Left
	case t.Path == identity.TaskPath && id != nil:
		res, err := id.RunTask(ctx, b, t.ID)
		if err != nil {
			return err
		}
		done, skipped, failed := res.Outcomes()
		m.Sweep(ctx, telemetry.SweepCredasPoll, 0, done, skipped, failed)
		left = res.Left
	default:
		return fmt.Errorf("no in-process handler for %s", t.Path)
	}
	if left > 0 {
		return fmt.Errorf("%d items left: %w", left, tasks.ErrRetry)
	}
	return nil
}

// Close releases the clients (and stops in-process workers if Serve did not) and flushes telemetry.
func (a *App) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), ShutdownGrace)
	defer cancel()
	if a.local != nil {
		_ = a.local.Close(ctx)
	}
	if a.sweeps != nil {
		_ = a.sweeps.Close(ctx)
	}
	for _, c := range a.closers {
		_ = c()
	}
	if a.tel != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := a.tel.Shutdown(ctx); err != nil {
			a.log.Warn("telemetry not flushed", "err", err)
		}
	}
}
