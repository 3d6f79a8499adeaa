package spec

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// File is one parsed spec file. Files and their documents are immutable once
// returned by a Loader and are shared between Sets.
type File struct {
	Path        string      `json:"path"`
	Hash        string      `json:"hash"` // sha256 of the content, hex
	Size        int         `json:"size"`
	Docs        []Document  `json:"-"`
	Diagnostics Diagnostics `json:"diagnostics"` // problems found while parsing and decoding
	// Failed is set when the file could not be parsed as YAML: none of its
	// documents are known, so the engine keeps serving the ones it had.
	Failed bool `json:"failed"`
}

// ParseFile parses one file's content into documents. It never fails: problems are
// reported in the returned File's Diagnostics.
func ParseFile(path string, data []byte, env Env) *File {
	sum := sha256.Sum256(data)
	f := &File{Path: path, Hash: hex.EncodeToString(sum[:]), Size: len(data)}
	nodes, err := parseNodes(data)
	if err != nil {
		f.Failed = true
		f.Diagnostics = Diagnostics{syntaxDiagnostic(path, err)}
		return f
	}
	for i, n := range nodes {
		doc, diags := decodeDocument(path, i, n, env)
		f.Diagnostics = append(f.Diagnostics, diags...)
		if doc != nil {
			f.Docs = append(f.Docs, doc)
		}
	}
	f.Diagnostics = f.Diagnostics.sorted()
	return f
}

// parseNodes splits a file into document nodes, skipping empty documents.
// yaml.v3 has panicked on hostile input in the past; a panic becomes an error.
func parseNodes(data []byte) (nodes []*yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return nodes, nil
			}
			return nil, err
		}
		if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
			nodes = append(nodes, n.Content[0])
		}
	}
}

var yamlLineRE = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

func syntaxDiagnostic(path string, err error) Diagnostic {
	msg := err.Error()
	line := 1
	if m := yamlLineRE.FindStringSubmatch(msg); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	} else {
		msg = strings.TrimPrefix(msg, "yaml: ")
	}
	return Diagnostic{Pos: Pos{File: path, Line: line, Col: 1}, Severity: Error, Msg: "invalid YAML: " + msg}
}

// decodeDocument decodes one document node. It returns nil when the kind cannot be
// determined, since nothing else about the document can then be checked.
func decodeDocument(path string, index int, n *yaml.Node, env Env) (Document, Diagnostics) {
	pos := Pos{File: path, Line: n.Line, Col: n.Column}
	if n.Kind != yaml.MappingNode {
		return nil, Diagnostics{{Pos: pos, Severity: Error, Msg: fmt.Sprintf("a document must be a mapping with kind and name, got %s", describe(n))}}
	}
	kinds := make([]string, len(Kinds))
	for i, k := range Kinds {
		kinds[i] = string(k)
	}
	kindNode, nameNode := lookupKey(n, "kind"), lookupKey(n, "name")
	if kindNode == nil || isNull(kindNode) {
		return nil, Diagnostics{{Pos: pos, Severity: Error, Msg: fmt.Sprintf("missing required field \"kind\" (one of %s)", strings.Join(kinds, ", "))}}
	}
	if kindNode.Kind != yaml.ScalarNode || newDocument(Kind(kindNode.Value)) == nil {
		kp := Pos{File: path, Line: kindNode.Line, Col: kindNode.Column}
		return nil, Diagnostics{{Pos: kp, Severity: Error, Msg: fmt.Sprintf("unknown kind %s%s", describeKind(kindNode), didYouMean(kindNode.Value, kinds))}}
	}
	doc := newDocument(Kind(kindNode.Value))
	m := doc.Header()
	m.Kind = Kind(kindNode.Value)
	m.pos, m.index = pos, index
	m.positions, m.sources, m.envValues, m.styles = map[string]Pos{}, map[string]string{}, map[string][]string{}, map[string]yaml.Style{}
	if nameNode != nil && nameNode.Kind == yaml.ScalarNode {
		m.Name = nameNode.Value // provisional, so the object path is right while decoding
	}
	prefix := m.Path()
	d := &decoder{meta: m, env: env, noInterp: map[string]bool{prefix + ".kind": true, prefix + ".name": true}}
	d.decode(n, reflect.ValueOf(doc).Elem(), prefix, nil)
	switch {
	case m.Name == "":
		// reported as a missing required field
	case !validName(m.Name):
		d.errorf(nameNode, prefix+".name", "invalid name %q: use lower-case letters, digits, - and _, starting with a letter or digit (at most 63 characters)", m.Name)
	}
	if m.Version != 0 && m.Version != 1 {
		d.errorf(n, prefix+".version", "unsupported version %d: this Troupe reads version 1", m.Version)
		if vp, ok := m.positions[prefix+".version"]; ok {
			d.diags[len(d.diags)-1].Pos = vp
		}
	}
	doc.applyDefaults()
	if c, ok := doc.(checker); ok && !d.tooBig {
		d.diags = append(d.diags, c.check()...)
	}
	m.diags = d.diags
	m.hash = hashDocument(doc)
	return doc, d.diags
}

func describeKind(n *yaml.Node) string {
	if n.Kind == yaml.ScalarNode {
		return strconv.Quote(n.Value)
	}
	return "(got " + describe(n) + ")"
}

func lookupKey(n *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// hashDocument hashes the decoded document's fields (not its position), so moving
// a document within or between files does not count as a change.
func hashDocument(doc Document) string {
	b, err := json.Marshal(doc)
	if err != nil {
		b = fmt.Appendf(nil, "%#v", doc)
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:12])
}

// IsSpecFile reports whether a file name is a spec file: .yaml or .yml, and not a
// hidden, backup or editor temporary file.
func IsSpecFile(name string) bool {
	if !strings.HasSuffix(name, ".yaml") && !strings.HasSuffix(name, ".yml") {
		return false
	}
	return !slices.ContainsFunc([]string{".", "#"}, func(p string) bool { return strings.HasPrefix(name, p) })
}

func hashBytes(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
