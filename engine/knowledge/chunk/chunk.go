// Package chunk splits the sections readers make of documents into pieces
// small enough to embed and retrieve.
//
// All strategies work the same way: a section's text is scanned once into
// atoms (words, each CJK character on its own) that record how strong the
// break before them is: none, space, line break, sentence end, blank line or
// Markdown block, Markdown heading. The section is then cut at the strongest
// breaks into units, a unit that is larger than Size is cut again at the next
// weaker break, and so on down to single atoms; finally consecutive units are
// merged greedily into pieces of at most Size tokens. A piece's text is the
// section's text from the start of its first unit to the end of its last, so
// line breaks, indentation and code survive unchanged, and the text between
// two pieces is whitespace only (or, with overlap, shared).
//
// Size bound: a piece has at most Size tokens (counted by Tokens), with one
// exception: in the markdown strategy a heading is kept with the start of its
// body, cutting the body's first block to fit beside it, so a piece exceeds
// Size by at most one unit when that cannot be done: by at most the body's
// first word when even that does not fit beside the heading, and by the
// heading's tokens when the body starts with a fenced code block that fits
// in Size alone (code blocks are not cut when they fit). Text without
// whitespace longer than Size tokens (a URL, minified code) is cut between
// its tokens, and a single word longer than Size tokens at a character
// boundary: the only cut inside a word.
//
// Overlap: a piece (other than the first of its section, or in markdown of its
// heading block) starts with the last units of the piece before it that
// together have at most Overlap tokens, fewer when they and the next new unit
// would not fit in Size. Units are words (fixed) or paragraphs, sentences,
// lines or words (recursive, markdown), so when the previous piece ends with
// a unit longer than Overlap there is no overlap.
package chunk

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/troupehq/troupe/engine/knowledge"
)

// Strategies.
const (
	// Fixed cuts pieces of Size tokens at word boundaries (a CJK character
	// is a word), each starting about Size-Overlap tokens after the start of
	// the previous: words are not split, so a piece may be short of Size by
	// less than a word, and the overlap is the last words of the previous
	// piece totalling at most Overlap tokens.
	Fixed = "fixed"
	// Recursive cuts at paragraphs (blank lines), then sentences, then line
	// breaks, then words, and merges adjacent units up to Size.
	Recursive = "recursive"
	// Markdown is Recursive that also knows Markdown: it never merges or
	// overlaps across headings (ATX and setext; headings with nothing between
	// them count as one), keeps a heading with the start of its body and keeps
	// fenced code blocks whole when they fit (cutting them by lines when
	// not). Nothing is prefixed to pieces: the section's Heading is the
	// metadata, headings inside its text stay in the text.
	Markdown = "markdown"
)

// Strategies are the strategies Split knows.
var Strategies = []string{Fixed, Recursive, Markdown}

// Options configure Split.
type Options struct {
	Strategy string // one of Strategies; empty means Recursive
	Size     int    // maximum tokens of a piece (see Tokens); > 0
	Overlap  int    // tokens shared by consecutive pieces; 0 <= Overlap < Size
	// MaxPieces bounds the pieces of one Split (default DefaultMaxPieces):
	// past it Split stops and returns ErrTooManyPieces instead of
	// allocating for a document that would flood the store.
	MaxPieces int
}

// DefaultMaxPieces is the default bound on the pieces of one document: a
// 50 MB text at the default size of 512 tokens makes about 25,000.
const DefaultMaxPieces = 50_000

// ErrTooManyPieces reports a document that would make more than MaxPieces
// pieces.
var ErrTooManyPieces = errors.New("too many chunks")

// Piece is a chunk's text and where it came from.
type Piece struct {
	Text    string
	Page    int
	Heading string
	Tokens  int // Tokens(Text)
}

// Split splits sections into pieces of about Size tokens with Overlap tokens
// shared by consecutive pieces of the same section (see the package
// documentation for the exact bounds). Every piece records the Page and
// Heading of its section; pieces are in section order, have no leading or
// trailing whitespace and are never empty. The pieces' texts share memory
// with the sections' texts.
func Split(sections []knowledge.Section, opts Options) ([]Piece, error) {
	s := splitter{size: opts.Size, overlap: opts.Overlap, top: lvlBlock, max: opts.MaxPieces}
	if s.max <= 0 {
		s.max = DefaultMaxPieces
	}
	switch opts.Strategy {
	case Fixed:
		s.top = lvlNone
	case Recursive, "":
	case Markdown:
		s.markdown = true
	default:
		return nil, fmt.Errorf("chunk: unknown strategy %q: use %s", opts.Strategy, strings.Join(Strategies, ", "))
	}
	if opts.Size <= 0 {
		return nil, fmt.Errorf("chunk: size must be positive, got %d", opts.Size)
	}
	if opts.Overlap < 0 || opts.Overlap >= opts.Size {
		return nil, fmt.Errorf("chunk: overlap must be at least 0 and less than size %d, got %d", opts.Size, opts.Overlap)
	}
	for _, sec := range sections {
		if len(sec.Text) > math.MaxInt32 {
			return nil, fmt.Errorf("chunk: section of %d bytes is too large", len(sec.Text))
		}
		s.section(sec)
		if len(s.out) > s.max {
			return nil, fmt.Errorf("chunk: the document makes more than %d chunks of %d tokens: %w; use a larger chunk size or split the document",
				s.max, s.size, ErrTooManyPieces)
		}
	}
	return s.out, nil
}

// Break levels, weakest first: the level of an atom is the strongest break
// between it and the atom before.
const (
	lvlNone     uint8 = iota // adjacent: CJK characters, parts of a cut word
	lvlSpace                 // whitespace
	lvlLine                  // a line break
	lvlSentence              // the end of a sentence
	lvlBlock                 // a blank line; in Markdown also a block boundary
	lvlHeading               // a Markdown heading
)

// atom is a word (or CJK character) of a section's text.
type atom struct {
	start, end int32 // byte offsets in the section's text
	tok        int32 // Tokens(text[start:end])
	level      uint8 // the break before it
	fence      bool  // it opens a Markdown fenced code block
}

// unit is a run of atoms merged whole into pieces.
type unit struct {
	start, end int // byte offsets in the section's text
	tok        int // sum of the atoms' tokens
}

// group is a Markdown heading block: atoms [start, next group's start), the
// heading lines being [start, body).
type group struct {
	start, body int
	heading     bool
}

type splitter struct {
	size, overlap int
	top           uint8 // the strongest break cut at within a section
	markdown      bool

	// Per section, reused.
	atoms  []atom
	units  []unit
	groups []group
	end    uint8 // does the last atom end a sentence: endNone, endWeak, endStrong

	out []Piece
	max int // stop merging once out holds more than max pieces
}

func (s *splitter) section(sec knowledge.Section) {
	s.atomize(sec.Text)
	if len(s.atoms) == 0 {
		return
	}
	if !s.markdown {
		s.units = s.units[:0]
		if s.top == lvlNone && cap(s.units) < len(s.atoms) {
			s.units = make([]unit, 0, len(s.atoms))
		}
		s.split(0, len(s.atoms), s.top, s.size)
		s.merge(sec)
		return
	}
	for i, g := range s.groups {
		end := len(s.atoms)
		if i+1 < len(s.groups) {
			end = s.groups[i+1].start
		}
		if g.start >= end {
			continue
		}
		s.units = s.units[:0]
		if !g.heading {
			s.split(g.start, end, lvlBlock, s.size)
			s.merge(sec)
			continue
		}
		body := min(g.body, end)
		htok := 0
		for _, a := range s.atoms[g.start:body] {
			htok += int(a.tok)
		}
		if htok <= s.size {
			s.units = append(s.units, s.unit(g.start, body, htok))
		} else {
			s.split(g.start, body, lvlBlock, s.size)
		}
		if body < end {
			// Keep the heading with the start of its body: cut the body's
			// first unit to fit beside the heading's last, and glue them. A
			// code block that fits in Size stays whole even so.
			h := len(s.units) - 1
			first := s.size - s.units[h].tok
			if s.atoms[body].fence && s.blockTokens(body, end) <= s.size {
				first = s.size
			}
			s.split(body, end, lvlBlock, first)
			s.units[h].end = s.units[h+1].end
			s.units[h].tok += s.units[h+1].tok
			s.units = append(s.units[:h+1], s.units[h+2:]...)
		}
		s.merge(sec)
	}
}

// blockTokens returns the tokens of the block starting at atom lo.
func (s *splitter) blockTokens(lo, hi int) int {
	tok := int(s.atoms[lo].tok)
	for j := lo + 1; j < hi && s.atoms[j].level < lvlBlock; j++ {
		tok += int(s.atoms[j].tok)
	}
	return tok
}

func (s *splitter) unit(lo, hi, tok int) unit {
	return unit{start: int(s.atoms[lo].start), end: int(s.atoms[hi-1].end), tok: tok}
}

// split appends the units of atoms [lo, hi): it cuts them at breaks of at
// least level, keeps the parts that fit whole and cuts the others at the
// next weaker level. The first part must fit in first tokens, the others in
// Size.
func (s *splitter) split(lo, hi int, level uint8, first int) {
	limit, start, tok := first, lo, 0
	for j := lo; j < hi; j++ {
		if j > start && s.atoms[j].level >= level {
			s.part(start, j, tok, level, limit)
			limit, start, tok = s.size, j, 0
		}
		tok += int(s.atoms[j].tok)
	}
	s.part(start, hi, tok, level, limit)
}

func (s *splitter) part(lo, hi, tok int, level uint8, limit int) {
	if tok <= limit || hi-lo == 1 || level == lvlNone {
		s.units = append(s.units, s.unit(lo, hi, tok))
		return
	}
	s.split(lo, hi, level-1, limit)
}

// merge turns s.units into pieces: as many units as fit in Size, the next
// piece starting with the last units totalling at most Overlap.
func (s *splitter) merge(sec knowledge.Section) {
	u := s.units
	for start := 0; start < len(u) && len(s.out) <= s.max; {
		end, tok := start, 0
		for end < len(u) && (end == start || tok+u[end].tok <= s.size) {
			tok += u[end].tok
			end++
		}
		// Tokens are additive across the breaks between units, so tok is
		// Tokens(text).
		text := sec.Text[u[start].start:u[end-1].end]
		s.out = append(s.out, Piece{Text: text, Page: sec.Page, Heading: sec.Heading, Tokens: tok})
		if end == len(u) {
			break
		}
		k, ov := end, 0
		for k-1 > start && ov+u[k-1].tok <= s.overlap {
			k--
			ov += u[k].tok
		}
		for k < end && ov+u[end].tok > s.size {
			ov -= u[k].tok
			k++
		}
		start = k
	}
}
