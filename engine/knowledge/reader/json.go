package reader

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/troupehq/troupe/engine/knowledge"
)

// jsonLeaf is one flattened value: "path.to.key: value".
type jsonLeaf struct{ path, value string }

// jsonValue is a flattened top-level value or element of a top-level array.
type jsonValue struct {
	object bool
	leaves []jsonLeaf
}

// jsonDoc is a parsed JSON document: its top-level value, or the elements of
// its top-level array (or of its lines, for JSON Lines).
type jsonDoc struct {
	array  bool
	values []jsonValue
}

// parseJSON parses a JSON document, or a sequence of JSON values (JSON
// Lines), which is read as an array of them.
func parseJSON(text string) (jsonDoc, error) {
	dec := json.NewDecoder(strings.NewReader(text))
	var raws []json.RawMessage
	for {
		// Decoding into a RawMessage validates the value and bounds its
		// nesting depth before the recursive flattening below.
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return jsonDoc{}, err
		}
		raws = append(raws, raw)
	}
	if len(raws) == 0 {
		return jsonDoc{}, errors.New("no JSON value")
	}
	if len(raws) > 1 {
		doc := jsonDoc{array: true}
		for _, raw := range raws {
			v, err := flattenJSON(raw)
			if err != nil {
				return jsonDoc{}, err
			}
			doc.values = append(doc.values, v)
		}
		return doc, nil
	}
	raw := bytes.TrimSpace(raws[0])
	if len(raw) == 0 || raw[0] != '[' {
		v, err := flattenJSON(raw)
		return jsonDoc{values: []jsonValue{v}}, err
	}
	dec = json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if _, err := dec.Token(); err != nil { // [
		return jsonDoc{}, err
	}
	doc := jsonDoc{array: true}
	for dec.More() {
		var v jsonValue
		if err := flattenValue(dec, "", &v, true); err != nil {
			return jsonDoc{}, err
		}
		doc.values = append(doc.values, v)
	}
	return doc, nil
}

func flattenJSON(raw []byte) (jsonValue, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v jsonValue
	err := flattenValue(dec, "", &v, true)
	return v, err
}

// flattenValue reads one value from dec and appends its leaves under path.
func flattenValue(dec *json.Decoder, path string, v *jsonValue, top bool) error {
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch t := tok.(type) {
	case json.Delim:
		if top {
			v.object = t == '{'
		}
		n := 0
		for ; dec.More(); n++ {
			child := path + "[" + strconv.Itoa(n) + "]"
			if t == '{' {
				key, err := dec.Token()
				if err != nil {
					return err
				}
				k, _ := key.(string)
				child = k
				if path != "" {
					child = path + "." + k
				}
			}
			if err := flattenValue(dec, child, v, false); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil { // } or ]
			return err
		}
		if n == 0 {
			v.leaves = append(v.leaves, jsonLeaf{path, map[json.Delim]string{'{': "{}", '[': "[]"}[t]})
		}
	case string:
		v.leaves = append(v.leaves, jsonLeaf{path, t})
	case json.Number:
		v.leaves = append(v.leaves, jsonLeaf{path, t.String()})
	case bool:
		v.leaves = append(v.leaves, jsonLeaf{path, strconv.FormatBool(t)})
	case nil:
		v.leaves = append(v.leaves, jsonLeaf{path, "null"})
	default:
		return fmt.Errorf("unexpected JSON token %v", tok)
	}
	return nil
}

// readJSON flattens a JSON document into "path.to.key: value" lines. A
// top-level array of objects gives one section per element with the Heading
// "[i]" and paths relative to the element; anything else is one section.
func readJSON(text string) ([]knowledge.Section, error) {
	if strings.TrimSpace(text) == "" {
		return nil, nil
	}
	doc, err := parseJSON(text)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	perElement := doc.array && len(doc.values) > 0
	for _, v := range doc.values {
		perElement = perElement && v.object
	}
	if perElement {
		var sections []knowledge.Section
		for i, v := range doc.values {
			sections = appendSection(sections, knowledge.Section{Text: jsonLines(v.leaves, ""), Heading: "[" + strconv.Itoa(i) + "]"})
		}
		return sections, nil
	}
	var b strings.Builder
	for i, v := range doc.values {
		prefix := ""
		if doc.array {
			prefix = "[" + strconv.Itoa(i) + "]"
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(jsonLines(v.leaves, prefix))
	}
	return appendSection(nil, knowledge.Section{Text: b.String()}), nil
}

func jsonLines(leaves []jsonLeaf, prefix string) string {
	var b strings.Builder
	for _, l := range leaves {
		path := l.path
		switch {
		case prefix == "":
		case path == "" || path[0] == '[':
			path = prefix + path
		default:
			path = prefix + "." + path
		}
		if b.Len() > 0 {
			b.WriteByte('\n')
		}
		if path != "" {
			b.WriteString(path)
			b.WriteString(": ")
		}
		b.WriteString(l.value)
	}
	return b.String()
}
