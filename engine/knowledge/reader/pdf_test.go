package reader

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ledongthuc/pdf"
	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/knowledge"
)

func TestReadPDFSample(t *testing.T) {
	sections := readSample(t, "manual.pdf")
	require.Len(t, sections, 2)
	require.Equal(t, knowledge.Section{Page: 1, Text: "Troupe Operator Manual\n\nChapter 1: Installation\n\n" +
		"Download the troupe binary for your platform and place it on the PATH.\n" +
		"Run \"troupe serve\" to start the server on port 8080.\n" +
		"The first start creates an administrator account."}, sections[0])
	require.Equal(t, knowledge.Section{Page: 2, Text: "Chapter 2: Configuration\n\n" +
		"Knowledge bases store uploaded documents as searchable chunks.\n" +
		"Set TROUPE_EMBEDDER to choose the embedding model.\n" +
		"Hybrid search combines vector similarity with keyword ranking.\n" +
		"The café demo shows déjà vu answers."}, sections[1])
	require.NotContains(t, sections[0].Text, "Configuration")
	require.NotContains(t, sections[1].Text, "Installation")
}

func TestLibraryXrefLayout(t *testing.T) {
	// checkObjectStreams reads the library's unexported cross-reference
	// table; fail loudly if an upgrade changes its layout.
	data := sample(t, "manual.pdf")
	r, err := pdf.NewReader(bytes.NewReader(data), int64(len(data)))
	require.NoError(t, err)
	require.NotEmpty(t, libraryXref(r))
}

// pdfObjects builds PDF files from object bodies; object i+1 is objs[i].
type pdfObjects []string

func pdfStream(dict, data string) string {
	return fmt.Sprintf("<< %s /Length %d >>\nstream\n%s\nendstream", dict, len(data), data)
}

// classic returns a PDF with a cross-reference table.
func (objs pdfObjects) classic(trailer string) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.4\n%\xe2\xe3\xcf\xd3\n")
	offsets := make([]int, len(objs))
	for i, body := range objs {
		offsets[i] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, body)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R %s >>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, trailer, xref)
	return b.Bytes()
}

// textPDF returns a PDF whose pages have the given content streams, drawn
// with Helvetica as /F1.
func textPDF(pages ...string) []byte {
	kids := make([]string, len(pages))
	objs := pdfObjects{"<< /Type /Catalog /Pages 2 0 R >>", "", "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>"}
	for i, content := range pages {
		objs = append(objs, pdfStream("", content))
		objs = append(objs, fmt.Sprintf("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> /Contents %d 0 R >>", len(objs)))
		kids[i] = fmt.Sprintf("%d 0 R", len(objs))
	}
	objs[1] = fmt.Sprintf("<< /Type /Pages /Kids [%s] /Count %d >>", strings.Join(kids, " "), len(pages))
	return objs.classic("")
}

func readPDFBytes(t *testing.T, data []byte) ([]knowledge.Section, error) {
	t.Helper()
	typ, err := Detect("x.pdf", data)
	require.NoError(t, err)
	require.Equal(t, PDF, typ)
	return Read(typ, "x.pdf", data)
}

func TestReadPDFLayout(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    string
	}{
		{"lines and paragraphs", "BT /F1 12 Tf 72 720 Td (First line) Tj 0 -14 Td (Second line) Tj 0 -40 Td (New paragraph) Tj ET", "First line\nSecond line\n\nNew paragraph"},
		{"words from positions", "BT /F1 10 Tf 72 700 Td (Hello) Tj 40 0 Td (world) Tj ET", "Hello world"},
		{"kerning is not a space", "BT /F1 10 Tf 72 700 Td [(Wo) 80 (rld) -120 (s) -300 (wide)] TJ ET", "Worlds wide"},
		{"TJ word gap", "BT /F1 10 Tf 72 700 Td [(two) -600 (words)] TJ ET", "two words"},
		{"T* and TL, quote operators", "BT /F1 10 Tf 12 TL 72 700 Td (a) Tj T* (b) Tj (c) ' 1 0 (d) \" ET", "a\nb\nc\nd"},
		{"Tm and cm", "q 2 0 0 2 0 0 cm BT /F1 10 Tf 1 0 0 1 36 350 Tm (scaled) Tj ET Q BT /F1 10 Tf 1 0 0 1 72 600 Tm (below) Tj ET", "scaled\n\nbelow"},
		{"character spacing justification", "BT /F1 10 Tf 72 700 Td 4 Tc (ab) Tj ET", "a b"},
		{"hex strings and escapes", "BT /F1 10 Tf 72 700 Td <48656c6c6f> Tj ( \\(x\\)\\101) Tj ET", "Hello (x)A"},
		{"inline image skipped", "BT /F1 10 Tf 72 700 Td (before) Tj ET BI /W 2 /H 2 /BPC 8 /CS /G ID \x00\xff(Tj)EI\x01 EI BT /F1 10 Tf 72 680 Td (after) Tj ET", "before\nafter"},
		{"marked content and dictionaries", "/Span << /ActualText (x) /MCID 0 >> BDC BT /F1 10 Tf 72 700 Td (marked) Tj ET EMC", "marked"},
		{"unknown font falls back", "BT /F9 10 Tf 72 700 Td (plain caf\\351) Tj ET", "plain café"},
		{"unterminated hex string", "BT /F1 10 Tf 72 700 Td (ok) Tj <414243", "ok"},
		{"unterminated literal string", "BT /F1 10 Tf 72 700 Td (ok) Tj (never closed", "ok"},
		{"unbalanced Q and arrays", "Q Q ] >> BT /F1 10 Tf 72 700 Td (still) Tj ET", "still"},
		{"control characters dropped", "BT /F1 10 Tf 72 700 Td (a\\000b\\007c) Tj ET", "abc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sections, err := readPDFBytes(t, textPDF(tt.content))
			require.NoError(t, err)
			require.Equal(t, []knowledge.Section{{Page: 1, Text: tt.want}}, sections)
		})
	}
}

func TestReadPDFPages(t *testing.T) {
	sections, err := readPDFBytes(t, textPDF(
		"BT /F1 10 Tf 72 700 Td (one) Tj ET",
		"q 0 0 1 rg 0 0 10 10 re f Q", // no text: skipped
		"BT /F1 10 Tf 72 700 Td (three) Tj ET",
	))
	require.NoError(t, err)
	require.Equal(t, []knowledge.Section{{Page: 1, Text: "one"}, {Page: 3, Text: "three"}}, sections)
}

func TestReadPDFNoText(t *testing.T) {
	_, err := readPDFBytes(t, textPDF("q 100 0 0 100 0 0 cm 0 g 0 0 1 1 re f Q", ""))
	require.ErrorIs(t, err, ErrNoText)
	require.ErrorContains(t, err, "OCR is not supported")
}

func TestReadPDFFormXObjects(t *testing.T) {
	objs := pdfObjects{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /Resources << /XObject << /X1 5 0 R /Loop 6 0 R >> >> /Contents 4 0 R >>",
		pdfStream("", "BT /F1 10 Tf 72 700 Td (page) Tj ET /X1 Do /Loop Do"),
		pdfStream("/Type /XObject /Subtype /Form /BBox [0 0 612 792] /Matrix [1 0 0 1 0 -100] /Resources << /Font << /F1 7 0 R >> >>", "BT /F1 10 Tf 72 700 Td (form) Tj ET"),
		// A form that draws itself: bounded by the nesting limit.
		pdfStream("/Type /XObject /Subtype /Form /BBox [0 0 1 1] /Resources << /XObject << /Loop 6 0 R >> >>", "/Loop Do"),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	sections, err := readPDFBytes(t, objs.classic(""))
	require.NoError(t, err)
	require.Equal(t, []knowledge.Section{{Page: 1, Text: "page\n\nform"}}, sections)
}

func TestReadPDFToUnicodeAndWidths(t *testing.T) {
	cmap := "/CIDInit /ProcSet findresource begin 12 dict begin begincmap\n" +
		"1 begincodespacerange <0000> <FFFF> endcodespacerange\n" +
		"2 beginbfchar <0001> <0048> <0002> <0069> endbfchar\n" +
		"1 beginbfrange <0010> <0012> <00E9> endbfrange\n" +
		"endcmap CMapName currentdict /CMap defineresource pop end end"
	objs := pdfObjects{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
		pdfStream("", "BT /F1 10 Tf 72 700 Td <00010002> Tj <0010> Tj ET"),
		"<< /Type /Font /Subtype /Type0 /BaseFont /X /Encoding /Identity-H /DescendantFonts [6 0 R] /ToUnicode 7 0 R >>",
		"<< /Type /Font /Subtype /CIDFontType2 /BaseFont /X /DW 1000 /W [1 [700 300] 16 18 500] >>",
		pdfStream("", cmap),
	}
	sections, err := readPDFBytes(t, objs.classic(""))
	require.NoError(t, err)
	// "Hi" ends at 72+10 (700+300 thousandths of 10pt): the next run
	// starts right there, so no space.
	require.Equal(t, []knowledge.Section{{Page: 1, Text: "Hié"}}, sections)
}

func TestReadPDFHostileCMaps(t *testing.T) {
	for name, cmap := range map[string]string{
		"unterminated hex string": "1 begincodespacerange <00> <FF> endcodespacerange 1 beginbfchar <41> <0042",
		"huge entry count":        "99999999999 beginbfchar endbfchar",
		"many end operators":      "10000 beginbfchar " + strings.Repeat("endbfchar ", 200),
		"wide codespace":          "1 begincodespacerange <0000000000> <FFFFFFFFFF> endcodespacerange",
	} {
		t.Run(name, func(t *testing.T) {
			objs := pdfObjects{
				"<< /Type /Catalog /Pages 2 0 R >>",
				"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
				"<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
				pdfStream("", "BT /F1 10 Tf 72 700 Td (AB) Tj ET"),
				"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /ToUnicode 6 0 R >>",
				pdfStream("", cmap),
			}
			sections, err := readPDFBytes(t, objs.classic(""))
			if err == nil {
				require.Len(t, sections, 1)
			}
		})
	}
}

func TestReadPDFMalformed(t *testing.T) {
	manual := sample(t, "manual.pdf")
	catalogPages := func(pages string) []byte {
		return pdfObjects{"<< /Type /Catalog /Pages 2 0 R >>", pages, pdfStream("", "BT /F1 10 Tf 72 700 Td (x) Tj ET")}.classic("")
	}
	tests := []struct {
		name     string
		data     []byte
		errMatch string
	}{
		{"truncated", manual[:len(manual)/2], "could not read PDF"},
		{"header only", []byte("%PDF-1.4\n"), "could not read PDF"},
		{"garbage", append([]byte("%PDF-1.7\n"), bytes.Repeat([]byte{0xde, 0xad, 0xbe, 0xef}, 300)...), "could not read PDF"},
		{"bad startxref", []byte("%PDF-1.4\n1 0 obj << >> endobj\nstartxref\n999999\n%%EOF\n"), "could not read PDF"},
		{"page tree loop", catalogPages("<< /Type /Pages /Kids [2 0 R 2 0 R] /Count 2 >>"), "page tree"},
		{"kids not pages", catalogPages("<< /Type /Pages /Kids [1 0 R] /Count 1 >>"), "no extractable text"},
		{"no pages", catalogPages("<< /Type /Pages /Kids [] /Count 0 >>"), "no extractable text"},
		{"huge xref subsection", []byte("%PDF-1.4\nxref\n900000000000 1\n0000000000 00000 n \ntrailer << /Size 1 >>\nstartxref\n9\n%%EOF\n"), "cross-reference table of"},
		{"huge trailer size", []byte("%PDF-1.4\nxref\n0 1\n0000000000 65535 f \ntrailer << /Size 99999999999 /Root 1 0 R >>\nstartxref\n9\n%%EOF\n"), "objects"},
		{"xref prev loop", []byte("%PDF-1.4\nxref\n0 1\n0000000000 65535 f \ntrailer << /Size 1 /Prev 9 >>\nstartxref\n9\n%%EOF\n"), "loop"},
		{"password", pdfObjects{"<< /Type /Catalog >>"}.classic("/Encrypt << /Filter /Standard /V 1 /R 2 /O <" + strings.Repeat("00", 32) + "> /U <" + strings.Repeat("11", 32) + "> /P -4 >> /ID [<0102> <0102>]"), "password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read(PDF, "x.pdf", tt.data)
			require.ErrorContains(t, err, tt.errMatch)
		})
	}
}

func TestReadPDFParentLoop(t *testing.T) {
	objs := pdfObjects{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		// No resources anywhere, and a /Parent that points to itself.
		"<< /Type /Page /Parent 3 0 R /Contents 4 0 R >>",
		pdfStream("", "BT /F1 10 Tf 72 700 Td (orphan) Tj ET"),
	}
	sections, err := readPDFBytes(t, objs.classic(""))
	require.NoError(t, err)
	require.Equal(t, []knowledge.Section{{Page: 1, Text: "orphan"}}, sections)
}

func TestReadPDFTolerance(t *testing.T) {
	manual := sample(t, "manual.pdf")
	want := readSample(t, "manual.pdf")

	// PDF 2.0 headers, which the library rejects, are read as 1.7.
	v2 := append([]byte("%PDF-2.0"), manual[8:]...)
	got, err := readPDFBytes(t, v2)
	require.NoError(t, err)
	require.Equal(t, want, got)

	// Junk after %%EOF.
	junk := append(append([]byte{}, manual...), bytes.Repeat([]byte("\x00junk\n"), 100)...)
	got, err = readPDFBytes(t, junk)
	require.NoError(t, err)
	require.Equal(t, want, got)
}

func TestReadPDFDecompressionBomb(t *testing.T) {
	defer func(n int64) { pdfMaxPageContent = n }(pdfMaxPageContent)
	pdfMaxPageContent = 1 << 20
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	_, _ = w.Write([]byte("BT /F1 10 Tf 72 700 Td (bomb) Tj ET\n"))
	zeros := make([]byte, 1<<20)
	for i := 0; i < 8; i++ { // 8 MiB of white space, then more text
		_, _ = w.Write(zeros)
	}
	_, _ = w.Write([]byte("BT /F1 10 Tf 72 700 Td (ignored) Tj ET\n"))
	require.NoError(t, w.Close())
	objs := pdfObjects{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 5 0 R >> >> /Contents 4 0 R >>",
		pdfStream("/Filter /FlateDecode", z.String()),
		"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
	}
	sections, err := readPDFBytes(t, objs.classic(""))
	require.NoError(t, err)
	require.Equal(t, []knowledge.Section{{Page: 1, Text: "bomb"}}, sections)
}

func TestReadPDFBudgets(t *testing.T) {
	manual := sample(t, "manual.pdf")
	defer func(b, f int64, d time.Duration) { pdfReadBudget, pdfReadBudgetFactor, pdfTimeout = b, f, d }(pdfReadBudget, pdfReadBudgetFactor, pdfTimeout)

	pdfReadBudget, pdfReadBudgetFactor = 100, 0
	_, err := Read(PDF, "x.pdf", manual)
	require.ErrorContains(t, err, "too expensive")

	pdfReadBudget, pdfReadBudgetFactor = 1<<30, 64
	pdfTimeout = -time.Second
	_, err = Read(PDF, "x.pdf", textPDF(strings.Repeat("BT /F1 10 Tf 72 700 Td (x) Tj ET\n", 5000)))
	require.ErrorContains(t, err, "too long")
}

// xrefStreamPDF returns a PDF 1.5 whose objects 1-3 (catalog, pages, page)
// are direct, object 4 is the page content, object 5 an object stream with
// the given dictionary entries and content, and whose cross-reference stream
// (object 6) lists entries, each [type, field2, field3].
func xrefStreamPDF(objStmDict, objStm string, entries func(offsets []int) [][3]int) []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.5\n")
	bodies := []string{
		"<< /Type /Catalog /Pages 2 0 R >>",
		"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 2 0 R /Resources << /Font << /F1 7 0 R >> >> /Contents 4 0 R >>",
		pdfStream("", "BT /F1 10 Tf 72 700 Td (objstm) Tj ET"),
		pdfStream("/Type /ObjStm "+objStmDict, objStm),
	}
	offsets := make([]int, len(bodies)+1)
	for i, body := range bodies {
		offsets[i+1] = b.Len()
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", i+1, body)
	}
	xref := b.Len()
	var data bytes.Buffer
	for _, e := range entries(offsets) {
		data.WriteByte(byte(e[0]))
		_ = binary.Write(&data, binary.BigEndian, uint32(e[1]))
		_ = binary.Write(&data, binary.BigEndian, uint16(e[2]))
	}
	n := data.Len() / 7
	fmt.Fprintf(&b, "6 0 obj\n%s\nendobj\nstartxref\n%d\n%%%%EOF\n",
		pdfStream(fmt.Sprintf("/Type /XRef /Size %d /W [1 4 2] /Root 1 0 R", n), data.String()), xref)
	return b.Bytes()
}

func TestReadPDFObjectStreams(t *testing.T) {
	direct := func(offsets []int) [][3]int {
		return [][3]int{{0, 0, 65535}, {1, offsets[1], 0}, {1, offsets[2], 0}, {1, offsets[3], 0}, {1, offsets[4], 0}, {1, offsets[5], 0}}
	}
	// Object 7 (a font) lives in the object stream.
	withFont := func(offsets []int) [][3]int {
		return append(direct(offsets), [3]int{0, 0, 0}, [3]int{2, 5, 0})
	}
	tests := []struct {
		name      string
		dict, stm string
		entries   func([]int) [][3]int
		errMatch  string
	}{
		{"valid", "/N 1 /First 4", "7 0 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>", withFont, ""},
		{"pages inside itself", "/N 1 /First 4", "7 0 null", func(offsets []int) [][3]int {
			e := direct(offsets)
			e[2] = [3]int{2, 2, 0} // object 2 in object stream 2
			return e
		}, "object stream inside an object stream"},
		{"object streams inside each other", "/N 1 /First 4", "7 0 null", func(offsets []int) [][3]int {
			e := withFont(offsets)
			e[5] = [3]int{2, 7, 0} // the object stream itself inside object 7's stream
			return e
		}, "object stream inside an object stream"},
		{"huge object count", "/N 99999999999 /First 4", "8 0 null", withFont, "object count"},
		{"indirect object count", "/N 1 0 R /First 4", "7 0 null", withFont, "object count"},
		{"unterminated hex string", "/N 1 /First 4", "7 0 <4142", withFont, "unterminated string"},
		{"extends itself", "/N 0 /First 4 /Extends 5 0 R", "", withFont, "loop"},
		{"wide predictor", "/N 1 /First 4 /DecodeParms << /Predictor 12 /Columns 99999999999 >>", "7 0 null", withFont, "columns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			data := xrefStreamPDF(tt.dict, tt.stm, tt.entries)
			sections, err := Read(PDF, "x.pdf", data)
			if tt.errMatch == "" {
				require.NoError(t, err)
				require.Equal(t, []knowledge.Section{{Page: 1, Text: "objstm"}}, sections)
				return
			}
			require.ErrorContains(t, err, tt.errMatch)
		})
	}
}

func TestReadPDFXrefStreamChecks(t *testing.T) {
	for name, dict := range map[string]string{
		"huge size":      "/Size 99999999999 /W [1 4 2]",
		"huge index":     "/Size 2 /Index [99999999999 2] /W [1 4 2]",
		"wide fields":    "/Size 2 /W [1 99999999 2]",
		"wide predictor": "/Size 2 /W [1 4 2] /DecodeParms << /Columns 99999999999 /Predictor 12 >>",
	} {
		t.Run(name, func(t *testing.T) {
			data := []byte("%PDF-1.5\n1 0 obj\n" + pdfStream("/Type /XRef "+dict, "\x00\x00\x00\x00\x00\xff\xff") + "\nendobj\nstartxref\n9\n%%EOF\n")
			_, err := Read(PDF, "x.pdf", data)
			require.ErrorContains(t, err, "malformed PDF")
		})
	}
}
