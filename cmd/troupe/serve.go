package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sync/errgroup"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/spec/watch"
)

// serve loads the folder, watches it and reloads on every change and on SIGHUP
// until ctx is cancelled.
func serve(ctx context.Context, args []string, getenv env, stderr io.Writer) error {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", envOr(getenv, "TROUPE_DIR", "agents.d"), "spec folder (env TROUPE_DIR)")
	logLevel := fs.String("log-level", envOr(getenv, "TROUPE_LOG_LEVEL", "info"), "debug, info, warn or error (env TROUPE_LOG_LEVEL)")
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("invalid --log-level %q: use debug, info, warn or error", *logLevel)
	}
	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))

	rt := newRuntime(getenv, logger)
	defer rt.MCP.Close()
	eng, err := engine.New(engine.Options{Dirs: []string{*dir}, Env: spec.Env(getenv), Logger: logger.With("component", "engine"), Runtime: rt})
	if err != nil {
		return fmt.Errorf("loading %s: %w", *dir, err)
	}
	defer eng.Close()
	w, err := watch.New(watch.Options{Dirs: []string{*dir}, Logger: logger.With("component", "watch")})
	if err != nil {
		return fmt.Errorf("watching %s: %w", *dir, err)
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return w.Run(ctx) })
	g.Go(func() error { return eng.Run(ctx, w.C()) })
	g.Go(func() error {
		for {
			select {
			case <-ctx.Done():
				return nil
			case <-hup:
				logger.Info("SIGHUP: reloading")
				eng.Trigger()
			}
		}
	})
	logger.Info("serving", "dir", *dir, "generation", eng.Current().Generation())
	err = g.Wait()
	logger.Info("stopped")
	return err
}

func envOr(getenv env, key, def string) string {
	if v, ok := getenv(key); ok && v != "" {
		return v
	}
	return def
}
