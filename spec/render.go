package spec

import (
	"fmt"
	"reflect"
	"slices"
	"strconv"

	"gopkg.in/yaml.v3"
)

// Resolved renders a decoded document as YAML: defaults applied, empty fields
// left out, and every value that came from the environment shown as its
// ${VAR} source, so the output is safe to show to people (the console does).
func Resolved(doc Document) (string, error) {
	m := doc.Header()
	r := renderer{meta: m}
	n := r.node(reflect.ValueOf(doc).Elem(), m.Path())
	if n == nil {
		return "", nil
	}
	out, err := yaml.Marshal(n)
	if err != nil {
		return "", fmt.Errorf("rendering %s: %w", m.Path(), err)
	}
	return string(out), nil
}

type renderer struct{ meta *Meta }

// scalar returns a plain scalar node, displaying an interpolated value as its
// source. Sources are strings, so such values are always quoted as strings.
func (r renderer) scalar(path, value, tag string) *yaml.Node {
	if r.meta.Interpolated(path) {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: r.meta.Display(path, value)}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: value}
}

// node converts v, found at object path, or returns nil for an empty value.
func (r renderer) node(v reflect.Value, path string) *yaml.Node {
	t := v.Type()
	switch {
	case t == durationType:
		if v.Int() == 0 {
			return nil
		}
		return r.scalar(path, Duration(v.Int()).D().String(), "!!str")
	case t == jsonSchemaType:
		if v.Len() == 0 {
			return nil
		}
		return r.free(v.Interface(), path)
	}
	switch t.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return nil
		}
		return r.node(v.Elem(), path)
	case reflect.Struct:
		si := infoOf(t)
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, f := range si.fields {
			c := r.node(v.FieldByIndex(f.index), path+"."+f.key)
			if c == nil {
				continue
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: f.key}, c)
		}
		if len(n.Content) == 0 {
			return nil
		}
		return n
	case reflect.String:
		if v.String() == "" && !r.meta.Interpolated(path) {
			return nil
		}
		return r.scalar(path, v.String(), "!!str")
	case reflect.Int:
		if v.Int() == 0 && !r.meta.Interpolated(path) {
			return nil
		}
		return r.scalar(path, strconv.FormatInt(v.Int(), 10), "!!int")
	case reflect.Float64:
		if v.Float() == 0 && !r.meta.Interpolated(path) {
			return nil
		}
		return r.scalar(path, strconv.FormatFloat(v.Float(), 'g', -1, 64), "!!float")
	case reflect.Bool:
		if !v.Bool() && !r.meta.Interpolated(path) {
			return nil
		}
		return r.scalar(path, strconv.FormatBool(v.Bool()), "!!bool")
	case reflect.Slice:
		if v.Len() == 0 {
			return nil
		}
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for i := range v.Len() {
			c := r.node(v.Index(i), indexPath(path, i))
			if c == nil {
				c = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
			}
			n.Content = append(n.Content, c)
		}
		return n
	case reflect.Map:
		if v.Len() == 0 {
			return nil
		}
		keys := make([]string, 0, v.Len())
		for _, k := range v.MapKeys() {
			keys = append(keys, k.String())
		}
		slices.Sort(keys)
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, k := range keys {
			c := r.node(v.MapIndex(reflect.ValueOf(k).Convert(t.Key())), keyPath(path, k))
			if c == nil {
				c = &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: ""}
			}
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, c)
		}
		return n
	}
	return nil
}

// free converts the JSON-like values of a JSON Schema.
func (r renderer) free(v any, path string) *yaml.Node {
	switch x := v.(type) {
	case JSONSchema:
		return r.free(map[string]any(x), path)
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		n := &yaml.Node{Kind: yaml.MappingNode}
		for _, k := range keys {
			n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: k}, r.free(x[k], keyPath(path, k)))
		}
		return n
	case []any:
		n := &yaml.Node{Kind: yaml.SequenceNode}
		for i, e := range x {
			n.Content = append(n.Content, r.free(e, indexPath(path, i)))
		}
		return n
	case string:
		return r.scalar(path, x, "!!str")
	case bool:
		return r.scalar(path, strconv.FormatBool(x), "!!bool")
	case float64:
		return r.scalar(path, strconv.FormatFloat(x, 'g', -1, 64), "!!float")
	case nil:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: fmt.Sprint(v)}
}
