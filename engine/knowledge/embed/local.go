package embed

import (
	"context"
	"fmt"
	"math"
	"math/bits"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/troupehq/troupe/engine/knowledge"
)

// DefaultLocalDimension is the dimension of a Local embedder when
// LocalOptions.Dimension is unset.
const DefaultLocalDimension = 768

// Feature weights. A word counts 1 and a pair of neighbouring words 0.5. The
// character n-grams of one word share 0.3 between them: each of a word's k
// n-grams weighs 0.3/√k, so the n-gram part of a word has L2 norm 0.3 however
// long the word is, and long words do not drown short ones.
const (
	wordWeight   = 1.0
	bigramWeight = 0.5
	charWeight   = 0.3
	minGram      = 3 // character n-grams, in runes, boundary markers included
	maxGram      = 5
	// maxGramRunes bounds the n-grams of one word: a longer "word" (a hash,
	// encoded data, a run of unspaced Thai) contributes only the n-grams of
	// its beginning, so no single token can flood the vector.
	maxGramRunes = 256
)

// Boundary markers around each word in the normalized buffer. Control
// characters separate words, so they never occur inside one.
const (
	markBegin = 0x02
	markEnd   = 0x03
)

// FNV-1a 64 constants. The hash is written out here, not taken from the
// runtime, so vectors are the same in every process and on every machine.
const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// Seeds separate the feature kinds, so the word "ing" and the n-gram "ing" do
// not share a dimension by construction.
var (
	seedWord   = fnv1a(fnvOffset, []byte("word"))
	seedBigram = fnv1a(fnvOffset, []byte("bigram"))
	seedGram   = fnv1a(fnvOffset, []byte("chargram"))
)

// LocalOptions configure a Local embedder.
type LocalOptions struct {
	// Dimension is the length of the vectors; default DefaultLocalDimension.
	// More dimensions mean fewer hash collisions between features.
	Dimension int
}

// Local is a knowledge.Embedder that needs no model: feature hashing over
// normalized words, word bigrams and character n-grams.
//
// A text is normalized (NFKD compatibility decomposition, accents and other
// nonspacing marks removed, lower-cased) and split into words at every rune
// that is not a letter, digit or mark; Han, Hiragana and Katakana characters
// are words of their own, since those scripts do not separate words with
// spaces. A short list of English stopwords is dropped, unless the text has
// nothing else. Each remaining word yields features: the word itself (weight
// 1), the word together with the previous remaining word (0.5), and its
// character 3- to 5-grams, with boundary markers, sharing 0.3 (each of k
// n-grams weighs 0.3/√k). The n-grams are what make "installing" and
// "installation" similar.
//
// Each distinct feature scores its mean weight times 1+ln(tf), tf being how
// often it occurs in the text (sublinear, so repetition counts but does not
// dominate), and is added to or subtracted from one dimension; dimension and
// sign come from a 64-bit FNV-1a hash of the feature's bytes. Signed hashing
// makes collisions cancel out on average instead of piling up. The vector is
// then L2-normalised. A text without any letter or digit (the empty text
// among them) gets the zero vector.
//
// The hash is fixed, so the same text gives the same vector in every process
// and on every machine (up to float rounding between CPU architectures).
// Local is safe for concurrent use.
type Local struct {
	dim  int
	name string
	pool sync.Pool // *scratch
}

var _ knowledge.Embedder = (*Local)(nil)

// NewLocal returns a Local embedder.
func NewLocal(opts LocalOptions) *Local {
	dim := opts.Dimension
	if dim <= 0 {
		dim = DefaultLocalDimension
	}
	return &Local{dim: dim, name: fmt.Sprintf("local-%d", dim)}
}

// Name implements knowledge.Embedder: "local-<dimension>".
func (l *Local) Name() string { return l.name }

// Dimension implements knowledge.Embedder.
func (l *Local) Dimension() int { return l.dim }

// Embed implements knowledge.Embedder. It checks ctx between texts.
func (l *Local) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	slab := make([]float32, len(texts)*l.dim)
	s := l.get()
	defer l.put(s)
	for i, t := range texts {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v := slab[i*l.dim : (i+1)*l.dim : (i+1)*l.dim]
		s.embed(t, v)
		out[i] = v
	}
	return out, nil
}

func (l *Local) get() *scratch {
	if s, ok := l.pool.Get().(*scratch); ok {
		return s
	}
	return &scratch{acc: make([]float64, l.dim)}
}

// Bounds on what a pooled scratch may keep, so one huge text does not pin
// its memory forever, and on the initial size of the feature table.
const (
	maxPooledBytes  = 4 << 20
	maxPooledTable  = 1 << 18 // entries, 16 bytes each
	maxInitialTable = 1 << 15
)

func (l *Local) put(s *scratch) {
	if cap(s.buf) > maxPooledBytes || cap(s.table) > maxPooledTable {
		return
	}
	l.pool.Put(s)
}

// word is one word of the normalized buffer: buf[start:end], with markBegin
// at start-1 and markEnd at end.
type word struct {
	start, end uint32
	runes      uint32
	stop       bool
}

// feature is an entry of the open-addressing table that counts features.
type feature struct {
	key uint64  // mixed hash; 0 means empty
	n   uint32  // occurrences
	w   float32 // sum of the occurrences' weights
}

// scratch is the per-call working memory, reused through a sync.Pool so that
// embedding allocates nothing per word or feature.
type scratch struct {
	buf    []byte
	words  []word
	cur    word
	inWord bool
	offs   []uint32
	table  []feature
	used   []uint32 // indices of the table's filled entries, in insertion order
	acc    []float64
}

// embed writes the vector of text into dst.
func (s *scratch) embed(text string, dst []float32) {
	s.tokenize(text)
	s.count()
	acc := s.acc[:len(dst)]
	clear(acc)
	dim := uint64(len(dst))
	for _, i := range s.used {
		e := &s.table[i]
		var wt float64
		if e.n == 1 {
			wt = float64(e.w)
		} else {
			wt = float64(e.w) * sublinear(e.n)
		}
		idx, _ := bits.Mul64(e.key, dim)
		if e.key&1 != 0 {
			acc[idx] -= wt
		} else {
			acc[idx] += wt
		}
	}
	var sum float64
	for _, x := range acc {
		sum += x * x
	}
	if sum == 0 {
		clear(dst)
		return
	}
	inv := 1 / math.Sqrt(sum)
	for i, x := range acc {
		dst[i] = float32(x * inv)
	}
}

// sublinearTable[n] is (1+ln n)/n: applied to a weight sum over n
// occurrences it gives the mean weight times 1+ln n.
var sublinearTable = func() [64]float64 {
	var t [64]float64
	for n := 1; n < len(t); n++ {
		t[n] = (1 + math.Log(float64(n))) / float64(n)
	}
	return t
}()

func sublinear(n uint32) float64 {
	if n < uint32(len(sublinearTable)) {
		return sublinearTable[n]
	}
	return (1 + math.Log(float64(n))) / float64(n)
}

// asciiFold maps an ASCII byte to its lower-case form if it belongs in a word
// (letters and digits), and to 0 if it separates words.
var asciiFold = func() [utf8.RuneSelf]byte {
	var t [utf8.RuneSelf]byte
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c
	}
	for c := byte('a'); c <= 'z'; c++ {
		t[c] = c
		t[c-'a'+'A'] = c
	}
	return t
}()

// tokenize fills buf and words with the normalized words of text.
func (s *scratch) tokenize(text string) {
	s.buf = s.buf[:0]
	s.words = s.words[:0]
	s.inWord = false
	for i := 0; i < len(text); {
		c := text[i]
		if c < utf8.RuneSelf {
			if l := asciiFold[c]; l != 0 {
				if !s.inWord {
					s.beginWord()
				}
				s.buf = append(s.buf, l)
				s.cur.runes++
			} else if s.inWord {
				s.endWord()
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(text[i:])
		if r == utf8.RuneError && size == 1 {
			s.endWord() // invalid UTF-8 separates words
			i++
			continue
		}
		// NFKD: "é" becomes "e" and a combining accent, "ﬁ" becomes "fi",
		// full-width and other compatibility forms their plain letters.
		if d := norm.NFKD.PropertiesString(text[i : i+size]).Decomposition(); d != nil {
			for len(d) > 0 {
				dr, n := utf8.DecodeRune(d)
				s.addRune(dr)
				d = d[n:]
			}
		} else {
			s.addRune(r)
		}
		i += size
	}
	s.endWord()
}

// addRune adds one fully decomposed rune.
func (s *scratch) addRune(r rune) {
	if r < utf8.RuneSelf {
		if l := asciiFold[r]; l != 0 {
			if !s.inWord {
				s.beginWord()
			}
			s.buf = append(s.buf, l)
			s.cur.runes++
		} else {
			s.endWord()
		}
		return
	}
	switch {
	case unicode.Is(unicode.Mn, r):
		// Accents and other nonspacing marks are dropped without splitting
		// the word: "café" and "cafe" are the same word.
	case unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r):
		r = unicode.ToLower(r)
		if r == 'ς' { // final sigma folds to sigma
			r = 'σ'
		}
		if unicode.In(r, unicode.Han, unicode.Hiragana, unicode.Katakana) {
			s.endWord()
			s.beginWord()
			s.buf = utf8.AppendRune(s.buf, r)
			s.cur.runes++
			s.endWord()
			return
		}
		if !s.inWord {
			s.beginWord()
		}
		s.buf = utf8.AppendRune(s.buf, r)
		s.cur.runes++
	default:
		s.endWord()
	}
}

func (s *scratch) beginWord() {
	s.buf = append(s.buf, markBegin)
	s.cur = word{start: uint32(len(s.buf))}
	s.inWord = true
}

func (s *scratch) endWord() {
	if !s.inWord {
		return
	}
	s.inWord = false
	s.cur.end = uint32(len(s.buf))
	s.buf = append(s.buf, markEnd)
	w := s.buf[s.cur.start:s.cur.end]
	if len(w) <= maxStopwordLen && int(s.cur.runes) == len(w) {
		_, s.cur.stop = stopwords[string(w)]
	}
	s.words = append(s.words, s.cur)
}

// gramCount is the number of character n-grams of a word of runes runes,
// boundary markers included.
func gramCount(runes uint32) int {
	m := int(min(runes, maxGramRunes)) + 2
	k := 0
	for n := minGram; n <= maxGram; n++ {
		if m >= n {
			k += m - n + 1
		}
	}
	return k
}

// count fills table and used with the features of words.
func (s *scratch) count() {
	keepStop := true // a text of stopwords only keeps them
	for _, w := range s.words {
		if !w.stop {
			keepStop = false
			break
		}
	}
	n := 0
	for _, w := range s.words {
		if !w.stop || keepStop {
			n += 2 + gramCount(w.runes)
		}
	}
	// Most features of a chunk are distinct, so n (an upper bound) sizes the
	// table well; a huge text starts smaller and grows as needed.
	size := 16
	for size < 2*n && size < maxInitialTable {
		size <<= 1
	}
	if cap(s.table) < size {
		s.table = make([]feature, size)
	} else {
		s.table = s.table[:size]
		clear(s.table)
	}
	s.used = s.used[:0]

	var prev uint64
	havePrev := false
	for _, w := range s.words {
		if w.stop && !keepStop {
			continue
		}
		h := fnv1a(seedWord, s.buf[w.start:w.end])
		s.add(mix(h), wordWeight)
		if havePrev {
			s.add(mix(seedBigram^bits.RotateLeft64(prev, 23)^h), bigramWeight)
		}
		prev, havePrev = h, true
		s.grams(w)
	}
}

// invSqrtTable[k] is 1/√k, for the n-gram weights of words up to 43 runes.
var invSqrtTable = func() [128]float32 {
	var t [128]float32
	for k := 1; k < len(t); k++ {
		t[k] = float32(1 / math.Sqrt(float64(k)))
	}
	return t
}()

// grams adds the character n-grams of w, markers included.
func (s *scratch) grams(w word) {
	k := gramCount(w.runes)
	if k == 0 {
		return
	}
	var wt float32
	if k < len(invSqrtTable) {
		wt = charWeight * invSqrtTable[k]
	} else {
		wt = float32(charWeight / math.Sqrt(float64(k)))
	}
	padded := s.buf[w.start-1 : w.end+1]
	m := int(min(w.runes, maxGramRunes)) + 2
	if w.runes+2 == uint32(len(padded)) { // ASCII: a rune is a byte
		for i := 0; i+minGram <= m; i++ {
			h := uint64(seedGram)
			end := min(i+maxGram, m)
			for j := i; j < end; j++ {
				h = (h ^ uint64(padded[j])) * fnvPrime
				if j-i+1 >= minGram {
					s.add(mix(h), wt)
				}
			}
		}
		return
	}
	// Rune offsets, so n-grams count runes, not bytes.
	s.offs = s.offs[:0]
	for i := range padded {
		if utf8.RuneStart(padded[i]) {
			s.offs = append(s.offs, uint32(i))
		}
	}
	s.offs = append(s.offs, uint32(len(padded)))
	for i := 0; i+minGram <= m; i++ {
		h := uint64(seedGram)
		end := min(i+maxGram, m)
		for j := i; j < end; j++ {
			for _, c := range padded[s.offs[j]:s.offs[j+1]] {
				h = (h ^ uint64(c)) * fnvPrime
			}
			if j-i+1 >= minGram {
				s.add(mix(h), wt)
			}
		}
	}
}

// add counts one occurrence of the feature with mixed hash key.
func (s *scratch) add(key uint64, w float32) {
	if key == 0 {
		key = 1
	}
	mask := len(s.table) - 1
	for i := int(key>>1) & mask; ; i = (i + 1) & mask {
		e := &s.table[i]
		if e.key == key {
			e.n++
			e.w += w
			return
		}
		if e.key == 0 {
			*e = feature{key: key, n: 1, w: w}
			s.used = append(s.used, uint32(i))
			if 2*len(s.used) > len(s.table) {
				s.grow()
			}
			return
		}
	}
}

// grow doubles the table, keeping used in insertion order so the vector
// does not depend on when the table grew.
func (s *scratch) grow() {
	old := s.table
	s.table = make([]feature, 2*len(old))
	mask := len(s.table) - 1
	for k, i := range s.used {
		e := old[i]
		j := int(e.key>>1) & mask
		for s.table[j].key != 0 {
			j = (j + 1) & mask
		}
		s.table[j] = e
		s.used[k] = uint32(j)
	}
}

// fnv1a continues an FNV-1a 64 hash from h over b.
func fnv1a(h uint64, b []byte) uint64 {
	for _, c := range b {
		h = (h ^ uint64(c)) * fnvPrime
	}
	return h
}

// mix is MurmurHash3's 64-bit finalizer: FNV-1a's high bits, which pick the
// dimension, depend weakly on the last bytes, and mix spreads every input bit
// over the whole word.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}

// maxStopwordLen is the length of the longest stopword.
const maxStopwordLen = 10

// stopwords are common English function words, which say little about what a
// text is about.
var stopwords = func() map[string]struct{} {
	m := map[string]struct{}{}
	for _, w := range []string{
		"a", "about", "after", "all", "also", "am", "an", "and", "any", "are", "as", "at",
		"be", "because", "been", "before", "being", "between", "both", "but", "by",
		"can", "could", "did", "do", "does", "doing", "during", "each", "few", "for", "from",
		"had", "has", "have", "having", "he", "her", "here", "hers", "him", "his", "how",
		"i", "if", "in", "into", "is", "it", "its", "itself", "just", "me", "more", "most", "my",
		"of", "off", "on", "once", "only", "or", "other", "our", "ours", "out", "over", "own",
		"same", "she", "should", "so", "some", "such", "than", "that", "the", "their", "theirs",
		"them", "then", "there", "these", "they", "this", "those", "through", "to", "too",
		"under", "until", "up", "very", "was", "we", "were", "what", "when", "where", "which",
		"while", "who", "whom", "why", "will", "with", "would", "you", "your", "yours",
	} {
		if len(w) > maxStopwordLen {
			panic("stopword longer than maxStopwordLen: " + w)
		}
		m[w] = struct{}{}
	}
	return m
}()
