package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"time"

	"github.com/troupehq/troupe/console/auth"
	"github.com/troupehq/troupe/engine"
	"github.com/troupehq/troupe/spec"
)

// check loads folders and prints their diagnostics compiler-style. Warnings do
// not fail; any error exits with status 1.
func check(args []string, getenv env, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("check", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dir := fs.String("dir", "agents.d", "spec folder (more folders may follow as arguments)")
	asJSON := fs.Bool("json", false, "print diagnostics as JSON")
	var roots []string
	readRootsFlag(fs, getenv, &roots)
	if err := fs.Parse(args); err != nil {
		return parseError(err)
	}
	dirs := fs.Args()
	if len(dirs) == 0 {
		dirs = []string{*dir}
	}
	set, err := spec.NewLoader(spec.LoaderOptions{Env: spec.Env(getenv), ReadRoots: roots, BuiltinTools: builtinTools(), ApproverScopes: auth.ScopeNames()}).Load(dirs...)
	if err != nil {
		return err
	}
	diags := set.Diagnostics()
	// Compiling as serve does finds what only the runtime knows: a
	// provider's missing API key, which serve reports and a check must too
	// (a green check gate would otherwise start a server that cannot run
	// them). Compiling opens no connections. Only those errors are added:
	// the others it reports follow from the spec's own.
	rt, pool := newRuntime(getenv, slog.New(slog.DiscardHandler), nil)
	defer pool.Close()
	for _, d := range engine.Compile(set, nil, 1, time.Now(), rt).Diagnostics().Errors() {
		if d.Code == spec.CodeMissingAPIKey {
			diags = append(diags, d)
		}
	}
	diags.Sort()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if diags == nil {
			diags = spec.Diagnostics{}
		}
		if err := enc.Encode(diags); err != nil {
			return fmt.Errorf("writing diagnostics: %w", err)
		}
	} else {
		for _, d := range diags {
			fmt.Fprintln(stdout, d.Error())
		}
	}
	if line := workflowSummary(set); line != "" {
		fmt.Fprintln(stderr, line)
	}
	errs := len(diags.Errors())
	fmt.Fprintf(stderr, "%d files, %d objects: %d errors, %d warnings\n", len(set.Files()), len(set.Keys()), errs, len(diags)-errs)
	if errs > 0 {
		return exitError(1)
	}
	return nil
}

// workflowSummary lists the folder's workflows with their step counts (nested
// steps included), so a check shows what each workflow will run; stdout stays
// diagnostics only.
func workflowSummary(set *spec.Set) string {
	var parts []string
	for _, k := range set.Keys() {
		w, ok := set.Lookup(k).(*spec.Workflow)
		if !ok {
			continue
		}
		n := 0
		w.Walk(func(string, *spec.Step) { n++ })
		state := ""
		if set.Broken(k) {
			state = ", broken"
		}
		parts = append(parts, fmt.Sprintf("%s (%d %s%s)", w.Name, n, plural(n, "step", "steps"), state))
	}
	if len(parts) == 0 {
		return ""
	}
	return "workflows: " + strings.Join(parts, ", ")
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// schema prints the JSON Schema of the spec language.
func schema(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("schema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return parseError(err)
	}
	_, err := stdout.Write(spec.SchemaJSON(builtinTools()))
	return err
}
