// Package tests holds black-box tests of the gateway: the real app from
// wire.Build (the production wiring), with PostgREST and the JWKS endpoint mocked at the HTTP
// transport (httpmock), asserting the exact requests the gateway sends.
package tests

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/jarcoal/httpmock"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/clients/claude"
	"github.com/fleetpilot/gateway/gateway/clients/credas"
	"github.com/fleetpilot/gateway/gateway/clients/dvla"
	"github.com/fleetpilot/gateway/gateway/clients/gcs"
	"github.com/fleetpilot/gateway/gateway/domain/pcn"
	"github.com/fleetpilot/gateway/gateway/telemetry"
	"github.com/fleetpilot/gateway/gateway/wire"
	"github.com/fleetpilot/gateway/supabase"
	"github.com/fleetpilot/gateway/tests/contract"
)

const (
	supabaseURL = "https://proj.supabase.co"
	restURL     = supabaseURL + "/rest/v1/"
	jwtSecret   = "test-jwt-secret-with-at-least-32-characters"
	serviceKey  = "service-role-jwt-key"
	tenantA     = "aaaaaaaa-0000-4000-8000-000000000001"
	tenantB     = "bbbbbbbb-0000-4000-8000-000000000002"
	userA       = "11111111-0000-4000-8000-000000000001"
	incidentID  = "c0000000-0000-4000-8000-000000000001"
	vehicleID   = "d0000000-0000-4000-8000-000000000001"
)

// captured is one request the gateway sent upstream.
type captured struct {
	Method string
	Path   string
	Query  url.Values
	Header http.Header
	Body   string
}

// upstream is a mock PostgREST that records what it receives.
type upstream struct {
	t  *testing.T
	mt *httpmock.MockTransport
	mu sync.Mutex
	rq []captured
}

func newUpstream(t *testing.T) *upstream {
	u := &upstream{t: t, mt: httpmock.NewMockTransport()}
	u.mt.RegisterNoResponder(func(r *http.Request) (*http.Response, error) {
		t.Errorf("unexpected upstream request %s %s", r.Method, r.URL)
		return httpmock.NewStringResponse(599, ""), nil
	})
	// Supabase projects without asymmetric keys publish an empty JWKS.
	u.mt.RegisterResponder(http.MethodGet, supabaseURL+"/auth/v1/.well-known/jwks.json",
		httpmock.NewStringResponder(200, `{"keys":[]}`))
	return u
}

// on answers method on table with status and body (and Content-Range when given).
func (u *upstream) on(method, table string, status int, body string, contentRange ...string) {
	u.mt.RegisterResponder(method, restURL+table, func(r *http.Request) (*http.Response, error) {
		u.record(r)
		out := body
		if status < 300 {
			out = project(body, r.URL.Query().Get("select"))
		}
		resp := httpmock.NewStringResponse(status, out)
		resp.Header.Set("Content-Type", "application/json; charset=utf-8")
		if len(contentRange) > 0 {
			resp.Header.Set("Content-Range", contentRange[0])
		}
		return resp, nil
	})
}

var plainSelect = regexp.MustCompile(`^[a-z_]+(,[a-z_]+)*$`)

// project keeps only the selected columns of a row or list of rows, as
// PostgREST does, so that a fixture written as a whole row is answered the way
// the real service would answer the gateway's select.
func project(body, sel string) string {
	if !plainSelect.MatchString(sel) {
		return body
	}
	keep := map[string]bool{}
	for _, c := range strings.Split(sel, ",") {
		keep[c] = true
	}
	pick := func(row map[string]json.RawMessage) map[string]json.RawMessage {
		for k := range row {
			if !keep[k] {
				delete(row, k)
			}
		}
		return row
	}
	var one map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &one); err == nil {
		b, _ := json.Marshal(pick(one))
		return string(b)
	}
	var many []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(body), &many); err == nil {
		for i := range many {
			many[i] = pick(many[i])
		}
		b, _ := json.Marshal(many)
		return string(b)
	}
	return body
}

func (u *upstream) record(r *http.Request) {
	var body []byte
	if r.Body != nil {
		body, _ = io.ReadAll(r.Body)
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.rq = append(u.rq, captured{Method: r.Method, Path: r.URL.Path, Query: r.URL.Query(), Header: r.Header.Clone(), Body: string(body)})
}

func (u *upstream) requests() []captured {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]captured(nil), u.rq...)
}

// only returns the single request sent to table, failing otherwise.
func (u *upstream) only(table string) captured {
	u.t.Helper()
	var got []captured
	for _, r := range u.requests() {
		if r.Path == "/rest/v1/"+table {
			got = append(got, r)
		}
	}
	if len(got) != 1 {
		u.t.Fatalf("requests to %s = %d, want 1: %+v", table, len(got), got)
	}
	return got[0]
}

type appOpts struct {
	serviceKey string
	verifier   gateway.TokenVerifier
	mutate     func(*gateway.Config)
	// files wires a gcs.Store whose API calls go through the mock transport.
	files bool
	// pcn wires the PCN pipeline over the mock transport.
	pcn *pcnOpts
	// dvla wires DVLA lookups (at dvlaURL) over the mock transport.
	dvla bool
	// credas wires identity checks (Credas at credasURL) over the mock transport.
	credas bool
	// now is the gateway's clock; nil means time.Now.
	now func() time.Time
	// sweeps records the sweep tasks the DVLA and Credas planners enqueue.
	sweeps *recordingDispatcher
	// telemetry replaces the (off) telemetry of the test config.
	telemetry *telemetry.Telemetry
}

type pcnOpts struct {
	noClaude    bool
	queue       pcn.Queue
	maxAttempts int
}

func testConfig() gateway.Config {
	return gateway.Config{
		Port: 8080, AppEnv: "development", LogLevel: "debug",
		Supabase:     supabase.Config{URL: supabaseURL, ServiceKey: serviceKey, JWTSecret: jwtSecret, Timeout: 2 * time.Second, JWTRequireIssuer: true},
		MaxBodyBytes: 1 << 20, RequestTimeout: 5 * time.Second, InternalRequestTimeout: 10 * time.Second,
		InternalSecret: "internal-secret-with-at-least-32-chars!!",
		GCS:            gcs.Config{Bucket: "fleet-docs", MaxUploadBytes: 20 << 20, UploadURLTTL: 15 * time.Minute, DownloadURLTTL: 5 * time.Minute},
	}
}

// checker holds every answer of this suite to the OpenAPI document.
var checker = sync.OnceValues(contract.Load)

// newApp builds the real gateway with wire.Build, as production does, over
// a mock upstream: every outbound call goes through its transport. Logs go to
// logs. Every answer it gives is checked against the OpenAPI document: a
// status, header or field the document does not declare fails the test.
func newApp(t *testing.T, o appOpts) (http.Handler, *upstream, *bytes.Buffer) {
	t.Helper()
	u := newUpstream(t)
	cfg := testConfig()
	cfg.Supabase.RetryWait = time.Millisecond
	if o.serviceKey != "" {
		cfg.Supabase.ServiceKey = o.serviceKey
	}
	hc := &http.Client{Transport: u.mt}
	if o.sweeps == nil {
		o.sweeps = &recordingDispatcher{}
	}
	opts := wire.Options{HTTPClient: hc, Verifier: o.verifier, Queue: &recordingQueue{}, Sweeps: o.sweeps, Now: o.now, Telemetry: o.telemetry}
	if o.files {
		opts.Files = testStore(t, hc)
	}
	if o.pcn != nil {
		opts.Files = testStore(t, hc)
		if !o.pcn.noClaude {
			cfg.Claude = claude.Config{APIKey: "sk-test", Model: "claude-sonnet-5-5", BaseURL: anthropicURL, Timeout: 5 * time.Second}
		}
		if o.pcn.queue != nil {
			opts.Queue = o.pcn.queue
		}
		cfg.PCN.MaxAttempts = o.pcn.maxAttempts
	}
	if o.dvla {
		cfg.DVLA = dvla.Config{APIKey: "dvla-key", BaseURL: dvlaURL, Timeout: time.Second, Backoff: time.Millisecond, CacheTTL: time.Hour, NotFoundTTL: time.Minute}
		cfg.Fleet.Rate = 1000
	}
	if o.credas {
		cfg.Credas = credas.Config{BaseURL: credasURL, APIKey: "credas-key", JourneyID: "journey-1", ActorID: 7, Timeout: 300 * time.Millisecond}
		cfg.Identity.WebhookBaseURL = "https://gw.example"
	}
	if o.mutate != nil {
		o.mutate(&cfg)
	}
	logs := &syncBuffer{}
	app, err := wire.Build(t.Context(), cfg, gateway.NewLogger(logs, "debug"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(app.Close)
	return checked(t, app.Handler), u, &logs.Buffer
}

// checked wraps h so that its answers are checked against the document.
func checked(t *testing.T, h http.Handler) http.Handler {
	t.Helper()
	c, err := checker()
	if err != nil {
		t.Fatal(err)
	}
	return c.Handler(h, t.Errorf)
}

type syncBuffer struct {
	mu sync.Mutex
	bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Buffer.Write(p)
}

// claims returns valid claims for a user of tenant.
func claims(tenant string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{
		"iss": supabaseURL + "/auth/v1", "aud": "authenticated", "sub": userA,
		"role": "authenticated", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
		"email": "a@example.com", "tenant_id": tenant, "is_anonymous": false,
	}
}

func hs256(t testing.TB, c jwt.MapClaims, secret string) string {
	t.Helper()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func tokenFor(t testing.TB, tenant string) string { return hs256(t, claims(tenant), jwtSecret) }

// call sends a request through the app.
func call(e http.Handler, method, target, token string, body any) *httptest.ResponseRecorder {
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		j, _ := json.Marshal(b)
		rd = bytes.NewReader(j)
	}
	req := httptest.NewRequest(method, target, rd)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (end user browser)")
	rec := httptest.NewRecorder()
	e.ServeHTTP(rec, req)
	return rec
}

func wantStatus(t *testing.T, rec *httptest.ResponseRecorder, want int) {
	t.Helper()
	if rec.Code != want {
		t.Fatalf("status = %d, want %d; body %s", rec.Code, want, rec.Body.String())
	}
}

func wantJSON(t *testing.T, rec *httptest.ResponseRecorder, want string) {
	t.Helper()
	var got, exp any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("body %q is not JSON: %v", rec.Body.String(), err)
	}
	if err := json.Unmarshal([]byte(want), &exp); err != nil {
		t.Fatalf("bad expectation %q: %v", want, err)
	}
	gb, _ := json.Marshal(got)
	eb, _ := json.Marshal(exp)
	if !bytes.Equal(gb, eb) {
		t.Fatalf("body = %s\nwant   %s", gb, eb)
	}
}

// wantHeaders asserts the four PostgREST headers the gateway sends (legacy key) and
// that nothing of the end user's request leaks upstream.
func wantHeaders(t *testing.T, r captured, prefer string) {
	t.Helper()
	checks := map[string]string{
		"Apikey":        serviceKey,
		"Authorization": "Bearer " + serviceKey,
		"Content-Type":  "application/json",
		"Prefer":        prefer,
	}
	for k, want := range checks {
		if got := r.Header.Get(k); got != want {
			t.Errorf("upstream %s = %q, want %q", k, got, want)
		}
	}
	if ua := r.Header.Get("User-Agent"); strings.Contains(ua, "Mozilla") {
		t.Errorf("end user's User-Agent forwarded: %q", ua)
	}
}

func wantQuery(t *testing.T, r captured, want url.Values) {
	t.Helper()
	if r.Query.Encode() != want.Encode() {
		t.Errorf("upstream query\n got %s\nwant %s", r.Query.Encode(), want.Encode())
	}
}

func mustRegexp(s string) *regexp.Regexp { return regexp.MustCompile(s) }

func newRecorder() *httptest.ResponseRecorder { return httptest.NewRecorder() }
