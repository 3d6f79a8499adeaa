package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"

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
		return exitError(2)
	}
	dirs := fs.Args()
	if len(dirs) == 0 {
		dirs = []string{*dir}
	}
	set, err := spec.NewLoader(spec.LoaderOptions{Env: spec.Env(getenv), ReadRoots: roots, BuiltinTools: builtinTools()}).Load(dirs...)
	if err != nil {
		return err
	}
	diags := set.Diagnostics()
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
	errs := len(diags.Errors())
	fmt.Fprintf(stderr, "%d files, %d objects: %d errors, %d warnings\n", len(set.Files()), len(set.Keys()), errs, len(diags)-errs)
	if errs > 0 {
		return exitError(1)
	}
	return nil
}

// schema prints the JSON Schema of the spec language.
func schema(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("schema", flag.ContinueOnError)
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		return exitError(2)
	}
	_, err := stdout.Write(spec.SchemaJSON(builtinTools()))
	return err
}
