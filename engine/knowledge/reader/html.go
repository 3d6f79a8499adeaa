package reader

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
	"golang.org/x/net/html/charset"

	"github.com/troupehq/troupe/engine/knowledge"
)

// htmlSkip are elements whose content is not document text.
var htmlSkip = map[atom.Atom]bool{
	atom.Head: true, atom.Script: true, atom.Style: true, atom.Noscript: true,
	atom.Template: true, atom.Svg: true, atom.Math: true, atom.Nav: true,
	atom.Iframe: true, atom.Object: true, atom.Embed: true, atom.Canvas: true,
	atom.Audio: true, atom.Video: true, atom.Select: true, atom.Button: true,
	atom.Textarea: true, atom.Input: true,
}

// htmlBlocks are elements that break lines: 1 for a line break, 2 for a
// paragraph break.
var htmlBlocks = map[atom.Atom]int{
	atom.Address: 1, atom.Article: 1, atom.Aside: 1, atom.Blockquote: 2,
	atom.Caption: 1, atom.Center: 1, atom.Dd: 1, atom.Details: 1, atom.Dialog: 1,
	atom.Div: 1, atom.Dl: 2, atom.Dt: 1, atom.Fieldset: 1, atom.Figcaption: 1,
	atom.Figure: 2, atom.Footer: 1, atom.Form: 1, atom.Header: 1, atom.Hgroup: 1,
	atom.Hr: 2, atom.Legend: 1, atom.Main: 1, atom.Ol: 2, atom.P: 2, atom.Pre: 2,
	atom.Section: 1, atom.Summary: 1, atom.Table: 2, atom.Ul: 2, atom.Body: 1,
}

var htmlHeadings = map[atom.Atom]int{
	atom.H1: 1, atom.H2: 2, atom.H3: 3, atom.H4: 4, atom.H5: 5, atom.H6: 6,
}

// decodeHTML converts an HTML document to UTF-8: by its byte-order mark;
// as UTF-8 when it is valid UTF-8 (pages that declare Latin-1 but are UTF-8
// are common, real Latin-1 text with accents is never valid UTF-8);
// otherwise by its <meta> charset, defaulting to Windows-1252 as browsers do.
func decodeHTML(data []byte) string {
	e, name, _ := charset.DetermineEncoding(data, "")
	if !strings.HasPrefix(name, "utf-16") && utf8.Valid(data) {
		text, _ := decodeBOM(data)
		return text
	}
	out, err := e.NewDecoder().Bytes(data)
	if err != nil {
		return strings.ToValidUTF8(string(data), "\uFFFD")
	}
	text, _ := decodeBOM(out)
	return text
}

// readHTML returns the text of an HTML document, one section per heading
// (h1-h6) with its heading path. When the document has no h1, its title is
// the top heading.
func readHTML(data []byte) []knowledge.Section {
	text := decodeHTML(data)
	r := &htmlRenderer{}
	doc, err := html.Parse(strings.NewReader(text))
	if err != nil {
		// The parser rejects documents nested deeper than 512 elements:
		// read those as a stream of tokens.
		return readHTMLTokens(text)
	}
	if title := findTitle(doc); title != "" && !hasH1(doc) {
		r.startSection(0, title)
	}
	r.render(doc)
	r.flush()
	return r.b.result()
}

// htmlVoid are elements without end tags.
var htmlVoid = map[atom.Atom]bool{
	atom.Area: true, atom.Base: true, atom.Br: true, atom.Col: true, atom.Embed: true,
	atom.Hr: true, atom.Img: true, atom.Input: true, atom.Link: true, atom.Meta: true,
	atom.Param: true, atom.Source: true, atom.Track: true, atom.Wbr: true,
}

// readHTMLTokens reads HTML from its token stream, without building a tree:
// less faithful to the HTML parsing rules than readHTML, but not limited in
// nesting.
func readHTMLTokens(text string) []knowledge.Section {
	// First pass: the title, and whether there is an h1.
	var title strings.Builder
	inTitle, h1 := false, false
	z := html.NewTokenizer(strings.NewReader(text))
	for tt := z.Next(); tt != html.ErrorToken; tt = z.Next() {
		name, _ := z.TagName()
		switch a := atom.Lookup(name); {
		case tt == html.StartTagToken && a == atom.Title:
			inTitle = true
		case tt == html.EndTagToken && a == atom.Title:
			inTitle = false
		case tt == html.StartTagToken && a == atom.H1:
			h1 = true
		case tt == html.TextToken && inTitle:
			title.Write(z.Text())
		}
	}

	r := &htmlRenderer{lenient: true}
	if t := strings.Join(strings.FieldsFunc(title.String(), isSpace), " "); t != "" && !h1 {
		r.startSection(0, t)
	}
	var (
		skip    int // depth inside skipped elements
		level   int // of the heading being read, or 0
		heading strings.Builder
	)
	z = html.NewTokenizer(strings.NewReader(text))
	for tt := z.Next(); tt != html.ErrorToken; tt = z.Next() {
		name, _ := z.TagName()
		a := atom.Lookup(name)
		switch tt {
		case html.TextToken:
			switch {
			case skip > 0:
			case level > 0:
				heading.Write(z.Text())
			default:
				r.text(string(z.Text()))
			}
		case html.StartTagToken, html.SelfClosingTagToken:
			switch {
			case htmlSkip[a]:
				if tt == html.StartTagToken && !htmlVoid[a] {
					skip++
				}
			case skip > 0:
			case htmlHeadings[a] > 0:
				level = htmlHeadings[a]
				heading.Reset()
			case level > 0:
				if a == atom.Br {
					heading.WriteByte(' ')
				}
			default:
				r.enter(a)
				if tt == html.SelfClosingTagToken || htmlVoid[a] {
					r.leave(a)
				}
			}
		case html.EndTagToken:
			switch {
			case htmlSkip[a]:
				skip = max(skip-1, 0)
			case skip > 0:
			case htmlHeadings[a] > 0 && level > 0:
				if t := strings.Join(strings.FieldsFunc(heading.String(), isSpace), " "); t != "" {
					r.startSection(level, t)
				}
				level = 0
			case level == 0:
				r.leave(a)
			}
		}
	}
	r.flush()
	return r.b.result()
}

type htmlList struct {
	ordered bool
	n       int
}

type htmlRenderer struct {
	b         sectionBuilder
	path      headingPath
	heading   string
	buf       strings.Builder // the current section's text
	bodyStart int             // where its body starts in buf
	brk       int             // pending break: 1 line, 2 paragraph
	space     bool            // pending space
	pre       int             // depth inside <pre>
	cells     int             // depth inside table cells
	rows      []int           // cells so far of each open table row
	lists     []htmlList      // open lists
	lenient   bool            // end tags may be missing (token stream)
}

func (r *htmlRenderer) flush() {
	text := r.buf.String()
	r.b.add(r.heading, text, strings.TrimSpace(text[r.bodyStart:]) == "")
	r.buf.Reset()
	r.bodyStart, r.brk, r.space = 0, 0, false
}

func (r *htmlRenderer) startSection(level int, title string) {
	r.flush()
	r.path.push(level, title)
	r.heading = r.path.String()
	r.emit(title)
	r.bodyStart = r.buf.Len()
	r.breakLine(2)
}

// emit writes s after any pending break or space.
func (r *htmlRenderer) emit(s string) {
	if s == "" {
		return
	}
	switch {
	case r.buf.Len() == 0:
	case r.brk > 0:
		r.buf.WriteString("\n\n"[:r.brk])
	case r.space:
		if b := r.buf.String(); b[len(b)-1] != ' ' && b[len(b)-1] != '\n' {
			r.buf.WriteByte(' ')
		}
	}
	r.brk, r.space = 0, false
	r.buf.WriteString(s)
}

// text writes character data, collapsing white space outside <pre>.
func (r *htmlRenderer) text(s string) {
	if r.pre > 0 {
		r.emit(s)
		return
	}
	fields := strings.Fields(s)
	if len(fields) > 0 && s[:len(s)-len(strings.TrimLeftFunc(s, isSpace))] != "" {
		r.space = true
	}
	for i, f := range fields {
		if i > 0 {
			r.space = true
		}
		r.emit(f)
	}
	if s != "" && strings.TrimRightFunc(s, isSpace) != s {
		r.space = true
	}
}

func isSpace(c rune) bool {
	return strings.ContainsRune(" \t\n\r\f\v\u00a0\u0085", c) || c == '\u2028' || c == '\u2029'
}

// breakLine asks for a line (1) or paragraph (2) break before the next text;
// inside table cells it is a space, to keep a row on one line.
func (r *htmlRenderer) breakLine(n int) {
	if r.cells > 0 {
		r.space = true
		return
	}
	r.brk = max(r.brk, n)
}

// render walks the tree without recursion, so deeply nested documents
// cannot exhaust the stack.
func (r *htmlRenderer) render(root *html.Node) {
	type frame struct {
		n    *html.Node
		exit bool
	}
	stack := []frame{{n: root}}
	for len(stack) > 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		n := f.n
		if f.exit {
			r.leave(n.DataAtom)
			continue
		}
		switch n.Type {
		case html.TextNode:
			r.text(n.Data)
			continue
		case html.ElementNode:
			if htmlSkip[n.DataAtom] {
				continue
			}
			if level, ok := htmlHeadings[n.DataAtom]; ok {
				if title := textContent(n); title != "" {
					r.startSection(level, title)
				}
				continue
			}
			r.enter(n.DataAtom)
			stack = append(stack, frame{n: n, exit: true})
		case html.DocumentNode:
		default:
			continue
		}
		for c := n.LastChild; c != nil; c = c.PrevSibling {
			stack = append(stack, frame{n: c})
		}
	}
}

func (r *htmlRenderer) enter(a atom.Atom) {
	if brk, ok := htmlBlocks[a]; ok {
		r.breakLine(r.blockBreak(a, brk))
	}
	switch a {
	case atom.Pre:
		r.pre++
	case atom.Br:
		if r.pre > 0 {
			r.emit("\n")
		} else {
			r.breakLine(1)
		}
	case atom.Ul, atom.Ol:
		r.lists = append(r.lists, htmlList{ordered: a == atom.Ol})
	case atom.Li:
		r.breakLine(1)
		marker := "- "
		if len(r.lists) > 0 {
			l := &r.lists[len(r.lists)-1]
			l.n++
			if l.ordered {
				marker = strconv.Itoa(l.n) + ". "
			}
		}
		if r.cells == 0 {
			marker = strings.Repeat("  ", max(len(r.lists)-1, 0)) + marker
		}
		r.emit(marker)
	case atom.Tr:
		r.breakLine(1)
		if r.lenient {
			r.rows, r.cells = r.rows[:0], 0
		}
		r.rows = append(r.rows, 0)
	case atom.Td, atom.Th:
		if len(r.rows) > 0 {
			if r.rows[len(r.rows)-1] > 0 {
				r.space = true
				r.emit("|")
				r.space = true
			}
			r.rows[len(r.rows)-1]++
		}
		r.cells++
	}
}

func (r *htmlRenderer) leave(a atom.Atom) {
	switch a {
	case atom.Pre:
		r.pre--
	case atom.Ul, atom.Ol:
		if len(r.lists) > 0 {
			r.lists = r.lists[:len(r.lists)-1]
		}
	case atom.Li:
		r.breakLine(1)
	case atom.Tr:
		if len(r.rows) > 0 {
			r.rows = r.rows[:len(r.rows)-1]
		}
		r.breakLine(1)
	case atom.Td, atom.Th:
		r.cells = max(r.cells-1, 0)
	case atom.Table:
		if r.lenient {
			r.rows, r.cells = r.rows[:0], 0
		}
	}
	if brk, ok := htmlBlocks[a]; ok {
		r.breakLine(r.blockBreak(a, brk))
	}
}

// blockBreak is the break around a block element: lists nested in list
// items break lines, not paragraphs.
func (r *htmlRenderer) blockBreak(a atom.Atom, brk int) int {
	if (a == atom.Ul || a == atom.Ol) && len(r.lists) > 0 {
		return 1
	}
	return brk
}

// textContent returns the white-space-collapsed text of n, without the
// content of skipped elements.
func textContent(n *html.Node) string {
	var b strings.Builder
	stack := []*html.Node{n}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch {
		case n.Type == html.TextNode:
			b.WriteString(n.Data)
			continue
		case n.Type == html.ElementNode && htmlSkip[n.DataAtom]:
			continue
		case n.Type == html.ElementNode && n.DataAtom == atom.Br:
			b.WriteByte(' ')
		}
		for c := n.LastChild; c != nil; c = c.PrevSibling {
			stack = append(stack, c)
		}
	}
	return strings.Join(strings.FieldsFunc(b.String(), isSpace), " ")
}

// findNode returns the first element with the given atom that has text, in
// document order, outside skipped elements unless skip is false.
func findNode(root *html.Node, a atom.Atom, skip bool) *html.Node {
	stack := []*html.Node{root}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n.Type == html.ElementNode {
			if n.DataAtom == a && textContent(n) != "" {
				return n
			}
			if skip && htmlSkip[n.DataAtom] {
				continue
			}
		}
		for c := n.LastChild; c != nil; c = c.PrevSibling {
			stack = append(stack, c)
		}
	}
	return nil
}

func findTitle(doc *html.Node) string {
	if n := findNode(doc, atom.Title, false); n != nil {
		return textContent(n)
	}
	return ""
}

func hasH1(doc *html.Node) bool {
	return findNode(doc, atom.H1, true) != nil
}
