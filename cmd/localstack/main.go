// Command localstack runs the gateway against a complete local Supabase made
// of real parts: PostgreSQL, the migrations and demo data, PostgREST, and a
// stand-in for Supabase's API gateway. `make run` starts it when there is no .env.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "localstack:", err)
		os.Exit(1)
	}
}
