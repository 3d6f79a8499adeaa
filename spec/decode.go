package spec

import (
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"gopkg.in/yaml.v3"
)

// fieldInfo describes one YAML key of a spec struct, derived from struct tags:
//
//	yaml:"key"         the key (yaml:",inline" embeds a struct's keys)
//	spec:"required"    the key must be present and non-empty
//	spec:"short"       a scalar written in place of the whole struct sets this field
//	enum:"a,b"         allowed values
//	doc:"..."          description, shown in the JSON Schema
type fieldInfo struct {
	key      string
	index    []int
	typ      reflect.Type
	required bool
	short    bool
	enum     []string
	doc      string
}

type structInfo struct {
	fields []*fieldInfo
	byKey  map[string]*fieldInfo
	keys   []string
	short  *fieldInfo
}

var structInfos sync.Map // reflect.Type → *structInfo

func infoOf(t reflect.Type) *structInfo {
	if si, ok := structInfos.Load(t); ok {
		return si.(*structInfo)
	}
	si := &structInfo{byKey: map[string]*fieldInfo{}}
	collectFields(si, t, nil)
	for _, f := range si.fields {
		si.keys = append(si.keys, f.key)
		if f.short {
			si.short = f
		}
	}
	actual, _ := structInfos.LoadOrStore(t, si)
	return actual.(*structInfo)
}

func collectFields(si *structInfo, t reflect.Type, index []int) {
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		idx := append(slices.Clone(index), i)
		tag := sf.Tag.Get("yaml")
		if tag == ",inline" {
			collectFields(si, sf.Type, idx)
			continue
		}
		if tag == "" || tag == "-" {
			continue
		}
		f := &fieldInfo{key: tag, index: idx, typ: sf.Type, doc: sf.Tag.Get("doc")}
		for opt := range strings.SplitSeq(sf.Tag.Get("spec"), ",") {
			switch opt {
			case "required":
				f.required = true
			case "short":
				f.short = true
			}
		}
		if e := sf.Tag.Get("enum"); e != "" {
			f.enum = strings.Split(e, ",")
		}
		si.fields = append(si.fields, f)
		si.byKey[f.key] = f
	}
}

var (
	durationType   = reflect.TypeFor[Duration]()
	jsonSchemaType = reflect.TypeFor[JSONSchema]()
)

// maxNodes bounds the work one document may cause, so alias expansion
// ("billion laughs") cannot exhaust memory.
const maxNodes = 100_000

// maxDepth bounds nesting. yaml.v3 accepts 10,000 levels, and object paths grow
// with depth, so deep documents would cost quadratic time and memory; no spec
// needs more than a few levels (JSON Schemas included).
const maxDepth = 64

// decoder walks one document's node tree into a typed struct, checking its shape
// and recording positions and interpolated sources in meta.
type decoder struct {
	meta     *Meta
	env      Env
	diags    Diagnostics
	nodes    int
	depth    int
	tooBig   bool
	noInterp map[string]bool // paths whose values are never interpolated
}

func (d *decoder) pos(n *yaml.Node) Pos {
	return Pos{File: d.meta.pos.File, Line: n.Line, Col: n.Column}
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.diags = append(d.diags, Diagnostic{Pos: d.pos(n), Path: path, Severity: Error, Msg: fmt.Sprintf(format, args...)})
}

// resolve follows aliases and charges the node budget. Callers that got a node
// must call leave when done with it, to track nesting depth.
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	if d.depth >= maxDepth {
		if !d.tooBig {
			d.tooBig = true
			d.errorf(n, path, "nesting deeper than %d levels", maxDepth)
		}
		return nil
	}
	for depth := 0; n.Kind == yaml.AliasNode && n.Alias != nil; depth++ {
		if depth > 100 {
			d.errorf(n, path, "alias chain too deep")
			return nil
		}
		n = n.Alias
	}
	d.nodes++
	if d.nodes > maxNodes {
		if !d.tooBig {
			d.tooBig = true
			d.errorf(n, path, "document too large: more than %d values after expanding aliases", maxNodes)
		}
		return nil
	}
	d.depth++
	return n
}

func (d *decoder) leave() { d.depth-- }

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string, fi *fieldInfo) {
	if n = d.resolve(n, path); n == nil {
		return
	}
	defer d.leave()
	if _, ok := d.meta.positions[path]; !ok {
		d.meta.positions[path] = d.pos(n)
	}
	t := v.Type()
	switch {
	case t == durationType:
		s, ok := d.scalarText(n, path, "a duration such as 30s or 1m30s")
		if !ok {
			return
		}
		dur, err := time.ParseDuration(s)
		if err != nil {
			d.errorf(n, path, "invalid duration %q: write a number with a unit, such as 500ms, 30s or 2m", n.Value)
			return
		}
		v.SetInt(int64(dur))
		return
	case t == approvalType:
		d.decodeApproval(n, v, path, fi)
		return
	case t == jsonSchemaType:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "expected a JSON Schema object (a mapping), got %s", describe(n))
			return
		}
		if m, ok := d.toAny(n, path).(map[string]any); ok {
			v.Set(reflect.ValueOf(JSONSchema(m)))
		}
		return
	}
	switch t.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			return
		}
		nv := reflect.New(t.Elem())
		d.decode(n, nv.Elem(), path, fi)
		v.Set(nv)
	case reflect.Struct:
		si := infoOf(t)
		if n.Kind == yaml.ScalarNode && si.short != nil && !isNull(n) {
			f := si.short
			d.decode(n, v.FieldByIndex(f.index), path+"."+f.key, f)
			return
		}
		d.decodeMapping(n, v, path, si)
	case reflect.String:
		s, ok := d.scalarText(n, path, "a string")
		if !ok {
			return
		}
		if fi != nil && len(fi.enum) > 0 && s != "" && !slices.Contains(fi.enum, s) {
			d.errorf(n, path, "invalid %s %q: must be one of %s%s", fi.key, n.Value, strings.Join(fi.enum, ", "), suggestionOnly(s, fi.enum))
			return
		}
		v.SetString(s)
	case reflect.Int:
		s, ok := d.scalarText(n, path, "an integer")
		if !ok {
			return
		}
		i, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
		if err != nil || (n.ShortTag() != "!!int" && !d.meta.Interpolated(path)) {
			d.errorf(n, path, "expected an integer, got %s", describe(n))
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		s, ok := d.scalarText(n, path, "a number")
		if !ok {
			return
		}
		f, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
		tag := n.ShortTag()
		if err != nil || (tag != "!!int" && tag != "!!float" && !d.meta.Interpolated(path)) {
			d.errorf(n, path, "expected a number, got %s", describe(n))
			return
		}
		v.SetFloat(f)
	case reflect.Bool:
		s, ok := d.scalarText(n, path, "true or false")
		if !ok {
			return
		}
		b, err := strconv.ParseBool(s)
		if err != nil || (n.ShortTag() != "!!bool" && !d.meta.Interpolated(path)) {
			d.errorf(n, path, "expected true or false, got %s", describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Slice:
		if isNull(n) {
			return
		}
		if n.Kind != yaml.SequenceNode {
			d.errorf(n, path, "expected a list, got %s", describe(n))
			return
		}
		s := reflect.MakeSlice(t, len(n.Content), len(n.Content))
		for i, c := range n.Content {
			d.decode(c, s.Index(i), indexPath(path, i), fi)
		}
		v.Set(s)
	case reflect.Map:
		if isNull(n) {
			return
		}
		if n.Kind == yaml.MappingNode && t.Elem().Kind() == reflect.Interface {
			// Free-form values (a trigger's static input), like a JSON Schema.
			if m, ok := d.toAny(n, path).(map[string]any); ok {
				v.Set(reflect.ValueOf(m))
			}
			return
		}
		if n.Kind != yaml.MappingNode {
			d.errorf(n, path, "expected a mapping, got %s", describe(n))
			return
		}
		m := reflect.MakeMapWithSize(t, len(n.Content)/2)
		for _, kv := range d.pairs(n, path) {
			ev := reflect.New(t.Elem()).Elem()
			kp := keyPath(path, kv.key.Value)
			d.decode(kv.val, ev, kp, nil)
			m.SetMapIndex(reflect.ValueOf(kv.key.Value), ev)
		}
		v.Set(m)
	default:
		panic(fmt.Sprintf("spec: unsupported field type %s", t)) // programmer error in a spec struct
	}
}

// scalarText returns the scalar's text with environment variables resolved.
func (d *decoder) scalarText(n *yaml.Node, path, want string) (string, bool) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected %s, got %s", want, describe(n))
		return "", false
	}
	if isNull(n) {
		return "", false
	}
	if n.Style != 0 {
		d.meta.styles[path] = n.Style
	}
	if d.noInterp[path] {
		return n.Value, true
	}
	s, vals, changed, err := expand(n.Value, d.env)
	if err != nil {
		d.errorf(n, path, "%v", err)
		return "", false
	}
	if changed {
		d.meta.sources[path] = n.Value
	}
	if len(vals) > 0 {
		d.meta.envValues[path] = vals
	}
	return s, true
}

type pair struct{ key, val *yaml.Node }

// pairs returns a mapping's key/value pairs with merge keys (<<) applied and
// duplicate keys reported. Keys written in the mapping override merged ones.
func (d *decoder) pairs(n *yaml.Node, path string) []pair {
	// Merge keys copy pairs: charge them to the budget too, or nested merges
	// of large mappings multiply the work without resolving many nodes.
	if d.nodes += len(n.Content) / 2; d.nodes > maxNodes {
		if !d.tooBig {
			d.tooBig = true
			d.errorf(n, path, "document too large: more than %d values after expanding aliases", maxNodes)
		}
		return nil
	}
	var own, merged []pair
	seen := map[string]*yaml.Node{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "keys must be strings, got %s", describe(k))
			continue
		}
		if k.ShortTag() == "!!merge" {
			merged = append(merged, d.mergePairs(val, path)...)
			continue
		}
		if first, dup := seen[k.Value]; dup {
			d.errorf(k, path, "duplicate key %q (first at line %d)", k.Value, first.Line)
			continue
		}
		seen[k.Value] = k
		own = append(own, pair{k, val})
	}
	for _, p := range merged {
		if _, ok := seen[p.key.Value]; !ok {
			seen[p.key.Value] = p.key
			own = append(own, p)
		}
	}
	return own
}

func (d *decoder) mergePairs(val *yaml.Node, path string) []pair {
	if val = d.resolve(val, path); val == nil {
		return nil
	}
	defer d.leave()
	switch val.Kind {
	case yaml.MappingNode:
		return d.pairs(val, path)
	case yaml.SequenceNode:
		var out []pair
		for _, c := range val.Content {
			out = append(out, d.mergePairs(c, path)...)
		}
		return out
	}
	d.errorf(val, path, "merge key << needs a mapping, got %s", describe(val))
	return nil
}

func (d *decoder) decodeMapping(n *yaml.Node, v reflect.Value, path string, si *structInfo) {
	if isNull(n) {
		n = &yaml.Node{Kind: yaml.MappingNode, Line: n.Line, Column: n.Column}
	}
	if n.Kind != yaml.MappingNode {
		what := "a mapping"
		if si.short != nil {
			what = fmt.Sprintf("a mapping or a %s name", si.short.key)
		}
		d.errorf(n, path, "expected %s, got %s", what, describe(n))
		return
	}
	present := map[string]*yaml.Node{}
	for _, kv := range d.pairs(n, path) {
		f, ok := si.byKey[kv.key.Value]
		if !ok {
			d.errorf(kv.key, path, "unknown field %q%s", kv.key.Value, didYouMean(kv.key.Value, si.keys))
			continue
		}
		present[f.key] = kv.val
		fp := path + "." + f.key
		d.meta.positions[fp] = d.pos(kv.val)
		d.decode(kv.val, v.FieldByIndex(f.index), fp, f)
	}
	for _, f := range si.fields {
		if !f.required {
			continue
		}
		val, ok := present[f.key]
		switch {
		case !ok:
			d.errorf(n, path, "missing required field %q", f.key)
		case isNull(val) || (val.Kind == yaml.ScalarNode && val.Value == ""):
			d.errorf(val, path+"."+f.key, "%s must not be empty", f.key)
		case val.Kind == yaml.SequenceNode && len(val.Content) == 0:
			d.errorf(val, path+"."+f.key, "%s must not be empty", f.key)
		}
	}
}

// toAny converts a free-form node (a JSON Schema) into JSON-like Go values,
// interpolating strings like everywhere else.
func (d *decoder) toAny(n *yaml.Node, path string) any {
	if n = d.resolve(n, path); n == nil {
		return nil
	}
	defer d.leave()
	if _, ok := d.meta.positions[path]; !ok {
		d.meta.positions[path] = d.pos(n)
	}
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for _, kv := range d.pairs(n, path) {
			m[kv.key.Value] = d.toAny(kv.val, keyPath(path, kv.key.Value))
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, c := range n.Content {
			s[i] = d.toAny(c, indexPath(path, i))
		}
		return s
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil
		case "!!bool":
			b, _ := strconv.ParseBool(n.Value)
			return b
		case "!!int", "!!float":
			var f float64
			if err := n.Decode(&f); err != nil {
				d.errorf(n, path, "invalid number %q", n.Value)
				return nil
			}
			return f
		default:
			s, _ := d.scalarText(n, path, "a string")
			return s
		}
	}
	d.errorf(n, path, "unsupported YAML value %s", describe(n))
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names a node's type and value for messages, without Go type names.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.DocumentNode:
		return "a document"
	case yaml.AliasNode:
		return "an alias"
	}
	v := n.Value
	if len(v) > 40 {
		v = v[:37] + "..."
	}
	switch n.ShortTag() {
	case "!!null":
		return "nothing (null)"
	case "!!int", "!!float":
		return "number " + v
	case "!!bool":
		return "boolean " + v
	case "!!str":
		return fmt.Sprintf("string %q", v)
	}
	return fmt.Sprintf("%s %q", strings.TrimPrefix(n.ShortTag(), "!!"), v)
}

func suggestionOnly(s string, candidates []string) string {
	if m := suggest(s, candidates); m != "" {
		return fmt.Sprintf(" (did you mean %q?)", m)
	}
	return ""
}

func indexPath(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

var plainKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]*$`)

func keyPath(path, key string) string {
	if plainKeyRE.MatchString(key) {
		return path + "." + key
	}
	return path + "[" + strconv.Quote(key) + "]"
}

// decodeApproval decodes a tool's approval: the scalar required (one policy
// with the defaults), one policy as a mapping, or a list of policies.
func (d *decoder) decodeApproval(n *yaml.Node, v reflect.Value, path string, fi *fieldInfo) {
	switch {
	case isNull(n):
	case n.Kind == yaml.ScalarNode:
		s, ok := d.scalarText(n, path, "required, a policy or a list of policies")
		if !ok {
			return
		}
		if s != ApprovalRequired {
			d.errorf(n, path, "invalid approval %q: write required, a policy (when, approvers, timeout, default, reason) or a list of policies%s", n.Value, suggestionOnly(s, []string{ApprovalRequired}))
			return
		}
		v.Set(reflect.ValueOf(ToolApproval{{}}))
	case n.Kind == yaml.MappingNode:
		var p ApprovalPolicy
		d.decodeMapping(n, reflect.ValueOf(&p).Elem(), path, infoOf(reflect.TypeFor[ApprovalPolicy]()))
		v.Set(reflect.ValueOf(ToolApproval{p}))
	case n.Kind == yaml.SequenceNode:
		a := make(ToolApproval, len(n.Content))
		for i, c := range n.Content {
			d.decode(c, reflect.ValueOf(&a[i]).Elem(), indexPath(path, i), fi)
		}
		v.Set(reflect.ValueOf(a))
	default:
		d.errorf(n, path, "expected required, a policy or a list of policies, got %s", describe(n))
	}
}
