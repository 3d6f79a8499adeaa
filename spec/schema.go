package spec

import (
	"encoding/json"
	"reflect"
)

// SchemaID is the $id of the generated JSON Schema.
const SchemaID = "https://troupe.dev/schema/v1/troupe.schema.json"

// interpolatedRE matches a string holding ${VAR}: any typed field may be written
// that way, so the schema accepts it wherever a number or boolean is expected.
const interpolatedRE = `\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}`

// Schema returns a JSON Schema (draft 2020-12) for one spec document, derived from
// the same struct tags the decoder uses, so it cannot drift from what the loader
// accepts. Editors apply it per YAML document:
//
//	# yaml-language-server: $schema=troupe.schema.json
//
// builtins are the engine's builtin tools: a Tool document's type is http, mcp
// or one of their names.
func Schema(builtins []BuiltinTool) map[string]any {
	defs := map[string]any{}
	var allOf []any
	kinds := make([]any, len(Kinds))
	for i, k := range Kinds {
		kinds[i] = string(k)
		t := reflect.TypeOf(newDocument(k)).Elem()
		def := structSchema(t)
		def["description"] = kindDescriptions[k]
		if k == KindTool {
			types := []any{ToolHTTP, ToolMCP, ToolA2A, ToolExternal}
			for _, b := range builtins {
				types = append(types, b.Name)
			}
			props := def["properties"].(map[string]any)
			ty := props["type"].(map[string]any)
			props["type"] = map[string]any{"anyOf": []any{map[string]any{"enum": types}, map[string]any{"type": "string", "pattern": interpolatedRE}}, "description": ty["description"]}
		}
		defs[string(k)] = def
		allOf = append(allOf, map[string]any{
			"if":   map[string]any{"properties": map[string]any{"kind": map[string]any{"const": string(k)}}, "required": []any{"kind"}},
			"then": map[string]any{"$ref": "#/$defs/" + string(k)},
		})
	}
	// Steps nest (parallel, condition, loop and router hold steps): the one
	// recursive type is a definition of its own, referred to by $ref.
	step := structSchema(stepType)
	step["description"] = "One workflow step: exactly one of agent, team, workflow, parallel, condition, loop, router or approval."
	defs["Step"] = step
	return map[string]any{
		"$schema":     "https://json-schema.org/draft/2020-12/schema",
		"$id":         SchemaID,
		"title":       "Troupe spec document",
		"description": "One document of a Troupe agents.d file. Every document has kind and name.",
		"type":        "object",
		"required":    []any{"kind", "name"},
		"properties":  map[string]any{"kind": map[string]any{"enum": kinds}},
		"allOf":       allOf,
		"$defs":       defs,
	}
}

var kindDescriptions = map[Kind]string{
	KindAgent:     "An agent: a model with instructions, tools and knowledge.",
	KindTeam:      "A team of agents or teams under a leader model.",
	KindTool:      "An HTTP endpoint, an MCP server, or a configured builtin tool, that agents may call.",
	KindKnowledge: "A searchable knowledge base.",
	KindModel:     "A named model configuration.",
	KindWorkflow:  "A workflow: steps of agents, teams and nested workflows run in order, with parallel, condition, loop, router and approval steps.",
	KindTrigger:   "A schedule or a webhook that starts runs of an agent, a team or a workflow.",
}

// SchemaJSON returns Schema as indented JSON.
func SchemaJSON(builtins []BuiltinTool) []byte {
	b, err := json.MarshalIndent(Schema(builtins), "", "  ")
	if err != nil {
		panic(err) // the schema is built from plain maps; this cannot fail
	}
	return append(b, '\n')
}

var stepType = reflect.TypeFor[Step]()

func structSchema(t reflect.Type) map[string]any {
	si := infoOf(t)
	props := map[string]any{}
	var required []any
	for _, f := range si.fields {
		fs := typeSchema(f.typ, f)
		if f.doc != "" {
			fs["description"] = f.doc
		}
		if f.key == "kind" {
			fs = map[string]any{"const": t.Name(), "description": f.doc}
		}
		if f.key == "name" {
			fs["pattern"] = nameRE.String()
		}
		if f.key == "version" {
			fs = map[string]any{"enum": []any{1}, "description": f.doc}
		}
		props[f.key] = fs
		if f.required {
			required = append(required, f.key)
		}
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	if si.short != nil {
		short := typeSchema(si.short.typ, si.short)
		return map[string]any{"anyOf": []any{short, s}}
	}
	return s
}

func typeSchema(t reflect.Type, f *fieldInfo) map[string]any {
	interp := map[string]any{"type": "string", "pattern": interpolatedRE}
	switch {
	case t == durationType:
		return map[string]any{"type": "string", "pattern": `^(\$\{.*\}|[0-9.]+(ns|us|µs|ms|s|m|h)([0-9.]+(ns|us|µs|ms|s|m|h))*)$`}
	case t == jsonSchemaType:
		return map[string]any{"type": "object"}
	case t == approvalType:
		policy := structSchema(reflect.TypeFor[ApprovalPolicy]())
		return map[string]any{"anyOf": []any{map[string]any{"type": "array", "items": policy}, policy, map[string]any{"enum": []any{ApprovalRequired}}}}
	case t == stepType:
		return map[string]any{"$ref": "#/$defs/Step"}
	}
	switch t.Kind() {
	case reflect.Pointer:
		return typeSchema(t.Elem(), f)
	case reflect.Struct:
		return structSchema(t)
	case reflect.String:
		if f != nil && len(f.enum) > 0 {
			enum := make([]any, len(f.enum))
			for i, e := range f.enum {
				enum[i] = e
			}
			return map[string]any{"anyOf": []any{map[string]any{"enum": enum}, interp}}
		}
		return map[string]any{"type": "string"}
	case reflect.Int:
		return map[string]any{"anyOf": []any{map[string]any{"type": "integer"}, interp}}
	case reflect.Float64:
		return map[string]any{"anyOf": []any{map[string]any{"type": "number"}, interp}}
	case reflect.Bool:
		return map[string]any{"anyOf": []any{map[string]any{"type": "boolean"}, interp}}
	case reflect.Slice:
		return map[string]any{"type": "array", "items": typeSchema(t.Elem(), f)}
	case reflect.Map:
		if t.Elem().Kind() == reflect.Interface {
			return map[string]any{"type": "object"}
		}
		return map[string]any{"type": "object", "additionalProperties": typeSchema(t.Elem(), nil)}
	}
	panic("spec: no schema for " + t.String())
}
