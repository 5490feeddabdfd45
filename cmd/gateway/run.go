package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/joho/godotenv"

	"github.com/fleetpilot/gateway/gateway"
	"github.com/fleetpilot/gateway/gateway/wire"
)

// run loads the configuration (.env first, when present, for local work),
// wires the clients and serves until ctx ends.
func run(ctx context.Context) error {
	if err := godotenv.Load(); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read .env: %w", err)
	}
	cfg, err := gateway.LoadConfig(nil)
	if err != nil {
		return err
	}
	lw := gateway.NewLogWriter(os.Stdout, 100*time.Millisecond)
	defer lw.Close()
	log := gateway.NewLogger(lw, cfg.LogLevel)
	app, err := wire.Build(ctx, cfg, log, wire.Options{})
	if err != nil {
		return err
	}
	defer app.Close()
	ln, err := net.Listen("tcp", net.JoinHostPort("", strconv.Itoa(cfg.Port)))
	if err != nil {
		return err
	}
	log.Info("gateway listening", "port", cfg.Port)
	return app.Serve(ctx, ln)
}
