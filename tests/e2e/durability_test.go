package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/fleetpilot/gateway/migrations"
	"github.com/fleetpilot/gateway/supabase/localstack"
)

// TestCrashLosesNoAcknowledgedWrite: writers create incidents through the
// gateway while the PostgreSQL postmaster is killed with SIGKILL and the
// cluster restarted (crash recovery); every incident the gateway answered
// 201 for is in the table afterwards. It runs on a stack of its own, so the
// crash disturbs no other test. With synchronous_commit off (as `make run`
// has it) acknowledged writes go missing here.
func TestCrashLosesNoAcknowledgedWrite(t *testing.T) {
	needStack(t)
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	st, err := localstack.Start(ctx, localstack.Options{Root: repoRoot, Migrations: migrations.Files})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pool, err := pgxpool.New(ctx, st.SuperuserURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	tenant, user, vehicle := uuid.NewString(), uuid.NewString(), uuid.NewString()
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`insert into tenants (id, name) values ($1, 'Crash Hire')`, []any{tenant}},
		{`insert into vehicles (id, tenant_id, registration) values ($1, $2, 'CR45HES')`, []any{vehicle, tenant}},
	} {
		if _, err := pool.Exec(ctx, q.sql, q.args...); err != nil {
			t.Fatal(err)
		}
	}
	tok, err := st.UserToken(user, tenant, "crash@example.com", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	gw, _ := gatewayWith(t, localstack.SecretKey, gwOpts{stack: st})

	var (
		mu       sync.Mutex
		acked    []string
		failures atomic.Int64
		stop     = make(chan struct{})
		wg       sync.WaitGroup
	)
	client := &http.Client{Timeout: 10 * time.Second}
	write := func(n int) (string, error) {
		body := fmt.Sprintf(`{"vehicle_id":%q,"occurred_at":"2026-11-21T10:00:00Z","type":"damage","description":"write %d"}`, vehicle, n)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL+"/incidents", strings.NewReader(body))
		if err != nil {
			return "", err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
		req.Header.Set("Content-Type", "application/json")
		res, err := client.Do(req)
		if err != nil {
			return "", err
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		if res.StatusCode != http.StatusCreated {
			return "", fmt.Errorf("%d %s", res.StatusCode, b)
		}
		var inc struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(b, &inc); err != nil || inc.ID == "" {
			return "", fmt.Errorf("201 without an id: %s", b)
		}
		return inc.ID, nil
	}
	const writers = 8
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				id, err := write(w*1_000_000 + i)
				if err != nil {
					failures.Add(1)
					time.Sleep(20 * time.Millisecond)
					continue
				}
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	count := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(acked)
	}
	waitFor := func(n int, what string) {
		for count() < n {
			select {
			case <-ctx.Done():
				close(stop)
				wg.Wait()
				t.Fatalf("%s: %d writes acknowledged, want %d (%d failed)", what, count(), n, failures.Load())
			case <-time.After(10 * time.Millisecond):
			}
		}
	}

	waitFor(200, "before the crash")
	if err := st.Postgres.Crash(ctx); err != nil {
		t.Fatal(err)
	}
	atCrash := count()
	if err := st.Postgres.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// Writes resume once PostgREST has reconnected.
	waitFor(atCrash+200, "after the restart")
	close(stop)
	wg.Wait()

	var rows int
	if err := pool.QueryRow(ctx, `select count(*) from incidents where id = any($1::uuid[])`, acked).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	t.Logf("acknowledged %d writes (%d before the kill), %d attempts failed while PostgreSQL was down; %d of them in the table",
		len(acked), atCrash, failures.Load(), rows)
	if rows != len(acked) {
		t.Fatalf("%d acknowledged writes lost in the crash", len(acked)-rows)
	}
}
