// Command troupe serves agents, teams, tools and knowledge defined in YAML files.
//
//	troupe [serve] [--dir agents.d]   load, watch and serve the folder (default)
//	troupe run <agent-or-team> "msg"  run one turn from the terminal
//	troupe ingest <knowledge> <file>  add files to a knowledge base
//	troupe check [--dir DIR] [DIR...] report every problem in the specs
//	troupe schema                     print the JSON Schema of the spec language
//
// main only parses flags and wires components together; the work happens in the
// packages it imports.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
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
	cmd := "serve"
	if len(args) > 0 && !isFlag(args[0]) {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, args, getenv, stderr)
	case "run":
		return runCmd(ctx, args, getenv, stdout, stderr)
	case "ingest":
		return ingest(ctx, args, getenv, stdout, stderr)
	case "check":
		return check(args, getenv, stdout, stderr)
	case "schema":
		return schema(args, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "troupe: unknown command %q\n\n%s", cmd, usage)
	return exitError(2)
}

func isFlag(s string) bool { return len(s) > 0 && s[0] == '-' }

const usage = `Usage: troupe <command> [flags]

Commands:
  serve    load, watch and serve the spec folder (default)
  run      run one turn of an agent or team: troupe run <name> "message"
  ingest   add files to a knowledge base: troupe ingest <knowledge> <file>...
  check    report every problem in spec folders; exit 1 on errors
  schema   print the JSON Schema of the spec language

Run 'troupe <command> -h' for the flags of a command.
`
