// Command loadtest drives a running gateway with concurrent keep-alive
// connections and prints requests per second and latency percentiles.
//
//	go run ./cmd/loadtest -url http://127.0.0.1:8080/incidents -token "$TOKEN_A" -c 16 -d 10s
//
// `make loadtest` starts the local stack and runs it at several
// concurrencies (scripts/loadtest.sh).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"sync"
	"time"
)

func main() {
	var cfg config
	flag.StringVar(&cfg.url, "url", "http://127.0.0.1:8080/incidents", "the URL to GET")
	flag.StringVar(&cfg.token, "token", os.Getenv("TOKEN"), "bearer token (default $TOKEN)")
	flag.IntVar(&cfg.conns, "c", 16, "concurrent connections")
	flag.DurationVar(&cfg.duration, "d", 10*time.Second, "how long to measure")
	flag.DurationVar(&cfg.warmup, "warmup", 2*time.Second, "how long to run before measuring")
	flag.Parse()
	if err := run(context.Background(), cfg, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

type config struct {
	url, token       string
	conns            int
	duration, warmup time.Duration
}

// result is what one measured run saw.
type result struct {
	latencies []time.Duration // of the successful requests, sorted
	failed    int             // transport errors and non-2xx answers
	elapsed   time.Duration
}

func run(ctx context.Context, cfg config, out io.Writer) error {
	if cfg.conns < 1 || cfg.duration <= 0 {
		return errors.New("-c must be at least 1 and -d positive")
	}
	client := &http.Client{
		Transport: &http.Transport{MaxIdleConnsPerHost: cfg.conns, MaxConnsPerHost: cfg.conns},
		Timeout:   10 * time.Second,
	}
	if cfg.warmup > 0 {
		if _, err := load(ctx, client, cfg, cfg.warmup); err != nil {
			return err
		}
	}
	res, err := load(ctx, client, cfg, cfg.duration)
	if err != nil {
		return err
	}
	n := len(res.latencies)
	fmt.Fprintf(out, "conns %3d  req/s %8.0f  p50 %8s  p90 %8s  p99 %8s  max %8s  ok %d  failed %d\n",
		cfg.conns, float64(n)/res.elapsed.Seconds(),
		pct(res.latencies, 50), pct(res.latencies, 90), pct(res.latencies, 99), pct(res.latencies, 100), n, res.failed)
	if n == 0 {
		return errors.New("no request succeeded")
	}
	return nil
}

// load sends requests on cfg.conns workers for d.
func load(ctx context.Context, client *http.Client, cfg config, d time.Duration) (result, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var (
		mu   sync.Mutex
		res  result
		wg   sync.WaitGroup
		fail error
	)
	start := time.Now()
	for range cfg.conns {
		wg.Go(func() {
			var lat []time.Duration
			failed := 0
			for ctx.Err() == nil {
				t0 := time.Now()
				ok, err := get(ctx, client, cfg)
				if ctx.Err() != nil {
					break // cut short by the end of the run: not counted
				}
				if err != nil {
					mu.Lock()
					if fail == nil {
						fail = err
					}
					mu.Unlock()
				}
				if ok {
					lat = append(lat, time.Since(t0))
				} else {
					failed++
				}
			}
			mu.Lock()
			res.latencies = append(res.latencies, lat...)
			res.failed += failed
			mu.Unlock()
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	slices.Sort(res.latencies)
	if len(res.latencies) == 0 && fail != nil {
		return res, fail
	}
	return res, nil
}

// get sends one request and reads the whole answer, so the connection is reused.
func get(ctx context.Context, client *http.Client, cfg config) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, cfg.url, nil)
	if err != nil {
		return false, err
	}
	if cfg.token != "" {
		req.Header.Set("Authorization", "Bearer "+cfg.token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return false, err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return false, fmt.Errorf("GET %s: %s", cfg.url, resp.Status)
	}
	return true, nil
}

// pct is the p-th percentile of sorted latencies (nearest rank).
func pct(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := (len(sorted)*p + 99) / 100
	return sorted[max(i-1, 0)].Round(10 * time.Microsecond)
}
