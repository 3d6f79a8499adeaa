// Package console is Troupe's HTTP server: the gin engine, request logging,
// panic recovery, the host check against DNS rebinding, CORS, body limits
// and timeouts, and the lifecycle (Serve and its graceful shutdown). It
// serves nothing of its own: it mounts the route groups, each with the
// middleware for what it serves.
//
//   - console/api: the AgentOS-compatible REST API and its OpenAPI document;
//     one table (api.Status) maps domain errors to statuses.
//   - console/openai: the OpenAI-compatible /v1 endpoints.
//   - console/ui (and ui/view): the web console's pages, rendered with templ.
//   - console/auth: API keys, scopes and the principal; bearer middleware for
//     the API groups, cookie and CSRF for the console's.
//   - console/sse: server-sent event frames, heartbeats and stream counting.
//
// The route groups never import this package; runs are started, cancelled
// and drained by the run service (engine/session), which every group only
// calls.
package console
