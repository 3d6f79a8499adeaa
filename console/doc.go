// Package console serves Troupe over HTTP: the AgentOS-compatible REST API with
// SSE streaming, the OpenAI-compatible /v1 endpoints, the OpenAPI document and
// docs page, and (later) the web console. It is the only package that imports
// gin and templ.
//
// Every agent and team in the current snapshot is reachable the moment its YAML
// is saved: handlers resolve targets per request from the engine, never from a
// route table built at start-up. Runs are persisted through the store before
// their terminal event reaches the client, so what a client saw is what a later
// read returns.
package console
