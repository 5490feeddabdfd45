// Package membench measures the gateway's peak memory (resident set) while it
// runs the most PCN extractions it allows at once (PCN_MAX_CONCURRENT), each
// of the largest document a scan reads (PCN_MAX_SCAN_BYTES), against an
// httptest Anthropic on loopback. It is a benchmark, not a test: run
// `make bench-memory` (settings and GOMEMLIMIT come from the environment).
//
// The process holds only the production wiring (wire.Build) and its fakes:
// PostgREST and GCS answered in-process, Anthropic a real HTTP server that
// reads each request body to the end before answering. The figure is an
// upper bound for the gateway: the fakes' memory (the document GCS serves,
// the server's buffers) is in it too.
package membench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/clients/gcs"
	"github.com/fleetpilot/gateway/gateway/clients/tasks"
	"github.com/fleetpilot/gateway/gateway/wire"
)

const (
	supabaseURL = "https://proj.supabase.co"
	tenant      = "aaaaaaaa-0000-4000-8000-000000000001"
	documentID  = "e0000000-0000-4000-8000-000000000001"
	secret      = "internal-secret-with-at-least-32-chars!!"
	objectPath  = tenant + "/vehicle/d0000000-0000-4000-8000-000000000001/pcn/" + documentID + "_pcn.pdf"
)

// rig is the gateway under measurement, built once per process: a second
// build would keep the first's memory in the figures (the benchmark function
// runs more than once: b.N=1 first, then -count times).
type rig struct {
	anthropic        *anthropic
	handler          http.Handler
	concurrent, size int
}

var setup = sync.OnceValues(func() (*rig, error) {
	a := newAnthropic()
	environ := map[string]string{
		"APP_ENV": "production", "SUPABASE_URL": supabaseURL, "SUPABASE_SERVICE_KEY": "service-role-jwt-key",
		"SUPABASE_JWT_SECRET": "test-jwt-secret-with-at-least-32-characters", "INTERNAL_SECRET": secret,
		"ANTHROPIC_API_KEY": "sk-test", "ANTHROPIC_BASE_URL": a.srv.URL, "LOG_LEVEL": "error",
	}
	for _, k := range []string{"PCN_MAX_CONCURRENT", "PCN_MAX_SCAN_BYTES", "TELEMETRY_ENABLED"} {
		if v, ok := os.LookupEnv(k); ok {
			environ[k] = v
		}
	}
	cfg, err := gateway.LoadConfig(environ)
	if err != nil {
		return nil, err
	}
	r := &rig{anthropic: a, concurrent: cfg.PCN.MaxConcurrent, size: int(cfg.PCN.MaxDocBytes)}
	a.want = r.concurrent
	doc := make([]byte, r.size) // the largest document a scan reads
	copy(doc, "%PDF-1.4\n")
	hc := &http.Client{Transport: &fakes{doc: doc, loopback: http.DefaultTransport}}
	files, err := store(hc)
	if err != nil {
		return nil, err
	}
	app, err := wire.Build(context.Background(), cfg, slog.New(slog.DiscardHandler),
		wire.Options{HTTPClient: hc, Files: files, Queue: nopQueue{}})
	if err != nil {
		return nil, err
	}
	r.handler = app.Handler
	return r, nil
})

// BenchmarkScanMemory: each iteration delivers PCN_MAX_CONCURRENT jobs at
// once; the Anthropic stand-in answers none of them until all of their
// bodies have arrived, so that that many documents are in memory together.
// It reports the process's peak RSS (VmHWM) over the measured rounds, and
// the RSS they started from (after a warm-up round and a GC: code pages and
// the heap the runtime kept).
func BenchmarkScanMemory(b *testing.B) {
	r, err := setup()
	if err != nil {
		b.Fatal(err)
	}
	anthropic, concurrent, size := r.anthropic, r.concurrent, r.size
	start := anthropic.bodies.Load()
	deliver := func() {
		var wg sync.WaitGroup
		for range concurrent {
			wg.Go(func() {
				req := httptest.NewRequest(http.MethodPost, "/internal/jobs/process-pcn",
					strings.NewReader(`{"job_id":"f0000000-0000-4000-8000-000000000001","tenant_id":"`+tenant+`"}`))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("X-Internal-Secret", secret)
				rec := httptest.NewRecorder()
				r.handler.ServeHTTP(rec, req)
				if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `"outcome":"done"`) {
					b.Errorf("delivery = %d %s", rec.Code, rec.Body)
				}
			})
		}
		wg.Wait()
	}
	deliver() // warm up: connections, pools, the first GC cycles
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.Logf("after warm-up: heap live %.1f MiB, heap sys %.1f MiB, released %.1f MiB, stacks %.1f MiB, total sys %.1f MiB",
		float64(ms.HeapAlloc)/(1<<20), float64(ms.HeapSys)/(1<<20), float64(ms.HeapReleased)/(1<<20), float64(ms.StackSys)/(1<<20), float64(ms.Sys)/(1<<20))
	resetPeak(b)
	base := status(b, "VmRSS")
	b.ResetTimer()
	for range b.N {
		deliver()
	}
	b.StopTimer()
	peak := status(b, "VmHWM")
	if got := anthropic.bodies.Load() - start; got < int64(concurrent*(b.N+1)) {
		b.Fatalf("Anthropic received %d complete requests, want %d", got, concurrent*(b.N+1))
	}
	mib := func(kb int64) float64 { return float64(kb) / 1024 }
	b.ReportMetric(mib(peak), "peak-RSS-MiB")
	b.ReportMetric(mib(base), "base-RSS-MiB")
	b.ReportMetric(0, "ns/op") // the time is the fakes' as much as the gateway's: not a figure
	b.Logf("%d concurrent scans of %d MiB (GOMEMLIMIT=%q, GOGC=%q): peak RSS %.1f MiB, base (after warm-up and GC) %.1f MiB",
		concurrent, size>>20, os.Getenv("GOMEMLIMIT"), os.Getenv("GOGC"), mib(peak), mib(base))
}

// anthropic is the Messages API stand-in: it reads each request body to the
// end (as the API does before answering), then holds every answer until want
// bodies are in, so that the extractions overlap.
type anthropic struct {
	srv    *httptest.Server
	want   int
	bodies atomic.Int64
	mu     sync.Mutex
	inside int
	all    chan struct{}
}

func newAnthropic() *anthropic {
	a := &anthropic{all: make(chan struct{})}
	answer := `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-5-5","content":[{"type":"tool_use","id":"toolu_1","name":"record_pcn","input":` +
		notice + `}],"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":5}}`
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil || n == 0 {
			http.Error(w, `{"type":"error","error":{"type":"invalid_request_error","message":"no body"}}`, http.StatusBadRequest)
			return
		}
		a.bodies.Add(1)
		a.mu.Lock()
		a.inside++
		ch := a.all
		if a.inside == a.want {
			close(a.all)
			a.inside, a.all = 0, make(chan struct{})
		}
		a.mu.Unlock()
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	}))
	return a
}

const notice = `{"is_penalty_notice":true,"notice_type":"council_pcn_on_vehicle","issuer_type":"local_authority",` +
	`"issuing_authority":"Westminster City Council","pcn_number":"WM12345678","vehicle_registration":"AB12CDE",` +
	`"vehicle_make":"FORD","vehicle_colour":"BLUE","contravention_code":"01","contravention_description":"Restricted street",` +
	`"contravention_datetime":"2026-11-03T14:20:00+00:00","location":"Oxford Street","date_of_notice":"2026-11-03",` +
	`"penalty_amount_pence":16000,"discounted_amount_pence":8000,"discount_deadline":"2026-11-17","payment_due_date":null,` +
	`"field_confidence":{"notice_type":0.99,"issuing_authority":0.98,"pcn_number":0.97,"vehicle_registration":0.96,` +
	`"contravention_code":0.9,"contravention_datetime":0.95,"location":0.9,"penalty_amount_pence":0.99,` +
	`"discounted_amount_pence":0.99,"discount_deadline":0.9,"payment_due_date":0},"warnings":[]}`

// fakes answers PostgREST, Supabase Auth's JWKS and GCS in-process, and
// sends everything else (Anthropic's stand-in) over loopback.
type fakes struct {
	doc      []byte
	loopback http.RoundTripper
}

func (f *fakes) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		defer r.Body.Close()
	}
	switch {
	case r.URL.Host == "storage.googleapis.com":
		res := respond(r, 200, "")
		res.Body, res.ContentLength = io.NopCloser(bytes.NewReader(f.doc)), int64(len(f.doc))
		res.Header.Set("Content-Type", "application/pdf")
		res.Header.Set("Content-Length", strconv.Itoa(len(f.doc)))
		res.Header.Set("X-Goog-Generation", "1")
		return res, nil
	case strings.HasPrefix(supabaseURL, "https://"+r.URL.Host):
		return postgrest(r), nil
	}
	return f.loopback.RoundTrip(r)
}

// postgrest answers what one delivery asks: the queued job, its claim and
// release, the document, no matching vehicle, the new violation.
func postgrest(r *http.Request) *http.Response {
	table := strings.TrimPrefix(r.URL.Path, "/rest/v1/")
	switch {
	case r.URL.Path == "/auth/v1/.well-known/jwks.json":
		return respond(r, 200, `{"keys":[]}`)
	case table == "pcn_jobs" && r.Method == http.MethodGet:
		return respond(r, 200, `{"id":"f0000000-0000-4000-8000-000000000001","document_id":"`+documentID+`","status":"queued","attempts":0,"generation":0}`)
	case table == "pcn_jobs" && r.Method == http.MethodPatch:
		return respond(r, 200, `{"id":"f0000000-0000-4000-8000-000000000001"}`)
	case table == "documents":
		return respond(r, 200, `{"object_path":"`+objectPath+`","content_type":"application/pdf","status":"uploaded"}`)
	case table == "vehicles":
		return respond(r, 200, `[]`)
	case table == "violations" && r.Method == http.MethodPost:
		return respond(r, 201, `{"id":"99000000-0000-4000-8000-000000000001"}`)
	}
	return respond(r, 404, `{"code":"PGRST205","message":"not in the benchmark"}`)
}

func respond(r *http.Request, status int, body string) *http.Response {
	return &http.Response{StatusCode: status, Status: http.StatusText(status), Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{"Content-Type": {"application/json"}}, Body: io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)), Request: r}
}

// store is the document store over hc, with a throwaway signing key.
func store(hc *http.Client) (*gcs.Store, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	sa, _ := json.Marshal(map[string]string{"client_email": "docs@p.iam.gserviceaccount.com",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	client, err := storage.NewClient(context.Background(), option.WithHTTPClient(hc))
	if err != nil {
		return nil, err
	}
	return gcs.New(gcs.Config{Bucket: "fleet-docs", ServiceAccountJSON: string(sa)}, client)
}

type nopQueue struct{}

func (nopQueue) Enqueue(context.Context, tasks.Job, int) error { return nil }

// resetPeak starts VmHWM afresh from the current RSS (Linux clear_refs 5).
func resetPeak(b *testing.B) {
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Skipf("cannot reset the peak RSS (Linux only): %v", err)
	}
}

// status reads a kB field of /proc/self/status.
func status(b *testing.B, field string) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skipf("no /proc/self/status (Linux only): %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb
		}
	}
	b.Fatalf("%s not in /proc/self/status", field)
	return 0
}
