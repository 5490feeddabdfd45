package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestScanQuotaHoldsAcrossInstances: concurrent scans of one tenant, spread
// over two gateway instances on one database, start exactly the tenant's
// daily allowance of jobs and no more (take_quota counts atomically in
// PostgreSQL); the rest get 429 with Retry-After; another tenant's scan
// still goes through.
func TestScanQuotaHoldsAcrossInstances(t *testing.T) {
	needStack(t)
	const limit, n = 5, 16
	env := map[string]string{"PCN_DAILY_SCAN_QUOTA": fmt.Sprint(limit)}
	gw1, _ := gatewayWith(t, secretKey(), gwOpts{env: env})
	gw2, _ := gatewayWith(t, secretKey(), gwOpts{env: env})
	a, b := newFleet(t), newFleet(t)
	tok := a.token(t)
	docs := make([]string, n)
	for i := range docs {
		docs[i] = uploadedPDF(t, a)
	}
	statuses := make([]resp, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		base := gw1.URL
		if i%2 == 1 {
			base = gw2.URL
		}
		wg.Go(func() {
			<-start
			statuses[i] = do(t, base, http.MethodPost, "/violations/scan", tok, `{"document_id":"`+docs[i]+`"}`)
		})
	}
	close(start)
	wg.Wait()
	accepted, refused := 0, 0
	for _, r := range statuses {
		switch r.Status {
		case 202:
			accepted++
		case 429:
			refused++
			if r.Header.Get("Retry-After") == "" {
				t.Errorf("429 without Retry-After: %s", r.Body)
			}
		default:
			t.Errorf("scan = %d %s", r.Status, r.Body)
		}
	}
	if accepted != limit || refused != n-limit {
		t.Errorf("%d accepted, %d refused of %d concurrent scans; want %d and %d", accepted, refused, n, limit, n-limit)
	}
	var jobs, used int
	if err := db.QueryRow(context.Background(), `select count(*) from pcn_jobs where tenant_id = $1`, a.Tenant).Scan(&jobs); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(context.Background(), `select used from tenant_quota_usage where tenant_id = $1 and quota = 'scans'`, a.Tenant).Scan(&used); err != nil {
		t.Fatal(err)
	}
	if jobs != limit || used != limit {
		t.Errorf("jobs %d, counted %d; want %d and %d", jobs, used, limit, limit)
	}
	want(t, do(t, gw2.URL, http.MethodPost, "/violations/scan", b.token(t), `{"document_id":"`+uploadedPDF(t, b)+`"}`), 202)

	// Users cannot spend or reset allowances themselves: take_quota is the
	// service role's (the gateway's) only.
	asUser(t, a.Tenant, func(tx pgx.Tx) {
		if _, err := savepoint(tx, `select public.take_quota($1, 'scans', current_date, 1000)`, a.Tenant); err == nil {
			t.Error("an authenticated user could call take_quota")
		}
		if tag, err := savepoint(tx, `update tenant_quota_usage set used = 0 where tenant_id = $1`, a.Tenant); err == nil && tag.RowsAffected() != 0 {
			t.Error("an authenticated user reset the tenant's count")
		}
	})
}
