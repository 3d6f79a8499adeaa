// Command troupe serves agents, teams, tools and knowledge defined in YAML files.
//
//	troupe [serve] [--dir agents.d]   load, watch and serve the folder (default)
//	troupe run <agent-or-team> "msg"  run one turn from the terminal
//	troupe ingest <knowledge> <file>  add files to a knowledge base
//	troupe check [--dir DIR] [DIR...] report every problem in the specs
//	troupe schema                     print the JSON Schema of the spec language
//	troupe init [dir]                 scaffold a folder with an agent and a local Model
//	troupe version                    print the version
//
// main only parses flags and wires components together; the work happens in the
// packages it imports.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	if err != nil {
		var ee exitError
		if errors.As(err, &ee) {
			os.Exit(int(ee))
		}
		fmt.Fprintln(os.Stderr, "troupe:", err)
		os.Exit(2)
	}
}

// exitError ends the program with a status code and no further message (the
// command has already printed what went wrong).
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

// env looks up environment variables; tests pass their own.
type env func(string) (string, bool)

func run(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	err := dispatch(ctx, args, getenv, stdout, stderr)
	// -h on a command printed its usage on request: that is a success.
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	return err
}

func dispatch(ctx context.Context, args []string, getenv env, stdout, stderr io.Writer) error {
	cmd := "serve"
	if len(args) > 0 && (!isFlag(args[0]) || isHelp(args[0]) || args[0] == "--version") {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stderr)
	case "run":
		return runCmd(ctx, args, getenv, os.Stdin, stdout, stderr)
	case "ingest":
		return ingest(ctx, args, getenv, stdout, stderr)
	case "check":
		return check(args, getenv, stdout, stderr)
	case "schema":
		return schema(args, stdout, stderr)
	case "init":
		return initCmd(args, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "troupe", buildVersion())
		return nil
	case "help", "-h", "-help", "--help":
		if len(args) == 0 {
			fmt.Fprint(stdout, usage)
			return nil
		}
		// troupe help <command> is <command> -h, printed on stdout.
		if !slices.Contains(commands, args[0]) {
			fmt.Fprintf(stderr, "troupe: unknown command %q\n\n%s", args[0], usage)
			return exitError(2)
		}
		if args[0] == "version" {
			fmt.Fprintln(stdout, "Usage: troupe version\n\nPrints the version of this binary.")
			return nil
		}
		return dispatch(ctx, []string{args[0], "-h"}, getenv, stdout, stdout)
	}
	fmt.Fprintf(stderr, "troupe: unknown command %q\n\n%s", cmd, usage)
	return exitError(2)
}

// commands are the names dispatch knows, for troupe help <command>.
var commands = []string{"serve", "run", "ingest", "check", "schema", "init", "version"}

func isFlag(s string) bool { return len(s) > 0 && s[0] == '-' }

func isHelp(s string) bool { return s == "-h" || s == "-help" || s == "--help" }

// parseError turns a flag parsing failure into the command's exit: -h asked
// for the usage (exit 0, see run), anything else is a usage error (exit 2; the
// flag package has printed what was wrong).
func parseError(err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	return exitError(2)
}

// version is set at build time with -ldflags "-X main.version=..."; without
// it buildVersion reads the module version or VCS revision Go recorded.
var version string

// buildVersion is the version troupe reports in `troupe version`, GET /config
// and the console's footer.
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	return resolveVersion(version, info, ok)
}

// resolveVersion prefers the -ldflags value, then a released module version
// (go install ...@v1.2.3), then the VCS revision of a build from a checkout,
// else "dev".
func resolveVersion(ldflags string, info *debug.BuildInfo, ok bool) string {
	if ldflags != "" {
		return ldflags
	}
	if !ok || info == nil {
		return "dev"
	}
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if rev == "" {
		return "dev"
	}
	return rev[:min(12, len(rev))] + dirty
}

const usage = `Usage: troupe <command> [flags]

Commands:
  serve    load, watch and serve the spec folder (default)
  run      run one turn of an agent or team: troupe run <name> message...
  ingest   add files to a knowledge base: troupe ingest <knowledge> <file>...
  check    report every problem in spec folders; exit 1 on errors
  schema   print the JSON Schema of the spec language
  init     scaffold a spec folder with an agent and a local model: troupe init [dir]
  version  print the version
  help     print this list, or a command's usage: troupe help <command>

Run 'troupe help <command>' or 'troupe <command> -h' for the flags of a command.
`
