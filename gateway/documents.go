package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/labstack/echo/v5"

	"github.com/fleetpilot/gateway/gateway/api"
	"github.com/fleetpilot/gateway/gateway/clients/gcs"
	"github.com/fleetpilot/gateway/supabase"
)

// FileStore signs URLs for one bucket and checks uploaded objects (gcs.Store).
type FileStore interface {
	SignedUpload(ctx context.Context, object, contentType string, size int64, ttl time.Duration) (gcs.Upload, error)
	SignedDownload(ctx context.Context, object, filename string, generation int64, ttl time.Duration) (string, time.Time, error)
	Stat(ctx context.Context, object string) (gcs.Attrs, error)
}

// documents are the tenant's documents; the response is DocumentResponse.
var documents = resource{
	table: "documents",
	columns: []supabase.Column{
		"id", "entity_type", "entity_id", "doc_type", "filename", "content_type",
		"size_bytes", "status", "uploaded_at", "created_at", "updated_at",
	},
	name: "Document",
}

// entityTables maps a document's entity_type to its table and the name used in errors.
var entityTables = map[string]struct{ table, name string }{
	"vehicle":   {"vehicles", "Vehicle"},
	"customer":  {"customers", "Customer"},
	"booking":   {"bookings", "Booking"},
	"incident":  {"incidents", "Incident"},
	"violation": {"violations", "Violation"},
}

func (s *server) files() (FileStore, error) { return configured(s.store, "Document storage") }

// CreateDocumentUpload answers POST /documents/upload-url.
// The Idempotency-Key header is handled by the idempotency middleware.
func (s *server) CreateDocumentUpload(c *echo.Context, _ api.CreateDocumentUploadParams) error {
	ctx := c.Request().Context()
	store, err := s.files()
	if err != nil {
		return err
	}
	b, err := readJSONBody(c)
	if err != nil {
		return err
	}
	const schema = "DocumentUploadRequest"
	entityType, okType := b.prop(s.rules, schema, "entity_type")
	entityID, _ := b.prop(s.rules, schema, "entity_id")
	var docType string
	if okType {
		// The document types each entity type accepts are DocType's x-doc-types-by-entity.
		docType, _ = b.enum("doc_type", true, s.rules.Schema("DocType").DocTypesByEntity[entityType])
	} else if !b.has("doc_type") {
		b.fail("doc_type", "Field required", "missing")
	}
	filename, okName := b.prop(s.rules, schema, "filename")
	if okName && strings.IndexFunc(filename, func(r rune) bool { return r < 0x20 || r == 0x7f }) >= 0 {
		b.fail("filename", "Filename must not contain control characters", "value_error")
	}
	contentType, _ := b.prop(s.rules, schema, "content_type")
	size, okSize := b.integer("size_bytes", true)
	if okSize && (size < 1 || size > s.cfg.GCS.MaxUploadBytes) {
		b.fail("size_bytes", "Input should be between 1 and "+itoa(s.cfg.GCS.MaxUploadBytes), "value_error")
	}
	if err := b.err(); err != nil {
		return err
	}
	tenant := tenantFrom(ctx)
	ent := entityTables[entityType]
	found, err := s.db.From(tenant, ent.table).Eq("id", entityID).Exists(ctx)
	if err != nil {
		return upstream("Failed to check the entity", err)
	}
	if !found {
		return notFound(ent.name + " not found")
	}

	// Sign first: if signing fails nothing is written.
	docID := uuid.NewString()
	object := gcs.ObjectPath(tenant.String(), entityType, entityID, docType, docID, filename)
	up, err := store.SignedUpload(ctx, object, contentType, size, s.cfg.GCS.UploadURLTTL)
	if err != nil {
		return upstream("Failed to create the upload URL", err)
	}
	p, _ := principalFrom(ctx)
	doc, err := s.db.From(tenant, documents.table).Select(documents.columns...).Insert(ctx, supabase.Row{
		"id": docID, "entity_type": entityType, "entity_id": entityID, "doc_type": docType,
		"filename": filename, "content_type": contentType, "size_bytes": size,
		"object_path": object, "status": "pending_upload", "created_by": p.UserID,
	})
	switch {
	case errors.Is(err, supabase.ErrForeignKey):
		return notFound(ent.name + " not found") // archived or deleted meanwhile
	case err != nil:
		return upstream("Failed to create the document", err)
	}
	return c.JSON(http.StatusCreated, struct {
		Document      json.RawMessage   `json:"document"`
		UploadURL     string            `json:"upload_url"`
		UploadMethod  string            `json:"upload_method"`
		UploadHeaders map[string]string `json:"upload_headers"`
		ExpiresAt     time.Time         `json:"expires_at"`
	}{doc, up.URL, up.Method, up.Headers, up.Expires.UTC()})
}

// documentState is what the gateway needs to know of a document, beyond its response.
type documentState struct {
	Status      string `json:"status"`
	ObjectPath  string `json:"object_path"`
	Filename    string `json:"filename"`
	ContentType string `json:"content_type"`
	SizeBytes   int64  `json:"size_bytes"`
	// Generation is the object's generation /complete verified; 0 for
	// documents completed before it was recorded.
	Generation int64 `json:"object_generation"`
}

// storedDocument is the preamble of the endpoints that touch a document's
// object: storage configured, a well-formed id, the tenant's document.
func (s *server) storedDocument(c *echo.Context, rawID string) (FileStore, string, documentState, error) {
	store, err := s.files()
	if err != nil {
		return nil, "", documentState{}, err
	}
	id, err := documents.id(rawID)
	if err != nil {
		return nil, "", documentState{}, err
	}
	st, err := s.documentState(c, id)
	return store, id, st, err
}

func (s *server) documentState(c *echo.Context, id string) (documentState, error) {
	ctx := c.Request().Context()
	var st documentState
	row, err := s.db.From(tenantFrom(ctx), documents.table).
		Select("status", "object_path", "filename", "content_type", "size_bytes", "object_generation").Eq("id", id).One(ctx)
	if err := documents.rowError("Failed to fetch document", err); err != nil {
		return st, err
	}
	if err := json.Unmarshal(row, &st); err != nil {
		return st, upstream("Failed to fetch document", err)
	}
	return st, nil
}

// CompleteDocumentUpload answers POST /documents/{id}/complete: the object
// must exist with the declared size and type. Calling it again is harmless.
func (s *server) CompleteDocumentUpload(c *echo.Context, id string) error {
	ctx := c.Request().Context()
	store, id, st, err := s.storedDocument(c, id)
	if err != nil {
		return err
	}
	if st.Status == "uploaded" {
		return s.GetDocument(c, id)
	}
	attrs, err := store.Stat(ctx, st.ObjectPath)
	if err != nil {
		return upstream("Failed to check the upload", err)
	}
	if attrs.Size != st.SizeBytes {
		return newError(http.StatusUnprocessableEntity, "Uploaded file size does not match the declared size", nil)
	}
	if !sameMediaType(attrs.ContentType, st.ContentType) {
		return newError(http.StatusUnprocessableEntity, "Uploaded file type does not match the declared type", nil)
	}
	doc, err := s.db.From(tenantFrom(ctx), documents.table).Select(documents.columns...).
		Eq("id", id).Eq("status", "pending_upload").
		UpdateOne(ctx, supabase.Row{"status": "uploaded", "uploaded_at": supabase.Now(), "size_bytes": attrs.Size, "object_generation": attrs.Generation})
	switch {
	case errors.Is(err, supabase.ErrNotFound):
		return s.GetDocument(c, id) // a concurrent completion won; same answer
	case err != nil:
		return upstream("Failed to update document", err)
	}
	return c.JSONBlob(http.StatusOK, doc)
}

func sameMediaType(a, b string) bool {
	ma, _, errA := mime.ParseMediaType(a)
	mb, _, errB := mime.ParseMediaType(b)
	return errA == nil && errB == nil && strings.EqualFold(ma, mb)
}

// ListDocuments answers GET /documents.
func (s *server) ListDocuments(c *echo.Context, p api.ListDocumentsParams) error {
	return s.list(c, documents, pageParams{p.Limit, p.Offset, p.Cursor},
		enumFilter("entity_type", p.EntityType, "EntityType"),
		idFilter("entity_id", p.EntityId),
		enumFilter("doc_type", p.DocType, "DocType"),
		enumFilter("status", p.Status, "DocumentStatus"))
}

// GetDocument answers GET /documents/{id}.
func (s *server) GetDocument(c *echo.Context, id string) error { return s.get(c, documents, id) }

// GetDocumentDownloadURL answers GET /documents/{id}/download-url.
func (s *server) GetDocumentDownloadURL(c *echo.Context, id string) error {
	store, _, st, err := s.storedDocument(c, id)
	if err != nil {
		return err
	}
	if st.Status != "uploaded" {
		return newError(http.StatusConflict, "Document is not uploaded yet", nil)
	}
	u, exp, err := store.SignedDownload(c.Request().Context(), st.ObjectPath, st.Filename, st.Generation, s.cfg.GCS.DownloadURLTTL)
	if err != nil {
		return upstream("Failed to create the download URL", err)
	}
	return c.JSON(http.StatusOK, api.DocumentDownload{DownloadUrl: u, ExpiresAt: exp.UTC()})
}

// DeleteDocument answers DELETE /documents/{id}: the row is archived; the
// object stays, since bucket lifecycle rules own deletion.
func (s *server) DeleteDocument(c *echo.Context, id string) error { return s.archive(c, documents, id) }
