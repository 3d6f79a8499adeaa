// Package reader turns an uploaded file's bytes into text sections for
// chunking: plain text, Markdown, HTML, PDF, CSV and JSON.
//
// Detect decides a file's type from its content and its name's extension —
// never from a client-supplied content type — and Read parses the bytes of a
// detected type into knowledge.Sections that carry where the text came from:
// the page of a PDF, the heading path of Markdown and HTML, the row range of
// a CSV, the element of a JSON array.
//
// Both functions treat their input as hostile: they reject inputs over
// MaxSize, never panic, and bound the work a malformed file can cause.
//
// Empty input: an empty (or whitespace-only) file of a text type is detected
// by its extension (text when it has none) and reads to no sections and no
// error; callers decide whether an empty document is worth storing. A PDF
// without any extractable text is an error (ErrNoText), because that almost
// always means a scanned document, which needs OCR.
package reader

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"strings"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/troupehq/troupe/engine/knowledge"
)

// Types.
const (
	Text     = "text"
	Markdown = "markdown"
	HTML     = "html"
	PDF      = "pdf"
	CSV      = "csv"
	JSON     = "json"
)

// Supported lists the types Read understands, for error messages and the
// knowledge configuration endpoint.
var Supported = []string{Text, Markdown, HTML, PDF, CSV, JSON}

// MaxSize is the largest input Detect and Read accept. The API limits uploads
// before this; the check here is defence in depth.
const MaxSize = 64 << 20

// sniffLen is how much of a file Detect inspects for binary content.
const sniffLen = 8 << 10

var (
	// ErrUnsupported is returned (wrapped, with the reason and the supported
	// types) for binary files and types Read does not understand.
	ErrUnsupported = errors.New("unsupported file type")
	// ErrTooLarge is returned for inputs over MaxSize.
	ErrTooLarge = errors.New("file too large")
	// ErrNoText is returned (wrapped) for a PDF without extractable text.
	ErrNoText = errors.New("no extractable text")
)

// Info describes a supported type.
type Info struct {
	Type        string   `json:"type"`
	Description string   `json:"description"`
	Extensions  []string `json:"extensions"`
}

// Readers describes the supported types, for GET /knowledge/config.
func Readers() []Info {
	return []Info{
		{Text, "Plain UTF-8 (or UTF-16 with a byte-order mark) text, as one section.", []string{".txt", ".text", ".log"}},
		{Markdown, "Markdown, one section per heading with the heading path; front matter is dropped.", []string{".md", ".markdown"}},
		{HTML, "HTML pages: headings, paragraphs, lists and tables, one section per heading; scripts, styles and navigation are dropped.", []string{".html", ".htm"}},
		{PDF, "PDF documents with a text layer, one section per page. Scanned PDFs need OCR, which is not supported.", []string{".pdf"}},
		{CSV, "CSV/TSV with a header row (delimiter , ; tab or | detected), 50 rows per section as \"column: value\" lines.", []string{".csv", ".tsv"}},
		{JSON, "JSON (or JSON Lines), flattened to \"path.to.key: value\" lines; a top-level array of objects gives one section per element.", []string{".json", ".jsonl", ".ndjson"}},
	}
}

// extTypes maps lower-case extensions to types for text content. The empty
// extension is plain text.
var extTypes = map[string]string{
	"":          Text,
	".txt":      Text,
	".text":     Text,
	".log":      Text,
	".md":       Markdown,
	".markdown": Markdown,
	".html":     HTML,
	".htm":      HTML,
	".csv":      CSV,
	".tsv":      CSV,
	".json":     JSON,
	".jsonl":    JSON,
	".ndjson":   JSON,
}

// magic numbers of common binary formats, rejected outright.
var binaryMagic = []struct {
	prefix, what string
}{
	{"PK\x03\x04", "a ZIP archive or office document"},
	{"PK\x05\x06", "a ZIP archive"},
	{"PK\x07\x08", "a ZIP archive"},
	{"\x89PNG\r\n\x1a\n", "a PNG image"},
	{"\xff\xd8\xff", "a JPEG image"},
	{"GIF87a", "a GIF image"},
	{"GIF89a", "a GIF image"},
	{"\x1f\x8b", "a gzip archive"},
	{"\x7fELF", "an executable"},
	{"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old-style office document"},
	{"Rar!\x1a\x07", "a RAR archive"},
	{"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"},
	{"\xfd7zXZ\x00", "an xz archive"},
	{"\x28\xb5\x2f\xfd", "a zstd archive"},
}

func unsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s (supported: %s)", ErrUnsupported, fmt.Sprintf(format, args...), strings.Join(Supported, ", "))
}

func tooLarge(n int) error {
	return fmt.Errorf("%w: %d bytes, the limit is %d MiB", ErrTooLarge, n, MaxSize>>20)
}

// ext returns the lower-case extension of a file name, which may be a path
// with / or \ separators.
func ext(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	return strings.ToLower(path.Ext(name))
}

// Detect decides a file's type from its content and the extension of its
// name. It returns an error wrapping ErrUnsupported for binary files
// (images, archives, office documents, executables...), text that is not
// UTF-8 (or UTF-16 with a byte-order mark), unknown extensions and .json
// files that do not parse.
func Detect(name string, data []byte) (string, error) {
	if len(data) > MaxSize {
		return "", tooLarge(len(data))
	}
	if bytes.HasPrefix(data, []byte("%PDF-")) {
		return PDF, nil
	}
	for _, m := range binaryMagic {
		if bytes.HasPrefix(data, []byte(m.prefix)) {
			return "", unsupported("%s is %s", displayName(name), m.what)
		}
	}
	e := ext(name)
	typ, known := extTypes[e]
	if e == ".pdf" {
		return "", unsupported("%s has a .pdf extension but is not a PDF", displayName(name))
	}
	if !known {
		return "", unsupported("%s: unknown extension %q", displayName(name), e)
	}

	text, utf16Encoded := decodeBOM(data)
	head, truncated := text, false
	if len(head) > sniffLen {
		head, truncated = head[:sniffLen], true
	}
	if strings.IndexByte(head, 0) >= 0 {
		return "", unsupported("%s is binary", displayName(name))
	}
	sniffable := e == "" || e == ".txt"
	// HTML declares its own character set, so it need not be UTF-8.
	isHTML := typ == HTML || (sniffable && looksLikeHTML(head))
	if !isHTML && !validUTF8Prefix(head, truncated) {
		return "", unsupported("%s is binary or not UTF-8 text (convert it to UTF-8)", displayName(name))
	}
	if controlHeavy(head, utf16Encoded) {
		return "", unsupported("%s is binary", displayName(name))
	}
	switch {
	case isHTML:
		return HTML, nil
	case typ == JSON:
		if strings.TrimSpace(text) == "" {
			return JSON, nil
		}
		if _, err := parseJSON(text); err != nil {
			return "", unsupported("%s is not valid JSON: %v", displayName(name), err)
		}
		return JSON, nil
	case !sniffable:
		return typ, nil
	}
	if trimmed := strings.TrimSpace(text); strings.HasPrefix(trimmed, "{") || strings.HasPrefix(trimmed, "[") {
		if _, err := parseJSON(text); err == nil {
			return JSON, nil
		}
	}
	if looksLikeMarkdown(text) {
		return Markdown, nil
	}
	return Text, nil
}

func displayName(name string) string {
	if name == "" {
		return "the file"
	}
	return fmt.Sprintf("%q", name)
}

// Read parses data of the detected type typ into sections. The name is used
// for messages only.
func Read(typ, name string, data []byte) ([]knowledge.Section, error) {
	if len(data) > MaxSize {
		return nil, tooLarge(len(data))
	}
	var (
		sections []knowledge.Section
		err      error
	)
	switch typ {
	case PDF:
		sections, err = readPDF(data)
	case HTML:
		sections = readHTML(data)
	case Text, Markdown, CSV, JSON:
		text, _ := decodeBOM(data)
		text = normalize(text)
		switch typ {
		case Text:
			sections = readText(text)
		case Markdown:
			sections = readMarkdown(text)
		case CSV:
			sections, err = readCSV(text)
		case JSON:
			sections, err = readJSON(text)
		}
	default:
		return nil, unsupported("type %q", typ)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", displayName(name), err)
	}
	return sections, nil
}

// decodeBOM returns data as a string, without a UTF-8 byte-order mark, and
// decoded from UTF-16 when it starts with a UTF-16 byte-order mark.
func decodeBOM(data []byte) (string, bool) {
	switch {
	case bytes.HasPrefix(data, []byte("\xef\xbb\xbf")):
		return string(data[3:]), false
	case bytes.HasPrefix(data, []byte("\xff\xfe")):
		return decodeUTF16(data[2:], false), true
	case bytes.HasPrefix(data, []byte("\xfe\xff")):
		return decodeUTF16(data[2:], true), true
	}
	return string(data), false
}

func decodeUTF16(b []byte, bigEndian bool) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		if bigEndian {
			u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
		} else {
			u[i] = uint16(b[2*i+1])<<8 | uint16(b[2*i])
		}
	}
	return string(utf16.Decode(u))
}

// validUTF8Prefix reports whether s is valid UTF-8, allowing s to end in the
// middle of a character when it was cut from a longer text.
func validUTF8Prefix(s string, truncated bool) bool {
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			return truncated && !utf8.FullRuneInString(s[i:])
		}
		i += n
	}
	return true
}

// controlHeavy reports whether more than a tenth of the characters of s are
// control characters that text does not contain (or, for decoded UTF-16,
// replacement characters): the mark of a binary file that happens not to
// contain NUL bytes or invalid UTF-8.
func controlHeavy(s string, decoded bool) bool {
	var n, bad int
	for _, r := range s {
		n++
		switch {
		case r == '\t' || r == '\n' || r == '\r' || r == '\f' || r == '\v' || r == 0x1b:
		case r < 0x20 || r == 0x7f:
			bad++
		case r == utf8.RuneError && decoded:
			bad++
		}
	}
	return bad > 0 && bad*10 > n
}

// normalize converts newlines to \n, drops NUL bytes (which SQL text columns
// reject) and replaces invalid UTF-8.
func normalize(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if strings.ContainsAny(s, "\r\x00") {
		s = strings.NewReplacer("\r\n", "\n", "\r", "\n", "\x00", "").Replace(s)
	}
	return s
}

// trimLines trims trailing spaces of each line and leading and trailing
// blank lines of s.
func trimLines(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " \t\f\v\u00a0")
	}
	return strings.Trim(strings.Join(lines, "\n"), "\n")
}

// clean is the last step of every reader: valid UTF-8, \n newlines, no NUL
// bytes, no trailing spaces, no surrounding blank lines.
func clean(s string) string {
	return trimLines(normalize(s))
}

// appendSection appends a section when its text is not blank.
func appendSection(sections []knowledge.Section, s knowledge.Section) []knowledge.Section {
	s.Text = clean(s.Text)
	if strings.TrimSpace(s.Text) == "" {
		return sections
	}
	return append(sections, s)
}

func readText(text string) []knowledge.Section {
	return appendSection(nil, knowledge.Section{Text: text})
}

// looksLikeHTML reports whether text starts (after white space, an XML
// declaration and comments) with an HTML doctype or <html> tag.
func looksLikeHTML(text string) bool {
	s := strings.TrimLeft(text, " \t\r\n\ufeff")
	for {
		switch {
		case strings.HasPrefix(s, "<?xml"):
			i := strings.Index(s, "?>")
			if i < 0 {
				return false
			}
			s = strings.TrimLeft(s[i+2:], " \t\r\n")
			continue
		case strings.HasPrefix(s, "<!--"):
			i := strings.Index(s, "-->")
			if i < 0 {
				return false
			}
			s = strings.TrimLeft(s[i+3:], " \t\r\n")
			continue
		}
		break
	}
	lower := strings.ToLower(s[:min(len(s), 16)])
	if strings.HasPrefix(lower, "<!doctype html") {
		return true
	}
	if strings.HasPrefix(lower, "<html") {
		return len(lower) == 5 || strings.ContainsRune(" \t\r\n>", rune(lower[5]))
	}
	return false
}

// looksLikeMarkdown reports whether text without a telling extension is
// Markdown: it starts with an ATX heading, or has two headings, or a heading
// and a code fence or link.
func looksLikeMarkdown(text string) bool {
	var headings, fences, links int
	first := true
	for line := range strings.Lines(text) {
		line = strings.TrimRight(line, "\r\n")
		if strings.TrimSpace(line) == "" {
			continue
		}
		if _, _, ok := atxHeading(line); ok {
			if first {
				return true
			}
			headings++
		} else if _, _, ok := fenceOpen(line); ok {
			fences++
		}
		if strings.Contains(line, "](") {
			links++
		}
		first = false
		if headings >= 2 || headings >= 1 && fences+links > 0 {
			return true
		}
	}
	return false
}
