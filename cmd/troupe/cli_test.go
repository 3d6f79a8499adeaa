package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
)

// TestHelpListsCommands: --help, -h and help print every command with its
// line and exit 0; help <command> prints that command's usage and flags; an
// unknown command prints the list and exits 2.
func TestHelpListsCommands(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		args     []string
		want     error
		out, err []string // substrings of stdout and stderr
	}{
		{args: []string{"--help"}, out: []string{"serve    load, watch", "run      run one turn", "init     scaffold", "version  print the version", "help     print this list"}},
		{args: []string{"-h"}, out: []string{"check    report every problem", "schema   print the JSON Schema"}},
		{args: []string{"help"}, out: []string{"ingest   add files"}},
		{args: []string{"help", "run"}, out: []string{"Usage: troupe run [flags] <agent-or-team> [message...|-]", "-session string", "-q\tprint only the answer"}},
		{args: []string{"help", "serve"}, out: []string{"-addr string", "-log-level string"}},
		{args: []string{"help", "init"}, out: []string{"Usage: troupe init [dir]"}},
		{args: []string{"help", "version"}, out: []string{"Usage: troupe version"}},
		{args: []string{"check", "-h"}, err: []string{"-json"}},
		{args: []string{"help", "frobnicate"}, want: exitError(2), err: []string{`unknown command "frobnicate"`, "init     scaffold"}},
		{args: []string{"frobnicate"}, want: exitError(2), err: []string{`unknown command "frobnicate"`, "version  print the version"}},
		{args: []string{"run", "--nope"}, want: exitError(2), err: []string{"flag provided but not defined: -nope"}},
	} {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(t.Context(), tt.args, noEnv, &out, &errOut)
			require.Equal(t, tt.want, err, "%s\n%s", out.String(), errOut.String())
			for _, s := range tt.out {
				require.Contains(t, out.String(), s)
			}
			for _, s := range tt.err {
				require.Contains(t, errOut.String(), s)
			}
		})
	}
}

// TestResolveVersion: -ldflags wins, then a released module version, then the
// VCS revision, else "dev".
func TestResolveVersion(t *testing.T) {
	t.Parallel()
	rev := []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123"}}
	for _, tt := range []struct {
		name, ldflags string
		info          *debug.BuildInfo
		ok            bool
		want          string
	}{
		{"ldflags", "v1.2.3", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}}, true, "v1.2.3"},
		{"module version", "", &debug.BuildInfo{Main: debug.Module{Version: "v0.9.0"}, Settings: rev}, true, "v0.9.0"},
		{"vcs revision", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}, Settings: rev}, true, "0123456789ab"},
		{"dirty checkout", "", &debug.BuildInfo{Settings: append(rev, debug.BuildSetting{Key: "vcs.modified", Value: "true"})}, true, "0123456789ab-dirty"},
		{"no vcs", "", &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, true, "dev"},
		{"no build info", "", nil, false, "dev"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.Equal(t, tt.want, resolveVersion(tt.ldflags, tt.info, tt.ok))
		})
	}
}

// TestVersionEverywhere builds the real binary with -ldflags and finds its
// version in `troupe version`, GET /config and the console's footer.
func TestVersionEverywhere(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	const v = "v9.8.7-cli-test"
	bin := filepath.Join(t.TempDir(), "troupe")
	build := exec.CommandContext(t.Context(), "go", "build", "-ldflags", "-X main.version="+v, "-o", bin, ".")
	out, err := build.CombinedOutput()
	require.NoError(t, err, string(out))

	out, err = exec.CommandContext(t.Context(), bin, "version").Output()
	require.NoError(t, err)
	require.Equal(t, "troupe "+v+"\n", string(out))

	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte("kind: Agent\nname: a\nmodel: echo\n"), 0o644))
	addr := freeAddr(t)
	serve := exec.CommandContext(t.Context(), bin, "serve", "--dir", dir, "--addr", addr, "--db", filepath.Join(t.TempDir(), "t.db"), "--traces", "off")
	serve.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + os.TempDir()}
	var logs syncBuffer
	serve.Stdout, serve.Stderr = &logs, &logs
	require.NoError(t, serve.Start())
	t.Cleanup(func() { _ = serve.Process.Kill(); _ = serve.Wait() })
	get := func(path string) []byte {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			return nil
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return nil
		}
		return b
	}
	require.Eventually(t, func() bool { return get("/config") != nil }, 30*time.Second, 50*time.Millisecond, logs.String())
	var cfg struct {
		Version string `json:"version"`
	}
	require.NoError(t, json.Unmarshal(get("/config"), &cfg))
	require.Equal(t, v, cfg.Version)
	require.Contains(t, string(get("/")), `<footer class="foot">Troupe `+v+` <a href="/docs"`)
}

// TestInitScaffoldsACheckedFolder: troupe init writes an agent and a local
// Model that troupe check accepts with no keys, and never overwrites a file.
func TestInitScaffoldsACheckedFolder(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "specs")
	var out, errOut bytes.Buffer
	require.NoError(t, run(t.Context(), []string{"init", dir}, noEnv, &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "wrote "+filepath.Join(dir, "assistant.yaml"))
	model, err := os.ReadFile(filepath.Join(dir, "local.yaml"))
	require.NoError(t, err)
	for _, s := range []string{"base_url: http://localhost:11434/v1", "vLLM", "LM Studio", "kind: Model"} {
		require.Contains(t, string(model), s)
	}

	out.Reset()
	errOut.Reset()
	require.NoError(t, run(t.Context(), []string{"check", dir}, noEnv, &out, &errOut), out.String())
	require.Empty(t, out.String())
	require.Contains(t, errOut.String(), "2 files, 2 objects: 0 errors, 0 warnings")

	// A second init, or one into a folder holding one of its files, refuses
	// and changes nothing.
	require.NoError(t, os.WriteFile(filepath.Join(dir, "assistant.yaml"), []byte("# mine\n"), 0o644))
	require.NoError(t, os.Remove(filepath.Join(dir, "local.yaml")))
	errOut.Reset()
	err = run(t.Context(), []string{"init", dir}, noEnv, &out, &errOut)
	require.Equal(t, exitError(1), err)
	require.Contains(t, errOut.String(), "assistant.yaml already exists: troupe init never overwrites files")
	mine, rerr := os.ReadFile(filepath.Join(dir, "assistant.yaml"))
	require.NoError(t, rerr)
	require.Equal(t, "# mine\n", string(mine))
	require.NoFileExists(t, filepath.Join(dir, "local.yaml"), "a refusal writes nothing")

	// The default folder is agents.d in the current directory; cd is
	// process-wide, so this runs as a child process.
	cwd := t.TempDir()
	cmd := exec.CommandContext(t.Context(), os.Args[0], "init")
	cmd.Dir = cwd
	cmd.Env = []string{execMainEnv + "=1", "PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "TMPDIR=" + os.TempDir()}
	b, err := cmd.CombinedOutput()
	require.NoError(t, err, string(b))
	require.FileExists(t, filepath.Join(cwd, "agents.d", "assistant.yaml"))
}

// TestRunFlagsAnywhereAndStdin: flags after the message are flags, -- ends
// them, the message may come from standard input, and the exit codes are
// the README's: 0 completed, 1 a failed run, 2 a usage error.
func TestRunFlagsAnywhereAndStdin(t *testing.T) {
	t.Parallel()
	keyless := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(keyless, "a.yaml"), []byte("kind: Agent\nname: needs_key\nmodel: openai/gpt-4o-mini\n"), 0o644))
	for _, tt := range []struct {
		name  string
		args  []string
		stdin string
		want  error
		out   string // stdout exactly, when set
		err   string // in stderr or the error
	}{
		{name: "flag after the message", args: []string{"hello", "hi", "-q"}, out: "Echo: hi\n"},
		{name: "flags on both sides", args: []string{"-q", "hello", "hi", "there", "--dir", "../../agents.d"}, out: "Echo: hi there\n"},
		{name: "-- ends the flags", args: []string{"-q", "hello", "--", "hi", "-q"}, out: "Echo: hi -q\n"},
		{name: "message from stdin", args: []string{"hello", "-q"}, stdin: "from a pipe\n", out: "Echo: from a pipe\n"},
		{name: "- reads stdin", args: []string{"-q", "hello", "-"}, stdin: "dash\n", out: "Echo: dash\n"},
		{name: "empty stdin", args: []string{"hello"}, stdin: "", want: exitError(2), err: "the message is empty"},
		{name: "no agent", args: []string{"-q"}, want: exitError(2), err: "Usage: troupe run"},
		{name: "bad flag", args: []string{"hello", "hi", "--nope"}, want: exitError(2), err: "flag provided but not defined"},
		{name: "failed run", args: []string{"--dir", keyless, "needs_key", "hi"}, want: exitError(1), err: "needs an API key: set OPENAI_API_KEY"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			args := append([]string{"--dir", "../../agents.d"}, tt.args...)
			err := runCmd(t.Context(), args, noEnv, strings.NewReader(tt.stdin), &out, &errOut)
			require.Equal(t, tt.want, err, "%s\n%s", out.String(), errOut.String())
			if tt.out != "" {
				require.Equal(t, tt.out, out.String())
			}
			require.Contains(t, errOut.String(), tt.err)
		})
	}
	// An unknown agent is a usage error: main prints it and exits 2.
	err := runCmd(t.Context(), []string{"--dir", "../../agents.d", "nobody", "hi"}, noEnv, strings.NewReader(""), io.Discard, io.Discard)
	require.ErrorContains(t, err, `agent "nobody": not found`)
	require.NotErrorAs(t, err, new(exitError))
}

// TestMissingKeyReported: troupe check fails on agents whose provider has no
// key, naming the variable, as serve does; troupe run prints that one error
// (not a warning per agent, not a "cycle") and exits 1.
func TestMissingKeyReported(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(`kind: Agent
name: a
model: openai/gpt-4o-mini
---
kind: Agent
name: b
model: anthropic/claude-3-5-haiku-latest
---
kind: Agent
name: local
model: echo
---
kind: Team
name: t
mode: route
model: openai/gpt-4o-mini
members: [a, local]
`), 0o644))
	withKeys := func(k string) (string, bool) {
		if k == "OPENAI_API_KEY" || k == "ANTHROPIC_API_KEY" {
			return "sk-test", true
		}
		return "", false
	}
	for _, tt := range []struct {
		name  string
		env   env
		want  error
		lines []string
	}{
		{"no keys", noEnv, exitError(1), []string{
			dir + "/a.yaml:1:1: agents.a: model openai/gpt-4o-mini needs an API key: set OPENAI_API_KEY, or api_key in a Model document",
			dir + "/a.yaml:5:1: agents.b: model anthropic/claude-3-5-haiku-latest needs an API key: set ANTHROPIC_API_KEY, or api_key in a Model document",
		}},
		{"keys set", withKeys, nil, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(t.Context(), []string{"check", dir}, tt.env, &out, &errOut)
			require.Equal(t, tt.want, err, errOut.String())
			var got []string
			for l := range strings.SplitSeq(strings.TrimSpace(out.String()), "\n") {
				if l != "" {
					got = append(got, l)
				}
			}
			require.Equal(t, tt.lines, got)
		})
	}

	var out, errOut bytes.Buffer
	err := run(t.Context(), []string{"run", "--dir", dir, "t", "hi"}, noEnv, &out, &errOut)
	require.Equal(t, exitError(1), err)
	require.Equal(t, "troupe: team \"t\" cannot run: model openai/gpt-4o-mini needs an API key: set OPENAI_API_KEY, or api_key in a Model document\n", errOut.String())
	require.Empty(t, out.String())

	// Programs tell these errors apart by their code, not their wording.
	out.Reset()
	require.Equal(t, exitError(1), run(t.Context(), []string{"check", "--json", dir}, noEnv, &out, &errOut))
	var diags []struct {
		Path string `json:"path"`
		Code string `json:"code"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &diags))
	require.Equal(t, []struct {
		Path string `json:"path"`
		Code string `json:"code"`
	}{{"agents.a", spec.CodeMissingAPIKey}, {"agents.b", spec.CodeMissingAPIKey}}, diags)
}

// TestKnowledgeGivesItsSearch: an agent listing knowledge searches it without
// naming the knowledge_search tool; knowledge_search: false opts out, and
// contradicting tools is an error troupe check reports.
func TestKnowledgeGivesItsSearch(t *testing.T) {
	t.Parallel()
	const base = `kind: Knowledge
name: notes
sources: [notes.md]
embedder: local
store: embedded
---
kind: Agent
name: reader
model: echo
knowledge: [notes]
`
	for _, tt := range []struct {
		name, extra string
		searches    bool
		checkErr    string // a troupe check error, when the spec is wrong
	}{
		{name: "knowledge alone", searches: true},
		{name: "opted out", extra: "knowledge_search: false\n"},
		{name: "explicit true", extra: "knowledge_search: true\n", searches: true},
		{name: "contradiction", extra: "knowledge_search: false\ntools: [knowledge_search]\n", checkErr: "agents.reader.knowledge_search: knowledge_search: false contradicts tools listing knowledge_search: remove one of them"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			require.NoError(t, os.WriteFile(filepath.Join(dir, "notes.md"), []byte("# Parrots\n\nThe parrot's name is Polly and she likes crackers.\n"), 0o644))
			require.NoError(t, os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(base+tt.extra), 0o644))
			var out, errOut bytes.Buffer
			err := run(t.Context(), []string{"check", dir}, noEnv, &out, &errOut)
			if tt.checkErr != "" {
				require.Equal(t, exitError(1), err)
				require.Contains(t, out.String(), tt.checkErr)
				return
			}
			require.NoError(t, err, out.String())
			out.Reset()
			err = run(t.Context(), []string{"run", "--dir", dir, "reader", "What is the parrot's name?"}, noEnv, &out, &errOut)
			require.NoError(t, err, errOut.String())
			if tt.searches {
				require.Contains(t, out.String(), "⚙ knowledge_search(query=What is the parrot's name?)")
				require.Contains(t, out.String(), "— sources: notes.md")
			} else {
				require.NotContains(t, out.String(), "knowledge_search")
				require.NotContains(t, out.String(), "— sources:")
			}
		})
	}
}
