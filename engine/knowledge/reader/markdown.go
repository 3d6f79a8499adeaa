package reader

import (
	"regexp"
	"strings"

	"github.com/troupehq/troupe/engine/knowledge"
)

// headingPath tracks the enclosing headings of Markdown and HTML documents.
type headingPath struct {
	levels []int
	texts  []string
}

// push enters a heading of the given level (1 for the outermost).
func (h *headingPath) push(level int, text string) {
	for len(h.levels) > 0 && h.levels[len(h.levels)-1] >= level {
		h.levels = h.levels[:len(h.levels)-1]
		h.texts = h.texts[:len(h.texts)-1]
	}
	h.levels = append(h.levels, level)
	h.texts = append(h.texts, text)
}

func (h *headingPath) String() string {
	parts := make([]string, 0, len(h.texts))
	for _, t := range h.texts {
		if t != "" {
			parts = append(parts, t)
		}
	}
	return strings.Join(parts, " > ")
}

// sectionBuilder collects sections, dropping a section that holds nothing
// but its heading when the next section is its child: the child's heading
// path already carries it.
type sectionBuilder struct {
	sections  []knowledge.Section
	emptyBody []bool
}

func (b *sectionBuilder) add(heading, text string, emptyBody bool) {
	n := len(b.sections)
	b.sections = appendSection(b.sections, knowledge.Section{Text: text, Heading: heading})
	if len(b.sections) > n {
		b.emptyBody = append(b.emptyBody, emptyBody)
	}
}

func (b *sectionBuilder) result() []knowledge.Section {
	var out []knowledge.Section
	for i, s := range b.sections {
		if b.emptyBody[i] && i+1 < len(b.sections) && s.Heading != "" &&
			strings.HasPrefix(b.sections[i+1].Heading, s.Heading+" > ") {
			continue
		}
		out = append(out, s)
	}
	return out
}

// readMarkdown returns one section per heading block (ATX "#" and setext
// headings; not inside fenced code). A section's Heading is the path of its
// enclosing headings and its text starts with the heading line; text before
// the first heading has no Heading. A heading directly followed by a
// subheading gives no section of its own: the subsection's path carries it.
func readMarkdown(text string) []knowledge.Section {
	lines := dropFrontMatter(strings.Split(text, "\n"))
	var (
		b       sectionBuilder
		path    headingPath
		heading string
		cur     []string // lines of the current section
		head    int      // how many of them are its heading
		// The current paragraph, which a setext underline turns into a
		// heading: its first line's index in cur, or -1.
		paraStart = -1
		// Whether the current run of non-blank lines is something other
		// than a paragraph (a list, a quote, a table...).
		inOther   bool
		fenceChar byte
		fenceLen  int // > 0 inside a fenced code block
	)
	flush := func() {
		body := strings.TrimSpace(strings.Join(cur[min(head, len(cur)):], "")) != ""
		b.add(heading, strings.Join(cur, "\n"), !body)
		cur, head = nil, 0
	}
	for _, line := range lines {
		if fenceLen > 0 {
			cur = append(cur, line)
			if fenceClose(line, fenceChar, fenceLen) {
				fenceLen = 0
			}
			continue
		}
		if ch, n, ok := fenceOpen(line); ok {
			fenceChar, fenceLen = ch, n
			cur = append(cur, line)
			paraStart, inOther = -1, true
			continue
		}
		if level, title, ok := atxHeading(line); ok {
			flush()
			path.push(level, title)
			heading = path.String()
			cur, head = []string{line}, 1
			paraStart, inOther = -1, false
			continue
		}
		if level, ok := setextUnderline(line); ok && paraStart >= 0 {
			para := append([]string(nil), cur[paraStart:]...)
			cur = cur[:paraStart]
			flush()
			titles := make([]string, len(para))
			for i, l := range para {
				titles[i] = strings.TrimSpace(l)
			}
			path.push(level, cleanInline(strings.Join(titles, " ")))
			heading = path.String()
			cur = append(para, line)
			head = len(cur)
			paraStart, inOther = -1, false
			continue
		}
		switch {
		case strings.TrimSpace(line) == "":
			paraStart, inOther = -1, false
		case blockStart(line):
			paraStart, inOther = -1, true
		case paraStart < 0 && !inOther:
			paraStart = len(cur)
		}
		cur = append(cur, line)
	}
	flush()
	return b.result()
}

// dropFrontMatter removes YAML (---) or TOML (+++) front matter at the start
// of a document.
func dropFrontMatter(lines []string) []string {
	if len(lines) == 0 {
		return lines
	}
	first := strings.TrimRight(lines[0], " \t")
	if first != "---" && first != "+++" {
		return lines
	}
	for i := 1; i < len(lines); i++ {
		l := strings.TrimRight(lines[i], " \t")
		if l == first || first == "---" && l == "..." {
			return lines[i+1:]
		}
	}
	return lines
}

// indent returns the number of leading spaces of line (a tab counts as 4)
// and the rest of the line.
func indent(line string) (int, string) {
	n := 0
	for i := 0; i < len(line); i++ {
		switch line[i] {
		case ' ':
			n++
		case '\t':
			n += 4
		default:
			return n, line[i:]
		}
	}
	return n, ""
}

// atxHeading parses a "## Heading ##" line.
func atxHeading(line string) (level int, title string, ok bool) {
	n, rest := indent(line)
	if n > 3 {
		return 0, "", false
	}
	for level < len(rest) && rest[level] == '#' {
		level++
	}
	if level == 0 || level > 6 {
		return 0, "", false
	}
	rest = rest[level:]
	if rest != "" && rest[0] != ' ' && rest[0] != '\t' {
		return 0, "", false
	}
	rest = strings.TrimSpace(rest)
	// An optional closing sequence of #s, preceded by a space.
	if t := strings.TrimRight(rest, "#"); t == "" || strings.HasSuffix(t, " ") || strings.HasSuffix(t, "\t") {
		rest = strings.TrimSpace(t)
	}
	return level, cleanInline(rest), true
}

// setextUnderline parses the "===" (level 1) or "---" (level 2) line under a
// setext heading.
func setextUnderline(line string) (int, bool) {
	n, rest := indent(line)
	rest = strings.TrimRight(rest, " \t")
	if n > 3 || rest == "" {
		return 0, false
	}
	if strings.Trim(rest, "=") == "" {
		return 1, true
	}
	if strings.Trim(rest, "-") == "" {
		return 2, true
	}
	return 0, false
}

// fenceOpen parses the opening line of a fenced code block.
func fenceOpen(line string) (byte, int, bool) {
	n, rest := indent(line)
	if n > 3 || len(rest) < 3 || rest[0] != '`' && rest[0] != '~' {
		return 0, 0, false
	}
	ch := rest[0]
	k := 0
	for k < len(rest) && rest[k] == ch {
		k++
	}
	if k < 3 || ch == '`' && strings.ContainsRune(rest[k:], '`') {
		return 0, 0, false
	}
	return ch, k, true
}

// fenceClose reports whether line closes a code block opened by n ch's.
func fenceClose(line string, ch byte, n int) bool {
	ind, rest := indent(line)
	if ind > 3 {
		return false
	}
	k := 0
	for k < len(rest) && rest[k] == ch {
		k++
	}
	return k >= n && strings.TrimSpace(rest[k:]) == ""
}

var listItem = regexp.MustCompile(`^([-*+]|[0-9]{1,9}[.)])([ \t]|$)`)

// blockStart reports whether line starts a block that is not a paragraph: a
// list item, a block quote, a table row, indented code or HTML.
func blockStart(line string) bool {
	n, rest := indent(line)
	if n > 3 {
		return true
	}
	return listItem.MatchString(rest) || strings.HasPrefix(rest, ">") ||
		strings.HasPrefix(rest, "|") || strings.HasPrefix(rest, "<")
}

var (
	mdLink     = regexp.MustCompile(`!?\[([^\]]*)\]\([^)]*\)`)
	mdEmphasis = strings.NewReplacer("**", "", "__", "", "`", "")
)

// cleanInline drops Markdown inline syntax from heading text: links become
// their text, emphasis markers and backticks go.
func cleanInline(s string) string {
	s = mdLink.ReplaceAllString(s, "$1")
	return strings.Join(strings.Fields(mdEmphasis.Replace(s)), " ")
}
