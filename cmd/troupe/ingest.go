package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/knowledge"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
)

// ingest adds files to a knowledge base from the terminal, with a progress bar,
// into the same database the server uses. A running server with the embedded
// store sees the new documents after a restart (its index is loaded at start);
// Milvus-backed knowledge bases see them at once.
func ingest(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("ingest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", envOr(getenv, "TROUPE_DIR", "agents.d"), "spec folder (env TROUPE_DIR)")
	dbPath := fs.String("db", envOr(getenv, "TROUPE_DB", filepath.Join("data", "troupe.db")), "SQLite file or postgres:// URL (env TROUPE_DB)")
	var roots []string
	readRootsFlag(fs, getenv, &roots)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: troupe ingest [--dir agents.d] [--db data/troupe.db] <knowledge> <file>...")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return parseError(err)
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return exitError(2)
	}
	name, files := fs.Arg(0), fs.Args()[1:]

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	eng, err := engine.New(engine.Options{Dirs: []string{*dir}, ReadRoots: roots, Env: spec.Env(getenv), Logger: logger})
	if err != nil {
		return fmt.Errorf("loading %s: %w", *dir, err)
	}
	var target *spec.Knowledge
	var names []string
	for _, k := range eng.Current().Knowledge() {
		names = append(names, k.Name)
		if k.Name == name {
			target = k
		}
	}
	if target == nil {
		return fmt.Errorf("no knowledge base %q in %s (knowledge bases: %s)", name, *dir, strings.Join(names, ", "))
	}
	db, err := store.Open(ctx, *dbPath, store.Options{Logger: logger})
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer db.Close()
	// No Queue: the command ingests the files it is given itself, inside
	// Submit, rather than running a job client that would also take the
	// jobs a server queued for other knowledge bases (this command knows
	// only one). A document it leaves unfinished stays processing, and a
	// server queues it when it starts.
	kbs, err := kb.New(ctx, kb.Options{Documents: db.Knowledge(), Chunks: db.Knowledge(), Stats: db.Knowledge(), Fetches: db.Knowledge(), Env: spec.Env(getenv),
		NewMilvus: newMilvus, Logger: logger})
	if err != nil {
		return err
	}
	defer kbs.Close()
	kbs.Configure(ctx, []*spec.Knowledge{target})

	type item struct {
		file string
		id   string
		new  bool
		err  error
	}
	items := make([]*item, len(files))
	for i, f := range files {
		it := &item{file: f}
		items[i] = it
		// Files named here are the operator's choice, read wherever they
		// are; still only regular files, and never more than a document
		// may hold (a FIFO or /dev/zero would hang or exhaust memory).
		data, err := spec.ReadFile(f, kbs.MaxBytes())
		if err != nil {
			it.err = err
			continue
		}
		d, created, err := kbs.Submit(ctx, kb.Upload{KnowledgeID: name, Name: filepath.Base(f), Content: data, Source: "upload"})
		if ctx.Err() != nil {
			return errors.New("interrupted: unfinished documents resume on the next start")
		}
		if err != nil {
			it.err = err
			continue
		}
		// A document left unfinished is ingested now, not unchanged.
		it.id, it.new = d.ID, created || d.Status == knowledge.StatusProcessing
	}

	tty := isTerminal(stderr)
	failed := 0
	for _, it := range items {
		label := filepath.Base(it.file)
		if it.err != nil {
			fmt.Fprintf(stdout, "✗ %s: %v\n", label, it.err)
			failed++
			continue
		}
		for {
			d, err := kbs.Get(ctx, it.id)
			if err != nil {
				return err
			}
			if tty {
				fmt.Fprintf(stderr, "\r%s %3.0f%% %s (%d chunks)\x1b[K", bar(d.Progress, 30), d.Progress*100, label, d.Chunks)
			}
			if d.Status != knowledge.StatusProcessing {
				if tty {
					fmt.Fprint(stderr, "\r\x1b[K")
				}
				switch {
				case d.Status == knowledge.StatusFailed:
					fmt.Fprintf(stdout, "✗ %s: %s\n", label, d.Message)
					failed++
				case !it.new:
					fmt.Fprintf(stdout, "= %s: unchanged (%d chunks)\n", label, d.Chunks)
				default:
					fmt.Fprintf(stdout, "✓ %s: %d chunks\n", label, d.Chunks)
				}
				break
			}
			select {
			case <-ctx.Done():
				return errors.New("interrupted: unfinished documents resume on the next start")
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	if failed > 0 {
		return exitError(1)
	}
	return nil
}

// bar draws a progress bar of width cells.
func bar(p float64, width int) string {
	n := int(p * float64(width))
	n = max(0, min(n, width))
	return "[" + strings.Repeat("=", n) + strings.Repeat(" ", width-n) + "]"
}

// isTerminal reports whether w is a character device (a terminal), where
// redrawing a progress bar in place makes sense.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	info, err := f.Stat()
	return err == nil && info.Mode()&os.ModeCharDevice != 0
}
