// Package gcs signs Google Cloud Storage URLs for direct browser uploads and
// downloads, and checks uploaded objects. It owns one bucket.
package gcs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"cloud.google.com/go/storage"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/api/option"
	htransport "google.golang.org/api/transport/http"
)

// ErrNotFound means the object does not exist.
var ErrNotFound = errors.New("gcs: object not found")

// Config selects the bucket, how URLs are signed and what they allow. The env
// tags are relative to the GCS_ prefix the gateway's configuration gives this
// section.
type Config struct {
	Bucket string `env:"BUCKET" envDefault:"saas-rental-492618-documents"`
	// ServiceAccountJSON is a service-account key: URLs are signed locally with it.
	ServiceAccountJSON string `env:"SERVICE_ACCOUNT_JSON"`
	// SignerEmail, without a key, signs through IAM signBlob as this service
	// account (the Cloud Run runtime identity; it needs
	// iam.serviceAccounts.signBlob on itself).
	SignerEmail string `env:"SIGNER_EMAIL"`
	// MaxUploadBytes is the largest document a signed upload URL accepts.
	MaxUploadBytes int64 `env:"MAX_UPLOAD_BYTES" envDefault:"20971520"`
	// UploadURLTTL and DownloadURLTTL are how long signed URLs stay valid.
	UploadURLTTL   time.Duration `env:"UPLOAD_URL_TTL" envDefault:"15m"`
	DownloadURLTTL time.Duration `env:"DOWNLOAD_URL_TTL" envDefault:"5m"`
	// Hostname and Insecure point signed URLs at an emulator (local stack).
	Hostname string
	Insecure bool
	// Timeout bounds each API call (object attributes, reads). Zero means 10 s.
	Timeout time.Duration
	// IAMOptions configure the IAM Credentials client that signs with
	// SignerEmail; empty means Application Default Credentials (tests point it
	// at a local server).
	IAMOptions []option.ClientOption
}

// Enabled reports whether URLs can be signed (a key or a signer email).
func (c Config) Enabled() bool { return c.ServiceAccountJSON != "" || c.SignerEmail != "" }

// Validate names each bad setting, one error per variable (keys without the prefix).
func (c Config) Validate() error {
	var p []error
	if c.ServiceAccountJSON != "" {
		var sa struct {
			ClientEmail string `json:"client_email"`
			PrivateKey  string `json:"private_key"`
		}
		if json.Unmarshal([]byte(c.ServiceAccountJSON), &sa) != nil || sa.ClientEmail == "" || sa.PrivateKey == "" {
			p = append(p, errors.New("SERVICE_ACCOUNT_JSON: must be a service-account key (JSON with client_email and private_key)"))
		}
	}
	if c.MaxUploadBytes < 1 || c.MaxUploadBytes > 5<<30 {
		p = append(p, errors.New("MAX_UPLOAD_BYTES: must be between 1 and 5 GiB"))
	}
	if c.UploadURLTTL < time.Minute || c.UploadURLTTL > 7*24*time.Hour {
		p = append(p, errors.New("UPLOAD_URL_TTL: must be between 1m and 168h"))
	}
	if c.DownloadURLTTL < 10*time.Second || c.DownloadURLTTL > 7*24*time.Hour {
		p = append(p, errors.New("DOWNLOAD_URL_TTL: must be between 10s and 168h"))
	}
	return errors.Join(p...)
}

// Store is one bucket. Safe for concurrent use.
type Store struct {
	bucket   *storage.BucketHandle
	name     string
	accessID string
	key      []byte
	hostname string
	insecure bool
	timeout  time.Duration
	iam      *iamSigner // nil when signing with a key
	now      func() time.Time
}

// New builds a store over client (built by the caller with the right
// credentials; see NewClient).
func New(cfg Config, client *storage.Client) (*Store, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("gcs: bucket is required")
	}
	s := &Store{bucket: client.Bucket(cfg.Bucket), name: cfg.Bucket, hostname: cfg.Hostname, insecure: cfg.Insecure,
		timeout: cfg.Timeout, now: time.Now}
	if s.timeout <= 0 {
		s.timeout = 10 * time.Second
	}
	switch {
	case cfg.ServiceAccountJSON != "":
		var sa struct {
			ClientEmail string `json:"client_email"`
			PrivateKey  string `json:"private_key"`
		}
		if err := json.Unmarshal([]byte(cfg.ServiceAccountJSON), &sa); err != nil || sa.ClientEmail == "" || sa.PrivateKey == "" {
			return nil, errors.New("gcs: service account JSON needs client_email and private_key")
		}
		s.accessID, s.key = sa.ClientEmail, []byte(sa.PrivateKey)
	case cfg.SignerEmail != "":
		iam, err := newIAMSigner(cfg.SignerEmail, cfg.IAMOptions)
		if err != nil {
			return nil, err
		}
		s.accessID, s.iam = cfg.SignerEmail, iam
	default:
		return nil, errors.New("gcs: a service account key or a signer email is required to sign URLs")
	}
	return s, nil
}

// Upload is a signed PUT the browser sends the file with.
type Upload struct {
	URL     string
	Method  string
	Headers map[string]string // the browser must send exactly these
	Expires time.Time
}

// SignedUpload signs a PUT of object bound to contentType, to exactly size
// bytes, and to creating the object: x-goog-if-generation-match: 0 is a
// signed header, so the URL cannot replace the object once it exists (after
// /complete verified it, or after it was deleted and re-created), however
// long the URL stays valid. Signing through IAM is bounded by ctx and a
// small retry budget.
func (s *Store) SignedUpload(ctx context.Context, object, contentType string, size int64, ttl time.Duration) (Upload, error) {
	ctx, end := s.signSpan(ctx, http.MethodPut)
	defer end()
	rng := strconv.FormatInt(size, 10) + "," + strconv.FormatInt(size, 10)
	exp := s.now().Add(ttl)
	u, err := s.bucket.SignedURL(object, s.opts(ctx, http.MethodPut, exp, func(o *storage.SignedURLOptions) {
		o.ContentType = contentType
		o.Headers = []string{"x-goog-content-length-range:" + rng, HeaderIfGenerationMatch + ":0"}
	}))
	if err != nil {
		return Upload{}, fmt.Errorf("gcs: sign upload: %w", err)
	}
	return Upload{URL: u, Method: http.MethodPut, Expires: exp, Headers: map[string]string{
		"Content-Type":                contentType,
		"x-goog-content-length-range": rng,
		HeaderIfGenerationMatch:       "0",
	}}, nil
}

// HeaderIfGenerationMatch is GCS's write precondition; 0 means "only if the
// object does not exist yet".
const HeaderIfGenerationMatch = "x-goog-if-generation-match"

// SignedDownload signs a GET of object that the browser saves as filename.
// A generation above 0 pins the URL to those bytes: if the object was
// replaced since, the URL finds nothing instead of the new bytes.
func (s *Store) SignedDownload(ctx context.Context, object, filename string, generation int64, ttl time.Duration) (string, time.Time, error) {
	ctx, end := s.signSpan(ctx, http.MethodGet)
	defer end()
	exp := s.now().Add(ttl)
	u, err := s.bucket.SignedURL(object, s.opts(ctx, http.MethodGet, exp, func(o *storage.SignedURLOptions) {
		o.QueryParameters = url.Values{"response-content-disposition": {ContentDisposition(filename)}}
		if generation > 0 {
			o.QueryParameters.Set("generation", strconv.FormatInt(generation, 10))
		}
	}))
	if err != nil {
		return "", time.Time{}, fmt.Errorf("gcs: sign download: %w", err)
	}
	return u, exp, nil
}

// signSpan times a signature as a child of the request's span (local RSA
// signing costs CPU; IAM signBlob is a round trip, whose client span is the
// child of this one). The provider is the request span's own, so the store
// needs no telemetry of its own.
func (s *Store) signSpan(ctx context.Context, method string) (context.Context, func()) {
	signer := "key"
	if s.iam != nil {
		signer = "iam"
	}
	ctx, span := trace.SpanFromContext(ctx).TracerProvider().Tracer("github.com/fleetpilot/gateway/gcs").Start(ctx, "gcs.sign "+method,
		trace.WithAttributes(attribute.String("fleetpilot.gcs.signer", signer), attribute.String("http.request.method", method)))
	return ctx, func() { span.End() }
}

func (s *Store) opts(ctx context.Context, method string, exp time.Time, f func(*storage.SignedURLOptions)) *storage.SignedURLOptions {
	o := &storage.SignedURLOptions{
		Scheme: storage.SigningSchemeV4, Method: method, Expires: exp,
		GoogleAccessID: s.accessID, Hostname: s.hostname, Insecure: s.insecure,
	}
	if len(s.key) > 0 {
		o.PrivateKey = s.key
	}
	if s.iam != nil {
		o.SignBytes = s.iam.signer(ctx)
	}
	f(o)
	return o
}

// Attrs are what the gateway checks of an uploaded object.
type Attrs struct {
	Size        int64
	ContentType string
	Generation  int64
}

// Stat reads the object's metadata; ErrNotFound when it does not exist.
func (s *Store) Stat(ctx context.Context, object string) (Attrs, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// A metadata read is idempotent: retried on transient errors, three tries at most.
	a, err := s.bucket.Object(object).Retryer(storage.WithMaxAttempts(3)).Attrs(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return Attrs{}, ErrNotFound
	}
	if err != nil {
		return Attrs{}, fmt.Errorf("gcs: stat %s: %w", object, err)
	}
	return Attrs{Size: a.Size, ContentType: a.ContentType, Generation: a.Generation}, nil
}

// NewClient builds the storage client for cfg: with the service-account key
// when there is one, else Application Default Credentials (the Cloud Run
// identity). wrap, when not nil, wraps the authenticated transport that
// every storage call goes through (telemetry).
func NewClient(ctx context.Context, cfg Config, wrap func(http.RoundTripper) http.RoundTripper) (*storage.Client, error) {
	var opts []option.ClientOption
	if cfg.ServiceAccountJSON != "" {
		opts = append(opts, option.WithAuthCredentialsJSON(option.ServiceAccount, []byte(cfg.ServiceAccountJSON)))
	}
	if wrap == nil {
		return storage.NewClient(ctx, opts...)
	}
	hc, err := AuthorizedClient(ctx, append(opts, option.WithScopes(storage.ScopeFullControl))...)
	if err != nil {
		return nil, err
	}
	hc.Transport = wrap(hc.Transport)
	return storage.NewClient(ctx, option.WithHTTPClient(hc))
}

// AuthorizedClient is an HTTP client that adds Google credentials (opts, else
// Application Default Credentials) to each call, so that a caller can wrap
// its transport and hand it over with option.WithHTTPClient.
func AuthorizedClient(ctx context.Context, opts ...option.ClientOption) (*http.Client, error) {
	hc, _, err := htransport.NewClient(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("gcs: http client: %w", err)
	}
	return hc, nil
}

// ErrTooLarge means the object is larger than the caller accepts.
var ErrTooLarge = errors.New("gcs: object too large")

// Read returns the object's bytes, refusing objects larger than max. A
// generation above 0 reads exactly that generation (ErrNotFound if the
// object was replaced since).
func (s *Store) Read(ctx context.Context, object string, generation, max int64) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	h := s.bucket.Object(object)
	if generation > 0 {
		h = h.Generation(generation)
	}
	r, err := h.Retryer(storage.WithMaxAttempts(3)).NewReader(ctx)
	if errors.Is(err, storage.ErrObjectNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("gcs: read %s: %w", object, err)
	}
	defer r.Close()
	if r.Attrs.Size > max {
		return nil, ErrTooLarge
	}
	if r.Attrs.Size < 0 { // size unknown (decompressed on the fly): read up to the cap
		b, err := io.ReadAll(io.LimitReader(r, max+1))
		if err != nil {
			return nil, fmt.Errorf("gcs: read %s: %w", object, err)
		}
		if int64(len(b)) > max {
			return nil, ErrTooLarge
		}
		return b, nil
	}
	// Exactly one buffer of the object's size. io.ReadAll grows by doubling,
	// and bytes.Buffer.ReadFrom grows a full buffer once more to find the
	// end: either holds up to twice the document.
	b := make([]byte, r.Attrs.Size)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, fmt.Errorf("gcs: read %s: %w", object, err)
	}
	// Read to the end, where the reader checks the object's checksum.
	var more [1]byte
	switch n, err := io.ReadFull(r, more[:]); {
	case n > 0:
		return nil, ErrTooLarge // longer than its size: it changed while read
	case err != io.EOF:
		return nil, fmt.Errorf("gcs: read %s: %w", object, err)
	}
	return b, nil
}
