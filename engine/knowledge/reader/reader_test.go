package reader

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
)

func sample(t testing.TB, name string) []byte {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	require.NoError(t, err)
	return data
}

func utf16le(s string, bom bool) []byte {
	var b bytes.Buffer
	if bom {
		b.WriteString("\xff\xfe")
	}
	for _, u := range utf16.Encode([]rune(s)) {
		_ = binary.Write(&b, binary.LittleEndian, u)
	}
	return b.Bytes()
}

func utf16be(s string) []byte {
	b := []byte("\xfe\xff")
	for _, u := range utf16.Encode([]rune(s)) {
		b = binary.BigEndian.AppendUint16(b, u)
	}
	return b
}

func TestDetect(t *testing.T) {
	tests := []struct {
		name     string
		file     string
		data     []byte
		want     string
		errMatch string // substring of the error; want is ignored
	}{
		// The samples.
		{name: "markdown sample", file: "guide.md", data: sample(t, "guide.md"), want: Markdown},
		{name: "html sample in ISO-8859-1", file: "page.html", data: sample(t, "page.html"), want: HTML},
		{name: "csv sample", file: "products.csv", data: sample(t, "products.csv"), want: CSV},
		{name: "json sample", file: "catalog.json", data: sample(t, "catalog.json"), want: JSON},
		{name: "text sample", file: "notes.txt", data: sample(t, "notes.txt"), want: Text},
		{name: "pdf sample", file: "manual.pdf", data: sample(t, "manual.pdf"), want: PDF},
		{name: "png sample", file: "logo.png", data: sample(t, "logo.png"), errMatch: "PNG image"},

		// Content decides over the extension.
		{name: "pdf without extension", file: "scan", data: sample(t, "manual.pdf"), want: PDF},
		{name: "pdf named .txt", file: "manual.txt", data: sample(t, "manual.pdf"), want: PDF},
		{name: "png named .txt", file: "logo.txt", data: sample(t, "logo.png"), errMatch: "PNG image"},
		{name: "html named .txt", file: "page.txt", data: []byte("\n  <!DOCTYPE html><html><body><p>Hi</p></body></html>"), want: HTML},
		{name: "html tag without doctype", file: "page", data: []byte("<html lang=en><p>Hi</p></html>"), want: HTML},
		{name: "html after xml declaration and comment", file: "page", data: []byte("<?xml version=\"1.0\"?>\n<!-- saved -->\n<!DOCTYPE HTML><p>x</p>"), want: HTML},
		{name: "tag that is not html stays text", file: "notes.txt", data: []byte("<htmlish> is not a tag we know\n"), want: Text},
		{name: "latin-1 html named .txt", file: "page.txt", data: []byte("<!doctype html><p>caf\xe9</p>"), want: HTML},
		{name: "json without extension", file: "data", data: []byte(`{"a": [1, 2]}`), want: JSON},
		{name: "json array named .txt", file: "list.txt", data: []byte(" [ {\"a\": 1} ]\n"), want: JSON},
		{name: "json lines", file: "events.jsonl", data: []byte("{\"a\":1}\n{\"a\":2}\n"), want: JSON},
		{name: "bracketed text is not json", file: "notes.txt", data: []byte("[1] See the appendix.\n"), want: Text},
		{name: "markdown without extension", file: "README", data: []byte("# Title\n\nSome text.\n"), want: Markdown},
		{name: "markdown named .txt", file: "notes.txt", data: []byte("Intro\n\n## One\n\ntext\n\n## Two\n"), want: Markdown},
		{name: "hashtag is not a heading", file: "notes.txt", data: []byte("#hashtag and more\n"), want: Text},
		{name: "markdown extension is trusted", file: "x.markdown", data: []byte("no headings at all"), want: Markdown},
		{name: "extension case-insensitive", file: "DIR/Notes.TXT", data: []byte("hello"), want: Text},
		{name: "windows path", file: `C:\docs\table.CSV`, data: []byte("a,b\n1,2\n"), want: CSV},
		{name: "tsv", file: "table.tsv", data: []byte("a\tb\n1\t2\n"), want: CSV},
		{name: "log file", file: "server.log", data: []byte("INFO started\n\x1b[31mERROR\x1b[0m failed\n"), want: Text},
		{name: "utf-8 bom", file: "notes.txt", data: []byte("\xef\xbb\xbfhello"), want: Text},
		{name: "utf-16le bom text", file: "notes.txt", data: utf16le("Grüße aus Köln\r\n", true), want: Text},
		{name: "utf-16be bom text", file: "notes", data: utf16be("plain words"), want: Text},
		{name: "utf-16 json", file: "data.json", data: utf16le(`{"k": "v"}`, true), want: JSON},
		{name: "utf-16 html", file: "page.htm", data: utf16le("<html><body><h1>Hi</h1></body></html>", true), want: HTML},

		// Empty files are text (or what their extension says) with no
		// sections.
		{name: "empty", file: "empty.txt", data: nil, want: Text},
		{name: "empty without name", file: "", data: []byte{}, want: Text},
		{name: "whitespace", file: "blank", data: []byte(" \n\t\n"), want: Text},
		{name: "empty json", file: "empty.json", data: nil, want: JSON},
		{name: "empty markdown", file: "empty.md", data: nil, want: Markdown},

		// Rejections.
		{name: "binary named .txt", file: "data.txt", data: []byte("ab\x00\x01\x02\x03cd"), errMatch: "binary"},
		{name: "nul bytes", file: "notes", data: []byte("hello\x00world"), errMatch: "binary"},
		{name: "invalid utf-8", file: "notes.txt", data: []byte("caf\xe9 au lait"), errMatch: "not UTF-8"},
		{name: "control characters", file: "notes.txt", data: []byte("\x01\x02\x03\x04\x05\x06abc"), errMatch: "binary"},
		{name: "utf-32", file: "notes.txt", data: []byte("\xff\xfe\x00\x00h\x00\x00\x00"), errMatch: "binary"},
		{name: "zip", file: "doc.docx", data: []byte("PK\x03\x04\x14\x00\x06\x00"), errMatch: "ZIP"},
		{name: "zip named .md", file: "doc.md", data: []byte("PK\x03\x04\x14\x00\x06\x00"), errMatch: "ZIP"},
		{name: "jpeg", file: "photo.jpg", data: []byte("\xff\xd8\xff\xe0\x00\x10JFIF"), errMatch: "JPEG"},
		{name: "gif", file: "anim.gif", data: []byte("GIF89a\x01\x00"), errMatch: "GIF"},
		{name: "gzip", file: "notes.txt.gz", data: []byte("\x1f\x8b\x08\x00"), errMatch: "gzip"},
		{name: "elf", file: "troupe", data: []byte("\x7fELF\x02\x01\x01"), errMatch: "executable"},
		{name: "old office", file: "old.doc", data: []byte("\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1\x00"), errMatch: "office"},
		{name: "unknown extension", file: "main.go", data: []byte("package main\n"), errMatch: `unknown extension ".go"`},
		{name: "pdf extension without pdf content", file: "fake.pdf", data: []byte("hello"), errMatch: "not a PDF"},
		{name: "invalid json", file: "broken.json", data: []byte(`{"a": 1,}`), errMatch: "not valid JSON"},
		{name: "json with trailing text", file: "broken.json", data: []byte(`{"a": 1} and more`), errMatch: "not valid JSON"},
		{name: "invalid utf-8 markdown", file: "x.md", data: []byte("# caf\xe9"), errMatch: "not UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Detect(tt.file, tt.data)
			if tt.errMatch != "" {
				require.ErrorIs(t, err, ErrUnsupported)
				require.ErrorContains(t, err, tt.errMatch)
				require.ErrorContains(t, err, "supported: text, markdown, html, pdf, csv, json")
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestDetectChecksOnlyTheStartForBinaryContent(t *testing.T) {
	// Invalid UTF-8 after the sniffed prefix is replaced when reading.
	data := append([]byte(strings.Repeat("a", sniffLen+10)), 0xff, 'z')
	typ, err := Detect("long.txt", data)
	require.NoError(t, err)
	require.Equal(t, Text, typ)
	sections, err := Read(typ, "long.txt", data)
	require.NoError(t, err)
	require.Len(t, sections, 1)
	require.True(t, strings.HasSuffix(sections[0].Text, "a\uFFFDz"))

	// A multi-byte character cut by the sniff limit is not invalid.
	data = append([]byte(strings.Repeat("a", sniffLen-1)), []byte("é and more")...)
	typ, err = Detect("cut.txt", data)
	require.NoError(t, err)
	require.Equal(t, Text, typ)
}

func TestLimits(t *testing.T) {
	big := make([]byte, MaxSize+1)
	_, err := Detect("big.txt", big)
	require.ErrorIs(t, err, ErrTooLarge)
	for _, typ := range Supported {
		_, err = Read(typ, "big", big)
		require.ErrorIs(t, err, ErrTooLarge, typ)
	}
	_, err = Read("docx", "x.docx", []byte("x"))
	require.ErrorIs(t, err, ErrUnsupported)
}

func TestReaders(t *testing.T) {
	infos := Readers()
	require.Len(t, infos, len(Supported))
	for i, info := range infos {
		require.Equal(t, Supported[i], info.Type)
		require.NotEmpty(t, info.Description)
		require.NotEmpty(t, info.Extensions)
		for _, e := range info.Extensions {
			require.True(t, strings.HasPrefix(e, "."), e)
			if info.Type != PDF {
				require.Equal(t, info.Type, extTypes[e], e)
			}
		}
	}
}

// readSample detects and reads a sample.
func readSample(t *testing.T, name string) []knowledge.Section {
	t.Helper()
	data := sample(t, name)
	typ, err := Detect(name, data)
	require.NoError(t, err)
	sections, err := Read(typ, name, data)
	require.NoError(t, err)
	return sections
}

func TestReadSamples(t *testing.T) {
	tests := []struct {
		file string
		want []knowledge.Section
	}{
		{"notes.txt", []knowledge.Section{{Text: "Meeting notes, 3 March\n\nAttendees: Ana, Ben, Chloé.\n\nDecisions:\n- Ship the knowledge base feature in April.\n- Keep PDF uploads under 20 MB.\n\nNext meeting: Thursday at 10:00."}}},
		{"guide.md", []knowledge.Section{
			{Text: "Troupe runs teams of AI agents that share knowledge bases."},
			{Heading: "Getting started", Text: "# Getting started\n\nInstall Troupe, then start the server."},
			// "## Install" has no text of its own: its subsections carry it.
			{Heading: "Getting started > Install > Linux", Text: "### Linux\n\nDownload the binary and run the installer:\n\n```bash\n# this comment is not a heading\ncurl -fsSL https://get.troupe.dev | sh\n```"},
			{Heading: "Getting started > Install > macOS", Text: "### macOS\n\nUse Homebrew: `brew install troupe`."},
			{Heading: "Getting started > Configure", Text: "## Configure\n\nSettings live in `troupe.yaml`; see [the reference](https://troupe.dev/docs)."},
			{Heading: "Getting started > Troubleshooting", Text: "Troubleshooting\n---------------\n\nCheck the logs with `troupe logs`."},
		}},
		{"page.html", []knowledge.Section{
			// No h1: the title is the top heading.
			{Heading: "Café Troupe & Friends", Text: "Café Troupe & Friends\n\nWelcome to Café Troupe, a small café near the station."},
			{Heading: "Café Troupe & Friends > Menu", Text: "Menu\n\nAll drinks are made to order.\n\nPrices\nItem | Price\nEspresso | 2.50\nCrème brûlée | 4.00"},
			{Heading: "Café Troupe & Friends > Menu > Seasonal", Text: "Seasonal\n\n- Pumpkin latte\n- Hot cider"},
			{Heading: "Café Troupe & Friends > Opening hours", Text: "Opening hours\n\nMonday to Friday, 7:00–18:00.\nClosed on public holidays."},
		}},
		{"products.csv", []knowledge.Section{{Heading: "rows 2-5", Text: "sku: A-100; name: Widget, large; price: 19.99; description: Sturdy widget. Ships in two boxes.\n" +
			"sku: A-101; name: Gadget; price: 5.00; description: Small gadget\n" +
			"sku: A-102; name: Gizmo \"Pro\"; price: 42.50\n" +
			"sku: A-103; name: Doohickey; price: 1.25; description: Spare part; column 5: discontinued"}}},
		{"catalog.json", []knowledge.Section{{Text: "store: Troupe Shop\ncurrency: EUR\naddress.city: Lyon\naddress.geo.lat: 45.76\naddress.geo.lon: 4.84\n" +
			"products[0].sku: A-100\nproducts[0].name: Widget\nproducts[0].tags[0]: tools\nproducts[0].tags[1]: large\nproducts[0].price: 19.99\n" +
			"products[1].sku: A-101\nproducts[1].name: Gadget\nproducts[1].in_stock: false\nproducts[1].price: 5"}}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			require.Equal(t, tt.want, readSample(t, tt.file))
		})
	}
}

func TestReadHTMLDropsNonContent(t *testing.T) {
	data := sample(t, "page.html")
	require.NotContains(t, string(data), "Café", "the sample must be ISO-8859-1, not UTF-8")
	require.Contains(t, string(data), "Caf\xe9")
	all := ""
	for _, s := range readSample(t, "page.html") {
		all += s.Heading + "\n" + s.Text + "\n"
	}
	for _, absent := range []string{"script-must-not-appear", "late-script", "trackingSecret", "font-family", "hidden-style-rule", "Navigation link", "enable JavaScript"} {
		require.NotContains(t, all, absent)
	}
	require.Contains(t, all, "Crème brûlée")
}

func TestReadText(t *testing.T) {
	tests := []struct {
		name string
		data []byte
		want []knowledge.Section
	}{
		{"crlf and trailing spaces", []byte("\r\n\r\nline one  \r\nline two\t\r\n\r\n\r\n"), []knowledge.Section{{Text: "line one\nline two"}}},
		{"old mac newlines", []byte("a\rb"), []knowledge.Section{{Text: "a\nb"}}},
		{"leading indentation kept", []byte("  indented\n"), []knowledge.Section{{Text: "  indented"}}},
		{"utf-16 decoded", utf16le("Grüße\r\naus Köln", true), []knowledge.Section{{Text: "Grüße\naus Köln"}}},
		{"utf-8 bom dropped", []byte("\xef\xbb\xbfhello"), []knowledge.Section{{Text: "hello"}}},
		{"nul bytes dropped", []byte("a\x00b"), []knowledge.Section{{Text: "ab"}}},
		{"empty", nil, nil},
		{"blank", []byte(" \n \r\n"), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(Text, "notes.txt", tt.data)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestReadMarkdown(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []knowledge.Section
	}{
		{
			name: "atx levels and closing hashes",
			in:   "# A #\ntext a\n## B ##\ntext b\n### C\ntext c\n## D\ntext d\n# E\ntext e",
			want: []knowledge.Section{
				{Heading: "A", Text: "# A #\ntext a"},
				{Heading: "A > B", Text: "## B ##\ntext b"},
				{Heading: "A > B > C", Text: "### C\ntext c"},
				{Heading: "A > D", Text: "## D\ntext d"},
				{Heading: "E", Text: "# E\ntext e"},
			},
		},
		{
			name: "skipped levels",
			in:   "# A\nintro\n### Deep\ntext\n## B\nmore",
			want: []knowledge.Section{
				{Heading: "A", Text: "# A\nintro"},
				{Heading: "A > Deep", Text: "### Deep\ntext"},
				{Heading: "A > B", Text: "## B\nmore"},
			},
		},
		{
			name: "setext headings, multi-line",
			in:   "Title\n=====\n\nintro\n\nSub part\nstill the title\n---\nbody",
			want: []knowledge.Section{
				{Heading: "Title", Text: "Title\n=====\n\nintro"},
				{Heading: "Title > Sub part still the title", Text: "Sub part\nstill the title\n---\nbody"},
			},
		},
		{
			name: "thematic break and list are not setext",
			in:   "# A\n\n---\n\n- item\n---\ntext",
			want: []knowledge.Section{{Heading: "A", Text: "# A\n\n---\n\n- item\n---\ntext"}},
		},
		{
			name: "fences hide headings, tilde and longer fences",
			in:   "# A\n~~~~\n# not\n~~~\n## still not\n~~~~\n```go\n#no\n```\n## B\nx",
			want: []knowledge.Section{
				{Heading: "A", Text: "# A\n~~~~\n# not\n~~~\n## still not\n~~~~\n```go\n#no\n```"},
				{Heading: "A > B", Text: "## B\nx"},
			},
		},
		{
			name: "unclosed fence runs to the end",
			in:   "# A\n```\n# no\n",
			want: []knowledge.Section{{Heading: "A", Text: "# A\n```\n# no"}},
		},
		{
			name: "indented code and hashtags are not headings",
			in:   "    # code\n#tag\n####### seven",
			want: []knowledge.Section{{Text: "    # code\n#tag\n####### seven"}},
		},
		{
			name: "front matter dropped",
			in:   "---\ntitle: x\n# not a heading\n---\n# Real\nbody",
			want: []knowledge.Section{{Heading: "Real", Text: "# Real\nbody"}},
		},
		{
			name: "toml front matter dropped",
			in:   "+++\ntitle = 'x'\n+++\nbody",
			want: []knowledge.Section{{Text: "body"}},
		},
		{
			name: "unclosed front matter kept",
			in:   "---\nnot front matter",
			want: []knowledge.Section{{Text: "---\nnot front matter"}},
		},
		{
			name: "heading inline markup cleaned",
			in:   "## Use **`troupe`** with [Docker](https://docker.com)\nbody",
			want: []knowledge.Section{{Heading: "Use troupe with Docker", Text: "## Use **`troupe`** with [Docker](https://docker.com)\nbody"}},
		},
		{
			name: "lone heading kept",
			in:   "# Only a title",
			want: []knowledge.Section{{Heading: "Only a title", Text: "# Only a title"}},
		},
		{
			name: "empty heading section before a sibling kept",
			in:   "# A\n# B\ntext",
			want: []knowledge.Section{{Heading: "A", Text: "# A"}, {Heading: "B", Text: "# B\ntext"}},
		},
		{
			name: "crlf",
			in:   "# A\r\ntext  \r\n",
			want: []knowledge.Section{{Heading: "A", Text: "# A\ntext"}},
		},
		{name: "empty", in: "", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(Markdown, "x.md", []byte(tt.in))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestReadHTML(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want []knowledge.Section
	}{
		{
			name: "h1 wins over title",
			in:   []byte("<html><head><title>Site</title></head><body><h1>Guide</h1><p>Intro</p><h2>Install</h2><p>Steps</p><h3>Linux</h3><p>apt</p><h2>Use</h2><p>Run</p></body></html>"),
			want: []knowledge.Section{
				{Heading: "Guide", Text: "Guide\n\nIntro"},
				{Heading: "Guide > Install", Text: "Install\n\nSteps"},
				{Heading: "Guide > Install > Linux", Text: "Linux\n\napt"},
				{Heading: "Guide > Use", Text: "Use\n\nRun"},
			},
		},
		{
			name: "text before the first heading without title",
			in:   []byte("<p>Before</p><h2>After <em>this</em></h2><p>x</p>"),
			want: []knowledge.Section{{Text: "Before"}, {Heading: "After this", Text: "After this\n\nx"}},
		},
		{
			name: "lists, nested and ordered",
			in:   []byte("<ul><li>one<ul><li>one.a</li></ul></li><li>two</li></ul><ol><li>first</li><li>second</li></ol>"),
			want: []knowledge.Section{{Text: "- one\n  - one.a\n- two\n\n1. first\n2. second"}},
		},
		{
			name: "tables: cells on one line, empty cells",
			in:   []byte("<table><thead><tr><th>A</th><th>B</th><th>C</th></tr></thead><tr><td><p>x</p><p>y</p></td><td></td><td>z</td></tr></table>"),
			want: []knowledge.Section{{Text: "A | B | C\nx y | | z"}},
		},
		{
			name: "pre keeps white space",
			in:   []byte("<p>code:</p><pre>  a := 1\n  b := 2</pre><p>after</p>"),
			want: []knowledge.Section{{Text: "code:\n\n  a := 1\n  b := 2\n\nafter"}},
		},
		{
			name: "inline elements and entities",
			in:   []byte("<p>Use <b>bold</b>, <a href='x'>links</a>&nbsp;and&amp;<code>code</code>.</p>"),
			want: []knowledge.Section{{Text: "Use bold, links and&code."}},
		},
		{
			name: "dropped elements",
			in:   []byte("<head><style>x{}</style></head><nav>menu</nav><template><p>tpl</p></template><svg><text>svg</text></svg><p>kept</p><noscript>ns</noscript><button>Click</button><select><option>opt</option></select>"),
			want: []knowledge.Section{{Text: "kept"}},
		},
		{
			name: "utf-8 meta with utf-8 content",
			in:   []byte("<meta charset=utf-8><p>Grüße</p>"),
			want: []knowledge.Section{{Text: "Grüße"}},
		},
		{
			name: "latin-1 declared but utf-8 content",
			in:   []byte("<meta charset=iso-8859-1><p>Grüße</p>"),
			want: []knowledge.Section{{Text: "Grüße"}},
		},
		{
			name: "windows-1252 without declaration",
			in:   []byte("<p>\x93quoted\x94 caf\xe9</p>"),
			want: []knowledge.Section{{Text: "“quoted” café"}},
		},
		{
			name: "utf-16 with bom",
			in:   utf16le("<html><body><h1>Grüße</h1><p>text</p></body></html>", true),
			want: []knowledge.Section{{Heading: "Grüße", Text: "Grüße\n\ntext"}},
		},
		{
			name: "heading-only parent dropped",
			in:   []byte("<h1>A</h1><h2>B</h2><p>b</p>"),
			want: []knowledge.Section{{Heading: "A > B", Text: "B\n\nb"}},
		},
		{name: "empty", in: nil, want: nil},
		{name: "only scripts", in: []byte("<script>x()</script>"), want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(HTML, "x.html", tt.in)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestReadHTMLDeepNesting(t *testing.T) {
	in := strings.Repeat("<div>", 100000) + "deep" + strings.Repeat("</div>", 100000)
	got, err := Read(HTML, "deep.html", []byte(in))
	require.NoError(t, err)
	require.Equal(t, []knowledge.Section{{Text: "deep"}}, got)
}

func TestReadCSV(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []knowledge.Section
	}{
		{"semicolons", "a;b\n1,5;2\n", []knowledge.Section{{Heading: "row 2", Text: "a: 1,5; b: 2"}}},
		{"tabs", "a\tb\tc\n1\t2\t3\n4\t5\t6\n", []knowledge.Section{{Heading: "rows 2-3", Text: "a: 1; b: 2; c: 3\na: 4; b: 5; c: 6"}}},
		{"pipes", "a|b\n1|2\n", []knowledge.Section{{Heading: "row 2", Text: "a: 1; b: 2"}}},
		{"commas inside quotes do not count", "\"x,y\";b\n\"1,2\";3\n", []knowledge.Section{{Heading: "row 2", Text: "x,y: 1,2; b: 3"}}},
		{"single column", "name\nAna\nBen\n", []knowledge.Section{{Heading: "rows 2-3", Text: "name: Ana\nname: Ben"}}},
		{"ragged and empty header cells", "a,,c\n1,2,3,4\n5\n", []knowledge.Section{{Heading: "rows 2-3", Text: "a: 1; column 2: 2; c: 3; column 4: 4\na: 5"}}},
		{"blank rows skipped, numbering kept", "a,b\n,\n1,2\n", []knowledge.Section{{Heading: "row 3", Text: "a: 1; b: 2"}}},
		{"bom and crlf", "\xef\xbb\xbfa,b\r\n1,2\r\n", []knowledge.Section{{Heading: "row 2", Text: "a: 1; b: 2"}}},
		{"lazy quotes", "a,b\nsay \"hi\",2\n", []knowledge.Section{{Heading: "row 2", Text: "a: say \"hi\"; b: 2"}}},
		{"header only", "a,b,c\n", []knowledge.Section{{Heading: "row 1", Text: "a; b; c"}}},
		{"empty", "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(CSV, "x.csv", []byte(tt.in))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestReadCSVGroupsRows(t *testing.T) {
	var b strings.Builder
	b.WriteString("id,name\n")
	for i := 1; i <= 120; i++ {
		fmt.Fprintf(&b, "%d,item %d\n", i, i)
	}
	got, err := Read(CSV, "x.csv", []byte(b.String()))
	require.NoError(t, err)
	require.Len(t, got, 3)
	require.Equal(t, "rows 2-51", got[0].Heading)
	require.Equal(t, "rows 52-101", got[1].Heading)
	require.Equal(t, "rows 102-121", got[2].Heading)
	require.Len(t, strings.Split(got[0].Text, "\n"), 50)
	require.True(t, strings.HasPrefix(got[0].Text, "id: 1; name: item 1\nid: 2; name: item 2\n"))
	require.True(t, strings.HasSuffix(got[2].Text, "\nid: 120; name: item 120"))
}

func TestReadJSON(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []knowledge.Section
	}{
		{
			name: "array of objects: one section per element",
			in:   `[{"name": "Ana", "address": {"city": "Lyon"}, "tags": ["a", "b"]}, {"name": "Ben", "age": 41, "x": null, "ok": true}]`,
			want: []knowledge.Section{
				{Heading: "[0]", Text: "name: Ana\naddress.city: Lyon\ntags[0]: a\ntags[1]: b"},
				{Heading: "[1]", Text: "name: Ben\nage: 41\nx: null\nok: true"},
			},
		},
		{
			name: "mixed array: one section",
			in:   `[{"a": 1}, 2, [3, 4]]`,
			want: []knowledge.Section{{Text: "[0].a: 1\n[1]: 2\n[2][0]: 3\n[2][1]: 4"}},
		},
		{
			name: "json lines",
			in:   "{\"event\": \"start\"}\n{\"event\": \"stop\"}\n",
			want: []knowledge.Section{{Heading: "[0]", Text: "event: start"}, {Heading: "[1]", Text: "event: stop"}},
		},
		{
			name: "key order and number formatting kept",
			in:   `{"z": 1.50, "a": 12345678901234567890, "m": -0.0, "e": 1e3}`,
			want: []knowledge.Section{{Text: "z: 1.50\na: 12345678901234567890\nm: -0.0\ne: 1e3"}},
		},
		{
			name: "empty containers and strings",
			in:   `{"a": {}, "b": [], "c": "", "d": {"e": []}}`,
			want: []knowledge.Section{{Text: "a: {}\nb: []\nc:\nd.e: []"}},
		},
		{
			name: "scalar",
			in:   `"just a string"`,
			want: []knowledge.Section{{Text: "just a string"}},
		},
		{
			name: "escapes and multi-line strings",
			in:   `{"text": "line 1\r\nline 2\u0000", "emoji": "\ud83d\ude00"}`,
			want: []knowledge.Section{{Text: "text: line 1\nline 2\nemoji: 😀"}},
		},
		{name: "empty array", in: `[]`, want: nil},
		{name: "empty", in: ``, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Read(JSON, "x.json", []byte(tt.in))
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestReadJSONErrors(t *testing.T) {
	for _, in := range []string{`{"a":`, `[1,]`, strings.Repeat("[", 20000) + strings.Repeat("]", 20000), `{"a":1} x`} {
		_, err := Read(JSON, "x.json", []byte(in))
		require.ErrorContains(t, err, "invalid JSON", in[:min(len(in), 20)])
	}
}

func TestReadHTMLTokenFallback(t *testing.T) {
	// More than 512 nested elements: the HTML parser gives up and the token
	// stream is read instead, with the same conventions.
	deep := strings.Repeat("<div>", 600)
	in := "<html><head><title>Deep &amp; nested</title><style>p{}</style></head><body>" + deep +
		"<p>Intro</p><h2>Table</h2><table><tr><th>A</th><th>B</th></tr><tr><td>1<td>2</table>" +
		"<script>hidden()</script><h3>List</h3><ul><li>one<li>two</ul><p>a<br/>b</p>" +
		strings.Repeat("</div>", 600) + "</body></html>"
	got, err := Read(HTML, "deep.html", []byte(in))
	require.NoError(t, err)
	require.Equal(t, []knowledge.Section{
		{Heading: "Deep & nested", Text: "Deep & nested\n\nIntro"},
		{Heading: "Deep & nested > Table", Text: "Table\n\nA | B\n1 | 2"},
		{Heading: "Deep & nested > Table > List", Text: "List\n\n- one\n- two\n\na\nb"},
	}, got)
}
