package localstack

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"cloud.google.com/go/storage"
	"github.com/fsouza/fake-gcs-server/fakestorage"
	"google.golang.org/api/option"
)

// Bucket is the local stack's documents bucket.
const Bucket = "fleetpilot-local-documents"

// serviceAccountEmail signs the local stack's URLs.
const serviceAccountEmail = "gateway@fleetpilot-local.iam.gserviceaccount.com"

// Storage is the local Google Cloud Storage: fake-gcs-server in-process
// behind a front that enforces what GCS enforces on signed URLs (V4
// signature, expiry, signed headers, length range, generation
// preconditions) and the bucket's CORS rules, answering GCS's XML errors.
// It listens on its own loopback port so that signed URLs work from a
// browser or `curl -T`.
type Storage struct {
	Server *fakestorage.Server
	// Host is host:port for signed URLs (sign with Insecure: it speaks http).
	Host string
	// ServiceAccountJSON is the local key the gateway signs URLs with; the
	// front verifies signatures with its public half.
	ServiceAccountJSON string

	front *storageFront
	http  *http.Server
}

// StorageOptions configure StartStorage.
type StorageOptions struct {
	// Root keeps the objects, KeyPath the service-account key, across
	// restarts; empty means in memory / a throwaway key.
	Root, KeyPath string
	// CORS are the bucket's CORS rules.
	CORS   []CORSRule
	Logger *slog.Logger
}

// StartStorage starts the emulator.
func StartStorage(o StorageOptions) (*Storage, error) {
	opts := fakestorage.Options{Scheme: "http", Host: "127.0.0.1", PublicHost: "127.0.0.1", NoListener: true, Writer: io.Discard}
	if o.Root != "" {
		if err := os.MkdirAll(o.Root, 0o700); err != nil {
			return nil, err
		}
		opts.StorageRoot = o.Root
	}
	saJSON, key, err := loadServiceAccount(o.KeyPath)
	if err != nil {
		return nil, err
	}
	srv, err := fakestorage.NewServerWithOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("localstack: gcs emulator: %w", err)
	}
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: Bucket})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Stop()
		return nil, err
	}
	front := &storageFront{
		next: srv.HTTPHandler(), objects: srv, bucket: Bucket,
		accessID: serviceAccountEmail, pub: &key.PublicKey, now: time.Now, cors: o.CORS,
	}
	s := &Storage{Server: srv, Host: ln.Addr().String(), ServiceAccountJSON: saJSON, front: front,
		http: &http.Server{Handler: front, ReadHeaderTimeout: 5 * time.Second}}
	go func() {
		if err := s.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && o.Logger != nil {
			o.Logger.Error("gcs emulator stopped", "err", err)
		}
	}()
	return s, nil
}

// SetCORS replaces the bucket's CORS rules (nil: none, as a new GCS bucket).
func (s *Storage) SetCORS(rules []CORSRule) { s.front.setCORS(rules) }

// Stop closes the listener and the emulator.
func (s *Storage) Stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = s.http.Shutdown(ctx)
	s.Server.Stop()
}

// Client is a storage client for the emulator. It goes through the JSON
// API, which the front leaves to the emulator unauthenticated (production
// authorises those calls with IAM, which has no local counterpart).
func (s *Storage) Client(ctx context.Context) (*storage.Client, error) {
	return storage.NewClient(ctx, option.WithEndpoint("http://"+s.Host+"/storage/v1/"), option.WithoutAuthentication(),
		storage.WithJSONReads())
}

// loadServiceAccount reads the key at path, creating it on first use so
// that URLs signed before a restart still verify; an empty path makes a
// throwaway key.
func loadServiceAccount(path string) (string, *rsa.PrivateKey, error) {
	if path != "" {
		if b, err := os.ReadFile(path); err == nil {
			var sa struct {
				PrivateKey string `json:"private_key"`
			}
			if err := json.Unmarshal(b, &sa); err != nil {
				return "", nil, fmt.Errorf("localstack: %s: %w", path, err)
			}
			blk, _ := pem.Decode([]byte(sa.PrivateKey))
			if blk == nil {
				return "", nil, fmt.Errorf("localstack: %s: private_key is not PEM", path)
			}
			k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
			if err != nil {
				return "", nil, fmt.Errorf("localstack: %s: %w", path, err)
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return "", nil, fmt.Errorf("localstack: %s: not an RSA key", path)
			}
			return string(b), rk, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", nil, err
		}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", nil, err
	}
	sa, err := json.Marshal(map[string]string{
		"type": "service_account", "client_email": serviceAccountEmail,
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	})
	if err != nil {
		return "", nil, err
	}
	if path != "" {
		if err := os.WriteFile(path, sa, 0o600); err != nil {
			return "", nil, err
		}
	}
	return string(sa), key, nil
}
