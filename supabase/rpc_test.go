package supabase

import (
	"context"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/jarcoal/httpmock"
)

// TestRPCStampsTenant: a function call carries the tenant as its tenant_id
// argument, and an argument that tries to name a tenant or smuggle a name is
// refused before anything is sent.
func TestRPCStampsTenant(t *testing.T) {
	c, mt := newTestClient(t, "sb_secret_abc")
	var body string
	calls := 0
	mt.RegisterResponder(http.MethodPost, "https://p.supabase.co/rest/v1/rpc/take_quota", func(r *http.Request) (*http.Response, error) {
		calls++
		b, _ := io.ReadAll(r.Body)
		body = string(b)
		return httpmock.NewStringResponse(200, `3`), nil
	})
	out, err := c.RPC(context.Background(), mustTenant(t), "take_quota", Row{"quota": "scans", "quota_limit": 5})
	if err != nil || string(out) != "3" {
		t.Fatalf("RPC = %s, %v", out, err)
	}
	if body != `{"quota":"scans","quota_limit":5,"tenant_id":"`+tenant+`"}` {
		t.Errorf("body = %s", body)
	}
	for name, call := range map[string]func() error{
		"tenant argument": func() error {
			_, err := c.RPC(context.Background(), mustTenant(t), "take_quota", Row{"tenant_id": "evil"})
			return err
		},
		"no tenant": func() error { _, err := c.RPC(context.Background(), TenantID{}, "take_quota", nil); return err },
		"bad function": func() error {
			_, err := c.RPC(context.Background(), mustTenant(t), "take_quota?x=1", nil)
			return err
		},
		"bad argument": func() error {
			_, err := c.RPC(context.Background(), mustTenant(t), "take_quota", Row{"a b": 1})
			return err
		},
	} {
		if err := call(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if calls != 1 {
		t.Errorf("calls = %d, want 1", calls)
	}
	mt.RegisterResponder(http.MethodPost, "https://p.supabase.co/rest/v1/rpc/take_quota",
		httpmock.NewStringResponder(404, `{"code":"PGRST202","message":"Could not find the function"}`))
	if _, err := c.RPC(context.Background(), mustTenant(t), "take_quota", nil); err == nil || errors.Is(err, ErrNoTenant) {
		t.Errorf("a missing function = %v, want an error", err)
	}
}
