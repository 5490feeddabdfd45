package e2e

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"testing"

	"github.com/fsouza/fake-gcs-server/fakestorage"

	"github.com/fleetpilot/gateway/supabase/localstack"
)

// pdf is a small but real PDF document.
var pdf = []byte("%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n" +
	"2 0 obj << /Type /Pages /Kids [3 0 R] /Count 1 >> endobj\n" +
	"3 0 obj << /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >> endobj\n" +
	"trailer << /Root 1 0 R >>\n%%EOF\n")

// TestDocumentsEndToEnd: upload URL, a real PUT to the emulator, complete,
// list, download URL and the same bytes back; another tenant sees 404 at
// every step.
func TestDocumentsEndToEnd(t *testing.T) {
	needStack(t)
	gw := gatewayServer(t, secretKey())
	a, b := newFleet(t), newFleet(t)
	tokA, tokB := a.token(t), b.token(t)

	r := do(t, gw.URL, http.MethodPost, "/documents/upload-url", tokA, fmt.Sprintf(
		`{"entity_type":"vehicle","entity_id":%q,"doc_type":"pcn","filename":"PCN Westminster (Nov).pdf","content_type":"application/pdf","size_bytes":%d}`,
		a.Vehicle, len(pdf)))
	want(t, r, 201)
	var up struct {
		Document struct {
			ID     string `json:"id"`
			Status string `json:"status"`
		} `json:"document"`
		UploadURL     string            `json:"upload_url"`
		UploadMethod  string            `json:"upload_method"`
		UploadHeaders map[string]string `json:"upload_headers"`
	}
	r.json(t, &up)
	id := up.Document.ID
	if up.Document.Status != "pending_upload" || up.UploadMethod != "PUT" {
		t.Fatalf("upload answer: %s", r.Body)
	}

	// B cannot request an upload for A's vehicle.
	want(t, do(t, gw.URL, http.MethodPost, "/documents/upload-url", tokB, fmt.Sprintf(
		`{"entity_type":"vehicle","entity_id":%q,"doc_type":"pcn","filename":"x.pdf","content_type":"application/pdf","size_bytes":10}`, a.Vehicle)), 404)

	// Completing before the upload: the object is not there yet.
	want(t, do(t, gw.URL, http.MethodPost, "/documents/"+id+"/complete", tokA, ""), 409)
	want(t, do(t, gw.URL, http.MethodGet, "/documents/"+id+"/download-url", tokA, ""), 409)

	// The browser's PUT, with exactly the headers it was given.
	if st := putUpload(t, up.UploadMethod, up.UploadURL, up.UploadHeaders, pdf); st != 200 {
		t.Fatalf("PUT to the signed URL: %d", st)
	}

	for _, c := range []struct{ method, path string }{
		{http.MethodPost, "/documents/" + id + "/complete"},
		{http.MethodGet, "/documents/" + id},
		{http.MethodGet, "/documents/" + id + "/download-url"},
		{http.MethodDelete, "/documents/" + id},
	} {
		want(t, do(t, gw.URL, c.method, c.path, tokB, ""), 404)
	}
	r = do(t, gw.URL, http.MethodGet, "/documents?entity_id="+a.Vehicle, tokB, "")
	want(t, r, 200)
	if r.Body != "[]" {
		t.Errorf("B lists A's documents: %s", r.Body)
	}

	r = do(t, gw.URL, http.MethodPost, "/documents/"+id+"/complete", tokA, "")
	want(t, r, 200)
	var doc map[string]any
	r.json(t, &doc)
	if doc["status"] != "uploaded" || doc["size_bytes"] != float64(len(pdf)) || doc["uploaded_at"] == nil {
		t.Errorf("completed: %s", r.Body)
	}
	want(t, do(t, gw.URL, http.MethodPost, "/documents/"+id+"/complete", tokA, ""), 200) // idempotent

	r = do(t, gw.URL, http.MethodGet, "/documents?entity_type=vehicle&entity_id="+a.Vehicle+"&doc_type=pcn", tokA, "")
	want(t, r, 200)
	if r.Header.Get("X-Total-Count") != "1" {
		t.Errorf("list: %s (total %s)", r.Body, r.Header.Get("X-Total-Count"))
	}

	r = do(t, gw.URL, http.MethodGet, "/documents/"+id+"/download-url", tokA, "")
	want(t, r, 200)
	var dl struct {
		DownloadURL string `json:"download_url"`
	}
	r.json(t, &dl)
	res, err := http.Get(dl.DownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Equal(got, pdf) {
		t.Errorf("download: %d, %d bytes (want %d)", res.StatusCode, len(got), len(pdf))
	}
	if st := row(t, "documents", id); st["object_path"] != fmt.Sprintf("%s/vehicle/%s/pcn/%s_PCN_Westminster_Nov_.pdf", a.Tenant, a.Vehicle, id) {
		t.Errorf("object_path = %v", st["object_path"])
	}

	want(t, do(t, gw.URL, http.MethodDelete, "/documents/"+id, tokA, ""), 204)
	want(t, do(t, gw.URL, http.MethodGet, "/documents/"+id, tokA, ""), 404)
}

// TestDocumentUploadSizeMismatch: a PUT of other bytes than declared is
// refused by the bucket (the signed length range, as GCS does), and an
// object that got there anyway (written behind the signed URL's back) is
// caught at completion.
func TestDocumentUploadSizeMismatch(t *testing.T) {
	needStack(t)
	gw := gatewayServer(t, secretKey())
	a := newFleet(t)
	tok := a.token(t)
	up := requestUpload(t, gw.URL, tok, fmt.Sprintf(
		`{"entity_type":"customer","entity_id":%q,"doc_type":"driving_licence","filename":"licence.jpg","content_type":"image/jpeg","size_bytes":5}`, a.Customer))
	if got := putUpload(t, http.MethodPut, up.URL, up.Headers, []byte("0123456789")); got != http.StatusBadRequest {
		t.Fatalf("PUT of 10 bytes to a 5-byte URL: %d, want 400", got)
	}
	object := row(t, "documents", up.Document.ID)["object_path"].(string)
	stack.Storage.Server.CreateObject(fakestorage.Object{ObjectAttrs: fakestorage.ObjectAttrs{BucketName: localstack.Bucket, Name: object, ContentType: "image/jpeg"},
		Content: []byte("0123456789")})
	r := do(t, gw.URL, http.MethodPost, "/documents/"+up.Document.ID+"/complete", tok, "")
	want(t, r, 422)
	if row(t, "documents", up.Document.ID)["status"] != "pending_upload" {
		t.Error("a mismatched upload was marked uploaded")
	}
}

// TestCompletedDocumentCannotBeReplaced: the signed PUT can only create the
// object, so once /complete verified it (or after the document was deleted)
// the same URL and headers are refused by the bucket (412); the generation
// /complete saw is recorded, and the download URL is pinned to it.
func TestCompletedDocumentCannotBeReplaced(t *testing.T) {
	needStack(t)
	gw := gatewayServer(t, secretKey())
	a := newFleet(t)
	tok := a.token(t)
	up := requestUpload(t, gw.URL, tok, fmt.Sprintf(
		`{"entity_type":"vehicle","entity_id":%q,"doc_type":"pcn","filename":"pcn.pdf","content_type":"application/pdf","size_bytes":%d}`, a.Vehicle, len(pdf)))
	if up.Headers["x-goog-if-generation-match"] != "0" {
		t.Fatalf("upload headers %v", up.Headers)
	}
	// Without the create-only precondition the signature does not hold.
	loose := map[string]string{}
	for k, v := range up.Headers {
		if k != "x-goog-if-generation-match" {
			loose[k] = v
		}
	}
	if st := putUpload(t, http.MethodPut, up.URL, loose, pdf); st != http.StatusForbidden {
		t.Fatalf("PUT without the precondition: %d, want 403", st)
	}
	if st := putUpload(t, http.MethodPut, up.URL, up.Headers, pdf); st != 200 {
		t.Fatalf("PUT: %d", st)
	}
	want(t, do(t, gw.URL, http.MethodPost, "/documents/"+up.Document.ID+"/complete", tok, ""), 200)
	swapped := bytes.Repeat([]byte("X"), len(pdf))
	if st := putUpload(t, http.MethodPut, up.URL, up.Headers, swapped); st != http.StatusPreconditionFailed {
		t.Fatalf("PUT to a completed document's URL: %d, want 412", st)
	}
	gen, _ := row(t, "documents", up.Document.ID)["object_generation"].(float64) // below 2^53: exact
	obj, err := stack.Storage.Server.GetObject(localstack.Bucket, row(t, "documents", up.Document.ID)["object_path"].(string))
	if err != nil || gen == 0 || int64(gen) != obj.Generation {
		t.Fatalf("object_generation %v, object generation %d (%v)", gen, obj.Generation, err)
	}

	r := do(t, gw.URL, http.MethodGet, "/documents/"+up.Document.ID+"/download-url", tok, "")
	want(t, r, 200)
	var dl struct {
		DownloadURL string `json:"download_url"`
	}
	r.json(t, &dl)
	u, _ := url.Parse(dl.DownloadURL)
	if u.Query().Get("generation") != fmt.Sprint(obj.Generation) {
		t.Errorf("download URL not pinned: %s", dl.DownloadURL)
	}
	res, err := http.Get(dl.DownloadURL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !bytes.Equal(got, pdf) {
		t.Errorf("download: %d, %d bytes", res.StatusCode, len(got))
	}

	// Deleting the document leaves the object: the URL still cannot replace it.
	want(t, do(t, gw.URL, http.MethodDelete, "/documents/"+up.Document.ID, tok, ""), 204)
	if st := putUpload(t, http.MethodPut, up.URL, up.Headers, swapped); st != http.StatusPreconditionFailed {
		t.Fatalf("PUT after DELETE: %d, want 412", st)
	}
}
