package expr

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"

	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/common/types/ref"
)

// Schema is the CEL view of a JSON Schema: the type of the values valid
// against it, and the object types that type is made of. It lets the checker
// catch a misspelt field or a type error in an expression over a workflow's
// input before the workflow ever runs.
//
// The mapping, applied recursively from the root:
//
//	type: string                      string
//	type: integer                     int
//	type: number                      double
//	type: boolean                     bool
//	type: array (with items)          list(<items' type>), list(dyn) otherwise
//	type: object with properties      an object type with those fields
//	anything else                     dyn (known only at run time)
//
// An object's undeclared fields are an error only when the schema says
// additionalProperties: false; JSON Schema allows extra properties by
// default, so otherwise they are dyn, as before.
//
// At run time the value is still the map encoding/json produced: the object
// types only inform the checker (field access on a map needs no help), and
// Coerce turns JSON numbers into the ints that integer fields promise.
type Schema struct {
	typ     *Type
	objects map[string]*object
	root    *node
}

// object is one object type: its declared fields and whether others exist.
type object struct {
	fields map[string]*types.FieldType
	names  []string
	open   bool
}

// node is the schema's shape, kept for Coerce.
type node struct {
	kind  string // integer, number, array, object, or "" (left as is)
	items *node
	props map[string]*node
}

// NewSchema derives the CEL type of the values of JSON Schema s. name names
// the root object type in messages (input); nested object types are named by
// their path (input.address). The names are not identifiers, so expressions
// cannot refer to them.
func NewSchema(name string, s map[string]any) *Schema {
	sc := &Schema{objects: map[string]*object{}}
	sc.typ, sc.root = sc.derive(name, s)
	return sc
}

// Type is the CEL type of values valid against the schema.
func (s *Schema) Type() *Type { return s.typ }

// typeName is how an object type is named: "{input.address}", braces so no
// expression can name it (CEL resolves dotted identifiers as type names too).
func typeName(path string) string { return "{" + path + "}" }

func (s *Schema) derive(path string, m map[string]any) (*Type, *node) {
	if m == nil {
		return Dyn, &node{}
	}
	switch m["type"] {
	case "string":
		return String, &node{}
	case "integer":
		return Int, &node{kind: "integer"}
	case "number":
		return Double, &node{kind: "number"}
	case "boolean":
		return Bool, &node{}
	case "array":
		items, _ := m["items"].(map[string]any)
		if items == nil {
			return ListOf(Dyn), &node{}
		}
		elem, n := s.derive(path+"[]", items)
		return ListOf(elem), &node{kind: "array", items: n}
	case "object":
		props, _ := m["properties"].(map[string]any)
		if len(props) == 0 {
			return MapOf(String, Dyn), &node{}
		}
		obj := &object{fields: map[string]*types.FieldType{}, open: m["additionalProperties"] != false}
		n := &node{kind: "object", props: map[string]*node{}}
		for name, p := range props {
			ps, _ := p.(map[string]any)
			t, pn := s.derive(path+"."+name, ps)
			obj.fields[name] = &types.FieldType{Type: t}
			obj.names = append(obj.names, name)
			n.props[name] = pn
		}
		slices.Sort(obj.names)
		tn := typeName(path)
		s.objects[tn] = obj
		return types.NewObjectType(tn), n
	}
	return Dyn, &node{}
}

// Coerce returns v with the numbers of integer fields as int64, as their CEL
// type promises (encoding/json decodes every number as float64), and the
// integers of number fields as float64. A number that is not a whole number
// where the schema wants an integer is an error naming its path. Everything
// else is left as is: validating the value is the JSON Schema's job.
func (s *Schema) Coerce(v any) (any, error) { return coerce(s.root, "input", v) }

func coerce(n *node, path string, v any) (any, error) {
	if n == nil {
		return v, nil
	}
	switch n.kind {
	case "integer":
		switch x := v.(type) {
		case float64:
			if x != math.Trunc(x) || math.IsInf(x, 0) || x > math.MaxInt64 || x < math.MinInt64 {
				return nil, fmt.Errorf("%s must be an integer, got %v", path, x)
			}
			return int64(x), nil
		case int:
			return int64(x), nil
		case json.Number:
			i, err := strconv.ParseInt(string(x), 10, 64)
			if err != nil {
				return nil, fmt.Errorf("%s must be an integer, got %s", path, x)
			}
			return i, nil
		}
	case "number":
		switch x := v.(type) {
		case int:
			return float64(x), nil
		case int64:
			return float64(x), nil
		case json.Number:
			f, err := x.Float64()
			if err != nil {
				return nil, fmt.Errorf("%s must be a number, got %s", path, x)
			}
			return f, nil
		}
	case "array":
		l, ok := v.([]any)
		if !ok {
			return v, nil
		}
		out := make([]any, len(l))
		for i, e := range l {
			c, err := coerce(n.items, fmt.Sprintf("%s[%d]", path, i), e)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case "object":
		m, ok := v.(map[string]any)
		if !ok {
			return v, nil
		}
		out := make(map[string]any, len(m))
		for k, e := range m {
			c, err := coerce(n.props[k], path+"."+k, e)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	}
	return v, nil
}

// provider is CEL's type provider with the object types of the schemas of an
// environment's variables; everything else goes to CEL's own registry.
type provider struct {
	*types.Registry
	objects map[string]*object
}

var _ types.Provider = (*provider)(nil)

func newProvider(schemas []*Schema) (*provider, error) {
	p := &provider{Registry: nil, objects: map[string]*object{}}
	reg, err := types.NewRegistry()
	if err != nil {
		return nil, fmt.Errorf("create the type registry: %w", err)
	}
	p.Registry = reg
	for _, s := range schemas {
		for name, o := range s.objects {
			p.objects[name] = o
		}
	}
	return p, nil
}

// FindStructType returns the object types of the schemas.
func (p *provider) FindStructType(name string) (*types.Type, bool) {
	if _, ok := p.objects[name]; ok {
		return types.NewTypeTypeWithParam(types.NewObjectType(name)), true
	}
	return p.Registry.FindStructType(name)
}

// FindStructFieldNames returns an object type's declared fields.
func (p *provider) FindStructFieldNames(name string) ([]string, bool) {
	if o, ok := p.objects[name]; ok {
		return slices.Clone(o.names), true
	}
	return p.Registry.FindStructFieldNames(name)
}

// FindStructFieldType returns a declared field's type; an undeclared field
// is dyn when the object allows additional properties, unknown otherwise.
func (p *provider) FindStructFieldType(name, field string) (*types.FieldType, bool) {
	o, ok := p.objects[name]
	if !ok {
		return p.Registry.FindStructFieldType(name, field)
	}
	if f, ok := o.fields[field]; ok {
		return f, true
	}
	if o.open {
		return &types.FieldType{Type: Dyn}, true
	}
	return nil, false
}

// NewValue refuses to build the schemas' objects: expressions cannot name
// them, so this only guards against misuse.
func (p *provider) NewValue(name string, fields map[string]ref.Val) ref.Val {
	if _, ok := p.objects[name]; ok {
		return types.NewErr("cannot create %s values", name)
	}
	return p.Registry.NewValue(name, fields)
}
