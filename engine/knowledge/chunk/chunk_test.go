package chunk

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
)

func texts(pieces []Piece) []string {
	var out []string
	for _, p := range pieces {
		out = append(out, p.Text)
	}
	return out
}

func TestSplitOptions(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		err  string
	}{
		{"zero size", Options{Strategy: Fixed}, "size must be positive"},
		{"negative size", Options{Strategy: Fixed, Size: -1}, "size must be positive"},
		{"overlap equal to size", Options{Strategy: Recursive, Size: 10, Overlap: 10}, "overlap must be"},
		{"overlap above size", Options{Strategy: Markdown, Size: 10, Overlap: 11}, "overlap must be"},
		{"negative overlap", Options{Strategy: Markdown, Size: 10, Overlap: -1}, "overlap must be"},
		{"unknown strategy", Options{Strategy: "semantic", Size: 10}, `unknown strategy "semantic"`},
		{"fixed", Options{Strategy: Fixed, Size: 1}, ""},
		{"recursive", Options{Strategy: Recursive, Size: 10, Overlap: 9}, ""},
		{"markdown", Options{Strategy: Markdown, Size: 10}, ""},
		{"default strategy is recursive", Options{Size: 10}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Split([]knowledge.Section{{Text: "some text"}}, tt.opts)
			if tt.err == "" {
				require.NoError(t, err)
			} else {
				require.ErrorContains(t, err, tt.err)
			}
		})
	}
}

func TestSplitExact(t *testing.T) {
	const md = "# Guide\n\nIntro.\n\n## Install\n\nRun the installer.\n\n```sh\n# not a heading\nmake install\n```\n\n## Use\n\nCall it."
	tests := []struct {
		name string
		text string
		opts Options
		want []string
	}{
		{
			name: "empty",
			text: " \n\n\t ",
			opts: Options{Strategy: Recursive, Size: 5},
			want: nil,
		},
		{
			name: "fixed windows step size minus overlap",
			text: "one two three four five six seven eight nine ten",
			opts: Options{Strategy: Fixed, Size: 4, Overlap: 1},
			want: []string{"one two three four", "four five six seven", "seven eight nine ten"},
		},
		{
			name: "fixed without overlap",
			text: "one two three four five six seven eight nine ten",
			opts: Options{Strategy: Fixed, Size: 3},
			want: []string{"one two three", "four five six", "seven eight nine", "ten"},
		},
		{
			name: "fixed keeps line breaks and never splits words",
			text: "alpha, beta\ngamma delta.\n\nepsilon",
			opts: Options{Strategy: Fixed, Size: 3, Overlap: 1},
			want: []string{"alpha, beta", "beta\ngamma", "gamma delta.", "epsilon"},
		},
		{
			name: "fixed CJK characters are words",
			text: "你好世界和平",
			opts: Options{Strategy: Fixed, Size: 4, Overlap: 2},
			want: []string{"你好世界", "世界和平"},
		},
		{
			name: "fixed cuts a word only when it alone exceeds size",
			text: "ab " + strings.Repeat("x", 20) + " cd",
			opts: Options{Strategy: Fixed, Size: 2},
			want: []string{"ab", "xxxxxxxxxxxx", "xxxxxxxx cd"},
		},
		{
			name: "recursive paragraphs then sentences",
			text: "First paragraph here.\n\nSecond one is a bit longer. It has two sentences.\n\nThird.",
			opts: Options{Strategy: Recursive, Size: 8},
			want: []string{"First paragraph here.", "Second one is a bit longer.", "It has two sentences.\n\nThird."},
		},
		{
			name: "recursive merges paragraphs that fit",
			text: "One.\n\nTwo.\n\nThree.\n\nFour.",
			opts: Options{Strategy: Recursive, Size: 4},
			want: []string{"One.\n\nTwo.", "Three.\n\nFour."},
		},
		{
			name: "recursive overlap repeats the last units",
			text: "A b. C d. E f. G h. I j.",
			opts: Options{Strategy: Recursive, Size: 9, Overlap: 3},
			want: []string{"A b. C d. E f.", "E f. G h. I j."},
		},
		{
			name: "recursive abbreviations do not end sentences",
			text: "Use a tool, e.g. a hammer. Dr. Smith agrees. Then stop.",
			opts: Options{Strategy: Recursive, Size: 12},
			want: []string{"Use a tool, e.g. a hammer.", "Dr. Smith agrees. Then stop."},
		},
		{
			name: "recursive long sentence by lines then words",
			text: "- apples\n- pears\n- plums and more plums",
			opts: Options{Strategy: Recursive, Size: 4},
			want: []string{"- apples\n- pears", "- plums and more", "plums"},
		},
		{
			name: "recursive ignores markdown",
			text: md,
			opts: Options{Strategy: Recursive, Size: 100},
			want: []string{md},
		},
		{
			name: "markdown never merges across headings",
			text: md,
			opts: Options{Strategy: Markdown, Size: 100, Overlap: 10},
			want: []string{
				"# Guide\n\nIntro.",
				"## Install\n\nRun the installer.\n\n```sh\n# not a heading\nmake install\n```",
				"## Use\n\nCall it.",
			},
		},
		{
			name: "markdown keeps a fence whole when it fits",
			text: "Before the code.\n\n```go\nfunc f() {\n\n\treturn 1\n}\n```\nAfter.",
			opts: Options{Strategy: Markdown, Size: 15},
			want: []string{"Before the code.\n\n```go\nfunc f() {\n\n\treturn 1\n}\n```", "After."},
		},
		{
			name: "markdown cuts a large fence by lines",
			text: "```\nline one\nline two\nline three\n```",
			opts: Options{Strategy: Markdown, Size: 5},
			want: []string{"```\nline one\nline two", "line three\n```"},
		},
		{
			name: "markdown keeps a heading with its body",
			text: "## Setup\n\nAlpha beta. Gamma delta.",
			opts: Options{Strategy: Markdown, Size: 6},
			want: []string{"## Setup\n\nAlpha beta.", "Gamma delta."},
		},
		{
			name: "recursive may leave a heading alone",
			text: "## Setup\n\nAlpha beta. Gamma delta.",
			opts: Options{Strategy: Recursive, Size: 6},
			want: []string{"## Setup", "Alpha beta. Gamma delta."},
		},
		{
			name: "markdown keeps consecutive headings together",
			text: "# Title\n## Sub\nBody text here.\n# Next\nMore.",
			opts: Options{Strategy: Markdown, Size: 50},
			want: []string{"# Title\n## Sub\nBody text here.", "# Next\nMore."},
		},
		{
			name: "markdown setext headings",
			text: "Intro line.\n\nTitle\n=====\nBody.\n\nOther\n-----\nMore body.",
			opts: Options{Strategy: Markdown, Size: 50},
			want: []string{"Intro line.", "Title\n=====\nBody.", "Other\n-----\nMore body."},
		},
		{
			name: "markdown a dashed line after a list item is not a heading",
			text: "- item\n---\nText.",
			opts: Options{Strategy: Markdown, Size: 50},
			want: []string{"- item\n---\nText."},
		},
		{
			name: "markdown overlap stays within a heading block",
			text: "# A\n\nOne two three four five six.\n\n# B\n\nSeven.",
			opts: Options{Strategy: Markdown, Size: 5, Overlap: 2},
			want: []string{"# A\n\nOne two three", "two three four five", "four five six.", "# B\n\nSeven."},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pieces, err := Split([]knowledge.Section{{Text: tt.text}}, tt.opts)
			require.NoError(t, err)
			require.Equal(t, tt.want, texts(pieces))
			for _, p := range pieces {
				require.Equal(t, Tokens(p.Text), p.Tokens)
			}
		})
	}
}

func TestSplitPageAndHeading(t *testing.T) {
	sections := []knowledge.Section{
		{Text: "Page one text. It is long enough to be split in two.", Page: 1},
		{Text: "   ", Page: 2}, // no pieces
		{Text: "Page three.", Page: 3, Heading: "Guide > Install"},
		{Text: "## Linux\n\nUse apt. Or use the tarball, which is longer.", Page: 3, Heading: "Guide > Install > Linux"},
	}
	for _, strategy := range Strategies {
		t.Run(strategy, func(t *testing.T) {
			pieces, err := Split(sections, Options{Strategy: strategy, Size: 8, Overlap: 2})
			require.NoError(t, err)
			type origin struct {
				page    int
				heading string
			}
			var got []origin
			for _, p := range pieces {
				if len(got) == 0 || got[len(got)-1] != (origin{p.Page, p.Heading}) {
					got = append(got, origin{p.Page, p.Heading})
				}
				// Pieces never span sections.
				var in []int
				for i, s := range sections {
					if strings.Contains(s.Text, p.Text) {
						in = append(in, i)
					}
				}
				require.Len(t, in, 1, p.Text)
				require.Equal(t, sections[in[0]].Page, p.Page)
				require.Equal(t, sections[in[0]].Heading, p.Heading)
			}
			require.Equal(t, []origin{{1, ""}, {3, "Guide > Install"}, {3, "Guide > Install > Linux"}}, got)
			require.Greater(t, len(pieces), 3)
		})
	}
}

// span is where a piece lies in its section's text: pieces are substrings of
// it, so pointers tell exactly.
func span(t *testing.T, text, piece string) (int, int) {
	t.Helper()
	start := int(uintptr(unsafe.Pointer(unsafe.StringData(piece))) - uintptr(unsafe.Pointer(unsafe.StringData(text))))
	require.True(t, start >= 0 && start+len(piece) <= len(text), "piece is not in its section")
	return start, start + len(piece)
}

// checkPieces checks the invariants of Split's pieces for one section: each is
// non-empty, trimmed, valid UTF-8 and at most Size tokens (markdown: plus one
// word beside a heading); Piece.Tokens is Tokens(Text); consecutive pieces
// either overlap by a suffix of the first of at most Overlap tokens or are
// separated by whitespace only; the pieces cover the whole text in order.
// It returns the section's text rebuilt from the pieces minus their
// overlaps and the gaps between them.
func checkPieces(t *testing.T, text string, opts Options, pieces []Piece) string {
	t.Helper()
	var b strings.Builder
	prevStart, prevEnd := -1, 0
	for i, p := range pieces {
		require.NotEmpty(t, strings.TrimSpace(p.Text))
		require.Equal(t, strings.TrimFunc(p.Text, isTrimSpace), p.Text)
		require.True(t, utf8.ValidString(p.Text) || !utf8.ValidString(text))
		require.Equal(t, Tokens(p.Text), p.Tokens)
		if p.Tokens > opts.Size {
			// Only a Markdown heading glued to the start of its body: by at
			// most a word, or by the heading when a code block follows.
			require.Equal(t, Markdown, opts.Strategy, "piece %d exceeds size: %q", i, p.Text)
			over := 0
			for _, w := range strings.Fields(p.Text) {
				over = max(over, Tokens(w))
			}
			if heading, _, ok := strings.Cut(p.Text, "```"); ok {
				over = max(over, Tokens(heading))
			}
			require.LessOrEqual(t, p.Tokens-opts.Size, over, "piece %d: %q", i, p.Text)
		}
		start, end := span(t, text, p.Text)
		require.Greater(t, start, prevStart, "piece %d does not advance", i)
		if start < prevEnd {
			ov := text[start:prevEnd]
			require.LessOrEqual(t, Tokens(ov), opts.Overlap, "overlap of piece %d: %q", i, ov)
			require.True(t, strings.HasSuffix(pieces[i-1].Text, ov))
			require.True(t, strings.HasPrefix(p.Text, ov))
			b.WriteString(text[prevEnd:end])
		} else {
			gap := text[prevEnd:start]
			require.Empty(t, strings.TrimFunc(gap, isTrimSpace), "text lost before piece %d", i)
			b.WriteString(gap)
			b.WriteString(p.Text)
		}
		prevStart, prevEnd = start, end
	}
	require.Empty(t, strings.TrimFunc(text[prevEnd:], isTrimSpace), "text lost at the end")
	b.WriteString(text[prevEnd:])
	return b.String()
}

func isTrimSpace(r rune) bool { return isSpace(r) }

func TestSplitOverlap(t *testing.T) {
	// Words of one token each: overlap is exactly Overlap words.
	words := make([]string, 200)
	for i := range words {
		words[i] = string(rune('a'+i%26)) + string(rune('a'+i/26))
	}
	text := strings.Join(words, " ")
	for _, strategy := range Strategies {
		for _, o := range []struct{ size, overlap int }{{10, 3}, {10, 9}, {7, 1}, {50, 25}} {
			opts := Options{Strategy: strategy, Size: o.size, Overlap: o.overlap}
			pieces, err := Split([]knowledge.Section{{Text: text}}, opts)
			require.NoError(t, err)
			require.Equal(t, text, checkPieces(t, text, opts, pieces))
			for i := 1; i < len(pieces); i++ {
				prev, next := strings.Fields(pieces[i-1].Text), strings.Fields(pieces[i].Text)
				require.Len(t, prev, o.size, "only the last piece may be short")
				shared := prev[len(prev)-o.overlap:]
				require.Equal(t, shared, next[:o.overlap], "piece %d starts with the end of piece %d", i, i-1)
			}
		}
	}
}

func TestSplitRandom(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for n := range 1500 {
		text := randomText(r, r.IntN(200))
		size := 1 + r.IntN(60)
		if n%3 == 0 {
			size = 1 + r.IntN(6)
		}
		opts := Options{Strategy: Strategies[n%3], Size: size, Overlap: r.IntN(size)}
		pieces, err := Split([]knowledge.Section{{Text: text, Page: 7, Heading: "H"}}, opts)
		require.NoError(t, err)
		require.Equal(t, text, checkPieces(t, text, opts, pieces), "%+v", opts)
		for _, p := range pieces {
			require.Equal(t, 7, p.Page)
			require.Equal(t, "H", p.Heading)
		}
		if opts.Strategy == Markdown {
			checkHeadings(t, text, pieces)
		}
	}
}

// TestSplitWords is the property of the brief: over random text, the pieces
// minus their overlaps hold all the words of the text, in order.
func TestSplitWords(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	vocab := strings.Fields("the of retrieval chunk Troupe café naïve Привет 👍 👍🏽 e.g. end. why? yes! (see this) 3.14 -- ... 文本。 한국어 ##")
	for n := range 2000 {
		var b strings.Builder
		for range r.IntN(300) {
			b.WriteString(vocab[r.IntN(len(vocab))])
			b.WriteString([]string{" ", " ", " ", "\n", "\n\n", " \n\n  "}[r.IntN(6)])
		}
		text := b.String()
		size := 5 + r.IntN(50)
		opts := Options{Strategy: Strategies[n%3], Size: size, Overlap: r.IntN(size)}
		pieces, err := Split([]knowledge.Section{{Text: text}}, opts)
		require.NoError(t, err)
		var got []string
		prevEnd := 0
		for _, p := range pieces {
			start, end := span(t, text, p.Text)
			got = append(got, words(text[max(start, prevEnd):end])...)
			prevEnd = end
		}
		require.Equal(t, words(text), got, "%+v", opts)
	}
}

// words returns the words of s: runs of non-space characters, each CJK
// character a word of its own.
func words(s string) []string {
	var out []string
	for _, f := range strings.Fields(s) {
		start := 0
		for i, r := range f {
			if isCJK(r) {
				if i > start {
					out = append(out, f[start:i])
				}
				out = append(out, string(r))
				start = i + utf8.RuneLen(r)
			}
		}
		if start < len(f) {
			out = append(out, f[start:])
		}
	}
	return out
}

// checkHeadings checks that no Markdown piece ends with a whole ATX heading
// line when the next piece continues with its body (rather than starting
// with a heading).
func checkHeadings(t *testing.T, text string, pieces []Piece) {
	t.Helper()
	for i := 0; i+1 < len(pieces); i++ {
		_, end := span(t, text, pieces[i].Text)
		lines := strings.Split(pieces[i].Text, "\n")
		last := lines[len(lines)-1]
		if !atxHeading(last) || (end < len(text) && text[end] != '\n' && text[end] != '\r') {
			continue // not a heading, or cut inside the heading line
		}
		if strings.Count(pieces[i].Text, "```")%2 == 1 {
			continue // in a code block
		}
		if after := strings.Split(strings.TrimLeft(text[end:], " \t\r\n"), "\n"); len(after) > 1 && setextUnderline(after[1]) {
			continue // a setext heading follows: one heading larger than Size
		}
		next := pieces[i+1].Text
		lines = strings.SplitN(next, "\n", 3)
		require.True(t, atxHeading(lines[0]) || len(lines) > 1 && setextUnderline(lines[1]),
			"piece %d ends with heading %q, piece %d continues: %q", i, last, i+1, next)
	}
}

func TestSplitMarkdownFences(t *testing.T) {
	fence := "```python\ndef f(x):\n\n    # a comment, not a heading\n    return x * 2. \n```"
	text := "# Code\n\nSome text before the code block.\n\n" + fence + "\n\nAnd some text after it, to make it longer than one piece.\n\n## More\n\n" + fence
	for _, size := range []int{Tokens(fence), Tokens(fence) + 2, 40, 200} {
		opts := Options{Strategy: Markdown, Size: size, Overlap: 5}
		pieces, err := Split([]knowledge.Section{{Text: text}}, opts)
		require.NoError(t, err)
		checkPieces(t, text, opts, pieces)
		whole := 0
		for _, p := range pieces {
			require.Equal(t, strings.Count(p.Text, "```")%2, 0, "a fence cut at size %d: %q", size, p.Text)
			whole += strings.Count(p.Text, fence)
		}
		require.GreaterOrEqual(t, whole, 2, "size %d", size)
	}
	// Larger than Size: cut at line breaks, never inside a line.
	opts := Options{Strategy: Markdown, Size: 10}
	pieces, err := Split([]knowledge.Section{{Text: fence}}, opts)
	require.NoError(t, err)
	require.Equal(t, []string{"```python\ndef f(x):", "# a comment, not a heading", "return x * 2. \n```"}, texts(pieces))
}

func TestSplitUnicode(t *testing.T) {
	text := "東京は晴れです。大阪は雨です！明日は？ Emoji 👨\u200d👩\u200d👧 family ❤️ and が\u3099ぎ. 한국어 텍스트 입니다."
	for _, strategy := range Strategies {
		for size := 1; size < 20; size++ {
			opts := Options{Strategy: strategy, Size: size, Overlap: size / 3}
			pieces, err := Split([]knowledge.Section{{Text: text}}, opts)
			require.NoError(t, err)
			require.Equal(t, text, checkPieces(t, text, opts, pieces))
			for _, p := range pieces {
				require.True(t, utf8.ValidString(p.Text))
				if size < Tokens("👨\u200d👩\u200d👧") {
					continue // too small to hold the family emoji
				}
				// Emoji sequences and combining marks stay whole.
				require.False(t, strings.HasPrefix(p.Text, "\u200d") || strings.HasSuffix(p.Text, "\u200d"), "%q", p.Text)
				require.False(t, strings.HasPrefix(p.Text, "\u3099"), "%q", p.Text)
				require.False(t, strings.HasPrefix(p.Text, "\ufe0f"), "%q", p.Text)
			}
		}
	}
	// CJK sentences end without spaces.
	pieces, err := Split([]knowledge.Section{{Text: "東京は晴れです。大阪は雨です！明日は？"}}, Options{Strategy: Recursive, Size: 8})
	require.NoError(t, err)
	require.Equal(t, []string{"東京は晴れです。", "大阪は雨です！", "明日は？"}, texts(pieces))
}

func TestSplitLargeWord(t *testing.T) {
	word := strings.Repeat("語a", 3000) // one atom of 6000 runes
	text := "start " + word + " end"
	for _, strategy := range Strategies {
		opts := Options{Strategy: strategy, Size: 100, Overlap: 10}
		pieces, err := Split([]knowledge.Section{{Text: text}}, opts)
		require.NoError(t, err)
		require.Equal(t, text, checkPieces(t, text, opts, pieces))
	}
	word = strings.Repeat("é", 5000)
	text = "start " + word + " end"
	for _, strategy := range Strategies {
		opts := Options{Strategy: strategy, Size: 100, Overlap: 10}
		pieces, err := Split([]knowledge.Section{{Text: text}}, opts)
		require.NoError(t, err)
		require.Equal(t, text, checkPieces(t, text, opts, pieces))
		require.Equal(t, 100, pieces[1].Tokens)
	}
}
