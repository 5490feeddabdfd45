// Command localstack runs the gateway against a complete local Supabase made
// of real parts: PostgreSQL, the migrations and demo data, PostgREST, and a
// stand-in for Supabase's API gateway. `make run` starts it when there is no .env.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Stdout)
	if errors.Is(err, errAlreadyRunning) {
		return // said in one line; the running stack is what was asked for
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "localstack:", err)
		os.Exit(1)
	}
}
