package bm25

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/runes"
	"golang.org/x/text/transform"
	"golang.org/x/text/unicode/norm"
)

// Terms normalises text into terms:
//   - Unicode lower case, compatibility-decomposed with accents stripped
//     ("Crème" → "creme", "ﬁle" → "file");
//   - split on anything that is not a letter or a digit;
//   - Han, Hiragana and Katakana characters, written without spaces, are one
//     term each;
//   - a small English stopword list removed;
//   - words of letters only stemmed by a light suffix stemmer (plural -s/-es,
//     -ies, -ing, -ed, -ly, final -e, with a minimum stem length), so
//     "installing", "installed", "installs" and "install" are one term;
//   - numbers and mixed words ("utf8", "v2") kept as they are.
func Terms(text string) []string {
	if !isASCII(text) {
		text = fold(text)
	}
	terms := make([]string, 0, len(text)/6+1)
	start := -1 // byte offset of the current word, -1 outside words
	letters := true
	flush := func(end int) {
		if start < 0 {
			return
		}
		w := text[start:end]
		start = -1
		if stopwords[w] {
			return
		}
		if letters {
			w = stem(w)
		}
		terms = append(terms, w)
	}
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			switch {
			case 'a' <= c && c <= 'z':
				if start < 0 {
					start, letters = i, true
				}
			case '0' <= c && c <= '9':
				if start < 0 {
					start, letters = i, true
				}
				letters = false
			default:
				flush(i)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		switch {
		case isIdeograph(r):
			flush(i)
			terms = append(terms, text[i:i+size])
		case unicode.IsLetter(r):
			if start < 0 {
				start, letters = i, true
			}
		case unicode.IsMark(r):
			// Spacing marks (vowel signs of Indic scripts) belong to the word.
		case unicode.IsDigit(r) || unicode.IsNumber(r):
			if start < 0 {
				start, letters = i, true
			}
			letters = false
		default:
			flush(i)
		}
		i += size
	}
	flush(len(text))
	return terms
}

// isASCII reports text that needs no folding: ASCII without upper case.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf || ('A' <= s[i] && s[i] <= 'Z') {
			return false
		}
	}
	return true
}

// fold lower-cases text and strips accents: lower case, NFKD, drop
// nonspacing marks. ASCII text takes the fast path.
func fold(s string) string {
	s = strings.ToLower(s)
	if isASCII(s) {
		return s
	}
	// A transformer chain holds state, so each call builds its own.
	t := transform.Chain(norm.NFKD, runes.Remove(runes.In(unicode.Mn)))
	out, _, err := transform.String(t, s)
	if err != nil {
		return s
	}
	return out
}

// isIdeograph reports scripts written without spaces between words, indexed
// one character per term.
func isIdeograph(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r)
}

// minStem is the shortest stem a suffix may be stripped to.
const minStem = 3

// stem is a light English suffix stemmer for lower-case words of letters. It
// conflates the common inflections (plural, third person, -ing, -ed, -ly) and
// never produces a stem shorter than minStem; it is deliberately conservative
// compared with Porter's.
func stem(w string) string {
	if len(w) <= minStem {
		return w
	}
	// Plurals and third person.
	switch {
	case strings.HasSuffix(w, "ies") && len(w) > 4:
		w = w[:len(w)-3] + "y" // libraries → library
	case strings.HasSuffix(w, "sses"):
		w = w[:len(w)-2] // classes → class
	case len(w)-2 >= minStem && (strings.HasSuffix(w, "xes") || strings.HasSuffix(w, "ches") || strings.HasSuffix(w, "shes") || strings.HasSuffix(w, "zzes")):
		w = w[:len(w)-2] // boxes → box, matches → match
	case strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us") && !strings.HasSuffix(w, "is"):
		w = w[:len(w)-1] // installs → install, files → file
	}
	// Verb and adverb endings.
	switch {
	case strings.HasSuffix(w, "ing") && len(w)-3 >= minStem && hasVowel(w[:len(w)-3]):
		w = undouble(w[:len(w)-3]) // installing → install, running → run
	case strings.HasSuffix(w, "ied") && len(w) > 4:
		w = w[:len(w)-3] + "y" // copied → copy
	case strings.HasSuffix(w, "ed") && !strings.HasSuffix(w, "eed") && len(w)-2 >= minStem && hasVowel(w[:len(w)-2]):
		w = undouble(w[:len(w)-2]) // installed → install, stopped → stop
	case strings.HasSuffix(w, "ly") && len(w)-2 >= minStem+1 && w[len(w)-3] != 'p':
		w = w[:len(w)-2] // quickly → quick (but apply, supply, reply stay)
	}
	// A final e, so that cache, caches, cached and caching meet.
	if strings.HasSuffix(w, "e") && len(w)-1 >= minStem {
		w = w[:len(w)-1]
	}
	return w
}

func hasVowel(s string) bool {
	return strings.ContainsAny(s, "aeiouy")
}

// undouble drops one letter of a final double consonant other than l, s and
// z (running → run, but install, pass, buzz stay), unless the stem would get
// too short.
func undouble(w string) string {
	n := len(w)
	if n-1 < minStem || w[n-1] != w[n-2] {
		return w
	}
	switch w[n-1] {
	case 'a', 'e', 'i', 'o', 'u', 'l', 's', 'z':
		return w
	}
	return w[:n-1]
}

// stopwords are removed before stemming: Lucene's English set plus pronouns,
// auxiliaries and the fragments left by splitting contractions.
var stopwords = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`
		a an and are as at be but by for if in into is it no not of on or such
		that the their then there these they this to was will with
		i me my we our ours you your yours he him his she her hers its them
		what which who whom am were been being have has had do does did
		so than too very from about s t d ll m re ve
	`) {
		stopwords[w] = true
	}
}
