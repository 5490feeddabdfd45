package claude

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// ToolResponse wraps a tool input in a Messages API answer.
func ToolResponse(input string) string {
	return `{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-5-5","content":[` +
		`{"type":"tool_use","id":"toolu_1","name":"record_pcn","input":` + input + `}],` +
		`"stop_reason":"tool_use","stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":5}}`
}

const goodInput = `{"is_penalty_notice":true,"notice_type":"council_pcn_on_vehicle","issuer_type":"local_authority",
 "issuing_authority":"Westminster City Council","pcn_number":"WM12345678","vehicle_registration":"AB12 CDE",
 "vehicle_make":"FORD","vehicle_colour":"BLUE","contravention_code":"01","contravention_description":"Parked in a restricted street",
 "contravention_datetime":"2026-11-03T14:20:00+00:00","location":"Oxford Street","date_of_notice":"2026-11-03",
 "penalty_amount_pence":16000,"discounted_amount_pence":8000,"discount_deadline":"2026-11-17","payment_due_date":null,
 "field_confidence":{"notice_type":0.99,"issuing_authority":0.98,"pcn_number":0.97,"vehicle_registration":0.96,"contravention_code":0.9,
  "contravention_datetime":0.95,"location":0.9,"penalty_amount_pence":0.99,"discounted_amount_pence":0.99,"discount_deadline":0.9,"payment_due_date":0},
 "warnings":[]}`

func server(t *testing.T, status int, body string, seen func(r *http.Request, b map[string]any)) (*Client, *atomic.Int32) {
	t.Helper()
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		raw, _ := io.ReadAll(r.Body)
		var b map[string]any
		_ = json.Unmarshal(raw, &b)
		if seen != nil {
			seen(r, b)
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(srv.Close)
	c, err := New(Config{APIKey: "sk-test", Model: "claude-sonnet-5-5", BaseURL: srv.URL, Timeout: 5 * time.Second}, srv.Client())
	if err != nil {
		t.Fatal(err)
	}
	return c, &n
}

func TestExtractRequestAndResult(t *testing.T) {
	pdf := []byte("%PDF-1.4 test")
	c, _ := server(t, 200, ToolResponse(goodInput), func(r *http.Request, b map[string]any) {
		if r.URL.Path != "/v1/messages" || r.Method != http.MethodPost {
			t.Errorf("%s %s", r.Method, r.URL.Path)
		}
		if got := r.Header.Get("Authorization"); got != "Bearer sk-test" {
			t.Errorf("Authorization = %q", got)
		}
		if b["model"] != "claude-sonnet-5-5" {
			t.Errorf("model = %v", b["model"])
		}
		if _, ok := b["temperature"]; ok {
			t.Error("temperature is sent (the 2026-10-21 API refuses it)")
		}
		tc, _ := b["tool_choice"].(map[string]any)
		if tc["type"] != "tool" || tc["name"] != ToolName {
			t.Errorf("tool_choice = %v", tc)
		}
		tools, _ := b["tools"].([]any)
		tool, _ := tools[0].(map[string]any)
		schema, _ := tool["input_schema"].(map[string]any)
		if len(tools) != 1 || tool["name"] != ToolName || tool["strict"] != true || schema["additionalProperties"] != false {
			t.Errorf("tools = %v", tools)
		}
		msgs, _ := b["messages"].([]any)
		content := msgs[0].(map[string]any)["content"].([]any)
		doc := content[0].(map[string]any)
		src, _ := doc["source"].(map[string]any)
		if doc["type"] != "document" || src["type"] != "base64" || src["media_type"] != "application/pdf" ||
			src["data"] != base64.StdEncoding.EncodeToString(pdf) {
			t.Errorf("document block = %v", doc)
		}
	})
	x, raw, err := c.Extract(context.Background(), pdf, "application/pdf")
	if err != nil {
		t.Fatal(err)
	}
	if !x.IsPenaltyNotice || *x.PCNNumber != "WM12345678" || *x.PenaltyAmountPence != 16000 || x.FieldConfidence["pcn_number"] != 0.97 || x.PaymentDueDate != nil {
		t.Errorf("extraction = %+v", x)
	}
	if !json.Valid(raw) {
		t.Error("raw extraction is not JSON")
	}
}

func TestExtractImage(t *testing.T) {
	c, _ := server(t, 200, ToolResponse(goodInput), func(r *http.Request, b map[string]any) {
		block := b["messages"].([]any)[0].(map[string]any)["content"].([]any)[0].(map[string]any)
		src := block["source"].(map[string]any)
		if block["type"] != "image" || src["media_type"] != "image/jpeg" {
			t.Errorf("image block = %v", block)
		}
	})
	if _, _, err := c.Extract(context.Background(), []byte{0xff, 0xd8}, "image/jpeg"); err != nil {
		t.Fatal(err)
	}
}

func TestExtractErrors(t *testing.T) {
	tests := []struct {
		name   string
		status int
		body   string
		want   error
	}{
		{"rate limited", 429, `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`, ErrTransient},
		{"overloaded", 529, `{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}`, ErrTransient},
		{"server error", 500, `{"type":"error","error":{"type":"api_error","message":"boom"}}`, ErrTransient},
		{"bad request", 400, `{"type":"error","error":{"type":"invalid_request_error","message":"PDF is encrypted"}}`, ErrRejected},
		{"no tool call", 200, `{"id":"m","type":"message","role":"assistant","model":"x","content":[{"type":"text","text":"I cannot read it"}],"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":1}}`, ErrInvalidOutput},
		{"missing fields", 200, ToolResponse(`{"is_penalty_notice":true}`), ErrInvalidOutput},
		{"unknown field", 200, ToolResponse(`{"is_penalty_notice":true,"notice_type":"other","issuer_type":"other","field_confidence":{},"warnings":[],"surprise":1}`), ErrInvalidOutput},
		{"confidence out of range", 200, ToolResponse(`{"is_penalty_notice":true,"notice_type":"other","issuer_type":"other","field_confidence":{"pcn_number":7},"warnings":[]}`), ErrInvalidOutput},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, n := server(t, tc.status, tc.body, nil)
			_, _, err := c.Extract(context.Background(), []byte("%PDF"), "application/pdf")
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if n.Load() != 1 {
				t.Errorf("%d calls with MaxRetries 0", n.Load())
			}
		})
	}
}

// TestRetryWaitsBoundedByDeadline: the client retries a 429 itself only if
// the API's Retry-After still leaves time for a call before the deadline;
// otherwise it hands the 429 back at once (with the wait, for the queue)
// rather than sleeping past the request's deadline as the SDK would.
func TestRetryWaitsBoundedByDeadline(t *testing.T) {
	tests := []struct {
		name       string
		retryAfter string
		deadline   time.Duration
		wantCalls  int32
		wantSleeps []time.Duration
		wantErr    error
	}{
		{"a short wait within the deadline is retried", "2", time.Minute, 2, []time.Duration{2 * time.Second}, nil},
		{"a wait past the deadline goes back to the queue", "3600", time.Minute, 1, nil, ErrRateLimited},
		{"a wait that leaves no time for the call goes back", "55", time.Minute, 1, nil, ErrRateLimited},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var calls atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				_, _ = io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Type", "application/json")
				if calls.Add(1) == 1 {
					w.Header().Set("Retry-After", tc.retryAfter)
					w.WriteHeader(http.StatusTooManyRequests)
					_, _ = io.WriteString(w, `{"type":"error","error":{"type":"rate_limit_error","message":"slow down"}}`)
					return
				}
				_, _ = io.WriteString(w, ToolResponse(goodInput))
			}))
			defer srv.Close()
			c, err := New(Config{APIKey: "sk-test", Model: "claude-sonnet-5-5", BaseURL: srv.URL, Timeout: 5 * time.Second, MaxRetries: 2}, srv.Client())
			if err != nil {
				t.Fatal(err)
			}
			var sleeps []time.Duration
			c.sleep = func(_ context.Context, d time.Duration) error { sleeps = append(sleeps, d); return nil }
			ctx, cancel := context.WithTimeout(context.Background(), tc.deadline)
			defer cancel()
			_, _, err = c.Extract(ctx, []byte("%PDF"), "application/pdf")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr != nil && RetryAfter(err) == 0 {
				t.Errorf("the 429 lost its Retry-After: %v", err)
			}
			if calls.Load() != tc.wantCalls || len(sleeps) != len(tc.wantSleeps) {
				t.Fatalf("calls %d, sleeps %v; want %d and %v", calls.Load(), sleeps, tc.wantCalls, tc.wantSleeps)
			}
			for i := range sleeps {
				if sleeps[i] != tc.wantSleeps[i] {
					t.Errorf("sleeps %v, want %v", sleeps, tc.wantSleeps)
				}
			}
		})
	}
}
