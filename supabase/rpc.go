package supabase

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
)

// RPC calls the database function fn (POST /rpc/fn) on behalf of tenant and
// returns its JSON answer. Like Insert, it sets the function's tenant_id
// argument from tenant, overriding anything in args: a function called this
// way must confine itself to that tenant. Like every write, it is not retried.
func (c *Client) RPC(ctx context.Context, tenant TenantID, fn string, args Row) ([]byte, error) {
	if tenant.IsZero() {
		return nil, ErrNoTenant
	}
	if !validColumn(Column(fn)) {
		return nil, fmt.Errorf("supabase: invalid function name %q", fn)
	}
	call := Row{colTenant: tenant.String()}
	for k, v := range args {
		if k == colTenant {
			return nil, errors.New("supabase: tenant_id is set by the client")
		}
		if !validColumn(k) {
			return nil, fmt.Errorf("supabase: invalid argument name %q", k)
		}
		call[k] = v
	}
	body, err := json.Marshal(call)
	if err != nil {
		return nil, fmt.Errorf("supabase: encode %s arguments: %w", fn, err)
	}
	path := "rpc/" + fn
	res, err := c.send(ctx, request{method: http.MethodPost, table: path, body: body})
	if err != nil {
		return nil, err
	}
	if res.status != http.StatusOK {
		return nil, decodeError(http.MethodPost, path, res.status, res.body)
	}
	return res.body, nil
}
