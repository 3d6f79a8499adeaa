package reader

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
)

// FuzzRead checks that Detect and every reader survive arbitrary input:
// no panics, no hangs, and well-formed sections. Seeded with the samples
// and the PDFs the PDF tests build.
func FuzzRead(f *testing.F) {
	entries, err := os.ReadDir("testdata")
	require.NoError(f, err)
	for _, e := range entries {
		if e.Type().IsRegular() {
			data, err := os.ReadFile(filepath.Join("testdata", e.Name()))
			require.NoError(f, err)
			f.Add(e.Name(), data)
		}
	}
	f.Add("page.pdf", textPDF(
		"BT /F1 12 Tf 72 720 Td [(Hel) -20 (lo) -400 (world)] TJ 0 -14 Td 3 Tc (ab) Tj ET",
		"q 1 0 0 1 10 10 cm BT /F1 10 Tf 12 TL (x) ' T* <4142> Tj ET Q BI /W 1 /H 1 ID \x00 EI",
	))
	f.Add("objstm.pdf", xrefStreamPDF("/N 1 /First 4", "7 0 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>", func(offsets []int) [][3]int {
		return [][3]int{{0, 0, 65535}, {1, offsets[1], 0}, {1, offsets[2], 0}, {1, offsets[3], 0}, {1, offsets[4], 0}, {1, offsets[5], 0}, {0, 0, 0}, {2, 5, 0}}
	}))
	f.Add("notes", []byte("# T\n\nSub\n---\n```\n# x\n```\n"))
	f.Add("data", []byte(`[{"a": {"b": [1, "x", null]}}, {"c": true}]`))
	f.Add("t.csv", []byte("a;b\n\"x\ny\";2\n3\n"))
	f.Add("p.txt", []byte("<!doctype html><title>t</title><h2>a</h2><table><tr><td>1<td>2</table>"))
	f.Add("u.txt", utf16le("hello", true))

	f.Fuzz(func(t *testing.T, name string, data []byte) {
		typ, err := Detect(name, data)
		if err != nil {
			require.True(t, errors.Is(err, ErrUnsupported) || errors.Is(err, ErrTooLarge), err)
		} else {
			require.Contains(t, Supported, typ)
		}
		for _, typ := range Supported {
			sections, err := Read(typ, name, data)
			if err != nil {
				require.Empty(t, sections)
				continue
			}
			checkSections(t, typ, sections)
		}
	})
}

func checkSections(t *testing.T, typ string, sections []knowledge.Section) {
	t.Helper()
	for _, s := range sections {
		require.True(t, utf8.ValidString(s.Text), typ)
		require.True(t, utf8.ValidString(s.Heading), typ)
		require.NotContains(t, s.Text, "\x00", typ)
		require.NotContains(t, s.Text, "\r", typ)
		require.NotEmpty(t, strings.TrimSpace(s.Text), typ)
		require.Equal(t, s.Text, strings.Trim(s.Text, "\n"), typ)
		if typ == PDF {
			require.Positive(t, s.Page)
		} else {
			require.Zero(t, s.Page)
		}
	}
	if typ == PDF {
		require.True(t, slices.IsSortedFunc(sections, func(a, b knowledge.Section) int { return a.Page - b.Page }))
	}
}
