package reader

import (
	"bytes"
	"strconv"
)

// A small PDF lexer and object parser, used to interpret page content
// streams and to check a file's cross-reference structure before the PDF
// library sees it. It never panics and always makes progress.

type pdfTokKind int

const (
	tokEOF pdfTokKind = iota
	tokNum
	tokName
	tokString
	tokKeyword // operators, true/false/null, R, obj, ...
	tokArrayStart
	tokArrayEnd
	tokDictStart
	tokDictEnd
)

type pdfTok struct {
	kind pdfTokKind
	num  float64
	int  bool   // num is an integer
	s    string // name (without /), string bytes or keyword
}

type pdfLexer struct {
	data []byte
	pos  int
}

func isPDFSpace(c byte) bool {
	switch c {
	case 0, '\t', '\n', '\f', '\r', ' ':
		return true
	}
	return false
}

func isPDFDelim(c byte) bool {
	switch c {
	case '(', ')', '<', '>', '[', ']', '{', '}', '/', '%':
		return true
	}
	return false
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

func (l *pdfLexer) skipSpace() {
	for l.pos < len(l.data) {
		c := l.data[l.pos]
		switch {
		case isPDFSpace(c):
			l.pos++
		case c == '%':
			for l.pos < len(l.data) && l.data[l.pos] != '\n' && l.data[l.pos] != '\r' {
				l.pos++
			}
		default:
			return
		}
	}
}

// next returns the next token; at the end of data it returns tokEOF.
func (l *pdfLexer) next() pdfTok {
	l.skipSpace()
	if l.pos >= len(l.data) {
		return pdfTok{kind: tokEOF}
	}
	c := l.data[l.pos]
	switch c {
	case '[':
		l.pos++
		return pdfTok{kind: tokArrayStart}
	case ']':
		l.pos++
		return pdfTok{kind: tokArrayEnd}
	case '{', '}', ')':
		// PostScript procedure braces and stray parentheses: skip.
		l.pos++
		return pdfTok{kind: tokKeyword, s: string(c)}
	case '<':
		if l.pos+1 < len(l.data) && l.data[l.pos+1] == '<' {
			l.pos += 2
			return pdfTok{kind: tokDictStart}
		}
		return l.hexString()
	case '>':
		l.pos++
		if l.pos < len(l.data) && l.data[l.pos] == '>' {
			l.pos++
			return pdfTok{kind: tokDictEnd}
		}
		return pdfTok{kind: tokKeyword, s: ">"}
	case '(':
		return l.literalString()
	case '/':
		l.pos++
		return pdfTok{kind: tokName, s: l.name()}
	}
	start := l.pos
	for l.pos < len(l.data) && !isPDFSpace(l.data[l.pos]) && !isPDFDelim(l.data[l.pos]) {
		l.pos++
	}
	word := l.data[start:l.pos]
	if n, isInt, ok := parsePDFNumber(word); ok {
		return pdfTok{kind: tokNum, num: n, int: isInt}
	}
	return pdfTok{kind: tokKeyword, s: string(word)}
}

func parsePDFNumber(w []byte) (float64, bool, bool) {
	if len(w) == 0 || len(w) > 32 {
		return 0, false, false
	}
	digits, dots := 0, 0
	for i, c := range w {
		switch {
		case '0' <= c && c <= '9':
			digits++
		case c == '.':
			dots++
		case (c == '-' || c == '+') && i == 0:
		default:
			return 0, false, false
		}
	}
	if digits == 0 || dots > 1 {
		return 0, false, false
	}
	if dots == 0 {
		if n, err := strconv.ParseInt(string(w), 10, 64); err == nil {
			return float64(n), true, true
		}
	}
	f, err := strconv.ParseFloat(string(w), 64)
	if err != nil {
		return 0, false, false
	}
	return f, false, true
}

func (l *pdfLexer) name() string {
	var b []byte
	for l.pos < len(l.data) {
		c := l.data[l.pos]
		if isPDFSpace(c) || isPDFDelim(c) {
			break
		}
		l.pos++
		if c == '#' && l.pos+1 < len(l.data) {
			if h, lo := hexVal(l.data[l.pos]), hexVal(l.data[l.pos+1]); h >= 0 && lo >= 0 {
				b = append(b, byte(h<<4|lo))
				l.pos += 2
				continue
			}
		}
		b = append(b, c)
	}
	return string(b)
}

func (l *pdfLexer) hexString() pdfTok {
	l.pos++ // <
	var b []byte
	hi := -1
	for l.pos < len(l.data) {
		c := l.data[l.pos]
		l.pos++
		if c == '>' {
			break
		}
		v := hexVal(c)
		if v < 0 {
			continue
		}
		if hi < 0 {
			hi = v
		} else {
			b = append(b, byte(hi<<4|v))
			hi = -1
		}
	}
	if hi >= 0 {
		b = append(b, byte(hi<<4))
	}
	return pdfTok{kind: tokString, s: string(b)}
}

func (l *pdfLexer) literalString() pdfTok {
	l.pos++ // (
	var b []byte
	depth := 1
	for l.pos < len(l.data) {
		c := l.data[l.pos]
		l.pos++
		switch c {
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return pdfTok{kind: tokString, s: string(b)}
			}
		case '\\':
			if l.pos >= len(l.data) {
				continue
			}
			c = l.data[l.pos]
			l.pos++
			switch c {
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 't':
				c = '\t'
			case 'b':
				c = '\b'
			case 'f':
				c = '\f'
			case '\r':
				if l.pos < len(l.data) && l.data[l.pos] == '\n' {
					l.pos++
				}
				continue
			case '\n':
				continue
			case '0', '1', '2', '3', '4', '5', '6', '7':
				v := int(c - '0')
				for i := 0; i < 2 && l.pos < len(l.data) && '0' <= l.data[l.pos] && l.data[l.pos] <= '7'; i++ {
					v = v*8 + int(l.data[l.pos]-'0')
					l.pos++
				}
				c = byte(v)
			}
		}
		b = append(b, c)
	}
	return pdfTok{kind: tokString, s: string(b)}
}

// pdfRef is an indirect reference "id gen R".
type pdfRef struct{ id, gen int64 }

// parseObject parses one object: numbers (int64 or float64), names (pdfName),
// strings (string), arrays ([]any), dictionaries (map[string]any),
// references (pdfRef) and keywords (pdfKeyword). Nesting deeper than
// maxDepth gives nil.
func (l *pdfLexer) parseObject(depth int) any {
	return l.parseFrom(l.next(), depth)
}

type (
	pdfName    string
	pdfKeyword string
)

const pdfMaxDepth = 64

func (l *pdfLexer) parseFrom(t pdfTok, depth int) any {
	if depth > pdfMaxDepth {
		return nil
	}
	switch t.kind {
	case tokNum:
		if !t.int {
			return t.num
		}
		n := int64(t.num)
		// "id gen R"
		save := l.pos
		if t2 := l.next(); t2.kind == tokNum && t2.int {
			if t3 := l.next(); t3.kind == tokKeyword && t3.s == "R" {
				return pdfRef{n, int64(t2.num)}
			}
		}
		l.pos = save
		return n
	case tokName:
		return pdfName(t.s)
	case tokString:
		return t.s
	case tokKeyword:
		return pdfKeyword(t.s)
	case tokArrayStart:
		var a []any
		for {
			t := l.next()
			if t.kind == tokEOF || t.kind == tokArrayEnd {
				return a
			}
			a = append(a, l.parseFrom(t, depth+1))
		}
	case tokDictStart:
		d := map[string]any{}
		for {
			t := l.next()
			if t.kind == tokEOF || t.kind == tokDictEnd {
				return d
			}
			if t.kind != tokName {
				continue
			}
			d[t.s] = l.parseObject(depth + 1)
		}
	}
	return nil
}

// parseIndirect parses "id gen obj <object>" at offset off and returns the
// object and the lexer positioned after it.
func parseIndirect(data []byte, off int64) (any, *pdfLexer, bool) {
	if off < 0 || off >= int64(len(data)) {
		return nil, nil, false
	}
	l := &pdfLexer{data: data, pos: int(off)}
	if t := l.next(); t.kind != tokNum || !t.int {
		return nil, nil, false
	}
	if t := l.next(); t.kind != tokNum || !t.int {
		return nil, nil, false
	}
	if t := l.next(); t.kind != tokKeyword || t.s != "obj" {
		return nil, nil, false
	}
	return l.parseObject(0), l, true
}

// streamData returns the raw bytes of the stream whose dictionary the lexer
// l has just parsed, given its length.
func streamData(l *pdfLexer, length int64) ([]byte, bool) {
	save := l.pos
	if t := l.next(); t.kind != tokKeyword || t.s != "stream" {
		l.pos = save
		return nil, false
	}
	p := l.pos
	if p < len(l.data) && l.data[p] == '\r' {
		p++
	}
	if p < len(l.data) && l.data[p] == '\n' {
		p++
	}
	if length < 0 || int64(p)+length > int64(len(l.data)) {
		return nil, false
	}
	return l.data[p : int64(p)+length], true
}

// hexHang reports whether data ends with an unterminated hex string ("<"
// followed by nothing but hex digits and white space): the PDF library's
// lexer loops forever on that at the end of an object or CMap stream.
func hexHang(data []byte) bool {
	i := bytes.LastIndexByte(data, '<')
	if i < 0 {
		return false
	}
	for _, c := range data[i+1:] {
		if !isPDFSpace(c) && hexVal(c) < 0 {
			return false
		}
	}
	return true
}
