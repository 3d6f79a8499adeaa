package api

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"
	"unicode"
)

// The OpenAPI document's schemas are generated from the wire types by
// reflection, as spec/schema.go generates the YAML schema from the spec
// types: a hand-kept copy drifted from what the API returned (the Agent and
// Run schemas had lost half their fields), a generated one cannot.

// schemaNames names the wire types' components; other named structs get
// their Go name with the first letter raised and "Response" or "JSON"
// dropped, and generic or unnamed structs are inlined.
var schemaNames = map[reflect.Type]string{
	reflect.TypeFor[errorBody]():       "Error",
	reflect.TypeFor[agentResponse]():   "Agent",
	reflect.TypeFor[teamResponse]():    "Team",
	reflect.TypeFor[runResponse]():     "Run",
	reflect.TypeFor[toolResponse]():    "ToolCall",
	reflect.TypeFor[metricsResponse](): "Metrics",
	reflect.TypeFor[sessionResponse](): "Session",
	reflect.TypeFor[modelInfo]():       "Model",
	reflect.TypeFor[contentResponse](): "Content",
	reflect.TypeFor[spanNode]():        "Span",
	reflect.TypeFor[sseEvent]():        "RunEvent",
}

// schemaGen builds schemas into components, each named type once.
type schemaGen struct {
	components map[string]any
	names      map[reflect.Type]string
}

func newSchemaGen() *schemaGen {
	return &schemaGen{components: map[string]any{}, names: map[reflect.Type]string{}}
}

// of returns the schema of v's type: a $ref for named structs.
func (g *schemaGen) of(v any) map[string]any { return g.schema(reflect.TypeOf(v)) }

var (
	timeType     = reflect.TypeFor[time.Time]()
	durationType = reflect.TypeFor[time.Duration]()
	rawType      = reflect.TypeFor[json.RawMessage]()
)

func (g *schemaGen) schema(t reflect.Type) map[string]any {
	switch t {
	case timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case durationType:
		return map[string]any{"type": "integer", "description": "nanoseconds"}
	case rawType:
		return map[string]any{}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return g.schema(t.Elem())
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		if t.Elem().Kind() == reflect.Uint8 {
			return map[string]any{"type": "string", "format": "binary"}
		}
		return map[string]any{"type": "array", "items": g.schema(t.Elem())}
	case reflect.Map:
		s := map[string]any{"type": "object"}
		if t.Elem().Kind() != reflect.Interface {
			s["additionalProperties"] = g.schema(t.Elem())
		}
		return s
	case reflect.Struct:
		name := g.componentName(t)
		if name == "" {
			return g.object(t)
		}
		if _, done := g.names[t]; !done {
			g.names[t] = name
			g.components[name] = nil // taken, for recursive types
			g.components[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	}
	return map[string]any{} // interfaces: any JSON value
}

// namer is a wire type that names its own schema: the types of other
// route groups, which schemaNames cannot list.
type namer interface{ OpenAPIName() string }

var namerType = reflect.TypeFor[namer]()

func (g *schemaGen) componentName(t reflect.Type) string {
	if n, ok := schemaNames[t]; ok {
		return n
	}
	if t.Implements(namerType) {
		return reflect.Zero(t).Interface().(namer).OpenAPIName()
	}
	n := t.Name()
	if n == "" || strings.Contains(n, "[") {
		return ""
	}
	for _, suffix := range []string{"Response", "JSON"} {
		if trimmed, ok := strings.CutSuffix(n, suffix); ok && trimmed != "" {
			n = trimmed
		}
	}
	r := []rune(n)
	r[0] = unicode.ToUpper(r[0])
	return string(r)
}

// object is the schema of a struct's JSON fields, embedded structs'
// fields included as encoding/json flattens them. Fields without omitempty
// are always sent, so responses list them as required; request types say
// which fields are required with an `openapi:"required"` tag.
func (g *schemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []string
	g.fields(t, props, &required)
	s := map[string]any{"type": "object", "properties": props}
	if len(required) > 0 {
		s["required"] = required
	}
	return s
}

func (g *schemaGen) fields(t reflect.Type, props map[string]any, required *[]string) {
	request := strings.HasSuffix(g.componentName(t), "Request")
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				g.fields(ft, props, required)
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		props[name] = g.schema(f.Type)
		omit := strings.Contains(opts, "omitempty") || strings.Contains(opts, "omitzero")
		if request && f.Tag.Get("openapi") == "required" || !request && !omit && f.Type.Kind() != reflect.Pointer {
			*required = append(*required, name)
		}
	}
}
