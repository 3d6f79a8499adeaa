package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/engine/event"
	"github.com/troupehq/troupe/engine/knowledge/kb"
	"github.com/troupehq/troupe/engine/session"
	"github.com/troupehq/troupe/spec"
	"github.com/troupehq/troupe/store"
	"github.com/troupehq/troupe/telemetry"
)

// runCmd runs one turn of an agent or team from the terminal and prints the
// streamed answer, tool calls and token usage.
func runCmd(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", envOr(getenv, "TROUPE_DIR", "agents.d"), "spec folder (env TROUPE_DIR)")
	var roots []string
	readRootsFlag(fs, getenv, &roots)
	quiet := fs.Bool("q", false, "print only the answer")
	dbPath := fs.String("db", "", "SQLite file or postgres:// URL to store the session and run in, as serve does (default: an in-memory database)")
	sessionID := fs.String("session", "", "continue this session of --db (default: a new session)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: troupe run [--dir agents.d] [--db FILE [--session ID]] [-q] <agent-or-team> \"message\"")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	if fs.NArg() < 2 {
		fs.Usage()
		return exitError(2)
	}
	name, message := fs.Arg(0), strings.Join(fs.Args()[1:], " ")

	logger := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	// Knowledge for a one-shot run lives in memory: the YAML sources of the
	// knowledge bases are ingested before the turn.
	kbs, err := kb.New(ctx, kb.Options{Documents: kb.NewMemoryDocuments(), Env: spec.Env(getenv), NewMilvus: newMilvus, Logger: logger})
	if err != nil {
		return err
	}
	defer kbs.Close()
	rt, pool := newRuntime(getenv, logger, kbs)
	defer pool.Close()
	eng, err := engine.New(engine.Options{Dirs: []string{*dir}, ReadRoots: roots, Env: spec.Env(getenv), Logger: logger, Runtime: rt, ApproverScopes: auth.ScopeNames()})
	if err != nil {
		return fmt.Errorf("loading %s: %w", *dir, err)
	}
	defer eng.Close()
	if bases := eng.Current().Knowledge(); len(bases) > 0 {
		// Without a Queue, SyncSources ingests each source as it submits
		// it; no Run loop is needed for a one-shot turn.
		kbs.Configure(ctx, bases)
		kbs.SyncSources(ctx)
		if err := kbs.Wait(ctx); err != nil {
			return fmt.Errorf("ingesting knowledge sources: %w", err)
		}
	}

	kind := spec.KindAgent
	if _, ok := eng.Current().Team(name); ok {
		kind = spec.KindTeam
	}
	if _, err := eng.Current().Runner(kind, name); errors.Is(err, engine.ErrNotFound) {
		// Said before a database is opened, with what there is instead.
		return fmt.Errorf("%w; agents: %s; teams: %s", err, names(eng.Current(), spec.KindAgent), names(eng.Current(), spec.KindTeam))
	}

	// The run goes through the run service, as every run of the server
	// does: with --db its session, run, team members' runs and trace are
	// stored where troupe serve finds them; without, in a database that
	// lives as long as the command.
	dsn := *dbPath
	if dsn == "" {
		dsn = ":memory:"
	}
	db, err := store.Open(ctx, dsn, store.Options{Logger: logger.With("component", "store")})
	if err != nil {
		return fmt.Errorf("opening the database: %w", err)
	}
	defer db.Close()
	var rec *telemetry.Recorder
	if *dbPath != "" {
		tel, err := openTelemetry(ctx, "sql", dsn, db, 0, logger)
		if err != nil {
			return err
		}
		defer tel.close()
		rec = tel.recorder
		recCtx, stopRec := context.WithCancel(context.WithoutCancel(ctx))
		var recWG sync.WaitGroup
		recWG.Go(func() { _ = rec.Run(recCtx) })
		// Stopping the recorder flushes the run's spans before the
		// databases close.
		defer func() { stopRec(); recWG.Wait() }()
	}
	runs := newRunService(eng, db, nil, nil, newTracer(rec, nil, nil, telemetry.ContentPolicy{Content: telemetry.Content{Enabled: true}}), nil, 0, 0, 0, logger, nil, nil)
	turn, err := runs.Start(ctx, session.Params{Kind: kind, Name: name, Message: message, SessionID: *sessionID, Stream: true})
	if err != nil {
		return err
	}
	p := &printer{w: stdout, quiet: *quiet}
	run := turn.Execute(ctx, p.print)
	p.finish(run)
	if *dbPath != "" {
		p.line("— session %s · run %s", run.SessionID, run.ID)
	}
	if run.Status == event.StatusPaused {
		p.line("— the run is stored PAUSED: serve this database (--db) and decide it in the approvals inbox (POST /approvals/{id}/resolve) or continue it (POST /%ss/%s/runs/%s/continue)", run.Type, run.ComponentID, run.ID)
	}
	if run.Status != event.StatusCompleted {
		return exitError(1)
	}
	return nil
}

func names(s *engine.Snapshot, kind spec.Kind) string {
	var out []string
	for _, o := range s.Objects() {
		if o.Key.Kind == kind && o.Serving() {
			out = append(out, o.Key.Name)
		}
	}
	if len(out) == 0 {
		return "none"
	}
	return strings.Join(out, ", ")
}

// printer renders run events for a terminal: the answer streams on stdout,
// with tool calls and members' activity on their own lines.
type printer struct {
	w       io.Writer
	quiet   bool
	midLine bool
}

func (p *printer) line(format string, args ...any) {
	if p.quiet {
		return
	}
	if p.midLine {
		fmt.Fprintln(p.w)
		p.midLine = false
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

func (p *printer) print(e event.Event) {
	indent := strings.Repeat("  ", e.Depth)
	who := ""
	if e.Member != "" {
		who = e.Member + ": "
	}
	switch e.Type {
	case event.RunStarted:
		if e.Depth > 0 {
			p.line("%s↳ %sstarted (%s)", indent, who, e.Model)
		}
	case event.RunContent:
		if e.Depth == 0 {
			fmt.Fprint(p.w, e.Content)
			p.midLine = !strings.HasSuffix(e.Content, "\n")
		}
	case event.ToolCallStarted:
		p.line("%s⚙ %s%s(%s)", indent, who, e.Tool.Name, compactArgs(e.Tool.Args))
	case event.ToolCallCompleted:
		p.line("%s✓ %s%s → %s", indent, who, e.Tool.Name, oneLine(e.Tool.Result, 120))
	case event.ToolCallError:
		p.line("%s✗ %s%s failed: %s", indent, who, e.Tool.Name, oneLine(e.Tool.Result, 200))
	case event.RunError:
		p.line("%s✗ %serror: %s", indent, who, e.Content)
	case event.RunCancelled:
		p.line("%s✗ %scancelled", indent, who)
	case event.RunPaused:
		for _, c := range e.Paused {
			what := "approval"
			switch {
			case c.ExternalExecutionRequired:
				what = "the client's result"
			case c.RequiresUserInput && !c.RequiresConfirmation:
				what = "user input"
			}
			reason := ""
			if c.Reason != "" {
				reason = ": " + oneLine(c.Reason, 120)
			}
			p.line("%s⏸ %s%s(%s) waits for %s%s", indent, who, c.ToolName, compactArgs(c.ToolArgs), what, reason)
		}
	}
}

func (p *printer) finish(res *session.Run) {
	if p.midLine || p.quiet {
		fmt.Fprintln(p.w)
		p.midLine = false
	}
	if p.quiet {
		return
	}
	m := res.Metrics
	model := res.Model
	if res.Provider == "echo" {
		model = "echo (offline demo model)"
	}
	p.line("— %s · %s · %d tokens in, %d out · %d tool calls · %s", strings.ToLower(string(res.Status)), model, m.InputTokens, m.OutputTokens, m.ToolCalls, m.Duration.Round(time.Microsecond))
	if len(res.References) > 0 {
		var docs []string
		for _, r := range res.References {
			if !slices.Contains(docs, r.DocumentName) {
				docs = append(docs, r.DocumentName)
			}
		}
		p.line("— sources: %s", strings.Join(docs, ", "))
	}
}

func compactArgs(args map[string]any) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(args)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, args[k]))
	}
	return oneLine(strings.Join(parts, ", "), 120)
}

func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > max {
		s = s[:max] + "…"
	}
	return s
}
