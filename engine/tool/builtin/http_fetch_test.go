package builtin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/net/html"

	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/spec"
)

const testPage = `<!DOCTYPE html>
<html><head><title> Test   Page </title>
<style>body { color: red }</style>
<script>var secret = "do not show";</script>
</head>
<body>
<nav><a href="/">Home</a> | <a href="/about">About us</a></nav>
<h1>Main   title</h1>
<p>First paragraph with a <a href="https://example.com">link text</a> and
   <b>bold</b>   words.</p>
<script>alert("also hidden")</script>
<noscript>Enable JavaScript</noscript>
<template><p>template content</p></template>
<svg><title>icon</title><text>svg text</text></svg>
<h2>Section</h2>
<ul><li>one</li><li>two <i>items</i></li><li></li></ul>
<h3></h3>
<div hidden>hidden div</div>
<table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table>
<p>Line<br>break</p>
<pre>  keep
    spacing</pre>
</body></html>`

func TestHTMLToText(t *testing.T) {
	doc, err := html.Parse(strings.NewReader(testPage))
	require.NoError(t, err)
	text, title := htmlToText(doc)
	require.Equal(t, "Test Page", title)
	require.Equal(t, `Home | About us

# Main title

First paragraph with a link text and bold words.

## Section

- one
- two items

A B
1 2

Line
break

  keep
    spacing`, text)
}

// fetchServer serves testPage and a few other bodies on 127.0.0.1.
func fetchServer(t *testing.T) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		switch r.URL.Path {
		case "/page":
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			io.WriteString(w, testPage)
		case "/sniffed": // no Content-Type: sniffed as HTML
			w.Header()["Content-Type"] = nil
			io.WriteString(w, "<html><body><h2>Sniffed</h2><p>ok</p></body></html>")
		case "/latin1":
			w.Header().Set("Content-Type", "text/html; charset=iso-8859-1")
			w.Write([]byte("<p>caf\xe9</p>"))
		case "/json":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"b": 1,   "a": [1, 2]}`)
		case "/text":
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "  plain\n\ttext  ")
		case "/png":
			w.Header().Set("Content-Type", "image/png")
			w.Write([]byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"))
		case "/pdf":
			w.Header().Set("Content-Type", "application/pdf")
			io.WriteString(w, "%PDF-1.7\n")
		case "/octet": // declared octet-stream, sniffed as binary
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Write([]byte{0, 1, 2, 3, 0xff, 0xfe})
		case "/big":
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, strings.Repeat("x", 5000))
		case "/missing":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, "<html><body><h1>Not here</h1><p>"+strings.Repeat("y", 500)+"</p></body></html>")
		case "/redirect":
			http.Redirect(w, r, "/json", http.StatusFound)
		case "/slow":
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case "/stall": // headers and part of the body, then nothing
			w.Header().Set("Content-Type", "text/plain")
			io.WriteString(w, "partial")
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		case "/agent":
			io.WriteString(w, r.Method+" "+r.UserAgent())
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

func fetch(t *testing.T, opts HTTPFetchOptions, a map[string]any) (string, error) {
	t.Helper()
	tl, err := New("http_fetch", Options{HTTPFetch: opts})
	require.NoError(t, err)
	return tl.Call(context.Background(), args(t, a))
}

var allowLoopback = HTTPFetchOptions{AllowedHosts: []string{"127.0.0.1"}}

func TestHTTPFetchHTML(t *testing.T) {
	srv, _ := fetchServer(t)
	got, err := fetch(t, allowLoopback, map[string]any{"url": srv.URL + "/page"})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(got, "URL: "+srv.URL+"/page\nStatus: 200 OK\nContent-Type: text/html\nTitle: Test Page\n\nHome | About us\n\n# Main title\n"), got)
	require.Contains(t, got, "## Section")
	require.Contains(t, got, "link text")
	for _, hidden := range []string{"do not show", "also hidden", "color: red", "Enable JavaScript", "template content", "svg text", "hidden div", "<p>"} {
		require.NotContains(t, got, hidden)
	}

	got, err = fetch(t, allowLoopback, map[string]any{"url": srv.URL + "/sniffed"})
	require.NoError(t, err)
	require.Contains(t, got, "Content-Type: text/html\n")
	require.True(t, strings.HasSuffix(got, "\n## Sniffed\n\nok"), got)

	got, err = fetch(t, allowLoopback, map[string]any{"url": srv.URL + "/latin1"})
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(got, "\ncafé"), got)
}

func TestHTTPFetchPassthrough(t *testing.T) {
	srv, _ := fetchServer(t)
	got, err := fetch(t, allowLoopback, map[string]any{"url": srv.URL + "/json"})
	require.NoError(t, err)
	require.Equal(t, "URL: "+srv.URL+"/json\nStatus: 200 OK\nContent-Type: application/json\n\n"+`{"b": 1,   "a": [1, 2]}`, got)

	got, err = fetch(t, allowLoopback, map[string]any{"url": srv.URL + "/text"})
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(got, "\n\n  plain\n\ttext  "), got)

	// The result names the final URL after redirects.
	got, err = fetch(t, allowLoopback, map[string]any{"url": srv.URL + "/redirect"})
	require.NoError(t, err)
	require.True(t, strings.HasPrefix(got, "URL: "+srv.URL+"/json\nStatus: 200 OK\n"), got)

	got, err = fetch(t, allowLoopback, map[string]any{"url": srv.URL + "/agent"})
	require.NoError(t, err)
	require.Contains(t, got, "GET "+fetchUserAgent)
}

func TestHTTPFetchRefusesBinary(t *testing.T) {
	srv, _ := fetchServer(t)
	for path, mt := range map[string]string{"/png": "image/png", "/pdf": "application/pdf", "/octet": "application/octet-stream"} {
		_, err := fetch(t, allowLoopback, map[string]any{"url": srv.URL + path})
		require.EqualError(t, err, "the content at "+srv.URL+path+" is "+mt+", which is not text: http_fetch only returns HTML, JSON and text")
	}
}

func TestHTTPFetchLimits(t *testing.T) {
	srv, _ := fetchServer(t)
	opts := allowLoopback
	opts.MaxBytes = 1000
	got, err := fetch(t, opts, map[string]any{"url": srv.URL + "/big"})
	require.NoError(t, err)
	require.Contains(t, got, "Note: the response is larger than 1000 bytes; only the first 1000 bytes were read.\n")
	require.True(t, strings.HasSuffix(got, "\n\n"+strings.Repeat("x", 1000)), got)

	got, err = fetch(t, allowLoopback, map[string]any{"url": srv.URL + "/big", "max_chars": 10})
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(got, "\n\nxxxxxxxxxx\n[truncated: showing the first 10 of 5000 characters; call again with a larger max_chars (up to 100000) to see more]"), got)

	_, err = fetch(t, allowLoopback, map[string]any{"url": srv.URL + "/big", "max_chars": 0})
	require.ErrorIs(t, err, tool.ErrInvalidArguments)

	opts = allowLoopback
	opts.Timeout = 100 * time.Millisecond
	start := time.Now()
	_, err = fetch(t, opts, map[string]any{"url": srv.URL + "/slow"})
	require.EqualError(t, err, "fetching "+srv.URL+"/slow timed out after 100ms")
	require.Less(t, time.Since(start), 3*time.Second)

	opts.Timeout = 200 * time.Millisecond
	_, err = fetch(t, opts, map[string]any{"url": srv.URL + "/stall"})
	require.EqualError(t, err, "fetching "+srv.URL+"/stall timed out after 200ms")
}

func TestHTTPFetchCancel(t *testing.T) {
	srv, _ := fetchServer(t)
	tl, err := New("http_fetch", Options{HTTPFetch: allowLoopback})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	start := time.Now()
	_, err = tl.Call(ctx, args(t, map[string]any{"url": srv.URL + "/slow"}))
	require.ErrorIs(t, err, context.Canceled)
	require.Less(t, time.Since(start), 3*time.Second)
}

func TestHTTPFetchStatusError(t *testing.T) {
	srv, _ := fetchServer(t)
	_, err := fetch(t, allowLoopback, map[string]any{"url": srv.URL + "/missing"})
	require.Error(t, err)
	msg := err.Error()
	require.True(t, strings.HasPrefix(msg, "HTTP 404 Not Found from "+srv.URL+"/missing: # Not here "), msg)
	require.LessOrEqual(t, len(msg), len("HTTP 404 Not Found from "+srv.URL+"/missing: ")+errorSnippetChars)
}

func TestHTTPFetchEgress(t *testing.T) {
	srv, hits := fetchServer(t)

	// Loopback is refused by default, before any request.
	_, err := fetch(t, HTTPFetchOptions{}, map[string]any{"url": srv.URL + "/json"})
	require.EqualError(t, err, "refusing to connect to 127.0.0.1: loopback addresses are blocked; add the host to allowed_hosts to permit it")
	_, err = fetch(t, HTTPFetchOptions{}, map[string]any{"url": "http://169.254.169.254/latest/meta-data/"})
	require.ErrorContains(t, err, "link-local addresses (including cloud metadata services) are blocked")
	require.Zero(t, hits.Load())

	// A redirect from an allowed host to another host is refused when
	// allowed_hosts is set.
	_, err = fetch(t, allowLoopback, map[string]any{"url": srv.URL + "/redirect"})
	require.NoError(t, err)
	_, err = fetch(t, HTTPFetchOptions{AllowedHosts: []string{"example.com"}}, map[string]any{"url": srv.URL + "/json"})
	require.ErrorContains(t, err, "the host is not in allowed_hosts (example.com)")

	for _, bad := range []string{"", "ftp://example.com/x", "/relative", "file:///etc/passwd"} {
		_, err = fetch(t, HTTPFetchOptions{}, map[string]any{"url": bad})
		require.ErrorIs(t, err, tool.ErrInvalidArguments, bad)
	}
	tl, _ := New("http_fetch", Options{})
	_, err = tl.Call(context.Background(), json.RawMessage(`{"url": 1}`))
	require.ErrorIs(t, err, tool.ErrInvalidArguments)
}

// TestHTTPFetchDocument configures http_fetch through a Tool document, as
// `kind: Tool, type: http_fetch, allowed_hosts: [...]` does: the document's
// fields override the process defaults and the rest keep them.
func TestHTTPFetchDocument(t *testing.T) {
	srv, hits := fetchServer(t)
	var mod tool.Module
	for _, m := range Modules(Options{HTTPFetch: HTTPFetchOptions{MaxBytes: 8}}) {
		if m.Type == "http_fetch" {
			mod = m
		}
	}
	require.Equal(t, []string{"timeout", "allowed_hosts", "max_response"}, mod.Options)
	tests := []struct {
		name    string
		doc     spec.Tool
		want    string // prefix of the result
		wantErr string
	}{
		{name: "defaults refuse loopback", doc: spec.Tool{Type: "http_fetch"},
			wantErr: "refusing to connect to 127.0.0.1: loopback addresses are blocked; add the host to allowed_hosts to permit it"},
		{name: "allowed_hosts and max_response from the document", doc: spec.Tool{Type: "http_fetch", AllowedHosts: []string{"127.0.0.1"}, MaxResponse: 4},
			want: "URL: " + srv.URL + "/json\nStatus: 200 OK\nContent-Type: application/json\nNote: the response is larger than 4 bytes"},
		{name: "process max bytes kept when the document sets none", doc: spec.Tool{Type: "http_fetch", AllowedHosts: []string{"127.0.0.1"}},
			want: "URL: " + srv.URL + "/json\nStatus: 200 OK\nContent-Type: application/json\nNote: the response is larger than 8 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tl, err := mod.New(t.Context(), &tt.doc, tool.Deps{})
			require.NoError(t, err)
			got, err := tl.Call(t.Context(), args(t, map[string]any{"url": srv.URL + "/json"}))
			if tt.wantErr != "" {
				require.EqualError(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			require.True(t, strings.HasPrefix(got, tt.want), got)
		})
	}
	require.Equal(t, int32(2), hits.Load())
}
