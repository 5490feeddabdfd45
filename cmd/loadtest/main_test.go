package main

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestPct(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      int
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one", ms(7), 99, 7 * time.Millisecond},
		{"median of ten", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 50, 5 * time.Millisecond},
		{"p90 of ten", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 90, 9 * time.Millisecond},
		{"max", ms(1, 2, 3), 100, 3 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := pct(tc.sorted, tc.p); got != tc.want {
				t.Errorf("pct(%v, %d) = %v, want %v", tc.sorted, tc.p, got, tc.want)
			}
		})
	}
}

// The generator sends the token, counts answers by status, and prints a line.
func TestRun(t *testing.T) {
	var ok, refused atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			refused.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		ok.Add(1)
		_, _ = w.Write([]byte("[]"))
	}))
	defer srv.Close()
	var out bytes.Buffer
	err := run(context.Background(), config{url: srv.URL, token: "tok", conns: 2, duration: 200 * time.Millisecond}, &out)
	if err != nil {
		t.Fatal(err)
	}
	if refused.Load() != 0 || ok.Load() == 0 {
		t.Errorf("server saw %d with the token, %d without", ok.Load(), refused.Load())
	}
	if !strings.Contains(out.String(), "conns   2") || !strings.Contains(out.String(), "failed 0") {
		t.Errorf("output %q", out.String())
	}
	err = run(context.Background(), config{url: srv.URL, token: "wrong", conns: 1, duration: 100 * time.Millisecond}, &out)
	if err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("every request refused: err = %v", err)
	}
}
