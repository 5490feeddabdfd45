package gcs

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
)

// fakeIAM is an IAM Credentials endpoint: status answers each call (after
// the given number of failures, it signs with key).
type fakeIAM struct {
	key      *rsa.PrivateKey
	failures int32
	status   int
	hang     bool
	stop     chan struct{}
	calls    atomic.Int32
	paths    atomic.Value
}

func (f *fakeIAM) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	n := f.calls.Add(1)
	f.paths.Store(r.URL.Path)
	if f.hang {
		select {
		case <-r.Context().Done():
		case <-f.stop:
		}
		return
	}
	if n <= f.failures {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(f.status)
		_, _ = w.Write([]byte(`{"error":{"code":` + strconv.Itoa(f.status) + `,"message":"unavailable"}}`))
		return
	}
	var req struct{ Payload string }
	_ = json.NewDecoder(r.Body).Decode(&req)
	in, _ := base64.StdEncoding.DecodeString(req.Payload)
	sum := sha256.Sum256(in)
	sig, _ := rsa.SignPKCS1v15(rand.Reader, f.key, crypto.SHA256, sum[:])
	_ = json.NewEncoder(w).Encode(map[string]string{"keyId": "k1", "signedBlob": base64.StdEncoding.EncodeToString(sig)})
}

func iamStore(t *testing.T, iam *fakeIAM) *Store {
	t.Helper()
	srv := httptest.NewServer(iam)
	t.Cleanup(srv.Close)
	iam.stop = make(chan struct{})
	t.Cleanup(func() { close(iam.stop) })
	client, err := storage.NewClient(context.Background(), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Bucket: "fleet-docs", SignerEmail: "runtime@proj.iam.gserviceaccount.com",
		IAMOptions: []option.ClientOption{option.WithEndpoint(srv.URL), option.WithoutAuthentication()}}, client)
	if err != nil {
		t.Fatal(err)
	}
	s.iam.sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() } // no real waits
	return s
}

// TestSignBlob: without a key, URLs are signed by IAM signBlob as the signer
// account, within a small retry budget and never past the caller's deadline.
func TestSignBlob(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name      string
		failures  int32
		status    int
		wantCalls int32
		wantErr   bool
	}{
		{"signs at once", 0, 0, 1, false},
		{"a transient failure is retried", 2, http.StatusServiceUnavailable, 3, false},
		{"a failing IAM gives up after the budget", 100, http.StatusServiceUnavailable, signBlobTries, true},
		{"a refusal is not retried", 100, http.StatusForbidden, 1, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			iam := &fakeIAM{key: key, failures: tc.failures, status: tc.status}
			s := iamStore(t, iam)
			up, err := s.SignedUpload(context.Background(), "t1/vehicle/v1/pcn/d1_a.pdf", "application/pdf", 10, time.Minute)
			if got := iam.calls.Load(); got != tc.wantCalls {
				t.Errorf("signBlob calls = %d, want %d", got, tc.wantCalls)
			}
			if p, _ := iam.paths.Load().(string); !strings.HasSuffix(p, "/projects/-/serviceAccounts/runtime@proj.iam.gserviceaccount.com:signBlob") {
				t.Errorf("signBlob path = %q", p)
			}
			if tc.wantErr {
				if err == nil {
					t.Fatal("signing succeeded against a failing IAM")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := verifyV4(t, &key.PublicKey, up.URL, http.MethodPut, up.Headers); err != nil {
				t.Errorf("signature made through signBlob does not verify: %v", err)
			}
		})
	}
}

// TestSignBlobBoundedByDeadline: an IAM endpoint that never answers costs the
// caller its own deadline, not the library's unbounded retries.
func TestSignBlobBoundedByDeadline(t *testing.T) {
	iam := &fakeIAM{hang: true}
	s := iamStore(t, iam)
	s.iam.sleep = sleepCtx
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _, err := s.SignedDownload(ctx, "t1/vehicle/v1/pcn/d1_a.pdf", "a.pdf", 0, time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v, want the deadline", err)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("signing held the caller %v past a 300 ms deadline", took)
	}
	if got := iam.calls.Load(); got != 1 {
		t.Errorf("signBlob calls = %d, want 1 (no retry after the deadline)", got)
	}
}
