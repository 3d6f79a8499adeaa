package reader

import (
	"bytes"
	"compress/zlib"
	"errors"
	"fmt"
	"io"
	"reflect"
	"time"

	"github.com/ledongthuc/pdf"
)

// The PDF library (a fork of rsc.io/pdf) trusts its input: a hostile file
// can make it panic, which readPDF recovers, but also allocate without bound,
// recurse until the stack overflows or loop forever, which no recover
// catches. The checks here reject the structures that do that before the
// library reads them, and pdfSource bounds the reading it does.

const (
	// pdfMaxObjects bounds the cross-reference table the library allocates.
	pdfMaxObjects = 4 << 20
	// pdfMaxColumns bounds the PNG predictor row the library allocates.
	pdfMaxColumns = 1 << 20
	// pdfMaxObjStmObjects bounds the objects an object stream may declare.
	pdfMaxObjStmObjects = 1 << 20
	// pdfMaxStream bounds the decoded size of an object stream.
	pdfMaxStream = 64 << 20
)

var (
	// pdfMaxPageContent bounds the decoded content of a page, its form
	// XObjects included; the rest is ignored.
	pdfMaxPageContent int64 = 64 << 20
	// pdfTimeout bounds the time spent reading one PDF.
	pdfTimeout = 2 * time.Minute
	// pdfReadBudget bounds, with pdfReadBudgetFactor times the file size,
	// the bytes the library may read from the file: it re-reads objects
	// rather than caching them, and a loop in the file's structure makes it
	// read forever.
	pdfReadBudget       int64 = 1 << 30
	pdfReadBudgetFactor int64 = 64
)

var (
	errPDFBudget  = errors.New("the PDF's structure makes reading it too expensive")
	errPDFTimeout = errors.New("reading the PDF took too long")
)

// pdfSource is the io.ReaderAt the library reads the file through. It
// presents a PDF 2.0 (or otherwise oddly versioned) header as 1.7, which the
// library would reject, and once the read budget or the deadline is spent it
// panics on every read, which unwinds the library whatever loop it is in.
type pdfSource struct {
	data     []byte
	header   []byte // replacement for the first bytes, or nil
	budget   int64
	deadline time.Time
	calls    int
	err      error // sticky: once set, every read panics with it
}

func newPDFSource(data []byte) *pdfSource {
	s := &pdfSource{
		data:     data,
		budget:   pdfReadBudget + pdfReadBudgetFactor*int64(len(data)),
		deadline: time.Now().Add(pdfTimeout),
	}
	// The library wants "%PDF-1.[0-7]" and an end of line.
	if len(data) >= 9 && isDigit(data[5]) && data[6] == '.' && isDigit(data[7]) {
		if data[5] != '1' || data[7] > '7' || data[8] != '\r' && data[8] != '\n' {
			s.header = []byte("%PDF-1.7\n")
		}
	}
	// Trailing junk after the last %%EOF hides it from the library, which
	// only looks at the last 100 bytes.
	if i := bytes.LastIndex(data, []byte("%%EOF")); i >= 0 && len(bytes.TrimRight(data[i+5:], "\r\n\t \x00")) > 0 {
		s.data = data[:i+5]
	}
	return s
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (s *pdfSource) size() int64 { return int64(len(s.data)) }

// check returns the sticky error, setting it when the deadline has passed.
func (s *pdfSource) check() error {
	if s.err == nil && time.Now().After(s.deadline) {
		s.err = errPDFTimeout
	}
	return s.err
}

func (s *pdfSource) ReadAt(p []byte, off int64) (int, error) {
	if s.err != nil {
		panic(s.err)
	}
	s.budget -= int64(len(p))
	if s.budget < 0 {
		s.err = errPDFBudget
		panic(s.err)
	}
	if s.calls++; s.calls%64 == 0 && s.check() != nil {
		panic(s.err)
	}
	if off < 0 {
		return 0, errors.New("negative offset")
	}
	if off >= int64(len(s.data)) {
		return 0, io.EOF
	}
	n := copy(p, s.data[off:])
	if off < int64(len(s.header)) {
		copy(p, s.header[off:])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// checkXref follows the file's cross-reference sections from startxref and
// rejects sizes and ranges that would make the library allocate a huge
// table, and loops in the /Prev chain. What it cannot parse it leaves to the
// library, which fails on it too.
func checkXref(data []byte) error {
	i := bytes.LastIndex(data, []byte("startxref"))
	if i < 0 {
		return nil
	}
	l := &pdfLexer{data: data, pos: i + len("startxref")}
	t := l.next()
	if t.kind != tokNum || !t.int {
		return nil
	}
	off := int64(t.num)
	seen := map[int64]bool{}
	for hops := 0; ; hops++ {
		if seen[off] || hops > 64 {
			return errors.New("malformed PDF: cross-reference sections form a loop")
		}
		seen[off] = true
		if off < 0 || off >= int64(len(data)) {
			return nil
		}
		l := &pdfLexer{data: data, pos: int(off)}
		var dict map[string]any
		if t := l.next(); t.kind == tokKeyword && t.s == "xref" {
			for {
				t := l.next()
				if t.kind == tokKeyword && t.s == "trailer" {
					dict, _ = l.parseObject(0).(map[string]any)
					break
				}
				count := l.next()
				if t.kind != tokNum || count.kind != tokNum {
					return nil
				}
				if t.num < 0 || count.num < 0 || t.num+count.num > pdfMaxObjects {
					return fmt.Errorf("malformed PDF: cross-reference table of %.0f objects", t.num+count.num)
				}
				for k := 0; k < 3*int(count.num); k++ {
					if l.next().kind == tokEOF {
						return nil
					}
				}
			}
		} else {
			obj, _, ok := parseIndirect(data, off)
			if !ok {
				return nil
			}
			dict, _ = obj.(map[string]any)
			if err := checkXrefStream(dict); err != nil {
				return err
			}
		}
		if dict == nil {
			return nil
		}
		if size, ok := dict["Size"].(int64); ok && (size < 0 || size > pdfMaxObjects) {
			return fmt.Errorf("malformed PDF: %d objects", size)
		}
		prev, ok := dict["Prev"].(int64)
		if !ok {
			return nil
		}
		off = prev
	}
}

// checkXrefStream checks the dictionary of a cross-reference stream.
func checkXrefStream(dict map[string]any) error {
	if dict == nil {
		return nil
	}
	if index, ok := dict["Index"].([]any); ok {
		for k := 0; k+1 < len(index); k += 2 {
			start, ok1 := index[k].(int64)
			n, ok2 := index[k+1].(int64)
			if ok1 && ok2 && (start < 0 || n < 0 || start+n > pdfMaxObjects) {
				return fmt.Errorf("malformed PDF: cross-reference stream of %d objects", start+n)
			}
		}
	}
	if w, ok := dict["W"].([]any); ok {
		for _, x := range w {
			if n, ok := x.(int64); ok && (n < 0 || n > 8) {
				return fmt.Errorf("malformed PDF: cross-reference field width %d", n)
			}
		}
	}
	return checkDecodeParms(dict["DecodeParms"], nil)
}

// checkDecodeParms rejects predictor rows too wide to allocate. resolve, if
// not nil, resolves references.
func checkDecodeParms(parms any, resolve func(pdfRef) (any, bool)) error {
	var check func(x any, depth int) error
	check = func(x any, depth int) error {
		if r, ok := x.(pdfRef); ok {
			if resolve == nil || depth > 2 {
				return nil
			}
			v, ok := resolve(r)
			if !ok {
				return errors.New("malformed PDF: unresolvable stream parameters")
			}
			x = v
		}
		switch x := x.(type) {
		case map[string]any:
			c := x["Columns"]
			if r, ok := c.(pdfRef); ok && resolve != nil {
				c, _ = resolve(r)
			}
			if n, ok := c.(int64); ok && (n < 0 || n > pdfMaxColumns) {
				return fmt.Errorf("malformed PDF: predictor with %d columns", n)
			}
		case []any:
			for _, e := range x {
				if err := check(e, depth+1); err != nil {
					return err
				}
			}
		}
		return nil
	}
	return check(parms, 0)
}

// xrefEntry mirrors the library's unexported cross-reference entry.
type xrefEntry struct {
	inStream bool
	stream   uint64 // id of the object stream holding the object
	offset   int64
}

// libraryXref reads the library's cross-reference table through reflection
// (the fields are unexported; reflection only reads them). It returns nil
// when the library's layout is not the expected one.
func libraryXref(r *pdf.Reader) []xrefEntry {
	v := reflect.ValueOf(r)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return nil
	}
	x := v.Elem().FieldByName("xref")
	if x.Kind() != reflect.Slice {
		return nil
	}
	out := make([]xrefEntry, x.Len())
	for i := range out {
		e := x.Index(i)
		in, st, off := e.FieldByName("inStream"), e.FieldByName("stream"), e.FieldByName("offset")
		if in.Kind() != reflect.Bool || st.Kind() != reflect.Struct || off.Kind() != reflect.Int64 {
			return nil
		}
		id := st.FieldByName("id")
		if id.Kind() != reflect.Uint32 {
			return nil
		}
		out[i] = xrefEntry{inStream: in.Bool(), stream: id.Uint(), offset: off.Int()}
	}
	return out
}

// checkObjectStreams checks the object streams the library will read
// objects from: an object stream inside an object stream makes it recurse
// without end, a huge object count or an unterminated hex string at the end
// makes it loop without end, a loop of /Extends makes it read without end.
func checkObjectStreams(r *pdf.Reader, data []byte) error {
	xref := libraryXref(r)
	resolve := func(ref pdfRef) (any, bool) {
		if ref.id < 0 || ref.id >= int64(len(xref)) || xref[ref.id].inStream {
			return nil, false
		}
		obj, _, ok := parseIndirect(data, xref[ref.id].offset)
		return obj, ok
	}
	checked := map[uint64]bool{}
	for _, e := range xref {
		if !e.inStream || checked[e.stream] {
			continue
		}
		chain := map[uint64]bool{}
		for id := e.stream; !checked[id]; {
			checked[id], chain[id] = true, true
			if id >= uint64(len(xref)) || len(chain) > 16 {
				break
			}
			s := xref[id]
			if s.inStream {
				return errors.New("malformed PDF: object stream inside an object stream")
			}
			obj, l, ok := parseIndirect(data, s.offset)
			dict, _ := obj.(map[string]any)
			if !ok || dict == nil {
				break
			}
			n, ok := dict["N"].(int64)
			if !ok || n < 0 || n > pdfMaxObjStmObjects {
				return errors.New("malformed PDF: bad object count in an object stream")
			}
			if err := checkDecodeParms(dict["DecodeParms"], resolve); err != nil {
				return err
			}
			if content, ok := objectStreamContent(dict, l, resolve); ok && hexHang(content) {
				return errors.New("malformed PDF: unterminated string in an object stream")
			}
			ext, ok := dict["Extends"].(pdfRef)
			if !ok {
				break
			}
			if chain[uint64(ext.id)] {
				return errors.New("malformed PDF: object streams extend each other in a loop")
			}
			id = uint64(ext.id)
		}
	}
	return nil
}

// objectStreamContent decodes an object stream that is stored plain or
// with FlateDecode (and no predictor), which is all the library supports in
// practice.
func objectStreamContent(dict map[string]any, l *pdfLexer, resolve func(pdfRef) (any, bool)) ([]byte, bool) {
	length := dict["Length"]
	if r, ok := length.(pdfRef); ok {
		length, _ = resolve(r)
	}
	n, ok := length.(int64)
	if !ok {
		return nil, false
	}
	raw, ok := streamData(l, n)
	if !ok || dict["DecodeParms"] != nil {
		return nil, false
	}
	switch f := dict["Filter"].(type) {
	case nil:
		return raw, true
	case pdfName:
		if f != "FlateDecode" {
			return nil, false
		}
	case []any:
		if len(f) != 1 || f[0] != pdfName("FlateDecode") {
			return nil, false
		}
	default:
		return nil, false
	}
	zr, err := zlib.NewReader(bytes.NewReader(raw))
	if err != nil {
		return nil, false
	}
	out, _ := io.ReadAll(io.LimitReader(zr, pdfMaxStream))
	return out, true
}

// readStream returns the decoded bytes of a stream, at most limit of them
// (and whether there were more).
func readStream(v pdf.Value, limit int64) (data []byte, truncated bool, err error) {
	defer func() {
		if r := recover(); r != nil {
			data, truncated, err = nil, false, fmt.Errorf("%v", r)
		}
	}()
	if v.Kind() != pdf.Stream {
		return nil, false, nil
	}
	if f := v.Key("Filter"); f.Kind() == pdf.Array && f.Len() > 8 {
		return nil, false, errors.New("too many stream filters")
	}
	parms := v.Key("DecodeParms")
	for i := 0; i < max(parms.Len(), 1); i++ {
		p := parms
		if parms.Kind() == pdf.Array {
			p = parms.Index(i)
		}
		if c := p.Key("Columns").Int64(); c < 0 || c > pdfMaxColumns {
			return nil, false, fmt.Errorf("predictor with %d columns", c)
		}
	}
	rc := v.Reader()
	defer rc.Close()
	data, err = io.ReadAll(io.LimitReader(rc, limit+1))
	if int64(len(data)) > limit {
		return data[:limit], true, nil
	}
	if err != nil && len(data) == 0 {
		return nil, false, err
	}
	return data, false, nil
}
