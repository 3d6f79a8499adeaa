// Package httptool turns a `kind: Tool, type: http` document into a tool: one
// declarative HTTP call whose URL placeholders, query string or JSON body are
// filled from the model's arguments.
//
// It exists so that teams can give agents an internal or third-party API with
// a few lines of YAML instead of code. Because the arguments come from a model,
// they are validated against the declared JSON Schema before any request,
// escaped for where they land in the URL, and sent only to hosts the egress
// policy permits; headers (which usually carry API keys) never appear in
// results or errors, even when the upstream echoes them back.
package httptool

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/troupehq/troupe/engine/model"
	"github.com/troupehq/troupe/engine/tool"
	"github.com/troupehq/troupe/engine/tool/egress"
	"github.com/troupehq/troupe/spec"
)

// errorSnippetChars is how much of an error response's body reaches the model:
// enough for an API's error message, not enough to flood the context.
const errorSnippetChars = 200

const userAgent = "troupe-http-tool/1"

// Module registers the http type. Its tools hold no connections beyond idle
// ones, so they need no Cleanup and are reused across snapshots while their
// document is unchanged.
func Module() tool.Module {
	return tool.Module{Type: spec.ToolHTTP,
		New: func(_ context.Context, s *spec.Tool, _ tool.Deps) (tool.Tool, error) { return New(s) }}
}

// Tool is one declarative HTTP tool. It is safe for concurrent use.
type Tool struct {
	def         model.ToolDef
	schema      *jsonschema.Schema
	client      *http.Client
	policy      egress.Policy
	method      string
	parts       []part          // the URL template, split at placeholders
	filled      map[string]bool // argument names consumed by placeholders
	headers     map[string]string
	maxResponse int64
	timeout     time.Duration
	secrets     []string
	redact      *tool.Redactor // removes secrets an upstream echoes back
}

var (
	_ tool.Tool         = (*Tool)(nil)
	_ tool.Closer       = (*Tool)(nil)
	_ tool.SecretHolder = (*Tool)(nil)
)

// part is a literal piece of the URL template or a placeholder.
type part struct {
	literal     string
	placeholder string // set for placeholders
	inQuery     bool   // the placeholder is after '?', so it is query-escaped
	isParam     bool
}

var placeholderRE = regexp.MustCompile(`\{([^{}]*)\}`)

// New builds the tool from a validated spec (defaults applied). It compiles the
// parameters schema once and builds the HTTP client from the spec's egress
// policy and timeout.
func New(s *spec.Tool) (*Tool, error) {
	if s == nil {
		return nil, errors.New("httptool: nil spec")
	}
	if s.Type != "" && s.Type != spec.ToolHTTP {
		return nil, fmt.Errorf("tool %q has type %q, not %q", s.Name, s.Type, spec.ToolHTTP)
	}
	method := strings.ToUpper(s.Method)
	if method == "" {
		method = spec.DefaultToolMethod
	}
	if !slices.Contains([]string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}, method) {
		return nil, fmt.Errorf("tool %q: unsupported method %q", s.Name, s.Method)
	}
	if s.URL == "" {
		return nil, fmt.Errorf("tool %q: missing url", s.Name)
	}

	params, err := copySchema(s.Parameters)
	if err != nil {
		return nil, fmt.Errorf("tool %q: parameters: %w", s.Name, err)
	}
	schema, err := compileSchema(params)
	if err != nil {
		return nil, fmt.Errorf("tool %q: parameters: %w", s.Name, err)
	}

	description := s.Display(s.Path()+".description", s.Description)
	if description == "" {
		// Display, because the URL may hold an interpolated secret.
		description = method + " " + s.Display(s.Path()+".url", s.URL)
	}

	timeout := s.Timeout.D()
	if timeout <= 0 {
		timeout = spec.DefaultToolTimeout
	}
	maxResponse := int64(s.MaxResponse)
	if maxResponse <= 0 {
		maxResponse = spec.DefaultMaxResponse
	}
	policy := egress.Policy{AllowedHosts: slices.Clone(s.AllowedHosts)}
	parts, filled := splitTemplate(s.URL)
	headers := make(map[string]string, len(s.Headers))
	var secrets []string
	for k, v := range s.Headers {
		headers[k] = v
		if tool.SecretName(k) {
			secrets = append(secrets, v)
		}
	}
	secrets = append(secrets, s.EnvValues(s.Path()+".headers")...)
	secrets = append(secrets, tool.URLSecrets(s.URL)...)
	secrets = append(secrets, s.EnvValues(s.Path()+".url")...)
	return &Tool{
		secrets:     secrets,
		redact:      tool.NewRedactor(secrets...),
		def:         model.ToolDef{Name: tool.SafeName(s.Name), Description: description, Parameters: params},
		schema:      schema,
		client:      policy.Client(timeout),
		policy:      policy,
		method:      method,
		parts:       parts,
		filled:      filled,
		headers:     headers,
		maxResponse: maxResponse,
		timeout:     timeout,
	}, nil
}

// Secrets returns the credentials the tool sends: the values of headers
// whose names look like credentials (Authorization, X-Api-Key), everything
// interpolated from the environment into headers and the URL, and the URL's
// password and credential-like query values.
func (t *Tool) Secrets() []string { return slices.Clone(t.secrets) }

// Def describes the tool to models.
func (t *Tool) Def() model.ToolDef { return t.def }

// Close releases the client's idle connections.
func (t *Tool) Close() error {
	t.client.CloseIdleConnections()
	return nil
}

// Call validates the arguments, makes the request and returns the response
// body as text.
func (t *Tool) Call(ctx context.Context, args json.RawMessage) (string, error) {
	out, err := t.call(ctx, args)
	// Upstreams quote the headers they rejected ("invalid Authorization:
	// Bearer sk-..."), and some echo the whole request.
	return t.redact.Redact(out), t.redact.Error(err)
}

func (t *Tool) call(ctx context.Context, args json.RawMessage) (string, error) {
	values, err := t.arguments(args)
	if err != nil {
		return "", err
	}
	req, err := t.request(ctx, values)
	if err != nil {
		return "", err
	}
	resp, err := t.client.Do(req)
	if err != nil {
		return "", t.requestError(ctx, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, t.maxResponse+1))
	if err != nil {
		return "", t.requestError(ctx, err)
	}
	truncated := int64(len(body)) > t.maxResponse
	if truncated {
		body = body[:t.maxResponse]
	}
	// Redacted before the error snippet is cut, so that a cut cannot leave
	// half a secret behind.
	text := t.redact.Redact(strings.ToValidUTF8(string(body), "\uFFFD"))

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		snippet := tool.Head(strings.Join(strings.Fields(text), " "), errorSnippetChars)
		if snippet == "" {
			return "", fmt.Errorf("HTTP %s", resp.Status)
		}
		return "", fmt.Errorf("HTTP %s: %s", resp.Status, snippet)
	}
	if text == "" {
		return fmt.Sprintf("(empty response body, HTTP %s)", resp.Status), nil
	}
	if truncated {
		text += fmt.Sprintf("\n[response truncated: only the first %d bytes were read (max_response)]", t.maxResponse)
	}
	return text, nil
}

// arguments decodes the model's arguments, keeping numbers exact, and
// validates them against the parameters schema.
func (t *Tool) arguments(args json.RawMessage) (map[string]any, error) {
	if len(bytes.TrimSpace(args)) == 0 {
		args = json.RawMessage("{}")
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(args))
	if err != nil {
		return nil, tool.ArgumentError("arguments must be a JSON object: %v", err)
	}
	if v == nil {
		v = map[string]any{}
	}
	values, ok := v.(map[string]any)
	if !ok {
		return nil, tool.ArgumentError("arguments must be a JSON object, got %s", jsonType(v))
	}
	if err := t.schema.Validate(values); err != nil {
		return nil, tool.ArgumentError("%s", describeValidation(err))
	}
	return values, nil
}

// request builds the HTTP request: placeholders filled and escaped for their
// place in the URL, remaining arguments as query parameters or a JSON body.
func (t *Tool) request(ctx context.Context, values map[string]any) (*http.Request, error) {
	var b strings.Builder
	for _, p := range t.parts {
		if !p.isParam {
			b.WriteString(p.literal)
			continue
		}
		v, ok := values[p.placeholder]
		if !ok || v == nil {
			return nil, tool.ArgumentError("missing argument %q, which the URL needs", p.placeholder)
		}
		s, ok := scalar(v)
		if !ok {
			return nil, tool.ArgumentError("argument %q goes into the URL and must be a string, number or boolean, got %s", p.placeholder, jsonType(v))
		}
		if p.inQuery {
			b.WriteString(url.QueryEscape(s))
		} else {
			b.WriteString(url.PathEscape(s))
		}
	}
	// The URL is never quoted in errors: the template may hold a secret.
	u, err := url.Parse(b.String())
	if err != nil {
		return nil, errors.New("the URL built from the tool's template and these arguments is not valid")
	}

	rest := make(map[string]any, len(values))
	for k, v := range values {
		if !t.filled[k] {
			rest[k] = v
		}
	}
	var body io.Reader
	hasBody := t.method == http.MethodPost || t.method == http.MethodPut || t.method == http.MethodPatch
	if hasBody {
		data, err := json.Marshal(rest)
		if err != nil {
			return nil, tool.ArgumentError("arguments cannot be encoded as JSON: %v", err)
		}
		body = bytes.NewReader(data)
	} else if len(rest) > 0 {
		q := url.Values{}
		for k, v := range rest {
			addQuery(q, k, v)
		}
		if enc := q.Encode(); enc != "" {
			if u.RawQuery != "" {
				u.RawQuery += "&"
			}
			u.RawQuery += enc
		}
	}

	// Early policy check: the host may come from a placeholder.
	if err := t.policy.CheckURL(u); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, t.method, u.String(), body)
	if err != nil {
		return nil, errors.New("the request could not be built from the tool's URL template and these arguments")
	}
	req.Header.Set("User-Agent", userAgent)
	req.Header.Set("Accept", "application/json, text/plain;q=0.9, */*;q=0.5")
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range t.headers {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	return req, nil
}

// requestError words a failed request for the model without the URL or the
// headers, which may hold secrets.
func (t *Tool) requestError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("request cancelled: %w", ctx.Err())
	}
	var refused *egress.RefusedError
	if errors.As(err, &refused) {
		return refused
	}
	// The client's timeout surfaces as a url.Error from Do, or as a plain
	// timeout error while reading the body.
	var timeout interface{ Timeout() bool }
	if errors.As(err, &timeout) && timeout.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("request timed out after %s", t.timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its message quotes the URL
	}
	return fmt.Errorf("request failed: %v", err)
}

// splitTemplate splits a URL template at its {param} placeholders, noting
// which are in the query string (after the first '?' outside braces).
func splitTemplate(tmpl string) ([]part, map[string]bool) {
	var parts []part
	filled := map[string]bool{}
	query := -1
	depth := 0
	for i, c := range tmpl {
		switch c {
		case '{':
			depth++
		case '}':
			depth = max(depth-1, 0)
		case '?':
			if depth == 0 && query < 0 {
				query = i
			}
		}
	}
	last := 0
	for _, m := range placeholderRE.FindAllStringSubmatchIndex(tmpl, -1) {
		if m[0] > last {
			parts = append(parts, part{literal: tmpl[last:m[0]]})
		}
		name := tmpl[m[2]:m[3]]
		parts = append(parts, part{placeholder: name, isParam: true, inQuery: query >= 0 && m[0] > query})
		filled[name] = true
		last = m[1]
	}
	if last < len(tmpl) {
		parts = append(parts, part{literal: tmpl[last:]})
	}
	return parts, filled
}

// scalar formats a string, number or boolean for a URL.
func scalar(v any) (string, bool) {
	switch v := v.(type) {
	case string:
		return v, true
	case json.Number:
		return formatNumber(v), true
	case bool:
		return strconv.FormatBool(v), true
	}
	return "", false
}

// formatNumber writes an integer exactly as the model wrote it (even beyond
// 64 bits), and other numbers without an exponent (1e3 → 1000, 1.50 → 1.5),
// because an ID in a URL must not become 1e+21 or lose digits.
func formatNumber(n json.Number) string {
	s := n.String()
	if !strings.ContainsAny(s, ".eE") {
		return s
	}
	f, err := n.Float64()
	if err != nil || math.IsInf(f, 0) || math.Abs(f) >= 1e21 {
		return s
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// addQuery adds an argument as query parameters: arrays repeat the key,
// objects are sent as JSON text, nulls are left out.
func addQuery(q url.Values, key string, v any) {
	switch v := v.(type) {
	case nil:
	case []any:
		for _, e := range v {
			if e == nil {
				continue
			}
			if s, ok := scalar(e); ok {
				q.Add(key, s)
			} else {
				data, _ := json.Marshal(e)
				q.Add(key, string(data))
			}
		}
	default:
		if s, ok := scalar(v); ok {
			q.Add(key, s)
			return
		}
		data, _ := json.Marshal(v)
		q.Add(key, string(data))
	}
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number, float64:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// copySchema returns the parameters schema as plain JSON values (an empty
// object schema when none is declared). Going through JSON both copies it, so
// Def's value cannot alias the spec, and normalizes YAML-decoded values.
func copySchema(s spec.JSONSchema) (map[string]any, error) {
	if s == nil {
		return map[string]any{"type": "object", "properties": map[string]any{}}, nil
	}
	data, err := json.Marshal(map[string]any(s))
	if err != nil {
		return nil, fmt.Errorf("not representable as JSON: %w", err)
	}
	var out map[string]any
	if err := json.Unmarshal(data, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// noLoader refuses every external $ref: a tool's schema must be
// self-contained, and the default loader would read files or URLs named by it.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external $ref %q is not allowed: keep the schema self-contained ($ref to #/$defs/...)", url)
}

func compileSchema(params map[string]any) (*jsonschema.Schema, error) {
	data, err := json.Marshal(params)
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.UseLoader(noLoader{})
	c.DefaultDraft(jsonschema.Draft2020)
	const loc = "troupe://tool-parameters.json"
	if err := c.AddResource(loc, doc); err != nil {
		return nil, fmt.Errorf("invalid JSON Schema: %w", err)
	}
	schema, err := c.Compile(loc)
	if err != nil {
		return nil, fmt.Errorf("invalid JSON Schema: %w", err)
	}
	return schema, nil
}

var englishPrinter = message.NewPrinter(language.English)

// maxValidationMessages bounds how many problems one error lists.
const maxValidationMessages = 5

// describeValidation lists the validator's specific problems ("at /units:
// value must be one of ...") instead of its multi-line tree.
func describeValidation(err error) string {
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return err.Error()
	}
	var msgs []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		msg := e.ErrorKind.LocalizedString(englishPrinter)
		if len(e.InstanceLocation) > 0 {
			msg = "at /" + strings.Join(e.InstanceLocation, "/") + ": " + msg
		}
		if !slices.Contains(msgs, msg) {
			msgs = append(msgs, msg)
		}
	}
	walk(ve)
	slices.Sort(msgs) // the validator's order varies between runs
	if len(msgs) > maxValidationMessages {
		msgs = append(msgs[:maxValidationMessages], fmt.Sprintf("and %d more", len(msgs)-maxValidationMessages))
	}
	return "arguments do not match the tool's parameters: " + strings.Join(msgs, "; ")
}
