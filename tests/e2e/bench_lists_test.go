package e2e

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	osexec "os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
)

// BenchmarkListPages is a measurement, not a test: list p50 through the
// gateway on the local stack, big tenant (300,000 incidents) against a small
// one (5), first page and a page 100,000 rows deep, for two gateway builds
// side by side on the same database: "before" (offset paging, count=exact)
// and "after" (cursor paging, estimated totals). scripts/list-bench.sh builds
// both and runs it; it prints the table docs/performance.md shows.
func BenchmarkListPages(b *testing.B) {
	before, after := os.Getenv("LIST_BENCH_BEFORE_BIN"), os.Getenv("LIST_BENCH_AFTER_BIN")
	if before == "" || after == "" {
		b.Skip("run scripts/list-bench.sh (LIST_BENCH_BEFORE_BIN and LIST_BENCH_AFTER_BIN name the two gateway builds)")
	}
	f := bigTenant(b)
	small := fleet{Tenant: uuid.NewString(), User: uuid.NewString(), Vehicle: uuid.NewString()}
	for _, q := range []string{
		`insert into tenants (id, name) values ('` + small.Tenant + `', 'Small')`,
		`insert into vehicles (id, tenant_id, registration) values ('` + small.Vehicle + `', '` + small.Tenant + `', 'SM01ALL')`,
		`insert into incidents (tenant_id, vehicle_id, occurred_at, type, description)
		 select '` + small.Tenant + `', '` + small.Vehicle + `', now(), 'other', 'small' from generate_series(1, 5)`,
	} {
		if _, err := db.Exec(b.Context(), q); err != nil {
			b.Fatal(err)
		}
	}
	tok := func(fl fleet) string {
		t, err := stack.UserToken(fl.User, fl.Tenant, "u@example.com", time.Hour)
		if err != nil {
			b.Fatal(err)
		}
		return t
	}
	bigTok, smallTok := tok(f.fleet), tok(small)
	const n = 60 // requests per case; the p50 is of the last 50
	type result struct{ name, before, after string }
	var rows []result
	p50 := map[string]map[string]time.Duration{}
	for _, build := range []struct{ name, bin string }{{"before", before}, {"after", after}} {
		base := startGatewayBinary(b, build.bin)
		deep := "/incidents?limit=50&offset=100000"
		if build.name == "after" {
			deep = "/incidents?limit=50&cursor=" + cursorAt(b, base, bigTok, 100_000)
		}
		cases := []struct{ name, token, path string }{
			{"small tenant, first page", smallTok, "/incidents?limit=50"},
			{"big tenant, first page", bigTok, "/incidents?limit=50"},
			{"big tenant, 100,000 rows deep", bigTok, deep},
		}
		p50[build.name] = map[string]time.Duration{}
		for _, c := range cases {
			var ds []time.Duration
			for i := range n {
				start := time.Now()
				status, _ := get(b, base+c.path, c.token)
				d := time.Since(start)
				if status != 200 {
					b.Fatalf("%s %s: %d", build.name, c.path, status)
				}
				if i >= n-50 {
					ds = append(ds, d)
				}
			}
			slices.Sort(ds)
			p50[build.name][c.name] = ds[len(ds)/2]
		}
	}
	for _, c := range []string{"small tenant, first page", "big tenant, first page", "big tenant, 100,000 rows deep"} {
		rows = append(rows, result{c, ms(p50["before"][c]), ms(p50["after"][c])})
	}
	var out strings.Builder
	out.WriteString("\n| p50 through the gateway | before (offset, count=exact) | after (cursor, count=estimated) |\n| --- | ---: | ---: |\n")
	for _, r := range rows {
		fmt.Fprintf(&out, "| %s | %s | %s |\n", r.name, r.before, r.after)
	}
	small1 := float64(p50["after"]["small tenant, first page"])
	fmt.Fprintf(&out, "\nafter: big first page %.2fx the small tenant's, 100,000 deep %.2fx (before: %.2fx, %.2fx)\n",
		float64(p50["after"]["big tenant, first page"])/small1, float64(p50["after"]["big tenant, 100,000 rows deep"])/small1,
		float64(p50["before"]["big tenant, first page"])/float64(p50["before"]["small tenant, first page"]),
		float64(p50["before"]["big tenant, 100,000 rows deep"])/float64(p50["before"]["small tenant, first page"]))
	fmt.Print(out.String())
}

func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d.Microseconds())/1000) }

// cursorAt walks the big tenant's incidents by cursor to the given depth.
func cursorAt(b *testing.B, base, token string, depth int) string {
	cursor, seen := "", 0
	for seen < depth {
		path := "/incidents?limit=200"
		if cursor != "" {
			path += "&cursor=" + cursor
		}
		req, _ := http.NewRequestWithContext(b.Context(), http.MethodGet, base+path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		cursor = res.Header.Get("X-Next-Cursor")
		if res.StatusCode != 200 || cursor == "" {
			b.Fatalf("walk stopped at %d rows: %d", seen, res.StatusCode)
		}
		seen += 200
	}
	return cursor
}

func get(b *testing.B, url, token string) (int, []byte) {
	req, _ := http.NewRequestWithContext(b.Context(), http.MethodGet, url, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, body
}

// startGatewayBinary runs a gateway binary against the stack on a free port.
func startGatewayBinary(b *testing.B, bin string) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := osexec.Command(bin)
	cmd.Env = append(os.Environ(), "PORT="+fmt.Sprint(port), "APP_ENV=development", "LOG_LEVEL=error",
		"SUPABASE_URL="+stack.APIURL, "SUPABASE_SERVICE_KEY="+secretKey(),
		"INTERNAL_SECRET=bench-internal-secret-0123456789abcdef",
		"RATE_LIMIT_TENANT_PER_SECOND=0", "RATE_LIMIT_IP_PER_SECOND=0")
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	ctx, cancel := context.WithTimeout(b.Context(), 30*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		if res, err := http.Get(base + "/health"); err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return base
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Fatalf("%s did not start", bin)
	return ""
}
