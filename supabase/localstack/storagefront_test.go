package localstack

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"cloud.google.com/go/storage"

	"github.com/fleetpilot/gateway/gateway/clients/gcs"
)

const appOrigin = "http://localhost:3000"

// testStorage is the emulator with its front, and the production signer
// configured against it.
func testStorage(t *testing.T) (*Storage, *gcs.Store) {
	t.Helper()
	st, err := StartStorage(StorageOptions{CORS: AppCORS(appOrigin)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Stop)
	client, err := st.Client(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	files, err := gcs.New(gcs.Config{Bucket: Bucket, ServiceAccountJSON: st.ServiceAccountJSON, Hostname: st.Host, Insecure: true}, client)
	if err != nil {
		t.Fatal(err)
	}
	return st, files
}

// signPut signs a create-only PUT the way the gateway does, with the
// generation precondition among the signed headers.
func signPut(t *testing.T, st *Storage, object, contentType string, size int) (string, map[string]string) {
	t.Helper()
	var sa struct {
		ClientEmail string `json:"client_email"`
		PrivateKey  string `json:"private_key"`
	}
	if err := json.Unmarshal([]byte(st.ServiceAccountJSON), &sa); err != nil {
		t.Fatal(err)
	}
	rng := strconv.Itoa(size) + "," + strconv.Itoa(size)
	u, err := storage.SignedURL(Bucket, object, &storage.SignedURLOptions{
		Scheme: storage.SigningSchemeV4, Method: http.MethodPut, Expires: time.Now().Add(15 * time.Minute),
		GoogleAccessID: sa.ClientEmail, PrivateKey: []byte(sa.PrivateKey), Hostname: st.Host, Insecure: true,
		ContentType: contentType, Headers: []string{"x-goog-content-length-range:" + rng, "x-goog-if-generation-match:0"},
	})
	if err != nil {
		t.Fatal(err)
	}
	return u, map[string]string{"Content-Type": contentType, "x-goog-content-length-range": rng, "x-goog-if-generation-match": "0"}
}

type gcsAnswer struct {
	Status int
	Code   string
	Header http.Header
	Body   []byte
}

func send(t *testing.T, method, url string, headers map[string]string, body []byte) gcsAnswer {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	a := gcsAnswer{Status: res.StatusCode, Header: res.Header, Body: b}
	if res.StatusCode >= 300 {
		var e struct {
			Code string `xml:"Code"`
		}
		if err := xml.Unmarshal(b, &e); err != nil {
			t.Fatalf("%s %d: not a GCS XML error: %q", method, res.StatusCode, b)
		}
		a.Code = e.Code
	}
	return a
}

func with(h map[string]string, k, v string) map[string]string {
	out := map[string]string{}
	for a, b := range h {
		out[a] = b
	}
	if v == "" {
		delete(out, k)
	} else {
		out[k] = v
	}
	return out
}

// TestStorageFrontSignedPut: the local bucket refuses what GCS refuses on a
// signed upload, with GCS's status and XML error code.
func TestStorageFrontSignedPut(t *testing.T) {
	st, files := testStorage(t)
	body := []byte("%PDF-1.4 hello")
	up, err := files.SignedUpload(context.Background(), "t1/doc-ok.pdf", "application/pdf", int64(len(body)), 15*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	tampered := up.URL[:len(up.URL)-1] + map[bool]string{true: "0", false: "1"}[!strings.HasSuffix(up.URL, "0")]
	other := strings.Replace(up.URL, "doc-ok.pdf", "doc-other.pdf", 1)
	tests := []struct {
		name    string
		method  string
		url     string
		headers map[string]string
		body    []byte
		status  int
		code    string
	}{
		{"wrong content type", http.MethodPut, up.URL, with(up.Headers, "Content-Type", "image/png"), body, 403, "SignatureDoesNotMatch"},
		{"signed header missing", http.MethodPut, up.URL, with(up.Headers, "x-goog-content-length-range", ""), body, 403, "SignatureDoesNotMatch"},
		{"range header changed", http.MethodPut, up.URL, with(up.Headers, "x-goog-content-length-range", "0,99999999"), body, 403, "SignatureDoesNotMatch"},
		{"tampered signature", http.MethodPut, tampered, up.Headers, body, 403, "SignatureDoesNotMatch"},
		{"other object", http.MethodPut, other, up.Headers, body, 403, "SignatureDoesNotMatch"},
		{"signed for PUT, sent as GET", http.MethodGet, up.URL, up.Headers, nil, 403, "SignatureDoesNotMatch"},
		{"body larger than signed", http.MethodPut, up.URL, up.Headers, append(body, 'x'), 400, "EntityTooLarge"},
		{"body smaller than signed", http.MethodPut, up.URL, up.Headers, body[1:], 400, "EntityTooSmall"},
		{"unsigned", http.MethodPut, "http://" + st.Host + "/" + Bucket + "/t1/doc-ok.pdf", up.Headers, body, 403, "AccessDenied"},
		{"right", http.MethodPut, up.URL, up.Headers, body, 200, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a := send(t, tc.method, tc.url, tc.headers, tc.body)
			if a.Status != tc.status || a.Code != tc.code {
				t.Fatalf("got %d %s, want %d %s: %s", a.Status, a.Code, tc.status, tc.code, a.Body)
			}
		})
	}
	obj, err := st.Server.GetObject(Bucket, "t1/doc-ok.pdf")
	if err != nil || !bytes.Equal(obj.Content, body) || obj.ContentType != "application/pdf" {
		t.Fatalf("stored %q (%s), %v", obj.Content, obj.ContentType, err)
	}
	if _, err := st.Server.GetObject(Bucket, "t1/doc-other.pdf"); err == nil {
		t.Error("a refused PUT stored an object")
	}
}

// TestStorageFrontExpiry: a URL is refused once X-Goog-Date + X-Goog-Expires
// has passed.
func TestStorageFrontExpiry(t *testing.T) {
	st, files := testStorage(t)
	up, err := files.SignedUpload(context.Background(), "t1/late.pdf", "application/pdf", 3, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	st.front.now = func() time.Time { return time.Now().Add(61 * time.Second) }
	if a := send(t, http.MethodPut, up.URL, up.Headers, []byte("abc")); a.Status != 400 || a.Code != "ExpiredToken" {
		t.Fatalf("got %d %s: %s", a.Status, a.Code, a.Body)
	}
}

// TestStorageFrontCreateOnly: with x-goog-if-generation-match: 0 signed, a
// second PUT to the same URL cannot replace the object (412).
func TestStorageFrontCreateOnly(t *testing.T) {
	st, _ := testStorage(t)
	u, h := signPut(t, st, "t1/pinned.pdf", "application/pdf", 5)
	if a := send(t, http.MethodPut, u, h, []byte("first")); a.Status != 200 {
		t.Fatalf("first PUT: %d %s", a.Status, a.Body)
	}
	if a := send(t, http.MethodPut, u, h, []byte("later")); a.Status != 412 || a.Code != "PreconditionFailed" {
		t.Fatalf("second PUT: %d %s: %s", a.Status, a.Code, a.Body)
	}
	obj, err := st.Server.GetObject(Bucket, "t1/pinned.pdf")
	if err != nil || string(obj.Content) != "first" {
		t.Fatalf("object = %q, %v", obj.Content, err)
	}
}

// TestStorageFrontSignedGet: a signed download (with its response
// parameters) verifies; the same URL with a changed parameter does not.
func TestStorageFrontSignedGet(t *testing.T) {
	st, files := testStorage(t)
	u, h := signPut(t, st, "t1/a b+c.pdf", "application/pdf", 3)
	if a := send(t, http.MethodPut, u, h, []byte("abc")); a.Status != 200 {
		t.Fatalf("PUT: %d %s", a.Status, a.Body)
	}
	get, _, err := files.SignedDownload(context.Background(), "t1/a b+c.pdf", "Notice 1.pdf", 0, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if a := send(t, http.MethodGet, get, nil, nil); a.Status != 200 || string(a.Body) != "abc" {
		t.Fatalf("GET: %d %q", a.Status, a.Body)
	}
	bad := strings.Replace(get, "Notice", "Other", 1)
	if a := send(t, http.MethodGet, bad, nil, nil); a.Status != 403 || a.Code != "SignatureDoesNotMatch" {
		t.Fatalf("changed GET: %d %s", a.Status, a.Code)
	}
}

// TestStorageFrontPinnedGet: a download pinned to a generation serves
// those bytes and nothing else, as GCS does.
func TestStorageFrontPinnedGet(t *testing.T) {
	st, files := testStorage(t)
	u, h := signPut(t, st, "t1/pinned-get.pdf", "application/pdf", 3)
	if a := send(t, http.MethodPut, u, h, []byte("abc")); a.Status != 200 {
		t.Fatalf("PUT: %d %s", a.Status, a.Body)
	}
	obj, err := st.Server.GetObject(Bucket, "t1/pinned-get.pdf")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		generation int64
		status     int
	}{{"the object's generation", obj.Generation, 200}, {"another generation", obj.Generation + 1, 404}} {
		get, _, err := files.SignedDownload(context.Background(), "t1/pinned-get.pdf", "a.pdf", tc.generation, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if a := send(t, http.MethodGet, get, nil, nil); a.Status != tc.status || (tc.status == 200 && string(a.Body) != "abc") {
			t.Errorf("%s: GET %d %q", tc.name, a.Status, a.Body)
		}
	}
}

// TestStorageFrontCORS: preflights and responses follow the bucket's rules
// only (the emulator alone would allow any origin).
func TestStorageFrontCORS(t *testing.T) {
	st, files := testStorage(t)
	object := "http://" + st.Host + "/" + Bucket + "/t1/x.pdf"
	preflight := func(origin, method, headers string) map[string]string {
		return map[string]string{"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}
	}
	signed := "content-type,x-goog-content-length-range,x-goog-if-generation-match"
	tests := []struct {
		name    string
		rules   []CORSRule
		headers map[string]string
		status  int
		allow   string
	}{
		{"app origin", AppCORS(appOrigin), preflight(appOrigin, "PUT", signed), 200, appOrigin},
		{"other origin", AppCORS(appOrigin), preflight("https://evil.example", "PUT", signed), 403, ""},
		{"method not allowed", AppCORS(appOrigin), preflight(appOrigin, "DELETE", ""), 403, ""},
		{"header not listed", AppCORS(appOrigin), preflight(appOrigin, "PUT", signed+",x-goog-acl"), 403, ""},
		{"no rules", nil, preflight(appOrigin, "PUT", signed), 403, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st.SetCORS(tc.rules)
			a := send(t, http.MethodOptions, object, tc.headers, nil)
			if a.Status != tc.status || a.Header.Get("Access-Control-Allow-Origin") != tc.allow {
				t.Fatalf("got %d allow-origin %q: %s", a.Status, a.Header.Get("Access-Control-Allow-Origin"), a.Body)
			}
			if tc.status == 200 && a.Header.Get("Access-Control-Allow-Headers") != signed {
				t.Errorf("allow-headers %q", a.Header.Get("Access-Control-Allow-Headers"))
			}
		})
	}
	st.SetCORS(AppCORS(appOrigin))
	for origin, allow := range map[string]string{appOrigin: appOrigin, "https://evil.example": ""} {
		up, err := files.SignedUpload(context.Background(), "t1/cors-"+strconv.Itoa(len(allow))+".pdf", "application/pdf", 3, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		a := send(t, http.MethodPut, up.URL, with(up.Headers, "Origin", origin), []byte("abc"))
		if a.Status != 200 || a.Header.Get("Access-Control-Allow-Origin") != allow {
			t.Errorf("PUT from %s: %d, allow-origin %q", origin, a.Status, a.Header.Get("Access-Control-Allow-Origin"))
		}
	}
}

// TestDeployGuideCORS: the CORS rules docs/deploy.md gives for the real
// bucket are the local bucket's rules (for its example origin).
func TestDeployGuideCORS(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "deploy.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "Put the app's origins in `cors.json`:\n\n```json\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("docs/deploy.md: no cors.json block")
	}
	var got []CORSRule
	if err := json.Unmarshal([]byte(block), &got); err != nil {
		t.Fatal(err)
	}
	if want := AppCORS("https://app.example.com"); !reflect.DeepEqual(got, want) {
		t.Errorf("docs/deploy.md cors.json = %+v, local rules %+v", got, want)
	}
}
