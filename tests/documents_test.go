package tests

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/storage"
	"github.com/jarcoal/httpmock"
	"google.golang.org/api/option"

	"github.com/fleetpilot/gateway/gateway/clients/gcs"
)

const (
	bucket     = "fleet-docs"
	documentID = "e0000000-0000-4000-8000-000000000001"
	docSelect  = "id,entity_type,entity_id,doc_type,filename,content_type,size_bytes,status,uploaded_at,created_at,updated_at"
	gcsObjects = "https://storage.googleapis.com/storage/v1/b/" + bucket + "/o/"
)

var docRow = `{"id":"` + documentID + `","entity_type":"vehicle","entity_id":"` + vehicleID + `","doc_type":"pcn","filename":"PCN.pdf",` +
	`"content_type":"application/pdf","size_bytes":1234,"status":"pending_upload","uploaded_at":null,"created_at":"2026-11-21T10:00:00+00:00","updated_at":"2026-11-21T10:00:00+00:00"}`

func objectPath() string {
	return tenantA + "/vehicle/" + vehicleID + "/pcn/" + documentID + "_PCN.pdf"
}

// testStore is a real gcs.Store signing with a throwaway key; its API calls
// (object attributes) go through hc, the test's mock transport.
func testStore(t *testing.T, hc *http.Client) *gcs.Store {
	t.Helper()
	der, _ := x509.MarshalPKCS8PrivateKey(signingKey())
	sa, _ := json.Marshal(map[string]string{"client_email": "docs@p.iam.gserviceaccount.com",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}))})
	client, err := storage.NewClient(context.Background(), option.WithHTTPClient(hc))
	if err != nil {
		t.Fatal(err)
	}
	s, err := gcs.New(gcs.Config{Bucket: bucket, ServiceAccountJSON: string(sa)}, client)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// signingKey is one RSA key for the whole run: generating one per test is slow.
var signingKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// onObject answers the GCS JSON API's object metadata request.
func (u *upstream) onObject(status int, body string) {
	u.mt.RegisterRegexpResponder(http.MethodGet, mustRegexp(`^`+strings.ReplaceAll(gcsObjects, ".", `\.`)), func(r *http.Request) (*http.Response, error) {
		u.record(r)
		resp := httpmock.NewStringResponse(status, body)
		resp.Header.Set("Content-Type", "application/json")
		return resp, nil
	})
}

func TestCreateDocumentUpload(t *testing.T) {
	e, up, _ := newApp(t, appOpts{files: true})
	up.on(http.MethodGet, "vehicles", 200, `[{"id":"`+vehicleID+`"}]`)
	up.on(http.MethodPost, "documents", 201, docRow)
	rec := call(e, http.MethodPost, "/documents/upload-url", tokenFor(t, tenantA), map[string]any{
		"entity_type": "vehicle", "entity_id": vehicleID, "doc_type": "pcn", "filename": "../PCN notice (1).pdf",
		"content_type": "application/pdf", "size_bytes": 1234, "tenant_id": tenantB,
	})
	wantStatus(t, rec, 201)
	var got struct {
		Document      map[string]any    `json:"document"`
		UploadURL     string            `json:"upload_url"`
		UploadMethod  string            `json:"upload_method"`
		UploadHeaders map[string]string `json:"upload_headers"`
		ExpiresAt     string            `json:"expires_at"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Document["id"] != documentID || got.UploadMethod != "PUT" || got.ExpiresAt == "" ||
		got.UploadHeaders["Content-Type"] != "application/pdf" || got.UploadHeaders["x-goog-content-length-range"] != "1234,1234" {
		t.Errorf("answer = %s", rec.Body.String())
	}
	wantQuery(t, up.only("vehicles"), url.Values{"id": {"eq." + vehicleID}, "tenant_id": {"eq." + tenantA}, "archived_at": {"is.null"}, "select": {"id"}, "limit": {"1"}})

	ins := up.only("documents")
	wantQuery(t, ins, url.Values{"select": {docSelect}})
	wantHeaders(t, ins, "return=representation")
	var row map[string]any
	_ = json.Unmarshal([]byte(ins.Body), &row)
	id, _ := row["id"].(string)
	wantPath := tenantA + "/vehicle/" + vehicleID + "/pcn/" + id + "_PCN_notice_1_.pdf"
	for k, v := range map[string]any{"tenant_id": tenantA, "entity_type": "vehicle", "entity_id": vehicleID, "doc_type": "pcn",
		"filename": "../PCN notice (1).pdf", "content_type": "application/pdf", "size_bytes": float64(1234),
		"status": "pending_upload", "created_by": userA, "object_path": wantPath} {
		if row[k] != v {
			t.Errorf("inserted %s = %v, want %v", k, row[k], v)
		}
	}
	u, _ := url.Parse(got.UploadURL)
	// The URL can only create the object: the precondition is signed, and
	// the client is told to send it.
	if u.Path != "/"+bucket+"/"+wantPath || u.Query().Get("X-Goog-SignedHeaders") != "content-type;host;x-goog-content-length-range;x-goog-if-generation-match" ||
		got.UploadHeaders["x-goog-if-generation-match"] != "0" {
		t.Errorf("upload URL %s, headers %v", got.UploadURL, got.UploadHeaders)
	}
}

func TestCreateDocumentUploadValidation(t *testing.T) {
	base := func() map[string]any {
		return map[string]any{"entity_type": "vehicle", "entity_id": vehicleID, "doc_type": "pcn", "filename": "a.pdf",
			"content_type": "application/pdf", "size_bytes": 10}
	}
	tests := []struct {
		name   string
		change map[string]any
		loc    string
		typ    string
	}{
		{"unknown entity type", map[string]any{"entity_type": "tenant"}, "entity_type", "enum"},
		{"doc type of another entity", map[string]any{"doc_type": "driving_licence"}, "doc_type", "enum"},
		{"content type not allowed", map[string]any{"content_type": "text/html"}, "content_type", "enum"},
		{"too large", map[string]any{"size_bytes": 20*1024*1024 + 1}, "size_bytes", "value_error"},
		{"empty", map[string]any{"size_bytes": 0}, "size_bytes", "value_error"},
		{"fractional size", map[string]any{"size_bytes": 1.5}, "size_bytes", "int_parsing"},
		{"control characters in the name", map[string]any{"filename": "a\x07.pdf"}, "filename", "value_error"},
		{"NUL in the name", map[string]any{"filename": "a\x00.pdf"}, "filename", "string_pattern_mismatch"},
		{"missing filename", map[string]any{"filename": nil}, "filename", "string_type"},
		{"entity id not a UUID", map[string]any{"entity_id": "1 or 1=1"}, "entity_id", "uuid_parsing"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{files: true})
			body := base()
			for k, v := range tc.change {
				body[k] = v
			}
			rec := call(e, http.MethodPost, "/documents/upload-url", tokenFor(t, tenantA), body)
			wantStatus(t, rec, 422)
			var v struct {
				Detail []struct {
					Loc  []string `json:"loc"`
					Type string   `json:"type"`
				} `json:"detail"`
			}
			_ = json.Unmarshal(rec.Body.Bytes(), &v)
			if len(v.Detail) != 1 || v.Detail[0].Loc[1] != tc.loc || v.Detail[0].Type != tc.typ {
				t.Errorf("detail = %s", rec.Body.String())
			}
			if n := len(up.requests()); n != 0 {
				t.Errorf("%d upstream requests", n)
			}
		})
	}
}

func TestCreateDocumentUploadOtherTenantsEntity(t *testing.T) {
	e, up, _ := newApp(t, appOpts{files: true})
	up.on(http.MethodGet, "bookings", 200, `[]`)
	rec := call(e, http.MethodPost, "/documents/upload-url", tokenFor(t, tenantA), map[string]any{
		"entity_type": "booking", "entity_id": vehicleID, "doc_type": "hire_agreement", "filename": "a.pdf",
		"content_type": "application/pdf", "size_bytes": 10})
	wantStatus(t, rec, 404)
	wantJSON(t, rec, `{"detail":"Booking not found"}`)
	if got := up.only("bookings").Query.Get("tenant_id"); got != "eq."+tenantA {
		t.Errorf("tenant = %s", got)
	}
}

func TestCompleteDocumentUpload(t *testing.T) {
	state := func(status string) string {
		return fmt.Sprintf(`{"status":%q,"object_path":%q,"filename":"PCN.pdf","content_type":"application/pdf","size_bytes":1234}`, status, objectPath())
	}
	tests := []struct {
		name       string
		status     string
		objStatus  int
		objBody    string
		wantStatus int
		wantBody   string
		wantPatch  bool
	}{
		{"uploaded", "pending_upload", 200, `{"name":"x","size":"1234","contentType":"application/pdf","generation":"7"}`, 200, "", true},
		{"object missing", "pending_upload", 404, `{"error":{"code":404,"message":"No such object: fleet-docs/secret/path"}}`, 409, `{"detail":"Upload not found"}`, false},
		{"wrong size", "pending_upload", 200, `{"name":"x","size":"99","contentType":"application/pdf"}`, 422, `{"detail":"Uploaded file size does not match the declared size"}`, false},
		{"wrong type", "pending_upload", 200, `{"name":"x","size":"1234","contentType":"text/html"}`, 422, `{"detail":"Uploaded file type does not match the declared type"}`, false},
		{"gcs down", "pending_upload", 500, `{"error":{"code":500,"message":"backendError in bucket fleet-docs"}}`, 502, `{"detail":"Failed to check the upload"}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, up, _ := newApp(t, appOpts{files: true})
			up.on(http.MethodGet, "documents", 200, state(tc.status))
			up.on(http.MethodPatch, "documents", 200, strings.Replace(docRow, "pending_upload", "uploaded", 1))
			up.onObject(tc.objStatus, tc.objBody)
			rec := call(e, http.MethodPost, "/documents/"+documentID+"/complete", tokenFor(t, tenantA), nil)
			wantStatus(t, rec, tc.wantStatus)
			if tc.wantBody != "" {
				wantJSON(t, rec, tc.wantBody)
			}
			var gcsReq, patch *captured
			for _, r := range up.requests() {
				r := r
				switch {
				case strings.HasPrefix(r.Path, "/storage/v1/"):
					gcsReq = &r
				case r.Method == http.MethodPatch:
					patch = &r
				}
			}
			if gcsReq == nil || gcsReq.Path != "/storage/v1/b/"+bucket+"/o/"+objectPath() {
				t.Errorf("GCS request = %+v", gcsReq)
			}
			if (patch != nil) != tc.wantPatch {
				t.Fatalf("patch sent = %v, want %v", patch != nil, tc.wantPatch)
			}
			if patch != nil {
				wantQuery(t, *patch, url.Values{"id": {"eq." + documentID}, "status": {"eq.pending_upload"}, "tenant_id": {"eq." + tenantA},
					"archived_at": {"is.null"}, "select": {docSelect}})
				var body map[string]any
				_ = json.Unmarshal([]byte(patch.Body), &body)
				if body["status"] != "uploaded" || body["size_bytes"] != float64(1234) || body["uploaded_at"] == nil || body["object_generation"] != float64(7) {
					t.Errorf("patch body = %s", patch.Body)
				}
			}
		})
	}
}

func TestCompleteIsIdempotent(t *testing.T) {
	e, up, _ := newApp(t, appOpts{files: true})
	up.on(http.MethodGet, "documents", 200, `{"id":"`+documentID+`","entity_type":"vehicle","entity_id":"`+vehicleID+`","doc_type":"pcn",`+
		`"status":"uploaded","object_path":"x","filename":"a","content_type":"application/pdf","size_bytes":1,`+
		`"uploaded_at":"2026-11-30T10:00:01+00:00","created_at":"2026-11-30T10:00:00+00:00","updated_at":"2026-11-30T10:00:01+00:00"}`)
	rec := call(e, http.MethodPost, "/documents/"+documentID+"/complete", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 200)
	for _, r := range up.requests() {
		if r.Method != http.MethodGet || strings.HasPrefix(r.Path, "/storage/") {
			t.Errorf("unexpected %s %s", r.Method, r.Path)
		}
	}
}

func TestDocumentDownloadURL(t *testing.T) {
	e, up, _ := newApp(t, appOpts{files: true})
	up.on(http.MethodGet, "documents", 200, fmt.Sprintf(`{"status":"uploaded","object_path":%q,"filename":"PCN Nov.pdf","content_type":"application/pdf","size_bytes":1}`, objectPath()))
	rec := call(e, http.MethodGet, "/documents/"+documentID+"/download-url", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 200)
	var got struct {
		DownloadURL string `json:"download_url"`
		ExpiresAt   string `json:"expires_at"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	u, err := url.Parse(got.DownloadURL)
	if err != nil || u.Path != "/"+bucket+"/"+objectPath() || u.Query().Get("X-Goog-Expires") < "299" ||
		u.Query().Get("response-content-disposition") != `attachment; filename="PCN Nov.pdf"; filename*=UTF-8''PCN%20Nov.pdf` {
		t.Errorf("download URL %s", got.DownloadURL)
	}
	wantQuery(t, up.only("documents"), url.Values{"id": {"eq." + documentID}, "tenant_id": {"eq." + tenantA}, "archived_at": {"is.null"},
		"select": {"status,object_path,filename,content_type,size_bytes,object_generation"}})
	if u.Query().Get("generation") != "" {
		t.Errorf("a document completed before generations were recorded got a pinned URL: %s", got.DownloadURL)
	}

	e2, up2, _ := newApp(t, appOpts{files: true})
	up2.on(http.MethodGet, "documents", 200, `{"status":"pending_upload","object_path":"x","filename":"a","content_type":"application/pdf","size_bytes":1}`)
	rec = call(e2, http.MethodGet, "/documents/"+documentID+"/download-url", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 409)
	wantJSON(t, rec, `{"detail":"Document is not uploaded yet"}`)
}

// TestDocumentDownloadURLPinned: the download URL names the generation
// /complete verified, so bytes written later are never served.
func TestDocumentDownloadURLPinned(t *testing.T) {
	e, up, _ := newApp(t, appOpts{files: true})
	up.on(http.MethodGet, "documents", 200, fmt.Sprintf(`{"status":"uploaded","object_path":%q,"filename":"a.pdf","content_type":"application/pdf","size_bytes":1,"object_generation":1764500000123456}`, objectPath()))
	rec := call(e, http.MethodGet, "/documents/"+documentID+"/download-url", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 200)
	var got struct {
		DownloadURL string `json:"download_url"`
	}
	_ = json.Unmarshal(rec.Body.Bytes(), &got)
	u, err := url.Parse(got.DownloadURL)
	if err != nil || u.Query().Get("generation") != "1764500000123456" || !strings.Contains(u.Query().Get("X-Goog-SignedHeaders"), "host") {
		t.Errorf("download URL %s", got.DownloadURL)
	}
}

func TestListDocuments(t *testing.T) {
	e, up, _ := newApp(t, appOpts{files: true})
	up.on(http.MethodGet, "documents", 200, "["+docRow+"]", "0-0/1")
	rec := call(e, http.MethodGet, "/documents?entity_type=vehicle&entity_id="+vehicleID+"&doc_type=pcn&limit=10", tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 200)
	if rec.Header().Get("X-Total-Count") != "1" {
		t.Errorf("X-Total-Count = %q", rec.Header().Get("X-Total-Count"))
	}
	wantQuery(t, up.only("documents"), url.Values{"tenant_id": {"eq." + tenantA}, "archived_at": {"is.null"}, "order": {"created_at.desc,id.desc"},
		"select": {docSelect}, "limit": {"11"}, "entity_type": {"eq.vehicle"}, "entity_id": {"eq." + vehicleID}, "doc_type": {"eq.pcn"}})
}

func TestDocumentsNotConfigured(t *testing.T) {
	e, up, _ := newApp(t, appOpts{})
	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/documents/upload-url"},
		{http.MethodPost, "/documents/" + documentID + "/complete"},
		{http.MethodGet, "/documents/" + documentID + "/download-url"},
	} {
		rec := call(e, c.method, c.path, tokenFor(t, tenantA), "{}")
		wantStatus(t, rec, 503)
		wantJSON(t, rec, `{"detail":"Document storage is not configured"}`)
	}
	if n := len(up.requests()); n != 0 {
		t.Errorf("%d upstream requests", n)
	}
}

func TestDeleteDocument(t *testing.T) {
	e, up, _ := newApp(t, appOpts{files: true})
	up.on(http.MethodPatch, "documents", 406, pgrst116)
	rec := call(e, http.MethodDelete, "/documents/"+documentID, tokenFor(t, tenantA), nil)
	wantStatus(t, rec, 404)
	r := up.only("documents")
	if r.Query.Get("tenant_id") != "eq."+tenantA || !strings.Contains(r.Body, "archived_at") {
		t.Errorf("archive request %+v", r)
	}
}
