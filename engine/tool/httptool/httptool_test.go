package httptool

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

// recorded is what the test server saw of one request.
type recorded struct {
	Method, Path, RawQuery, ContentType, Body string
	Header                                    http.Header
}

type server struct {
	*httptest.Server
	hits atomic.Int32
	mu   sync.Mutex
	last recorded
}

// newServer starts a server on 127.0.0.1 that records each request and
// answers with handler (default: 200 "ok").
func newServer(t *testing.T, handler http.HandlerFunc) *server {
	t.Helper()
	s := &server{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.hits.Add(1)
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		s.last = recorded{Method: r.Method, Path: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery,
			ContentType: r.Header.Get("Content-Type"), Body: string(body), Header: r.Header.Clone()}
		s.mu.Unlock()
		if handler != nil {
			handler(w, r)
			return
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *server) request() recorded {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last
}

// newSpec returns an http tool spec allowed to reach the loopback test server.
func newSpec(method, url string, params spec.JSONSchema) *spec.Tool {
	s := &spec.Tool{
		Type:         spec.ToolHTTP,
		Method:       method,
		URL:          url,
		Parameters:   params,
		AllowedHosts: []string{"127.0.0.1"},
		Timeout:      spec.Duration(5 * time.Second),
		MaxResponse:  spec.DefaultMaxResponse,
	}
	s.Kind = spec.KindTool
	s.Name = "test_tool"
	return s
}

func newTool(t *testing.T, s *spec.Tool) *Tool {
	t.Helper()
	tl, err := New(s)
	require.NoError(t, err)
	return tl
}

func call(t *testing.T, tl *Tool, args string) (string, error) {
	t.Helper()
	return tl.Call(context.Background(), json.RawMessage(args))
}

var anyObject = spec.JSONSchema{"type": "object"}

func TestDef(t *testing.T) {
	s := newSpec("post", "https://api.example.com/v1/items/{id}", nil)
	s.Name = "create item!"
	tl := newTool(t, s)
	def := tl.Def()
	require.Equal(t, "create_item", def.Name)
	require.Equal(t, "POST https://api.example.com/v1/items/{id}", def.Description)
	require.Equal(t, map[string]any{"type": "object", "properties": map[string]any{}}, def.Parameters)

	s = newSpec("GET", "https://api.example.com/", spec.JSONSchema{
		"type":       "object",
		"properties": map[string]any{"q": map[string]any{"type": "string", "maxLength": 10}},
		"required":   []any{"q"},
	})
	s.Description = "Searches items."
	def = newTool(t, s).Def()
	require.Equal(t, "Searches items.", def.Description)
	require.Equal(t, []any{"q"}, def.Parameters["required"])
	require.EqualValues(t, 10, def.Parameters["properties"].(map[string]any)["q"].(map[string]any)["maxLength"])
	// Def's schema is a copy: changing the spec afterwards does not change it.
	s.Parameters["type"] = "string"
	require.Equal(t, "object", def.Parameters["type"])
}

func TestNewErrors(t *testing.T) {
	_, err := New(newSpec("GET", "https://x.example/", spec.JSONSchema{"type": "object", "properties": map[string]any{"a": map[string]any{"$ref": "https://evil.example/schema.json"}}}))
	require.ErrorContains(t, err, "external $ref")
	_, err = New(newSpec("GET", "https://x.example/", spec.JSONSchema{"type": 5}))
	require.ErrorContains(t, err, "invalid JSON Schema")
	_, err = New(newSpec("TRACE", "https://x.example/", nil))
	require.ErrorContains(t, err, `unsupported method "TRACE"`)
	mcp := newSpec("", "https://x.example/", nil)
	mcp.Type = spec.ToolMCP
	_, err = New(mcp)
	require.ErrorContains(t, err, `has type "mcp"`)
}

func TestPlaceholderEscaping(t *testing.T) {
	srv := newServer(t, nil)
	tl := newTool(t, newSpec("GET", srv.URL+"/users/{user}/files/{n}?q={q}&flag={flag}&fixed=a%20b", anyObject))
	got, err := call(t, tl, `{"user": "a/b c", "n": 1e3, "q": "x/y z&w=1", "flag": true}`)
	require.NoError(t, err)
	require.Equal(t, "ok", got)
	r := srv.request()
	require.Equal(t, "/users/a%2Fb%20c/files/1000", r.Path)
	require.Equal(t, "q=x%2Fy+z%26w%3D1&flag=true&fixed=a%20b", r.RawQuery)

	for args, want := range map[string]string{
		`{"user": 42, "n": 2.5, "q": "", "flag": false}`:                 "/users/42/files/2.5",
		`{"user": 12345678901234567890, "n": -0.001, "q": 1, "flag": 0}`: "/users/12345678901234567890/files/-0.001",
		`{"user": "ü", "n": 1.0, "q": 1, "flag": 0}`:                     "/users/%C3%BC/files/1",
	} {
		_, err := call(t, tl, args)
		require.NoError(t, err, args)
		require.Equal(t, want, srv.request().Path, args)
	}
}

func TestPlaceholderArgumentErrors(t *testing.T) {
	srv := newServer(t, nil)
	tl := newTool(t, newSpec("GET", srv.URL+"/users/{id}", anyObject))
	for args, want := range map[string]string{
		`{}`:              `missing argument "id", which the URL needs`,
		`{"id": null}`:    `missing argument "id", which the URL needs`,
		`{"id": {"a":1}}`: `argument "id" goes into the URL and must be a string, number or boolean, got an object`,
		`{"id": [1]}`:     `argument "id" goes into the URL and must be a string, number or boolean, got an array`,
		`[1, 2]`:          "arguments must be a JSON object, got an array",
		`{"id": 1`:        "arguments must be a JSON object",
	} {
		_, err := call(t, tl, args)
		require.ErrorIs(t, err, tool.ErrInvalidArguments, args)
		require.ErrorContains(t, err, want, args)
	}
	require.Zero(t, srv.hits.Load())
}

func TestPostBody(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		io.WriteString(w, `{"id": 7}`)
	})
	for _, method := range []string{"POST", "PUT", "PATCH"} {
		tl := newTool(t, newSpec(method, srv.URL+"/users/{id}", anyObject))
		got, err := call(t, tl, `{"id": 7, "name": "Ann", "age": 41, "score": 1.5, "tags": ["a", "b"], "meta": {"x": null}}`)
		require.NoError(t, err)
		require.Equal(t, `{"id": 7}`, got)
		r := srv.request()
		require.Equal(t, method, r.Method)
		require.Equal(t, "/users/7", r.Path)
		require.Equal(t, "", r.RawQuery)
		require.Equal(t, "application/json", r.ContentType)
		require.JSONEq(t, `{"name": "Ann", "age": 41, "score": 1.5, "tags": ["a", "b"], "meta": {"x": null}}`, r.Body)
	}

	// No remaining arguments: an empty JSON object.
	tl := newTool(t, newSpec("POST", srv.URL+"/users/{id}", anyObject))
	_, err := call(t, tl, `{"id": 1}`)
	require.NoError(t, err)
	require.Equal(t, "{}", srv.request().Body)
}

func TestGetExtraArgsAsQuery(t *testing.T) {
	srv := newServer(t, nil)
	for _, method := range []string{"GET", "DELETE"} {
		tl := newTool(t, newSpec(method, srv.URL+"/users/{id}?fields=all", anyObject))
		_, err := call(t, tl, `{"id": 5, "limit": 10, "q": "a b&c", "tags": ["x", "y"], "filter": {"k": 1}, "skip": null, "exact": true}`)
		require.NoError(t, err)
		r := srv.request()
		require.Equal(t, method, r.Method)
		require.Equal(t, "/users/5", r.Path)
		require.Equal(t, "fields=all&exact=true&filter=%7B%22k%22%3A1%7D&limit=10&q=a+b%26c&tags=x&tags=y", r.RawQuery)
		require.Empty(t, r.Body)
		require.Empty(t, r.ContentType)
	}
}

func TestHeadersSentNeverShown(t *testing.T) {
	const secret = "s3cr3t-token"
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			http.Error(w, "denied", http.StatusForbidden)
			return
		}
		io.WriteString(w, "fine")
	})
	s := newSpec("GET", srv.URL+"/{path}", anyObject)
	s.Headers = map[string]string{"Authorization": "Bearer " + secret, "X-Team": "blue", "Accept": "text/plain"}
	tl := newTool(t, s)

	got, err := call(t, tl, `{"path": "ok"}`)
	require.NoError(t, err)
	require.Equal(t, "fine", got)
	h := srv.request().Header
	require.Equal(t, "Bearer "+secret, h.Get("Authorization"))
	require.Equal(t, "blue", h.Get("X-Team"))
	require.Equal(t, "text/plain", h.Get("Accept"))
	require.Equal(t, userAgent, h.Get("User-Agent"))

	_, err = call(t, tl, `{"path": "fail"}`)
	require.EqualError(t, err, "HTTP 403 Forbidden: denied")
	require.NotContains(t, err.Error(), secret)
}

// TestReflectedHeadersRedacted: an upstream that quotes the credential it
// was sent, in an error body or a result, does not get it past the tool. The
// 401 snippet is cut at 200 characters, and the cut must not leave half a
// secret behind either.
func TestReflectedHeadersRedacted(t *testing.T) {
	const secret = "s3cr3t-token-reflected"
	tests := []struct {
		name   string
		path   string
		prefix string // text before the echo
		want   string
		err    string
	}{
		{name: "error body", path: "fail", err: "HTTP 401 Unauthorized: bad credentials: [redacted] (key [redacted], team [redacted])"},
		{name: "result", path: "ok", want: "bad credentials: [redacted] (key [redacted], team [redacted])"},
		{name: "error cut mid-secret", path: "fail", prefix: strings.Repeat("x", 170) + " ", err: "HTTP 401 Unauthorized: " + strings.Repeat("x", 170) + " bad credentials: [redacted] ("},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/fail" {
					w.WriteHeader(http.StatusUnauthorized)
				}
				fmt.Fprintf(w, "%sbad credentials: %s (key %s, team %s)", tt.prefix, r.Header.Get("Authorization"),
					strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "), r.Header.Get("X-Team-Key"))
			})
			s := newSpec("GET", srv.URL+"/{path}", anyObject)
			s.Headers = map[string]string{"Authorization": "Bearer " + secret, "X-Team-Key": "team-key-1234"}
			tl := newTool(t, s)
			require.ElementsMatch(t, []string{"Bearer " + secret, "team-key-1234"}, tl.Secrets())
			got, err := call(t, tl, `{"path": "`+tt.path+`"}`)
			if tt.err != "" {
				require.EqualError(t, err, tt.err)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}
}

func TestSchemaValidationBeforeRequest(t *testing.T) {
	srv := newServer(t, nil)
	tl := newTool(t, newSpec("GET", srv.URL+"/weather/{city}", spec.JSONSchema{
		"type": "object",
		"properties": map[string]any{
			"city":  map[string]any{"type": "string", "minLength": 1},
			"units": map[string]any{"enum": []any{"metric", "imperial"}},
			"days":  map[string]any{"type": "integer", "minimum": 1, "maximum": 7},
		},
		"required":             []any{"city"},
		"additionalProperties": false,
	}))
	for args, want := range map[string]string{
		`{}`:                              "arguments do not match the tool's parameters: missing property 'city'",
		`{"city": 3}`:                     "at /city: got number, want string",
		`{"city": "Oslo", "units": "K"}`:  "at /units: value must be one of 'metric', 'imperial'",
		`{"city": "Oslo", "days": 30}`:    "at /days: maximum: got 30, want 7",
		`{"city": "Oslo", "days": 2.5}`:   "at /days: got number, want integer",
		`{"city": "Oslo", "extra": true}`: "additional properties 'extra' not allowed",
		`{"city": "", "units": "x"}`:      "at /city: minLength: got 0, want 1; at /units: value must be one of",
	} {
		_, err := call(t, tl, args)
		require.ErrorIs(t, err, tool.ErrInvalidArguments, args)
		require.ErrorContains(t, err, want, args)
	}
	require.Zero(t, srv.hits.Load(), "no request may be made with invalid arguments")

	got, err := call(t, tl, `{"city": "Oslo", "days": 3}`)
	require.NoError(t, err)
	require.Equal(t, "ok", got)
	require.Equal(t, "/weather/Oslo", srv.request().Path)
	require.Equal(t, "days=3", srv.request().RawQuery)
}

func TestStatusError(t *testing.T) {
	long := strings.Repeat("e", 500)
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/missing":
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "  no such\n  user  ")
		case "/long":
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, long)
		case "/empty":
			w.WriteHeader(http.StatusBadGateway)
		case "/nocontent":
			w.WriteHeader(http.StatusNoContent)
		}
	})
	tl := newTool(t, newSpec("GET", srv.URL+"/{p}", anyObject))
	_, err := call(t, tl, `{"p": "missing"}`)
	require.EqualError(t, err, "HTTP 404 Not Found: no such user")
	_, err = call(t, tl, `{"p": "long"}`)
	require.EqualError(t, err, "HTTP 500 Internal Server Error: "+long[:200])
	_, err = call(t, tl, `{"p": "empty"}`)
	require.EqualError(t, err, "HTTP 502 Bad Gateway")
	got, err := call(t, tl, `{"p": "nocontent"}`)
	require.NoError(t, err)
	require.Equal(t, "(empty response body, HTTP 204 No Content)", got)
}

func TestResponseSizeLimit(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("a", 1000))
	})
	s := newSpec("GET", srv.URL+"/", nil)
	s.MaxResponse = 100
	got, err := call(t, newTool(t, s), `{}`)
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("a", 100)+"\n[response truncated: only the first 100 bytes were read (max_response)]", got)

	s.MaxResponse = 1000 // exactly the size: not truncated
	got, err = call(t, newTool(t, s), `{}`)
	require.NoError(t, err)
	require.Equal(t, strings.Repeat("a", 1000), got)
}

func TestEgressPolicy(t *testing.T) {
	srv := newServer(t, nil)
	s := newSpec("GET", srv.URL+"/", nil)
	s.AllowedHosts = nil
	_, err := call(t, newTool(t, s), `{}`)
	require.EqualError(t, err, "refusing to connect to 127.0.0.1: loopback addresses are blocked; add the host to allowed_hosts to permit it")

	// A host chosen by a placeholder is checked too.
	s = newSpec("GET", "http://{host}/latest/meta-data/", anyObject)
	s.AllowedHosts = nil
	_, err = call(t, newTool(t, s), `{"host": "169.254.169.254"}`)
	require.ErrorContains(t, err, "link-local addresses (including cloud metadata services) are blocked")

	// allowed_hosts set to another host refuses the test server.
	s = newSpec("GET", srv.URL+"/", nil)
	s.AllowedHosts = []string{"api.example.com"}
	_, err = call(t, newTool(t, s), `{}`)
	require.ErrorContains(t, err, "the host is not in allowed_hosts (api.example.com)")
	require.Zero(t, srv.hits.Load())

	// Redirects are re-checked.
	redirector := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "http://10.0.0.1/", http.StatusFound)
	})
	s = newSpec("GET", redirector.URL+"/", nil)
	s.AllowedHosts = []string{strings.TrimPrefix(redirector.URL, "http://")}
	_, err = call(t, newTool(t, s), `{}`)
	require.ErrorContains(t, err, "refusing to connect to 10.0.0.1")
}

func TestTimeout(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	s := newSpec("GET", srv.URL+"/slow", nil)
	s.Timeout = spec.Duration(100 * time.Millisecond)
	start := time.Now()
	_, err := call(t, newTool(t, s), `{}`)
	require.EqualError(t, err, "request timed out after 100ms")
	require.Less(t, time.Since(start), 3*time.Second)

	// The limit also covers reading the body.
	srv = newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "partial")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	s = newSpec("GET", srv.URL+"/stall", nil)
	s.Timeout = spec.Duration(200 * time.Millisecond)
	tl := newTool(t, s)
	_, err = call(t, tl, `{}`)
	require.EqualError(t, err, "request timed out after 200ms")
	require.NoError(t, tl.Close())
}

func TestContextCancel(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
		}
	})
	tl := newTool(t, newSpec("GET", srv.URL+"/slow", nil))
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err := tl.Call(ctx, json.RawMessage(`{}`))
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), 3*time.Second)
}

func TestConcurrentCalls(t *testing.T) {
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	})
	tl := newTool(t, newSpec("GET", srv.URL+"/n/{n}", anyObject))
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			got, err := tl.Call(context.Background(), json.RawMessage(`{"n": `+strings.Repeat("1", i+1)+`}`))
			require.NoError(t, err)
			require.Equal(t, "/n/"+strings.Repeat("1", i+1), got)
		})
	}
	wg.Wait()
}

// TestFromYAML builds the tool from a parsed document, as the engine does: the
// schema comes from YAML and a secret comes from the environment.
func TestFromYAML(t *testing.T) {
	srv := newServer(t, nil)
	const secret = "tok-123"
	doc := `kind: Tool
name: lookup
type: http
url: ` + srv.URL + `/hooks/${HOOK_SECRET}/{id}
headers:
  Authorization: Bearer ${HOOK_SECRET}
allowed_hosts: [127.0.0.1]
parameters:
  type: object
  properties:
    id: {type: integer, minimum: 1}
  required: [id]
`
	env := func(name string) (string, bool) {
		if name == "HOOK_SECRET" {
			return secret, true
		}
		return "", false
	}
	f := spec.ParseFile("tools.yaml", []byte(doc), env)
	require.Empty(t, f.Diagnostics)
	require.Len(t, f.Docs, 1)
	s, ok := f.Docs[0].(*spec.Tool)
	require.True(t, ok)

	tl := newTool(t, s)
	def := tl.Def()
	require.Equal(t, "lookup", def.Name)
	require.NotContains(t, def.Description, secret)
	require.Contains(t, def.Description, "GET ")

	_, err := call(t, tl, `{"id": 0}`)
	require.ErrorIs(t, err, tool.ErrInvalidArguments)
	require.Zero(t, srv.hits.Load())

	got, err := call(t, tl, `{"id": 9}`)
	require.NoError(t, err)
	require.Equal(t, "ok", got)
	require.Equal(t, "/hooks/"+secret+"/9", srv.request().Path)
	require.Equal(t, "Bearer "+secret, srv.request().Header.Get("Authorization"))
	require.Contains(t, tl.Secrets(), secret, "the interpolated part of the URL is a secret")

	srv.Close()
	_, err = call(t, tl, `{"id": 9}`)
	require.ErrorContains(t, err, "request failed: ")
	require.NotContains(t, err.Error(), secret)
}
