// Package echo is Troupe's offline demo model. It needs no key and no network,
// answers deterministically from its input, and can call tools, so every example
// in agents.d runs on a bare machine and tool, knowledge and team flows can be
// shown and tested without a vendor.
//
// It is a demo and test model, not a language model. What it does, in order:
//
//  1. If the conversation ends with tool results, it answers with them, one line
//     per tool: "<tool>: <result>".
//  2. If the last user message has lines of the form
//     /call <tool> {"json": "arguments"}
//     it calls those tools (all of them, in one turn). <tool> is a tool's full
//     name or the part after its namespace (echo matches everything_echo).
//  3. If it leads a team (it is offered the team's delegation tools), it delegates
//     the message: to the first member when routing, to every member when
//     coordinating.
//  4. If it is offered knowledge_search, it searches for the message first.
//  5. Otherwise it answers "Echo: <message>".
//
// With an output schema, the answer is a JSON object with every required
// property filled from the message (strings), zero values, or the first enum
// value. Answers stream word by word. Usage counts words as tokens.
package echo

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"unicode"

	"github.com/troupehq/troupe/engine/model"
)

// Name is the provider and model name.
const Name = "echo"

// Team delegation tools, named by the team package. Echo recognizes them by name
// to lead teams offline.
const (
	routeTool      = "route_to_member"
	delegateTool   = "delegate_task_to_member"
	knowledgeTool  = "knowledge_search"
	callDirective  = "/call "
	maxEchoedChars = 4000
)

// Provider is the echo model. The zero value is ready to use.
type Provider struct{}

var _ model.Provider = Provider{}

// New returns the echo provider; it accepts and ignores any config.
func New(model.Config) (model.Provider, error) { return Provider{}, nil }

// Generate implements model.Provider.
func (Provider) Generate(ctx context.Context, req *model.Request, onDelta func(model.Delta)) (*model.Response, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	resp := &model.Response{Model: Name, StopReason: model.StopEnd}
	resp.Usage.InputTokens = countWords(req.System)
	for _, m := range req.Messages {
		resp.Usage.InputTokens += countWords(m.Content)
	}

	if results := trailingToolResults(req.Messages); len(results) > 0 {
		var lines []string
		for _, r := range results {
			lines = append(lines, fmt.Sprintf("%s: %s", r.Name, r.Content))
		}
		resp.Content = strings.Join(lines, "\n")
	} else {
		msg := lastUserMessage(req.Messages)
		calls, err := plan(msg, req.Tools)
		if err != nil {
			resp.Content = err.Error()
		} else if len(calls) > 0 {
			resp.ToolCalls, resp.StopReason = calls, model.StopToolCalls
			resp.Usage.OutputTokens = len(calls)
			return resp, nil
		} else {
			resp.Content = "Echo: " + truncate(msg)
		}
	}
	if req.OutputSchema != nil {
		b, _ := json.Marshal(fill(req.OutputSchema, truncate(resp.Content)))
		resp.Content = string(b)
	}
	resp.Usage.OutputTokens = countWords(resp.Content)
	if onDelta != nil {
		for _, w := range splitWords(resp.Content) {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			onDelta(model.Delta{Content: w})
		}
	}
	return resp, nil
}

// trailingToolResults returns the tool results after the last assistant message.
func trailingToolResults(msgs []model.Message) []model.Message {
	var out []model.Message
	for i := len(msgs) - 1; i >= 0 && msgs[i].Role == model.RoleTool; i-- {
		out = append([]model.Message{msgs[i]}, out...)
	}
	return out
}

func lastUserMessage(msgs []model.Message) string {
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Role == model.RoleUser {
			return msgs[i].Content
		}
	}
	return ""
}

// plan decides which tools to call for a user message.
func plan(msg string, tools []model.ToolDef) ([]model.ToolCall, error) {
	var calls []model.ToolCall
	for line := range strings.SplitSeq(msg, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, callDirective) {
			continue
		}
		name, args, _ := strings.Cut(strings.TrimSpace(line[len(callDirective):]), " ")
		def, ok := findTool(name, tools)
		if !ok {
			return nil, fmt.Errorf("Echo: no tool named %q is available (tools: %s)", name, toolNames(tools))
		}
		args = strings.TrimSpace(args)
		if args == "" {
			args = "{}"
		}
		if _, ok := model.ValidArguments(args); !ok {
			return nil, fmt.Errorf("Echo: the arguments for %s are not a JSON object: %s", name, args)
		}
		calls = append(calls, call(len(calls), def.Name, args))
	}
	if len(calls) > 0 {
		return calls, nil
	}
	task := strings.TrimSpace(msg)
	if def, ok := findTool(routeTool, tools); ok {
		if members := enum(def, "member"); len(members) > 0 {
			return []model.ToolCall{call(0, def.Name, mustJSON(map[string]any{"member": members[0], "task": task}))}, nil
		}
	}
	if def, ok := findTool(delegateTool, tools); ok {
		for _, m := range enum(def, "member") {
			calls = append(calls, call(len(calls), def.Name, mustJSON(map[string]any{"member": m, "task": task})))
		}
		return calls, nil
	}
	if def, ok := findTool(knowledgeTool, tools); ok && task != "" {
		return []model.ToolCall{call(0, def.Name, mustJSON(map[string]any{"query": task}))}, nil
	}
	return nil, nil
}

func call(i int, name, args string) model.ToolCall {
	return model.ToolCall{ID: fmt.Sprintf("echo_call_%d", i+1), Name: name, Arguments: args}
}

func findTool(name string, tools []model.ToolDef) (model.ToolDef, bool) {
	for _, t := range tools {
		if t.Name == name {
			return t, true
		}
	}
	for _, t := range tools {
		if strings.HasSuffix(t.Name, "_"+name) {
			return t, true
		}
	}
	return model.ToolDef{}, false
}

func toolNames(tools []model.ToolDef) string {
	if len(tools) == 0 {
		return "none"
	}
	names := make([]string, len(tools))
	for i, t := range tools {
		names[i] = t.Name
	}
	return strings.Join(names, ", ")
}

// enum returns the allowed values of a string property of a tool's parameters.
func enum(def model.ToolDef, prop string) []string {
	props, _ := def.Parameters["properties"].(map[string]any)
	p, _ := props[prop].(map[string]any)
	var out []string
	switch vals := p["enum"].(type) {
	case []any:
		for _, v := range vals {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
	case []string:
		out = slices.Clone(vals)
	}
	return out
}

// fill builds a value satisfying the simple parts of a JSON Schema: required
// properties, types and enums.
func fill(schema map[string]any, text string) any {
	if e, ok := schema["enum"].([]any); ok && len(e) > 0 {
		return e[0]
	}
	switch schema["type"] {
	case "object":
		out := map[string]any{}
		props, _ := schema["properties"].(map[string]any)
		required, _ := schema["required"].([]any)
		for _, r := range required {
			name, _ := r.(string)
			if ps, ok := props[name].(map[string]any); ok {
				out[name] = fill(ps, text)
			} else {
				out[name] = text
			}
		}
		return out
	case "array":
		return []any{}
	case "number", "integer":
		return 0
	case "boolean":
		return false
	case "null":
		return nil
	}
	return text
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // maps of strings always marshal
	}
	return string(b)
}

func truncate(s string) string {
	if len(s) <= maxEchoedChars {
		return s
	}
	return s[:maxEchoedChars] + "…"
}

func countWords(s string) int { return len(strings.Fields(s)) }

// splitWords splits s into words that keep their trailing spaces, so the deltas
// concatenate back to s exactly.
func splitWords(s string) []string {
	var out []string
	start := 0
	for i, r := range s {
		if i > start && unicode.IsSpace(r) && !unicode.IsSpace(rune(s[i-1])) {
			out = append(out, s[start:i])
			start = i
		}
	}
	if start < len(s) {
		out = append(out, s[start:])
	}
	return out
}
