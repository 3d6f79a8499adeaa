package console_test

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/troupehq/troupe/console"
)

// fuzzRoutes are the routes FuzzAPIRequests aims at: runs, sessions,
// knowledge and search, where request decoding happens. {id} is replaced by
// the fuzzed path argument.
var fuzzRoutes = []struct{ method, path string }{
	{"POST", "/agents/helpdesk/runs"},
	{"POST", "/teams/crew/runs"},
	{"GET", "/sessions"},
	{"GET", "/sessions/{id}"},
	{"GET", "/sessions/{id}/runs"},
	{"POST", "/sessions/{id}/rename"},
	{"DELETE", "/sessions/{id}"},
	{"DELETE", "/sessions"},
	{"GET", "/knowledge/content"},
	{"POST", "/knowledge/content"},
	{"GET", "/knowledge/content/{id}"},
	{"PATCH", "/knowledge/content/{id}"},
	{"POST", "/knowledge/search"},
	{"POST", "/v1/chat/completions"},
	{"GET", "/metrics"},
	{"GET", "/traces"},
}

// FuzzAPIRequests sends requests composed from fuzzed parts to the real
// server, in process, and fails on any 5xx: a panic turned into a 500 by the
// recovery middleware fails too. Run it bounded with
//
//	go test ./console -run '^$' -fuzz '^FuzzAPIRequests$' -fuzztime 60s
//
// The seed corpus (the malformed requests of issue #13) runs with go test.
func FuzzAPIRequests(f *testing.F) {
	seeds := []struct {
		route                     uint8
		arg, query, sessionHeader string
		contentType               string
		body                      string
	}{
		{8, "", "sort_by=<bad>", "", "", ""},
		{8, "", "sort_order=sideways", "", "", ""},
		{2, "", "sort_by=bogus&sort_order=up&limit=0", "", "", ""},
		{5, "s1", "", "", "application/json", `{"session_name":"\u0000"}`},
		{5, "s1", "", "", "application/x-www-form-urlencoded", "session_name=%00"},
		{0, "", "", "", "application/json", `{"message":"hi","stream":false,"session_id":"a/b"}`},
		{0, "", "", "", "application/json", `{"message":"a\u0000b","stream":false}`},
		{0, "", "", "", "application/x-www-form-urlencoded", "message=hi&stream=maybe&session_id=.."},
		{13, "", "", string(bytes.Repeat([]byte("x"), 4096)), "application/json", `{"model":"helpdesk","messages":[{"role":"user","content":"hi"}]}`},
		{13, "", "", "", "application/json", `{"model":"helpdesk","messages":[{"role":"user","content":[{"type":"text"}]}],"stream":true}`},
		{9, "", "knowledge_id=docs", "", "application/x-www-form-urlencoded", "text_content=hello&chunk_size=1"},
		{9, "", "knowledge_id=docs", "", "application/x-www-form-urlencoded", "text_content=hello&chunk_size=99999999999999999999"},
		{4, "s1", "limit=100000&page=-1", "", "", ""},
		{14, "", "ending_date=9999-12-31", "", "", ""},
		{14, "", "starting_date=0000-01-01&ending_date=9999-12-31", "", "", ""},
		{12, "", "", "", "application/json", `{"query":"x","max_results":-1,"filters":{"a":{"b":1}}}`},
		{12, "", "", "", "application/json", `{"query":"x","knowledge_id":"nope"}`},
		{11, "nope", "", "", "application/json", `{"name":null,"metadata":[]}`},
		{7, "", "", "", "application/json", `{"session_ids":["` + string(bytes.Repeat([]byte("a"), 300)) + `"]}`},
		{15, "", "limit=abc&status=??", "", "", ""},
	}
	for _, s := range seeds {
		f.Add(s.route, s.arg, s.query, s.sessionHeader, s.contentType, []byte(s.body))
	}
	ts := startServer(f)
	h := console.Handler(ts.srv)
	f.Fuzz(func(t *testing.T, route uint8, arg, query, sessionHeader, contentType string, body []byte) {
		r := fuzzRoutes[int(route)%len(fuzzRoutes)]
		path := r.path
		if i := bytes.Index([]byte(path), []byte("{id}")); i >= 0 {
			path = path[:i] + url.PathEscape(arg) + path[i+len("{id}"):]
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, r.method, "http://127.0.0.1"+path+"?"+query, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.Host = "127.0.0.1"
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if sessionHeader != "" {
			req.Header.Set("X-Session-Id", sessionHeader)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code >= 500 {
			t.Fatalf("%s %s?%s (Content-Type %q, X-Session-Id %q, body %q): status %d: %s",
				r.method, path, query, contentType, sessionHeader, body, w.Code, w.Body.String())
		}
	})
}
