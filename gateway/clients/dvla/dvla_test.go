package dvla

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
)

const base = "https://uat.dvla.test/vehicle-enquiry"

const aa19aaa = `{"registrationNumber":"AA19AAA","taxStatus":"Taxed","taxDueDate":"2027-03-01","motStatus":"Valid","motExpiryDate":"2027-01-15",
 "make":"FORD","colour":"RED","yearOfManufacture":2019,"engineCapacity":1598,"co2Emissions":120,"fuelType":"PETROL",
 "monthOfFirstRegistration":"2019-03","markedForExport":false,"typeApproval":"M1","wheelplan":"2 AXLE RIGID BODY",
 "revenueWeight":1640,"euroStatus":"EURO6","dateOfLastV5CIssued":"2019-05-20","somethingNew":true}`

func newClient(t *testing.T, mt *httpmock.MockTransport, timeout time.Duration) *Client {
	t.Helper()
	c, err := New(Config{APIKey: "dvla-key", BaseURL: base + "/", Timeout: timeout, Backoff: 10 * time.Millisecond}, &http.Client{Transport: mt})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestLookupRequestAndAnswer(t *testing.T) {
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodPost, base+"/v1/vehicles", func(r *http.Request) (*http.Response, error) {
		b, _ := io.ReadAll(r.Body)
		for k, want := range map[string]string{"x-api-key": "dvla-key", "Content-Type": "application/json", "Accept": "application/json", "X-Correlation-Id": "req-1"} {
			if got := r.Header.Get(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		if string(b) != `{"registrationNumber":"AA19AAA"}` {
			t.Errorf("body = %s", b)
		}
		return httpmock.NewStringResponse(200, aa19aaa), nil
	})
	v, err := newClient(t, mt, time.Second).Lookup(context.Background(), "AA19AAA", "req-1")
	if err != nil {
		t.Fatal(err)
	}
	if v.Registration != "AA19AAA" || *v.Make != "FORD" || *v.YearOfManufacture != 2019 || *v.MonthOfFirstRegistration != "2019-03" ||
		*v.TaxStatus != "Taxed" || *v.MOTExpiryDate != "2027-01-15" || *v.EngineCapacity != 1598 {
		t.Errorf("vehicle = %+v", v)
	}
}

func TestLookupStatuses(t *testing.T) {
	tests := []struct {
		name      string
		responses []*http.Response
		wantErr   error
		rateLim   bool
		retryIn   time.Duration
		calls     int
	}{
		{"not found", []*http.Response{resp(404, `{"errors":[{"status":"404","code":"404","title":"Vehicle Not Found","detail":"Record for vehicle not found"}]}`, "")}, ErrNotFound, false, 0, 1},
		{"bad registration", []*http.Response{resp(400, `{"errors":[{"status":"400","title":"Bad Request","detail":"Invalid format for field - vehicle registration number"}]}`, "")}, ErrInvalid, false, 0, 1},
		{"bad key", []*http.Response{resp(403, `{"message":"Forbidden"}`, "")}, ErrRejected, false, 0, 1},
		{"throttled every time", []*http.Response{resp(429, `{}`, "1"), resp(429, `{}`, "1"), resp(429, `{}`, "1")}, nil, true, time.Second, 3},
		{"down every time", []*http.Response{resp(503, `{}`, ""), resp(500, `{}`, ""), resp(502, `{}`, "")}, nil, false, 0, 3},
		{"recovers", []*http.Response{resp(500, `{}`, ""), resp(200, aa19aaa, "")}, nil, false, 0, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mt := httpmock.NewMockTransport()
			var n atomic.Int32
			mt.RegisterResponder(http.MethodPost, base+"/v1/vehicles", func(r *http.Request) (*http.Response, error) {
				i := int(n.Add(1)) - 1
				return tc.responses[min(i, len(tc.responses)-1)], nil
			})
			_, err := newClient(t, mt, time.Second).Lookup(context.Background(), "ER19THR", "")
			if int(n.Load()) != tc.calls {
				t.Errorf("calls = %d, want %d", n.Load(), tc.calls)
			}
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			var ue *UnavailableError
			if tc.name == "recovers" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.As(err, &ue) || ue.RateLimited != tc.rateLim || ue.RetryAfter != tc.retryIn {
				t.Fatalf("err = %#v", err)
			}
		})
	}
}

func resp(status int, body, retryAfter string) *http.Response {
	r := httpmock.NewStringResponse(status, body)
	if retryAfter != "" {
		r.Header.Set("Retry-After", retryAfter)
	}
	return r
}

// TestSlowUpstreamHitsTheDeadline: a DVLA that never answers costs at most
// the caller's deadline, not tries x timeout.
func TestSlowUpstreamHitsTheDeadline(t *testing.T) {
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodPost, base+"/v1/vehicles", func(r *http.Request) (*http.Response, error) {
		<-r.Context().Done()
		return nil, r.Context().Err()
	})
	c := newClient(t, mt, 150*time.Millisecond)
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.Lookup(ctx, "AA19AAA", "")
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("err = %v", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v, beyond the 400 ms deadline", d)
	}
}

// TestCacheSharesOneCall: 50 concurrent lookups of one registration make
// one DVLA call; later lookups come from the cache; fresh goes upstream.
func TestCacheSharesOneCall(t *testing.T) {
	mt := httpmock.NewMockTransport()
	var n atomic.Int32
	release := make(chan struct{})
	mt.RegisterResponder(http.MethodPost, base+"/v1/vehicles", func(r *http.Request) (*http.Response, error) {
		n.Add(1)
		<-release
		return httpmock.NewStringResponse(200, aa19aaa), nil
	})
	k := NewCache(newClient(t, mt, 5*time.Second), time.Hour, time.Minute, 100)
	var wg sync.WaitGroup
	errs := make(chan error, 50)
	for range 50 {
		wg.Go(func() {
			v, err := k.Lookup(context.Background(), "AA19AAA", "", false)
			if err == nil && v.Registration != "AA19AAA" {
				err = errors.New("wrong vehicle")
			}
			errs <- err
		})
	}
	time.Sleep(50 * time.Millisecond)
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if n.Load() != 1 {
		t.Fatalf("%d DVLA calls for 50 concurrent lookups, want 1", n.Load())
	}
	if _, err := k.Lookup(context.Background(), "AA19AAA", "", false); err != nil || n.Load() != 1 {
		t.Errorf("cached lookup went upstream (%d calls, %v)", n.Load(), err)
	}
	if _, err := k.Lookup(context.Background(), "AA19AAA", "", true); err != nil || n.Load() != 2 {
		t.Errorf("fresh lookup did not go upstream (%d calls, %v)", n.Load(), err)
	}
}

func TestCacheNotFoundBriefly(t *testing.T) {
	mt := httpmock.NewMockTransport()
	var n atomic.Int32
	mt.RegisterResponder(http.MethodPost, base+"/v1/vehicles", func(r *http.Request) (*http.Response, error) {
		n.Add(1)
		return httpmock.NewStringResponse(404, `{}`), nil
	})
	k := NewCache(newClient(t, mt, time.Second), time.Hour, time.Minute, 100)
	now := time.Now()
	k.now = func() time.Time { return now }
	for range 3 {
		if _, err := k.Lookup(context.Background(), "ER19NFD", "", false); !errors.Is(err, ErrNotFound) {
			t.Fatal(err)
		}
	}
	now = now.Add(2 * time.Minute)
	_, _ = k.Lookup(context.Background(), "ER19NFD", "", false)
	if n.Load() != 2 {
		t.Errorf("calls = %d, want 2 (cached not-found, then expired)", n.Load())
	}
}

// TestCacheEvictsOldestInConstantTime: a full cache drops its oldest
// registration for a new one (no scan of the whole cache under the lock),
// and never holds more than its bound.
func TestCacheEvictsOldestInConstantTime(t *testing.T) {
	mt := httpmock.NewMockTransport()
	var n atomic.Int32
	mt.RegisterResponder(http.MethodPost, base+"/v1/vehicles", func(r *http.Request) (*http.Response, error) {
		n.Add(1)
		return httpmock.NewStringResponse(200, aa19aaa), nil
	})
	k := NewCache(newClient(t, mt, time.Second), time.Hour, time.Minute, 3)
	for _, vrm := range []string{"AA19AAA", "AA19EEE", "AA19PPP", "AA19SRN"} {
		if _, err := k.Lookup(context.Background(), vrm, "", false); err != nil {
			t.Fatal(err)
		}
	}
	if k.Len() != 3 {
		t.Errorf("entries = %d, want the bound 3", k.Len())
	}
	// AA19EEE..AA19SRN are still cached; AA19AAA, the oldest, went.
	for _, vrm := range []string{"AA19EEE", "AA19PPP", "AA19SRN"} {
		_, _ = k.Lookup(context.Background(), vrm, "", false)
	}
	if n.Load() != 4 {
		t.Errorf("calls = %d, want 4 (the three newest from the cache)", n.Load())
	}
	_, _ = k.Lookup(context.Background(), "AA19AAA", "", false)
	if n.Load() != 5 {
		t.Errorf("calls = %d, want 5 (the evicted oldest looked up again)", n.Load())
	}
}
