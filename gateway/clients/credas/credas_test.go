package credas

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/jarcoal/httpmock"
)

const base = "https://portal.credasdemo.test/api/v2/ci"

func client(t *testing.T, mt *httpmock.MockTransport) *Client {
	t.Helper()
	c, err := New(Config{BaseURL: base + "/", APIKey: "credas-key", JourneyID: "journey-1", ActorID: 7, Timeout: 200 * time.Millisecond}, &http.Client{Transport: mt})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCreateProcess(t *testing.T) {
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodPost, base+"/processes", func(r *http.Request) (*http.Response, error) {
		if r.Header.Get("X-API-KEY") != "credas-key" || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("X-Correlation-Id") != "req-9" {
			t.Errorf("headers %v", r.Header)
		}
		b, _ := io.ReadAll(r.Body)
		var body map[string]any
		_ = json.Unmarshal(b, &body)
		ent := body["processEntities"].([]any)[0].(map[string]any)
		if body["journeyId"] != "journey-1" || body["webhookUrl"] != "https://gw.example/webhooks/credas?x=1" ||
			ent["firstName"] != "Alice" || ent["surname"] != "Smith" || ent["emailAddress"] != "a@example.com" ||
			ent["actorId"] != float64(7) || ent["contactViaEmail"] != true || ent["contactViaSms"] != false || ent["reference"] != "cust-1" {
			t.Errorf("body = %s", b)
		}
		return httpmock.NewStringResponse(200, `{"processId":"p-1","processEntities":[{"entityId":"e-1"}]}`), nil
	})
	p, err := client(t, mt).CreateProcess(context.Background(), "check", "https://gw.example/webhooks/credas?x=1",
		Person{FirstName: "Alice", Surname: "Smith", Email: "a@example.com", Reference: "cust-1"}, ContactEmail, "req-9")
	if err != nil || p.ProcessID != "p-1" || p.EntityID != "e-1" {
		t.Fatalf("%+v %v", p, err)
	}
}

func TestCreateProcessFailures(t *testing.T) {
	tests := []struct {
		name      string
		responder httpmock.Responder
		want      error
	}{
		{"timeout is ambiguous", func(r *http.Request) (*http.Response, error) { <-r.Context().Done(); return nil, r.Context().Err() }, ErrAmbiguous},
		{"5xx is ambiguous", httpmock.NewStringResponder(502, `bad gateway`), ErrAmbiguous},
		{"no ids is ambiguous", httpmock.NewStringResponder(200, `{}`), ErrAmbiguous},
		{"bad request is rejected", httpmock.NewStringResponder(400, `{"errors":["journeyId invalid"]}`), ErrRejected},
		{"bad key is rejected", httpmock.NewStringResponder(403, ``), ErrRejected},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mt := httpmock.NewMockTransport()
			mt.RegisterResponder(http.MethodPost, base+"/processes", tc.responder)
			_, err := client(t, mt).CreateProcess(context.Background(), "t", "https://x", Person{FirstName: "A"}, ContactNone, "")
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if n := mt.GetTotalCallCount(); n != 1 {
				t.Errorf("create posted %d times; it must never be retried", n)
			}
		})
	}
}

func TestMagicLink(t *testing.T) {
	for _, body := range []string{`"https://portal.credas.test/ml/abc"`, `{"url":"https://portal.credas.test/ml/abc"}`} {
		mt := httpmock.NewMockTransport()
		mt.RegisterResponder(http.MethodGet, base+"/processes/p-1/entities/e-1/magic-link", httpmock.NewStringResponder(200, body))
		link, err := client(t, mt).MagicLink(context.Background(), Process{"p-1", "e-1"}, "")
		if err != nil || link != "https://portal.credas.test/ml/abc" {
			t.Errorf("%s: %q %v", body, link, err)
		}
	}
}

func TestResult(t *testing.T) {
	tests := []struct {
		details, summary string
		want             Outcome
	}{
		{`{"status":1,"statusDescription":"In progress"}`, "", Pending},
		{`{"status":2}`, `{"overallResult":"Pass"}`, Passed},
		{`{"status":2}`, `{"overallResult":"Refer"}`, Refer},
		{`{"status":2}`, `{"overallResult":"Fail"}`, Failed},
		{`{"status":2}`, `{"overallResult":4}`, Passed},
		{`{"status":2}`, `{"overallResult":"Something new"}`, Error},
		{`{"status":3}`, "", Expired},
	}
	for _, tc := range tests {
		mt := httpmock.NewMockTransport()
		mt.RegisterResponder(http.MethodGet, base+"/processes/p-1/details", httpmock.NewStringResponder(200, tc.details))
		mt.RegisterResponder(http.MethodGet, base+"/entities/e-1/summary", httpmock.NewStringResponder(200, tc.summary))
		got, raw, err := client(t, mt).Result(context.Background(), Process{"p-1", "e-1"}, "")
		if err != nil || got != tc.want || !json.Valid(raw) {
			t.Errorf("%s %s: %s %v", tc.details, tc.summary, got, err)
		}
	}
	mt := httpmock.NewMockTransport()
	mt.RegisterResponder(http.MethodGet, base+"/processes/p-1/details", httpmock.NewStringResponder(503, ``))
	if _, _, err := client(t, mt).Result(context.Background(), Process{"p-1", "e-1"}, ""); !errors.Is(err, ErrUnavailable) {
		t.Errorf("503: %v", err)
	}
}
