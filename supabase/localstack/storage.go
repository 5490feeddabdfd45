package localstack

import (
	"context"

	"cloud.google.com/go/storage"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"google.golang.org/api/option"
	"io"
	"net/url"
	"os"

	"github.com/fsouza/fake-gcs-server/fakestorage"
)

// Bucket is the local stack's documents bucket.
const Bucket = "fleetpilot-local-documents"

// Storage is the local Google Cloud Storage emulator (fake-gcs-server,
// in-process, on its own loopback port so that signed URLs really work with
// `curl -T`). It checks no signatures; the gateway's tests check those.
type Storage struct {
	Server *fakestorage.Server
	// Host is host:port for signed URLs (sign with Insecure: the emulator speaks http).
	Host string
	// ServiceAccountJSON is a throwaway key the gateway signs local URLs with.
	ServiceAccountJSON string
}

// StartStorage starts the emulator; objects persist under root when it is
// not empty.
func StartStorage(root string) (*Storage, error) {
	opts := fakestorage.Options{
		Scheme: "http", Host: "127.0.0.1", PublicHost: "127.0.0.1",
		AllowedCORSHeaders: []string{"x-goog-content-length-range"},
		Writer:             io.Discard,
	}
	if root != "" {
		if err := os.MkdirAll(root, 0o700); err != nil {
			return nil, err
		}
		opts.StorageRoot = root
	}
	srv, err := fakestorage.NewServerWithOptions(opts)
	if err != nil {
		return nil, fmt.Errorf("localstack: gcs emulator: %w", err)
	}
	srv.CreateBucketWithOpts(fakestorage.CreateBucketOpts{Name: Bucket})
	u, err := url.Parse(srv.URL())
	if err != nil {
		srv.Stop()
		return nil, err
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		srv.Stop()
		return nil, err
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	sa, _ := json.Marshal(map[string]string{
		"type": "service_account", "client_email": "gateway@fleetpilot-local.iam.gserviceaccount.com",
		"private_key": string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
	})
	return &Storage{Server: srv, Host: u.Host, ServiceAccountJSON: string(sa)}, nil
}

// Client is a storage client for the emulator. Reads go through the JSON
// API: the emulator serves XML-API reads only for its public host name.
func (s *Storage) Client(ctx context.Context) (*storage.Client, error) {
	return storage.NewClient(ctx, option.WithEndpoint(s.Server.URL()+"/storage/v1/"), option.WithoutAuthentication(),
		storage.WithJSONReads())
}
