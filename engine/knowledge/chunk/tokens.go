package chunk

import (
	"unicode"
	"unicode/utf8"
)

// Tokens approximates how many tokens a BPE tokenizer (cl100k and the like)
// makes of s. It is the one measure of size used everywhere in this package
// (Options.Size, Options.Overlap, Piece.Tokens), and the rule is:
//
//   - whitespace counts nothing (Unicode White_Space, plus U+200B zero width
//     space and U+FEFF byte order mark);
//   - a word, a maximal run of letters, digits, combining marks, connector
//     punctuation ('_') and format characters (such as U+200D zero width
//     joiner), of n UTF-8 bytes counts max(1, ceil(n/4)-1): words of up to 8
//     bytes are one token (BPE vocabularies hold common words whole), longer
//     words, identifiers and words of scripts that take several bytes per
//     letter count about one token per four bytes;
//   - a run of one repeated ASCII punctuation character ("---", "...",
//     "====") counts like a word of its length;
//   - every other character counts one: punctuation, symbols, emoji, and each
//     CJK ideograph, kana or Hangul syllable (these stand alone, as scripts
//     written without spaces are tokenized about a character at a time).
//
// So "Hello, world!" is 4 tokens, "internationalization" 4, "日本語" 3 and
// "👍" 1. English prose comes out close to cl100k; text BPE vocabularies
// handle badly (random identifiers, base64, Indic scripts) is undercounted,
// up to about half.
//
// The count is additive over whitespace and CJK characters: Tokens(a+" "+b)
// == Tokens(a)+Tokens(b), which is what lets Split add up the counts of words
// to size pieces. Tokens does not allocate; ASCII is counted with one table
// lookup per byte.
func Tokens(s string) int {
	n := 0
	w := 0      // bytes of the current word
	p := 0      // length of the current run of one ASCII punctuation character
	var pc byte // that character
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			i++
			switch asciiClass[c] {
			case classWord:
				if p > 0 {
					n, p = n+wordTokens(p), 0
				}
				w++
				continue
			case classPunct:
				if w > 0 {
					n, w = n+wordTokens(w), 0
				}
				if p > 0 && c == pc {
					p++
					continue
				}
				if p > 0 {
					n += wordTokens(p)
				}
				p, pc = 1, c
				continue
			}
		} else {
			r, size := utf8.DecodeRuneInString(s[i:])
			i += size
			if p > 0 {
				n, p = n+wordTokens(p), 0
			}
			switch {
			case isSpace(r):
			case wordRune(r):
				w += size
				continue
			default:
				n++
			}
		}
		// Whitespace or a lone character: the word (if any) ends.
		if w > 0 {
			n, w = n+wordTokens(w), 0
		}
		if p > 0 {
			n, p = n+wordTokens(p), 0
		}
	}
	if w > 0 {
		n += wordTokens(w)
	}
	if p > 0 {
		n += wordTokens(p)
	}
	return n
}

// wordTokens is the count of a word of n > 0 bytes.
func wordTokens(n int) int {
	if n <= 8 {
		return 1
	}
	return (n+3)/4 - 1
}

const (
	classPunct uint8 = iota
	classWord
	classSpace
)

// asciiClass classifies ASCII bytes for Tokens and the atom scanner.
var asciiClass = func() (t [utf8.RuneSelf]uint8) {
	for c := range t {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_':
			t[c] = classWord
		case c == ' ', c == '\t', c == '\n', c == '\v', c == '\f', c == '\r':
			t[c] = classSpace
		default:
			t[c] = classPunct
		}
	}
	return t
}()

// isSpace reports whether a (non-ASCII) rune separates words.
func isSpace(r rune) bool {
	return unicode.IsSpace(r) || r == 0x200B || r == 0xFEFF
}

// wordRune reports whether a (non-ASCII, non-space) rune continues a word.
func wordRune(r rune) bool {
	if isCJK(r) {
		return false
	}
	return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r) ||
		unicode.In(r, unicode.Pc, unicode.Cf)
}

// isCJK reports whether r is a character of a script written without spaces
// between words, tokenized (and split) a character at a time: CJK ideographs
// and their punctuation, kana, Hangul syllables. The combining kana voicing
// marks are marks, kept with the character before them.
func isCJK(r rune) bool {
	switch {
	case r < 0x2E80:
		return false
	case r <= 0x9FFF:
		return r != 0x3099 && r != 0x309A && r != 0x3000
	case r <= 0xABFF:
		return false
	case r <= 0xD7AF:
		return true // Hangul syllables
	case r >= 0xF900 && r <= 0xFAFF:
		return true // compatibility ideographs
	case r >= 0xFF66 && r <= 0xFF9D:
		return true // halfwidth katakana
	case r >= 0x20000 && r <= 0x3FFFF:
		return true // ideograph extensions
	}
	return false
}

// token returns the end of the token starting at s[i], a word, a run of one
// punctuation character or a single character, and its count under the
// Tokens rule. s[i] is not whitespace.
func token(s string, i int) (end, n int) {
	if c := s[i]; c < utf8.RuneSelf && asciiClass[c] == classPunct {
		j := i + 1
		for j < len(s) && s[j] == c {
			j++
		}
		return j, wordTokens(j - i)
	}
	j := i
	for j < len(s) {
		c := s[j]
		if c < utf8.RuneSelf {
			if asciiClass[c] != classWord {
				break
			}
			j++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[j:])
		if isSpace(r) || !wordRune(r) {
			break
		}
		j += size
	}
	if j > i {
		return j, wordTokens(j - i)
	}
	_, size := utf8.DecodeRuneInString(s[i:])
	return i + size, 1
}
