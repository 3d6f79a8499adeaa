package chunk

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Sentence ends, as recorded in splitter.end.
const (
	endNone   uint8 = iota
	endWeak         // ".", "!" or "?": a sentence end when whitespace follows
	endStrong       // "。", "！" or "？": a sentence end even without whitespace
)

// Kinds of Markdown lines.
const (
	lineText = iota
	lineHeading
	lineSetext   // a setext heading's underline
	lineFenceEnd // the closing line of a fenced code block
)

// atomize scans text into s.atoms and, for Markdown, s.groups.
func (s *splitter) atomize(text string) {
	s.atoms = s.atoms[:0]
	if est := len(text) / 5; cap(s.atoms) < est {
		s.atoms = make([]atom, 0, est)
	}
	s.groups = append(s.groups[:0], group{})
	s.end = endNone
	var (
		blank      = true  // no atom since the start or a blank line
		afterBlock = false // the previous line ended a Markdown block
		inFence    = false
		fenceChar  byte
		fenceLen   int
		setext     = -1 // first atom of the previous line if it could be a setext heading's text
	)
	for ls := 0; ls < len(text); {
		le, next := len(text), len(text)
		if i := strings.IndexByte(text[ls:], '\n'); i >= 0 {
			le, next = ls+i, ls+i+1
		}
		line := text[ls:le]
		level := lvlLine
		switch {
		case blank:
			level = lvlBlock
		case s.end != endNone:
			level = lvlSentence
		}
		code, opened, kind, n0 := false, false, lineText, len(s.atoms)
		if s.markdown {
			switch {
			case inFence:
				code, level = true, lvlLine
				if fenceClose(line, fenceChar, fenceLen) {
					inFence, kind = false, lineFenceEnd
				}
			case fenceOpen(line, &fenceChar, &fenceLen):
				inFence, opened, code, level = true, true, true, lvlBlock
			case atxHeading(line):
				kind, level = lineHeading, s.heading(n0)
			case setext >= 0 && setextUnderline(line):
				kind = lineSetext
				s.atoms[setext].level = s.heading(setext)
			case afterBlock:
				level = lvlBlock
			}
		}
		s.scanLine(text, ls, le, level, code)
		if opened && len(s.atoms) > n0 {
			s.atoms[n0].fence = true
		}
		if len(s.atoms) == n0 {
			blank, setext = true, -1
			ls = next
			continue
		}
		if kind == lineHeading || kind == lineSetext {
			s.groups[len(s.groups)-1].body = len(s.atoms)
		}
		setext = -1
		if s.markdown && kind == lineText && !code && level >= lvlBlock && !listOrQuote(line) {
			setext = n0
		}
		blank, afterBlock = false, kind != lineText
		ls = next
	}
}

// heading records that a Markdown heading starts at atom p and returns the
// level of the break before it: a new heading block, or a block break when
// the current heading block has no body yet (headings with nothing between
// them stay together).
func (s *splitter) heading(p int) uint8 {
	g := &s.groups[len(s.groups)-1]
	switch {
	case g.heading && g.body == p:
		return lvlBlock
	case g.start == p:
		g.heading = true
	default:
		s.groups = append(s.groups, group{start: p, heading: true})
	}
	return lvlHeading
}

// scanLine appends the atoms of text[i:le], a line; the first has the given
// level. In code there are no sentences.
func (s *splitter) scanLine(text string, i, le int, level uint8, code bool) {
	first, space := true, false
	for i < le {
		c := text[i]
		r, w := rune(c), 1
		if c < utf8.RuneSelf {
			if asciiClass[c] == classSpace {
				i++
				space = true
				continue
			}
		} else {
			r, w = utf8.DecodeRuneInString(text[i:le])
			if isSpace(r) {
				i += w
				space = true
				continue
			}
		}
		if !first {
			switch {
			case space && s.end != endNone, s.end == endStrong:
				level = lvlSentence
			case space:
				level = lvlSpace
			default:
				level = lvlNone
			}
		}
		start, tok := i, 0
		i += w
		word := true
		if isCJK(r) {
			// One character, with the combining marks after it; marks are
			// word characters, so when a word follows them it is part of the
			// same token and so of the same atom.
			word, tok = false, 1
			for i < le && text[i] >= utf8.RuneSelf {
				r, w := utf8.DecodeRuneInString(text[i:le])
				if !unicode.IsMark(r) {
					break
				}
				i, word = i+w, true
			}
		} else {
			i = start
		}
		if word {
			// To the next space or CJK character, counting tokens as Tokens
			// does while the text is ASCII.
			n, wl, p, pc, ascii := 0, 0, 0, byte(0), tok == 0
		scan:
			for i < le {
				c := text[i]
				if c >= utf8.RuneSelf {
					r, w := utf8.DecodeRuneInString(text[i:le])
					if isSpace(r) || isCJK(r) {
						break
					}
					i, ascii = i+w, false
					continue
				}
				switch asciiClass[c] {
				case classSpace:
					break scan
				case classWord:
					if p > 0 {
						n, p = n+wordTokens(p), 0
					}
					wl++
				default:
					if wl > 0 {
						n, wl = n+wordTokens(wl), 0
					}
					if p > 0 && c == pc {
						p++
					} else {
						if p > 0 {
							n += wordTokens(p)
						}
						p, pc = 1, c
					}
				}
				i++
			}
			if ascii {
				if wl > 0 {
					n += wordTokens(wl)
				}
				if p > 0 {
					n += wordTokens(p)
				}
				tok = n
			} else {
				tok = Tokens(text[start:i])
			}
		}
		s.addAtom(text, start, i, tok, level)
		s.end = endNone
		if !code {
			s.end = sentenceEnd(text[start:i], first)
		}
		first, space = false, false
	}
}

// addAtom appends the atom text[start:end], cut into parts of at most Size
// tokens if it is larger: at token boundaries, and inside a word only when the
// word alone is larger than Size.
func (s *splitter) addAtom(text string, start, end, tok int, level uint8) {
	if tok <= s.size {
		s.atoms = append(s.atoms, atom{start: int32(start), end: int32(end), tok: int32(tok), level: level})
		return
	}
	word := text[:end]
	from, cur := start, 0
	emit := func(to int) {
		if to > from {
			s.atoms = append(s.atoms, atom{start: int32(from), end: int32(to), tok: int32(Tokens(text[from:to])), level: level})
			level, from, cur = lvlNone, to, 0
		}
	}
	for i := start; i < end; {
		j, t := token(word, i)
		if t > s.size {
			emit(i)
			// Parts of 4*(Size+1) bytes have at most Size tokens.
			for j-i > 4*(s.size+1) {
				k := i + 4*(s.size+1)
				for k > i+1 && !utf8.RuneStart(text[k]) {
					k--
				}
				i = k
				emit(i)
			}
			t = Tokens(text[i:j])
		} else if cur+t > s.size {
			emit(i)
		}
		cur += t
		i = j
	}
	emit(end)
}

// sentenceEnd reports whether atom a, the first of its line or not, ends a
// sentence: it ends with ".", "!" or "?" (or their CJK forms), possibly
// followed by closing quotes, brackets or emphasis. A "." does not end a
// sentence after a single letter ("J."), a word with dots ("e.g.", "U.S.",
// "..."), a few common abbreviations ("Dr.", "vs.") or a number opening a
// line (an ordered list item).
func sentenceEnd(a string, first bool) uint8 {
	if c := a[len(a)-1]; c < utf8.RuneSelf && asciiClass[c] == classWord && c != '_' {
		return endNone // the common case
	}
	for len(a) > 0 {
		c := a[len(a)-1]
		if c < utf8.RuneSelf {
			if c == '"' || c == '\'' || c == ')' || c == ']' || c == '*' || c == '_' || c == '`' {
				a = a[:len(a)-1]
				continue
			}
			break
		}
		r, w := utf8.DecodeLastRuneInString(a)
		switch r {
		case '。', '！', '？', '｡':
			return endStrong
		case '”', '’', '»', '」', '』', '）':
			a = a[:len(a)-w]
			continue
		}
		return endNone
	}
	if a == "" {
		return endNone
	}
	switch a[len(a)-1] {
	case '!', '?':
		return endWeak
	case '.':
	default:
		return endNone
	}
	w := strings.TrimLeft(a[:len(a)-1], "\"'([*_`")
	switch {
	case w == "":
		return endWeak
	case strings.IndexByte(w, '.') >= 0:
		return endNone
	case len(w) == 1 && asciiClass[w[0]] == classWord:
		return endNone
	case first && allDigits(w):
		return endNone
	case abbreviation(w):
		return endNone
	}
	return endWeak
}

func allDigits(w string) bool {
	for i := 0; i < len(w); i++ {
		if w[i] < '0' || w[i] > '9' {
			return false
		}
	}
	return true
}

// abbreviations are words that a "." usually follows without ending the
// sentence.
var abbreviations = []string{"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "cf", "fig", "no", "vol", "al", "approx", "dept", "est"}

func abbreviation(w string) bool {
	if len(w) > 6 {
		return false
	}
	for _, a := range abbreviations {
		if strings.EqualFold(w, a) {
			return true
		}
	}
	return false
}

// trimIndent strips leading spaces and tabs.
func trimIndent(line string) string {
	i := 0
	for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
		i++
	}
	return line[i:]
}

// onlySpace reports whether s is spaces, tabs and carriage returns.
func onlySpace(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// atxHeading reports whether line is an ATX heading: up to three spaces, one
// to six "#" and a space or the end of the line.
func atxHeading(line string) bool {
	i := 0
	for i < len(line) && i < 3 && line[i] == ' ' {
		i++
	}
	n := 0
	for i+n < len(line) && line[i+n] == '#' {
		n++
	}
	if n == 0 || n > 6 {
		return false
	}
	rest := line[i+n:]
	return rest == "" || rest[0] == ' ' || rest[0] == '\t' || rest[0] == '\r'
}

// fenceOpen reports whether line opens a fenced code block (any indentation,
// to allow fences in list items) and records its character and length.
func fenceOpen(line string, char *byte, n *int) bool {
	line = trimIndent(line)
	if len(line) < 3 || (line[0] != '`' && line[0] != '~') {
		return false
	}
	c, k := line[0], 0
	for k < len(line) && line[k] == c {
		k++
	}
	if k < 3 || (c == '`' && strings.IndexByte(line[k:], '`') >= 0) {
		return false
	}
	*char, *n = c, k
	return true
}

// fenceClose reports whether line closes a fenced code block opened with n
// of char.
func fenceClose(line string, char byte, n int) bool {
	line = trimIndent(line)
	k := 0
	for k < len(line) && line[k] == char {
		k++
	}
	return k >= n && onlySpace(line[k:])
}

// setextUnderline reports whether line could underline a setext heading: up
// to three spaces and two or more "=" or "-".
func setextUnderline(line string) bool {
	i := 0
	for i < len(line) && i < 3 && line[i] == ' ' {
		i++
	}
	line = line[i:]
	if len(line) < 2 || (line[0] != '=' && line[0] != '-') {
		return false
	}
	k := 0
	for k < len(line) && line[k] == line[0] {
		k++
	}
	return k >= 2 && onlySpace(line[k:])
}

// listOrQuote reports whether line starts a list item, a quote or a table
// row, which a setext underline does not turn into a heading.
func listOrQuote(line string) bool {
	line = trimIndent(line)
	if line == "" {
		return false
	}
	switch line[0] {
	case '>', '|':
		return true
	case '-', '*', '+':
		return len(line) == 1 || line[1] == ' ' || line[1] == '\t'
	}
	i := 0
	for i < len(line) && i < 9 && line[i] >= '0' && line[i] <= '9' {
		i++
	}
	return i > 0 && i < len(line) && (line[i] == '.' || line[i] == ')') &&
		(i+1 == len(line) || line[i+1] == ' ' || line[i+1] == '\t')
}
