package gcs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"runtime"
	"strconv"
	"testing"
	"time"

	"cloud.google.com/go/storage"
	"google.golang.org/api/option"
)

// objectServer answers every object read with data, as GCS's XML API does.
type objectServer []byte

func (o objectServer) RoundTrip(r *http.Request) (*http.Response, error) {
	return &http.Response{StatusCode: 200, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: r,
		Header: http.Header{"Content-Type": {"application/pdf"}, "Content-Length": {strconv.Itoa(len(o))}, "X-Goog-Generation": {"1"}},
		Body:   io.NopCloser(bytes.NewReader(o)), ContentLength: int64(len(o))}, nil
}

// TestReadHoldsTheObjectOnce: a read allocates one buffer of the object's
// size, not a doubling buffer (a scan's document is the instance's biggest
// allocation), and refuses an object above the cap before reading it.
func TestReadHoldsTheObjectOnce(t *testing.T) {
	const size = 4 << 20
	data := bytes.Repeat([]byte("%PDF"), size/4)
	client, err := storage.NewClient(context.Background(), option.WithHTTPClient(&http.Client{Transport: objectServer(data)}))
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{bucket: client.Bucket("fleet-docs"), timeout: 10 * time.Second}
	tests := []struct {
		name    string
		max     int64
		wantErr error
	}{
		{"within the cap", size, nil},
		{"above the cap", size - 1, ErrTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			got, err := s.Read(context.Background(), "t/doc.pdf", 0, tc.max)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			allocated := after.TotalAlloc - before.TotalAlloc
			if tc.wantErr == nil {
				if !bytes.Equal(got, data) {
					t.Fatal("read returned other bytes")
				}
				if allocated > size+size/4 {
					t.Errorf("reading %d bytes allocated %d", size, allocated)
				}
			} else if allocated > size/4 {
				t.Errorf("a refused read allocated %d bytes", allocated)
			}
		})
	}
}

// generationServer holds one object at generation 7, as GCS does: a read
// naming another generation finds nothing.
type generationServer struct{ seen []string }

func (g *generationServer) RoundTrip(r *http.Request) (*http.Response, error) {
	gen := r.URL.Query().Get("generation")
	g.seen = append(g.seen, gen)
	if gen != "" && gen != "7" {
		return &http.Response{StatusCode: 404, Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1, Request: r,
			Header: http.Header{"Content-Type": {"application/xml"}}, Body: io.NopCloser(bytes.NewReader([]byte(`<Error><Code>NoSuchKey</Code></Error>`)))}, nil
	}
	return objectServer("%PDF-1.4").RoundTrip(r)
}

// TestReadPinnedGeneration: the scan reads exactly the generation the
// document was completed with.
func TestReadPinnedGeneration(t *testing.T) {
	gs := &generationServer{}
	client, err := storage.NewClient(context.Background(), option.WithHTTPClient(&http.Client{Transport: gs}))
	if err != nil {
		t.Fatal(err)
	}
	s := &Store{bucket: client.Bucket("fleet-docs"), timeout: 10 * time.Second}
	tests := []struct {
		name       string
		generation int64
		want       string
		wantErr    error
	}{
		{"the verified generation", 7, "7", nil},
		{"replaced since", 6, "6", ErrNotFound},
		{"not recorded (older documents)", 0, "", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gs.seen = nil
			_, err := s.Read(context.Background(), "t/doc.pdf", tc.generation, 1<<20)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if len(gs.seen) == 0 || gs.seen[0] != tc.want {
				t.Errorf("generation sent %q, want %q", gs.seen, tc.want)
			}
		})
	}
}
