package builtin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html"
	"golang.org/x/net/html/charset"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/engine/tool/egress"
	"github.com/troupehq/troupe/spec"
)

// http_fetch defaults and limits.
const (
	DefaultFetchTimeout  = 15 * time.Second
	DefaultFetchMaxBytes = 2 << 20
	defaultMaxChars      = 20000
	maxMaxChars          = 100000
	errorSnippetChars    = 200
	fetchUserAgent       = "troupe-http-fetch/1"
)

type httpFetch struct {
	client   *http.Client
	policy   egress.Policy
	timeout  time.Duration
	maxBytes int64
}

var (
	_ tool.Tool   = (*httpFetch)(nil)
	_ tool.Closer = (*httpFetch)(nil)
)

// httpFetchModule registers http_fetch. A Tool document of its type sets
// allowed_hosts, timeout and max_response; fields it leaves out keep o's.
func httpFetchModule(o Options) tool.Module {
	return tool.Module{Type: "http_fetch", Builtin: true, Options: []string{"timeout", "allowed_hosts", "max_response"},
		New: func(_ context.Context, s *spec.Tool, _ tool.Deps) (tool.Tool, error) {
			opts := o.HTTPFetch
			if len(s.AllowedHosts) > 0 {
				opts.AllowedHosts = slices.Clone(s.AllowedHosts)
			}
			if s.Timeout > 0 {
				opts.Timeout = s.Timeout.D()
			}
			if s.MaxResponse > 0 {
				opts.MaxBytes = int64(s.MaxResponse)
			}
			return newHTTPFetch(opts), nil
		}}
}

func newHTTPFetch(o HTTPFetchOptions) *httpFetch {
	if o.Timeout <= 0 {
		o.Timeout = DefaultFetchTimeout
	}
	if o.MaxBytes <= 0 {
		o.MaxBytes = DefaultFetchMaxBytes
	}
	policy := egress.Policy{AllowedHosts: o.AllowedHosts}
	return &httpFetch{client: policy.Client(o.Timeout), policy: policy, timeout: o.Timeout, maxBytes: o.MaxBytes}
}

var httpFetchDef = model.ToolDef{
	Name: "http_fetch",
	Description: "Fetches a web page or API response with HTTP GET and returns it as text: HTML is reduced to readable text " +
		"(headings marked with #), JSON and plain text are returned as is. Images, PDFs and other binary content are refused. " +
		"Internal and private network addresses cannot be fetched.",
	Parameters: object(map[string]any{
		"url": map[string]any{
			"type":        "string",
			"description": "Absolute http:// or https:// URL to fetch.",
		},
		"max_chars": map[string]any{
			"type":        "integer",
			"minimum":     1,
			"maximum":     maxMaxChars,
			"description": fmt.Sprintf("Return at most this many characters of content (default %d).", defaultMaxChars),
		},
	}, "url"),
}

func (*httpFetch) Def() model.ToolDef { return httpFetchDef }

// Close releases the client's idle connections.
func (f *httpFetch) Close() error {
	f.client.CloseIdleConnections()
	return nil
}

func (f *httpFetch) Call(ctx context.Context, args json.RawMessage) (string, error) {
	var a struct {
		URL      string `json:"url"`
		MaxChars *int   `json:"max_chars"`
	}
	if err := tool.Decode(args, &a); err != nil {
		return "", err
	}
	maxChars := defaultMaxChars
	if a.MaxChars != nil {
		if *a.MaxChars < 1 {
			return "", tool.ArgumentError("max_chars must be at least 1, got %d", *a.MaxChars)
		}
		maxChars = min(*a.MaxChars, maxMaxChars)
	}
	raw := strings.TrimSpace(a.URL)
	if raw == "" {
		return "", tool.ArgumentError("missing required argument \"url\"")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", tool.ArgumentError("invalid url %q: %v", raw, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return "", tool.ArgumentError("invalid url %q: write an absolute http:// or https:// URL", raw)
	}
	// Refuse before any request, so the model gets the policy's reason and no
	// DNS lookup is made for a forbidden host.
	if err := f.policy.CheckURL(u); err != nil {
		return "", err
	}

	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", tool.ArgumentError("invalid url %q: %v", raw, err)
	}
	req.Header.Set("User-Agent", fetchUserAgent)
	req.Header.Set("Accept", "text/html,application/xhtml+xml,application/json;q=0.9,text/plain;q=0.9,*/*;q=0.5")

	resp, err := f.client.Do(req)
	if err != nil {
		return "", f.requestError(ctx, raw, err)
	}
	defer resp.Body.Close()
	body, truncated, err := readLimited(resp.Body, f.maxBytes)
	if err != nil {
		return "", f.requestError(ctx, raw, err)
	}
	final := resp.Request.URL.String()

	kind, mediaType := classify(resp.Header.Get("Content-Type"), body)
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet := ""
		if kind != contentOther {
			text, _ := toText(kind, resp.Header.Get("Content-Type"), body)
			snippet = tool.Head(strings.Join(strings.Fields(text), " "), errorSnippetChars)
		}
		if snippet == "" {
			return "", fmt.Errorf("HTTP %s from %s", resp.Status, final)
		}
		return "", fmt.Errorf("HTTP %s from %s: %s", resp.Status, final, snippet)
	}
	if kind == contentOther {
		return "", fmt.Errorf("the content at %s is %s, which is not text: http_fetch only returns HTML, JSON and text", final, mediaType)
	}
	text, title := toText(kind, resp.Header.Get("Content-Type"), body)

	var b strings.Builder
	fmt.Fprintf(&b, "URL: %s\nStatus: %s\nContent-Type: %s\n", final, resp.Status, mediaType)
	if title != "" {
		fmt.Fprintf(&b, "Title: %s\n", title)
	}
	if truncated {
		fmt.Fprintf(&b, "Note: the response is larger than %d bytes; only the first %d bytes were read.\n", f.maxBytes, f.maxBytes)
	}
	b.WriteString("\n")
	if n := utf8.RuneCountInString(text); n > maxChars {
		text = tool.Head(text, maxChars)
		text += fmt.Sprintf("\n[truncated: showing the first %d of %d characters", maxChars, n)
		if maxChars < maxMaxChars {
			text += fmt.Sprintf("; call again with a larger max_chars (up to %d) to see more", maxMaxChars)
		}
		text += "]"
	}
	if strings.TrimSpace(text) == "" {
		text = "(no text content)"
	}
	b.WriteString(text)
	return b.String(), nil
}

// requestError words a failed request for the model: the policy's refusal as
// is, timeouts with the limit, cancellation as the context's error.
func (f *httpFetch) requestError(ctx context.Context, raw string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("fetching %s was cancelled: %w", raw, ctx.Err())
	}
	var refused *egress.RefusedError
	if errors.As(err, &refused) {
		return refused
	}
	// The client's timeout surfaces as a url.Error from Do, or as a plain
	// timeout error while reading the body.
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("fetching %s timed out after %s", raw, f.timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its message repeats the URL
	}
	return fmt.Errorf("fetching %s failed: %v", raw, err)
}

// readLimited reads at most limit bytes and reports whether there was more.
func readLimited(r io.Reader, limit int64) ([]byte, bool, error) {
	body, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, false, err
	}
	if int64(len(body)) > limit {
		return body[:limit], true, nil
	}
	return body, false, nil
}

type contentKind int

const (
	contentOther contentKind = iota
	contentHTML
	contentText
)

// classify decides how to present a body from its declared media type, or by
// sniffing when the server does not say (or says only octet-stream).
func classify(contentType string, body []byte) (contentKind, string) {
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil || mt == "" || mt == "application/octet-stream" || mt == "binary/octet-stream" {
		mt, _, _ = mime.ParseMediaType(http.DetectContentType(body))
	}
	mt = strings.ToLower(mt)
	switch {
	case mt == "text/html" || mt == "application/xhtml+xml":
		return contentHTML, mt
	case strings.HasPrefix(mt, "image/"), strings.HasPrefix(mt, "audio/"), strings.HasPrefix(mt, "video/"),
		strings.HasPrefix(mt, "font/"):
		return contentOther, mt
	case strings.HasPrefix(mt, "text/"),
		mt == "application/json", strings.HasSuffix(mt, "+json"), mt == "application/x-ndjson",
		mt == "application/xml", strings.HasSuffix(mt, "+xml"),
		mt == "application/javascript", mt == "application/x-javascript", mt == "application/ecmascript",
		mt == "application/yaml", mt == "application/x-yaml", mt == "application/toml",
		mt == "application/csv", mt == "application/x-sh", mt == "application/sql",
		mt == "application/graphql", mt == "application/x-www-form-urlencoded":
		return contentText, mt
	}
	return contentOther, mt
}

// toText converts body to UTF-8 (using the declared or detected charset) and,
// for HTML, to readable text. It also returns an HTML page's title.
func toText(kind contentKind, contentType string, body []byte) (text, title string) {
	if enc, name, _ := charset.DetermineEncoding(body, contentType); name != "utf-8" {
		if decoded, err := enc.NewDecoder().Bytes(body); err == nil {
			body = decoded
		}
	}
	s := strings.ToValidUTF8(string(body), "\uFFFD")
	if kind != contentHTML {
		return s, ""
	}
	doc, err := html.Parse(strings.NewReader(s))
	if err != nil {
		return s, "" // the parser accepts any input; this is defensive
	}
	return htmlToText(doc)
}
