package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"html/template"
	"net/http"
	"net/http/httptest"
	"os"
	osexec "os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetpilot/gateway/supabase/localstack"
)

// uploadPage does what the app's browser code does: ask the gateway for an
// upload URL, PUT the file to it with exactly the returned headers, then
// complete the document. Each step's outcome is posted back to the page's
// own origin, so the test needs no browser-automation protocol.
var uploadPage = template.Must(template.New("page").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>upload</title></head><body>
<script>
const cfg = {{.}};
async function step(name, f) {
  try { return await f(); } catch (e) { throw {step: name, error: String(e)}; }
}
async function run() {
  const auth = {"Authorization": "Bearer " + cfg.token};
  const body = new Blob([cfg.content], {type: cfg.contentType});
  const r = await step("upload-url", () => fetch(cfg.gateway + "/documents/upload-url", {
    method: "POST", headers: {...auth, "Content-Type": "application/json"},
    body: JSON.stringify({entity_type: "vehicle", entity_id: cfg.vehicle, doc_type: "pcn",
      filename: "notice.pdf", content_type: "application/pdf", size_bytes: body.size})}));
  if (r.status !== 201) return {step: "upload-url", status: r.status, body: await r.text()};
  const up = await r.json();
  const headers = {...up.upload_headers};
  for (const [k, v] of Object.entries(cfg.override || {})) headers[k] = v;
  const put = await step("put", () => fetch(up.upload_url, {method: up.upload_method, headers, body}));
  if (!put.ok) return {step: "put", status: put.status, body: await put.text()};
  const done = await step("complete", () => fetch(cfg.gateway + "/documents/" + up.document.id + "/complete", {method: "POST", headers: auth}));
  return {step: "complete", status: done.status, ok: done.status === 200, id: up.document.id};
}
run().catch(e => e).then(res => fetch("/result", {method: "POST", body: JSON.stringify(res)}));
</script></body></html>`))

// browserResult is what the page reports.
type browserResult struct {
	Step   string `json:"step"`
	Status int    `json:"status"`
	OK     bool   `json:"ok"`
	ID     string `json:"id"`
	Error  string `json:"error"`
	Body   string `json:"body"`
}

// chromium finds Debian's chromium (CHROMIUM_BIN overrides). Without it the
// test skips, except under CI, where it fails: `make test` installs it.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM_BIN"), "chromium", "chromium-browser", "google-chrome"} {
		if name == "" {
			continue
		}
		if p, err := osexec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("headless Chromium is required under CI (`make chromium` installs Debian's chromium package)")
	}
	t.Skip("chromium not installed (`make chromium` installs it)")
	return ""
}

// runInBrowser opens the upload page in headless Chromium and returns what
// the page reported; prepare gets the page's origin before the browser starts.
func runInBrowser(t *testing.T, bin string, cfg map[string]any, prepare func(origin string)) browserResult {
	t.Helper()
	results := make(chan browserResult, 1)
	var once sync.Once
	var rendered atomic.Pointer[[]byte]
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			// The page is rendered once cfg is complete, before the browser
			// starts; the atomic load is what the race detector sees of that
			// order (the browser's request reaches us through the network).
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			if p := rendered.Load(); p != nil {
				_, _ = w.Write(*p)
			} else {
				http.Error(w, "page not ready", http.StatusServiceUnavailable)
			}
		case "/result":
			var res browserResult
			if err := json.NewDecoder(r.Body).Decode(&res); err != nil {
				res.Error = "undecodable result: " + err.Error()
			}
			once.Do(func() { results <- res })
		default:
			http.NotFound(w, r)
		}
	}))
	defer page.Close()
	prepare(page.URL)
	gw, _ := gatewayWith(t, secretKey(), gwOpts{env: map[string]string{"CORS_ALLOWED_ORIGINS": page.URL}})
	cfg["gateway"] = gw.URL
	var html bytes.Buffer
	if err := uploadPage.Execute(&html, cfg); err != nil {
		t.Fatal(err)
	}
	b := html.Bytes()
	rendered.Store(&b)

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	var out strings.Builder
	cmd := osexec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
		"--user-data-dir="+t.TempDir(), page.URL+"/")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		cancel()
		<-exited
	}()
	select {
	case res := <-results:
		return res
	case err := <-exited:
		t.Fatalf("chromium exited before the page reported (%v):\n%s", err, out.String())
	case <-ctx.Done():
		t.Fatalf("no report from the page:\n%s", out.String())
	}
	return browserResult{}
}

// TestBrowserUpload: a real browser on another origin gets an upload URL
// from the gateway and PUTs a file to the local bucket, as the app does. It
// works only when the gateway's CORS, the bucket's CORS rules, the headers
// and the signature are all right: without the bucket's CORS rule the
// browser cannot even send the PUT, and a changed signed header is refused.
func TestBrowserUpload(t *testing.T) {
	needStack(t)
	bin := chromium(t)
	tests := []struct {
		name     string
		cors     bool
		override map[string]string
		want     browserResult
	}{
		{"upload works", true, nil, browserResult{Step: "complete", Status: 200, OK: true}},
		{"no bucket CORS rule", false, nil, browserResult{Step: "put", Error: "TypeError: Failed to fetch"}},
		{"other Content-Type than signed", true, map[string]string{"Content-Type": "application/octet-stream"},
			browserResult{Step: "put", Status: 403}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := newFleet(t)
			cfg := map[string]any{"token": a.token(t), "vehicle": a.Vehicle, "content": string(pdf), "contentType": "application/pdf",
				"override": tc.override}
			t.Cleanup(func() { stack.Storage.SetCORS(localstack.AppCORS("http://localhost:3000")) })
			got := runInBrowser(t, bin, cfg, func(origin string) {
				if tc.cors {
					stack.Storage.SetCORS(localstack.AppCORS(origin))
				} else {
					stack.Storage.SetCORS(nil)
				}
			})
			t.Logf("browser reported: %+v", got)
			if got.Step != tc.want.Step || got.Status != tc.want.Status || got.OK != tc.want.OK || got.Error != tc.want.Error {
				t.Fatalf("browser reported %+v, want %+v", got, tc.want)
			}
			if got.OK {
				var status string
				if err := db.QueryRow(t.Context(), `select status from documents where id = $1`, got.ID).Scan(&status); err != nil || status != "uploaded" {
					t.Errorf("document %s status %q, %v", got.ID, status, err)
				}
			}
		})
	}
}
