package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// scaffold is what troupe init writes: a Model for a local OpenAI-compatible
// server and an agent that uses it. troupe check accepts it as written (the
// tests say so), and no key is needed: a base_url stands in for one.
var scaffold = []struct{ name, text string }{
	{"local.yaml", `# A model served on this machine through the OpenAI wire format.
# Ollama (the default here): install it, then "ollama pull llama3.2".
# vLLM:      base_url: http://localhost:8000/v1   model: the --model you served
# LM Studio: base_url: http://localhost:1234/v1   model: the id its server lists
# A hosted OpenAI-compatible API: set base_url and api_key: ${ITS_KEY_VARIABLE}.
kind: Model
name: local
provider: openai
base_url: http://localhost:11434/v1
model: llama3.2
`},
	{"assistant.yaml", `# An agent: try it with  troupe run assistant "hello"
# or serve the folder with  troupe serve --dir <this folder>
kind: Agent
name: assistant
description: A helpful assistant that answers briefly.
model: local
instructions: |
  You are a helpful assistant. Answer briefly and say when you are not sure.
`},
}

// initCmd scaffolds a spec folder (default agents.d) and refuses to overwrite
// any file that is already there.
func initCmd(args []string, stdout, stderr io.Writer) error {
	fset := flag.NewFlagSet("init", flag.ContinueOnError)
	fset.SetOutput(stderr)
	fset.Usage = func() {
		fmt.Fprintln(fset.Output(), "Usage: troupe init [dir]\n\nWrites an agent and a Model for a local OpenAI-compatible server (Ollama at http://localhost:11434/v1; comments say how to use vLLM or LM Studio) into dir (default agents.d). Existing files are never overwritten.")
	}
	if err := fset.Parse(args); err != nil {
		return parseError(err)
	}
	if fset.NArg() > 1 {
		fset.Usage()
		return exitError(2)
	}
	dir := "agents.d"
	if fset.NArg() == 1 {
		dir = fset.Arg(0)
	}
	// Every file is checked before any is written, so a refusal leaves the
	// folder as it was.
	for _, f := range scaffold {
		path := filepath.Join(dir, f.name)
		if _, err := os.Lstat(path); err == nil {
			fmt.Fprintf(stderr, "troupe init: %s already exists: troupe init never overwrites files; pick another folder (troupe init DIR) or move it away\n", path)
			return exitError(1)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("checking %s: %w", path, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, f := range scaffold {
		path := filepath.Join(dir, f.name)
		// O_EXCL keeps the promise even against a file that appeared since
		// the check above.
		w, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		_, err = io.WriteString(w, f.text)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		fmt.Fprintln(stdout, "wrote", path)
	}
	fmt.Fprintf(stdout, "next: start Ollama (ollama pull llama3.2), then troupe check %s and troupe run --dir %s assistant \"hello\"\n", dir, dir)
	return nil
}
