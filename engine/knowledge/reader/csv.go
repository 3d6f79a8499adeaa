package reader

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/troupehq/troupe/engine/knowledge"
)

// csvRowsPerSection is how many data rows a CSV section holds.
const csvRowsPerSection = 50

// csvDelimiters are the delimiters detectCSVDelimiter chooses among.
var csvDelimiters = []rune{',', ';', '\t', '|'}

func newCSVReader(text string, delim rune) *csv.Reader {
	r := csv.NewReader(strings.NewReader(text))
	r.Comma = delim
	r.FieldsPerRecord = -1
	r.LazyQuotes = true
	r.ReuseRecord = true
	return r
}

// detectCSVDelimiter picks the delimiter that splits the first rows into the
// most consistent number of fields (more than one), defaulting to a comma.
func detectCSVDelimiter(text string) rune {
	sample := text
	if len(sample) > 64<<10 {
		sample = sample[:64<<10]
		if i := strings.LastIndexByte(sample, '\n'); i > 0 {
			sample = sample[:i]
		}
	}
	best, bestScore := ',', 0
	for _, d := range csvDelimiters {
		r := newCSVReader(sample, d)
		first, consistent := 0, 0
		for i := 0; i < 20; i++ {
			rec, err := r.Read()
			if err != nil {
				break
			}
			if i == 0 {
				first = len(rec)
			}
			if len(rec) == first {
				consistent++
			}
		}
		if first < 2 {
			continue
		}
		// Consistency first, then the number of columns.
		if score := consistent*1000 + first; score > bestScore {
			best, bestScore = d, score
		}
	}
	return best
}

// readCSV returns the rows of a CSV file as "column: value; ..." lines, the
// first row being the header, csvRowsPerSection rows per section with the
// Heading "rows 2-51" (row numbers count records, the header being row 1).
func readCSV(text string) ([]knowledge.Section, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	r := newCSVReader(text, detectCSVDelimiter(text))
	var (
		sections []knowledge.Section
		header   []string
		lines    []string
		first    int // row number of lines[0]
		row      int
	)
	flush := func() {
		if len(lines) == 0 {
			return
		}
		heading := fmt.Sprintf("rows %d-%d", first, row)
		if first == row {
			heading = fmt.Sprintf("row %d", row)
		}
		sections = appendSection(sections, knowledge.Section{Text: strings.Join(lines, "\n"), Heading: heading})
		lines = nil
	}
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("invalid CSV: %w", err)
		}
		row++
		if header == nil {
			header = make([]string, len(rec))
			for i, h := range rec {
				header[i] = csvValue(h)
				if header[i] == "" {
					header[i] = fmt.Sprintf("column %d", i+1)
				}
			}
			continue
		}
		line := csvLine(header, rec)
		if line == "" {
			continue
		}
		if len(lines) == 0 {
			first = row
		}
		lines = append(lines, line)
		if len(lines) == csvRowsPerSection {
			flush()
		}
	}
	flush()
	if row == 1 && len(sections) == 0 {
		// A lone row: keep its values.
		return appendSection(nil, knowledge.Section{Text: strings.Join(header, "; "), Heading: "row 1"}), nil
	}
	return sections, nil
}

// csvLine formats a record as "column: value; ..." without empty values.
func csvLine(header, rec []string) string {
	var b strings.Builder
	for i, v := range rec {
		v = csvValue(v)
		if v == "" {
			continue
		}
		name := fmt.Sprintf("column %d", i+1)
		if i < len(header) {
			name = header[i]
		}
		if b.Len() > 0 {
			b.WriteString("; ")
		}
		b.WriteString(name)
		b.WriteString(": ")
		b.WriteString(v)
	}
	return b.String()
}

// csvValue trims a field and joins its lines, so each row stays on one line.
func csvValue(v string) string {
	if !strings.ContainsAny(v, "\n\r") {
		return strings.TrimSpace(v)
	}
	var parts []string
	for l := range strings.Lines(v) {
		if l = strings.TrimSpace(l); l != "" {
			parts = append(parts, l)
		}
	}
	return strings.Join(parts, " ")
}
