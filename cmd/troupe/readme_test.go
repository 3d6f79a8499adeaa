package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/spec"
)

// readme returns the README and its shell code blocks (sh, bash or no
// language), each block's lines with their line numbers.
func readme(t *testing.T) (string, []shellLine) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(composeRepoRoot, "README.md"))
	require.NoError(t, err)
	var (
		lines []shellLine
		in    bool
		shell bool
	)
	for i, line := range strings.Split(string(data), "\n") {
		if fence, ok := strings.CutPrefix(line, "```"); ok {
			if in {
				in = false
				continue
			}
			in, shell = true, slices.Contains([]string{"", "sh", "bash", "shell"}, strings.TrimSpace(fence))
			continue
		}
		if in && shell {
			lines = append(lines, shellLine{no: i + 1, text: line})
		}
	}
	return string(data), lines
}

type shellLine struct {
	no   int
	text string
}

// TestReadmeShellIsPortable: the README's commands work as pasted on Linux and
// in zsh, not only in bash on macOS. `open` exists only on macOS, and zsh
// treats an unquoted `?` as a glob and fails with "no matches found".
func TestReadmeShellIsPortable(t *testing.T) {
	t.Parallel()
	_, lines := readme(t)
	require.NotEmpty(t, lines)
	// A URL-ish word with a ? that is not inside quotes: the quotes are
	// removed first, so what remains is what the shell globs.
	quoted := regexp.MustCompile(`'[^']*'|"[^"]*"`)
	glob := regexp.MustCompile(`(?:https?://|localhost:|127\.0\.0\.1:|postgres://)\S*\?`)
	for _, l := range lines {
		code, _, _ := strings.Cut(l.text, " #") // comments are not globbed
		require.NotRegexp(t, `(^|[;&|]\s*)open\s`, code, "README.md:%d uses open, which only macOS has: %s", l.no, l.text)
		require.NotRegexp(t, glob, quoted.ReplaceAllString(code, "''"), "README.md:%d has an unquoted URL with ?, which zsh refuses: %s", l.no, l.text)
	}
}

// TestReadmeKindsTableIsComplete: the table of kinds names every top-level
// field of every kind the schema has (team limits were missing once), so the
// front door never hides a field the language accepts.
func TestReadmeKindsTableIsComplete(t *testing.T) {
	t.Parallel()
	text, _ := readme(t)
	var schema struct {
		Defs map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"$defs"`
	}
	require.NoError(t, json.Unmarshal(spec.SchemaJSON(builtinTools()), &schema))
	rows := map[string]string{}
	for _, line := range strings.Split(text, "\n") {
		if m := regexp.MustCompile("^\\| `([A-Z][A-Za-z]+)` \\| (.*)$").FindStringSubmatch(line); m != nil {
			rows[m[1]] = m[2]
		}
	}
	common := []string{"kind", "name", "version", "description"} // said once, above the table
	for kind, def := range schema.Defs {
		if kind == "Step" { // a workflow's steps, listed in the Workflow row
			continue
		}
		row, ok := rows[kind]
		require.True(t, ok, "the kinds table has no row for %s", kind)
		for field := range def.Properties {
			if slices.Contains(common, field) {
				continue
			}
			require.Regexp(t, "`"+regexp.QuoteMeta(field)+"[`{ :/]", row, "the kinds table's %s row does not mention %q", kind, field)
		}
	}
	require.True(t, strings.Contains(text, "optionally `version: 1` and `description`"), "the README does not say every document may have a version and a description")
}

// TestReadmeHasNoStaleNotes: notes written before a feature existed are gone
// once it does.
func TestReadmeHasNoStaleNotes(t *testing.T) {
	t.Parallel()
	text, _ := readme(t)
	for _, stale := range []string{"milestone", "not available until", "coming soon", "TODO"} {
		require.False(t, strings.Contains(text, stale), "the README still says %q", stale)
	}
}

// TestTracingInternalsHaveTheirOwnPage: the front door says what a trace is
// and how to configure it; how the recorder, sinks and tables work, and what
// they cost, live in telemetry/README.md, which the README links.
func TestTracingInternalsHaveTheirOwnPage(t *testing.T) {
	t.Parallel()
	text, _ := readme(t)
	require.True(t, strings.Contains(text, "(telemetry/README.md)"), "the README does not link telemetry/README.md")
	internals, err := os.ReadFile(filepath.Join(composeRepoRoot, "telemetry", "README.md"))
	require.NoError(t, err)
	for _, detail := range []string{"MergeTree", "16,384", "materialized view", "UUIDv7", "BenchmarkTracingOverhead"} {
		require.False(t, strings.Contains(text, detail), "an internal detail of tracing is back on the front door: %q", detail)
		require.Contains(t, string(internals), detail, "telemetry/README.md lost %q", detail)
	}
}
