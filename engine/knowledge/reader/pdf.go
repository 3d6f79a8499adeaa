package reader

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"

	"github.com/ledongthuc/pdf"

	"github.com/troupehq/troupe/engine/knowledge"
)

// PDF text extraction. The library parses the file's object graph (cross
// references, streams, fonts and their ToUnicode maps); this file walks the
// page tree and interprets the page content streams itself, placing the
// text it shows to rebuild lines, word spaces and paragraphs, which the
// library's own text functions run together.

const (
	pdfMaxPages       = 1 << 19 // page tree nodes visited
	pdfMaxTreeDepth   = 64
	pdfMaxFormDepth   = 8
	pdfMaxForms       = 4096    // form XObjects drawn per page
	pdfMaxDecoded     = 1 << 30 // decoded content bytes per document
	pdfMaxCMap        = 4 << 20
	pdfMaxCMapEntries = 1 << 20
	pdfMaxFontWidths  = 1 << 16
)

// readPDF returns one section per page with text; a PDF without text at all
// is an error wrapping ErrNoText.
func readPDF(data []byte) (sections []knowledge.Section, err error) {
	defer func() {
		if r := recover(); r != nil {
			sections, err = nil, fmt.Errorf("could not read PDF: %v", r)
		}
	}()
	if err := checkXref(data); err != nil {
		return nil, fmt.Errorf("could not read PDF: %w", err)
	}
	src := newPDFSource(data)
	r, err := pdf.NewReader(src, src.size())
	if err != nil {
		if errors.Is(err, pdf.ErrInvalidPassword) {
			return nil, errors.New("could not read PDF: it is protected by a password")
		}
		return nil, fmt.Errorf("could not read PDF: %w", err)
	}
	if err := checkObjectStreams(r, src.data); err != nil {
		return nil, fmt.Errorf("could not read PDF: %w", err)
	}
	pages, err := pdfPages(r)
	if err != nil {
		return nil, fmt.Errorf("could not read PDF: %w", err)
	}
	pr := &pdfReader{src: src, fonts: map[string]*pdfFont{}, decoded: pdfMaxDecoded}
	var firstErr error
	for i, page := range pages {
		text, err := pr.pageText(page)
		if err != nil && firstErr == nil {
			firstErr = fmt.Errorf("page %d: %w", i+1, err)
		}
		if src.err != nil {
			return nil, fmt.Errorf("could not read PDF: %w", src.err)
		}
		sections = appendSection(sections, knowledge.Section{Text: text, Page: i + 1})
	}
	if len(sections) == 0 {
		if firstErr != nil {
			return nil, fmt.Errorf("could not read PDF: %w", firstErr)
		}
		return nil, fmt.Errorf("%w: the PDF has no text layer (probably a scanned document; OCR is not supported)", ErrNoText)
	}
	return sections, nil
}

// pdfPages walks the page tree, bounding its depth and size so a cyclic
// tree ends.
func pdfPages(r *pdf.Reader) ([]pdf.Value, error) {
	type node struct {
		v     pdf.Value
		depth int
	}
	stack := []node{{r.Trailer().Key("Root").Key("Pages"), 0}}
	var pages []pdf.Value
	for visits := 0; len(stack) > 0; visits++ {
		if visits > pdfMaxPages {
			return nil, errors.New("the page tree is too large or loops")
		}
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		kids := n.v.Key("Kids")
		typ := n.v.Key("Type").Name()
		if typ == "Page" || typ != "Pages" && kids.Kind() != pdf.Array {
			if n.v.Kind() == pdf.Dict {
				pages = append(pages, n.v)
			}
			continue
		}
		if n.depth >= pdfMaxTreeDepth {
			return nil, errors.New("the page tree is too deep or loops")
		}
		for i := kids.Len() - 1; i >= 0; i-- {
			stack = append(stack, node{kids.Index(i), n.depth + 1})
		}
	}
	return pages, nil
}

// inherited looks a page attribute up the page tree, a bounded number of
// levels (the library's own lookup loops forever on a cyclic /Parent).
func inherited(v pdf.Value, key string) pdf.Value {
	for i := 0; i < pdfMaxTreeDepth && !v.IsNull(); i++ {
		if x := v.Key(key); !x.IsNull() {
			return x
		}
		v = v.Key("Parent")
	}
	return pdf.Value{}
}

type pdfReader struct {
	src     *pdfSource
	fonts   map[string]*pdfFont // by the font dictionary's text
	decoded int64               // decoded content bytes left
}

// pageText returns the text of a page.
func (pr *pdfReader) pageText(page pdf.Value) (text string, err error) {
	p := &pdfPage{pr: pr, budget: pdfMaxPageContent}
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
		text = p.layout.String()
	}()
	content, err := p.contents(page.Key("Contents"))
	if err != nil {
		return "", err
	}
	p.run(content, p.newResources(inherited(page, "Resources")), pdfIdentity, 0)
	return "", p.err
}

type pdfPage struct {
	pr     *pdfReader
	layout pdfLayout
	budget int64 // decoded content bytes left for the page
	forms  int
	tokens int
	err    error
}

// contents returns the decoded content of a page: a stream or an array of
// streams, which are concatenated.
func (p *pdfPage) contents(v pdf.Value) ([]byte, error) {
	var parts []pdf.Value
	switch v.Kind() {
	case pdf.Stream:
		parts = []pdf.Value{v}
	case pdf.Array:
		for i := 0; i < v.Len() && i < 1<<16; i++ {
			parts = append(parts, v.Index(i))
		}
	}
	var out []byte
	for _, s := range parts {
		data, err := p.stream(s)
		if err != nil {
			return out, err
		}
		out = append(append(out, data...), '\n')
	}
	return out, nil
}

// stream decodes a content stream within the page's and document's budgets.
func (p *pdfPage) stream(v pdf.Value) ([]byte, error) {
	limit := min(p.budget, p.pr.decoded)
	data, truncated, err := readStream(v, limit)
	p.budget -= int64(len(data))
	p.pr.decoded -= int64(len(data))
	if truncated && p.pr.decoded <= 0 {
		return data, errors.New("too much content")
	}
	return data, err
}

type pdfResources struct {
	v     pdf.Value
	fonts map[string]*pdfFont
}

func (p *pdfPage) newResources(v pdf.Value) *pdfResources {
	return &pdfResources{v: v, fonts: map[string]*pdfFont{}}
}

func (p *pdfPage) font(res *pdfResources, name string) *pdfFont {
	if f, ok := res.fonts[name]; ok {
		return f
	}
	f := p.pr.font(res.v.Key("Font").Key(name))
	res.fonts[name] = f
	return f
}

// pdfMatrix is a PDF transformation matrix [a b c d e f].
type pdfMatrix [6]float64

var pdfIdentity = pdfMatrix{1, 0, 0, 1, 0, 0}

// mul returns m × n.
func (m pdfMatrix) mul(n pdfMatrix) pdfMatrix {
	return pdfMatrix{
		m[0]*n[0] + m[1]*n[2],
		m[0]*n[1] + m[1]*n[3],
		m[2]*n[0] + m[3]*n[2],
		m[2]*n[1] + m[3]*n[3],
		m[4]*n[0] + m[5]*n[2] + n[4],
		m[4]*n[1] + m[5]*n[3] + n[5],
	}
}

func translate(x, y float64) pdfMatrix { return pdfMatrix{1, 0, 0, 1, x, y} }

// pdfGState is the part of the graphics state text placement needs.
type pdfGState struct {
	ctm                     pdfMatrix
	font                    *pdfFont
	size, scale             float64 // Tfs, Th
	charSp, wordSp, leading float64 // Tc, Tw, TL
	rise                    float64 // Ts
}

type pdfOperand struct {
	kind pdfTokKind
	num  float64
	s    string
	arr  []pdfOperand
}

// run interprets a content stream, adding the text it shows to the layout.
func (p *pdfPage) run(data []byte, res *pdfResources, ctm pdfMatrix, depth int) {
	g := pdfGState{ctm: ctm, scale: 1}
	var (
		saved   []pdfGState
		tm, tlm = pdfIdentity, pdfIdentity
		stack   []pdfOperand
		marks   []int // starts of the open arrays and dictionaries in stack
	)
	l := &pdfLexer{data: data}
	num := func(i int) float64 { // the i-th operand of the operator
		if i < len(stack) && stack[i].kind == tokNum {
			return stack[i].num
		}
		return 0
	}
	var show func(s string)
	show = func(s string) {
		f := g.font
		if f == nil {
			f = pdfFallbackFont
		}
		// Justification by character spacing (Tc) puts word gaps inside a
		// string: place such strings glyph by glyph.
		if n := f.codeLen(); len(s) > n && math.Abs(g.charSp) > 0.15*math.Abs(g.size) {
			for i := 0; i+n <= len(s); i += n {
				show(s[i : i+n])
			}
			return
		}
		trm := pdfMatrix{g.size * g.scale, 0, 0, g.size, 0, g.rise}.mul(tm).mul(g.ctm)
		adv, ink := f.advance(s, g)
		end := pdfMatrix{g.size * g.scale, 0, 0, g.size, 0, g.rise}.mul(translate(ink, 0).mul(tm)).mul(g.ctm)
		p.layout.add(f.decode(s), trm[4], trm[5], end[4], math.Hypot(trm[2], trm[3]))
		tm = translate(adv, 0).mul(tm)
	}
	nextLine := func(tx, ty float64) {
		tlm = translate(tx, ty).mul(tlm)
		tm = tlm
	}
	for {
		if p.tokens++; p.tokens%8192 == 0 && p.pr.src.check() != nil {
			p.err = p.pr.src.err
			return
		}
		t := l.next()
		switch t.kind {
		case tokEOF:
			return
		case tokNum, tokName, tokString:
			stack = append(stack, pdfOperand{kind: t.kind, num: t.num, s: t.s})
		case tokArrayStart, tokDictStart:
			if len(marks) >= 32 {
				stack, marks = stack[:0], marks[:0]
			}
			marks = append(marks, len(stack))
		case tokArrayEnd, tokDictEnd:
			if len(marks) == 0 {
				continue
			}
			m := marks[len(marks)-1]
			marks = marks[:len(marks)-1]
			arr := append([]pdfOperand(nil), stack[m:]...)
			stack = append(stack[:m], pdfOperand{kind: t.kind, arr: arr})
		case tokKeyword:
			if len(marks) > 0 || t.s == "true" || t.s == "false" || t.s == "null" {
				stack = append(stack, pdfOperand{kind: tokKeyword, s: t.s})
				break
			}
			switch t.s {
			case "BI":
				skipInlineImage(l)
			case "q":
				if len(saved) < 256 {
					saved = append(saved, g)
				}
			case "Q":
				if len(saved) > 0 {
					g = saved[len(saved)-1]
					saved = saved[:len(saved)-1]
				}
			case "cm":
				g.ctm = pdfMatrix{num(0), num(1), num(2), num(3), num(4), num(5)}.mul(g.ctm)
			case "BT":
				tm, tlm = pdfIdentity, pdfIdentity
			case "Tf":
				if len(stack) >= 2 {
					g.font = p.font(res, stack[0].s)
					g.size = num(1)
				}
			case "Tc":
				g.charSp = num(0)
			case "Tw":
				g.wordSp = num(0)
			case "Tz":
				g.scale = num(0) / 100
			case "TL":
				g.leading = num(0)
			case "Ts":
				g.rise = num(0)
			case "Td":
				nextLine(num(0), num(1))
			case "TD":
				g.leading = -num(1)
				nextLine(num(0), num(1))
			case "Tm":
				tm = pdfMatrix{num(0), num(1), num(2), num(3), num(4), num(5)}
				tlm = tm
			case "T*":
				nextLine(0, -g.leading)
			case "Tj":
				if len(stack) > 0 {
					show(stack[len(stack)-1].s)
				}
			case "'", "\"":
				if t.s == "\"" && len(stack) >= 3 {
					g.wordSp, g.charSp = num(0), num(1)
				}
				nextLine(0, -g.leading)
				if len(stack) > 0 {
					show(stack[len(stack)-1].s)
				}
			case "TJ":
				if len(stack) == 0 {
					break
				}
				for _, e := range stack[len(stack)-1].arr {
					switch e.kind {
					case tokString:
						show(e.s)
					case tokNum:
						tm = translate(-e.num/1000*g.size*g.scale, 0).mul(tm)
					}
				}
			case "Do":
				if len(stack) > 0 {
					p.form(res, stack[0].s, g.ctm, depth)
				}
			}
			stack = stack[:0]
		}
		if len(stack) > 1<<16 {
			stack, marks = stack[:0], marks[:0]
		}
	}
}

// form draws a form XObject.
func (p *pdfPage) form(res *pdfResources, name string, ctm pdfMatrix, depth int) {
	x := res.v.Key("XObject").Key(name)
	if depth >= pdfMaxFormDepth || p.forms >= pdfMaxForms || x.Kind() != pdf.Stream || x.Key("Subtype").Name() != "Form" {
		return
	}
	p.forms++
	data, err := p.stream(x)
	if err != nil {
		return
	}
	if m := x.Key("Matrix"); m.Len() == 6 {
		var fm pdfMatrix
		for i := range fm {
			fm[i] = m.Index(i).Float64()
		}
		ctm = fm.mul(ctm)
	}
	child := res
	if r := x.Key("Resources"); r.Kind() == pdf.Dict {
		child = p.newResources(r)
	}
	p.run(data, child, ctm, depth+1)
}

// skipInlineImage skips an inline image's "... ID <data> EI".
func skipInlineImage(l *pdfLexer) {
	for {
		t := l.next()
		if t.kind == tokEOF {
			return
		}
		if t.kind == tokKeyword && t.s == "ID" {
			break
		}
	}
	for i := l.pos + 1; i+1 < len(l.data); i++ {
		if l.data[i] == 'E' && l.data[i+1] == 'I' && isPDFSpace(l.data[i-1]) &&
			(i+2 == len(l.data) || isPDFSpace(l.data[i+2]) || isPDFDelim(l.data[i+2])) {
			l.pos = i + 2
			return
		}
	}
	l.pos = len(l.data)
}

// pdfFont is what text extraction needs of a font: decoding its codes to
// text and their widths, to place the text.
type pdfFont struct {
	enc       pdf.TextEncoding // nil: bytes as Latin-1 (simple fonts) or dropped
	composite bool             // two-byte codes
	first     int
	widths    []float64
	missing   float64 // width of codes without one
	cidWidths []pdfCIDWidth
	unit      float64 // glyph space to text space, 1/1000 but for Type3
}

type pdfCIDWidth struct {
	lo, hi int
	w      float64   // for a range with one width
	ws     []float64 // for consecutive codes from lo
}

var pdfFallbackFont = &pdfFont{missing: 500, unit: 0.001}

// font loads a font dictionary, sharing fonts with identical dictionaries
// across pages.
func (pr *pdfReader) font(v pdf.Value) (f *pdfFont) {
	if v.Kind() != pdf.Dict {
		return pdfFallbackFont
	}
	key := v.String()
	if f, ok := pr.fonts[key]; ok {
		return f
	}
	defer func() {
		if r := recover(); r != nil {
			f = pdfFallbackFont
		}
		pr.fonts[key] = f
	}()
	f = &pdfFont{unit: 0.001, missing: 1000}
	switch v.Key("Subtype").Name() {
	case "Type0":
		f.composite = true
		d := v.Key("DescendantFonts").Index(0)
		if dw := d.Key("DW"); dw.Kind() == pdf.Integer || dw.Kind() == pdf.Real {
			f.missing = dw.Float64()
		}
		w := d.Key("W")
		for i := 0; i+1 < w.Len() && len(f.cidWidths) < pdfMaxFontWidths; {
			lo, next := int(w.Index(i).Int64()), w.Index(i+1)
			if next.Kind() == pdf.Array {
				cw := pdfCIDWidth{lo: lo}
				for j := 0; j < next.Len() && j < pdfMaxFontWidths; j++ {
					cw.ws = append(cw.ws, next.Index(j).Float64())
				}
				cw.hi = lo + len(cw.ws) - 1
				f.cidWidths = append(f.cidWidths, cw)
				i += 2
				continue
			}
			f.cidWidths = append(f.cidWidths, pdfCIDWidth{lo: lo, hi: int(next.Int64()), w: w.Index(i + 2).Float64()})
			i += 3
		}
	default:
		if v.Key("Subtype").Name() == "Type3" {
			if u := v.Key("FontMatrix").Index(0).Float64(); u > 0 && u < 1 {
				f.unit = u
			}
		}
		f.first = int(v.Key("FirstChar").Int64())
		ws := v.Key("Widths")
		for i := 0; i < ws.Len() && i < pdfMaxFontWidths; i++ {
			f.widths = append(f.widths, ws.Index(i).Float64())
		}
		f.missing = v.Key("FontDescriptor").Key("MissingWidth").Float64()
		if len(f.widths) == 0 {
			// A standard font without metrics: an average width.
			f.missing = 500
			if strings.Contains(v.Key("BaseFont").Name(), "Courier") {
				f.missing = 600
			}
		}
	}
	f.enc = pdfEncoder(v)
	return f
}

// pdfEncoder returns the library's decoder of a font's codes, unless
// building it would mean parsing a ToUnicode CMap that is too large or would
// hang the library's interpreter.
func pdfEncoder(v pdf.Value) (enc pdf.TextEncoding) {
	defer func() {
		if recover() != nil {
			enc = nil
		}
	}()
	usesCMap := true
	if e := v.Key("Encoding"); e.Kind() == pdf.Dict || e.Kind() == pdf.Name && e.Name() != "Identity-H" {
		usesCMap = false
	}
	if tu := v.Key("ToUnicode"); usesCMap && tu.Kind() == pdf.Stream {
		data, truncated, err := readStream(tu, pdfMaxCMap)
		if err != nil || truncated || hexHang(data) || !cmapCountsOK(data) {
			return nil
		}
	}
	font := pdf.Font{V: v}
	return font.Encoder()
}

// cmapCountsOK checks the entry counts of a CMap: the library appends as
// many entries as a "n beginbfchar" says, whatever follows.
func cmapCountsOK(data []byte) bool {
	l := &pdfLexer{data: data}
	var last, n, total float64
	for {
		t := l.next()
		switch t.kind {
		case tokEOF:
			return true
		case tokNum:
			last = t.num
		case tokKeyword:
			if strings.HasPrefix(t.s, "begin") {
				if last < 0 || last > 10000 {
					return false
				}
				n = last
			}
			if strings.HasPrefix(t.s, "end") {
				if total += n; total > pdfMaxCMapEntries {
					return false
				}
			}
		}
	}
}

// codeLen is the length in bytes of the font's character codes.
func (f *pdfFont) codeLen() int {
	if f.composite {
		return 2
	}
	return 1
}

// codes splits a string shown with the font into character codes.
func (f *pdfFont) codes(s string) []int {
	if !f.composite {
		out := make([]int, len(s))
		for i := 0; i < len(s); i++ {
			out[i] = int(s[i])
		}
		return out
	}
	out := make([]int, 0, len(s)/2)
	for i := 0; i+1 < len(s); i += 2 {
		out = append(out, int(s[i])<<8|int(s[i+1]))
	}
	return out
}

func (f *pdfFont) width(code int) float64 {
	if f.composite {
		for _, cw := range f.cidWidths {
			if code >= cw.lo && code <= cw.hi {
				if cw.ws != nil {
					return cw.ws[code-cw.lo]
				}
				return cw.w
			}
		}
		return f.missing
	}
	if i := code - f.first; i >= 0 && i < len(f.widths) && f.widths[i] > 0 {
		return f.widths[i]
	}
	return f.missing
}

// advance returns how far showing s moves the text position, in text
// space, and where its last glyph ends: before the character and word
// spacing that follow it.
func (f *pdfFont) advance(s string, g pdfGState) (adv, ink float64) {
	var spacing float64
	for _, c := range f.codes(s) {
		spacing = g.charSp
		if c == ' ' && !f.composite {
			spacing += g.wordSp
		}
		adv += (f.width(c)*f.unit*g.size + spacing) * g.scale
	}
	return adv, adv - spacing*g.scale
}

var pdfLigatures = strings.NewReplacer("\ufb00", "ff", "\ufb01", "fi", "\ufb02", "fl", "\ufb03", "ffi", "\ufb04", "ffl", "\ufb05", "st", "\ufb06", "st")

// decode returns the text of a string shown with the font.
func (f *pdfFont) decode(s string) (text string) {
	defer func() {
		if recover() != nil {
			text = ""
		}
	}()
	switch {
	case f.enc != nil:
		text = f.enc.Decode(s)
	case f.composite:
		return ""
	}
	if f.enc == nil || !utf8.ValidString(text) {
		// No decoder, or one that passed the bytes through: read them as
		// Latin-1.
		r := make([]rune, len(s))
		for i := 0; i < len(s); i++ {
			r[i] = rune(s[i])
		}
		text = string(r)
	}
	text = strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
			return ' '
		case r < 0x20 || r == 0x7f || r == '\uFFFD':
			return -1
		}
		return r
	}, text)
	return pdfLigatures.Replace(text)
}

// pdfLayout rebuilds lines from the positions of the text runs a page shows,
// in the order it shows them: a run on another baseline starts a new line
// (a paragraph when the gap is more than two lines), a run further along the
// same baseline than where the previous one ended is a new word.
type pdfLayout struct {
	b       bytes.Buffer
	started bool
	x, y    float64 // where the previous run ended, its baseline
	size    float64 // its font size
}

func (l *pdfLayout) add(s string, x0, y0, x1, size float64) {
	if s == "" {
		return
	}
	if !finite(x0) || !finite(y0) || !finite(x1) {
		x0, y0, x1 = l.x, l.y, l.x
	}
	if !finite(size) || size <= 0 {
		size = 10
	}
	if l.started {
		h := max(size, l.size)
		dy := y0 - l.y
		last := l.b.Bytes()[l.b.Len()-1]
		switch {
		case math.Abs(dy) > h/2:
			if dy < -2*h {
				l.b.WriteString("\n\n")
			} else {
				l.b.WriteByte('\n')
			}
		case (x0-l.x > h/5 || x0 < l.x-h) && last != ' ' && s[0] != ' ':
			l.b.WriteByte(' ')
		}
	}
	l.started = true
	l.b.WriteString(s)
	l.x, l.y, l.size = x1, y0, size
}

func (l *pdfLayout) String() string { return l.b.String() }

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }
