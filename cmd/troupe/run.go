package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
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
// streamed answer, tool calls and token usage. Usage errors exit 2; a run that
// cannot start or does not complete exits 1.
func runCmd(ctx context.Context, args []string, getenv env, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", envOr(getenv, "TROUPE_DIR", "agents.d"), "spec folder (env TROUPE_DIR)")
	var roots []string
	readRootsFlag(fs, getenv, &roots)
	quiet := fs.Bool("q", false, "print only the answer")
	dbPath := fs.String("db", "", "SQLite file or postgres:// URL to store the session and run in, as serve does (default: an in-memory database)")
	sessionID := fs.String("session", "", "continue this session of --db (default: a new session)")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: troupe run [flags] <agent-or-team> [message...|-]\n\nFlags may come before or after the message; -- ends them. Without a message, or with -, the message is read from standard input.\n\nFlags:")
		fs.PrintDefaults()
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return parseError(err)
	}
	if len(pos) == 0 {
		fs.Usage()
		return exitError(2)
	}
	name, message := pos[0], strings.Join(pos[1:], " ")
	if (len(pos) == 1 && !readsTerminal(stdin)) || (len(pos) == 2 && pos[1] == "-") {
		b, err := io.ReadAll(stdin)
		if err != nil {
			return fmt.Errorf("reading the message from standard input: %w", err)
		}
		message = strings.TrimRight(string(b), "\r\n")
	}
	if strings.TrimSpace(message) == "" {
		fmt.Fprintln(stderr, "troupe run: the message is empty: give it after the agent's name or on standard input")
		return exitError(2)
	}
	err = runTurn(ctx, runOptions{dir: *dir, roots: roots, quiet: *quiet, db: *dbPath, session: *sessionID, name: name, message: message}, getenv, stdout, stderr)
	var ee exitError
	var ue usageError
	if errors.As(err, &ue) {
		return ue.error // main prints it and exits 2
	}
	if err != nil && !errors.As(err, &ee) {
		// Anything that stops the run once the command line was right is
		// a failed run (exit 1), not a usage error.
		fmt.Fprintln(stderr, "troupe:", err)
		return exitError(1)
	}
	return err
}

// usageError is a mistake on the command line found after parsing, such as
// an agent that does not exist: exit 2, not a failed run.
type usageError struct{ error }

// readsTerminal says whether r is a terminal: `troupe run hello` typed at
// one is a usage error, not a wait for a message that is never coming.
func readsTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && isTerminal(f)
}

// parseInterspersed parses flags wherever they appear among the positional
// arguments, as `troupe run hello hi -q` means; "--" ends the flags.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos, args = append(pos, rest[0]), rest[1:]
	}
}

// runOptions is what runTurn needs from the command line.
type runOptions struct {
	dir, db, session, name, message string
	roots                           []string
	quiet                           bool
}

func runTurn(ctx context.Context, o runOptions, getenv env, stdout, stderr io.Writer) error {
	dir, quiet, dbPath, sessionID, name, message, roots := &o.dir, &o.quiet, &o.db, &o.session, o.name, o.message, o.roots
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
	// The folder's problems are not this run's unless they break the agent
	// or team it runs, and then Runner reports them as one error: the
	// engine's warning per broken object would bury it.
	engineLog := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	eng, err := engine.New(engine.Options{Dirs: []string{*dir}, ReadRoots: roots, Env: spec.Env(getenv), Logger: engineLog, Runtime: rt, ApproverScopes: auth.ScopeNames()})
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
	// A broken team is still a team: its errors, not "agent not found".
	if _, ok := eng.Current().Object(spec.Key{Kind: spec.KindTeam, Name: name}); ok {
		kind = spec.KindTeam
	}
	if _, err := eng.Current().Runner(kind, name); errors.Is(err, engine.ErrNotFound) {
		// Said before a database is opened, with what there is instead; a
		// wrong name is a usage error (exit 2).
		return usageError{fmt.Errorf("%w; agents: %s; teams: %s", err, names(eng.Current(), spec.KindAgent), names(eng.Current(), spec.KindTeam))}
	} else if err != nil {
		// A missing key breaks every agent and team of that provider (the
		// team for its members): the key is what to fix, said once.
		var keys []string
		missingKeys(eng.Current(), spec.Key{Kind: kind, Name: name}, map[spec.Key]bool{}, &keys)
		if len(keys) > 0 {
			return fmt.Errorf("%s %q cannot run: %s", strings.ToLower(string(kind)), name, strings.Join(keys, "; "))
		}
		return err
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
	runs := newRunService(eng, db, nil, nil, newTracer(rec, nil, nil, telemetry.ContentPolicy{Content: telemetry.Content{Enabled: true}}), nil, 0, 0, 0, logger, nil, nil, nil)
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

// missingKeys collects the distinct "needs an API key" errors of an object
// and, for a team, of its members, without the object each was reported on.
func missingKeys(s *engine.Snapshot, k spec.Key, seen map[spec.Key]bool, out *[]string) {
	o, ok := s.Object(k)
	if !ok || seen[k] {
		return
	}
	seen[k] = true
	for _, d := range o.Diagnostics.Errors() {
		if d.Code == spec.CodeMissingAPIKey && !slices.Contains(*out, d.Msg) {
			*out = append(*out, d.Msg)
		}
	}
	if k.Kind != spec.KindTeam {
		return
	}
	// A broken team serves no document: its members are in its file's.
	for _, f := range s.Files() {
		for _, doc := range f.Docs {
			t, ok := doc.(*spec.Team)
			if !ok || t.Name != k.Name {
				continue
			}
			for _, m := range t.Members {
				mk := spec.Key{Kind: spec.KindAgent, Name: m}
				if _, ok := s.Object(mk); !ok {
					mk.Kind = spec.KindTeam
				}
				missingKeys(s, mk, seen, out)
			}
		}
	}
}
