package console

import (
	"bytes"
	"cmp"
	"fmt"
	"html/template"
	"maps"
	"slices"
	"strings"

	"github.com/troupehq/troupe/engine"
)

// maxDocumentedTargets bounds the agents, and the teams, that get their own
// run endpoint in the OpenAPI document.
const maxDocumentedTargets = 1000

// openAPIDocument describes the API as it stands for this snapshot: the fixed
// routes plus one run endpoint per agent and team, documented with the
// object's own description, so generated clients and the docs page always
// match what is being served.
func (s *Server) openAPIDocument(snap *engine.Snapshot) map[string]any {
	ref := func(name string) map[string]any { return map[string]any{"$ref": "#/components/schemas/" + name} }
	jsonBody := func(schema map[string]any) map[string]any {
		return map[string]any{"content": map[string]any{"application/json": map[string]any{"schema": schema}}}
	}
	errResp := func(desc string) map[string]any {
		return map[string]any{"description": desc, "content": map[string]any{"application/json": map[string]any{"schema": ref("Error")}}}
	}
	pathParam := func(name, desc string) map[string]any {
		return map[string]any{"name": name, "in": "path", "required": true, "description": desc, "schema": map[string]any{"type": "string"}}
	}
	query := func(name, desc, typ string) map[string]any {
		return map[string]any{"name": name, "in": "query", "description": desc, "schema": map[string]any{"type": typ}}
	}
	op := func(tag, summary, desc string, extra map[string]any) map[string]any {
		o := map[string]any{"tags": []string{tag}, "summary": summary, "description": desc,
			"responses": map[string]any{"401": errResp("Missing or invalid API key"), "403": errResp("The key lacks the scope")}}
		maps.Copy(o, extra)
		return o
	}
	runOp := func(tag, kind, name, desc string) map[string]any {
		return op(tag, "Run "+kind+" "+name, strings.TrimSpace(desc+"\n\nStreams server-sent events (`event: Name` and a JSON `data:` line with the same `event`) unless `stream` is false, in which case the whole run is returned as JSON."), map[string]any{
			"operationId": "run_" + kind + "_" + strings.ReplaceAll(name, "-", "_"),
			"requestBody": map[string]any{"required": true, "content": map[string]any{
				"application/json":    map[string]any{"schema": ref("RunRequest")},
				"multipart/form-data": map[string]any{"schema": ref("RunRequest")},
			}},
			"responses": map[string]any{
				"200": map[string]any{"description": "The run: an event stream, or JSON when stream is false", "content": map[string]any{
					"text/event-stream": map[string]any{"schema": map[string]any{"type": "string"}},
					"application/json":  map[string]any{"schema": ref("Run")},
				}},
				"404": errResp("No such " + kind + ", or the session belongs to someone else"),
				"422": errResp("message is missing"),
			},
		})
	}

	paths := map[string]any{
		"/health":        map[string]any{"get": op("System", "Health", "Always 200 while the server runs; needs no key.", map[string]any{"security": []any{}, "responses": map[string]any{"200": map[string]any{"description": "ok"}}})},
		"/health/ready":  map[string]any{"get": op("System", "Readiness", "200 when the server can serve runs: its database answers a query and it is not shutting down; 503 with a detail otherwise. Needs no key.", map[string]any{"security": []any{}, "responses": map[string]any{"200": map[string]any{"description": "ready"}, "503": errResp("Not ready: the database does not answer, or the server is shutting down")}})},
		"/config":        map[string]any{"get": op("System", "Configuration and reload status", "Agents, teams, databases, and the spec folder's reload status with per-object diagnostics.", nil)},
		"/config/reload": map[string]any{"post": op("System", "Reload the spec folder", "Reloads now and returns the result. Requires admin.", nil)},
		"/models":        map[string]any{"get": op("System", "Models in use", "The distinct models agents and teams use.", nil)},
		"/agents":        map[string]any{"get": op("Agents", "List agents", "Every serving agent.", map[string]any{"responses": map[string]any{"200": jsonBody(map[string]any{"type": "array", "items": ref("Agent")})}})},
		"/agents/{agent_id}": map[string]any{"get": op("Agents", "Get an agent", "", map[string]any{"parameters": []any{pathParam("agent_id", "Agent name")},
			"responses": map[string]any{"200": jsonBody(ref("Agent")), "404": errResp("No such agent")}})},
		"/agents/{agent_id}/runs/{run_id}/cancel": map[string]any{"post": op("Agents", "Cancel a run", "Cancels a run started by another request.", map[string]any{"parameters": []any{pathParam("agent_id", "Agent name"), pathParam("run_id", "Run id")}})},
		"/teams": map[string]any{"get": op("Teams", "List teams", "Every serving team.", map[string]any{"responses": map[string]any{"200": jsonBody(map[string]any{"type": "array", "items": ref("Team")})}})},
		"/teams/{team_id}": map[string]any{"get": op("Teams", "Get a team", "", map[string]any{"parameters": []any{pathParam("team_id", "Team name")},
			"responses": map[string]any{"200": jsonBody(ref("Team")), "404": errResp("No such team")}})},
		"/teams/{team_id}/runs/{run_id}/cancel": map[string]any{"post": op("Teams", "Cancel a team run", "", map[string]any{"parameters": []any{pathParam("team_id", "Team name"), pathParam("run_id", "Run id")}})},
		"/sessions": map[string]any{
			"get": op("Sessions", "List sessions", "Paged; a key bound to a user sees only that user's sessions.", map[string]any{"parameters": []any{
				query("type", "agent or team", "string"), query("component_id", "Agent or team name", "string"), query("user_id", "User id", "string"),
				query("search", "Substring of the session name", "string"), query("limit", "Page size (1-100, default 20)", "integer"),
				query("page", "Page number from 1", "integer"), query("sort_by", "created_at, updated_at or session_name", "string"), query("sort_order", "asc or desc", "string"),
			}, "responses": map[string]any{"200": jsonBody(ref("SessionPage"))}}),
			"delete": op("Sessions", "Delete sessions", "Body: {\"session_ids\": [...]}.", map[string]any{"responses": map[string]any{"204": map[string]any{"description": "Deleted"}}}),
		},
		"/sessions/{session_id}": map[string]any{
			"get":    op("Sessions", "Get a session", "", map[string]any{"parameters": []any{pathParam("session_id", "Session id")}, "responses": map[string]any{"200": jsonBody(ref("Session")), "404": errResp("No such session")}}),
			"delete": op("Sessions", "Delete a session", "Deletes its runs too.", map[string]any{"parameters": []any{pathParam("session_id", "Session id")}, "responses": map[string]any{"204": map[string]any{"description": "Deleted"}, "404": errResp("No such session")}}),
		},
		"/sessions/{session_id}/runs": map[string]any{"get": op("Sessions", "A session's runs", "One page of turns, oldest first, with messages and tool calls: by default the latest 100 top-level runs with their members' runs. Older turns are on later pages; the X-Total-Count (top-level runs), X-Total-Pages and X-Page headers and a Link header (rel=next for older turns, rel=prev) describe the paging.", map[string]any{"parameters": []any{pathParam("session_id", "Session id"),
			query("limit", "Top-level runs per page (1-500, default 100)", "integer"), query("page", "Page number from 1; page 1 holds the latest turns", "integer")},
			"responses": map[string]any{"200": jsonBody(map[string]any{"type": "array", "items": ref("Run")}), "404": errResp("No such session, or no run stored yet")}})},
		"/sessions/{session_id}/rename": map[string]any{"post": op("Sessions", "Rename a session", "Body: {\"session_name\": \"...\"}.", map[string]any{"parameters": []any{pathParam("session_id", "Session id")}, "responses": map[string]any{"200": jsonBody(ref("Session"))}})},
		"/v1/models":                    map[string]any{"get": op("OpenAI", "List models (OpenAI)", "Agents and teams as OpenAI models.", nil)},
		"/v1/chat/completions": map[string]any{"post": op("OpenAI", "Chat completions (OpenAI)", "model is an agent or team name; the messages are the context. Streaming sends chat.completion.chunk frames and data: [DONE]. Send X-Session-Id to store the turns in a session.",
			map[string]any{"requestBody": jsonBody(ref("ChatCompletionRequest"))})},
		"/openapi.json": map[string]any{"get": op("System", "This document", "Generated from the live snapshot.", nil)},
		"/docs":         map[string]any{"get": op("System", "API docs page", "", nil)},
	}
	// Each agent and team gets its own documented run endpoint, up to
	// maxDocumentedTargets of each: past that the document would grow with
	// the folder (73,000 agents made 73 MB), so the rest share the generic
	// path, which serves them all.
	agents, teams := snap.Agents(), snap.Teams()
	for _, a := range agents[:min(len(agents), maxDocumentedTargets)] {
		paths["/agents/"+a.Name()+"/runs"] = map[string]any{"post": runOp("Agents", "agent", a.Name(), a.Spec.Description)}
	}
	for _, t := range teams[:min(len(teams), maxDocumentedTargets)] {
		paths["/teams/"+t.Name()+"/runs"] = map[string]any{"post": runOp("Teams", "team", t.Name(), t.Spec.Description)}
	}
	if len(agents) > maxDocumentedTargets {
		o := runOp("Agents", "agent", "{agent_id}", fmt.Sprintf("Runs any agent; %d agents are served, the first %d have their own entries.", len(agents), maxDocumentedTargets))
		o["parameters"], o["operationId"] = []any{pathParam("agent_id", "Agent name")}, "run_agent"
		paths["/agents/{agent_id}/runs"] = map[string]any{"post": o}
	}
	if len(teams) > maxDocumentedTargets {
		o := runOp("Teams", "team", "{team_id}", fmt.Sprintf("Runs any team; %d teams are served, the first %d have their own entries.", len(teams), maxDocumentedTargets))
		o["parameters"], o["operationId"] = []any{pathParam("team_id", "Team name")}, "run_team"
		paths["/teams/{team_id}/runs"] = map[string]any{"post": o}
	}

	str := map[string]any{"type": "string"}
	integer := map[string]any{"type": "integer"}
	obj := func(props map[string]any, required ...string) map[string]any {
		o := map[string]any{"type": "object", "properties": props}
		if len(required) > 0 {
			o["required"] = required
		}
		return o
	}
	schemas := map[string]any{
		"Error":      obj(map[string]any{"detail": str}, "detail"),
		"RunRequest": obj(map[string]any{"message": str, "stream": map[string]any{"type": "boolean", "default": true}, "session_id": str, "user_id": str}, "message"),
		"Metrics": obj(map[string]any{"input_tokens": integer, "output_tokens": integer, "total_tokens": integer,
			"duration": map[string]any{"type": "number", "description": "seconds"}, "time_to_first_token": map[string]any{"type": "number", "description": "seconds"}}),
		"ToolCall": obj(map[string]any{"tool_call_id": str, "tool_name": str, "tool_args": map[string]any{"type": "object"}, "result": str, "tool_call_error": map[string]any{"type": "boolean"}}),
		"Run": obj(map[string]any{"run_id": str, "session_id": str, "agent_id": str, "team_id": str, "status": map[string]any{"enum": []string{"RUNNING", "COMPLETED", "ERROR", "CANCELLED"}},
			"run_input": str, "content": str, "tools": map[string]any{"type": "array", "items": ref("ToolCall")}, "metrics": ref("Metrics"),
			"created_at": map[string]any{"type": "string", "format": "date-time"}}, "run_id", "session_id", "status"),
		"Session": obj(map[string]any{"session_id": str, "session_name": str, "session_state": map[string]any{"type": "object"}, "session_type": str,
			"agent_id": str, "team_id": str, "user_id": str, "created_at": map[string]any{"type": "string", "format": "date-time"}, "updated_at": map[string]any{"type": "string", "format": "date-time"}}, "session_id"),
		"SessionPage": obj(map[string]any{"data": map[string]any{"type": "array", "items": ref("Session")},
			"meta": obj(map[string]any{"page": integer, "limit": integer, "total_pages": integer, "total_count": integer})}),
		"Model": obj(map[string]any{"name": str, "model": str, "provider": str}),
		"Agent": obj(map[string]any{"id": str, "name": str, "description": str, "db_id": str, "model": ref("Model"), "status": str}),
		"Team":  obj(map[string]any{"id": str, "name": str, "description": str, "db_id": str, "model": ref("Model"), "mode": str, "members": map[string]any{"type": "array"}}),
		"ChatCompletionRequest": obj(map[string]any{"model": str, "stream": map[string]any{"type": "boolean"},
			"messages": map[string]any{"type": "array", "items": obj(map[string]any{"role": str, "content": map[string]any{}}, "role")}}, "model", "messages"),
	}
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "Troupe", "version": cmp.Or(s.opts.Version, "dev"),
			"description": "Agents and teams defined in YAML, served over REST with SSE streaming (AgentOS-compatible) and an OpenAI-compatible endpoint. Spec version " + snap.Version() + "."},
		"paths":      paths,
		"components": map[string]any{"schemas": schemas},
	}
	if s.opts.Keys.Len() > 0 {
		doc["components"].(map[string]any)["securitySchemes"] = map[string]any{"bearer": map[string]any{"type": "http", "scheme": "bearer"}}
		doc["security"] = []any{map[string]any{"bearer": []any{}}}
	}
	return doc
}

// docsPage renders the OpenAPI document as a self-contained HTML page: no
// scripts, no CDN, readable without a network.
var docsPage = template.Must(template.New("docs").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.Title}} API</title>
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#1b1f24}
code,pre{font:13px ui-monospace,monospace;background:#f4f5f7;border-radius:4px}pre{padding:.75rem;overflow:auto}code{padding:.1rem .3rem}
.op{border:1px solid #d8dde3;border-radius:6px;margin:.75rem 0;padding:.5rem .75rem}
.m{display:inline-block;min-width:4.5rem;font-weight:600}.get{color:#0a6}.post{color:#06c}.delete{color:#c22}
h2{margin-top:2rem;border-bottom:1px solid #d8dde3}
</style></head><body>
<h1>{{.Title}} API <small>{{.Version}}</small></h1>
<p>{{.Description}}</p>
<p>Machine-readable: <a href="openapi.json">openapi.json</a>.</p>
{{range .Tags}}<h2>{{.Name}}</h2>
{{range .Ops}}<div class="op" data-testid="op"><span class="m {{.Method}}">{{.MethodUpper}}</span> <code>{{.Path}}</code> — {{.Summary}}
{{if .Description}}<p>{{.Description}}</p>{{end}}{{if .Curl}}<pre>{{.Curl}}</pre>{{end}}</div>
{{end}}{{end}}
</body></html>`))

type docOp struct {
	Method, MethodUpper, Path, Summary, Description, Curl string
}

type docTag struct {
	Name string
	Ops  []docOp
}

func renderDocs(doc map[string]any) []byte {
	info := doc["info"].(map[string]any)
	tags := map[string][]docOp{}
	paths := doc["paths"].(map[string]any)
	for _, p := range slices.Sorted(maps.Keys(paths)) {
		for _, m := range []string{"get", "post", "delete"} {
			o, ok := paths[p].(map[string]any)[m].(map[string]any)
			if !ok {
				continue
			}
			d := docOp{Method: m, MethodUpper: strings.ToUpper(m), Path: p, Summary: o["summary"].(string), Description: o["description"].(string)}
			if strings.HasSuffix(p, "/runs") && !strings.Contains(p, "{") {
				d.Curl = "curl -N -X POST http://127.0.0.1:7777" + p + " \\\n  -H \"Authorization: Bearer $TROUPE_API_KEY\" \\\n  -H 'Content-Type: application/json' \\\n  -d '{\"message\": \"Hello!\"}'"
			}
			tag := o["tags"].([]string)[0]
			tags[tag] = append(tags[tag], d)
		}
	}
	var data struct {
		Title, Version, Description string
		Tags                        []docTag
	}
	data.Title, data.Version, data.Description = info["title"].(string), info["version"].(string), info["description"].(string)
	for _, t := range []string{"Agents", "Teams", "Sessions", "OpenAI", "System"} {
		data.Tags = append(data.Tags, docTag{Name: t, Ops: tags[t]})
	}
	var b bytes.Buffer
	if err := docsPage.Execute(&b, data); err != nil {
		return []byte("rendering docs: " + template.HTMLEscapeString(err.Error()))
	}
	return b.Bytes()
}
