// Command otlpsink stands in for an OpenTelemetry Collector on a developer's
// machine: it accepts the gateway's OTLP/gRPC exports
// (TELEMETRY_OTLP_COLLECTOR=127.0.0.1:4317), discards them and prints how
// many spans and metric points arrived, so that telemetry can be load-tested
// with its export cost.
//
//	go run ./cmd/otlpsink -addr 127.0.0.1:4317
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/fleetpilot/gateway/gateway/telemetry/otlpsink"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:4317", "host:port to listen on")
	every := flag.Duration("every", 10*time.Second, "how often to print the counts")
	flag.Parse()
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "otlpsink:", err)
		os.Exit(1)
	}
	s := otlpsink.Start(l, false)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	fmt.Printf("otlpsink: listening on %s\n", s.Addr())
	tick := time.NewTicker(*every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			s.Stop()
			spans, points := s.Counts()
			fmt.Printf("otlpsink: %d spans, %d metric points\n", spans, points)
			return
		case <-tick.C:
			spans, points := s.Counts()
			fmt.Printf("otlpsink: %d spans, %d metric points\n", spans, points)
		}
	}
}
