package spec_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/troupehq/troupe/spec"
)

func compileSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	var doc any
	require.NoError(t, json.Unmarshal(spec.SchemaJSON(testBuiltins), &doc))
	c := jsonschema.NewCompiler()
	require.NoError(t, c.AddResource(spec.SchemaID, doc))
	sch, err := c.Compile(spec.SchemaID)
	require.NoError(t, err)
	return sch
}

// yamlDocs decodes every document of a YAML file into JSON-compatible values.
func yamlDocs(t *testing.T, path string) []any {
	t.Helper()
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	var out []any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return out
		}
		require.NoError(t, err)
		// Round-trip through JSON so numbers and maps have the types the schema
		// validator expects.
		b, err := json.Marshal(v)
		require.NoError(t, err)
		var j any
		require.NoError(t, json.Unmarshal(b, &j))
		out = append(out, j)
	}
}

func yamlDoc(t *testing.T, src string) any {
	t.Helper()
	path := t.TempDir() + "/doc.yaml"
	require.NoError(t, os.WriteFile(path, []byte(src), 0o644))
	return yamlDocs(t, path)[0]
}

// TestSchemaMatchesGoTypes walks the Go types of every kind independently of the
// generator and checks that each YAML key is in the schema with a matching type,
// and that the schema has no key the types lack.
func TestSchemaMatchesGoTypes(t *testing.T) {
	t.Parallel()
	var sch map[string]any
	require.NoError(t, json.Unmarshal(spec.SchemaJSON(testBuiltins), &sch))
	defs := sch["$defs"].(map[string]any)
	types := map[spec.Kind]any{
		spec.KindAgent: spec.Agent{}, spec.KindTeam: spec.Team{}, spec.KindTool: spec.Tool{},
		spec.KindKnowledge: spec.Knowledge{}, spec.KindModel: spec.Model{}, spec.KindWorkflow: spec.Workflow{}, spec.KindTrigger: spec.Trigger{},
		spec.KindBudget: spec.Budget{},
	}
	require.Len(t, types, len(spec.Kinds))
	// Plus Step: workflow steps nest, so they are one definition used by $ref.
	require.Len(t, defs, len(spec.Kinds)+1)
	for kind, v := range types {
		checkStruct(t, string(kind), reflect.TypeOf(v), defs[string(kind)].(map[string]any))
	}
	checkStruct(t, "Step", reflect.TypeFor[spec.Step](), defs["Step"].(map[string]any))
}

func checkStruct(t *testing.T, where string, typ reflect.Type, s map[string]any) {
	if anyOf, ok := s["anyOf"].([]any); ok { // scalar shorthand: the object form is last
		s = anyOf[len(anyOf)-1].(map[string]any)
	}
	require.Equal(t, false, s["additionalProperties"], where)
	props := s["properties"].(map[string]any)
	keys := map[string]bool{}
	var walk func(reflect.Type)
	walk = func(typ reflect.Type) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			tag := f.Tag.Get("yaml")
			if tag == ",inline" {
				walk(f.Type)
				continue
			}
			if tag == "" || !f.IsExported() {
				continue
			}
			keys[tag] = true
			p, ok := props[tag].(map[string]any)
			require.True(t, ok, "%s.%s missing from schema", where, tag)
			checkType(t, where+"."+tag, f.Type, p)
		}
	}
	walk(typ)
	for k := range props {
		require.True(t, keys[k], "schema has %s.%s, which no Go field declares", where, k)
	}
}

func checkType(t *testing.T, where string, typ reflect.Type, p map[string]any) {
	if typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	if _, ok := p["const"]; ok || where[strings.LastIndex(where, ".")+1:] == "version" {
		return
	}
	jsonType := func() string {
		if ty, ok := p["type"].(string); ok {
			return ty
		}
		if anyOf, ok := p["anyOf"].([]any); ok {
			if ty, ok := anyOf[0].(map[string]any)["type"].(string); ok {
				return ty
			}
			if _, ok := anyOf[0].(map[string]any)["enum"]; ok {
				return "string"
			}
		}
		return ""
	}
	switch {
	case typ == reflect.TypeFor[spec.Duration]():
		require.Equal(t, "string", jsonType(), where)
	case typ == reflect.TypeFor[spec.JSONSchema]():
		require.Equal(t, "object", jsonType(), where)
	case typ == reflect.TypeFor[spec.ToolApproval]():
		// required, one policy, or a list of policies.
		anyOf := p["anyOf"].([]any)
		require.Len(t, anyOf, 3, where)
		require.Equal(t, "array", jsonType(), where)
		checkStruct(t, where+"[]", reflect.TypeFor[spec.ApprovalPolicy](), anyOf[0].(map[string]any)["items"].(map[string]any))
		checkStruct(t, where, reflect.TypeFor[spec.ApprovalPolicy](), anyOf[1].(map[string]any))
		require.Equal(t, []any{spec.ApprovalRequired}, anyOf[2].(map[string]any)["enum"], where)
	case typ.Kind() == reflect.Struct:
		checkStruct(t, where, typ, p)
	case typ.Kind() == reflect.String:
		require.Equal(t, "string", jsonType(), where)
	case typ.Kind() == reflect.Int:
		require.Equal(t, "integer", jsonType(), where)
	case typ.Kind() == reflect.Float64:
		require.Equal(t, "number", jsonType(), where)
	case typ.Kind() == reflect.Bool:
		require.Equal(t, "boolean", jsonType(), where)
	case typ.Kind() == reflect.Slice:
		require.Equal(t, "array", jsonType(), where)
	case typ.Kind() == reflect.Map:
		require.Equal(t, "object", jsonType(), where)
	default:
		t.Fatalf("%s: unexpected Go type %s", where, typ)
	}
}
