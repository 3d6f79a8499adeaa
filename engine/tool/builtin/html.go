package builtin

import (
	"strings"
	"unicode"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// htmlToText reduces a parsed page to the text a reader sees, because raw HTML
// spends most of a model's context on markup, scripts and styles. Structure
// that carries meaning survives: headings are prefixed with "#" by level,
// paragraphs, list items, table rows and line breaks start new lines, and links
// keep their text.
func htmlToText(doc *html.Node) (text, title string) {
	w := &textWriter{}
	w.walk(doc)
	return strings.TrimSpace(w.b.String()), findTitle(doc)
}

// skipped elements hold no readable text, or text for machines.
var skipped = map[atom.Atom]bool{
	atom.Head: true, atom.Script: true, atom.Style: true, atom.Noscript: true,
	atom.Template: true, atom.Svg: true, atom.Math: true, atom.Iframe: true,
	atom.Object: true, atom.Embed: true, atom.Canvas: true, atom.Select: true,
	atom.Button: true,
}

// blocks maps block elements to the number of line breaks around them: 2 for a
// paragraph break, 1 for a line of its own.
var blocks = map[atom.Atom]int{
	atom.P: 2, atom.H1: 2, atom.H2: 2, atom.H3: 2, atom.H4: 2, atom.H5: 2, atom.H6: 2,
	atom.Blockquote: 2, atom.Pre: 2, atom.Table: 2, atom.Ul: 2, atom.Ol: 2, atom.Dl: 2,
	atom.Figure: 2, atom.Hr: 2, atom.Section: 2, atom.Article: 2,
	atom.Div: 1, atom.Li: 1, atom.Tr: 1, atom.Br: 1, atom.Dt: 1, atom.Dd: 1,
	atom.Header: 1, atom.Footer: 1, atom.Nav: 1, atom.Main: 1, atom.Aside: 1,
	atom.Form: 1, atom.Fieldset: 1, atom.Figcaption: 1, atom.Address: 1,
	atom.Caption: 1, atom.Details: 1, atom.Summary: 1, atom.Legend: 1, atom.Center: 1,
	atom.Body: 1, atom.Html: 1,
}

var headingLevel = map[atom.Atom]int{atom.H1: 1, atom.H2: 2, atom.H3: 3, atom.H4: 4, atom.H5: 5, atom.H6: 6}

// textWriter collapses whitespace as a browser does: separators are held back
// until the next visible text, so runs of spaces, blank lines and empty
// elements leave no trace.
type textWriter struct {
	b        strings.Builder
	space    bool   // a space is due before the next text
	newlines int    // line breaks due before the next text (wins over space)
	prefix   string // written at the start of the next text ("# ", "- ")
	pre      int    // depth inside <pre>, where whitespace is kept
}

func (w *textWriter) lineBreak(n int) {
	w.newlines = max(w.newlines, n)
}

// flush writes the separators due before visible text.
func (w *textWriter) flush() {
	if w.b.Len() > 0 {
		if w.newlines > 0 {
			w.b.WriteString(strings.Repeat("\n", w.newlines))
		} else if w.space {
			if s := w.b.String(); s[len(s)-1] != ' ' && s[len(s)-1] != '\n' {
				w.b.WriteByte(' ')
			}
		}
	}
	w.b.WriteString(w.prefix)
	w.space, w.newlines, w.prefix = false, 0, ""
}

func (w *textWriter) text(s string) {
	if w.pre > 0 {
		if s != "" {
			w.flush()
			w.b.WriteString(s)
		}
		return
	}
	for s != "" {
		i := strings.IndexFunc(s, unicode.IsSpace)
		if i == 0 {
			w.space = true
			s = strings.TrimLeftFunc(s, unicode.IsSpace)
			continue
		}
		if i < 0 {
			i = len(s)
		}
		w.flush()
		w.b.WriteString(s[:i])
		s = s[i:]
	}
}

func (w *textWriter) walk(n *html.Node) {
	switch n.Type {
	case html.TextNode:
		w.text(n.Data)
		return
	case html.CommentNode, html.DoctypeNode:
		return
	case html.ElementNode:
		if skipped[n.DataAtom] || hasAttr(n, "hidden") {
			return
		}
	}
	a := n.DataAtom
	breaks := blocks[a]
	w.lineBreak(breaks)
	mark := -1 // where this element set a prefix
	switch {
	case headingLevel[a] > 0:
		w.prefix, mark = strings.Repeat("#", headingLevel[a])+" ", w.b.Len()
	case a == atom.Li:
		w.prefix, mark = "- ", w.b.Len()
	case a == atom.Pre:
		w.pre++
	case a == atom.Td || a == atom.Th:
		w.space = true
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		w.walk(c)
	}
	switch {
	case a == atom.Pre:
		w.pre--
	case a == atom.Td || a == atom.Th:
		w.space = true
	}
	if mark >= 0 && w.b.Len() == mark {
		w.prefix = "" // a heading or item without text leaves no stray "# " or "- "
	}
	w.lineBreak(breaks)
}

func hasAttr(n *html.Node, key string) bool {
	for _, a := range n.Attr {
		if a.Key == key {
			return true
		}
	}
	return false
}

// findTitle returns the page's <title>, whitespace collapsed.
func findTitle(n *html.Node) string {
	if n.Type == html.ElementNode && n.DataAtom == atom.Title {
		var b strings.Builder
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			if c.Type == html.TextNode {
				b.WriteString(c.Data)
			}
		}
		return strings.Join(strings.Fields(b.String()), " ")
	}
	if n.Type == html.ElementNode && n.DataAtom == atom.Svg {
		return "" // an SVG <title> is not the page's
	}
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		if t := findTitle(c); t != "" {
			return t
		}
	}
	return ""
}
