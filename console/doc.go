// Package console will serve Troupe over HTTP: the AgentOS-compatible REST API
// with SSE streaming, the OpenAI-compatible endpoint and the web console. It is
// the only package that imports gin and templ. It is empty until the server
// milestone lands; the package exists so the layout is fixed from the start.
package console
