package ui

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/console/ui/view"
	"github.com/troupehq/troupe/spec"
)

// TestFormFields: the runner's form is generated from the input schema,
// one control per top-level property, and its values are converted back
// to the schema's types.
func TestFormFields(t *testing.T) {
	for _, tc := range []struct {
		name   string
		schema spec.JSONSchema
		fields []view.FormField
		form   map[string]string
		input  string // the run's message; "" with err
		err    string
	}{
		{name: "no schema: a message", form: map[string]string{"message": " hi "}, input: "hi"},
		{name: "no schema, no message", form: map[string]string{}, err: "type a message first"},
		{
			name: "scalars, required first",
			schema: spec.JSONSchema{"type": "object", "required": []any{"topic"}, "properties": map[string]any{
				"topic": map[string]any{"type": "string", "description": "What about"},
				"n":     map[string]any{"type": "integer"},
				"ratio": map[string]any{"type": "number"},
				"draft": map[string]any{"type": "boolean"},
			}},
			fields: []view.FormField{
				{Name: "topic", Label: "topic", Type: "text", Description: "What about", Required: true},
				{Name: "draft", Label: "draft", Type: "checkbox"},
				{Name: "n", Label: "n", Type: "integer"},
				{Name: "ratio", Label: "ratio", Type: "number"},
			},
			form:  map[string]string{"in.topic": "owls", "in.n": "3", "in.ratio": "0.5", "in.draft": "true"},
			input: `{"draft":true,"n":3,"ratio":0.5,"topic":"owls"}`,
		},
		{
			name: "enum and nested types as JSON",
			schema: spec.JSONSchema{"type": "object", "properties": map[string]any{
				"tone":  map[string]any{"enum": []any{"dry", "warm", 3}},
				"items": map[string]any{"type": "array", "items": map[string]any{"type": "string"}},
				"meta":  map[string]any{"type": "object"},
			}},
			fields: []view.FormField{
				{Name: "items", Label: "items", Type: "json"},
				{Name: "meta", Label: "meta", Type: "json"},
				{Name: "tone", Label: "tone", Type: "select", Options: []string{"dry", "warm", "3"}},
			},
			form:  map[string]string{"in.tone": "3", "in.items": `["a","b"]`},
			input: `{"items":["a","b"],"tone":3}`,
		},
		{
			name:   "missing required field",
			schema: spec.JSONSchema{"type": "object", "required": []any{"topic"}, "properties": map[string]any{"topic": map[string]any{"type": "string"}}},
			fields: []view.FormField{{Name: "topic", Label: "topic", Type: "text", Required: true}},
			form:   map[string]string{},
			err:    "fill in topic: it is required",
		},
		{
			name:   "not a number",
			schema: spec.JSONSchema{"type": "object", "properties": map[string]any{"n": map[string]any{"type": "integer"}}},
			fields: []view.FormField{{Name: "n", Label: "n", Type: "integer"}},
			form:   map[string]string{"in.n": "1.5"},
			err:    `n must be a whole number, got "1.5"`,
		},
		{
			name:   "bad JSON",
			schema: spec.JSONSchema{"type": "object", "properties": map[string]any{"items": map[string]any{"type": "array"}}},
			fields: []view.FormField{{Name: "items", Label: "items", Type: "json"}},
			form:   map[string]string{"in.items": "[a"},
			err:    "items must be JSON",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fields := formFields(tc.schema)
			if tc.fields == nil {
				require.Empty(t, fields)
			} else {
				require.Equal(t, tc.fields, fields)
			}
			input, err := formInput(tc.schema, func(k string) string { return tc.form[k] })
			if tc.err != "" {
				require.ErrorContains(t, err, tc.err)
				return
			}
			require.NoError(t, err)
			if tc.schema == nil {
				require.Equal(t, tc.input, input)
			} else {
				require.JSONEq(t, tc.input, input)
			}
		})
	}
}
